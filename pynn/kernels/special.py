"""Special functions NumPy lacks: erf, and the exact GELU's forward and backward built on it.

float32 arrays go through Numba loops that LLVM vectorises, where a call to libm's erf (~15 ns
per element here) cannot be. erf is a polynomial (``_erf``, coefficients derived by ``python -m
pynn.kernels.fit_special``), a branch-free string of multiply-adds in float64, accurate to
~4e-13 on [-4, 4] and +-1 outside, so float32 results are the correctly rounded ones
(``tests/test_special_kernels.py``); the GELU's forward uses it the same way. The GELU's
backward needs exp(-x^2 / 2) to float32 accuracy only (the gradient is a float32 array made
from the float32 cdf the forward kept), so it runs in float32 arithmetic on
pynn.kernels.vecmath's exp: twice the SIMD lanes of float64.

float64 arrays, which need more digits than those polynomials give, use libm's erf through a
Numba ufunc built on first use: a ufunc with explicit signatures is compiled (or loaded from
the cache) when it is made, which would cost every ``import pynn`` a few hundred milliseconds
for models that never call it.
"""
import math

import numpy as np
from numba import njit, vectorize

from .vecmath import exp_nonpositive, wide_vectors

__all__ = ["erf", "erf_forward", "gelu_forward", "gelu_backward"]

# Highest power first; printed by ``python -m pynn.kernels.fit_special``.
_ERF = np.array((
    1.5256567235439888e-06,
    -4.589110060379653e-06,
    4.86435568548415e-06,
    -1.2621241691913824e-05,
    5.10035419065691e-05,
    -0.00012652584950641405,
    0.00027243379467700897,
    -0.0006048232648183811,
    0.0012946136777046962,
    -0.0025830598663633218,
    0.004852696009855303,
    -0.008604344843940376,
    0.014349838508568425,
    -0.022474034043589268,
    0.03306059025140136,
    -0.04576503999783532,
    0.0598869094070499,
    -0.07472787165290631,
    0.09020899387390013,
    -0.10771044230010242,
    0.13167511689971978,
    -0.17657623330397937,
    0.35353099564338747,
))

_ERF_RANGE = 4.0            # erf(x) == +-1 in float32 beyond
_SQRT1_2 = math.sqrt(0.5)
_INV_SQRT_2PI = np.float32(1 / math.sqrt(2 * math.pi))
_FAST = {"contract"}        # let LLVM fuse each multiply-add; NaN and inf keep their meaning


#: the coefficients lowest power first, for _erf_poly
_C = tuple(float(c) for c in _ERF[::-1])
assert len(_C) == 23, "_erf_poly is written out for degree 22"


@njit(cache=True, nogil=True, fastmath=_FAST, inline="always")
def _erf_poly(t):
    """The degree-22 polynomial sum _C[k] t^k by Estrin's scheme: pairs, then pairs of pairs
    with t^2, t^4, t^8, t^16. A few more multiplies than Horner's rule, but a dependency chain
    of 6 multiply-adds instead of 22, so the vector units are not left waiting (the words
    transformer's GELU forward: 1.19-1.21 -> 0.99 ms a step, ``benchmarks/op_times.py``)."""
    t2 = t * t
    t4 = t2 * t2
    t8 = t4 * t4
    q0 = (_C[0] + _C[1] * t) + (_C[2] + _C[3] * t) * t2
    q1 = (_C[4] + _C[5] * t) + (_C[6] + _C[7] * t) * t2
    q2 = (_C[8] + _C[9] * t) + (_C[10] + _C[11] * t) * t2
    q3 = (_C[12] + _C[13] * t) + (_C[14] + _C[15] * t) * t2
    q4 = (_C[16] + _C[17] * t) + (_C[18] + _C[19] * t) * t2
    q5 = (_C[20] + _C[21] * t) + _C[22] * t2
    return (q0 + q1 * t4) + (q2 + q3 * t4) * t8 + (q4 + q5 * t4) * (t8 * t8)


@njit(cache=True, nogil=True, fastmath=_FAST, inline="always")
def _erf(x):
    """erf(x) for one float64 (error < 1e-12 on [-4, 4], +-1 outside, NaN for NaN): x P(t)
    with t = x^2 / 8 - 1 (erf is odd: no abs or sign juggling), t held at 1 beyond the range."""
    xx = x * x
    t = min(xx * (2.0 / (_ERF_RANGE * _ERF_RANGE)) - 1.0, 1.0)
    r = x * _erf_poly(t)
    return math.copysign(1.0, x) if xx >= _ERF_RANGE * _ERF_RANGE else r   # NaN: r, NaN


@njit(cache=True, nogil=True, fastmath=_FAST)
def erf_forward(x, out):
    """out = erf(x); flat float32 arrays."""
    for i in range(x.size):
        out[i] = _erf(np.float64(x[i]))


@njit(cache=True, nogil=True, fastmath=_FAST)
def gelu_forward(x, cdf, y):
    """cdf = Phi(x) = (1 + erf(x / sqrt 2)) / 2 and y = x * cdf; flat float32 arrays."""
    for i in range(x.size):
        v = np.float64(x[i])
        c = 0.5 + 0.5 * _erf(v * _SQRT1_2)
        cdf[i] = c
        y[i] = v * c


@njit(cache=True, nogil=True, fastmath=_FAST, error_model="numpy")
def gelu_backward(x, cdf, g, gx):
    """gx = g * (Phi(x) + x * phi(x)), phi(x) = exp(-x^2 / 2) / sqrt(2 pi); flat float32 arrays,
    float32 arithmetic: within 3 * 2^-24 |g| of the same formula in float64 on the same cdf
    (within 2 ulp where the derivative is above 1/4). At +-inf, x * exp(-inf) = inf * 0 is NaN,
    as PyTorch's gradient there. 512-bit vectors where the CPU has them (vecmath.wide_vectors)."""
    wide_vectors()
    for i in range(x.size):
        v = x[i]
        gx[i] = g[i] * (cdf[i] + v * _INV_SQRT_2PI * exp_nonpositive(np.float32(-0.5) * (v * v)))


_erf_ufunc = None


def _erf_scalar(x):
    return math.erf(x)


def _flat(a):
    return np.ascontiguousarray(a).reshape(-1)


def erf(x, out=None):
    """The error function, elementwise; float32 (polynomial kernel) or float64 (libm)."""
    global _erf_ufunc
    x = np.asarray(x)
    if x.dtype == np.float32 and x.ndim > 0 and (out is None or (out.dtype == np.float32
                                                                 and out.flags.c_contiguous)):
        if out is None:
            out = np.empty(x.shape, np.float32)
        erf_forward(_flat(x), out.reshape(-1))
        return out
    if _erf_ufunc is None:
        _erf_ufunc = vectorize(["float32(float32)", "float64(float64)"], cache=True)(_erf_scalar)
    return _erf_ufunc(x) if out is None else _erf_ufunc(x, out=out)
