"""Numba kernels for normalisation: batch norm in training mode (batch statistics) per channel,
and the row-wise normalisation LayerNorm and GroupNorm share (rownorm_*).

Layout: x, xhat, y, g, gx are (N, C, P) (P = the product of the axes after the channels, 1
for BatchNorm1d on (N, C)); per-channel arrays are (C,). Each kernel handles the channels
[c0, c1), so the caller can hand channel ranges to several threads. Sums are accumulated in
float64; the variance is the biased one (mean of squared deviations, two passes), as
np.var and torch compute it. Two passes over x forward and two over g backward, where the
NumPy expression of the same math makes seven; batch norm writes only y forward (backward
recomputes xhat from x, which the layer before keeps anyway: a pass and an activation less).
"""
import math

from numba import njit

__all__ = ["batchnorm_forward", "batchnorm_backward", "rownorm_forward", "rownorm_backward",
           "rownorm_affine_forward", "rownorm_affine_backward"]


# fastmath "reassoc" lets LLVM vectorise the float64 sums (a rounding-level reordering); no flag
# touches NaN/inf handling.
@njit(cache=True, nogil=True, fastmath={"reassoc"})
def batchnorm_forward(x, eps, gamma, beta, c0, c1, mean, var, inv_std, y, relu=False):
    """mean, var (biased), inv_std = 1/sqrt(var + eps) of each channel; y = xhat * gamma + beta
    with xhat = (x - mean) * inv_std (y = xhat when gamma is empty: no affine), and with `relu`
    y = max(that, 0) (NaN kept: the BatchNorm + ReLU the plan fuses). xhat itself is not
    kept: batchnorm_backward computes it again from x, mean and inv_std, the same way."""
    N, C, P = x.shape
    affine = gamma.shape[0] != 0
    n = N * P
    for c in range(c0, c1):
        s = 0.0
        for i in range(N):
            for p in range(P):
                s += x[i, c, p]
        mu = s / n
        ss = 0.0
        for i in range(N):
            for p in range(P):
                d = x[i, c, p] - mu
                ss += d * d
        v = ss / n
        mean[c] = mu
        var[c] = v
        inv = inv_std.dtype.type(1.0 / math.sqrt(v + eps))
        inv_std[c] = inv
        m = x.dtype.type(mu)
        gm, bt = (gamma[c], beta[c]) if affine else (x.dtype.type(1), x.dtype.type(0))
        zero = y.dtype.type(0)
        for i in range(N):
            for p in range(P):
                h = (x[i, c, p] - m) * inv
                v = h * gm + bt if affine else h
                y[i, c, p] = zero if relu and v < zero else v


@njit(cache=True, nogil=True, fastmath={"reassoc"})
def batchnorm_backward(g, x, mean, inv_std, gamma, c0, c1, ggamma, gbeta, gx, y, relu=False):
    """With batch statistics, xhat = (x - mean) * inv_std (as batchnorm_forward made it):
    gbeta = sum(g), ggamma = sum(g * xhat) per channel, and
    gx = gamma * inv_std * (g - sum(g) / n - xhat * sum(g * xhat) / n) (gamma = 1 when empty).
    With `relu`, g is first the ReLU's backward of it: 0 where the output y <= 0 (y NaN keeps
    g, as the Relu op's)."""
    N, C, P = g.shape
    affine = gamma.shape[0] != 0
    n = N * P
    zero = g.dtype.type(0)
    for c in range(c0, c1):
        m = x.dtype.type(mean[c])
        inv = inv_std[c]
        sg = 0.0
        sgx = 0.0
        for i in range(N):
            for p in range(P):
                gv = zero if relu and y[i, c, p] <= zero else g[i, c, p]
                sg += gv
                sgx += gv * ((x[i, c, p] - m) * inv)
        gm = gamma[c] if affine else 1.0
        if affine:
            ggamma[c] = sgx
            gbeta[c] = sg
        k = gx.dtype.type(gm * inv)
        a = gx.dtype.type(sg / n)
        b = gx.dtype.type(sgx / n)
        for i in range(N):
            for p in range(P):
                gv = zero if relu and y[i, c, p] <= zero else g[i, c, p]
                gx[i, c, p] = k * (gv - a - ((x[i, c, p] - m) * inv) * b)


