"""Dropout and batch normalisation: layers that behave differently in train and eval mode."""
import numbers

import numpy as np

from ..ops import nn
from ..tensor import Tensor, apply
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
    """Normalise each feature/channel (dim 1) over the batch and every other dim.

    Args:
        num_features: C; None (or left out) to read it from the first input (Keras-style).
        eps: added to the variance (default 1e-5).
        momentum: weight of the newest batch in the running statistics (default 0.1).
        affine: learn a per-feature weight (ones) and bias (zeros) (default True).
        track_running_stats: keep running_mean / running_var and use them in eval mode
            (default True); when False, batch statistics are used in both modes.
    """
    param_names = ("weight", "bias")
    buffer_names = ("running_mean", "running_var")
    ndims = ()

    def __init__(self, num_features=None, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, name=None):
        super().__init__(name=name)
        self.eps, self.momentum = eps, momentum
        self.affine, self.track_running_stats = bool(affine), bool(track_running_stats)
        if not self.affine:
            self.param_names = ()
        if not self.track_running_stats:
            self.buffer_names = ()
        self.num_features = None
        self.weight = self.bias = self.running_mean = self.running_var = None
        if num_features is not None:
            self._make_state(num_features)

    def _make_state(self, num_features):
        if int(num_features) <= 0:
            raise ValueError(f"{type(self).__name__}: num_features must be a positive int, got "
                             f"{num_features!r}")
        self.num_features = num_features = int(num_features)
        if self.affine:
            self.weight = Tensor(np.ones(num_features, np.float32), requires_grad=True)
            self.bias = Tensor(np.zeros(num_features, np.float32), requires_grad=True)
        if self.track_running_stats:
            self.running_mean = np.zeros(num_features, np.float32)
            self.running_var = np.ones(num_features, np.float32)

    def build(self, x):
        if self.num_features is None and x.ndim in self.ndims:
            self._make_state(x.shape[1])

    def check_input(self, x):
        if x.ndim not in self.ndims or x.shape[1] != self.num_features:
            raise self.output_shape_error(x, self.expected)

    def forward(self, x):
        params = (self.weight, self.bias) if self.affine else ()
        return apply(nn.BatchNorm(module=self), x, *params)

    def config(self):
        return {"num_features": self.num_features, "eps": self.eps, "momentum": self.momentum,
                "affine": self.affine, "track_running_stats": self.track_running_stats}

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
