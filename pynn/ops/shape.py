"""Shape ops: they move or copy values and never change them; backward moves gradients back."""
import numpy as np

from .base import Op


class Reshape(Op):
    """attrs: shape (may hold one -1).
    Derivative: d/dx = g reshaped back to x's shape"""

    def forward(self, x):
        self.in_shape = x.shape
        return np.reshape(x, self.shape)

    def backward(self, g):
        return (np.reshape(g, self.in_shape),)


class Flatten(Op):
    """attrs: start_dim, end_dim (non-negative, already normalised). Keeps other dims as they
    come, so a batch dimension stays free.
    Derivative: d/dx = g reshaped back to x's shape
    """

    def forward(self, x):
        self.in_shape = x.shape
        s, e = self.start_dim, self.end_dim
        return np.reshape(x, x.shape[:s] + (-1,) + x.shape[e + 1:])

    def backward(self, g):
        return (np.reshape(g, self.in_shape),)


class Permute(Op):
    """attrs: dims (a full permutation). transpose(a, b) is the permutation that swaps a and b.
    Derivative: d/dx = g permuted by the inverse permutation"""

    def forward(self, x):
        return np.transpose(x, self.dims)

    def backward(self, g):
        return (np.transpose(g, np.argsort(self.dims)),)


class Squeeze(Op):
    """attrs: dim (tuple of axes of size 1 to drop, or None for all).
    Derivative: d/dx = g reshaped back to x's shape"""

    def forward(self, x):
        self.in_shape = x.shape
        return np.squeeze(x, axis=self.dim)

    def backward(self, g):
        return (np.reshape(g, self.in_shape),)


class Unsqueeze(Op):
    """attrs: dim (position of the new axis in the output).
    Derivative: d/dx = g with the new axis squeezed out"""

    def forward(self, x):
        return np.expand_dims(x, self.dim)

    def backward(self, g):
        return (np.squeeze(g, axis=self.dim),)


class BroadcastTo(Op):
    """attrs: shape. The executor sums the gradient back to the input's shape.
    Derivative: d/dx = g summed over the broadcast dims"""

    def forward(self, x):
        return np.broadcast_to(x, self.shape)

    def backward(self, g):
        return (g,)


class Repeat(Op):
    """torch.Tensor.repeat: tile the tensor `repeats` times along each dim.
    Derivative: d/dx = sum of g over the tiles"""

    def forward(self, x):
        self.in_shape = x.shape
        return np.tile(x, self.repeats)

    def backward(self, g):
        lead = len(self.repeats) - len(self.in_shape)
        shape = (1,) * lead + self.in_shape
        # split every axis into (repeat, size) and sum over the repeats
        split = []
        for r, n in zip(self.repeats, shape):
            split += [r, n]
        g = g.reshape(split).sum(axis=tuple(range(0, 2 * len(shape), 2)))
        return (g.reshape(self.in_shape),)


class Pad(Op):
    """Constant padding, torch.nn.functional.pad style: attrs pad=(left, right, top, bottom, ...)
    from the last dim backwards, value.
    Derivative: d/dx = g with the padding cut off
    """

    def forward(self, x):
        widths = [(0, 0)] * x.ndim
        for i in range(len(self.pad) // 2):
            widths[x.ndim - 1 - i] = (self.pad[2 * i], self.pad[2 * i + 1])
        self.slices = tuple(slice(lo, lo + n) for (lo, _), n in zip(widths, x.shape))
        return np.pad(x, widths, constant_values=self.value)

    def backward(self, g):
        return (g[self.slices],)


class Stack(Op):
    """attrs: dim. Any number of inputs of one shape.
    Derivative: d/dx_i = the i-th slice of g along dim"""

    def forward(self, *xs):
        return np.stack(xs, axis=self.dim)

    def backward(self, g):
        return tuple(np.take(g, i, axis=self.dim) for i in range(g.shape[self.dim]))


class Concat(Op):
    """attrs: dim.
    Derivative: d/dx_i = g's piece at x_i's place along dim"""

    def forward(self, *xs):
        self.bounds = np.cumsum([x.shape[self.dim] for x in xs])[:-1]
        dtype = xs[0].dtype
        if any(x.dtype != dtype or x.ndim != xs[0].ndim for x in xs) or not xs[0].ndim:
            return np.concatenate(xs, axis=self.dim)    # promotion and NumPy's own errors
        shape = list(xs[0].shape)
        shape[self.dim] = sum(x.shape[self.dim] for x in xs)
        return np.concatenate(xs, axis=self.dim, out=self.buffer("y", tuple(shape), dtype))

    def backward(self, g):
        return tuple(np.split(g, self.bounds, axis=self.dim))


class TakeAlongDim(Op):
    """np.take_along_axis(x, idx, dim): picks one entry of x per position of idx along `dim`
    (idx has x's shape except along dim, or the two broadcast there). The gradient goes to the
    picked entries only, accumulating where idx repeats. attrs: dim. idx is an integer input with
    no gradient.
    Derivative: d/dx = zeros with g scatter-added at the picked entries"""

    def forward(self, x, idx):
        self.in_shape, self.idx = x.shape, idx
        return np.take_along_axis(x, idx, axis=self.dim)

    def backward(self, g):
        gx = np.zeros(self.in_shape, dtype=g.dtype)
        # x and idx broadcast against each other (outside dim): a size-1 dim of x is read at 0
        index = list(np.ix_(*(np.arange(n) if m == n else np.zeros(n, dtype=np.intp)
                              for n, m in zip(g.shape, self.in_shape))))
        index[self.dim] = np.broadcast_to(self.idx, g.shape)
        np.add.at(gx, tuple(index), g)
        return gx, None


def _is_basic(index):
    items = index if isinstance(index, tuple) else (index,)
    return all(i is None or i is Ellipsis or isinstance(i, (int, np.integer, slice)) for i in items)


class GetItem(Op):
    """x[index] for ints, slices, None, ..., integer arrays and boolean masks. The backward
    scatter-adds, so an index repeated in an integer array accumulates its gradient.
    Derivative: d/dx = zeros with g scatter-added at the indexed entries
    """

    def forward(self, x):
        self.in_shape, self.dtype = x.shape, x.dtype
        return x[self.index]

    def backward(self, g):
        gx = np.zeros(self.in_shape, dtype=g.dtype)
        if _is_basic(self.index):
            gx[self.index] = g
        else:
            np.add.at(gx, self.index, g)
        return (gx,)


class Identity(Op):
    """The input as it is (same array): gives a layer call that returns one of its inputs a
    node of its own in the graph record.

    Derivative: d/dx = g"""

    def forward(self, x):
        return x

    def backward(self, g):
        return (g,)


class Take(Op):
    """x[idx] for an integer array `idx` given as an input (not a setting), so that the indices
    can be data: token ids from an integer Input. Rows of x (dim 0) are picked; the backward
    scatter-adds, so a repeated index accumulates its gradient.

    Derivative: d/dx = scatter-add of g into the rows idx; no gradient for idx"""

    def forward(self, x, idx):
        self.in_shape, self.idx = x.shape, idx
        return x[idx]

    def backward(self, g):
        gx = np.zeros(self.in_shape, dtype=g.dtype)
        np.add.at(gx, self.idx, g)
        return gx, None
