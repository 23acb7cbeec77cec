"""Reductions over `dim` (None, an int, or a tuple) with `keepdim`, and softmax-style ops.

The executor passes `dim` already normalised to a sorted tuple of non-negative axes (or None).
"""
import warnings

import numpy as np

from ..kernels.softmax import (
    log_softmax_backward_rows,
    log_softmax_finish_rows,
    softmax_backward_rows,
    softmax_rows,
    softmax_shift_rows,
)
from .base import Op


def _keep(g, dim, keepdim, ndim):
    """Re-insert the reduced axes into a gradient so it broadcasts against the input."""
    if keepdim or dim is None and np.ndim(g) == ndim:
        return g
    if dim is None:
        return np.reshape(g, (1,) * ndim)
    return np.expand_dims(g, dim)


class Sum(Op):
    """attrs: dim, keepdim.
    Derivative: d/dx = g broadcast back over the reduced dims"""

    def forward(self, x):
        self.shape = x.shape
        # np.add.reduce(x, axis, dtype, out, keepdims) is what np.sum runs, without its
        # Python-level dispatch (~2 us an op); positional arguments are faster than keywords
        return np.add.reduce(x, self.dim, None, None, self.keepdim)

    def backward(self, g):
        gx = self.buffer("gx", self.shape, g.dtype)     # contiguous, as the next ops want it
        _broadcast_into(gx, g, self.dim, self.keepdim)
        return (gx,)


class Mean(Op):
    """
    Derivative: d/dx = g / count broadcast back over the reduced dims"""

    def forward(self, x):
        self.shape = x.shape
        total = np.add.reduce(x, self.dim, None, None, self.keepdim)    # what np.mean runs
        n = x.size // max(np.size(total), 1)
        self.count = max(n, 1)
        return np.true_divide(total, n)        # an empty reduction gives NaN, as np.mean does

    def backward(self, g):
        gx = self.buffer("gx", self.shape, g.dtype)     # contiguous, as the next ops want it
        _broadcast_into(gx, g / self.count, self.dim, self.keepdim)
        return (gx,)


def _broadcast_into(gx, g, dim, keepdim):
    """gx[...] = the reduction's gradient g broadcast back over the reduced dims."""
    if dim is None:             # g holds one value (0-d, or all ones with keepdim)
        gx[...] = g
    else:
        np.copyto(gx, _keep(g, dim, keepdim, gx.ndim))


class _Extreme(Op):
    """max/min over dim; the gradient is shared evenly between tied extremes.
    Derivative: d/dx = g shared evenly among the entries equal to the extreme"""
    reduce = None

    def forward(self, x):
        self.x = x
        self.out = self.reduce(x, axis=self.dim, keepdims=True)
        return self.out if self.keepdim else np.squeeze(self.out, axis=self.dim)

    def backward(self, g):
        g = _keep(g, self.dim, self.keepdim, self.x.ndim)
        mask = np.equal(self.x, self.out, out=self.buffer("mask", self.x.shape, np.bool_))
        count = mask.sum(axis=self.dim, keepdims=True).astype(g.dtype)   # int would upcast g
        if g.dtype.kind != "f":
            return (g * mask / count,)
        gx = np.multiply(g, mask, out=self.buffer("gx", self.x.shape, g.dtype))
        gx /= count
        return (gx,)


class Max(_Extreme):
    """
    Derivative: d/dx = g shared evenly among the entries equal to the max"""

    reduce = staticmethod(np.max)


class Min(_Extreme):
    """
    Derivative: d/dx = g shared evenly among the entries equal to the min"""

    reduce = staticmethod(np.min)


class ArgReduce(Op):
    """argmax / argmin over one dim (or the flattened tensor): int64, no gradient.
    attrs: fn ("argmax" or "argmin"), dim (an int or None), keepdim.
    Derivative: none (not differentiable)
    """
    differentiable = False

    def forward(self, x):
        fn = getattr(np, self.fn)
        if self.dim is None:
            return np.asarray(fn(x), dtype=np.int64)
        return fn(x, axis=self.dim, keepdims=self.keepdim).astype(np.int64)


