"""Layer: a callable that owns parameters and applies ops to its input.

Calling a layer on a tensor runs it eagerly (so it also works outside a Model) and records the
call on the output (`out._history = (layer, inputs)`), which is what `Model` reads to build its
summary and to save the architecture.
"""
import math

import numpy as np

from ..tensor import Tensor
from ..random import rng


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def uniform_(shape, bound, dtype=np.float32):
    """U(-bound, bound), PyTorch's default init for Linear/Conv weights and biases."""
    return rng().uniform(-bound, bound, size=shape).astype(dtype)


def kaiming_uniform_bound(fan_in):
    """kaiming_uniform_(a=sqrt(5)) as torch.nn.Linear/Conv2d use it: bound = 1/sqrt(fan_in)."""
    return 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0


def shape_str(t):
    """A tensor's shape as a user wrote it: (None, ...) when the batch dim is free."""
    shape = tuple(t.shape)
    if getattr(t, "_symbolic", False) and shape:
        shape = (None,) + shape[1:]
    return str(shape)


class Layer:
    #: names of the attributes holding parameters, in a stable order
    param_names = ()
    #: names of non-trainable state arrays saved with the weights (e.g. running means)
    buffer_names = ()

    def __init__(self):
        self.training = True
        self.name = None

    @property
    def parameters(self):
        return [getattr(self, n) for n in self.param_names if getattr(self, n) is not None]

    def named_parameters(self):
        return [(n, getattr(self, n)) for n in self.param_names if getattr(self, n) is not None]

    def train(self, mode=True):
        self.training = mode
        return self

    def eval(self):
        return self.train(False)

    def config(self):
        """Constructor arguments, as JSON-able values (what save() writes)."""
        return {}

    def check_input(self, x):
        """Raise a ValueError naming the layer and the shapes if `x` cannot go in."""

    def forward(self, x):
        raise NotImplementedError

    def __call__(self, x):
        if isinstance(x, np.ndarray):
            x = Tensor(x)
        if not isinstance(x, Tensor):
            raise TypeError(f"{self!r} expects a Tensor or a NumPy array, got {type(x).__name__}")
        self.check_input(x)
        symbolic = getattr(x, "_symbolic", False)
        if symbolic:   # building a model: run in eval mode so no running stats or RNG are touched
            training, self.training = self.training, False
            try:
                out = self.forward(x)
            finally:
                self.training = training
        else:
            out = self.forward(x)
        out._history = (self, (x,))
        out._symbolic = symbolic
        return out

    def output_shape_error(self, x, expected):
        return ValueError(f"{self!r} got input of shape {shape_str(x)}; expected {expected}")

    def __repr__(self):
        return type(self).__name__ + "()"


class ActivationLayer(Layer):
    """A layer that applies one activation function (ReLU(), Softmax(dim)...)."""
    activation = None

    def forward(self, x):
        from .. import activations
        return activations.ACTIVATIONS[self.activation](x)


class ReLU(ActivationLayer):
    activation = "relu"


class Sigmoid(ActivationLayer):
    activation = "sigmoid"


class Tanh(ActivationLayer):
    activation = "tanh"


class GELU(ActivationLayer):
    activation = "gelu"


class Softmax(Layer):
    def __init__(self, dim=-1):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return x.softmax(self.dim)

    def config(self):
        return {"dim": self.dim}


class LogSoftmax(Softmax):
    def forward(self, x):
        return x.log_softmax(self.dim)


class LeakyReLU(Layer):
    def __init__(self, negative_slope=0.01):
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x):
        return x.leaky_relu(self.negative_slope)

    def config(self):
        return {"negative_slope": self.negative_slope}
