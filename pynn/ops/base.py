"""The base of every differentiable op.

An op is defined once, as a class with a ``forward`` and a ``backward`` on NumPy arrays. Both
executors use that one definition:

* the eager tape (``Tensor``) makes a fresh op per call and keeps it as the node's ``grad_fn``;
* the compiled ``Model`` keeps one op per step and calls it again and again, so the buffers an op
  asks for with ``self.buffer(...)`` are allocated once and reused on every later call.

Attributes given to the constructor (``dim``, ``keepdim``, ``stride``...) are the op's settings;
everything an op stores on ``self`` during ``forward`` is saved state for ``backward`` and is
dropped by ``release()`` once the backward pass has used it.
"""
import numpy as np

_KEEP = frozenset({"attrs", "needs_input_grad", "_buffers"})


class FreeDim(int):
    """The batch size of a tensor in a model being built: an int (the size it has while the
    graph is built, 1) that remembers it stands for "whatever batch comes at run time".

    `x.shape[0]` of a symbolic tensor is a FreeDim, so `x.reshape(x.shape[0], -1)` or
    `x.expand(x.shape[0], 3)` record it in the op's settings, and each compiled plan puts its
    real batch size there (`Op.clone(batch=...)`). Arithmetic on it gives a plain int."""

    def __new__(cls, value=1):
        return super().__new__(cls, value)

    def __repr__(self):
        return "None"

    __str__ = __repr__


def _resolve(value, batch):
    if isinstance(value, FreeDim):
        return batch
    if isinstance(value, tuple):
        return tuple(_resolve(v, batch) for v in value)
    if isinstance(value, list):
        return [_resolve(v, batch) for v in value]
    return value


def has_free_dims(value):
    if isinstance(value, FreeDim):
        return True
    if isinstance(value, (tuple, list)):
        return any(has_free_dims(v) for v in value)
    if isinstance(value, dict):
        return any(has_free_dims(v) for v in value.values())
    return False


