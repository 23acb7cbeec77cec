"""Bridge to tensorflow-datasets (optional dependency: ``pip install pynn[tfds]``).

``tensorflow_datasets`` is imported only inside :func:`load`. Two code paths:

* TensorFlow installed: ``tfds.load(name, split, as_supervised=True,
  batch_size=-1)`` + ``tfds.as_numpy`` (whole split in one go, fast);
* no TensorFlow (tfds itself does not require it): ``tfds.data_source``
  (ArrayRecord, random access), read record by record into one array.

Either way the result has pynn's layout: float32 images NCHW in [0, 1]
(or ``(n, C*H*W)`` with ``flatten=True``) and int64 labels.
"""

from __future__ import annotations

import importlib.util

import numpy as np

__all__ = ["load", "to_pynn_layout"]

_INSTALL_HINT = (
    "pynn.datasets.load(..., source='tfds') needs the optional package "
    "tensorflow-datasets: pip install 'pynn[tfds]' (or pip install tensorflow-datasets). "
    "TensorFlow itself is optional; without it pynn reads the data with "
    "tfds.data_source. MNIST and Fashion-MNIST need no extra package: "
    "pynn.datasets.mnist() / fashion_mnist()."
)


def _import_tfds():
    try:
        import tensorflow_datasets as tfds
    except ImportError as e:
        raise ImportError(_INSTALL_HINT) from e
    return tfds


def _have_tensorflow() -> bool:
    try:
        return importlib.util.find_spec("tensorflow") is not None
    except (ImportError, ValueError):
        return False


def to_pynn_layout(images, labels, flatten: bool = False):
    """Convert NHWC (or NHW) images and labels to pynn's layout.

    uint8 images are scaled to [0, 1]; float images are kept as they are
    (cast to float32). Returns ``(x float32 NCHW or (n, -1), y int64)``.
    """
    images = np.asarray(images)
    labels = np.asarray(labels)
    if images.ndim == 3:                     # (n, H, W) grayscale
        images = images[..., None]
    if images.ndim != 4:
        raise ValueError(f"expected images of shape (n, H, W, C) or (n, H, W), got {images.shape}")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise ValueError(f"expected labels of shape ({images.shape[0]},), got {labels.shape}")
    if images.dtype == np.uint8:
        x = np.divide(images, np.float32(255.0), dtype=np.float32)
    elif images.dtype == np.bool_ or np.issubdtype(images.dtype, np.floating):
        x = images.astype(np.float32)
    else:
        raise TypeError(f"unsupported image dtype {images.dtype} (expected uint8 or float)")
    x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    if flatten:
        x = x.reshape(x.shape[0], -1)
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"expected integer labels, got {labels.dtype}")
    return x, labels.astype(np.int64)


def _supervised_keys(info, name):
    keys = getattr(info, "supervised_keys", None)
    if (not isinstance(keys, (tuple, list)) or len(keys) != 2
            or not all(isinstance(k, str) for k in keys)):
        raise ValueError(
            f"tfds dataset {name!r} has no (image, label) supervised keys "
            f"(supervised_keys={keys!r}); pynn.datasets.load supports image "
            "classification datasets such as mnist, cifar10, kmnist, emnist.")
    return keys


def _split_with_tensorflow(tfds, name, split, data_dir):
    ds = tfds.load(name, split=split, data_dir=data_dir, as_supervised=True, batch_size=-1)
    images, labels = tfds.as_numpy(ds)
    return images, labels


def _split_with_data_source(tfds, name, split, data_dir):
    src = tfds.data_source(name, split=split, data_dir=data_dir)
    image_key, label_key = _supervised_keys(getattr(src, "dataset_info", None), name)
    n = len(src)
    if n == 0:
        raise ValueError(f"tfds dataset {name!r} split {split!r} is empty")
    first = src[0]
    img0 = np.asarray(first[image_key])
    images = np.empty((n,) + img0.shape, dtype=img0.dtype)
    labels = np.empty(n, dtype=np.int64)
    from tqdm import tqdm
    for i in tqdm(range(n), desc=f"{name}[{split}]", unit="ex", leave=False,
                  disable=n < 20000):
        ex = first if i == 0 else src[i]
        images[i] = ex[image_key]
        labels[i] = ex[label_key]
    return images, labels


def load(name, split=("train", "test"), source="tfds", data_dir=None, flatten=False):
    """Load an image classification dataset through tensorflow-datasets.

    ``split`` is a tuple of split names (default ``("train", "test")``, giving
    ``(train_x, train_y), (test_x, test_y)``) or a single split name / tfds
    split spec such as ``"train[:10%]"`` (giving one ``(x, y)`` pair).
    Images are float32 NCHW in [0, 1] (``(n, C*H*W)`` with ``flatten=True``),
    labels int64. ``data_dir`` is passed to tfds (``None``: tfds's default,
    ``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``); data is downloaded by
    tfds when missing.

    ``source="pynn"`` serves ``"mnist"`` and ``"fashion_mnist"`` from pynn's
    own IDX loaders instead (no extra package; ``data_dir`` as in
    :func:`pynn.datasets.mnist`).
    """
    single = isinstance(split, str)
    splits = [split] if single else list(split)
    if source == "pynn":
        out = _load_pynn(name, splits, data_dir, flatten)
    elif source == "tfds":
        tfds = _import_tfds()
        reader = _split_with_tensorflow if _have_tensorflow() else _split_with_data_source
        out = [to_pynn_layout(*reader(tfds, name, s, data_dir), flatten=flatten) for s in splits]
    else:
        raise ValueError(f"unknown source {source!r}: expected 'tfds' or 'pynn'")
    return out[0] if single else tuple(out)


def _load_pynn(name, splits, data_dir, flatten):
    from .mnist import fashion_mnist, mnist
    loaders = {"mnist": mnist, "fashion_mnist": fashion_mnist, "fashion-mnist": fashion_mnist}
    if name not in loaders:
        raise ValueError(f"source='pynn' provides {sorted(loaders)}, not {name!r}; "
                         "use source='tfds' for other datasets")
    train, test = loaders[name](flatten=flatten, data_dir=data_dir)
    by_split = {"train": train, "test": test}
    bad = [s for s in splits if s not in by_split]
    if bad:
        raise ValueError(f"source='pynn' provides the splits 'train' and 'test', not {bad}")
    return [by_split[s] for s in splits]
