"""Tensor: a NumPy array that remembers how it was made, so gradients can flow back through it."""
import collections
import numbers

import numpy as np

from . import autograd
from .random import rng
from .ops.base import normalize_dim
from .ops import elementwise as E, reduce as R, shape as S, linalg as L
from .ops import activation as A

ValuesIndices = collections.namedtuple("ValuesIndices", ["values", "indices"])


def _as_array(data, dtype=None):
    """The array a Tensor holds: float32 by default for floats, integers and bools kept."""
    if isinstance(data, Tensor):
        data = data.data
    if dtype is not None:
        return np.asarray(data, dtype=np.dtype(dtype))
    arr = np.asarray(data)
    if arr.dtype.kind == "f" and arr.dtype != np.float32:
        return arr.astype(np.float32)
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"Tensor: cannot make a tensor from data of dtype {arr.dtype}; "
                        f"expected numbers (floats, integers or booleans)")
    return arr


def apply(op, *inputs):
    """Run `op` forward on tensors and record it on the tape when a gradient is needed.

    Ops on symbolic tensors (a Model's `Input` and what is computed from it) are always
    recorded, differentiable or not, so that `Model` can replay every step on real data."""
    arrays, needs, symbolic = [], [], False
    for t in inputs:                 # one pass: this runs for every op, so keep it lean
        arrays.append(t.data)
        needs.append(t._requires_grad)
        symbolic = symbolic or t._symbolic
    grad = op.differentiable and True in needs
    record = (grad or symbolic) and autograd.is_grad_enabled()
    op.needs_input_grad = needs
    try:
        out = op.forward(*arrays)
    except (ValueError, IndexError, TypeError) as e:
        shapes = ", ".join(str(a.shape) for a in arrays)
        raise type(e)(f"{op.name}: {e} (input shapes: {shapes})") from None
    t = Tensor._wrap(out, record and grad)
    if record:
        t.grad_fn = autograd.Node(op, inputs)
        t._retains_grad = autograd._retain_all()
        t._symbolic = symbolic
    return t


