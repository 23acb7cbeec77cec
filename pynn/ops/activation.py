"""Elementwise activation ops beyond relu/sigmoid/tanh (those three run through the fused kernels,
see pynn.ops.elementwise): elu, selu, silu, mish, softsign, hardtanh, hardsigmoid, the tanh
approximation of gelu, and prelu (with a learnable slope).

Formulas and the choices at kinks follow PyTorch (torch/nn/functional.py and its CPU kernels), so
that values and gradients match it also at the boundaries. Constants are Python floats: a NumPy
float64 scalar would turn float32 math into float64.
"""
import math

import numpy as np

from .base import Op
from .elementwise import stable_sigmoid

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_KAPPA = 0.044715


def _expm1_neg(x):
    """expm1(min(x, 0)): the negative branch of elu, without overflow warnings for large x."""
    return np.expm1(np.minimum(x, 0))


class Elu(Op):
    """y = x if x > 0 else alpha * (exp(x) - 1). attrs: alpha.

    Derivative: d/dx = g if x > 0 else g * alpha * exp(x)"""

    def forward(self, x):
        self.x = x
        return np.where(x > 0, x, self.alpha * _expm1_neg(x)).astype(x.dtype, copy=False)

    def backward(self, g):
        x = self.x
        return (np.where(x > 0, g, g * (self.alpha * np.exp(np.minimum(x, 0)))),)


class Selu(Op):
    """y = scale * (x if x > 0 else alpha * (exp(x) - 1)), with torch's alpha and scale.

    Derivative: d/dx = g * scale if x > 0 else g * scale * alpha * exp(x)"""

    def forward(self, x):
        self.x = x
        neg = (_SELU_SCALE * _SELU_ALPHA) * _expm1_neg(x)
        return np.where(x > 0, _SELU_SCALE * x, neg).astype(x.dtype, copy=False)

    def backward(self, g):
        x = self.x
        neg = g * ((_SELU_SCALE * _SELU_ALPHA) * np.exp(np.minimum(x, 0)))
        return (np.where(x > 0, g * _SELU_SCALE, neg),)


class Silu(Op):
    """y = x * sigmoid(x) (also called swish).

    Derivative: d/dx = g * s * (1 + x * (1 - s)), s = sigmoid(x)"""

    def forward(self, x):
        self.x, self.s = x, stable_sigmoid(x)
        return x * self.s

    def backward(self, g):
        s = self.s
        return (g * s * (1 + self.x * (1 - s)),)


class Mish(Op):
    """y = x * tanh(softplus(x)).

    Derivative: d/dx = g * (t + x * sigmoid(x) * (1 - t * t)), t = tanh(softplus(x))"""

    def forward(self, x):
        self.x = x
        self.t = np.tanh(np.logaddexp(0, x)).astype(x.dtype, copy=False)
        return x * self.t

    def backward(self, g):
        t, x = self.t, self.x
        return (g * (t + x * stable_sigmoid(x) * (1 - t * t)),)


class Softsign(Op):
    """y = x / (1 + |x|) (NaN at x = +-inf, inf/inf, as in torch).

    Derivative: d/dx = g / (1 + |x|)^2, NaN where x = +-inf (as torch, whose y is NaN there)"""

    def forward(self, x):
        self.d = 1 + np.abs(x)
        return x / self.d

    def backward(self, g):
        d = self.d
        return (np.where(np.isinf(d), np.nan, g / (d * d)).astype(g.dtype, copy=False),)


class Hardtanh(Op):
    """y = clip(x, min_val, max_val). attrs: min_val, max_val.

    Derivative: d/dx = g where min_val < x < max_val, else 0 (0 at the bounds and at NaN, as in
    torch)"""

    def forward(self, x):
        self.x = x
        return np.clip(x, self.min_val, self.max_val)

    def backward(self, g):
        x = self.x
        inside = (x > self.min_val) & (x < self.max_val)
        return (np.where(inside, g, np.zeros((), g.dtype)),)


class Hardsigmoid(Op):
    """y = clip(x + 3, 0, 6) / 6.

    Derivative: d/dx = g / 6 where -3 < x < 3, else 0"""

    def forward(self, x):
        self.x = x
        return np.clip(x + 3, 0, 6) / 6

    def backward(self, g):
        x = self.x
        return (np.where((x > -3) & (x < 3), g / 6, np.zeros((), g.dtype)),)


class GeluTanh(Op):
    """gelu(x, approximate="tanh"): y = 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3).

    Derivative: d/dx = g * (0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2)),
    t = tanh(u)"""

    def forward(self, x):
        self.x = x
        self.t = np.tanh(_SQRT_2_OVER_PI * (x + _GELU_KAPPA * x * x * x))
        return 0.5 * x * (1 + self.t)

    def backward(self, g):
        x, t = self.x, self.t
        du = _SQRT_2_OVER_PI * (1 + 3 * _GELU_KAPPA * x * x)
        return (g * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du),)


class Prelu(Op):
    """y = x if x > 0 else w * x, with one slope per channel (axis 1) or one for all.

    Inputs x (N, C, ...) (or any shape with one slope), w (C,) or (1,).

    Derivative: d/dx = g if x > 0 else g * w; d/dw = sum of g * x where x <= 0, over every axis
    but the channel axis"""

    def _shape(self, x, w):
        if w.size == 1 or x.ndim < 2:
            return (1,) * x.ndim
        if x.shape[1] != w.size:
            raise ValueError(f"{w.size} slopes for {x.shape[1]} channels")
        return (1, w.size) + (1,) * (x.ndim - 2)

    def forward(self, x, w):
        self.x, self.w_shape = x, w.shape
        self.w = w.reshape(self._shape(x, w))
        return np.where(x > 0, x, x * self.w)

    def backward(self, g):
        x, pos = self.x, self.x > 0
        gx = np.where(pos, g, g * self.w) if self.needs(0) else None
        gw = None
        if self.needs(1):
            contrib = np.where(pos, np.zeros((), g.dtype), g * x)
            axes = tuple(i for i in range(x.ndim) if self.w.shape[i] == 1)
            gw = contrib.sum(axis=axes).reshape(self.w_shape) if axes else contrib
        return gx, gw
