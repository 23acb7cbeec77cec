"""Weight initializers, as torch.nn.init: each fills a Tensor in place (keeping its dtype) from
pynn's seeded generator (`pynn.manual_seed`) and returns it.

    w = Tensor.empty(256, 784)
    pynn.init.kaiming_normal_(w, nonlinearity="relu")
    Dense(784, 256, kernel_initializer="he_normal", bias_initializer="zeros")

`get(name)` turns a name into an initializer: the functions' names (with or without the
trailing underscore) and the Keras names glorot_uniform, glorot_normal, he_uniform, he_normal,
lecun_uniform, lecun_normal, orthogonal, zeros, ones, random_normal, random_uniform. Keras's
*_normal initializers draw from a truncated normal; here they draw from the plain normal with
the same standard deviation, as torch's functions do.

Fans follow torch's layout: a weight (out, in, *kernel) has fan_in = in * prod(kernel) and
fan_out = out * prod(kernel).
"""
import math

import numpy as np

from .random import rng

__all__ = ["calculate_gain", "xavier_uniform_", "xavier_normal_", "kaiming_uniform_",
           "kaiming_normal_", "orthogonal_", "zeros_", "ones_", "constant_", "normal_",
           "uniform_", "get", "initialize_"]


def calculate_gain(nonlinearity, param=None):
    """The recommended gain for an activation (torch.nn.init.calculate_gain): 1 for linear,
    conv and sigmoid, 5/3 for tanh, sqrt(2) for relu, sqrt(2 / (1 + slope^2)) for leaky_relu
    (slope `param`, default 0.01), 3/4 for selu."""
    linear = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
              "conv_transpose3d", "sigmoid")
    if nonlinearity in linear:
        return 1
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, (int, float)) and not isinstance(param, bool):
            slope = param
        else:
            raise ValueError(f"negative_slope {param} not a valid number")
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"Unsupported nonlinearity {nonlinearity}")


def _fans(tensor, name):
    shape = tensor.shape
    if len(shape) < 2:
        raise ValueError(f"{name}: fan in and fan out need a tensor of at least 2 dims, got "
                         f"shape {tuple(shape)} (use zeros/ones/normal/uniform for a bias)")
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def _fill(tensor, values):
    """Write `values` into tensor.data in place, in the tensor's own dtype; return tensor."""
    tensor.data[...] = values
    return tensor


def uniform_(tensor, a=0.0, b=1.0):
    """Fill with U(a, b)."""
    return _fill(tensor, rng().uniform(a, b, size=tensor.shape))


def normal_(tensor, mean=0.0, std=1.0):
    """Fill with N(mean, std^2)."""
    return _fill(tensor, mean + std * rng().standard_normal(tensor.shape))


def zeros_(tensor):
    return _fill(tensor, 0)


def ones_(tensor):
    return _fill(tensor, 1)


def constant_(tensor, val):
    return _fill(tensor, val)


def xavier_uniform_(tensor, gain=1.0):
    """Glorot uniform: U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = _fans(tensor, "xavier_uniform_")
    a = math.sqrt(3.0) * gain * math.sqrt(2.0 / float(fan_in + fan_out))
    return uniform_(tensor, -a, a)


def xavier_normal_(tensor, gain=1.0):
    """Glorot normal: N(0, std^2), std = gain * sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = _fans(tensor, "xavier_normal_")
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / float(fan_in + fan_out)))


def _kaiming_std(tensor, a, mode, nonlinearity, name):
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"{name}: mode {mode!r} not supported, use 'fan_in' or 'fan_out'")
    fan_in, fan_out = _fans(tensor, name)
    fan = fan_in if mode == "fan_in" else fan_out
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform_(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu"):
    """He uniform: U(-b, b), b = gain * sqrt(3 / fan) (torch's defaults: leaky_relu, a=0)."""
    bound = math.sqrt(3.0) * _kaiming_std(tensor, a, mode, nonlinearity, "kaiming_uniform_")
    return uniform_(tensor, -bound, bound)


def kaiming_normal_(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu"):
    """He normal: N(0, std^2), std = gain / sqrt(fan)."""
    return normal_(tensor, 0.0, _kaiming_std(tensor, a, mode, nonlinearity, "kaiming_normal_"))


def orthogonal_(tensor, gain=1.0):
    """A (semi-)orthogonal matrix from the QR decomposition of a normal sample, times `gain`
    (dims after the first are flattened: rows = shape[0])."""
    if tensor.ndim < 2:
        raise ValueError(f"orthogonal_: needs a tensor of at least 2 dims, got shape "
                         f"{tuple(tensor.shape)}")
    rows = tensor.shape[0]
    cols = tensor.data.size // rows
    flat = rng().standard_normal((rows, cols))
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    q = q * np.sign(np.diag(r))        # a uniform (Haar) distribution, as torch
    if rows < cols:
        q = q.T
    return _fill(tensor, (gain * q).reshape(tensor.shape))


def _lecun_uniform(tensor):
    fan_in, _ = _fans(tensor, "lecun_uniform")
    bound = math.sqrt(3.0 / fan_in)
    return uniform_(tensor, -bound, bound)


def _lecun_normal(tensor):
    fan_in, _ = _fans(tensor, "lecun_normal")
    return normal_(tensor, 0.0, math.sqrt(1.0 / fan_in))


_BY_NAME = {
    "xavier_uniform": xavier_uniform_, "glorot_uniform": xavier_uniform_,
    "xavier_normal": xavier_normal_, "glorot_normal": xavier_normal_,
    "kaiming_uniform": kaiming_uniform_,
    "kaiming_normal": kaiming_normal_,
    "he_uniform": lambda t: kaiming_uniform_(t, nonlinearity="relu"),
    "he_normal": lambda t: kaiming_normal_(t, nonlinearity="relu"),
    "lecun_uniform": _lecun_uniform, "lecun_normal": _lecun_normal,
    "orthogonal": orthogonal_,
    "zeros": zeros_, "ones": ones_,
    "normal": normal_, "uniform": uniform_,
    "random_normal": lambda t: normal_(t, 0.0, 0.05),          # Keras's defaults
    "random_uniform": lambda t: uniform_(t, -0.05, 0.05),
}


def get(name):
    """The initializer called `name` (see the module docstring), or `name` itself if it is
    already a function of a tensor."""
    if callable(name):
        return name
    if not isinstance(name, str):
        raise TypeError(f"initializer must be a name or a function, got {type(name).__name__}")
    key = name.lower().rstrip("_")
    if key not in _BY_NAME:
        raise ValueError(f"unknown initializer {name!r}; expected one of {sorted(_BY_NAME)}")
    return _BY_NAME[key]


def initialize_(weight, kernel_initializer=None, bias=None, bias_initializer=None):
    """Apply the named (or given) initializers to a layer's weight and bias in place (None:
    keep the layer's default initialisation)."""
    if kernel_initializer is not None:
        get(kernel_initializer)(weight)
    if bias_initializer is not None and bias is not None:
        get(bias_initializer)(bias)
