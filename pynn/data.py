"""Mini-batch iteration over in-memory arrays."""

from __future__ import annotations

import numbers

import numpy as np

from .random import rng

__all__ = ["DataLoader"]


def _as_array(a, name):
    # a pynn Tensor (or anything tensor-like exposing an ndarray as .data)
    data = getattr(a, "data", None)
    if isinstance(data, np.ndarray) and not isinstance(a, np.ndarray):
        arr = data
    else:
        arr = np.asarray(a)
    if arr.ndim == 0:
        raise ValueError(f"DataLoader: {name} must have at least one dimension (samples first), "
                         "got a scalar")
    return arr


class DataLoader:
    """Iterate over ``(x, y)`` in mini-batches of pynn Tensors.

    ``x`` and ``y`` are NumPy arrays or Tensors with samples along the first
    axis. Each iteration (epoch) yields ``(Tensor(x_batch), Tensor(y_batch))``,
    or just ``Tensor(x_batch)`` when ``y`` is None. Dtypes are kept (float32
    stays float32, int64 labels stay int64; the Tensor constructor turns other
    float dtypes into float32).

    ``shuffle=True`` draws a new permutation for every epoch: from a generator
    seeded once with ``seed`` when one is given (two loaders with the same seed
    give the same sequence of epochs), else from pynn's generator, which
    ``pynn.manual_seed`` seeds (as torch's DataLoader follows torch.manual_seed):
    the same program after the same manual_seed shuffles the same way. The
    dataset is never copied as a whole; each batch is gathered into a fresh
    array (so a batch stays valid after the next one is produced, and writing
    to it never changes the dataset).

    ``len(loader)`` is the number of batches per epoch; with ``drop_last=True``
    a last batch smaller than ``batch_size`` is left out.
    """

    def __init__(self, x, y=None, batch_size=32, shuffle=False, drop_last=False, seed=None):
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral):
            raise TypeError(f"DataLoader: batch_size must be an integer, got {batch_size!r}")
        if batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be >= 1, got {batch_size}")
        self.x = _as_array(x, "x")
        self.y = None if y is None else _as_array(y, "y")
        if self.y is not None and len(self.y) != len(self.x):
            raise ValueError(f"DataLoader: x and y have different lengths "
                             f"({len(self.x)} and {len(self.y)} samples)")
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.seed = seed
        self._rng = None if seed is None else np.random.default_rng(seed)

    @property
    def num_samples(self) -> int:
        return len(self.x)

    def __len__(self) -> int:
        n, b = len(self.x), self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def __iter__(self):
        # The permutation is drawn here, when the epoch starts (not lazily at
        # the first next()), so epochs follow the order iter() was called in.
        order = None
        if self.shuffle:
            order = (self._rng if self._rng is not None else rng()).permutation(len(self.x))
        return self._batches(order)

    def _batches(self, order):
        from .tensor import Tensor

        n, b = len(self.x), self.batch_size
        stop = (n // b) * b if self.drop_last else n
        for start in range(0, stop, b):
            end = min(start + b, n)
            if order is None:
                xb = self.x[start:end].copy()
                yb = None if self.y is None else self.y[start:end].copy()
            else:
                idx = order[start:end]
                xb = np.take(self.x, idx, axis=0)
                yb = None if self.y is None else np.take(self.y, idx, axis=0)
            if yb is None:
                yield Tensor(xb)
            else:
                yield Tensor(xb), Tensor(yb)

    def __repr__(self):
        return (f"DataLoader(num_samples={len(self.x)}, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, drop_last={self.drop_last}, batches={len(self)})")
