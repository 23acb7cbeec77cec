"""Dense: a fully connected layer, y = activation(x @ W.T + b)."""
from .. import init
from ..tensor import Tensor, apply
from ..ops import nn
from ..activations import activation_name, ACTIVATIONS, FUSED
from .base import Layer, uniform_, kaiming_uniform_bound


class Dense(Layer):
    """`Dense(in_features, out_features, activation=None, bias=True)`.

    The weight has PyTorch's layout (out_features, in_features) and PyTorch's initialisation.
    relu/sigmoid/tanh are fused with the bias into one kernel pass."""
    param_names = ("weight", "bias")

    def __init__(self, in_features, out_features, activation=None, bias=True,
                 kernel_initializer=None, bias_initializer=None):
        super().__init__()
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.activation = activation_name(activation)
        bound = kaiming_uniform_bound(self.in_features)
        self.weight = Tensor(uniform_((self.out_features, self.in_features), bound),
                             requires_grad=True)
        self.bias = Tensor(uniform_((self.out_features,), bound), requires_grad=True) \
            if bias else None
        init.initialize_(self.weight, kernel_initializer, self.bias, bias_initializer)

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
                "activation": self.activation, "bias": self.bias is not None}

    def __repr__(self):
        return f"Dense({self.in_features}->{self.out_features})"


Linear = Dense
