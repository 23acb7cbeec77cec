"""Elementwise ops: arithmetic (with NumPy broadcasting) and unary math.

Each backward returns gradients of the broadcast shape; the executor sums them back to each
input's own shape (``unbroadcast``).
"""
import math

import numpy as np

from ..kernels.activation import ACTIVATION_CODES, act_backward, act_forward
from ..kernels.special import erf, gelu_backward, gelu_forward
from .base import Op


def promote(a, b):
    """PyTorch's rule for an integer or bool array beside a float one: both take the float's
    dtype (NumPy would widen int64 with float32 to float64 and leave float32 training)."""
    ka, kb = a.dtype.kind, b.dtype.kind
    if ka == kb:
        return a, b
    if ka == "f" and kb in "biu":
        return a, b.astype(a.dtype)
    if kb == "f" and ka in "biu":
        return a.astype(b.dtype), b
    return a, b


class Add(Op):
    """Derivative: d/da = g, d/db = g (each summed back over its broadcast dims)"""

    def forward(self, a, b):
        a, b = promote(a, b)
        return self.into("y", np.add, a, b)

    def backward(self, g):
        return g, g


class Sub(Op):
    """Derivative: d/da = g, d/db = -g"""

    def forward(self, a, b):
        a, b = promote(a, b)
        return self.into("y", np.subtract, a, b)

    def backward(self, g):
        return g, (self.into("gb", np.negative, g) if self.needs(1) else None)


class Mul(Op):
    """Derivative: d/da = g * b, d/db = g * a"""

    def forward(self, a, b):
        self.a, self.b = a, b = promote(a, b)
        return self.into("y", np.multiply, a, b)

    def backward(self, g):
        ga = self.into("ga", np.multiply, g, self.b) if self.needs(0) else None
        if self.a is self.b and ga is not None and self.needs(1):
            return ga, ga           # x * x: both gradients are g * x (the tape adds them up)
        return ga, (self.into("gb", np.multiply, g, self.a) if self.needs(1) else None)


class Div(Op):
    """Derivative: d/da = g / b, d/db = -g * a / b^2"""

    def forward(self, a, b):
        if a.dtype.kind in "biu" and b.dtype.kind in "biu":   # true division, as in PyTorch
            a, b = a.astype(np.float32), b.astype(np.float32)
        self.a, self.b = a, b = promote(a, b)
        return self.into("y", np.divide, a, b)

    def backward(self, g):
        a, b = self.a, self.b
        ga = self.into("ga", np.divide, g, b) if self.needs(0) else None
        gb = None
        if self.needs(1):
            gb = self.into("gb", np.multiply, self.into("gb", np.negative, g), a)
            gb = self.into("gb", np.divide, gb, self.into("b2", np.multiply, b, b))
        return ga, gb


class Pow(Op):
    """a ** b for tensors a and b (either may be a constant).
    Derivative: d/da = g * b * a^(b-1), d/db = g * a^b * log(a) (0 where a = 0)"""

    def forward(self, a, b):
        self.a, self.b = a, b = promote(a, b)
        self.out = np.power(a, b)
        return self.out

    def backward(self, g):
        a, b = self.a, self.b
        ga = gb = None
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.needs(0):
                # 0 where b == 0 (x**0 is constant), also at a == 0, as PyTorch
                ga = np.where(b == 0, 0, g * b * np.power(a, b - 1)).astype(g.dtype, copy=False)
            if self.needs(1):
                # d(a^b)/db = a^b log a, taken as 0 where a == 0 and b >= 0 (as PyTorch)
                gb = np.where((a == 0) & (b >= 0), 0,
                              g * self.out * np.log(a)).astype(g.dtype, copy=False)
        return ga, gb


class Neg(Op):
    """Derivative: d/dx = -g"""

    def forward(self, x):
        return self.into("y", np.negative, x)

    def backward(self, g):
        return (self.into("gx", np.negative, g),)


