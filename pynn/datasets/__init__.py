"""Datasets for pynn.

* :func:`mnist`, :func:`fashion_mnist` -- the original IDX files, cached in
  ``data_dir`` / ``$PYNN_DATA_DIR`` / ``~/.cache/pynn``, downloaded and
  checksum-verified when missing.
* :func:`load` -- any tensorflow-datasets image classification dataset
  (optional dependency ``pip install pynn[tfds]``).
* :func:`make_moons`, :func:`make_circles`, :func:`make_blobs`,
  :func:`make_spiral` -- small synthetic datasets, NumPy only.

Image datasets return ``(train_x, train_y), (test_x, test_y)`` NumPy arrays:
images float32 in [0, 1] shaped ``(n, C, H, W)`` (or ``(n, C*H*W)`` with
``flatten=True``), labels int64.
"""

from .download import DATA_DIR_ENV, ChecksumError, DownloadError, cache_root
from .idx import IDXError, parse_idx, read_idx
from .mnist import FASHION_MNIST, MNIST, fashion_mnist, mnist
from .synthetic import make_blobs, make_circles, make_moons, make_spiral
from .tfds import load

__all__ = [
    "mnist",
    "fashion_mnist",
    "load",
    "make_moons",
    "make_circles",
    "make_blobs",
    "make_spiral",
    "cache_root",
    "read_idx",
    "parse_idx",
    "DATA_DIR_ENV",
    "DownloadError",
    "ChecksumError",
    "IDXError",
    "MNIST",
    "FASHION_MNIST",
]
