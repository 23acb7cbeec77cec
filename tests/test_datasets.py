import gzip
import hashlib
import shutil
import socket
import struct
import sys
import threading
import types
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

import pynn.datasets as ds
from pynn.datasets import download as dl
from pynn.datasets import tfds as tfds_bridge
from pynn.datasets.mnist import FASHION_MNIST, MNIST

# The real IDX files live in shared/data beside the repository (CI clones the
# repo with shared/ next to it), never at a fixed absolute path.
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

needs_shared = pytest.mark.skipif(
    not (SHARED_DATA / "mnist").is_dir(),
    reason=f"real MNIST files not found in {SHARED_DATA}")


def _md5(path):
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    # never touch the user's cache or use their mirror settings
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for var in ("PYNN_DATA_DIR", "PYNN_MNIST_MIRROR", "PYNN_FASHION_MNIST_MIRROR"):
        monkeypatch.delenv(var, raising=False)


# ---------------------------------------------------------------------------
# Real files: checksums and parsing
# ---------------------------------------------------------------------------

@needs_shared
@pytest.mark.parametrize("spec", [MNIST, FASHION_MNIST], ids=["mnist", "fashion"])
def test_shared_files_match_known_checksums(spec):
    for fs in spec.files.values():
        path = SHARED_DATA / spec.folder / fs.filename
        assert path.stat().st_size == fs.size
        assert _md5(path) == fs.md5
        assert hashlib.sha256(path.read_bytes()).hexdigest() == fs.sha256


@needs_shared
def test_mnist_real_files():
    (xtr, ytr), (xte, yte) = ds.mnist(data_dir=SHARED_DATA, download=False)
    assert xtr.shape == (60000, 1, 28, 28) and xte.shape == (10000, 1, 28, 28)
    assert ytr.shape == (60000,) and yte.shape == (10000,)
    assert xtr.dtype == np.float32 and xte.dtype == np.float32
    assert ytr.dtype == np.int64 and yte.dtype == np.int64
    assert xtr.min() == 0.0 and xtr.max() == 1.0 and 0.0 <= xte.min() and xte.max() <= 1.0
    assert list(ytr[:10]) == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert list(yte[:10]) == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert set(np.unique(ytr)) == set(range(10)) and set(np.unique(yte)) == set(range(10))
    assert np.bincount(ytr).tolist()[:3] == [5923, 6742, 5958]     # well known class counts
    assert 0.12 < xtr.mean() < 0.14                                 # MNIST mean ~0.1307
    # a pixel of the first digit (a '5'): the top rows are blank, the centre is ink
    assert xtr[0, 0, :4].max() == 0.0 and xtr[0, 0, 14, 14] > 0.5


@needs_shared
def test_mnist_flatten_same_pixels():
    (x, y), (xt, yt) = ds.mnist(flatten=True, data_dir=SHARED_DATA)
    assert x.shape == (60000, 784) and xt.shape == (10000, 784)
    assert x.dtype == np.float32 and x.flags["C_CONTIGUOUS"]
    (x4, _), _ = ds.mnist(data_dir=SHARED_DATA)
    assert np.array_equal(x, x4.reshape(60000, 784))
    # value grid is k/255 exactly
    assert np.array_equal(np.round(x[:100] * 255) / np.float32(255), x[:100])


@needs_shared
def test_fashion_mnist_via_env_var(monkeypatch):
    monkeypatch.setenv("PYNN_DATA_DIR", str(SHARED_DATA))
    (xtr, ytr), (xte, yte) = ds.fashion_mnist(download=False)
    assert xtr.shape == (60000, 1, 28, 28) and xte.shape == (10000, 1, 28, 28)
    assert xtr.dtype == np.float32 and ytr.dtype == np.int64
    assert 0.0 <= xtr.min() and xtr.max() <= 1.0
    assert list(ytr[:10]) == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
    assert list(yte[:5]) == [9, 2, 1, 1, 6]
    assert np.bincount(ytr).tolist() == [6000] * 10 and np.bincount(yte).tolist() == [1000] * 10
    (xf, _), _ = ds.fashion_mnist(flatten=True, download=False)
    assert xf.shape == (60000, 784)


