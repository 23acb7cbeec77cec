"""MNIST and Fashion-MNIST from their original IDX gzip files.

Files live in ``<cache root>/mnist/`` and ``<cache root>/fashion-mnist/``
where the cache root is ``data_dir``, else ``$PYNN_DATA_DIR``, else
``~/.cache/pynn``. Missing files are downloaded from the mirrors (overridable
with ``mirrors=`` or ``$PYNN_MNIST_MIRROR`` / ``$PYNN_FASHION_MNIST_MIRROR``,
a comma or space separated list of base URLs) and every file, downloaded or
already present, is checked against its known size and sha256 (once per
process per file).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .download import DATA_DIR_ENV, ChecksumError, DownloadError, cache_root, verify_file
from .download import download as _download
from .idx import IDXError, read_idx

__all__ = ["MNIST", "FASHION_MNIST", "FileSpec", "IDXDatasetSpec",
           "fetch", "load_idx_dataset", "mnist", "fashion_mnist"]


@dataclass(frozen=True)
class FileSpec:
    filename: str
    size: int
    md5: str
    sha256: str


@dataclass(frozen=True)
class IDXDatasetSpec:
    name: str              # human readable, used in messages
    folder: str            # subfolder of the cache root
    mirror_env: str        # env var overriding the mirror list
    mirrors: tuple         # default base URLs, tried in order
    train_images: FileSpec
    train_labels: FileSpec
    test_images: FileSpec
    test_labels: FileSpec
    image_shape: tuple = (28, 28)
    num_classes: int = 10

    @property
    def files(self):
        return {"train_images": self.train_images, "train_labels": self.train_labels,
                "test_images": self.test_images, "test_labels": self.test_labels}


MNIST = IDXDatasetSpec(
    name="MNIST",
    folder="mnist",
    mirror_env="PYNN_MNIST_MIRROR",
    mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/",
             "http://yann.lecun.com/exdb/mnist/"),
    train_images=FileSpec("train-images-idx3-ubyte.gz", 9912422,
                          "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                          "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
    train_labels=FileSpec("train-labels-idx1-ubyte.gz", 28881,
                          "d53e105ee54ea40749a09fcbcd1e9432",
                          "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
    test_images=FileSpec("t10k-images-idx3-ubyte.gz", 1648877,
                         "9fb629c4189551a2d022fa330f9573f3",
                         "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
    test_labels=FileSpec("t10k-labels-idx1-ubyte.gz", 4542,
                         "ec29112dd5afa0611ce80d1b7f02629c",
                         "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
)

FASHION_MNIST = IDXDatasetSpec(
    name="Fashion-MNIST",
    folder="fashion-mnist",
    mirror_env="PYNN_FASHION_MNIST_MIRROR",
    mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    train_images=FileSpec("train-images-idx3-ubyte.gz", 26421880,
                          "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                          "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"),
    train_labels=FileSpec("train-labels-idx1-ubyte.gz", 29515,
                          "25c81989df183df01b3e8a0aad5dffbe",
                          "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"),
    test_images=FileSpec("t10k-images-idx3-ubyte.gz", 4422102,
                         "bef4ecab320f06d8554ea6380940ec79",
                         "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"),
    test_labels=FileSpec("t10k-labels-idx1-ubyte.gz", 5148,
                         "bb300cfdad3c16e7a12a480ee83cd310",
                         "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"),
)


def _resolve_mirrors(spec: IDXDatasetSpec, mirrors) -> list:
    if mirrors is None:
        env = os.environ.get(spec.mirror_env, "").strip()
        mirrors = re.split(r"[,\s]+", env) if env else list(spec.mirrors)
    elif isinstance(mirrors, (str, os.PathLike)):
        mirrors = [os.fspath(mirrors)]
    mirrors = [m for m in mirrors if m]
    if not mirrors:
        raise ValueError(f"no mirror URL given for {spec.name}")
    return mirrors


def _url(base: str, filename: str) -> str:
    return base.rstrip("/") + "/" + filename


def _instructions(spec: IDXDatasetSpec, folder: Path, missing=()) -> str:
    lines = [f"{spec.name} needs these 4 files in the folder {folder}:"]
    for fs in spec.files.values():
        state = "  [missing]" if fs.filename in missing else ""
        lines.append(f"    {fs.filename}  ({fs.size} bytes, md5 {fs.md5}){state}")
    lines.append(
        f"Download them (e.g. from {', '.join(spec.mirrors)}) and put them in that folder, or "
        f"keep them elsewhere in a '{spec.folder}/' subfolder and point pynn at its parent "
        f"with the environment variable {DATA_DIR_ENV}=/path/to/parent or data_dir=... . "
        f"Other mirrors: mirrors=[...] or the environment variable {spec.mirror_env}."
    )
    return "\n".join(lines)


def fetch(spec: IDXDatasetSpec, data_dir=None, download: bool = True, mirrors=None,
          progress: bool = True, timeout=None, deadline=None) -> dict:
    """Make sure the 4 files of ``spec`` are in the cache and verified.

    Returns ``{"train_images": Path, ...}``. Downloads missing files (and
    replaces corrupt ones) when ``download`` is true; otherwise raises
    :class:`DownloadError` / :class:`ChecksumError` with instructions.
    ``timeout`` (seconds without progress) and ``deadline`` (seconds per file) bound each
    download (None: the defaults of :func:`pynn.datasets.download.download`).
    """
    limits = {k: v for k, v in (("timeout", timeout), ("deadline", deadline)) if v is not None}
    folder = cache_root(data_dir) / spec.folder
    mirror_list = _resolve_mirrors(spec, mirrors)
    paths = {}
    missing = [fs.filename for fs in spec.files.values() if not (folder / fs.filename).is_file()]
    if missing and not download:
        raise DownloadError(
            f"{spec.name}: {len(missing)} file(s) missing and download=False.\n"
            + _instructions(spec, folder, missing))
    for key, fs in spec.files.items():
        path = folder / fs.filename
        if path.is_file():
            try:
                verify_file(path, sha256=fs.sha256, size=fs.size)
                paths[key] = path
                continue
            except ChecksumError as e:
                if not download:
                    raise ChecksumError(
                        f"{spec.name}: the cached file {path} is corrupt ({e}). Delete it "
                        "to have it downloaded again, or replace it with a good copy.\n"
                        + _instructions(spec, folder)) from e
                corrupt = e
        else:
            corrupt = None
        try:
            _download([_url(m, fs.filename) for m in mirror_list], path,
                      sha256=fs.sha256, md5=fs.md5, size=fs.size, progress=progress, **limits)
        except (DownloadError, OSError) as e:
            missing = [f.filename for f in spec.files.values()
                       if not (folder / f.filename).is_file()]
            what = (f"the cached file {path} is corrupt ({corrupt}) and could not be "
                    f"downloaded again: {e}" if corrupt else str(e))
            cls = ChecksumError if isinstance(e, ChecksumError) else DownloadError
            raise cls(f"{spec.name}: {what}\n"
                      + _instructions(spec, folder, missing)) from e
        paths[key] = path
    return paths


def _images(arr: np.ndarray, spec: IDXDatasetSpec, path, flatten: bool) -> np.ndarray:
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[1:] != spec.image_shape:
        raise IDXError(f"{path}: expected uint8 images of shape (n, "
                       f"{', '.join(map(str, spec.image_shape))}), got {arr.dtype} {arr.shape}")
    n = arr.shape[0]
    x = np.divide(arr, np.float32(255.0), dtype=np.float32)  # one pass, exact at 0 and 1
    return x.reshape(n, -1) if flatten else x.reshape(n, 1, *spec.image_shape)


def _labels(arr: np.ndarray, spec: IDXDatasetSpec, path, n: int) -> np.ndarray:
    if arr.dtype != np.uint8 or arr.ndim != 1:
        raise IDXError(f"{path}: expected uint8 labels of shape (n,), got {arr.dtype} {arr.shape}")
    if arr.shape[0] != n:
        raise IDXError(f"{path}: {arr.shape[0]} labels but {n} images")
    if arr.size and arr.max() >= spec.num_classes:
        raise IDXError(f"{path}: label {arr.max()} out of range 0..{spec.num_classes - 1}")
    return arr.astype(np.int64)


def load_idx_dataset(spec: IDXDatasetSpec, flatten: bool = False, data_dir=None,
                     download: bool = True, mirrors=None, progress: bool = True,
                     timeout=None, deadline=None):
    paths = fetch(spec, data_dir=data_dir, download=download, mirrors=mirrors,
                  progress=progress, timeout=timeout, deadline=deadline)
    out = []
    for split in ("train", "test"):
        ip, lp = paths[f"{split}_images"], paths[f"{split}_labels"]
        x = _images(read_idx(ip), spec, ip, flatten)
        y = _labels(read_idx(lp), spec, lp, x.shape[0])
        out.append((x, y))
    return tuple(out)


def mnist(flatten: bool = False, data_dir=None, download: bool = True, *, mirrors=None,
          progress: bool = True, timeout=None, deadline=None):
    """Load MNIST: ``(train_x, train_y), (test_x, test_y)``.

    Images are float32 in [0, 1] shaped ``(n, 1, 28, 28)`` (``(n, 784)`` with
    ``flatten=True``), labels int64 in 0..9; n is 60000 / 10000.

    Files are read from ``<root>/mnist/`` where ``root`` is ``data_dir``, else
    ``$PYNN_DATA_DIR``, else ``~/.cache/pynn``. Missing files are downloaded
    (unless ``download=False``) from ``mirrors`` (default: ``$PYNN_MNIST_MIRROR``,
    else the official mirrors) and checksum-verified. Each download gives up after
    ``timeout`` seconds without progress (default 30) or ``deadline`` seconds for the
    whole file (default 1800), and never takes more bytes than the file's known size.
    """
    return load_idx_dataset(MNIST, flatten=flatten, data_dir=data_dir, download=download,
                            mirrors=mirrors, progress=progress, timeout=timeout,
                            deadline=deadline)


def fashion_mnist(flatten: bool = False, data_dir=None, download: bool = True, *,
                  mirrors=None, progress: bool = True, timeout=None, deadline=None):
    """Load Fashion-MNIST, same layout and download limits as :func:`mnist` (folder
    ``fashion-mnist/``, mirror env var ``$PYNN_FASHION_MNIST_MIRROR``)."""
    return load_idx_dataset(FASHION_MNIST, flatten=flatten, data_dir=data_dir,
                            download=download, mirrors=mirrors, progress=progress,
                            timeout=timeout, deadline=deadline)
