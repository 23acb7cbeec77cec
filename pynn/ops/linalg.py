"""Matrix products, on BLAS through np.matmul."""
import numpy as np

from .base import Op, unbroadcast


class MatMul(Op):
    """a @ b with NumPy/PyTorch semantics: vectors, matrices, and batched stacks that broadcast.
    Derivative: d/da = g @ b^T, d/db = a^T @ g (batch dims summed back where they broadcast)"""

    def _product(self, key, a, b):
        """a @ b, into this op's buffer `key` for same-dtype float stacks of matrices."""
        if a.ndim < 2 or b.ndim < 2 or a.dtype != b.dtype or a.dtype.kind != "f" \
                or a.shape[-1] != b.shape[-2]:
            return np.matmul(a, b)      # vectors, mixed dtypes, and NumPy's own shape errors
        shape = np.broadcast_shapes(a.shape[:-2], b.shape[:-2]) + (a.shape[-2], b.shape[-1])
        return np.matmul(a, b, out=self.buffer(key, shape, a.dtype))

    def forward(self, a, b):
        self.a, self.b = a, b
        return self._product("y", a, b)

    def backward(self, g):
        a, b = self.a, self.b
        # treat vectors as matrices: a (k,) is a row (1, k), b (k,) a column (k, 1)
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        # b's axis first: for vector @ vector g is 0-d, and (1,) -> (1, 1) needs that order
        if b.ndim == 1:
            g = np.expand_dims(g, -1)
        if a.ndim == 1:
            g = np.expand_dims(g, -2)
        ga = gb = None
        if self.needs(0):
            ga = self._product("ga", g, np.swapaxes(b2, -1, -2))
            ga = unbroadcast(ga, a2.shape)
            ga = ga.reshape(a.shape)
        if self.needs(1):
            gb = self._product("gb", np.swapaxes(a2, -1, -2), g)
            gb = unbroadcast(gb, b2.shape)
            gb = gb.reshape(b.shape)
        return ga, gb

