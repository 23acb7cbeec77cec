"""save / load_model: bit-identical round trips, damaged and foreign files refused with a clear
error, atomic saving, and no unpickling ever."""
import os
import zipfile

import numpy as np
import pytest
from torch_helpers import as_float64_model

import pynn
from pynn import Input, Model, Tensor, load_model, serialization
from pynn.activations import relu, softmax
from pynn.layers import (
    AvgPool2d,
    BatchNorm1d,
    BatchNorm2d,
    Conv2d,
    Dense,
    Dropout,
    Flatten,
    LeakyReLU,
    MaxPool2d,
    Softmax,
)
from pynn.losses import categorical_cross_entropy
from pynn.optimizers import SGD


def _mlp(dtype):
    pynn.manual_seed(0)
    x_in = Input((10,), dtype=dtype)
    x = Dense(10, 16, relu)(x_in)
    x = BatchNorm1d(16)(x)
    x = Dropout(0.3)(x)
    x = Dense(16, 8, "tanh", bias=False)(x)
    x = LeakyReLU(0.1)(x)
    x = Dense(8, 4, softmax)(x)
    return Model(x_in, x), (10,)


def _cnn(dtype):
    pynn.manual_seed(1)
    x_in = Input((2, 10, 10), dtype=dtype)
    x = Conv2d(2, 4, 3, padding=1, activation="relu")(x_in)
    x = BatchNorm2d(4)(x)
    x = MaxPool2d(2)(x)
    x = Conv2d(4, 6, (3, 2), stride=(2, 1), padding=(1, 0), activation="gelu", bias=False)(x)
    x = AvgPool2d(2, stride=1)(x)
    x = Flatten()(x)
    x = Dropout(0.5)(x)
    x = Dense(6 * 2 * 3, 4)(x)
    x = Softmax(dim=1)(x)
    return Model(x_in, x), (2, 10, 10)


def _trained(build, dtype):
    """A model after a few SGD steps in train mode: weights and running stats are not the
    initial ones."""
    model, shape = build(dtype)
    if dtype == np.float64:
        as_float64_model(model)
    rng = np.random.default_rng(0)
    opt = SGD(0.1)
    for _ in range(3):
        x = rng.normal(1.0, 2.0, (8,) + shape).astype(dtype)
        loss = categorical_cross_entropy(model(x), rng.integers(0, 4, 8))
        model.zero_grad()
        loss.backward()
        opt.update(model.parameters)
    return model, shape


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("build", [_mlp, _cnn], ids=["mlp", "cnn"])
def test_save_load_predicts_bit_identically(tmp_path, build, dtype):
    model, shape = _trained(build, dtype)
    path = tmp_path / "model.pynn"
    model.save(path)
    loaded = load_model(path)
    assert isinstance(loaded, Model)
    x = np.random.default_rng(1).normal(0.5, 1.5, (13,) + shape).astype(dtype)
    want = model.predict(x)
    got = loaded.predict(x)
    assert got.dtype == want.dtype == dtype
    np.testing.assert_array_equal(got, want)
    # (batched vs unbatched may differ in the last bit: a 1-row matmul takes another BLAS path)
    np.testing.assert_array_equal(loaded.predict(x, batch_size=4), model.predict(x, batch_size=4))
    # same architecture, names, weights (with their dtypes) and running stats
    assert [type(l) for l in loaded.layers] == [type(l) for l in model.layers]
    assert [l.config() for l in loaded.layers] == [l.config() for l in model.layers]
    assert loaded.summary(print_fn=None) == model.summary(print_fn=None)
    a, b = model.state_dict(), loaded.state_dict()
    assert list(a) == list(b)
    for k in a:
        assert a[k].dtype == b[k].dtype, k
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    # train mode too: same dropout mask under the same seed, same gradients
    grads = []
    for m in (model, loaded):
        m.zero_grad()
        pynn.manual_seed(5)
        categorical_cross_entropy(m(x), np.arange(13) % 4).backward()
        grads.append([p.grad.data.copy() for p in m.parameters])
    for ga, gb in zip(*grads):
        np.testing.assert_array_equal(ga, gb)
    # the loaded model trains on its own parameters, not the original's
    before = [p.data.copy() for p in model.parameters]
    SGD(0.1).update(loaded.parameters)
    for p, q in zip(model.parameters, before):
        np.testing.assert_array_equal(p.data, q)


