"""Numba kernels for a softmax over the last axis of many short rows (attention scores).

NumPy reduces a short last axis slowly (``np.max(s, axis=-1)`` over attention scores with rows
of ~20 keys, op times in the README). These kernels walk the rows of a C-contiguous (R, S)
view instead; the exponential stays NumPy's SIMD loop between them:

    softmax_shift_rows(s, L, causal)   s[r] -= max(s[r]), after the causal mask (-inf where
                                       key j > query i = r % L) when `causal`
    np.exp(s, out=s)
    softmax_normalize_rows(s)          s[r] /= sum(s[r])

and the backward in one pass per row: ``softmax_backward_rows(dp, p)`` makes
dp <- p * (dp - sum(dp * p)). The Softmax and LogSoftmax ops use them too when they reduce the
last axis of a float array (``log_softmax_finish_rows`` / ``log_softmax_backward_rows``). The
max propagates NaN as np.max does, and a row that is all -inf gives NaN as the NumPy expression
does. Sums are accumulated in float64 ("reassoc" lets LLVM vectorise them: a rounding-level
reordering that touches no NaN/inf handling).
"""
import math

import numpy as np
from numba import njit

__all__ = ["softmax_rows", "softmax_shift_rows", "softmax_normalize_rows", "softmax_backward_rows",
           "log_softmax_finish_rows", "log_softmax_backward_rows"]


def softmax_rows(s, L=1, causal=False):
    """In place on a C-contiguous float array s (..., S): the softmax of each row over its last
    axis, with the causal mask over rows of L queries when `causal` (the three steps above)."""
    s2 = s.reshape(-1, s.shape[-1])
    softmax_shift_rows(s2, L, causal)
    np.exp(s, out=s)
    softmax_normalize_rows(s2)
    return s


@njit(cache=True, nogil=True)
def softmax_shift_rows(s, L, causal):
    """Each row r of s (R, S): with `causal`, s[r, j] = -inf for j > r % L; then s[r] -= its
    max (NaN if the row holds one)."""
    R, S = s.shape
    ninf = s.dtype.type(-float("inf"))
    for r in range(R):
        row = s[r]
        if causal:
            for j in range(r % L + 1, S):
                row[j] = ninf
        mx = ninf
        for j in range(S):
            v = row[j]
            if v > mx or v != v:        # sticky NaN, as np.max
                mx = v
        for j in range(S):
            row[j] = row[j] - mx


@njit(cache=True, nogil=True, fastmath={"reassoc"})
def softmax_normalize_rows(s):
    """Each row of s (R, S) divided by its sum (float64 accumulation, divided in s's dtype)."""
    R, S = s.shape
    for r in range(R):
        row = s[r]
        acc = 0.0
        for j in range(S):
            acc += row[j]
        total = s.dtype.type(acc)
        for j in range(S):
            row[j] = row[j] / total


@njit(cache=True, nogil=True, fastmath={"reassoc"})
def softmax_backward_rows(dp, p):
    """Each row of dp (R, S), in place: dp = p * (dp - sum(dp * p)), the softmax's
    vector-Jacobian product for output p and output gradient dp."""
    R, S = dp.shape
    for r in range(R):
        acc = 0.0
        for j in range(S):
            acc += dp[r, j] * p[r, j]
        a = dp.dtype.type(acc)
        for j in range(S):
            dp[r, j] = p[r, j] * (dp[r, j] - a)


@njit(cache=True, nogil=True, fastmath={"reassoc"})
def log_softmax_finish_rows(y, e):
    """Each row r of y (R, S), already shifted by its max, with e = exp(y): y[r] -= log(sum(e[r]))
    (float64 accumulation and log): y becomes log_softmax of the original row."""
    R, S = y.shape
    for r in range(R):
        acc = 0.0
        for j in range(S):
            acc += e[r, j]
        lse = y.dtype.type(math.log(acc))
        for j in range(S):
            y[r, j] = y[r, j] - lse


@njit(cache=True, nogil=True, fastmath={"reassoc"})
def log_softmax_backward_rows(g, p, gx):
    """Each row of (R, S): gx = g - p * sum(g), the log-softmax's vector-Jacobian product for
    p = exp(output) and output gradient g."""
    R, S = g.shape
    for r in range(R):
        acc = 0.0
        for j in range(S):
            acc += g[r, j]
        a = g.dtype.type(acc)
        for j in range(S):
            gx[r, j] = g[r, j] - p[r, j] * a
