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


class _Buffered(Op):
    """An elementwise activation whose forward and backward write into this op's buffers (float
    inputs; anything else takes the plain NumPy formula of `_plain_forward` / `_plain_backward`,
    whose results match). `self.buf(key, like)` is a buffer of like's shape and dtype.

    Derivative: stated by each subclass."""

    def buf(self, key, like, dtype=None):
        return self.buffer(key, like.shape, like.dtype if dtype is None else dtype)

    def positive(self, x):
        """The mask x > 0, kept for backward."""
        self.pos = np.greater(x, 0, out=self.buf("pos", x, np.bool_))
        return self.pos

    def forward(self, x):
        self.x = x
        if x.dtype.kind != "f":
            return self._plain_forward(x)
        return self._forward(x)

    def backward(self, g):
        if g.dtype != self.x.dtype or g.shape != self.x.shape or g.dtype.kind != "f":
            return (self._plain_backward(g),)
        return (self._backward(g),)


class Elu(_Buffered):
    """y = x if x > 0 else alpha * (exp(x) - 1). attrs: alpha.

    Derivative: d/dx = g if x > 0 else g * alpha * exp(x)"""

    def _plain_forward(self, x):
        return np.where(x > 0, x, self.alpha * _expm1_neg(x)).astype(x.dtype, copy=False)

    def _plain_backward(self, g):
        x = self.x
        return np.where(x > 0, g, g * (self.alpha * np.exp(np.minimum(x, 0))))

    def _forward(self, x):
        y = np.minimum(x, 0, out=self.buf("y", x))
        np.expm1(y, out=y)
        y *= self.alpha
        np.copyto(y, x, where=self.positive(x))
        return y

    def _backward(self, g):
        gx = np.minimum(self.x, 0, out=self.buf("gx", g))
        np.exp(gx, out=gx)
        gx *= self.alpha
        gx *= g
        np.copyto(gx, g, where=self.pos)
        return gx


class Selu(_Buffered):
    """y = scale * (x if x > 0 else alpha * (exp(x) - 1)), with torch's alpha and scale.

    Derivative: d/dx = g * scale if x > 0 else g * scale * alpha * exp(x)"""

    def _plain_forward(self, x):
        neg = (_SELU_SCALE * _SELU_ALPHA) * _expm1_neg(x)
        return np.where(x > 0, _SELU_SCALE * x, neg).astype(x.dtype, copy=False)

    def _plain_backward(self, g):
        x = self.x
        neg = g * ((_SELU_SCALE * _SELU_ALPHA) * np.exp(np.minimum(x, 0)))
        return np.where(x > 0, g * _SELU_SCALE, neg)

    def _forward(self, x):
        y = np.minimum(x, 0, out=self.buf("y", x))
        np.expm1(y, out=y)
        y *= _SELU_SCALE * _SELU_ALPHA
        np.multiply(x, _SELU_SCALE, out=y, where=self.positive(x))
        return y

    def _backward(self, g):
        gx = np.minimum(self.x, 0, out=self.buf("gx", g))
        np.exp(gx, out=gx)
        gx *= _SELU_SCALE * _SELU_ALPHA
        gx *= g
        np.multiply(g, _SELU_SCALE, out=gx, where=self.pos)
        return gx


class Silu(_Buffered):
    """y = x * sigmoid(x) (also called swish).

    Derivative: d/dx = g * s * (1 + x * (1 - s)), s = sigmoid(x)"""

    def _plain_forward(self, x):
        self.s = stable_sigmoid(x)
        return x * self.s

    def _plain_backward(self, g):
        s = self.s
        return g * s * (1 + self.x * (1 - s))

    def _forward(self, x):
        self.s = stable_sigmoid(x, self, "s")
        return np.multiply(x, self.s, out=self.buf("y", x))

    def _backward(self, g):
        s = self.s
        t = np.subtract(1, s, out=self.buf("t", g))
        t *= self.x
        t += 1
        gx = np.multiply(g, s, out=self.buf("gx", g))
        gx *= t
        return gx


class Mish(_Buffered):
    """y = x * tanh(softplus(x)).

    Derivative: d/dx = g * (t + x * sigmoid(x) * (1 - t * t)), t = tanh(softplus(x))"""

    def _plain_forward(self, x):
        self.t = np.tanh(np.logaddexp(0, x)).astype(x.dtype, copy=False)
        return x * self.t

    def _plain_backward(self, g):
        t, x = self.t, self.x
        return g * (t + x * stable_sigmoid(x) * (1 - t * t))

    def _forward(self, x):
        t = self.t = np.logaddexp(0, x, out=self.buf("t", x))
        np.tanh(t, out=t)
        return np.multiply(x, t, out=self.buf("y", x))

    def _backward(self, g):
        t, x = self.t, self.x
        a = stable_sigmoid(x, self, "s")
        a *= x
        b = np.multiply(t, t, out=self.buf("b", g))
        np.subtract(1, b, out=b)
        a *= b
        a += t
        return np.multiply(g, a, out=self.buf("gx", g))