class Exp(Op):
    """Derivative: d/dx = g * y"""

    def forward(self, x):
        self.out = self.into("y", np.exp, x)
        return self.out

    def backward(self, g):
        return (self.into("gx", np.multiply, g, self.out),)


class Log(Op):
    """Derivative: d/dx = g / x"""

    def forward(self, x):
        self.x = x
        return np.log(x)

    def backward(self, g):
        return (g / self.x,)


class Sqrt(Op):
    """Derivative: d/dx = g / (2 y)"""

    def forward(self, x):
        self.out = np.sqrt(x)
        return self.out

    def backward(self, g):
        return (g / (2 * self.out),)


class Abs(Op):
    """Derivative: d/dx = g * sign(x) (0 at x = 0, as torch)"""

    def forward(self, x):
        self.x = x
        return np.abs(x)

    def backward(self, g):
        return (g * np.sign(self.x),)


class Sin(Op):
    """Derivative: d/dx = g * cos(x)"""

    def forward(self, x):
        self.x = x
        return np.sin(x)

    def backward(self, g):
        return (g * np.cos(self.x),)


class Cos(Op):
    """Derivative: d/dx = -g * sin(x)"""

    def forward(self, x):
        self.x = x
        return np.cos(x)

    def backward(self, g):
        return (-g * np.sin(self.x),)


class _KernelActivation(Op):
    """relu, sigmoid and tanh run through the same scalar kernels (pynn.kernels.activation) as
    the bias + activation fused into Linear and Conv2d, so both paths give the same values and
    gradients, also at +-inf and NaN. attrs: none; `act` is the kernel's name of the function.

    Derivative: d/dx = g * act'(x), written through the output y (each subclass states it)"""
    act = None

    def forward(self, x):
        if x.dtype.kind != "f":
            if self.act == "relu" and x.dtype.kind in "iu":    # integers stay integers (torch)
                self.out = np.maximum(x, 0)
                return self.out
            x = x.astype(np.float32)     # sigmoid/tanh of integers or bools: float32, as torch
        x = x if x.flags.c_contiguous else np.ascontiguousarray(x)
        self.out = self.buffer("out", x.shape, x.dtype)
        act_forward(x, ACTIVATION_CODES[self.act], self.out)
        return self.out

    def backward(self, g):
        g = g.astype(self.out.dtype, copy=False)
        g = g if g.flags.c_contiguous else np.ascontiguousarray(g)
        gx = self.buffer("gx", g.shape, g.dtype)
        act_backward(g, self.out, ACTIVATION_CODES[self.act], gx)
        return (gx,)


class Tanh(_KernelActivation):
    """y = tanh(x).

    Derivative: d/dx = g * (1 - y * y)"""
    act = "tanh"


def stable_sigmoid(x, op=None, key="sigmoid"):
    """1 / (1 + exp(-x)) without overflow for large |x|; with `op` (float x), written into
    op's buffer `key` (using two more of its buffers, key + "_e" and key + "_neg")."""
    if op is None or x.dtype.kind != "f":
        e = np.exp(-np.abs(x))
        return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)
    e = np.abs(x, out=op.buffer(key + "_e", x.shape, x.dtype))
    np.negative(e, out=e)
    np.exp(e, out=e)
    s = np.add(e, 1, out=op.buffer(key, x.shape, x.dtype))
    e /= s                                  # e / (1 + e), for x < 0
    np.divide(1, s, out=s)                  # 1 / (1 + e), for x >= 0
    np.copyto(s, e, where=np.less(x, 0, out=op.buffer(key + "_neg", x.shape, np.bool_)))
    return s


class Sigmoid(_KernelActivation):
    """y = 1 / (1 + exp(-x)), stable in both tails.

    Derivative: d/dx = g * (y * (1 - y))"""
    act = "sigmoid"


