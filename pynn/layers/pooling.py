"""Pooling over NCHW / NCL input: MaxPool2d, AvgPool2d, MaxPool1d, AvgPool1d (Numba kernels),
global average / max pooling and AdaptiveAvgPool2d."""
from ..ops import nn
from ..ops.resize import AdaptiveAvgPool2d as _AdaptiveAvgPool2dOp
from ..tensor import apply
from .base import Layer
from .conv import _positive, _tuple


class _Pool(Layer):
    op = None
    nd = 2

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, *, name=None):
        super().__init__(name=name)
        cls, n = type(self).__name__, self.nd
        self.kernel_size = _positive(_tuple(kernel_size, n, "kernel_size", cls), "kernel_size",
                                     cls)
        self.stride = self.kernel_size if stride is None else _positive(
            _tuple(stride, n, "stride", cls), "stride", cls)
        self.padding = _tuple(padding, n, "padding", cls)
        if any(p < 0 for p in self.padding):
            raise ValueError(f"{cls}: padding must be >= 0, got {self.padding}")
        if any(2 * p > k for p, k in zip(self.padding, self.kernel_size, strict=True)):
            raise ValueError(f"{cls}: padding {self.padding} must be at most half of "
                             f"kernel_size {self.kernel_size} (as in PyTorch)")
        self.ceil_mode = bool(ceil_mode)

    def _expected(self):
        return "(batch, channels, length)" if self.nd == 1 else "(batch, channels, height, width)"

    def check_input(self, x):
        if x.ndim != self.nd + 2:
            raise self.output_shape_error(x, self._expected())
        for size, k, p in zip(x.shape[2:], self.kernel_size, self.padding, strict=True):
            if size + 2 * p < k:
                raise self.output_shape_error(x, f"a size of at least {self.kernel_size} after "
                                                 f"padding {self.padding}")

    def _op_attrs(self):
        one = (1,) * (2 - self.nd)           # 1-D pooling runs as 2-D with a window of height 1
        zero = (0,) * (2 - self.nd)
        return dict(kernel_size=one + self.kernel_size, stride=one + self.stride,
                    padding=zero + self.padding, ceil_mode=self.ceil_mode)

    def forward(self, x):
        return apply(self.op(**self._op_attrs()), x)

    def config(self):
        return {"kernel_size": list(self.kernel_size), "stride": list(self.stride),
                "padding": list(self.padding), "ceil_mode": self.ceil_mode}

    def __repr__(self):
        return f"{type(self).__name__}(kernel_size={self.kernel_size}, stride={self.stride})"


class _AvgPool(_Pool):
    op = nn.AvgPool2d

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True, *, name=None):
        super().__init__(kernel_size, stride, padding, ceil_mode, name=name)
        self.count_include_pad = bool(count_include_pad)

    def _op_attrs(self):
        return dict(super()._op_attrs(), count_include_pad=self.count_include_pad)

    def config(self):
        return dict(super().config(), count_include_pad=self.count_include_pad)


class MaxPool2d(_Pool):
    """Max over each window, as torch.nn.MaxPool2d.

    Args:
        kernel_size, stride (default: kernel_size), padding: an int or (h, w); padding (of
            -inf) at most half the kernel.
        ceil_mode: round the output size up, so that a last partial window is kept (it must
            start inside the input or its left/top padding).

    Shape: input (N, C, H, W); output (N, C, OH, OW), OH = (H + 2*padding - kh) // stride + 1
        (rounded up in ceil mode).

    Example:
        >>> MaxPool2d(2)(Tensor.randn(1, 3, 28, 28)).shape
        (1, 3, 14, 14)
    """
    op = nn.MaxPool2d


class AvgPool2d(_AvgPool):
    """Mean over each window, as torch.nn.AvgPool2d.

    Args: as MaxPool2d (zero padding), and count_include_pad: whether the zero padding counts
        in each window's divisor (default True, as in PyTorch).

    Shape: as MaxPool2d.

    Example:
        >>> pool = AvgPool2d(3, stride=2, padding=1, count_include_pad=False)
        >>> pool(Tensor.randn(1, 3, 8, 8)).shape
        (1, 3, 4, 4)
    """


