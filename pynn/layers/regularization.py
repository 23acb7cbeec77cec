"""Dropout and batch normalisation: layers that behave differently in train and eval mode."""
import numbers

import numpy as np

from ..tensor import Tensor, apply
from ..ops import nn
from .base import Layer


class Dropout(Layer):
    """Zero activations with probability p in training mode, scaling the rest by 1/(1-p)."""

    def __init__(self, p=0.5):
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 <= p < 1:
            raise ValueError(f"Dropout: p must be a number in [0, 1), got {p!r}")
        self.p = float(p)

    def forward(self, x):
        return apply(nn.Dropout(p=self.p, module=self), x)

    def config(self):
        return {"p": self.p}

    def __repr__(self):
        return f"Dropout(p={self.p})"


class _BatchNorm(Layer):
    param_names = ("weight", "bias")
    buffer_names = ("running_mean", "running_var")
    ndims = ()

    def __init__(self, num_features, eps=1e-5, momentum=0.1):
        super().__init__()
        self.num_features, self.eps, self.momentum = int(num_features), eps, momentum
        self.weight = Tensor(np.ones(num_features, np.float32), requires_grad=True)
        self.bias = Tensor(np.zeros(num_features, np.float32), requires_grad=True)
        self.running_mean = np.zeros(num_features, np.float32)
        self.running_var = np.ones(num_features, np.float32)

    def check_input(self, x):
        if x.ndim not in self.ndims or x.shape[1] != self.num_features:
            raise self.output_shape_error(x, self.expected)

    def forward(self, x):
        return apply(nn.BatchNorm(module=self), x, self.weight, self.bias)

    def config(self):
        return {"num_features": self.num_features, "eps": self.eps, "momentum": self.momentum}

    def __repr__(self):
        return f"{type(self).__name__}({self.num_features})"


class BatchNorm1d(_BatchNorm):
    """Normalise each feature over the batch: input (N, C) or (N, C, L)."""
    ndims = (2, 3)
    expected = "(batch, num_features) or (batch, num_features, length)"


class BatchNorm2d(_BatchNorm):
    """Normalise each channel over batch and pixels: input (N, C, H, W)."""
    ndims = (4,)
    expected = "(batch, num_features, height, width)"