def test_save_load_loose_ops_free_params_multi_io(tmp_path):
    pynn.manual_seed(2)
    a_in, b_in = Input((4,)), Input((3,))
    scale = Tensor(np.linspace(0.5, 1.5, 6), requires_grad=True)
    shared = Dense(6, 6, "sigmoid")
    h = Dense(4, 6)(a_in) * 2.0 + Dense(3, 6, bias=False)(b_in).relu()
    h = shared(shared(h * scale))
    out1 = Dense(6, 2, softmax)(h)
    out2 = (h - 0.5).sum(dim=1, keepdim=True)
    model = Model([a_in, b_in], [out1, out2])
    path = tmp_path / "multi.npz"
    model.save(str(path))
    loaded = load_model(str(path))
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((5, 4)), rng.standard_normal((5, 3))
    for w, g in zip(model.predict([a, b]), loaded.predict([a, b])):
        np.testing.assert_array_equal(g, w)
    assert len(loaded.parameters) == len(model.parameters)


def test_saved_file_is_a_plain_npz(tmp_path):
    model, _ = _mlp(np.float32)
    path = tmp_path / "m.npz"
    model.save(path)
    with np.load(path, allow_pickle=False) as f:
        assert "w/dense_1.weight" in f.files and "__architecture__" in f.files
        np.testing.assert_array_equal(f["w/dense_1.weight"], model.layers[0].weight.data)
    assert zipfile.is_zipfile(path)


# -- damaged and foreign files ----------------------------------------------------------------
@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    model, shape = _trained(_cnn, np.float32)
    path = tmp_path_factory.mktemp("saved") / "cnn.npz"
    model.save(path)
    return path, path.read_bytes()


