"""Convolutions over NCHW / NCL input: Conv2d, Conv1d (im2col + BLAS, bias and activation fused)
and ConvTranspose2d. PyTorch's weight layouts and default initialisation; Keras-style
`Conv2d(32, 3, padding="same")` (in_channels inferred from the first input) beside
`Conv2d(1, 32, 3)`."""
import math

import numpy as np

from ..activations import ACTIVATIONS, FUSED, activation_name
from ..ops import nn
from ..random import rng
from ..tensor import Tensor, apply
from .base import Layer, kaiming_uniform_bound, uniform_


def _tuple(v, n, what, layer):
    """An int or a sequence of n ints, as a tuple of n ints."""
    t = tuple(v) if isinstance(v, (tuple, list)) else (v,) * n
    if len(t) != n or not all(isinstance(i, (int, np.integer)) for i in t):
        raise ValueError(f"{layer}: {what} must be an int or {n} ints, got {v!r}")
    return tuple(int(i) for i in t)


def _positive(t, what, layer):
    if any(i <= 0 for i in t):
        raise ValueError(f"{layer}: {what} must be positive, got {t}")
    return t


def _uniform(bound, shape):
    return rng().uniform(-bound, bound, size=shape)


def _normal(std, shape):
    return rng().normal(0.0, std, size=shape)


#: Initializers by name for `kernel_initializer=` / `bias_initializer=` (Keras names and torch
#: names). Each takes (shape, fan_in, fan_out) and returns float64 values. (A local table until
#: pynn.init provides the same names.)
INITIALIZERS = {
    "zeros": lambda s, fi, fo: np.zeros(s),
    "ones": lambda s, fi, fo: np.ones(s),
    "he_normal": lambda s, fi, fo: _normal(math.sqrt(2.0 / fi), s),
    "he_uniform": lambda s, fi, fo: _uniform(math.sqrt(6.0 / fi), s),
    "glorot_normal": lambda s, fi, fo: _normal(math.sqrt(2.0 / (fi + fo)), s),
    "glorot_uniform": lambda s, fi, fo: _uniform(math.sqrt(6.0 / (fi + fo)), s),
    "lecun_normal": lambda s, fi, fo: _normal(math.sqrt(1.0 / fi), s),
    "lecun_uniform": lambda s, fi, fo: _uniform(math.sqrt(3.0 / fi), s),
}
INITIALIZERS.update({"kaiming_normal": INITIALIZERS["he_normal"],
                     "kaiming_uniform": INITIALIZERS["he_uniform"],
                     "xavier_normal": INITIALIZERS["glorot_normal"],
                     "xavier_uniform": INITIALIZERS["glorot_uniform"]})


def initial_values(name, shape, fan_in, fan_out, layer):
    """float32 values for a weight of `shape` from the initializer called `name`."""
    if name not in INITIALIZERS:
        raise ValueError(f"{layer}: unknown initializer {name!r}; choose one of "
                         f"{sorted(INITIALIZERS)}")
    return INITIALIZERS[name](shape, max(fan_in, 1), max(fan_out, 1)).astype(np.float32)


