"""Normalisation ops over groups of features of one sample: LayerNorm and GroupNorm.

Both normalise rows of a 2-D view (LayerNorm: one row per position, over the trailing
`normalized_shape`; GroupNorm: one row per (sample, group)) to zero mean and unit (biased)
variance, then apply a per-feature affine map. They share `_normalize` / `_normalize_backward`,
the row-wise math (two passes per row in Numba, pynn.kernels.norm); full-size arrays live in
reused buffers.
"""
import numpy as np

from ..kernels.norm import (
    rownorm_affine_backward,
    rownorm_affine_forward,
    rownorm_backward,
    rownorm_forward,
)
from .base import Op


def _saved(op, x2):
    """op's xhat (M, K) and inv_std (M, 1) buffers for rows x2, kept on op for backward."""
    op.xhat = op.buffer("xhat", x2.shape, x2.dtype)
    op.inv_std = op.buffer("inv_std", (x2.shape[0], 1), x2.dtype)
    return op.xhat, op.inv_std.reshape(-1)


def _normalize(op, x2, eps):
    """xhat = (x - mean) / sqrt(var + eps) over each row of x2 (M, K); saves inv_std (M, 1)."""
    xhat, inv_std = _saved(op, x2)
    rownorm_forward(x2, eps, xhat, inv_std)
    return xhat


def _normalize_backward(op, gxhat):
    """dL/dx from dL/dxhat (M, K): inv_std * (gxhat - mean(gxhat) - xhat * mean(gxhat * xhat))."""
    gx = op.buffer("gx", gxhat.shape, gxhat.dtype)
    rownorm_backward(gxhat, op.xhat, op.inv_std.reshape(gxhat.shape[0]), gx)
    return gx


def _one_dtype(*arrays):
    """Do these arrays share one float dtype (the kernels' case; else NumPy promotes)?"""
    return all(a.dtype == arrays[0].dtype for a in arrays) and arrays[0].dtype.kind == "f"


class LayerNorm(Op):
    """Normalise over the last `ndim` dims of x, then y = xhat * gamma + beta (gamma, beta of
    those dims' shape, given only when elementwise_affine). attrs: ndim, eps.

    Derivative: with gxhat = g * gamma, d/dx = inv_std * (gxhat - mean(gxhat) - xhat *
    mean(gxhat * xhat)) over each normalised group, d/dgamma = sum(g * xhat), d/dbeta = sum(g)
    over the leading dims."""

    def forward(self, x, gamma=None, beta=None):
        K = int(np.prod(x.shape[x.ndim - self.ndim:]))
        x2 = x.reshape(-1, K)
        self.shape, self.affine = x.shape, gamma is not None
        if not self.affine:
            return _normalize(self, x2, self.eps).reshape(x.shape)
        self.gamma = gamma.reshape(K)
        if not _one_dtype(x2, gamma, beta):
            xhat = _normalize(self, x2, self.eps)
            return (xhat * self.gamma + beta.reshape(K)).reshape(x.shape)
        # normalisation and affine map in one pass per row (pynn.kernels.norm)
        x2 = self.contiguous("x_c", x2)
        xhat, inv_std = _saved(self, x2)
        y = self.buffer("y", x2.shape, x.dtype)
        rownorm_affine_forward(x2, self.eps, self.gamma, beta.reshape(K), xhat, inv_std, y)
        return y.reshape(x.shape)

    def backward(self, g):
        K = self.xhat.shape[1]
        g2 = g.reshape(-1, K)
        if not self.affine:
            return (_normalize_backward(self, g2).reshape(self.shape),)
        pshape = self.shape[len(self.shape) - self.ndim:]
        if not _one_dtype(g2, self.gamma, self.xhat):
            gxhat = g2 * self.gamma
            ggamma = np.sum(g2 * self.xhat, axis=0).reshape(pshape)
            return (_normalize_backward(self, gxhat).reshape(self.shape), ggamma,
                    np.sum(g2, axis=0).reshape(pshape))
        g2 = self.contiguous("g_c", g2)
        gx = self.buffer("gx", g2.shape, g.dtype)
        tmp = self.buffer("tmp", g2.shape, g.dtype)
        rownorm_affine_backward(g2, self.gamma, self.xhat, self.inv_std.reshape(-1), gx, tmp)
        ggamma = self.sum_rows("ggamma", tmp).reshape(pshape)
        gbeta = self.sum_rows("gbeta", g2).reshape(pshape)
        return gx.reshape(self.shape), ggamma, gbeta


class GroupNorm(Op):
    """Normalise x (N, C, *) over each group of C // num_groups channels (and all positions),
    then y = xhat * gamma[c] + beta[c] per channel (when affine). attrs: num_groups, eps.

    Derivative: with gxhat = g * gamma[c], d/dx = inv_std * (gxhat - mean(gxhat) - xhat *
    mean(gxhat * xhat)) over each (sample, group), d/dgamma[c] = sum(g * xhat) and
    d/dbeta[c] = sum(g) over the batch and the positions of channel c."""

    def forward(self, x, gamma=None, beta=None):
        N, C = x.shape[:2]
        G = self.num_groups
        x2 = x.reshape(N * G, -1)
        xhat = _normalize(self, x2, self.eps)
        self.shape, self.affine = x.shape, gamma is not None
        if not self.affine:
            return xhat.reshape(x.shape)
        cshape = (1, C) + (1,) * (x.ndim - 2)
        self.gamma = gamma.reshape(cshape)
        y = np.multiply(xhat.reshape(x.shape), self.gamma, out=self.buffer("y", x.shape, x.dtype))
        y += beta.reshape(cshape)
        return y

    def backward(self, g):
        N, C = self.shape[:2]
        axes = (0,) + tuple(range(2, len(self.shape)))
        if not self.affine:
            return (_normalize_backward(self, g.reshape(self.xhat.shape)).reshape(self.shape),)
        xhat = self.xhat.reshape(self.shape)
        tmp = np.multiply(g, xhat, out=self.buffer("tmp", self.shape, g.dtype))
        ggamma = np.sum(tmp, axis=axes, out=self.buffer("ggamma", (C,), g.dtype))
        gbeta = np.sum(g, axis=axes, out=self.buffer("gbeta", (C,), g.dtype))
        gxhat = np.multiply(g, self.gamma, out=tmp).reshape(self.xhat.shape)
        return _normalize_backward(self, gxhat).reshape(self.shape), ggamma, gbeta
