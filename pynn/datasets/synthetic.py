"""Small synthetic 2-D classification datasets (NumPy only).

All functions return ``(X, y)`` with ``X`` float32 of shape
``(n_samples, n_features)`` and ``y`` int64 class labels. They are
deterministic for a given ``seed`` (``np.random.default_rng(seed)``; an
``np.random.Generator`` is accepted too). Like scikit-learn, samples are
shuffled unless ``shuffle=False`` (then they come grouped by class).
The constructions follow scikit-learn's ``make_moons`` / ``make_circles`` /
``make_blobs`` and the CS231n spiral, but the random streams differ, so the
numbers are not identical to scikit-learn's for the same seed.
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["make_moons", "make_circles", "make_blobs", "make_spiral"]


def _check_n(n_samples):
    if not isinstance(n_samples, numbers.Integral) or n_samples < 1:
        raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}")
    return int(n_samples)


def _check_noise(noise):
    if noise is not None and noise < 0:
        raise ValueError(f"noise must be >= 0 or None, got {noise!r}")


def _split_counts(n: int, k: int) -> np.ndarray:
    """n samples over k groups as evenly as possible, the first n % k get one more."""
    counts = np.full(k, n // k, dtype=np.int64)
    counts[: n % k] += 1
    return counts


def _finish(X, y, rng, shuffle):
    if shuffle:
        perm = rng.permutation(len(y))
        X, y = X[perm], y[perm]
    return np.ascontiguousarray(X, dtype=np.float32), np.ascontiguousarray(y, dtype=np.int64)


def make_moons(n_samples=100, noise=None, seed=None, shuffle=True):
    """Two interleaving half circles (scikit-learn's construction).

    Class 0 is the upper half circle of radius 1 centred at (0, 0); class 1 the
    lower half circle centred at (1, 0.5). ``noise`` is the std of Gaussian
    noise added to every coordinate.
    """
    n = _check_n(n_samples)
    _check_noise(noise)
    rng = np.random.default_rng(seed)
    n_out = n // 2
    n_in = n - n_out
    t_out = np.linspace(0, np.pi, n_out)
    t_in = np.linspace(0, np.pi, n_in)
    X = np.empty((n, 2), dtype=np.float64)
    X[:n_out, 0] = np.cos(t_out)
    X[:n_out, 1] = np.sin(t_out)
    X[n_out:, 0] = 1 - np.cos(t_in)
    X[n_out:, 1] = 1 - np.sin(t_in) - 0.5
    y = np.concatenate([np.zeros(n_out, np.int64), np.ones(n_in, np.int64)])
    if shuffle:
        perm = rng.permutation(n)
        X, y = X[perm], y[perm]
    if noise is not None:
        X += rng.normal(scale=noise, size=X.shape)
    return _finish(X, y, rng, shuffle=False)


def make_circles(n_samples=100, noise=None, factor=0.8, seed=None, shuffle=True):
    """A large circle (class 0, radius 1) containing a smaller one (class 1,
    radius ``factor``), scikit-learn's construction."""
    n = _check_n(n_samples)
    _check_noise(noise)
    if not 0 <= factor < 1:
        raise ValueError(f"factor must be in [0, 1), got {factor!r}")
    rng = np.random.default_rng(seed)
    n_out = n // 2
    n_in = n - n_out
    t_out = np.linspace(0, 2 * np.pi, n_out, endpoint=False)
    t_in = np.linspace(0, 2 * np.pi, n_in, endpoint=False)
    X = np.empty((n, 2), dtype=np.float64)
    X[:n_out, 0] = np.cos(t_out)
    X[:n_out, 1] = np.sin(t_out)
    X[n_out:, 0] = factor * np.cos(t_in)
    X[n_out:, 1] = factor * np.sin(t_in)
    y = np.concatenate([np.zeros(n_out, np.int64), np.ones(n_in, np.int64)])
    if shuffle:
        perm = rng.permutation(n)
        X, y = X[perm], y[perm]
    if noise is not None:
        X += rng.normal(scale=noise, size=X.shape)
    return _finish(X, y, rng, shuffle=False)


def make_blobs(n_samples=100, centers=3, n_features=2, cluster_std=1.0, seed=None,
               shuffle=True, center_box=(-10.0, 10.0)):
    """Isotropic Gaussian blobs.

    ``centers`` is a number of clusters (centres drawn uniformly in
    ``center_box``) or an array of shape ``(k, n_features)``; ``cluster_std``
    a float or one std per cluster. Samples are split over the clusters as
    evenly as possible.
    """
    n = _check_n(n_samples)
    rng = np.random.default_rng(seed)
    if isinstance(centers, numbers.Integral):
        if centers < 1:
            raise ValueError(f"centers must be >= 1, got {centers!r}")
        if n_features < 1:
            raise ValueError(f"n_features must be >= 1, got {n_features!r}")
        centers = rng.uniform(center_box[0], center_box[1], size=(int(centers), int(n_features)))
    else:
        centers = np.asarray(centers, dtype=np.float64)
        if centers.ndim != 2:
            raise ValueError(f"centers must be an int or a (k, n_features) array, got shape "
                             f"{centers.shape}")
    k, d = centers.shape
    std = np.broadcast_to(np.asarray(cluster_std, dtype=np.float64), (k,))
    if np.any(std < 0):
        raise ValueError("cluster_std must be >= 0")
    counts = _split_counts(n, k)
    X = np.concatenate([rng.normal(loc=centers[i], scale=std[i], size=(counts[i], d))
                        for i in range(k)])
    y = np.repeat(np.arange(k, dtype=np.int64), counts)
    return _finish(X, y, rng, shuffle)


def make_spiral(n_samples=100, n_classes=3, noise=0.2, seed=None, shuffle=True):
    """The CS231n spiral: ``n_classes`` interleaved arms in 2-D.

    Arm j has radius r from 0 to 1 and angle from 4j to 4(j+1) radians plus
    Gaussian noise of std ``noise`` on the angle; the point is
    ``(r sin t, r cos t)``. ``n_samples`` is the total over all classes.
    """
    n = _check_n(n_samples)
    _check_noise(noise)
    if not isinstance(n_classes, numbers.Integral) or n_classes < 1:
        raise ValueError(f"n_classes must be a positive integer, got {n_classes!r}")
    rng = np.random.default_rng(seed)
    counts = _split_counts(n, int(n_classes))
    Xs = []
    for j, m in enumerate(counts):
        r = np.linspace(0.0, 1.0, m)
        t = np.linspace(j * 4.0, (j + 1) * 4.0, m)
        if noise:
            t = t + rng.normal(scale=noise, size=m)
        Xs.append(np.stack([r * np.sin(t), r * np.cos(t)], axis=1))
    X = np.concatenate(Xs)
    y = np.repeat(np.arange(int(n_classes), dtype=np.int64), counts)
    return _finish(X, y, rng, shuffle)
