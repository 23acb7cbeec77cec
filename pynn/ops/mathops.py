"""More elementwise math: rounding, remainders, log1p/expm1/erf, square/rsqrt, logical ops.

Rounding ops (sign, floor, ceil, round, trunc) are differentiable with a zero gradient, as in
PyTorch (their output requires grad when the input does). On integer or bool inputs they return
the input's values in its own dtype, as torch does; log1p/expm1/erf/rsqrt of integers give float32.
"""
import math

import numpy as np

from ..kernels.special import erf
from .base import Op
from .elementwise import promote


def _float(x):
    """Integer and bool arrays become float32 (torch's default float), floats stay as they are."""
    return x if x.dtype.kind == "f" else x.astype(np.float32)


class _Rounding(Op):
    """Base of the piecewise-constant ops: forward is `fn`, the gradient is zero everywhere.
    Derivative: d/dx = 0"""
    fn = None

    def forward(self, x):
        self.shape = x.shape
        if x.dtype.kind in "biu":
            return x.copy()
        return self.fn(x)

    def backward(self, g):
        return (np.zeros(self.shape, dtype=g.dtype),)


class Sign(_Rounding):
    """sign(x) in {-1, 0, 1}.
    Derivative: d/dx = 0 (piecewise constant, as torch)."""
    fn = staticmethod(np.sign)

    def forward(self, x):
        if x.dtype.kind in "iu":
            self.shape = x.shape
            return np.sign(x)
        return super().forward(x)


class Floor(_Rounding):
    """floor(x).
    Derivative: d/dx = 0 (piecewise constant, as torch)."""
    fn = staticmethod(np.floor)


class Ceil(_Rounding):
    """ceil(x).
    Derivative: d/dx = 0 (piecewise constant, as torch)."""
    fn = staticmethod(np.ceil)


class Trunc(_Rounding):
    """trunc(x), rounding towards zero.
    Derivative: d/dx = 0 (piecewise constant, as torch)."""
    fn = staticmethod(np.trunc)


class Round(_Rounding):
    """Round half to even, to `decimals` places (torch.round). attrs: decimals.
    Derivative: d/dx = 0 (piecewise constant, as torch)."""

    def fn(self, x):
        return np.round(x, self.decimals)


class Fmod(Op):
    """C's fmod: a - trunc(a / b) * b, the sign of a (torch.fmod).
    Derivative: d/da = g, d/db = -g * trunc(a / b)"""

    def forward(self, a, b):
        self.a, self.b = a, b = promote(a, b)
        with np.errstate(divide="ignore", invalid="ignore"):   # x % 0 is NaN, as torch
            return np.fmod(a, b)

    def backward(self, g):
        gb = -g * np.trunc(self.a / self.b) if self.needs(1) else None
        return g, gb


class Remainder(Op):
    """Python's a % b: a - floor(a / b) * b, the sign of b (torch.remainder, the `%` operator).
    Derivative: d/da = g, d/db = -g * floor(a / b)"""

    def forward(self, a, b):
        self.a, self.b = a, b = promote(a, b)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.remainder(a, b)

    def backward(self, g):
        gb = -g * np.floor(self.a / self.b) if self.needs(1) else None
        return g, gb


class Log1p(Op):
    """log(1 + x), accurate for small x.
    Derivative: d/dx = g / (1 + x)"""

    def forward(self, x):
        self.x = x = _float(x)
        with np.errstate(divide="ignore", invalid="ignore"):   # -inf / NaN, as torch
            return np.log1p(x)

    def backward(self, g):
        return (g / (1 + self.x),)


class Expm1(Op):
    """exp(x) - 1, accurate for small x.
    Derivative: d/dx = g * (y + 1)"""

    def forward(self, x):
        self.out = np.expm1(_float(x))
        return self.out

    def backward(self, g):
        return (g * (self.out + 1),)


_TWO_OVER_SQRT_PI = 2 / math.sqrt(math.pi)


class Erf(Op):
    """The error function.
    Derivative: d/dx = g * 2 / sqrt(pi) * exp(-x^2)"""

    def forward(self, x):
        self.x = x = _float(x)
        return erf(x)

    def backward(self, g):
        return (g * _TWO_OVER_SQRT_PI * np.exp(-self.x * self.x),)


class Square(Op):
    """x * x.
    Derivative: d/dx = 2 * g * x"""

    def forward(self, x):
        self.x = x
        return np.square(x)

    def backward(self, g):
        return (2 * g * self.x,)


class Rsqrt(Op):
    """1 / sqrt(x).
    Derivative: d/dx = -g * y^3 / 2"""

    def forward(self, x):
        with np.errstate(divide="ignore", invalid="ignore"):   # inf / NaN, as torch
            self.out = 1 / np.sqrt(_float(x))
        return self.out

    def backward(self, g):
        return (-0.5 * g * self.out ** 3,)


class Logical(Op):
    """logical_and / logical_or / logical_xor / logical_not: boolean results (nonzero is true).
    attrs: fn (a NumPy ufunc name).
    Derivative: none (not differentiable)."""
    differentiable = False

    def forward(self, *xs):
        return getattr(np, self.fn)(*xs)
