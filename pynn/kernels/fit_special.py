"""Derive the erf polynomial of ``special.py``: ``python -m pynn.kernels.fit_special``.

erf: on 0 <= x <= 4, erf(x) / x is an even, entire function, so it is a polynomial in x^2 to
any accuracy we ask for. We fit it by least squares at Chebyshev points in t = x^2 / 8 - 1
(so that t spans [-1, 1] and the coefficients stay small) and keep degree 22. At those points
the least-squares Chebyshev coefficients are plain sums (the Chebyshev polynomials are
orthogonal there), added exactly with math.fsum from math.cos and math.erf: so the script gives
the same coefficients wherever libm gives the same cosines, where a least-squares solver's
answer depends on the BLAS it runs on (and conversion to powers of t magnifies that: OpenBLAS's
Haswell kernels moved the t^22 coefficient by 6e-5 of itself). Degree 22: the maximum error
is ~4e-13, far below float32's half-ulp, and every float32 input of a dense grid on
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
    """Power-series coefficients in t = x^2 * (2 / ERF_RANGE^2) - 1 of erf(x) / x, highest first.

    c_k = (2 - [k == 0]) / points * sum_j f(t_j) T_k(t_j) at the Chebyshev points
    t_j = cos(theta_j), theta_j = pi (j + 1/2) / points, where T_k(t_j) = cos(k theta_j): the
    least-squares fit of degree < points, then written in powers of t."""
    theta = [math.pi * (j + 0.5) / points for j in range(points)]
    f = []
    for th in theta:
        x = math.sqrt((math.cos(th) + 1) * (ERF_RANGE * ERF_RANGE / 2))
        f.append(math.erf(x) / x)                     # x > 0 at every Chebyshev point
    cheb = [(1 if k == 0 else 2) / points * math.fsum(fj * math.cos(k * th)
                                                       for fj, th in zip(f, theta))
            for k in range(degree + 1)]
    return chebyshev.cheb2poly(np.array(cheb))[::-1]


def main():
    print("_ERF = np.array((")
    for c in erf_coefficients():
        print(f"    {float(c)!r},")
    print("))")


if __name__ == "__main__":
    main()
