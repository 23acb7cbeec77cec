"""Movement ops that rearrange values without changing them: tril/triu, roll, flip, unfold.

Each backward moves the gradient back the same way (the adjoint of the rearrangement).
"""
import numpy as np

from .base import Op


class Triangular(Op):
    """torch.tril (upper=False) / torch.triu (upper=True) over the last two dims: entries
    below/above the `diagonal`-th diagonal are kept, the rest zeroed. attrs: diagonal, upper.
    Derivative: d/dx = g with the same entries zeroed"""

    def _mask(self, a):
        return np.triu(a, self.diagonal) if self.upper else np.tril(a, self.diagonal)

    def forward(self, x):
        return self._mask(x)

    def backward(self, g):
        return (self._mask(g),)


class Roll(Op):
    """torch.roll: shift entries by `shifts` along `dims` with wrap-around (dims None: over the
    flattened tensor). attrs: shifts, dims.
    Derivative: d/dx = g rolled by -shifts"""

    def forward(self, x):
        return np.roll(x, self.shifts, axis=self.dims)

    def backward(self, g):
        back = tuple(-s for s in self.shifts) if isinstance(self.shifts, tuple) else -self.shifts
        return (np.roll(g, back, axis=self.dims),)


class Flip(Op):
    """torch.flip: reverse the order of entries along `dims` (a tuple). attrs: dims.
    Derivative: d/dx = g flipped along the same dims"""

    def forward(self, x):
        return np.flip(x, self.dims).copy()

    def backward(self, g):
        return (np.flip(g, self.dims),)


class Unfold(Op):
    """torch.Tensor.unfold(dim, size, step): the windows of `size` entries taken every `step`
    along dim; dim becomes the window count and a new last dim of `size` holds each window.
    attrs: dim, size, step.
    Derivative: d/dx = the windows' gradients added back where they were read (overlaps add)"""

    def forward(self, x):
        dim, size, step = self.dim, self.size, self.step
        if not 0 < size <= x.shape[dim]:
            raise ValueError(f"unfold: size {size} must be in [1, {x.shape[dim]}] (dim {dim})")
        self.in_shape = x.shape
        windows = np.lib.stride_tricks.sliding_window_view(x, size, axis=dim)
        index = (slice(None),) * dim + (slice(None, None, step),)
        return np.ascontiguousarray(windows[index])

    def backward(self, g):
        dim, step = self.dim, self.step
        n = g.shape[dim]
        gx = np.zeros(self.in_shape, dtype=g.dtype)
        for k in range(self.size):      # offset k of every window at once
            index = (slice(None),) * dim + (slice(k, k + step * (n - 1) + 1, step),)
            gx[index] += g[..., k]
        return (gx,)