class Relu(_KernelActivation):
    """y = max(x, 0), NaN kept. attr-like ``fused``: the BatchNorm before it applies it
    (BatchNorm.fuse_relu, in a compiled plan), and this op passes values and gradients through.

    Derivative: d/dx = g where y > 0 or y is NaN, else 0 (also for an infinite g)"""
    act = "relu"
    fused = False

    def forward(self, x):
        return x if self.fused else super().forward(x)

    def backward(self, g):
        return (g,) if self.fused else super().backward(g)


class LeakyRelu(Op):
    """attrs: negative_slope.
    Derivative: d/dx = g where x > 0, g * negative_slope elsewhere"""

    def forward(self, x):
        self.x = x
        if x.dtype.kind != "f":
            return np.where(x > 0, x, x * self.negative_slope)
        self.pos = np.greater(x, 0, out=self.buffer("pos", x.shape, np.bool_))
        y = np.multiply(x, self.negative_slope, out=self.buffer("y", x.shape, x.dtype))
        np.copyto(y, x, where=self.pos)
        return y

    def backward(self, g):
        if self.x.dtype.kind != "f" or g.shape != self.x.shape:
            return (np.where(self.x > 0, g, g * self.negative_slope),)
        gx = np.multiply(g, self.negative_slope, out=self.buffer("gx", g.shape, g.dtype))
        np.copyto(gx, g, where=self.pos)
        return (gx,)


_SQRT1_2 = math.sqrt(0.5)
_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)


class Gelu(Op):
    """x * Phi(x) with the exact normal CDF, as torch.nn.GELU() by default. float32 runs as one
    Numba loop each way (``kernels/special.py``: polynomial erf and exp, vectorised); other
    dtypes through NumPy and libm's erf.
    Derivative: d/dx = g * (Phi(x) + x * phi(x)), Phi/phi the normal CDF/density"""

    def forward(self, x):
        self.x = x
        # Python-float constants: a NumPy float64 scalar would turn float32 math into float64
        cdf = self.cdf = self.buffer("cdf", x.shape, x.dtype)
        y = self.buffer("y", x.shape, x.dtype)
        if x.dtype == np.float32:
            self.x = x = self.contiguous("x", x)
            gelu_forward(x.reshape(-1), cdf.reshape(-1), y.reshape(-1))
            return y
        np.multiply(x, _SQRT1_2, out=cdf)
        erf(cdf, out=cdf)
        cdf += 1
        cdf *= 0.5
        return np.multiply(x, cdf, out=y)

    def backward(self, g):
        x = self.x
        if x.dtype == np.float32 and g.dtype == np.float32 and g.shape == x.shape:
            gx = self.buffer("gx", x.shape, x.dtype)
            gelu_backward(x.reshape(-1), self.cdf.reshape(-1),
                          self.contiguous("g", g).reshape(-1), gx.reshape(-1))
            return (gx,)
        t = self.buffer("t", x.shape, x.dtype)          # x * pdf(x), then Phi'(x) * x + Phi
        np.multiply(x, -0.5, out=t)
        t *= x
        np.exp(t, out=t)
        t *= _INV_SQRT_2PI
        t *= x
        t += self.cdf
        return (self.into("gx", np.multiply, g, t),)


class Softplus(Op):
    """log(1 + exp(beta x)) / beta, linear above `threshold` as in PyTorch. attrs: beta, threshold.
    Derivative: d/dx = g * sigmoid(beta x) (g where beta x > threshold)"""

    def forward(self, x):
        self.x = x
        if x.dtype.kind != "f":
            bx = x * self.beta
            return np.where(bx > self.threshold, x,
                            np.logaddexp(0, bx) / self.beta).astype(x.dtype)
        bx = self.bx = np.multiply(x, self.beta, out=self.buffer("bx", x.shape, x.dtype))
        self.linear = np.greater(bx, self.threshold, out=self.buffer("linear", x.shape, np.bool_))
        y = np.logaddexp(0, bx, out=self.buffer("y", x.shape, x.dtype))
        y /= self.beta
        np.copyto(y, x, where=self.linear)
        return y

    def backward(self, g):
        if self.x.dtype.kind != "f" or g.dtype != self.x.dtype or g.shape != self.x.shape:
            bx = self.x * self.beta
            return (np.where(bx > self.threshold, g, g * stable_sigmoid(bx)),)
        gx = stable_sigmoid(self.bx, self, "gx")
        gx *= g
        np.copyto(gx, g, where=self.linear)
        return (gx,)


