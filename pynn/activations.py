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


def gelu(x, approximate="none"):
    """x * Phi(x); approximate="tanh" uses torch's tanh approximation."""
    return _t(x).gelu(approximate)


def gelu_tanh(x):
    """gelu(x, approximate="tanh"), as a name for `activation=`."""
    return _t(x).gelu("tanh")


def softplus(x):
    return _t(x).softplus()


def elu(x, alpha=1.0):
    """x if x > 0 else alpha * (exp(x) - 1)."""
    return _t(x).elu(alpha)


def selu(x):
    """scale * elu(x, alpha) with the self-normalising constants of torch.nn.SELU."""
    return _t(x).selu()


def silu(x):
    """x * sigmoid(x)."""
    return _t(x).silu()


swish = silu


def mish(x):
    """x * tanh(softplus(x))."""
    return _t(x).mish()


def softsign(x):
    """x / (1 + |x|)."""
    return _t(x).softsign()


def hardtanh(x, min_val=-1.0, max_val=1.0):
    """clip(x, min_val, max_val)."""
    return _t(x).hardtanh(min_val, max_val)


def hardsigmoid(x):
    """clip(x + 3, 0, 6) / 6."""
    return _t(x).hardsigmoid()


def prelu(x, weight):
    """x if x > 0 else weight * x, weight one slope per channel (axis 1) or a single one. Not an
    `activation=` name (it has a parameter): use the PReLU layer."""
    x = _t(x)
    return x.prelu(weight)


def linear(x):
    return _t(x)


ACTIVATIONS = {"relu": relu, "sigmoid": sigmoid, "tanh": tanh, "softmax": softmax,
               "log_softmax": log_softmax, "leaky_relu": leaky_relu, "gelu": gelu,
               "softplus": softplus, "linear": None, None: None,
               "gelu_tanh": gelu_tanh, "elu": elu, "selu": selu, "silu": silu, "swish": swish,
               "mish": mish, "softsign": softsign, "hardtanh": hardtanh,
               "hardsigmoid": hardsigmoid}

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
