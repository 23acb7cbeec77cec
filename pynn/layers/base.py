"""Layer: a callable that owns parameters and applies ops to its input.

Calling a layer on a tensor runs it eagerly (so it also works outside a Model) and records the
call on the output (`out._history = (layer, inputs)`), which is what `Model` reads to build its
summary and to save the architecture.
"""
import math

import numpy as np

from ..random import rng
from ..tensor import Tensor


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

    def __init__(self, name=None):
        self.training = True
        self.name = name
        self.built = False

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

    def build(self, *inputs):
        """Create the weights whose sizes come from the first inputs (Keras-style layers such as
        `Dense(256)`); called once, by the first call, before `check_input` and `forward`."""

    def check_input(self, *inputs):
        """Raise a ValueError naming the layer and the shapes if the inputs cannot go in."""

    def forward(self, *inputs, **kwargs):
        raise NotImplementedError

    def __call__(self, *inputs, **kwargs):
        if len(inputs) == 1 and isinstance(inputs[0], (list, tuple)):
            inputs = tuple(inputs[0])          # merge layers: layer([a, b])
        xs = []
        for x in inputs:
            if isinstance(x, np.ndarray):
                x = Tensor(x)
            if not isinstance(x, Tensor):
                raise TypeError(f"{self!r} expects Tensors or NumPy arrays, got "
                                f"{type(x).__name__}")
            xs.append(x)
        if not self.built:
            self.build(*xs)
            self.built = True
        self.check_input(*xs)
        symbolic = any(x._symbolic for x in xs)
        if symbolic:   # building a model: run in eval mode so no running stats or RNG are touched
            training, self.training = self.training, False
            try:
                out = self.forward(*xs, **kwargs)
            finally:
                self.training = training
        else:
            out = self.forward(*xs, **kwargs)
        for o in (out if isinstance(out, (tuple, list)) else (out,)):
            o._history = (self, tuple(xs))
            o._symbolic = symbolic
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
