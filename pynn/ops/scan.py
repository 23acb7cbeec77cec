"""Scans along one dim: cumulative sums and products (torch.cumsum / torch.cumprod).

`dim` arrives normalised to a non-negative int. Integer and bool inputs give int64, as in torch.
"""
import numpy as np

from .base import Op


def _reverse_cumsum(g, dim):
    """sum over j >= i of g[j], along dim."""
    return np.flip(np.cumsum(np.flip(g, dim), axis=dim), dim)


def _scan_dtype(x):
    return np.int64 if x.dtype.kind in "biu" else x.dtype


class CumSum(Op):
    """y_i = sum_{j <= i} x_j along dim. attrs: dim.
    Derivative: d/dx_i = sum_{j >= i} g_j (a reversed cumulative sum of g)"""

    def forward(self, x):
        return np.cumsum(x, axis=self.dim, dtype=_scan_dtype(x))

    def backward(self, g):
        return (_reverse_cumsum(g, self.dim),)


class CumProd(Op):
    """y_i = prod_{j <= i} x_j along dim. attrs: dim.
    Derivative: d/dx_k = sum_{j >= k} g_j * prod_{i <= j, i != k} x_i, i.e. revcumsum(g * y) / x
    where no x is zero (zeros take an exact, slower path)"""

    def forward(self, x):
        self.x = x
        self.out = np.cumprod(x, axis=self.dim, dtype=_scan_dtype(x))
        return self.out

    def backward(self, g):
        x, dim = self.x, self.dim
        if np.all(x != 0):
            return (_reverse_cumsum(g * self.out, dim) / x,)
        # a zero somewhere: for each position k, the cumulative product with x_k set to 1
        gx = np.empty(x.shape, dtype=g.dtype)
        for k in range(x.shape[dim]):
            at_k = (slice(None),) * dim + (k,)
            ones_k = x.copy()
            ones_k[at_k] = 1
            partial = np.cumprod(ones_k, axis=dim)
            after = (slice(None),) * dim + (slice(k, None),)
            gx[at_k] = np.sum((g * partial)[after], axis=dim)
        return (gx,)
