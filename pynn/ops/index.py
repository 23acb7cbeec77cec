"""Indexing ops: masked_fill, gather, scatter, scatter_add, index_select, argsort, nonzero,
repeat_interleave (torch semantics).

Index and mask arrays are inputs of the op (so a Model can compute them from its inputs) and get
no gradient. `dim` arrives normalised to a non-negative int.
"""
import numpy as np

from .base import Op


def along(idx, dim):
    """The full NumPy index that picks, for every position of `idx`, entry idx[...] along `dim`
    and the position's own coordinate along every other dim (what torch.gather reads)."""
    index = list(np.ix_(*(np.arange(n) for n in idx.shape)))
    index[dim] = idx
    return tuple(index)


def _head(idx):
    """The block of src that scatter reads: src[:idx.shape[0], :idx.shape[1], ...] (torch lets
    src be larger than the index)."""
    return tuple(slice(0, n) for n in idx.shape)


def _check_index(name, idx, dim, x, other=None):
    if idx.dtype.kind not in "iu":
        raise TypeError(f"{name}: index must be an integer tensor, got dtype {idx.dtype}")
    if idx.ndim != x.ndim:
        raise ValueError(f"{name}: index has {idx.ndim} dims but the input has {x.ndim}")
    for d, (n, m) in enumerate(zip(idx.shape, x.shape)):
        if d != dim and n > m:
            raise ValueError(f"{name}: index shape {idx.shape} exceeds input shape {x.shape} "
                             f"in dim {d}")
        if other is not None and n > other.shape[d]:
            raise ValueError(f"{name}: index shape {idx.shape} exceeds src shape {other.shape} "
                             f"in dim {d}")


class MaskedFill(Op):
    """x with `value` where mask is true (mask broadcasts to x). attrs: value. Writes into
    reused buffers (it is on the hot path of attention masks).
    Derivative: d/dx = g where the mask is false, 0 where it is true"""

    def forward(self, x, mask):
        if np.broadcast_shapes(x.shape, mask.shape) != x.shape:
            raise ValueError(f"mask of shape {mask.shape} does not broadcast to {x.shape}")
        self.mask = mask if mask.dtype == np.bool_ else mask.astype(bool)
        out = self.buffer("out", x.shape, x.dtype)
        np.copyto(out, x)
        np.copyto(out, np.asarray(self.value, dtype=x.dtype), where=self.mask)
        return out

    def backward(self, g):
        gx = self.buffer("gx", g.shape, g.dtype)
        np.copyto(gx, g)
        np.copyto(gx, np.zeros((), dtype=g.dtype), where=self.mask)
        return gx, None


class Gather(Op):
    """torch.gather: out[i][j] = x[idx[i][j]][j] for dim 0 (and likewise for every dim).
    attrs: dim.
    Derivative: d/dx = zeros with g scatter-added at the gathered positions"""

    def forward(self, x, idx):
        _check_index("gather", idx, self.dim, x)
        self.in_shape, self.idx = x.shape, idx
        return x[along(idx, self.dim)]

    def backward(self, g):
        gx = np.zeros(self.in_shape, dtype=g.dtype)
        np.add.at(gx, along(self.idx, self.dim), g)
        return gx, None


class Scatter(Op):
    """torch.Tensor.scatter: a copy of x with out[idx[i][j]][j] = src[i][j] (dim 0), src a
    tensor (third input) or the number `value`. attrs: dim, value.
    Derivative: d/dx = g with the written positions zeroed, d/dsrc = g gathered at idx"""

    def forward(self, x, idx, src=None):
        _check_index("scatter", idx, self.dim, x, src)
        self.idx, self.src_shape = idx, None if src is None else src.shape
        out = x.copy()
        where = along(idx, self.dim)
        if src is None:
            out[where] = self.value
        else:
            out[where] = src[_head(idx)]
        return out

    def backward(self, g):
        where = along(self.idx, self.dim)
        gx = g.copy()
        gx[where] = 0
        if self.src_shape is None:
            return gx, None
        gsrc = None
        if self.needs(2):
            gsrc = np.zeros(self.src_shape, dtype=g.dtype)
            gsrc[_head(self.idx)] = g[where]
        return gx, None, gsrc


