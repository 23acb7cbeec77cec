"""Derive the erf polynomial of ``special.py``: ``python -m pynn.kernels.fit_special``.

erf: on 0 <= x <= 4, erf(x) / x is an even, entire function, so it is a polynomial in x^2 to
any accuracy we ask for. We fit it by least squares at Chebyshev points in t = x^2 / 8 - 1
(so that t spans [-1, 1] and the coefficients stay small) and keep degree 22: the maximum
error is ~4e-13, far below float32's half-ulp, and every float32 input of a dense grid on
[-5, 5] then rounds to the same float32 as math.erf (``tests/test_special_kernels.py``). For
|x| >= 4, erf(x) rounds to +-1 in float32 (erfc(4) = 1.5e-8 < 2**-25). The result is a
branch-free string of multiply-adds, which LLVM turns into SIMD code; a call to libm's erf
would not be.

The script prints the coefficients, highest power first, as ``special.py`` holds them.
"""
import math

import numpy as np
from numpy.polynomial import chebyshev

ERF_RANGE = 4.0
ERF_DEGREE = 22


def erf_coefficients(degree=ERF_DEGREE, points=4000):
    """Power-series coefficients in t = x^2 * (2 / ERF_RANGE^2) - 1 of erf(x) / x, highest first."""
    t = np.cos(np.pi * (np.arange(points) + 0.5) / points)
    x = np.sqrt((t + 1) * (ERF_RANGE * ERF_RANGE / 2))
    f = np.array([math.erf(v) / v for v in x])       # x > 0 at every Chebyshev point
    return chebyshev.cheb2poly(chebyshev.chebfit(t, f, degree))[::-1]


def main():
    print("_ERF = np.array((")
    for c in erf_coefficients():
        print(f"    {float(c)!r},")
    print("))")


if __name__ == "__main__":
    main()
