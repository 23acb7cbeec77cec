"""Merge layers: one output from a list of inputs, as Keras's `Add()([a, b])`."""
from functools import reduce

from ..tensor import Tensor
from .base import Layer


class _Merge(Layer):
    """Elementwise merge of two or more tensors of one shape (broadcasting as the op does)."""

    def check_input(self, *xs):
        if len(xs) < 2:
            raise ValueError(f"{self!r} needs a list of at least 2 tensors, got {len(xs)}")
        shapes = {tuple(x.data.shape[1:]) for x in xs}
        if len(shapes) > 1:
            raise ValueError(f"{self!r} got inputs of shapes "
                             f"{[(None,) + tuple(x.shape[1:]) for x in xs]}; they must match")

    def forward(self, *xs):
        return reduce(self.merge, xs)


class Add(_Merge):
    """Sum of the inputs. Example: ``y = Add()([x, residual])``."""

    @staticmethod
    def merge(a, b):
        return a + b


class Multiply(_Merge):
    """Elementwise product of the inputs."""

    @staticmethod
    def merge(a, b):
        return a * b


class Maximum(_Merge):
    """Elementwise maximum of the inputs."""

    @staticmethod
    def merge(a, b):
        return a.maximum(b)


class Minimum(_Merge):
    """Elementwise minimum of the inputs."""

    @staticmethod
    def merge(a, b):
        return a.minimum(b)


class Subtract(_Merge):
    """`a - b` of exactly two inputs."""

    def check_input(self, *xs):
        if len(xs) != 2:
            raise ValueError(f"{self!r} takes exactly 2 tensors, got {len(xs)}")
        super().check_input(*xs)

    @staticmethod
    def merge(a, b):
        return a - b


class Average(_Merge):
    """Elementwise mean of the inputs."""

    def forward(self, *xs):
        return reduce(lambda a, b: a + b, xs) * (1.0 / len(xs))


class Concatenate(Layer):
    """Join the inputs along `axis` (default -1, the last); the other dims must match.

    Args:
        axis: the dim to join along; the batch dim (0) is not allowed.

    Example:
        >>> y = Concatenate()([a, b])      # (None, 3) and (None, 5) -> (None, 8)
    """

    def __init__(self, axis=-1):
        super().__init__()
        self.axis = int(axis)

    def check_input(self, *xs):
        if len(xs) < 2:
            raise ValueError(f"{self!r} needs a list of at least 2 tensors, got {len(xs)}")
        ndim = xs[0].ndim
        axis = self.axis % ndim if ndim else 0
        if axis == 0:
            raise ValueError(f"{self!r}: cannot concatenate along the batch dim")
        rest = {tuple(s for i, s in enumerate(x.data.shape) if i not in (0, axis)) for x in xs}
        if len({x.ndim for x in xs}) != 1 or len(rest) != 1:
            raise ValueError(f"{self!r} got inputs of shapes "
                             f"{[(None,) + tuple(x.shape[1:]) for x in xs]}; all dims but "
                             f"{self.axis} must match")

    def forward(self, *xs):
        return Tensor.concat(list(xs), dim=self.axis)

    def config(self):
        return {"axis": self.axis}

    def __repr__(self):
        return f"Concatenate(axis={self.axis})"


class Dot(Layer):
    """Dot products of samples of two tensors along `axes` (Keras's Dot).

    Args:
        axes: an int (the same axis of both, not the batch) or a pair, one axis each.
        normalize: L2-normalise both along those axes first (the output is then the cosine
            similarity).

    Shape:
        (N, d) and (N, d) with axes=1 give (N, 1); (N, n, d) and (N, m, d) with axes=2 give
        (N, n, m).
    """

    def __init__(self, axes, normalize=False):
        super().__init__()
        self.axes = tuple(axes) if isinstance(axes, (tuple, list)) else (int(axes), int(axes))
        self.normalize = bool(normalize)

    def _axes(self, a, b):
        return self.axes[0] % a.ndim, self.axes[1] % b.ndim

    def check_input(self, *xs):
        if len(xs) != 2:
            raise ValueError(f"{self!r} takes exactly 2 tensors, got {len(xs)}")
        a, b = xs
        if a.ndim not in (2, 3) or b.ndim not in (2, 3):
            raise ValueError(f"{self!r} takes 2-D or 3-D tensors, got {(None,) + a.shape[1:]} "
                             f"and {(None,) + b.shape[1:]}")
        i, j = self._axes(a, b)
        if 0 in (i, j) or a.data.shape[i] != b.data.shape[j]:
            raise ValueError(f"{self!r}: axes {self.axes} of shapes {(None,) + a.shape[1:]} and "
                             f"{(None,) + b.shape[1:]} must be non-batch axes of equal size")

    def forward(self, a, b):
        i, j = self._axes(a, b)
        if self.normalize:
            a = a / ((a * a).sum(dim=i, keepdim=True) + 1e-12).sqrt()
            b = b / ((b * b).sum(dim=j, keepdim=True) + 1e-12).sqrt()
        if a.ndim == 2 and b.ndim == 2:
            return (a * b).sum(dim=1, keepdim=True)
        a3 = a if a.ndim == 3 else a.unsqueeze(1 if i == 1 else 2)
        b3 = b if b.ndim == 3 else b.unsqueeze(1 if j == 1 else 2)
        i3 = i if a.ndim == 3 else (2 if i == 1 else 1)
        j3 = j if b.ndim == 3 else (2 if j == 1 else 1)
        left = a3 if i3 == 2 else a3.transpose(1, 2)      # (N, n, d)
        right = b3 if j3 == 1 else b3.transpose(1, 2)     # (N, d, m)
        out = left @ right
        return out

    def config(self):
        return {"axes": list(self.axes), "normalize": self.normalize}

    def __repr__(self):
        return f"Dot(axes={self.axes})"
