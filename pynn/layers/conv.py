"""Conv2d: 2-D convolution over NCHW input (im2col + BLAS, bias and activation fused)."""
from ..activations import ACTIVATIONS, FUSED, activation_name
from ..ops import nn
from ..tensor import Tensor, apply
from .base import Layer, _pair, kaiming_uniform_bound, uniform_


class Conv2d(Layer):
    """`Conv2d(in_channels, out_channels, kernel_size, stride=1, padding=0, activation=None,
    bias=True)`; int or (h, w) arguments; weight (out, in, kh, kw) initialised as in PyTorch."""
    param_names = ("weight", "bias")

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 activation=None, bias=True):
        super().__init__()
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size, self.stride = _pair(kernel_size), _pair(stride)
        self.padding = _pair(padding)
        self.activation = activation_name(activation)
        kh, kw = self.kernel_size
        bound = kaiming_uniform_bound(self.in_channels * kh * kw)
        self.weight = Tensor(uniform_((self.out_channels, self.in_channels, kh, kw), bound),
                             requires_grad=True)
        self.bias = Tensor(uniform_((self.out_channels,), bound), requires_grad=True) \
            if bias else None

    def check_input(self, x):
        expected = f"(batch, {self.in_channels}, height, width)"
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise self.output_shape_error(x, expected)
        for size, k, p in zip(x.shape[2:], self.kernel_size, self.padding):
            if size + 2 * p < k:
                raise self.output_shape_error(
                    x, f"an image of at least {self.kernel_size} after padding {self.padding}")

    def forward(self, x):
        fused = self.activation if self.activation in FUSED else None
        params = (x, self.weight) if self.bias is None else (x, self.weight, self.bias)
        y = apply(nn.Conv2d(stride=self.stride, padding=self.padding, activation=fused), *params)
        if self.activation is not None and fused is None:
            y = ACTIVATIONS[self.activation](y)
        return y

    def config(self):
        return {"in_channels": self.in_channels, "out_channels": self.out_channels,
                "kernel_size": list(self.kernel_size), "stride": list(self.stride),
                "padding": list(self.padding), "activation": self.activation,
                "bias": self.bias is not None}

    def __repr__(self):
        return (f"Conv2d({self.in_channels}->{self.out_channels}, "
                f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding})")