def test_cache_root_precedence(monkeypatch, tmp_path):
    assert ds.cache_root() == tmp_path / "home" / ".cache" / "pynn"
    monkeypatch.setenv("PYNN_DATA_DIR", str(tmp_path / "env"))
    assert ds.cache_root() == tmp_path / "env"
    assert ds.cache_root(tmp_path / "arg") == tmp_path / "arg"
    assert ds.cache_root("~/x") == tmp_path / "home" / "x"


# ---------------------------------------------------------------------------
# IDX parsing
# ---------------------------------------------------------------------------

def _idx(arr, code=0x08, dtype=">u1"):
    arr = np.asarray(arr)
    head = struct.pack(">BBBB", 0, 0, code, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return head + arr.astype(dtype).tobytes()


def test_parse_idx_roundtrip_and_types():
    a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    out = ds.parse_idx(_idx(a))
    assert out.dtype == np.uint8 and np.array_equal(out, a)
    b = np.array([[1, -2], [70000, 3]], dtype=np.int32)
    out = ds.parse_idx(_idx(b, 0x0C, ">i4"))
    assert out.dtype == np.int32 and out.dtype.isnative and np.array_equal(out, b)
    c = np.array([1.5, -2.25], dtype=np.float32)
    assert np.array_equal(ds.parse_idx(_idx(c, 0x0D, ">f4")), c)


@pytest.mark.parametrize("buf,match", [
    (b"\x00\x00", "too short"),
    (b"\x1f\x8b\x08\x00" + b"\x00" * 20, "magic"),            # gzip bytes, not gunzipped
    (b"\x00\x01\x08\x01" + b"\x00" * 8, "magic"),
    (b"\x00\x00\x07\x01\x00\x00\x00\x01\x00", "magic"),        # unknown type code
    (b"\x00\x00\x08\x00", "0 dimensions"),
    (b"\x00\x00\x08\x03\x00\x00\x00\x02", "truncated IDX header"),
])
def test_parse_idx_bad_header(buf, match):
    with pytest.raises(ds.IDXError, match=match):
        ds.parse_idx(buf)


def test_parse_idx_size_mismatch():
    good = _idx(np.zeros((3, 4), np.uint8))
    with pytest.raises(ds.IDXError, match="truncated"):
        ds.parse_idx(good[:-1])
    with pytest.raises(ds.IDXError, match="trailing"):
        ds.parse_idx(good + b"\x00")


def test_read_idx_gzip_plain_and_corrupt(tmp_path):
    a = np.arange(12, dtype=np.uint8).reshape(3, 4)
    raw = _idx(a)
    (tmp_path / "a.idx").write_bytes(raw)
    (tmp_path / "a.idx.gz").write_bytes(gzip.compress(raw))
    assert np.array_equal(ds.read_idx(tmp_path / "a.idx"), a)
    assert np.array_equal(ds.read_idx(tmp_path / "a.idx.gz"), a)
    (tmp_path / "cut.gz").write_bytes(gzip.compress(raw)[:-10])
    with pytest.raises(ds.IDXError, match="cut.gz"):
        ds.read_idx(tmp_path / "cut.gz")


def test_malformed_file_in_cache_gives_clear_error(tmp_path, monkeypatch):
    # files with the right checksum can't be malformed, so bypass verification
    folder = tmp_path / "mnist"
    folder.mkdir()
    imgs = gzip.compress(_idx(np.zeros((2, 28, 27), np.uint8)))
    labs = gzip.compress(_idx(np.zeros(2, np.uint8)))
    for fs in MNIST.files.values():
        (folder / fs.filename).write_bytes(imgs if "images" in fs.filename else labs)
    # (pynn.datasets.mnist is the function; the module is in sys.modules)
    monkeypatch.setattr(sys.modules["pynn.datasets.mnist"], "verify_file", lambda *a, **k: None)
    with pytest.raises(ds.IDXError, match=r"\(n, 28, 28\)"):
        ds.mnist(data_dir=tmp_path, download=False)


# ---------------------------------------------------------------------------
# Download against a local HTTP server
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def served_dir(tmp_path_factory):
    """A temp copy of shared/data/mnist to serve."""
    if not (SHARED_DATA / "mnist").is_dir():
        pytest.skip(f"real MNIST files not found in {SHARED_DATA}")
    root = tmp_path_factory.mktemp("served")
    shutil.copytree(SHARED_DATA / "mnist", root / "mnist")
    for p in (root / "mnist").iterdir():
        p.chmod(0o644)
    return root


class _Handler(BaseHTTPRequestHandler):
    """Serves server.root; server.mode is 'ok', 'corrupt' or 'truncate'."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.hits.append(self.path)
        path = (self.server.root / self.path.lstrip("/")).resolve()
        if self.server.root not in path.parents or not path.is_file():
            self.send_error(404)
            return
        body = path.read_bytes()
        mode = self.server.mode
        if mode == "corrupt":
            mid = len(body) // 2
            body = body[:mid] + bytes([body[mid] ^ 0xFF]) + body[mid + 1:]
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if mode == "truncate":
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body)


@pytest.fixture
def mirror(served_dir):
    """mirror(mode) -> (base_url of the mnist folder, server). Servers stop at teardown."""
    servers = []

    def start(mode="ok"):
        srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        srv.root, srv.mode, srv.hits = served_dir.resolve(), mode, []
        srv.daemon_threads = True
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return f"http://127.0.0.1:{srv.server_address[1]}/mnist/", srv

    yield start
    for srv in servers:
        srv.shutdown()
        srv.server_close()


@pytest.fixture
def closed_port_url():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()                                  # nothing listens there now
    return f"http://127.0.0.1:{port}/mnist/"


def _leftovers(folder):
    return sorted(p.name for p in Path(folder).iterdir()) if Path(folder).exists() else []


def test_download_into_empty_cache(mirror, tmp_path, monkeypatch):
    base, srv = mirror("ok")
    monkeypatch.setenv("PYNN_MNIST_MIRROR", base)          # env var override
    cache = tmp_path / "cache"
    (x, y), (xt, yt) = ds.mnist(data_dir=cache, progress=False)
    assert x.shape == (60000, 1, 28, 28) and list(y[:5]) == [5, 0, 4, 1, 9]
    folder = cache / "mnist"
    assert _leftovers(folder) == sorted(fs.filename for fs in MNIST.files.values())
    for fs in MNIST.files.values():
        assert _md5(folder / fs.filename) == fs.md5
    assert len(srv.hits) == 4
    ds.mnist(data_dir=cache, progress=False)               # cached: no new request
    assert len(srv.hits) == 4


def test_checksum_mismatch_refused(mirror, tmp_path):
    base, _ = mirror("corrupt")
    fs = MNIST.test_labels
    dest = tmp_path / "c" / fs.filename
    with pytest.raises(ds.ChecksumError, match="sha256 mismatch"):
        dl.download(base + fs.filename, dest, sha256=fs.sha256, progress=False)
    assert _leftovers(dest.parent) == []                   # no final file, no temp file
    with pytest.raises(ds.ChecksumError) as e:
        ds.mnist(data_dir=tmp_path / "c2", mirrors=[base], progress=False)
    assert "mismatch" in str(e.value) and str(tmp_path / "c2" / "mnist") in str(e.value)
    assert _leftovers(tmp_path / "c2" / "mnist") == []


def test_interrupted_transfer_leaves_no_file(mirror, tmp_path):
    base, _ = mirror("truncate")
    fs = MNIST.train_labels
    dest = tmp_path / "t" / fs.filename
    # even with no checksum given, the short read is detected from Content-Length
    with pytest.raises(ds.DownloadError, match="interrupted"):
        dl.download(base + fs.filename, dest, progress=False)
    assert _leftovers(dest.parent) == []
    with pytest.raises(ds.DownloadError):
        ds.mnist(data_dir=tmp_path / "t2", mirrors=[base], progress=False)
    assert _leftovers(tmp_path / "t2" / "mnist") == []


def test_fallback_to_next_mirror(mirror, closed_port_url, tmp_path):
    bad_base, bad = mirror("corrupt")
    good_base, good = mirror("ok")
    cache = tmp_path / "fb"
    (x, y), _ = ds.mnist(data_dir=cache, mirrors=[closed_port_url, bad_base, good_base],
                         progress=False)
    assert x.shape == (60000, 1, 28, 28) and list(y[:5]) == [5, 0, 4, 1, 9]
    assert len(bad.hits) == 4 and len(good.hits) == 4
    assert len(_leftovers(cache / "mnist")) == 4


def test_offline_error_message(closed_port_url, tmp_path, monkeypatch):
    monkeypatch.setenv("PYNN_DATA_DIR", str(tmp_path / "offline"))
    monkeypatch.setenv("PYNN_MNIST_MIRROR", closed_port_url)
    with pytest.raises(ds.DownloadError) as e:
        ds.mnist(progress=False)
    msg = str(e.value)
    folder = tmp_path / "offline" / "mnist"
    assert str(folder) in msg
    assert "PYNN_DATA_DIR" in msg and "PYNN_MNIST_MIRROR" in msg and "data_dir" in msg
    for fs in MNIST.files.values():
        assert fs.filename in msg
    assert closed_port_url in msg                             # says what was tried
    assert _leftovers(folder) == []


def test_missing_files_without_download(tmp_path):
    with pytest.raises(ds.DownloadError) as e:
        ds.fashion_mnist(data_dir=tmp_path, download=False)
    msg = str(e.value)
    assert str(tmp_path / "fashion-mnist") in msg and "PYNN_DATA_DIR" in msg
    assert "download=False" in msg and "t10k-labels-idx1-ubyte.gz" in msg
    assert not (tmp_path / "fashion-mnist").exists()


def test_corrupt_cached_file_error_then_redownload(mirror, tmp_path):
    folder = tmp_path / "mnist"
    shutil.copytree(SHARED_DATA / "mnist", folder)
    for p in folder.iterdir():
        p.chmod(0o644)
    bad = folder / MNIST.test_labels.filename
    data = bytearray(bad.read_bytes())
    data[100] ^= 0xFF                                          # same size, wrong content
    bad.write_bytes(bytes(data))
    with pytest.raises(ds.ChecksumError) as e:
        ds.mnist(data_dir=tmp_path, download=False)
    assert str(bad) in str(e.value) and "corrupt" in str(e.value)
    base, srv = mirror("ok")
    (_, _), (_, yt) = ds.mnist(data_dir=tmp_path, mirrors=base, progress=False)
    assert srv.hits == ["/mnist/" + MNIST.test_labels.filename]   # only the bad one again
    assert _md5(bad) == MNIST.test_labels.md5 and list(yt[:3]) == [7, 2, 1]


def test_verification_cached_per_process(tmp_path, monkeypatch):
    f = tmp_path / "f.bin"
    f.write_bytes(b"hello")
    sha = hashlib.sha256(b"hello").hexdigest()
    calls = []
    real = dl.file_hash
    monkeypatch.setattr(dl, "file_hash", lambda p, a="sha256": calls.append(a) or real(p, a))
    dl.verify_file(f, sha256=sha, size=5)
    dl.verify_file(f, sha256=sha, size=5)
    assert calls == ["sha256"]
    f.write_bytes(b"jello")                                   # modified: verified again
    with pytest.raises(ds.ChecksumError):
        dl.verify_file(f, sha256=sha, size=5)
    with pytest.raises(ds.ChecksumError, match="size"):
        dl.verify_file(f, sha256=sha, size=6)


# ---------------------------------------------------------------------------
# Synthetic datasets
# ---------------------------------------------------------------------------

SYNTH = {
    "moons": lambda **k: ds.make_moons(noise=0.1, **k),
    "circles": lambda **k: ds.make_circles(noise=0.05, **k),
    "blobs": lambda **k: ds.make_blobs(**k),
    "spiral": lambda **k: ds.make_spiral(**k),
}


@pytest.mark.parametrize("name", SYNTH)
def test_synthetic_shapes_dtypes_determinism(name):
    make = SYNTH[name]
    X, y = make(n_samples=101, seed=0)
    assert X.shape == (101, 2) and y.shape == (101,)
    assert X.dtype == np.float32 and y.dtype == np.int64
    assert np.isfinite(X).all()
    X2, y2 = make(n_samples=101, seed=0)
    assert np.array_equal(X, X2) and np.array_equal(y, y2)
    X3, _ = make(n_samples=101, seed=1)
    assert not np.array_equal(X, X3)
    rng_X, _ = make(n_samples=101, seed=np.random.default_rng(0))
    assert np.array_equal(rng_X, X)


def test_synthetic_label_balance():
    assert np.bincount(ds.make_moons(101, seed=0)[1]).tolist() == [50, 51]
    assert np.bincount(ds.make_circles(101, seed=0)[1]).tolist() == [50, 51]
    assert np.bincount(ds.make_blobs(100, centers=3, seed=0)[1]).tolist() == [34, 33, 33]
    assert np.bincount(ds.make_spiral(300, n_classes=3, seed=0)[1]).tolist() == [100] * 3
    assert np.bincount(ds.make_spiral(100, n_classes=4, seed=0)[1]).tolist() == [25] * 4


def test_synthetic_shuffled_by_default():
    _, y = ds.make_moons(100, seed=0)
    assert not np.array_equal(y, np.sort(y))
    _, y = ds.make_moons(100, seed=0, shuffle=False)
    assert np.array_equal(y, np.sort(y))


def test_moons_geometry():
    X, y = ds.make_moons(200, seed=0)                          # no noise: exact half circles
    outer, inner = X[y == 0].astype(np.float64), X[y == 1].astype(np.float64)
    assert np.allclose(np.hypot(outer[:, 0], outer[:, 1]), 1, atol=1e-6)
    assert np.allclose(np.hypot(inner[:, 0] - 1, inner[:, 1] - 0.5), 1, atol=1e-6)
    assert (outer[:, 1] >= -1e-6).all() and (inner[:, 1] <= 0.5 + 1e-6).all()
    assert np.isclose(X[:, 0].min(), -1) and np.isclose(X[:, 0].max(), 2)
    assert np.isclose(X[:, 1].min(), -0.5, atol=1e-3) and np.isclose(X[:, 1].max(), 1, atol=1e-3)
    # noise moves points but keeps the moons: class means stay near their clean values
    Xn, yn = ds.make_moons(2000, noise=0.1, seed=0)
    Xc, yc = ds.make_moons(2000, seed=0)
    assert np.abs(Xn - Xc).std() == pytest.approx(0.1 * np.sqrt(1 - 2 / np.pi), rel=0.1)
    assert np.array_equal(yn, yc)


def test_circles_geometry():
    X, y = ds.make_circles(100, factor=0.3, seed=0)
    r = np.hypot(X[:, 0], X[:, 1])
    assert np.allclose(r[y == 0], 1, atol=1e-6) and np.allclose(r[y == 1], 0.3, atol=1e-6)
    with pytest.raises(ValueError):
        ds.make_circles(10, factor=1.0)


def test_blobs_centers_and_std():
    centers = np.array([[0.0, 0.0, 0.0], [20.0, 20.0, 20.0]])
    X, y = ds.make_blobs(4000, centers=centers, cluster_std=[0.5, 2.0], seed=0)
    assert X.shape == (4000, 3)
    for k, s in enumerate([0.5, 2.0]):
        assert np.allclose(X[y == k].mean(0), centers[k], atol=0.15)
        assert np.allclose(X[y == k].std(0), s, rtol=0.1)
    X, y = ds.make_blobs(50, centers=4, n_features=5, seed=0)
    assert X.shape == (50, 5) and set(y.tolist()) == {0, 1, 2, 3}
    assert np.abs(X).max() < 10 + 6                            # centres in the (-10, 10) box


def test_spiral_geometry():
    X, y = ds.make_spiral(300, n_classes=3, noise=0.0, seed=0, shuffle=False)
    r = np.hypot(X[:, 0], X[:, 1])
    assert r.max() <= 1 + 1e-6 and np.isclose(r[0], 0) and np.isclose(r[99], 1)
    # arm 0 ends at angle 4 rad (x = r sin t, y = r cos t)
    assert np.allclose(X[99], [np.sin(4.0), np.cos(4.0)], atol=1e-6)


def test_synthetic_errors():
    with pytest.raises(ValueError):
        ds.make_moons(0)
    with pytest.raises(ValueError):
        ds.make_moons(10, noise=-1)
    with pytest.raises(ValueError):
        ds.make_spiral(10, n_classes=0)
    with pytest.raises(ValueError):
        ds.make_blobs(10, centers=0)


# ---------------------------------------------------------------------------
# tensorflow-datasets bridge
# ---------------------------------------------------------------------------

def _fake_tfds(n_train=6, n_test=4, shape=(5, 7, 3)):
    """A stand-in for tensorflow_datasets with load/as_numpy/data_source."""
    rng = np.random.default_rng(0)
    splits = {
        "train": (rng.integers(0, 256, (n_train,) + shape, dtype=np.uint8),
                  rng.integers(0, 10, n_train).astype(np.int64)),
        "test": (rng.integers(0, 256, (n_test,) + shape, dtype=np.uint8),
                 rng.integers(0, 10, n_test).astype(np.int64)),
    }
    calls = []

    class Source:
        def __init__(self, split):
            self.images, self.labels = splits[split]
            self.dataset_info = types.SimpleNamespace(supervised_keys=("image", "label"))

        def __len__(self):
            return len(self.labels)

        def __getitem__(self, i):
            return {"image": self.images[i], "label": self.labels[i], "id": f"x{i}"}

    def load(name, split, data_dir=None, as_supervised=False, batch_size=None):
        calls.append(("load", name, split, data_dir, as_supervised, batch_size))
        return ("tf-tensors", split)

    def as_numpy(ds_):
        calls.append(("as_numpy",))
        return splits[ds_[1]]

    def data_source(name, split, data_dir=None):
        calls.append(("data_source", name, split, data_dir))
        return Source(split)

    mod = types.ModuleType("tensorflow_datasets")
    mod.load, mod.as_numpy, mod.data_source = load, as_numpy, data_source
    return mod, splits, calls


@pytest.mark.parametrize("with_tf", [True, False], ids=["tfds.load", "tfds.data_source"])
def test_tfds_load_conversion_with_fake_module(monkeypatch, with_tf):
    fake, splits, calls = _fake_tfds()
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", fake)
    monkeypatch.setattr(tfds_bridge, "_have_tensorflow", lambda: with_tf)
    (x, y), (xt, yt) = ds.load("cifar10", data_dir="/some/dir")
    img, lab = splits["train"]
    assert x.shape == (6, 3, 5, 7) and xt.shape == (4, 3, 5, 7)
    assert x.dtype == np.float32 and y.dtype == np.int64 and x.flags["C_CONTIGUOUS"]
    assert np.array_equal(x, img.transpose(0, 3, 1, 2) / np.float32(255))
    assert np.array_equal(y, lab) and np.array_equal(yt, splits["test"][1])
    assert 0.0 <= x.min() and x.max() <= 1.0
    kind = "load" if with_tf else "data_source"
    assert [c[0] for c in calls if c[0] != "as_numpy"] == [kind, kind]
    assert all(c[3] == "/some/dir" for c in calls if c[0] != "as_numpy")
    if with_tf:
        assert calls[0][4:] == (True, -1)                  # as_supervised, whole split
    xf, yf = ds.load("cifar10", split="test", flatten=True)
    assert xf.shape == (4, 3 * 5 * 7) and np.array_equal(xf, xt.reshape(4, -1))


def test_tfds_grayscale_and_no_supervised_keys(monkeypatch):
    fake, splits, _ = _fake_tfds(shape=(28, 28, 1))
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", fake)
    monkeypatch.setattr(tfds_bridge, "_have_tensorflow", lambda: False)
    x, y = ds.load("kmnist", split="train")
    assert x.shape == (6, 1, 28, 28)
    x, _ = tfds_bridge.to_pynn_layout(np.zeros((2, 4, 4), np.uint8), np.zeros(2, np.int64))
    assert x.shape == (2, 1, 4, 4)
    orig = fake.data_source

    def no_keys(*a, **k):
        src = orig(*a, **k)
        src.dataset_info = types.SimpleNamespace(supervised_keys=None)
        return src

    fake.data_source = no_keys
    with pytest.raises(ValueError, match="supervised"):
        ds.load("some_text_ds", split="train")


def test_tfds_missing_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)   # import fails
    with pytest.raises(ImportError, match=r"pip install 'pynn\[tfds\]'"):
        ds.load("cifar10")
    with pytest.raises(ValueError, match="source"):
        ds.load("cifar10", source="torchvision")


@needs_shared
def test_load_source_pynn(monkeypatch):
    (x, y), (xt, yt) = ds.load("mnist", source="pynn", data_dir=SHARED_DATA)
    assert x.shape == (60000, 1, 28, 28) and list(y[:3]) == [5, 0, 4]
    xt2, yt2 = ds.load("fashion_mnist", split="test", source="pynn", data_dir=SHARED_DATA,
                       flatten=True)
    assert xt2.shape == (10000, 784) and list(yt2[:2]) == [9, 2]


@pytest.mark.parametrize("name,shape", [("mnist", (1, 28, 28)), ("cifar10", (3, 32, 32))])
def test_tfds_mock_data_real_package(name, shape):
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=12):
        (x, y), (xt, yt) = ds.load(name)
    assert x.shape == (12,) + shape and xt.shape == (12,) + shape
    assert x.dtype == np.float32 and y.dtype == np.int64
    assert 0.0 <= x.min() and x.max() <= 1.0 and ((0 <= y) & (y < 10)).all()