class Tensor:
    """An n-dimensional array with reverse-mode automatic differentiation.

    >>> x = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    >>> (x * x).sum().backward()
    >>> x.grad
    tensor([2., 4., 6.])
    """

    __array_priority__ = 1000      # make `ndarray + Tensor` call Tensor.__radd__
    _symbolic = False              # True for a Model's Input placeholders and what follows them

    def __init__(self, data, requires_grad=False, dtype=None):
        self.data = _as_array(data, dtype)
        self.grad = None
        self.grad_fn = None
        self._retains_grad = False
        self.requires_grad = requires_grad

    @classmethod
    def _wrap(cls, array, requires_grad=False):
        t = cls.__new__(cls)
        t.data = array if isinstance(array, np.ndarray) else np.asarray(array)
        t.grad, t.grad_fn, t._retains_grad = None, None, False
        t._requires_grad = requires_grad
        return t

    # -- creation ---------------------------------------------------------------------------
    @staticmethod
    def _shape(shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            return tuple(shape[0])
        return tuple(shape)

    @classmethod
    def randn(cls, *shape, requires_grad=False, dtype=np.float32):
        """Standard normal samples; `Tensor.randn((64, 784))` or `Tensor.randn(64, 784)`."""
        data = rng().standard_normal(cls._shape(shape), dtype=np.float64).astype(dtype)
        return cls(data, requires_grad=requires_grad, dtype=dtype)

    @classmethod
    def rand(cls, *shape, requires_grad=False, dtype=np.float32):
        """Uniform samples in [0, 1)."""
        data = rng().random(cls._shape(shape)).astype(dtype)
        return cls(data, requires_grad=requires_grad, dtype=dtype)

    @classmethod
    def zeros(cls, *shape, requires_grad=False, dtype=np.float32):
        return cls(np.zeros(cls._shape(shape), dtype), requires_grad=requires_grad, dtype=dtype)

    @classmethod
    def ones(cls, *shape, requires_grad=False, dtype=np.float32):
        return cls(np.ones(cls._shape(shape), dtype), requires_grad=requires_grad, dtype=dtype)

    @classmethod
    def full(cls, shape, fill_value, requires_grad=False, dtype=np.float32):
        return cls(np.full(cls._shape((shape,)), fill_value, dtype), requires_grad=requires_grad,
                   dtype=dtype)

    @classmethod
    def arange(cls, start, stop=None, step=1, requires_grad=False, dtype=None):
        data = np.arange(start, stop, step) if stop is not None else np.arange(start)
        return cls(data, requires_grad=requires_grad, dtype=dtype)

    @classmethod
    def eye(cls, n, m=None, requires_grad=False, dtype=np.float32):
        return cls(np.eye(n, m, dtype=dtype), requires_grad=requires_grad, dtype=dtype)

    @classmethod
    def zeros_like(cls, t, requires_grad=False, dtype=None):
        return cls.zeros(t.shape, requires_grad=requires_grad, dtype=dtype or t.dtype)

    @classmethod
    def ones_like(cls, t, requires_grad=False, dtype=None):
        return cls.ones(t.shape, requires_grad=requires_grad, dtype=dtype or t.dtype)

    @classmethod
    def full_like(cls, t, fill_value, requires_grad=False, dtype=None):
        return cls.full(t.shape, fill_value, requires_grad=requires_grad, dtype=dtype or t.dtype)

    @classmethod
    def randn_like(cls, t, requires_grad=False, dtype=None):
        return cls.randn(t.shape, requires_grad=requires_grad, dtype=dtype or t.dtype)

    @classmethod
    def rand_like(cls, t, requires_grad=False, dtype=None):
        return cls.rand(t.shape, requires_grad=requires_grad, dtype=dtype or t.dtype)

    @classmethod
    def from_numpy(cls, array, requires_grad=False):
        """Wrap a NumPy array as it is (same memory, same dtype)."""
        return cls(array, requires_grad=requires_grad, dtype=np.asarray(array).dtype)

    @classmethod
    def from_values(cls, values, requires_grad=False, dtype=None):
        """The original pynn name for `Tensor(values)`."""
        return cls(values, requires_grad=requires_grad, dtype=dtype)

    # -- what it is -------------------------------------------------------------------------
    @property
    def requires_grad(self):
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value):
        if value and self.data.dtype.kind != "f":
            raise RuntimeError(f"only floating point tensors can require gradients, but this "
                               f"tensor has dtype {self.data.dtype}")
        self._requires_grad = bool(value)

    def requires_grad_(self, value=True):
        self.requires_grad = value
        return self

    @property
    def shape(self):
        return self.data.shape

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def is_leaf(self):
        return self.grad_fn is None

    @property
    def retains_grad(self):
        return self._retains_grad

    def size(self, dim=None):
        return self.shape if dim is None else self.shape[dim]

    def numel(self):
        return self.data.size

    def dim(self):
        return self.data.ndim

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def numpy(self):
        return self.data

    def item(self):
        return self.data.item()

    def tolist(self):
        return self.data.tolist()

    def __array__(self, dtype=None, copy=None):
        if copy:                        # np.array(t) must not alias t's memory
            return np.array(self.data, dtype=dtype, copy=True)
        return self.data if dtype is None else self.data.astype(dtype)

    def __repr__(self):
        body = np.array2string(self.data, separator=", ", prefix="tensor(", precision=4)
        extra = ""
        if self.data.dtype not in (np.float32, np.int64, np.bool_):
            extra += f", dtype={self.data.dtype}"
        if self.grad_fn is not None:
            extra += f", grad_fn={self.grad_fn!r}"
        elif self.requires_grad:
            extra += ", requires_grad=True"
        return f"tensor({body}{extra})"

    def detach(self):
        """The same data, cut off from the graph."""
        if self._symbolic:      # inside a model being built: a step that passes no gradient
            return apply(E.Detach(), self)
        return Tensor._wrap(self.data)

    def astype(self, dtype):
        dtype = np.dtype(dtype)
        if dtype.kind != "f":           # integer and bool results carry no gradient (as torch)
            return Tensor._wrap(self.data.astype(dtype))
        return apply(E.Cast(dtype=dtype), self)

    to = astype

    def float(self):
        return self.astype(np.float32)

    def double(self):
        return self.astype(np.float64)

    def long(self):
        return Tensor._wrap(self.data.astype(np.int64))

    __hash__ = object.__hash__

    def __bool__(self):
        # as in PyTorch: `if t:` / `t in list` on a many-element tensor is an error, not True
        if self.data.size != 1:
            raise RuntimeError(f"the truth value of a tensor with {self.data.size} elements "
                               f"(shape {self.shape}) is ambiguous; use .any() or .all() on .data")
        return bool(self.data)

    # -- gradients --------------------------------------------------------------------------
    def backward(self, grad=None, retain_graph=False):
        """Accumulate d(self)/d(leaf) into every leaf's .grad (implicit grad 1 for a scalar)."""
        autograd.backward(self, grad, retain_graph)

    def retain_grad(self):
        """Keep .grad on this non-leaf tensor after backward."""
        if not self.requires_grad:
            raise RuntimeError("retain_grad(): this tensor does not require grad")
        self._retains_grad = True
        return self

    def zero_grad(self):
        """Zero the .grad of every tensor in the graph behind this one (in place)."""
        for t in autograd.leaves_and_nodes(self):
            if t.grad is not None:
                t.grad.data.fill(0)

    # -- arithmetic -------------------------------------------------------------------------
    def _other(self, x):
        if isinstance(x, Tensor):
            return x
        if isinstance(x, numbers.Number) and not isinstance(x, bool):
            # a Python number takes this tensor's dtype (float32 stays float32)
            own = self.data.dtype
            if own.kind == "f" or isinstance(x, int):
                return Tensor._wrap(np.array(x, dtype=own))
            kind = np.asarray(x).dtype.kind
            return Tensor._wrap(np.array(x, dtype=own if kind in "iu" else np.float32))
        if self.dtype.kind == "f" and np.asarray(x).dtype.kind in "fiub":
            # an array operand of a float tensor: take its dtype (a float64 array next to a
            # float64 tensor must not be rounded through the float32 default on the way)
            return Tensor(x, dtype=self.dtype)
        return Tensor(x)

    def __add__(self, o):
        return apply(E.Add(), self, self._other(o))

    def __radd__(self, o):
        return apply(E.Add(), self._other(o), self)

    def __sub__(self, o):
        return apply(E.Sub(), self, self._other(o))

    def __rsub__(self, o):
        return apply(E.Sub(), self._other(o), self)

    def __mul__(self, o):
        return apply(E.Mul(), self, self._other(o))

    def __rmul__(self, o):
        return apply(E.Mul(), self._other(o), self)

    def __truediv__(self, o):
        return apply(E.Div(), self, self._other(o))

    def __rtruediv__(self, o):
        return apply(E.Div(), self._other(o), self)

    def __pow__(self, o):
        return apply(E.Pow(), self, self._other(o))

    def __rpow__(self, o):
        return apply(E.Pow(), self._other(o), self)

    def __neg__(self):
        return apply(E.Neg(), self)

    def __pos__(self):
        return self

    def __matmul__(self, o):
        return self.matmul(o)

    def __rmatmul__(self, o):
        return self._other(o).matmul(self)

    def matmul(self, o):
        o = self._other(o)
        a, b = self.shape, o.shape
        if self.ndim == 0 or o.ndim == 0 or a[-1] != b[-2 if o.ndim > 1 else -1]:
            raise ValueError(f"matmul: shapes {a} and {b} cannot be multiplied: the last dim of "
                             f"the first ({a[-1] if a else '-'}) must equal the "
                             f"{'second-to-last' if o.ndim > 1 else 'only'} dim of the second")
        return apply(L.MatMul(), self, o)

    # comparisons give boolean tensors and are not differentiable
    def _compare(self, o, fn):
        return apply(E.Compare(fn=fn.__name__), self, self._other(o))

    def __eq__(self, o):
        return self._compare(o, np.equal)

    def __ne__(self, o):
        return self._compare(o, np.not_equal)

    def __lt__(self, o):
        return self._compare(o, np.less)

    def __le__(self, o):
        return self._compare(o, np.less_equal)

    def __gt__(self, o):
        return self._compare(o, np.greater)

    def __ge__(self, o):
        return self._compare(o, np.greater_equal)

    # -- unary math ---------------------------------------------------------------------------
    def exp(self):
        return apply(E.Exp(), self)

    def log(self):
        return apply(E.Log(), self)

    def sqrt(self):
        return apply(E.Sqrt(), self)

    def abs(self):
        return apply(E.Abs(), self)

    def sin(self):
        return apply(E.Sin(), self)

    def cos(self):
        return apply(E.Cos(), self)

    def tanh(self):
        return apply(E.Tanh(), self)

    def sigmoid(self):
        return apply(E.Sigmoid(), self)

    def relu(self):
        return apply(E.Relu(), self)

    def leaky_relu(self, negative_slope=0.01):
        return apply(E.LeakyRelu(negative_slope=negative_slope), self)

    def gelu(self, approximate="none"):
        if approximate == "tanh":
            return apply(A.GeluTanh(), self)
        if approximate != "none":
            raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
        return apply(E.Gelu(), self)

    def softplus(self, beta=1.0, threshold=20.0):
        return apply(E.Softplus(beta=beta, threshold=threshold), self)

    # -- more activations (pynn.ops.activation) -------------------------------------------
    def elu(self, alpha=1.0):
        return apply(A.Elu(alpha=float(alpha)), self)

    def selu(self):
        return apply(A.Selu(), self)

    def silu(self):
        return apply(A.Silu(), self)

    swish = silu

    def mish(self):
        return apply(A.Mish(), self)

    def softsign(self):
        return apply(A.Softsign(), self)

    def hardtanh(self, min_val=-1.0, max_val=1.0):
        if min_val > max_val:
            raise ValueError(f"hardtanh: min_val {min_val} is greater than max_val {max_val}")
        return apply(A.Hardtanh(min_val=float(min_val), max_val=float(max_val)), self)

    def hardsigmoid(self):
        return apply(A.Hardsigmoid(), self)

    def prelu(self, weight):
        return apply(A.Prelu(), self, self._other(weight))
    # -- end of more activations ----------------------------------------------------------

    def clip(self, min=None, max=None):
        return apply(E.Clip(min=min, max=max), self)

    clamp = clip

    def maximum(self, o):
        return apply(E.Maximum(), self, self._other(o))

    def minimum(self, o):
        return apply(E.Minimum(), self, self._other(o))

    @staticmethod
    def where(cond, a, b):
        """Elements of `a` where `cond` is true, else of `b` (cond is not differentiated)."""
        cond = cond if isinstance(cond, Tensor) else Tensor(np.asarray(cond, dtype=bool))
        a = a if isinstance(a, Tensor) else Tensor(a)
        return apply(E.Where(), cond, a, a._other(b))

    # -- reductions ---------------------------------------------------------------------------
    def _dim(self, dim, name, ndim=None):
        try:
            return normalize_dim(dim, self.ndim if ndim is None else ndim, name)
        except IndexError as e:
            raise IndexError(f"{e}; the tensor has shape {self.shape}") from None

    def sum(self, dim=None, keepdim=False):
        return apply(R.Sum(dim=self._dim(dim, "sum"), keepdim=keepdim), self)

    def mean(self, dim=None, keepdim=False):
        return apply(R.Mean(dim=self._dim(dim, "mean"), keepdim=keepdim), self)

    def amax(self, dim=None, keepdim=False):
        return apply(R.Max(dim=self._dim(dim, "amax"), keepdim=keepdim), self)

    def amin(self, dim=None, keepdim=False):
        return apply(R.Min(dim=self._dim(dim, "amin"), keepdim=keepdim), self)

    def max(self, dim=None, keepdim=False):
        """Largest value; with an int `dim`, `(values, indices)` as in PyTorch, and like PyTorch
        the gradient then goes to the returned index only (amax shares it among ties)."""
        if isinstance(dim, int):
            return self._pick(self.argmax(dim, keepdim=True), dim, keepdim, "max")
        return self.amax(dim, keepdim)

    def min(self, dim=None, keepdim=False):
        if isinstance(dim, int):
            return self._pick(self.argmin(dim, keepdim=True), dim, keepdim, "min")
        return self.amin(dim, keepdim)

    def _pick(self, indices, dim, keepdim, name):
        """(values, indices) of max/min over one dim, from indices kept with keepdim=True."""
        (axis,) = self._dim(dim, name)
        values = apply(S.TakeAlongDim(dim=axis), self, indices)
        if not keepdim:
            values, indices = values.squeeze(axis), indices.squeeze(axis)
        return ValuesIndices(values, indices)

    def var(self, dim=None, keepdim=False, correction=1, unbiased=None):
        if unbiased is not None:
            correction = int(unbiased)
        return apply(R.Var(dim=self._dim(dim, "var"), keepdim=keepdim, correction=correction), self)

    def std(self, dim=None, keepdim=False, correction=1, unbiased=None):
        return self.var(dim, keepdim, correction, unbiased).sqrt()

    def logsumexp(self, dim=None, keepdim=False):
        return apply(R.LogSumExp(dim=self._dim(dim, "logsumexp"), keepdim=keepdim), self)

    def argmax(self, dim=None, keepdim=False):
        return self._arg(np.argmax, dim, keepdim, "argmax")

    def argmin(self, dim=None, keepdim=False):
        return self._arg(np.argmin, dim, keepdim, "argmin")

    def _arg(self, fn, dim, keepdim, name):
        axis = None if dim is None else self._dim(dim, name)[0]
        return apply(R.ArgReduce(fn=fn.__name__, dim=axis, keepdim=keepdim), self)

    def softmax(self, dim=-1):
        (axis,) = self._dim(dim, "softmax")
        out = apply(R.Softmax(dim=axis), self)
        if self.ndim == 2 and axis == 1:
            out._softmax_of = self    # lets categorical_cross_entropy work from the logits
        return out

    def log_softmax(self, dim=-1):
        (axis,) = self._dim(dim, "log_softmax")
        return apply(R.LogSoftmax(dim=axis), self)

    # -- shape --------------------------------------------------------------------------------
    def reshape(self, *shape):
        shape = self._shape(shape)
        try:
            np.empty(self.shape, dtype=bool).reshape(shape)
        except ValueError:
            raise ValueError(f"reshape: cannot reshape a tensor of shape {self.shape} "
                             f"({self.numel()} elements) into shape {shape}") from None
        return apply(S.Reshape(shape=shape), self)

    view = reshape

    def flatten(self, start_dim=0, end_dim=-1):
        if self.ndim == 0:
            return self.reshape(1)
        s, e = (d % self.ndim for d in (start_dim, end_dim))
        self._dim((start_dim, end_dim), "flatten")
        return apply(S.Flatten(start_dim=s, end_dim=e), self)

    def permute(self, *dims):
        dims = self._shape(dims)
        if sorted(d % max(self.ndim, 1) for d in dims) != list(range(self.ndim)):
            raise ValueError(f"permute: {dims} is not a permutation of the {self.ndim} dims "
                             f"of a tensor of shape {self.shape}")
        return apply(S.Permute(dims=tuple(d % self.ndim for d in dims)), self)

    def transpose(self, dim0=-2, dim1=-1):
        (a,), (b,) = self._dim(dim0, "transpose"), self._dim(dim1, "transpose")
        dims = list(range(self.ndim))
        dims[a], dims[b] = dims[b], dims[a]
        return apply(S.Permute(dims=tuple(dims)), self)

    @property
    def T(self):
        return apply(S.Permute(dims=tuple(reversed(range(self.ndim)))), self)

    def squeeze(self, dim=None):
        if dim is None:
            axes = tuple(i for i, n in enumerate(self.shape) if n == 1)
        else:  # like PyTorch, a named dim whose size is not 1 is left alone
            axes = tuple(d for d in self._dim(dim, "squeeze") if self.shape[d] == 1)
        return apply(S.Squeeze(dim=axes), self)

    def unsqueeze(self, dim):
        (axis,) = self._dim(dim, "unsqueeze", self.ndim + 1)
        return apply(S.Unsqueeze(dim=axis), self)

    def broadcast_to(self, *shape):
        shape = self._shape(shape)
        try:
            np.broadcast_shapes(self.shape, shape)
        except ValueError:
            raise ValueError(f"broadcast_to: cannot broadcast shape {self.shape} to {shape}") from None
        return apply(S.BroadcastTo(shape=shape), self)

    def expand(self, *shape):
        """broadcast_to where -1 keeps that dim's size, as in PyTorch."""
        shape = self._shape(shape)
        lead = len(shape) - self.ndim
        shape = tuple(self.shape[i - lead] if n == -1 else n for i, n in enumerate(shape))
        return self.broadcast_to(shape)

    def repeat(self, *repeats):
        repeats = self._shape(repeats)
        if len(repeats) < self.ndim:
            raise ValueError(f"repeat: give at least {self.ndim} repeat counts for a tensor of "
                             f"shape {self.shape}, got {repeats}")
        return apply(S.Repeat(repeats=repeats), self)

    def pad(self, pad, value=0.0):
        """Constant padding as torch.nn.functional.pad: (left, right, top, bottom, ...)."""
        if len(pad) % 2 or len(pad) // 2 > self.ndim:
            raise ValueError(f"pad: {pad} must hold a (before, after) pair for each of at most "
                             f"{self.ndim} trailing dims")
        return apply(S.Pad(pad=tuple(pad), value=value), self)

    @staticmethod
    def stack(tensors, dim=0):
        tensors = [t if isinstance(t, Tensor) else Tensor(t) for t in tensors]
        shapes = {t.shape for t in tensors}
        if len(shapes) != 1:
            raise ValueError(f"stack: every tensor must have the same shape, got "
                             f"{[t.shape for t in tensors]}")
        (axis,) = normalize_dim(dim, tensors[0].ndim + 1, "stack")
        return apply(S.Stack(dim=axis), *tensors)

    @staticmethod
    def concat(tensors, dim=0):
        tensors = [t if isinstance(t, Tensor) else Tensor(t) for t in tensors]
        (axis,) = normalize_dim(dim, tensors[0].ndim, "concat")
        rest = {t.shape[:axis] + t.shape[axis + 1:] for t in tensors}
        if len(rest) != 1 or len({t.ndim for t in tensors}) != 1:
            raise ValueError(f"concat: tensors must match in every dim but {axis}, got "
                             f"{[t.shape for t in tensors]}")
        return apply(S.Concat(dim=axis), *tensors)

    cat = concat

    def split(self, split_size_or_sections, dim=0):
        """Pieces of `split_size` along dim (the last may be smaller), or of the given sizes."""
        (axis,) = self._dim(dim, "split")
        n = self.shape[axis]
        if isinstance(split_size_or_sections, int):
            sizes = [split_size_or_sections] * (n // split_size_or_sections)
            if n % split_size_or_sections:
                sizes.append(n % split_size_or_sections)
        else:
            sizes = list(split_size_or_sections)
            if sum(sizes) != n:
                raise ValueError(f"split: sizes {sizes} do not add up to {n}, the size of dim {axis}")
        out, start = [], 0
        for size in sizes:
            index = (slice(None),) * axis + (slice(start, start + size),)
            out.append(self[index])
            start += size
        return tuple(out)

    def chunk(self, chunks, dim=0):
        (axis,) = self._dim(dim, "chunk")
        size = -(-self.shape[axis] // chunks)
        return self.split(size, axis)

    # -- indexing -----------------------------------------------------------------------------
    def __getitem__(self, index):
        index = _plain_index(index)
        try:
            np.empty(self.shape, dtype=bool)[index]
        except IndexError as e:
            raise IndexError(f"index: {e} (tensor of shape {self.shape})") from None
        return apply(S.GetItem(index=index), self)

    def __setitem__(self, index, value):
        if self.requires_grad and autograd.is_grad_enabled():
            raise RuntimeError("in-place assignment to a tensor that requires grad; "
                               "do it under pynn.no_grad() or on .data")
        self.data[_plain_index(index)] = getattr(value, "data", value)


def _plain_index(index):
    """Turn Tensors inside an index into NumPy arrays."""
    if isinstance(index, tuple):
        return tuple(_plain_index(i) for i in index)
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, list):
        return np.asarray(index)
    return index


def tensor(data, requires_grad=False, dtype=None):
    """`pynn.tensor(...)`: a new Tensor, as `torch.tensor`."""
    return Tensor(np.array(getattr(data, "data", data), copy=True), requires_grad, dtype)