class _ConvNd(Layer):
    """What Conv1d, Conv2d and ConvTranspose2d share: argument forms, validation, weights."""
    param_names = ("weight", "bias")
    nd = 2
    transposed = False

    def __init__(self, in_channels, out_channels=None, kernel_size=None, stride=1, padding=0,
                 activation=None, bias=True, *, dilation=1, groups=1, output_padding=0,
                 kernel_initializer=None, bias_initializer=None, name=None):
        super().__init__(name=name)
        cls = type(self).__name__
        if kernel_size is None:          # Keras form: (filters, kernel_size)
            in_channels, out_channels, kernel_size = None, in_channels, out_channels
        if out_channels is None or kernel_size is None:
            raise ValueError(f"{cls}: give (out_channels, kernel_size) or (in_channels, "
                             f"out_channels, kernel_size)")
        n = self.nd
        self.in_channels = None if in_channels is None else int(in_channels)
        self.out_channels = int(out_channels)
        self.kernel_size = _positive(_tuple(kernel_size, n, "kernel_size", cls), "kernel_size",
                                     cls)
        self.stride = _positive(_tuple(stride, n, "stride", cls), "stride", cls)
        self.dilation = _positive(_tuple(dilation, n, "dilation", cls), "dilation", cls)
        self.groups = int(groups)
        if self.groups <= 0:
            raise ValueError(f"{cls}: groups must be positive, got {groups}")
        if self.out_channels <= 0 or (self.in_channels is not None and self.in_channels <= 0):
            raise ValueError(f"{cls}: channel counts must be positive, got in_channels="
                             f"{self.in_channels}, out_channels={self.out_channels}")
        if self.out_channels % self.groups:
            raise ValueError(f"{cls}: out_channels {self.out_channels} is not divisible by "
                             f"groups {self.groups}")
        self._set_padding(padding, cls)
        self.output_padding = _tuple(output_padding, n, "output_padding", cls)
        if self.transposed and any(op < 0 or op >= s for op, s in
                                   zip(self.output_padding, self.stride, strict=True)):
            raise ValueError(f"{cls}: output_padding {self.output_padding} must be >= 0 and "
                             f"smaller than the stride {self.stride}")
        self.activation = activation_name(activation)
        self.use_bias = bool(bias)
        self.kernel_initializer, self.bias_initializer = kernel_initializer, bias_initializer
        for init in (kernel_initializer, bias_initializer):
            if init is not None and init not in INITIALIZERS:
                raise ValueError(f"{cls}: unknown initializer {init!r}; choose one of "
                                 f"{sorted(INITIALIZERS)}")
        self.weight = self.bias = None
        if self.in_channels is not None:
            self._make_weights()

    def _set_padding(self, padding, cls):
        n = self.nd
        self.padding_mode = None
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"{cls}: padding must be 'same', 'valid', an int or {n} ints, "
                                 f"got {padding!r}")
            if padding == "same" and (self.transposed or any(s != 1 for s in self.stride)):
                raise ValueError(f"{cls}: padding='same' needs stride 1 (as in PyTorch), got "
                                 f"stride {self.stride}")
            self.padding_mode = padding
            total = [0] * n if padding == "valid" else [
                d * (k - 1) for d, k in zip(self.dilation, self.kernel_size, strict=True)]
            # PyTorch's "same": the odd extra row/column of padding goes at the end.
            self.padding = tuple(t // 2 for t in total)
            self.padding_end = tuple(t - t // 2 for t in total)
        else:
            self.padding = _tuple(padding, n, "padding", cls)
            self.padding_end = self.padding
        if any(p < 0 for p in self.padding):
            raise ValueError(f"{cls}: padding must be >= 0, got {self.padding}")

    def _weight_shape(self):
        k, G = self.kernel_size, self.groups
        if self.transposed:
            return (self.in_channels, self.out_channels // G) + k
        return (self.out_channels, self.in_channels // G) + k

    def _make_weights(self):
        cls = type(self).__name__
        if self.in_channels % self.groups:
            raise ValueError(f"{cls}: in_channels {self.in_channels} is not divisible by groups "
                             f"{self.groups}")
        shape = self._weight_shape()
        receptive = math.prod(self.kernel_size)
        fan_in, fan_out = shape[1] * receptive, shape[0] * receptive   # as torch computes them
        bound = kaiming_uniform_bound(fan_in)
        if self.kernel_initializer is None:
            w = uniform_(shape, bound)
        else:
            w = initial_values(self.kernel_initializer, shape, fan_in, fan_out, cls)
        self.weight = Tensor(w, requires_grad=True)
        if self.use_bias:
            if self.bias_initializer is None:
                b = uniform_((self.out_channels,), bound)
            else:
                b = initial_values(self.bias_initializer, (self.out_channels,), fan_in, fan_out,
                                   cls)
            self.bias = Tensor(b, requires_grad=True)

    def build(self, x):
        if self.in_channels is None:
            if x.ndim != self.nd + 2:
                raise self.output_shape_error(x, self._expected())
            self.in_channels = int(x.shape[1])
            self._make_weights()

    def _expected(self):
        sizes = "length" if self.nd == 1 else "height, width"
        return f"(batch, {self.in_channels}, {sizes})"

    def check_input(self, x):
        if x.ndim != self.nd + 2 or x.shape[1] != self.in_channels:
            raise self.output_shape_error(x, self._expected())
        if self.transposed:
            return
        for size, k, d, p, pe in zip(x.shape[2:], self.kernel_size, self.dilation,
                                     self.padding, self.padding_end, strict=True):
            if size + p + pe < d * (k - 1) + 1:
                raise self.output_shape_error(
                    x, f"a size of at least {d * (k - 1) + 1} (kernel {k}, dilation {d}) "
                       f"after padding {p + pe}")

    def _pair(self, t, fill):
        """A 1-D setting as the (height, width) pair of a height-1 Conv2d."""
        return (fill,) * (2 - self.nd) + tuple(t)

    def _activate(self, y, fused):
        if self.activation is not None and fused is None:
            y = ACTIVATIONS[self.activation](y)
        return y

    def forward(self, x):
        fused = self.activation if self.activation in FUSED else None
        params = (x, self.weight) if self.bias is None else (x, self.weight, self.bias)
        end = None if self.padding_end == self.padding else self._pair(self.padding_end, 0)
        op = nn.Conv2d(stride=self._pair(self.stride, 1), padding=self._pair(self.padding, 0),
                       padding_end=end, dilation=self._pair(self.dilation, 1),
                       groups=self.groups, activation=fused)
        return self._activate(apply(op, *params), fused)

    def config(self):
        return {"in_channels": self.in_channels, "out_channels": self.out_channels,
                "kernel_size": list(self.kernel_size), "stride": list(self.stride),
                "padding": self.padding_mode or list(self.padding),
                "dilation": list(self.dilation), "groups": self.groups,
                "activation": self.activation, "bias": self.use_bias,
                "kernel_initializer": self.kernel_initializer,
                "bias_initializer": self.bias_initializer}

    def __repr__(self):
        extra = "" if self.dilation == (1,) * self.nd else f", dilation={self.dilation}"
        extra += "" if self.groups == 1 else f", groups={self.groups}"
        pad = self.padding_mode or self.padding
        return (f"{type(self).__name__}({self.in_channels}->{self.out_channels}, "
                f"kernel_size={self.kernel_size}, stride={self.stride}, padding={pad}{extra})")


class Conv2d(_ConvNd):
    """2-D convolution over (N, C, H, W) input, as torch.nn.Conv2d.

    Args:
        in_channels: input channels; leave it out (`Conv2d(32, 3)`) to infer it from the first
            input, Keras-style.
        out_channels: output channels (Keras' `filters`).
        kernel_size, stride, dilation: an int or (h, w).
        padding: an int, (h, w), "valid" (no padding) or "same" (output as large as the input;
            stride 1 only; an odd total padding puts the extra row/column at the bottom/right,
            as PyTorch does).
        activation: None, a name or a function of pynn.activations; relu/sigmoid/tanh are fused
            into the convolution's own pass.
        bias: whether to add a learnable bias.
        groups: split the channels into this many groups convolved separately (`groups =
            in_channels` is a depthwise convolution).
        kernel_initializer, bias_initializer: an initializer name ("he_normal",
            "glorot_uniform", "zeros", ...); default: PyTorch's kaiming_uniform(a=sqrt(5)).

    Shape:
        input (N, in_channels, H, W); output (N, out_channels, OH, OW) with
        OH = (H + pad_top + pad_bottom - dilation*(kh - 1) - 1) // stride + 1.
        weight (out_channels, in_channels // groups, kh, kw), bias (out_channels,).

    Example:
        >>> conv = Conv2d(32, 3, padding="same", activation="relu")
        >>> conv(Tensor.randn(8, 1, 28, 28)).shape
        (8, 32, 28, 28)
    """
    nd = 2


class Conv1d(_ConvNd):
    """1-D convolution over (N, C, L) input, as torch.nn.Conv1d (run as a Conv2d of height 1).

    Args: as Conv2d, with ints (or 1-tuples) for kernel_size, stride, padding and dilation.

    Shape:
        input (N, in_channels, L); output (N, out_channels, OL); weight
        (out_channels, in_channels // groups, k).

    Example:
        >>> Conv1d(4, 8, 3, padding=1)(Tensor.randn(2, 4, 10)).shape
        (2, 8, 10)
    """
    nd = 1


class ConvTranspose2d(_ConvNd):
    """Transposed 2-D convolution (the gradient of Conv2d with respect to its input), as
    torch.nn.ConvTranspose2d: upsamples by the stride.

    Args:
        in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
        activation, initializers: as Conv2d (no "same" padding), in PyTorch's order for the
        first five; `ConvTranspose2d(16, 2, stride=2)` infers in_channels.
        output_padding: extra rows/columns at the bottom/right of the output, smaller than the
            stride (PyTorch also allows it up to the dilation; pynn does not).

    Shape:
        input (N, in_channels, H, W); output (N, out_channels, OH, OW) with
        OH = (H - 1)*stride - 2*padding + dilation*(kh - 1) + output_padding + 1;
        weight (in_channels, out_channels // groups, kh, kw), bias (out_channels,).

    Example:
        >>> ConvTranspose2d(8, 4, 2, stride=2)(Tensor.randn(1, 8, 7, 7)).shape
        (1, 4, 14, 14)
    """
    transposed = True

    def __init__(self, in_channels, out_channels=None, kernel_size=None, stride=1, padding=0,
                 output_padding=0, groups=1, bias=True, dilation=1, activation=None, *,
                 kernel_initializer=None, bias_initializer=None, name=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, activation,
                         bias, dilation=dilation, groups=groups, output_padding=output_padding,
                         kernel_initializer=kernel_initializer,
                         bias_initializer=bias_initializer, name=name)

    def forward(self, x):
        params = (x, self.weight) if self.bias is None else (x, self.weight, self.bias)
        op = nn.ConvTranspose2d(stride=self.stride, padding=self.padding,
                                output_padding=self.output_padding, dilation=self.dilation,
                                groups=self.groups)
        return self._activate(apply(op, *params), None)

    def config(self):
        cfg = super().config()
        cfg["output_padding"] = list(self.output_padding)
        return cfg
