"""MaxPool2d and AvgPool2d over NCHW input (Numba kernels)."""
from ..ops import nn
from ..tensor import apply
from .base import Layer, _pair


class _Pool2d(Layer):
    op = None

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size = _pair(kernel_size)
        self.stride = _pair(stride) if stride is not None else self.kernel_size
        self.padding = _pair(padding)

    def check_input(self, x):
        if x.ndim != 4:
            raise self.output_shape_error(x, "(batch, channels, height, width)")
        for size, k, p in zip(x.shape[2:], self.kernel_size, self.padding):
            if size + 2 * p < k:
                raise self.output_shape_error(x, f"an image of at least {self.kernel_size}")

    def forward(self, x):
        return apply(self.op(kernel_size=self.kernel_size, stride=self.stride,
                             padding=self.padding), x)

    def config(self):
        return {"kernel_size": list(self.kernel_size), "stride": list(self.stride),
                "padding": list(self.padding)}

    def __repr__(self):
        return f"{type(self).__name__}(kernel_size={self.kernel_size}, stride={self.stride})"


class MaxPool2d(_Pool2d):
    """`MaxPool2d(kernel_size, stride=None, padding=0)`; stride defaults to kernel_size."""
    op = nn.MaxPool2d


class AvgPool2d(_Pool2d):
    """`AvgPool2d(kernel_size, stride=None, padding=0)` (padding counts in the average)."""
    op = nn.AvgPool2d