class MaxPool1d(_Pool):
    """Max over windows of a sequence, as torch.nn.MaxPool1d. Args as MaxPool2d, ints.

    Shape: input (N, C, L); output (N, C, OL).

    Example:
        >>> MaxPool1d(2)(Tensor.randn(2, 4, 10)).shape
        (2, 4, 5)
    """
    op = nn.MaxPool2d
    nd = 1


class AvgPool1d(_AvgPool):
    """Mean over windows of a sequence, as torch.nn.AvgPool1d. Args as AvgPool2d, ints.

    Shape: input (N, C, L); output (N, C, OL).

    Example:
        >>> AvgPool1d(3, stride=1, padding=1)(Tensor.randn(2, 4, 10)).shape
        (2, 4, 10)
    """
    nd = 1


class _GlobalPool2D(Layer):
    def __init__(self, keepdims=False, *, name=None):
        super().__init__(name=name)
        self.keepdims = bool(keepdims)

    def check_input(self, x):
        if x.ndim != 4:
            raise self.output_shape_error(x, "(batch, channels, height, width)")

    def config(self):
        return {"keepdims": self.keepdims}


class GlobalAveragePooling2D(_GlobalPool2D):
    """Mean of each channel over height and width (Keras' GlobalAveragePooling2D).

    Args: keepdims: keep the two pooled axes as size 1 (output (N, C, 1, 1)).

    Shape: input (N, C, H, W); output (N, C).

    Example:
        >>> GlobalAveragePooling2D()(Tensor.randn(2, 16, 7, 7)).shape
        (2, 16)
    """

    def forward(self, x):
        return x.mean(dim=(2, 3), keepdim=self.keepdims)


class GlobalMaxPooling2D(_GlobalPool2D):
    """Max of each channel over height and width (Keras' GlobalMaxPooling2D); tied maxima share
    the gradient equally, as torch.amax.

    Args: keepdims: keep the two pooled axes as size 1.

    Shape: input (N, C, H, W); output (N, C).

    Example:
        >>> GlobalMaxPooling2D()(Tensor.randn(2, 16, 7, 7)).shape
        (2, 16)
    """

    def forward(self, x):
        return x.amax(dim=(2, 3), keepdim=self.keepdims)


class AdaptiveAvgPool2d(Layer):
    """Average over the windows that split the input into `output_size`, as
    torch.nn.AdaptiveAvgPool2d (window o spans [floor(o*H/OH), ceil((o+1)*H/OH))).

    Args: output_size: an int or (OH, OW); None in the pair keeps that input size.

    Shape: input (N, C, H, W); output (N, C, OH, OW).

    Example:
        >>> AdaptiveAvgPool2d(1)(Tensor.randn(2, 16, 7, 7)).shape
        (2, 16, 1, 1)
    """

    def __init__(self, output_size, *, name=None):
        super().__init__(name=name)
        size = tuple(output_size) if isinstance(output_size, (tuple, list)) else (output_size,) * 2
        if len(size) != 2 or any(s is not None and (not isinstance(s, int) or s <= 0)
                                 for s in size):
            raise ValueError(f"AdaptiveAvgPool2d: output_size must be a positive int or two "
                             f"(int or None), got {output_size!r}")
        self.output_size = size

    def check_input(self, x):
        if x.ndim != 4:
            raise self.output_shape_error(x, "(batch, channels, height, width)")

    def forward(self, x):
        size = tuple(x.shape[2 + i] if s is None else s for i, s in enumerate(self.output_size))
        if size == (1, 1):
            return x.mean(dim=(2, 3), keepdim=True)
        return apply(_AdaptiveAvgPool2dOp(output_size=size), x)

    def config(self):
        return {"output_size": list(self.output_size)}

    def __repr__(self):
        return f"AdaptiveAvgPool2d(output_size={self.output_size})"