@njit(cache=True, nogil=True, fastmath={"reassoc"}, inline="always")
def _row_moments(x, m, eps, inv_std):
    """The mean of row m of x (in x's dtype) and 1 / sqrt(var + eps), var the biased one (two
    passes, float64 sums), which also goes to inv_std[m]."""
    K = x.shape[1]
    s = 0.0
    for k in range(K):
        s += x[m, k]
    mu = s / K
    ss = 0.0
    for k in range(K):
        d = x[m, k] - mu
        ss += d * d
    inv = inv_std.dtype.type(1.0 / math.sqrt(ss / K + eps))
    inv_std[m] = inv
    return x.dtype.type(mu), inv


@njit(cache=True, nogil=True, fastmath={"reassoc"})
def rownorm_forward(x, eps, xhat, inv_std):
    """Each row of x (M, K): xhat = (x - mean) / sqrt(var + eps), var the biased one (two
    passes, float64 sums); inv_std (M,) keeps 1 / sqrt(var + eps). (LayerNorm: a row per
    position; GroupNorm: a row per sample and group.)"""
    M, K = x.shape
    for m in range(M):
        mf, inv = _row_moments(x, m, eps, inv_std)
        for k in range(K):
            xhat[m, k] = (x[m, k] - mf) * inv


@njit(cache=True, nogil=True, fastmath={"reassoc"})
def rownorm_backward(gxhat, xhat, inv_std, gx):
    """Each row: gx = inv_std * (gxhat - mean(gxhat) - xhat * mean(gxhat * xhat))."""
    M, K = gxhat.shape
    for m in range(M):
        s1 = 0.0
        s2 = 0.0
        for k in range(K):
            gv = gxhat[m, k]
            s1 += gv
            s2 += gv * xhat[m, k]
        a = gx.dtype.type(s1 / K)
        b = gx.dtype.type(s2 / K)
        inv = inv_std[m]
        for k in range(K):
            gx[m, k] = inv * (gxhat[m, k] - a - xhat[m, k] * b)


@njit(cache=True, nogil=True, fastmath={"reassoc"})
def rownorm_affine_forward(x, eps, gamma, beta, xhat, inv_std, y):
    """rownorm_forward, then y = xhat * gamma + beta with gamma, beta (K,) per column, in the
    same pass over each row (LayerNorm with elementwise_affine)."""
    M, K = x.shape
    for m in range(M):
        mf, inv = _row_moments(x, m, eps, inv_std)
        for k in range(K):
            h = (x[m, k] - mf) * inv
            xhat[m, k] = h
            y[m, k] = h * gamma[k] + beta[k]


@njit(cache=True, nogil=True, fastmath={"reassoc"})
def rownorm_affine_backward(g, gamma, xhat, inv_std, gx, g_xhat):
    """The backward of rownorm_affine_forward for one output gradient g (M, K): with
    gxhat = g * gamma, gx = inv_std * (gxhat - mean(gxhat) - xhat * mean(gxhat * xhat)) per
    row, and g_xhat = g * xhat, whose column sums are d/dgamma (the caller's BLAS sum)."""
    M, K = g.shape
    for m in range(M):
        s1 = 0.0
        s2 = 0.0
        for k in range(K):
            gv = g[m, k] * gamma[k]
            s1 += gv
            s2 += gv * xhat[m, k]
        a = gx.dtype.type(s1 / K)
        b = gx.dtype.type(s2 / K)
        inv = inv_std[m]
        for k in range(K):
            h = xhat[m, k]
            gx[m, k] = inv * (g[m, k] * gamma[k] - a - h * b)
            g_xhat[m, k] = g[m, k] * h
