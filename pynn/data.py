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


def _check_shard(shard, shuffle, seed):
    if shard is None:
        return None
    try:
        rank, world = shard
    except (TypeError, ValueError):
        raise TypeError(f"DataLoader: shard must be a pair (rank, world_size), got "
                        f"{shard!r}") from None
    if not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in shard):
        raise TypeError(f"DataLoader: shard must hold two integers (rank, world_size), got "
                        f"{shard!r}")
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"DataLoader: shard=(rank, world_size) needs world_size >= 1 and "
                         f"0 <= rank < world_size, got {shard!r}")
    if shuffle and seed is None and world > 1:
        raise ValueError("DataLoader: shuffle=True with a shard needs a seed (the same on every "
                         "rank), so that all ranks draw the same permutation; got seed=None")
    return int(rank), int(world)


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

    ``shard=(rank, world)`` (data-parallel training, e.g. ``shard=pynn.distributed.shard()``):
    every rank draws the same permutation (so ``shuffle=True`` needs the same ``seed`` on every
    rank) and takes every world-th sample of it starting at ``rank``, so the ranks' batches
    number ``i`` together are the batch ``i`` of one loader with ``batch_size * world``. When
    ``world`` does not divide the number of samples, the permutation is padded with its own first
    samples up to a multiple of ``world`` (a few samples are seen twice per epoch), or cut down to
    one with ``drop_last=True``; either way every rank gets the same number of batches, as it must
    (a rank with fewer steps would leave the others waiting in their gradient all-reduce).
    """

    def __init__(self, x, y=None, batch_size=32, shuffle=False, drop_last=False, seed=None,
                 shard=None):
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
        self.shard = _check_shard(shard, self.shuffle, seed)

    @property
    def num_samples(self) -> int:
        return len(self.x)

    def _local_samples(self) -> int:
        """Samples per epoch on this rank: all of them without a shard."""
        n = len(self.x)
        if self.shard is None:
            return n
        world = self.shard[1]
        return n // world if self.drop_last else -(-n // world)

    def __len__(self) -> int:
        n, b = self._local_samples(), self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def __iter__(self):
        # The permutation is drawn here, when the epoch starts (not lazily at
        # the first next()), so epochs follow the order iter() was called in.
        order = None
        if self.shuffle:
            order = (self._rng if self._rng is not None else rng()).permutation(len(self.x))
        if self.shard is not None:
            order = self._shard_order(order)
        return self._batches(order)

    def _shard_order(self, order):
        """This rank's samples: every world-th one of the (padded or cut) epoch order."""
        rank, world = self.shard
        n = len(self.x)
        if order is None:
            order = np.arange(n)
        # cut to a multiple of world, or pad by repeating the order from its start
        order = np.resize(order, world * self._local_samples())
        return order[rank::world]

    def _batches(self, order):
        from .tensor import Tensor

        n = len(self.x) if order is None else len(order)
        b = self.batch_size
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
                f"shuffle={self.shuffle}, drop_last={self.drop_last}, batches={len(self)}"
                + ("" if self.shard is None else f", shard={self.shard}") + ")")