class Softsign(_Buffered):
    """y = x / (1 + |x|) (NaN at x = +-inf, inf/inf, as in torch).

    Derivative: d/dx = g / (1 + |x|)^2, NaN where x = +-inf (as torch, whose y is NaN there)"""

    def _plain_forward(self, x):
        self.d = 1 + np.abs(x)
        return x / self.d

    def _plain_backward(self, g):
        d = self.d
        return np.where(np.isinf(d), np.nan, g / (d * d)).astype(g.dtype, copy=False)

    def _forward(self, x):
        d = self.d = np.abs(x, out=self.buf("d", x))
        d += 1
        return np.divide(x, d, out=self.buf("y", x))

    def _backward(self, g):
        d = self.d
        gx = np.multiply(d, d, out=self.buf("gx", g))
        np.divide(g, gx, out=gx)
        np.copyto(gx, np.nan, where=np.isinf(d, out=self.buf("inf", d, np.bool_)))
        return gx


class Hardtanh(_Buffered):
    """y = clip(x, min_val, max_val). attrs: min_val, max_val.

    Derivative: d/dx = g where min_val < x < max_val, else 0 (0 at the bounds and at NaN, as in
    torch)"""

    def _plain_forward(self, x):
        return np.clip(x, self.min_val, self.max_val)

    def _plain_backward(self, g):
        x = self.x
        inside = (x > self.min_val) & (x < self.max_val)
        return np.where(inside, g, np.zeros((), g.dtype))

    def _forward(self, x):
        return np.clip(x, self.min_val, self.max_val, out=self.buf("y", x))

    def _backward(self, g):
        return _pass_between(self, g, self.min_val, self.max_val, 1)


def _pass_between(op, g, lo, hi, scale):
    """g * scale where lo < x < hi, else 0, into op's buffers (Hardtanh, Hardsigmoid)."""
    x = op.x
    inside = np.greater(x, lo, out=op.buf("inside", x, np.bool_))
    inside &= np.less(x, hi, out=op.buf("below", x, np.bool_))
    gx = op.buf("gx", g)
    gx.fill(0)
    if scale == 1:
        np.copyto(gx, g, where=inside)
    else:
        np.divide(g, scale, out=gx, where=inside)
    return gx


class Hardsigmoid(_Buffered):
    """y = clip(x + 3, 0, 6) / 6.

    Derivative: d/dx = g / 6 where -3 < x < 3, else 0"""

    def _plain_forward(self, x):
        return np.clip(x + 3, 0, 6) / 6

    def _plain_backward(self, g):
        x = self.x
        return np.where((x > -3) & (x < 3), g / 6, np.zeros((), g.dtype))

    def _forward(self, x):
        y = np.add(x, 3, out=self.buf("y", x))
        np.clip(y, 0, 6, out=y)
        y /= 6
        return y

    def _backward(self, g):
        return _pass_between(self, g, -3, 3, 6)


class GeluTanh(_Buffered):
    """gelu(x, approximate="tanh"): y = 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3).

    Derivative: d/dx = g * (0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2)),
    t = tanh(u)"""

    def _plain_forward(self, x):
        self.t = np.tanh(_SQRT_2_OVER_PI * (x + _GELU_KAPPA * x * x * x))
        return 0.5 * x * (1 + self.t)

    def _plain_backward(self, g):
        x, t = self.x, self.t
        du = _SQRT_2_OVER_PI * (1 + 3 * _GELU_KAPPA * x * x)
        return g * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du)

    def _forward(self, x):
        t = self.t = np.multiply(x, _GELU_KAPPA, out=self.buf("t", x))
        t *= x
        t *= x
        t += x
        t *= _SQRT_2_OVER_PI
        np.tanh(t, out=t)
        one_t = np.add(t, 1, out=self.buf("a", x))
        y = np.multiply(x, 0.5, out=self.buf("y", x))
        y *= one_t
        return y

    def _backward(self, g):
        x, t = self.x, self.t
        du = np.multiply(x, 3 * _GELU_KAPPA, out=self.buf("du", g))
        du *= x
        du += 1
        du *= _SQRT_2_OVER_PI
        b = np.multiply(t, t, out=self.buf("b", g))
        np.subtract(1, b, out=b)                # 1 - t^2
        half_x = np.multiply(x, 0.5, out=self.buf("a", g))
        b *= half_x
        b *= du                                 # 0.5 x (1 - t^2) du
        a = np.add(t, 1, out=self.buf("a", g))
        a *= 0.5
        a += b
        return np.multiply(g, a, out=self.buf("gx", g))


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
        self.pos = np.greater(x, 0, out=self.buffer("pos", x.shape, np.bool_))
        y = self.into("y", np.multiply, x, self.w)
        np.copyto(y, x, where=self.pos)
        return y

    def backward(self, g):
        x, pos = self.x, self.pos
        gx = gw = None
        if self.needs(0):
            gx = self.into("gx", np.multiply, g, self.w)
            np.copyto(gx, g, where=pos)
        if self.needs(1):
            contrib = self.into("contrib", np.multiply, g, x)
            np.copyto(contrib, 0, where=pos)
            axes = tuple(i for i in range(x.ndim) if self.w.shape[i] == 1)
            gw = contrib.sum(axis=axes).reshape(self.w_shape) if axes else contrib
        return gx, gw