class Clip(Op):
    """attrs: min, max (either may be None). Gradient passes where min <= x <= max.
    Derivative: d/dx = g where min <= x <= max, 0 elsewhere"""

    def forward(self, x):
        self.x = x
        return np.clip(x, self.min, self.max)

    def backward(self, g):
        mask = np.ones(self.x.shape, dtype=bool)
        if self.min is not None:
            mask &= self.x >= self.min
        if self.max is not None:
            mask &= self.x <= self.max
        return (g * mask,)


def _split_by(op, wins, g):
    """The gradients of max/min(a, b): g to a where wins(a, b), to b where wins(b, a), half to
    each on ties; (op's buffers hold the shares and the two gradients)."""
    a, b = op.a, op.b
    if g.dtype.kind != "f":
        share = np.where(wins(a, b), 1.0, np.where(a == b, 0.5, 0.0)).astype(g.dtype)
        return g * share, g * (1 - share)
    shape = np.broadcast_shapes(a.shape, b.shape)
    share = op.buffer("share", shape, g.dtype)
    np.copyto(share, wins(a, b, out=op.buffer("mask", shape, np.bool_)))
    np.copyto(share, 0.5, where=np.equal(a, b, out=op.buffer("mask", shape, np.bool_)))
    rest = np.subtract(1, share, out=op.buffer("rest", shape, g.dtype))
    return op.into("ga", np.multiply, g, share), op.into("gb", np.multiply, g, rest)


class Maximum(Op):
    """Elementwise max; on ties the gradient is split evenly, as in PyTorch.
    Derivative: d/da = g where a > b, d/db = g where b > a, g / 2 to each on ties"""

    def forward(self, a, b):
        self.a, self.b = a, b = promote(a, b)
        return self.into("y", np.maximum, a, b)

    def backward(self, g):
        return _split_by(self, np.greater, g)


class Minimum(Op):
    """Derivative: d/da = g where a < b, d/db = g where b < a, g / 2 to each on ties"""

    def forward(self, a, b):
        self.a, self.b = a, b = promote(a, b)
        return self.into("y", np.minimum, a, b)

    def backward(self, g):
        return _split_by(self, np.less, g)


class Where(Op):
    """where(cond, a, b); cond (boolean) gets no gradient.
    Derivative: d/da = g where cond, d/db = g where not cond; none for cond"""

    def forward(self, cond, a, b):
        self.cond = cond.astype(bool, copy=False)
        return np.where(self.cond, a, b)

    def backward(self, g):
        zero = np.zeros((), dtype=g.dtype)
        return None, np.where(self.cond, g, zero), np.where(self.cond, zero, g)


class Compare(Op):
    """a == b, a < b, ...: boolean results, no gradient. attrs: fn (a NumPy ufunc name).
    Derivative: none (not differentiable)"""
    differentiable = False

    def forward(self, a, b):
        return getattr(np, self.fn)(a, b)


class Detach(Op):
    """The identity, passing no gradient (x.detach() inside a model being built).
    Derivative: none (not differentiable)"""
    differentiable = False

    def forward(self, x):
        return x


class Cast(Op):
    """attrs: dtype. The gradient is cast back to the input's dtype.
    Derivative: d/dx = g cast back to x's dtype"""

    def forward(self, x):
        self.in_dtype = x.dtype
        return x.astype(self.dtype)

    def backward(self, g):
        return (g.astype(self.in_dtype),)
