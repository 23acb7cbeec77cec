"""Per-sample normalisation layers: LayerNorm and GroupNorm (BatchNorm lives in
regularization.py, beside Dropout, as the layers whose behaviour depends on train/eval mode)."""
import numpy as np

from ..ops import norm
from ..tensor import Tensor, apply
from .base import Layer


class LayerNorm(Layer):
    """Normalise over the last dims of the input, as torch.nn.LayerNorm.

    Args:
        normalized_shape: an int or a tuple: the trailing dims to normalise over.
        eps: added to the variance (default 1e-5).
        elementwise_affine: learn weight (ones) and bias (zeros) of normalized_shape
            (default True). bias: False to learn the weight only.

    Shape:
        input (*, *normalized_shape); output the same shape.

    Example:
        >>> y = LayerNorm(64)(Tensor.randn(8, 10, 64))
    """

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True,
                 name=None):
        super().__init__(name=name)
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else \
            tuple(int(n) for n in normalized_shape)
        if not shape or any(n <= 0 for n in shape):
            raise ValueError(f"LayerNorm: normalized_shape must be positive sizes, got "
                             f"{normalized_shape!r}")
        if eps <= 0:
            raise ValueError(f"LayerNorm: eps must be positive, got {eps}")
        self.normalized_shape, self.eps = shape, float(eps)
        self.elementwise_affine, self.use_bias = bool(elementwise_affine), bool(bias)
        self.weight = self.bias = None
        if self.elementwise_affine:
            self.weight = Tensor(np.ones(shape, np.float32), requires_grad=True)
            if self.use_bias:
                self.bias = Tensor(np.zeros(shape, np.float32), requires_grad=True)
        self.param_names = ("weight", "bias") if self.elementwise_affine else ()

    def check_input(self, x):
        k = len(self.normalized_shape)
        if x.ndim < k or tuple(x.shape[x.ndim - k:]) != self.normalized_shape:
            raise self.output_shape_error(x, f"(*, {', '.join(map(str, self.normalized_shape))})")

    def forward(self, x):
        op = norm.LayerNorm(ndim=len(self.normalized_shape), eps=self.eps)
        if self.weight is None:
            return apply(op, x)
        bias = self.bias if self.bias is not None else Tensor(
            np.zeros(self.normalized_shape, self.weight.dtype))
        return apply(op, x, self.weight, bias)

    def config(self):
        return {"normalized_shape": list(self.normalized_shape), "eps": self.eps,
                "elementwise_affine": self.elementwise_affine, "bias": self.use_bias}

    def __repr__(self):
        return f"LayerNorm({self.normalized_shape})"


class GroupNorm(Layer):
    """Normalise each sample over groups of channels, as torch.nn.GroupNorm.

    Args:
        num_groups: groups to split the channels into (must divide num_channels).
        num_channels: C of the input (N, C, *).
        eps: added to the variance (default 1e-5).
        affine: learn a per-channel weight (ones) and bias (zeros) (default True).

    Shape:
        input (N, C, *); output the same shape.

    Example:
        >>> y = GroupNorm(4, 16)(Tensor.randn(2, 16, 8, 8))
    """

    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True, name=None):
        super().__init__(name=name)
        num_groups, num_channels = int(num_groups), int(num_channels)
        if num_groups <= 0 or num_channels <= 0 or num_channels % num_groups:
            raise ValueError(f"GroupNorm: num_channels ({num_channels}) must be a positive "
                             f"multiple of num_groups ({num_groups})")
        self.num_groups, self.num_channels, self.eps = num_groups, num_channels, float(eps)
        self.affine = bool(affine)
        self.weight = Tensor(np.ones(num_channels, np.float32), requires_grad=True) \
            if self.affine else None
        self.bias = Tensor(np.zeros(num_channels, np.float32), requires_grad=True) \
            if self.affine else None
        self.param_names = ("weight", "bias") if self.affine else ()

    def check_input(self, x):
        if x.ndim < 2 or x.shape[1] != self.num_channels:
            raise self.output_shape_error(x, f"(batch, {self.num_channels}, *)")

    def forward(self, x):
        op = norm.GroupNorm(num_groups=self.num_groups, eps=self.eps)
        if not self.affine:
            return apply(op, x)
        return apply(op, x, self.weight, self.bias)

    def config(self):
        return {"num_groups": self.num_groups, "num_channels": self.num_channels,
                "eps": self.eps, "affine": self.affine}

    def __repr__(self):
        return f"GroupNorm({self.num_groups}, {self.num_channels})"