class Var(Op):
    """attrs: dim, keepdim, correction (1 = unbiased, as torch.var's default).
    Derivative: d/dx = g * 2 (x - mean) / (n - correction)"""

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
    """log(sum(exp(x))) over dim, shifted by the max so it never overflows.
    Derivative: d/dx = g * exp(x - y) (g times softmax(x))"""

    def forward(self, x):
        self.x = x
        m = np.max(x, axis=self.dim, keepdims=True)
        m = np.where(np.isfinite(m), m, 0)
        self.out = np.log(np.sum(np.exp(x - m), axis=self.dim, keepdims=True)) + m
        return self.out if self.keepdim else np.squeeze(self.out, axis=self.dim)

    def backward(self, g):
        g = _keep(g, self.dim, self.keepdim, self.x.ndim)
        return (g * np.exp(self.x - self.out),)


def _last_axis_rows(x, dim):
    """Does a softmax over `dim` of x go to the row kernels (a float array, its last axis,
    non-empty rows)? Other cases take the NumPy expressions."""
    return x.dtype.kind == "f" and x.ndim > 0 and dim % x.ndim == x.ndim - 1 and x.size > 0


class Softmax(Op):
    """attrs: dim (an int). exp(x - max) / sum: no overflow at logits of +-1000. Over the last
    axis of a float array: row kernels around NumPy's exp (pynn.kernels.softmax), into
    reused buffers.
    Derivative: d/dx = y * (g - sum(g * y)) over dim"""

    def forward(self, x):
        if _last_axis_rows(x, self.dim):
            y = self.buffer("y", x.shape, x.dtype)
            np.copyto(y, x)
            self.out = softmax_rows(y)
            return y
        e = np.exp(x - np.max(x, axis=self.dim, keepdims=True))
        self.out = e / np.sum(e, axis=self.dim, keepdims=True)
        return self.out

    def backward(self, g):
        y = self.out
        if _last_axis_rows(y, self.dim) and g.dtype == y.dtype:
            gx = self.buffer("gx", y.shape, y.dtype)
            np.copyto(gx, g)
            softmax_backward_rows(gx.reshape(-1, y.shape[-1]), y.reshape(-1, y.shape[-1]))
            return (gx,)
        return (y * (g - np.sum(g * y, axis=self.dim, keepdims=True)),)

    def softmax_logits(self, node):
        x = node.inputs[0]
        return x if self.dim == 1 and x.ndim == 2 else None


class LogSoftmax(Op):
    """Over the last axis of a float array: row kernels around NumPy's exp
    (pynn.kernels.softmax), into reused buffers.
    Derivative: d/dx = g - softmax(x) * sum(g) over dim"""

    def forward(self, x):
        if _last_axis_rows(x, self.dim):
            y = self.buffer("y", x.shape, x.dtype)
            np.copyto(y, x)
            y2 = y.reshape(-1, x.shape[-1])
            softmax_shift_rows(y2, 1, False)
            e = np.exp(y, out=self.buffer("e", x.shape, x.dtype))
            log_softmax_finish_rows(y2, e.reshape(y2.shape))
            self.out = y
            return y
        # the ufuncs' own reduce: np.max / np.sum add a Python-level dispatch
        shifted = x - np.maximum.reduce(x, axis=self.dim, keepdims=True)
        total = np.add.reduce(np.exp(shifted), axis=self.dim, keepdims=True)
        self.out = np.subtract(shifted, np.log(total, out=total), out=shifted)
        return self.out

    def backward(self, g):
        y = self.out
        if _last_axis_rows(y, self.dim) and g.dtype == y.dtype:
            S = y.shape[-1]
            p = np.exp(y, out=self.buffer("p", y.shape, y.dtype))
            gx = self.buffer("gx", y.shape, y.dtype)
            g2 = self.contiguous("g_c", g).reshape(-1, S)
            log_softmax_backward_rows(g2, p.reshape(-1, S), gx.reshape(-1, S))
            return (gx,)
        return (g - np.exp(self.out) * np.add.reduce(g, axis=self.dim, keepdims=True),)


