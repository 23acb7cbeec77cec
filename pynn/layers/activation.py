"""Activation layers beyond ReLU/Sigmoid/Tanh/Softmax (pynn.layers.base): ELU, SELU, SiLU, Mish,
Softsign, Hardtanh, Hardsigmoid, GELU(approximate=...) and PReLU (a learnable slope per
channel), each as its torch.nn namesake. The functions are in pynn.activations."""
import numpy as np

from .. import activations as F
from ..tensor import Tensor
from .base import Layer


class _Activation(Layer):
    fn = None

    def __init__(self, *, name=None):
        super().__init__(name=name)

    def forward(self, x):
        return type(self).fn(x)


class SELU(_Activation):
    """scale * elu(x, alpha) with alpha = 1.6733, scale = 1.0507, as torch.nn.SELU.
    Example: `SELU()(x)`."""
    fn = F.selu


class SiLU(_Activation):
    """x * sigmoid(x), as torch.nn.SiLU (Swish). Example: `SiLU()(x)`."""
    fn = F.silu


class Mish(_Activation):
    """x * tanh(softplus(x)), as torch.nn.Mish. Example: `Mish()(x)`."""
    fn = F.mish


class Softsign(_Activation):
    """x / (1 + |x|), as torch.nn.Softsign. Example: `Softsign()(x)`."""
    fn = F.softsign


class Hardsigmoid(_Activation):
    """clip(x + 3, 0, 6) / 6, as torch.nn.Hardsigmoid. Example: `Hardsigmoid()(x)`."""
    fn = F.hardsigmoid


class ELU(Layer):
    """x if x > 0 else alpha * (exp(x) - 1), as torch.nn.ELU.

    Args: alpha (default 1.0). Shape: any; output as input. Example: `ELU(0.5)(x)`.
    """

    def __init__(self, alpha=1.0, *, name=None):
        super().__init__(name=name)
        self.alpha = float(alpha)

    def forward(self, x):
        return F.elu(x, self.alpha)

    def config(self):
        return {"alpha": self.alpha}


class Hardtanh(Layer):
    """clip(x, min_val, max_val), as torch.nn.Hardtanh (gradient 0 at the bounds).

    Args: min_val (-1.0), max_val (1.0). Shape: any. Example: `Hardtanh(-2, 2)(x)`.
    """

    def __init__(self, min_val=-1.0, max_val=1.0, *, name=None):
        super().__init__(name=name)
        if min_val > max_val:
            raise ValueError(f"Hardtanh: min_val {min_val} is greater than max_val {max_val}")
        self.min_val, self.max_val = float(min_val), float(max_val)

    def forward(self, x):
        return F.hardtanh(x, self.min_val, self.max_val)

    def config(self):
        return {"min_val": self.min_val, "max_val": self.max_val}


class GELU(Layer):
    """x * Phi(x), as torch.nn.GELU; approximate="tanh" uses the tanh approximation.

    Args: approximate: "none" (default, the exact normal CDF) or "tanh". Shape: any.
    Example: `GELU("tanh")(x)`.
    """

    def __init__(self, approximate="none", *, name=None):
        super().__init__(name=name)
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x):
        return F.gelu(x, self.approximate)

    def config(self):
        return {"approximate": self.approximate}


class PReLU(Layer):
    """x if x > 0 else a * x with a learnable slope a, as torch.nn.PReLU.

    Args:
        num_parameters: 1 (one slope for everything) or the number of channels (input axis 1).
        init: the slopes' initial value (0.25).

    Shape: input (N, C, ...) (any shape when num_parameters is 1); output as input. weight
        (num_parameters,).

    Example:
        >>> PReLU(16)(Tensor.randn(2, 16, 5, 5)).shape
        (2, 16, 5, 5)
    """
    param_names = ("weight",)

    def __init__(self, num_parameters=1, init=0.25, *, name=None):
        super().__init__(name=name)
        if int(num_parameters) <= 0:
            raise ValueError(f"PReLU: num_parameters must be positive, got {num_parameters}")
        self.num_parameters, self.init = int(num_parameters), float(init)
        self.weight = Tensor(np.full(self.num_parameters, self.init, np.float32),
                             requires_grad=True)

    def check_input(self, x):
        if self.num_parameters != 1 and (x.ndim < 2 or x.shape[1] != self.num_parameters):
            raise self.output_shape_error(x, f"(batch, {self.num_parameters}, ...)")

    def forward(self, x):
        return F.prelu(x, self.weight)

    def config(self):
        return {"num_parameters": self.num_parameters, "init": self.init}

    def __repr__(self):
        return f"PReLU({self.num_parameters})"
