"""Special functions NumPy lacks, as Numba ufuncs."""
import math

from numba import vectorize


@vectorize(["float32(float32)", "float64(float64)"], cache=True)
def erf(x):
    """The error function, elementwise (used by the exact GELU)."""
    return math.erf(x)