class ScatterAdd(Op):
    """torch.Tensor.scatter_add: a copy of x with out[idx[i][j]][j] += src[i][j] (dim 0);
    repeated indices add up. attrs: dim.
    Derivative: d/dx = g, d/dsrc = g gathered at idx"""

    def forward(self, x, idx, src):
        _check_index("scatter_add", idx, self.dim, x, src)
        self.idx, self.src_shape = idx, src.shape
        out = x.copy()
        np.add.at(out, along(idx, self.dim), src[_head(idx)])
        return out

    def backward(self, g):
        gsrc = None
        if self.needs(2):
            gsrc = np.zeros(self.src_shape, dtype=g.dtype)
            gsrc[_head(self.idx)] = g[along(self.idx, self.dim)]
        return g, None, gsrc


class IndexSelect(Op):
    """torch.index_select: the entries idx (a 1-d integer array) along dim. attrs: dim.
    Derivative: d/dx = zeros with g scatter-added back at idx along dim"""

    def forward(self, x, idx):
        if idx.ndim != 1 or idx.dtype.kind not in "iu":
            raise ValueError(f"index_select: index must be a 1-d integer tensor, got shape "
                             f"{idx.shape} of dtype {idx.dtype}")
        self.in_shape, self.idx = x.shape, idx
        return np.take(x, idx, axis=self.dim)

    def backward(self, g):
        gx = np.zeros(self.in_shape, dtype=g.dtype)
        np.add.at(np.moveaxis(gx, self.dim, 0), self.idx, np.moveaxis(g, self.dim, 0))
        return gx, None


class ArgSort(Op):
    """Indices that sort x along dim (int64), a stable sort; with `k`, only the first k of them
    (the indices of topk). attrs: dim, descending, stable, k (None: all).
    Derivative: none (not differentiable)."""
    differentiable = False

    def __init__(self, dim, descending=False, stable=True, k=None):
        super().__init__(dim=dim, descending=descending, stable=stable, k=k)

    def forward(self, x):
        if self.descending:
            # a stable descending sort: reverse, sort ascending stably, map indices back
            n = x.shape[self.dim]
            rev = np.flip(x, self.dim)
            idx = np.flip(n - 1 - np.argsort(rev, axis=self.dim, kind="stable"), self.dim)
        else:
            idx = np.argsort(x, axis=self.dim, kind="stable")
        if self.k is not None:
            idx = idx[(slice(None),) * self.dim + (slice(0, self.k),)]
        return idx.astype(np.int64)


class Nonzero(Op):
    """Coordinates of the nonzero entries, shape (count, ndim), int64 (torch.nonzero).
    The output's size depends on the values, so it is eager only.
    Derivative: none (not differentiable)."""
    differentiable = False

    def forward(self, x):
        return np.argwhere(x).astype(np.int64)


class RepeatInterleave(Op):
    """torch.repeat_interleave: each entry along dim repeated `repeats` times (an int, or one
    count per entry). attrs: repeats, dim.
    Derivative: d/dx_i = sum of g over the copies of x_i"""

    def forward(self, x):
        self.in_shape = x.shape
        return np.repeat(x, self.repeats, axis=self.dim)

    def backward(self, g):
        dim, n = self.dim, self.in_shape[self.dim]
        reps = np.broadcast_to(np.asarray(self.repeats), (n,))
        if np.all(reps == reps[0]) and reps[0] > 0:
            shape = g.shape[:dim] + (n, int(reps[0])) + g.shape[dim + 1:]
            return (g.reshape(shape).sum(axis=dim + 1),)
        gx = np.zeros(self.in_shape, dtype=g.dtype)
        owner = np.repeat(np.arange(n), reps)       # which input entry each output entry copies
        np.add.at(np.moveaxis(gx, dim, 0), owner, np.moveaxis(g, dim, 0))
        return (gx,)
