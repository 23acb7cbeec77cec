"""Flatten and Reshape: change the shape of each sample, keep the batch dimension."""
from ..tensor import apply
from ..ops.nn import Identity as _IdentityOp
from .base import Layer


class Flatten(Layer):
    """Flatten every dim from `start_dim` (default 1: all but the batch)."""

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x):
        return x.flatten(self.start_dim, self.end_dim)

    def config(self):
        return {"start_dim": self.start_dim, "end_dim": self.end_dim}


class Reshape(Layer):
    """Reshape each sample to `shape` (the batch dim is kept as it comes)."""

    def __init__(self, shape):
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x):
        return x.reshape((-1,) + self.shape)

    def config(self):
        return {"shape": list(self.shape)}


class Identity(Layer):
    """Return the input unchanged (a placeholder, as torch.nn.Identity); arguments are ignored.

    Example:
        >>> Identity()(Tensor.ones(2, 3)).shape
        (2, 3)
    """

    def __init__(self, *args, name=None, **kwargs):
        super().__init__(name=name)

    def forward(self, x):
        return apply(_IdentityOp(), x)