def test_truncated_file_is_refused(saved, tmp_path):
    _, raw = saved
    bad = tmp_path / "bad.npz"
    for size in (0, 1, 10, 100, len(raw) // 2, len(raw) - 100, len(raw) - 64, len(raw) - 1):
        bad.write_bytes(raw[:size])
        with pytest.raises(ValueError, match=r"load_model: .*bad.npz .*(truncated|damaged)"):
            load_model(bad)


def test_any_altered_byte_is_refused(saved, tmp_path):
    """One byte changed anywhere (zip headers, array data, the architecture, the checksum
    itself): refused, with the checksum message, never a crash from deep inside zipfile."""
    _, raw = saved
    bad = tmp_path / "bad.npz"
    n = len(raw)
    positions = sorted(set(range(0, 200)) | set(range(n - 300, n))
                       | set(range(0, n, max(1, n // 300))))
    for i in positions:
        data = bytearray(raw)
        data[i] ^= 0x20
        bad.write_bytes(bytes(data))
        with pytest.raises(ValueError, match=r"load_model: .*bad.npz") as info:
            load_model(bad)
        assert "altered or damaged" in str(info.value) or "truncated" in str(info.value), (
            i, str(info.value))


def test_foreign_files_are_refused(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello, I am not a model\n" * 10)
    plain = tmp_path / "plain.npz"
    np.savez(plain, weight=np.ones((3, 3)))
    npy = tmp_path / "array.npy"
    np.save(npy, np.arange(10))
    other_zip = tmp_path / "other.zip"
    with zipfile.ZipFile(other_zip, "w") as z:
        z.writestr("readme.txt", "a zip, but not a model")
    for path in (text, plain, npy, other_zip):
        with pytest.raises(ValueError, match=r"load_model: .* is not a pynn model file"):
            load_model(path)
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "missing.npz")


def test_object_arrays_are_never_unpickled(saved, tmp_path):
    """A file with a valid pynn checksum (anyone can compute a SHA-256) that holds an object
    array: refused before anything is unpickled."""
    _, raw = saved
    bad = tmp_path / "evil.npz"
    with np.load(saved[0], allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    ran = []

    class Payload:
        def __reduce__(self):
            return (ran.append, ("unpickled!",))

    arrays["w/dense_1.bias"] = np.array([Payload(), 1.0], dtype=object)
    with open(bad, "wb") as f:
        serialization._write(f, arrays)
    with pytest.raises(ValueError, match=r"holds Python objects.*w/dense_1.bias.*never"):
        load_model(bad)
    assert ran == []
    # a plain .npz made by numpy with an object array is refused too
    plain = tmp_path / "plain_obj.npz"
    np.savez(plain, x=np.array([Payload()], dtype=object))
    with pytest.raises(ValueError, match="not a pynn model file"):
        load_model(plain)
    assert ran == []


def test_architecture_checksum_mismatch_inside_a_valid_file(saved, tmp_path):
    """Weights swapped after saving, with the outer checksum recomputed: still refused."""
    with np.load(saved[0], allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    arrays["w/dense_1.bias"] = arrays["w/dense_1.bias"] + 1
    bad = tmp_path / "swapped.npz"
    with open(bad, "wb") as f:
        serialization._write(f, arrays)
    with pytest.raises(ValueError, match="altered or damaged"):
        load_model(bad)


# -- atomic saving ------------------------------------------------------------------------------
def _listing(folder):
    return sorted(os.listdir(folder))


def test_crash_inside_savez_leaves_old_file_intact(tmp_path, monkeypatch):
    old_model, shape = _trained(_mlp, np.float32)
    path = tmp_path / "model.npz"
    old_model.save(path)
    old_bytes = path.read_bytes()
    new_model, _ = _mlp(np.float32)
    real_savez = np.savez

    def crashing_savez(file, **arrays):
        real_savez(file, **arrays)
        if hasattr(file, "truncate"):        # keep only part of what was written, then die
            file.truncate(file.tell() // 2)
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(np, "savez", crashing_savez)
    with pytest.raises(OSError, match="simulated"):
        new_model.save(path)
    with pytest.raises(OSError, match="simulated"):
        new_model.save(tmp_path / "fresh.npz")
    monkeypatch.undo()
    assert path.read_bytes() == old_bytes
    assert _listing(tmp_path) == ["model.npz"]          # no temp file, no half-written file
    x = np.random.default_rng(4).standard_normal((5,) + shape).astype(np.float32)
    np.testing.assert_array_equal(load_model(path).predict(x), old_model.predict(x))


@pytest.mark.parametrize("where", ["write", "fsync", "replace"])
@pytest.mark.parametrize("error", [OSError, KeyboardInterrupt])
def test_crash_while_writing_the_file_leaves_old_file_intact(tmp_path, monkeypatch, where, error):
    old_model, _ = _mlp(np.float32)
    path = tmp_path / "model.npz"
    old_model.save(path)
    old_bytes = path.read_bytes()
    new_model, _ = _cnn(np.float32)

    if where == "write":
        real_write = serialization._write

        def crash(f, arrays):
            real_write(f, arrays)
            f.truncate(100)
            raise error("crash (simulated)")
        monkeypatch.setattr(serialization, "_write", crash)
    else:
        def crash(*args):
            raise error("crash (simulated)")
        monkeypatch.setattr(os, where, crash)
    with pytest.raises(error, match="simulated"):
        new_model.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == old_bytes
    assert _listing(tmp_path) == ["model.npz"]
    load_model(path)


def test_save_overwrites_and_load_is_repeatable(tmp_path):
    a, _ = _mlp(np.float32)
    b, shape = _cnn(np.float32)
    path = tmp_path / "m.npz"
    a.save(path)
    b.save(path)
    assert _listing(tmp_path) == ["m.npz"]
    x = np.random.default_rng(5).standard_normal((3,) + shape).astype(np.float32)
    np.testing.assert_array_equal(load_model(path).predict(x), b.predict(x))
    np.testing.assert_array_equal(load_model(path).predict(x), b.predict(x))