def _exclusive_products(x, axis):
    """prod of every entry but the one at i, along axis, without dividing (exact with zeros)."""
    ones = np.ones_like(np.take(x, [0], axis=axis))
    left = np.cumprod(np.concatenate([ones, np.delete(x, -1, axis=axis)], axis=axis), axis=axis)
    flipped = np.flip(x, axis)
    right = np.cumprod(np.concatenate([ones, np.delete(flipped, -1, axis=axis)], axis=axis),
                       axis=axis)
    return left * np.flip(right, axis)


class Prod(Op):
    """Product over one dim (an int) or all elements (None). attrs: dim, keepdim.
    Derivative: d/dx_i = g * prod_{j != i} x_j (computed without division, so zeros are exact)"""

    def forward(self, x):
        self.x = x
        dtype = np.int64 if x.dtype.kind in "biu" else x.dtype
        return np.prod(x, axis=self.dim, keepdims=self.keepdim, dtype=dtype)

    def backward(self, g):
        x = self.x
        if self.dim is None:
            others = _exclusive_products(x.reshape(-1), 0).reshape(x.shape)
        else:
            others = _exclusive_products(x, self.dim)
        return (_keep(g, self.dim, self.keepdim, x.ndim) * others,)


class Norm(Op):
    """The vector p-norm over dim (None: all elements): (sum |x|^p)^(1/p); p may be inf, -inf
    (max/min |x|) or 0 (count of nonzeros). attrs: p, dim, keepdim.
    Derivative: d/dx = g * sign(x) * |x|^(p-1) / y^(p-1) (p = 2: g * x / y, 0 where y = 0;
    p = +-inf: g * sign(x) shared among the extreme |x|; p = 0: 0)"""

    def forward(self, x):
        self.x, p = x, self.p
        a = np.abs(x)
        if p == np.inf:
            out = np.max(a, axis=self.dim, keepdims=True)
        elif p == -np.inf:
            out = np.min(a, axis=self.dim, keepdims=True)
        elif p == 0:
            out = np.sum(a != 0, axis=self.dim, keepdims=True).astype(x.dtype)
        elif p == 1:
            out = np.sum(a, axis=self.dim, keepdims=True)
        elif p == 2:
            out = np.sqrt(np.sum(a * a, axis=self.dim, keepdims=True))
        else:
            out = np.sum(a ** p, axis=self.dim, keepdims=True) ** (1.0 / p)
        self.out = out
        return out if self.keepdim else np.squeeze(out, axis=self.dim)

    def backward(self, g):
        x, out, p = self.x, self.out, self.p
        g = _keep(g, self.dim, self.keepdim, x.ndim)
        if p == 0:
            return (np.zeros(x.shape, dtype=g.dtype),)
        if p == 1:
            return (g * np.sign(x),)
        if p in (np.inf, -np.inf):
            mask = np.abs(x) == out
            count = mask.sum(axis=self.dim, keepdims=True).astype(g.dtype)
            return (g * np.sign(x) * mask / count,)
        with np.errstate(divide="ignore", invalid="ignore"):
            if p == 2:
                scale = np.where(out == 0, 0, g / out)
                return ((scale * x).astype(x.dtype, copy=False),)
            a = np.abs(x)
            grad = g * np.sign(x) * a ** (p - 1) / out ** (p - 1)
        return (np.where(out == 0, 0, grad).astype(x.dtype, copy=False),)


class BoolReduce(Op):
    """any / all over dim (None: all elements): a boolean result. attrs: fn ("any" or "all"),
    dim, keepdim.
    Derivative: none (not differentiable)."""
    differentiable = False

    def forward(self, x):
        return getattr(np, self.fn)(x, axis=self.dim, keepdims=self.keepdim)
