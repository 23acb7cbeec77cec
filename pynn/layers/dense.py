"""Dense: a fully connected layer, y = activation(x @ W.T + b)."""
import numpy as np

from .. import init
from ..activations import ACTIVATIONS, FUSED, activation_name
from ..ops import nn
from ..tensor import Tensor, apply
from .base import Layer, kaiming_uniform_bound, uniform_


class Dense(Layer):
    """A fully connected layer: ``y = activation(x @ weight.T + bias)``.

    Two ways to write it:

    * PyTorch's, sizes explicit: ``Dense(in_features, out_features, activation=None, bias=True)``;
    * Keras's, the input size inferred at the first call: ``Dense(units, activation=None)``,
      i.e. one size only (``Dense(256, activation="relu")``, ``Dense(10, softmax)``).

    Args:
        in_features: size of each input sample (or, alone, `units` in the Keras form).
        out_features: size of each output sample.
        activation: None, a function of pynn.activations or its name. relu/sigmoid/tanh are
            fused with the bias into one kernel pass.
        bias: learn an additive bias.
        kernel_initializer, bias_initializer: None (PyTorch's default), or an initializer of
            pynn.init or its name ("glorot_uniform", "he_normal", "zeros", ...).

    Shape:
        Input (N, *, in_features), output (N, *, out_features).

    The weight has PyTorch's layout (out_features, in_features) and PyTorch's initialisation.

    Example:
        >>> y = Dense(784, 256, "relu")(x)      # or Dense(256, activation="relu")(x)
    """
    param_names = ("weight", "bias")

    def __init__(self, in_features, out_features=None, activation=None, bias=True,
                 kernel_initializer=None, bias_initializer=None):
        super().__init__()
        if out_features is not None and not isinstance(out_features, (int, np.integer)):
            activation, out_features = out_features, None        # Dense(10, softmax)
        if out_features is None:                                 # Keras: Dense(units)
            in_features, out_features = None, in_features
        for what, n in (("in_features", in_features), ("out_features", out_features)):
            if n is not None and (isinstance(n, bool) or not isinstance(n, (int, np.integer))
                                  or n < 1):
                raise ValueError(f"Dense: {what} must be a positive int, got {n!r}")
        if not isinstance(bias, (bool, np.bool_)):
            raise TypeError(f"Dense: bias must be True or False, got {bias!r}")
        self.out_features = int(out_features)
        try:
            self.activation = activation_name(activation)
        except ValueError as e:
            raise ValueError(f"Dense: {e}") from None
        self.use_bias = bool(bias)
        self.kernel_initializer, self.bias_initializer = kernel_initializer, bias_initializer
        self.in_features = None
        self.weight = self.bias = None
        if in_features is not None:
            self._make_weights(int(in_features))
        self.built = in_features is not None

    def _make_weights(self, in_features):
        self.in_features = in_features
        bound = kaiming_uniform_bound(in_features)
        self.weight = Tensor(uniform_((self.out_features, in_features), bound), requires_grad=True)
        self.bias = Tensor(uniform_((self.out_features,), bound), requires_grad=True) \
            if self.use_bias else None
        init.initialize_(self.weight, self.kernel_initializer, self.bias, self.bias_initializer)

    def build(self, x):
        if x.ndim < 1:
            raise self.output_shape_error(x, "(batch, features)")
        self._make_weights(int(x.shape[-1]))

    def check_input(self, x):
        if x.ndim < 1 or x.shape[-1] != self.in_features:
            raise self.output_shape_error(x, f"(batch, {self.in_features})")

    def forward(self, x):
        fused = self.activation if self.activation in FUSED else None
        params = (x, self.weight) if self.bias is None else (x, self.weight, self.bias)
        y = apply(nn.Linear(activation=fused), *params)
        if self.activation is not None and fused is None:
            y = ACTIVATIONS[self.activation](y)
        return y

    def config(self):
        return {"in_features": self.in_features, "out_features": self.out_features,
                "activation": self.activation, "bias": self.use_bias,
                **{k: v for k, v in (("kernel_initializer", self.kernel_initializer),
                                     ("bias_initializer", self.bias_initializer))
                   if isinstance(v, str)}}

    def __repr__(self):
        if self.in_features is None:
            return f"Dense({self.out_features})"
        return f"Dense({self.in_features}->{self.out_features})"


Linear = Dense
