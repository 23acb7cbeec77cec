"""Flatten and Reshape: change the shape of each sample, keep the batch dimension."""
import math

import numpy as np

from ..ops.shape import Identity as _IdentityOp
from ..tensor import apply
from .base import Layer, shape_str


def _is_int(v):
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


class Flatten(Layer):
    """Flatten every dim from `start_dim` (default 1: all but the batch)."""

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        for what, d in (("start_dim", start_dim), ("end_dim", end_dim)):
            if not _is_int(d):
                raise TypeError(f"Flatten: {what} must be an int, got {d!r}")
        self.start_dim, self.end_dim = int(start_dim), int(end_dim)

    def check_input(self, x):
        n = x.ndim
        start, end = self.start_dim, self.end_dim
        if n == 0 or not (-n <= start < n and -n <= end < n) or start % n > end % n:
            raise self.output_shape_error(
                x, f"a tensor in which start_dim={start} and end_dim={end} are dims, in order")

    def forward(self, x):
        return x.flatten(self.start_dim, self.end_dim)

    def config(self):
        return {"start_dim": self.start_dim, "end_dim": self.end_dim}


class Reshape(Layer):
    """Reshape each sample to `shape` (the batch dim is kept as it comes)."""

    def __init__(self, shape):
        super().__init__()
        if _is_int(shape):
            shape = (shape,)
        if not isinstance(shape, (tuple, list)) or not all(_is_int(n) for n in shape):
            raise TypeError(f"Reshape: shape must be a tuple of ints, got {shape!r}")
        shape = tuple(int(n) for n in shape)
        if any(n < -1 for n in shape) or shape.count(-1) > 1:
            raise ValueError(f"Reshape: shape entries must be sizes >= 0, with at most one -1 "
                             f"(inferred), got {shape}")
        self.shape = shape

    def check_input(self, x):
        have = math.prod(int(n) for n in x.shape[1:])
        known = math.prod(n for n in self.shape if n != -1)
        fits = have % known == 0 if -1 in self.shape and known else have == known
        if not fits:
            raise ValueError(f"{self!r} got input of shape {shape_str(x)} ({have} values per "
                             f"sample), which cannot be reshaped to {self.shape}")

    def forward(self, x):
        if -1 in self.shape:        # the batch size as a size (a FreeDim in a model being built)
            return x.reshape((x.shape[0],) + self.shape)
        return x.reshape((-1,) + self.shape)

    def config(self):
        return {"shape": list(self.shape)}

    def __repr__(self):
        return f"Reshape({self.shape})"

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