class Op:
    #: False for ops whose output has no gradient (argmax, comparisons).
    differentiable = True

    def __init__(self, **attrs):
        self.attrs = attrs
        if attrs:
            self.__dict__.update(attrs)
        # which inputs need a gradient; set by the executor before forward()
        self.needs_input_grad = ()
        self._buffers = {}

    # -- the two halves every op defines -------------------------------------------------
    def forward(self, *xs):
        raise NotImplementedError

    def backward(self, grad):
        """Return one gradient (array or None) per input of forward()."""
        raise NotImplementedError

    def placeholder(self, *xs):
        """What the op returns on a model's symbolic placeholders (an Input's zeros, while the
        graph is built; their values mean nothing): forward itself, by default. An op whose
        forward would compile a kernel that the compiled Model may never call (a max-pool the
        plan fuses into the conv before it) returns zeros of its output's shape instead,
        after the same checks forward makes, so that the first `Model(...)` call compiles
        only what runs."""
        return self.forward(*xs)

    # -- helpers -------------------------------------------------------------------------
    @property
    def name(self):
        return type(self).__name__

    def buffer(self, key, shape, dtype):
        """An array of `shape`/`dtype` owned by this op, reused while the shape stays the same.

        Its contents are whatever was last written: callers overwrite it completely."""
        buf = self._buffers.get(key)
        if buf is None or buf.shape != tuple(shape) or buf.dtype != dtype:
            buf = np.empty(shape, dtype=dtype)
            self._buffers[key] = buf
        return buf

    def contiguous(self, key, a):
        """`a` itself when it is C-contiguous, else a copy of it in this op's buffer `key`."""
        if a.flags.c_contiguous:
            return a
        buf = self.buffer(key, a.shape, a.dtype)
        np.copyto(buf, a)
        return buf

    def into(self, key, ufunc, *args):
        """ufunc(*args) of same-dtype float arrays, written into this op's buffer `key` (of the
        broadcast shape); other dtypes get NumPy's own result (type promotion), not a buffer.

        The first call (and every call of an eager op, which is made fresh) lets the ufunc
        allocate its result and keeps that as the buffer: no empty buffer, no `out=`."""
        a = args[0]
        dtype = a.dtype
        if dtype.kind != "f":
            return ufunc(*args)
        same = True
        for b in args:              # a loop, not any(): this runs for every elementwise op
            d = b.dtype
            if d is not dtype and d != dtype:
                return ufunc(*args)
            if same and b.shape != a.shape:
                same = False
        buf = self._buffers.get(key)
        if buf is not None and (buf.dtype is dtype or buf.dtype == dtype):
            # (the broadcast shape is only worked out when there is a buffer to check)
            shape = a.shape if same else np.broadcast_shapes(*(b.shape for b in args))
            if buf.shape == shape:
                return ufunc(*args, out=buf)
        out = ufunc(*args)          # a NumPy scalar for 0-d inputs: kept as a 0-d array
        if (type(out) is not np.ndarray or not out.flags.c_contiguous
                or out.dtype is not dtype and out.dtype != dtype):
            out = np.array(out, dtype, order="C")
        self._buffers[key] = out
        return out

    def sum_rows(self, key, a, ones_key="ones"):
        """The sum over the rows of a 2-D float array `a` (M, K), into this op's buffer `key`
        (K,): a BLAS product with a row of ones (made once per M, kept as buffer `ones_key`:
        one per slice of a split batch), faster than NumPy's row-by-row reduction and summed
        in blocks, so with less rounding error."""
        M = a.shape[0]
        ones = self._buffers.get(ones_key)
        if ones is None or ones.shape != (M,) or ones.dtype != a.dtype:
            ones = self._buffers[ones_key] = np.ones(M, a.dtype)    # never written again
        return np.matmul(ones, a, out=self.buffer(key, (a.shape[1],), a.dtype))

    def needs(self, i):
        return len(self.needs_input_grad) <= i or self.needs_input_grad[i]

    def clone(self, batch=None):
        """A fresh op with the same settings and no saved state or buffers; with `batch`, every
        `FreeDim` in the settings becomes that batch size (a compiled plan's own copy)."""
        if batch is None or not has_free_dims(self.attrs):
            return type(self)(**self.attrs)
        return type(self)(**{k: _resolve(v, batch) for k, v in self.attrs.items()})

    def softmax_logits(self, node):
        """The tensor whose softmax over dim 1 this op's output (node's tensor) is, or None.
        Losses on probabilities use it to work from the logits instead (exact, no clipping)."""
        return None

    def saves(self, array):
        """Does the state forward() saved for backward() share memory with `array`? (Asked
        only when `array`'s tensor was changed in place before the backward pass.) An op that
        keeps what it needs somewhere other than array attributes should say so here."""
        for key, value in self.__dict__.items():
            if key in self.attrs or key in _KEEP:
                continue
            values = value if isinstance(value, (tuple, list)) else (value,)
            for v in values:
                if isinstance(v, np.ndarray) and np.may_share_memory(v, array):
                    return True
        return False

    def release(self):
        """Drop what forward() saved for backward(), and the buffers: the eager tape releases a
        node once its backward has run, and its gradients then live only as long as the tape
        needs them. (A compiled plan never releases its ops: it reuses their buffers.)"""
        d = self.__dict__
        attrs, needs = d["attrs"], d.get("needs_input_grad", ())
        d.clear()                   # (this runs for every op of an eager backward)
        if attrs:
            d.update(attrs)
        d["attrs"], d["needs_input_grad"], d["_buffers"] = attrs, needs, {}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.attrs.items())
        return f"{self.name}({args})"


def unbroadcast(grad, shape):
    """Sum `grad` over the dimensions that broadcasting added or stretched, back to `shape`."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    axes = tuple(range(extra)) + tuple(
        i + extra for i, n in enumerate(shape) if n == 1 and grad.shape[i + extra] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    if extra:
        grad = grad.reshape(grad.shape[extra:])
    return grad.reshape(shape)


def normalize_dim(dim, ndim, op_name):
    """Turn an int or tuple `dim` (negative allowed) into a sorted tuple of axes, or None."""
    if dim is None:
        return None
    dims = dim if isinstance(dim, (tuple, list)) else (dim,)
    out = []
    for d in dims:
        if not -max(ndim, 1) <= d < max(ndim, 1):
            raise IndexError(f"{op_name}: dim {d} is out of range for a tensor with {ndim} "
                             f"dimension(s) (expected in [{-max(ndim, 1)}, {max(ndim, 1) - 1}])")
        out.append(d % max(ndim, 1))
    return tuple(sorted(set(out)))
