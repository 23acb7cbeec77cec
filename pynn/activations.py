"""Activation functions, usable on tensors and as `activation=` arguments of layers.

`Dense(784, 256, relu)`, `Dense(784, 256, "relu")` and `Dense(784, 256, activation=relu)` are the
same layer. relu, sigmoid and tanh are fused into the layer's own kernel; the others run as a
separate op after it.
"""
from .tensor import Tensor


def _t(x):
    return x if isinstance(x, Tensor) else Tensor(x)


def relu(x):
    return _t(x).relu()


def sigmoid(x):
    return _t(x).sigmoid()


def tanh(x):
    return _t(x).tanh()


def softmax(x, dim=-1):
    return _t(x).softmax(dim)


def log_softmax(x, dim=-1):
    return _t(x).log_softmax(dim)


def leaky_relu(x, negative_slope=0.01):
    return _t(x).leaky_relu(negative_slope)


def gelu(x):
    return _t(x).gelu()


def softplus(x):
    return _t(x).softplus()


def linear(x):
    return _t(x)


ACTIVATIONS = {"relu": relu, "sigmoid": sigmoid, "tanh": tanh, "softmax": softmax,
               "log_softmax": log_softmax, "leaky_relu": leaky_relu, "gelu": gelu,
               "softplus": softplus, "linear": None, None: None}

#: activations a Dense or Conv2d kernel applies itself, in the same pass as the bias
FUSED = ("relu", "sigmoid", "tanh")


def activation_name(activation):
    """The registered name of an activation given as a function, a name, or None."""
    if activation is None or isinstance(activation, str):
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose one of "
                             f"{sorted(k for k in ACTIVATIONS if k)}")
        return None if activation == "linear" else activation
    for name, fn in ACTIVATIONS.items():
        if fn is activation:
            return name
    raise ValueError(f"activation {activation!r} is not one of pynn.activations; apply custom "
                     f"functions to the layer's output instead")
