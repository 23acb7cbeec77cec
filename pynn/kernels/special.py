"""Special functions NumPy lacks, as Numba ufuncs, built on first use: a ufunc with explicit
signatures is compiled (or loaded from the cache) when it is made, which would cost every
`import pynn` a few hundred milliseconds for models that never call it."""
import math

from numba import vectorize

_erf_ufunc = None


def _erf_scalar(x):
    return math.erf(x)


def erf(x, out=None):
    """The error function, elementwise (used by the exact GELU); float32 or float64."""
    global _erf_ufunc
    if _erf_ufunc is None:
        _erf_ufunc = vectorize(["float32(float32)", "float64(float64)"], cache=True)(_erf_scalar)
    return _erf_ufunc(x) if out is None else _erf_ufunc(x, out=out)
