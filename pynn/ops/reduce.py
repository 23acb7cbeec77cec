"""Reductions over `dim` (None, an int, or a tuple) with `keepdim`, and softmax-style ops.

The executor passes `dim` already normalised to a sorted tuple of non-negative axes (or None).
"""
import warnings

import numpy as np

from .base import Op


def _keep(g, dim, keepdim, ndim):
    """Re-insert the reduced axes into a gradient so it broadcasts against the input."""
    if keepdim or dim is None and np.ndim(g) == ndim:
        return g
    if dim is None:
        return np.reshape(g, (1,) * ndim)
    return np.expand_dims(g, dim)


class Sum(Op):
    """attrs: dim, keepdim"""

    def forward(self, x):
        self.shape = x.shape
        # np.add.reduce is what np.sum runs, without its Python-level dispatch (~2 us an op)
        return np.add.reduce(x, axis=self.dim, keepdims=self.keepdim)

    def backward(self, g):
        return (np.broadcast_to(_keep(g, self.dim, self.keepdim, len(self.shape)), self.shape),)


class Mean(Op):
    def forward(self, x):
        self.shape = x.shape
        total = np.add.reduce(x, axis=self.dim, keepdims=self.keepdim)   # what np.mean runs
        n = x.size // max(np.size(total), 1)
        self.count = max(n, 1)
        return np.true_divide(total, n)        # an empty reduction gives NaN, as np.mean does

    def backward(self, g):
        g = _keep(g, self.dim, self.keepdim, len(self.shape)) / self.count
        return (np.broadcast_to(g, self.shape),)


class _Extreme(Op):
    """max/min over dim; the gradient is shared evenly between tied extremes."""
    reduce = None

    def forward(self, x):
        self.x = x
        self.out = self.reduce(x, axis=self.dim, keepdims=True)
        return self.out if self.keepdim else np.squeeze(self.out, axis=self.dim)

    def backward(self, g):
        g = _keep(g, self.dim, self.keepdim, self.x.ndim)
        mask = (self.x == self.out)
        count = mask.sum(axis=self.dim, keepdims=True).astype(g.dtype)   # int would upcast g
        return (g * mask / count,)


class Max(_Extreme):
    reduce = staticmethod(np.max)


class Min(_Extreme):
    reduce = staticmethod(np.min)


class ArgReduce(Op):
    """argmax / argmin over one dim (or the flattened tensor): int64, no gradient.
    attrs: fn ("argmax" or "argmin"), dim (an int or None), keepdim."""
    differentiable = False

    def forward(self, x):
        fn = getattr(np, self.fn)
        if self.dim is None:
            return np.asarray(fn(x), dtype=np.int64)
        return fn(x, axis=self.dim, keepdims=self.keepdim).astype(np.int64)


class Var(Op):
    """attrs: dim, keepdim, correction (1 = unbiased, as torch.var's default)"""

    def forward(self, x):
        self.x = x
        self.mu = np.mean(x, axis=self.dim, keepdims=True)
        n = x.size // self.mu.size if self.mu.size else 0
        self.denom = max(n - self.correction, 0)
        if self.denom == 0 and x.size:
            warnings.warn(f"var/std: {n} element(s) per reduction and correction={self.correction}"
                          f" leave no degrees of freedom; the result is NaN (or inf)", stacklevel=4)
        out = np.sum((x - self.mu) ** 2, axis=self.dim, keepdims=self.keepdim)
        with np.errstate(divide="ignore", invalid="ignore"):
            return (out / self.denom).astype(x.dtype, copy=False)

    def backward(self, g):
        g = _keep(g, self.dim, self.keepdim, self.x.ndim)
        with np.errstate(divide="ignore", invalid="ignore"):   # denom 0: NaN, as in PyTorch
            return (g * 2 * (self.x - self.mu) / self.denom,)


class Std(Var):
    """The square root of Var (same attrs). Where the result is 0 (a constant slice) the
    gradient is 0, as in PyTorch, not 0 / 0.

    Derivative: d/dx = g * (x - mean) / (denom * std), 0 where std == 0"""

    def forward(self, x):
        self.out = np.sqrt(super().forward(x))
        return self.out

    def backward(self, g):
        with np.errstate(divide="ignore", invalid="ignore"):
            g = np.where(self.out == 0, 0, g / (2 * self.out)).astype(g.dtype, copy=False)
        return super().backward(g)


class LogSumExp(Op):
    """log(sum(exp(x))) over dim, shifted by the max so it never overflows."""

    def forward(self, x):
        self.x = x
        m = np.max(x, axis=self.dim, keepdims=True)
        m = np.where(np.isfinite(m), m, 0)
        self.out = np.log(np.sum(np.exp(x - m), axis=self.dim, keepdims=True)) + m
        return self.out if self.keepdim else np.squeeze(self.out, axis=self.dim)

    def backward(self, g):
        g = _keep(g, self.dim, self.keepdim, self.x.ndim)
        return (g * np.exp(self.x - self.out),)


class Softmax(Op):
    """attrs: dim (an int). exp(x - max) / sum: no overflow at logits of +-1000."""

    def forward(self, x):
        e = np.exp(x - np.max(x, axis=self.dim, keepdims=True))
        self.out = e / np.sum(e, axis=self.dim, keepdims=True)
        return self.out

    def backward(self, g):
        y = self.out
        return (y * (g - np.sum(g * y, axis=self.dim, keepdims=True)),)

    def softmax_logits(self, node):
        x = node.inputs[0]
        return x if self.dim == 1 and x.ndim == 2 else None


class LogSoftmax(Op):
    def forward(self, x):
        shifted = x - np.max(x, axis=self.dim, keepdims=True)
        self.out = shifted - np.log(np.sum(np.exp(shifted), axis=self.dim, keepdims=True))
        return self.out

    def backward(self, g):
        return (g - np.exp(self.out) * np.sum(g, axis=self.dim, keepdims=True),)
