"""Tensor: a NumPy array that remembers how it was made, so gradients can flow back through it."""
import collections
import numbers

import numpy as np

from . import anomaly, autograd
from .kernels import threads as _threads
from .ops import activation as A
from .ops import einsum as N
from .ops import elementwise as E
from .ops import index as X
from .ops import linalg as L
from .ops import mathops as F
from .ops import movement as M
from .ops import reduce as R
from .ops import scan as C
from .ops import shape as S
from .ops.base import FreeDim, normalize_dim
from .random import rng

_grad_state = autograd._state     # grad mode and retain_grads of this thread

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
    # this runs for every op: the one- and two-input cases without loops or lists
    if _threads._eager_hold:        # BLAS held at one thread since a split (threads.eager_tick)
        _threads.eager_tick()
    if len(inputs) == 2:
        a, b = inputs
        arrays = (a.data, b.data)
        needs = (a._requires_grad, b._requires_grad)
        versions = (a._version, b._version)
        symbolic = a._symbolic or b._symbolic
    elif len(inputs) == 1:
        a = inputs[0]
        arrays = (a.data,)
        needs = (a._requires_grad,)
        versions = (a._version,)
        symbolic = a._symbolic
    else:
        arrays = tuple(t.data for t in inputs)
        needs = tuple(t._requires_grad for t in inputs)
        versions = tuple(t._version for t in inputs)
        symbolic = any(t._symbolic for t in inputs)
    grad = op.differentiable and True in needs
    record = (grad or symbolic) and _grad_state.grad_enabled
    op.needs_input_grad = needs
    try:
        out = op.placeholder(*arrays) if symbolic else op.forward(*arrays)
    except (ValueError, IndexError, TypeError) as e:
        shapes = ", ".join(str(a.shape) for a in arrays)
        raise type(e)(f"{op.name}: {e} (input shapes: {shapes})") from None
    if anomaly.enabled and not symbolic:
        anomaly.check_forward(op, out, arrays)
    t = Tensor._wrap(out, record and grad)
    if record:
        t.grad_fn = autograd.Node(op, inputs, versions)
        t._retains_grad = _grad_state.retain_all
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
    # What a tensor carries besides data, grad, grad_fn (whose node holds the graph record):
    _symbolic = False              # True for a Model's Input placeholders and what follows them
    _spec = None                   # on an Input placeholder: its InputSpec (shape, dtype, name)
    _version = 0                   # bumped by every in-place change (x += 1, x.zero_(), x[i] = v)
    _rebased_at = -1               # the version at which an in-place op gave it a new grad_fn

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
        if self._symbolic and self.data.ndim:     # in a model being built: the batch is free
            return (FreeDim(self.data.shape[0]),) + self.data.shape[1:]
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

    @property
    def values(self):
        """The original pynn name for the NumPy array of values (`.numpy()`)."""
        return self.data

    def _scalar(self, kind):
        if self.data.size != 1:
            raise TypeError(f"only one-element tensors can be converted to Python scalars "
                            f"({kind}() of a tensor of shape {self.shape})")
        return self.data.reshape(())

    def __float__(self):
        return float(self._scalar("float"))

    def __int__(self):
        return int(self._scalar("int"))

    def __index__(self):
        if self.data.dtype.kind not in "iu":
            raise TypeError(f"only integer tensors of a single element can be converted to an "
                            f"index (dtype {self.dtype})")
        return int(self._scalar("index"))

    def __format__(self, spec):
        """format(loss, ".4f") / f"{loss:.4f}" format the number of a one-element tensor."""
        if not spec:
            return str(self)
        if self.data.size == 1:
            return format(self.data.item(), spec)
        raise TypeError(f"format spec {spec!r} needs a one-element tensor, got shape {self.shape}")

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

    def to(self, *args, dtype=None, device=None, copy=False):
        """`t.to(pynn.float64)`, `t.to("cpu")`, `t.to("cpu", "float64")`: pynn runs on the CPU
        only, so a device is accepted and changes nothing; a new dtype casts (differentiably).
        Returns the tensor itself when nothing changes, as in PyTorch."""
        for a in args:
            if isinstance(a, str) and a.split(":")[0] in ("cpu", "cuda", "mps", "xpu"):
                device = a
            elif isinstance(a, Tensor):
                dtype = a.dtype
            else:
                dtype = a
        if device is not None and str(device).split(":")[0] != "cpu":
            raise RuntimeError(f"to(): pynn runs on the CPU only, got device {device!r}")
        if dtype is None or np.dtype(dtype) == self.dtype:
            return self.clone() if copy else self
        return self.astype(dtype)

    def cpu(self):
        return self

    def clone(self):
        """A copy with its own memory; the gradient flows back to this tensor, as in PyTorch."""
        if self.data.dtype.kind == "f":
            return apply(E.Cast(dtype=self.data.dtype), self)   # astype copies: a clone
        return Tensor._wrap(self.data.copy())

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
        kind = type(x)              # (float and int first: the ABC check below is slower)
        if kind is float or kind is int or (isinstance(x, numbers.Number)
                                            and not isinstance(x, bool)):
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

    # -- in place, as in PyTorch: the same tensor and buffer, a new _version ------------------
    def _inplace(self, op, *others, name):
        """Write op(self, *others) into this tensor (x += y, x.add_(y), ...)."""
        others = tuple(self._other(o) for o in others)
        if autograd.is_grad_enabled():
            if self._requires_grad and self.grad_fn is None:
                raise RuntimeError("a leaf Variable that requires grad is being used in an "
                                   "in-place operation.")
            if self._symbolic or any(o._symbolic for o in others):
                raise RuntimeError(f"{name}: in-place ops are not supported on the symbolic "
                                   f"tensors of a model being built; write x = x + y")
            if self._requires_grad or any(o._requires_grad for o in others):
                return self._rebase(op, others, name)
        with autograd.no_grad():
            out = apply(op, self, *others).data
        self._check_result(out, name)
        np.copyto(self.data, out, casting="same_kind")
        return self._bump()

    def _check_result(self, out, name):
        if out.shape != self.shape:
            raise RuntimeError(f"{name}: output with shape {self.shape} doesn't match the "
                               f"broadcast shape {out.shape}")
        if not np.can_cast(out.dtype, self.dtype, "same_kind"):
            raise RuntimeError(f"{name}: result type {out.dtype} can't be cast to the desired "
                               f"output type {self.dtype}")
        if not self.data.flags.writeable:
            raise RuntimeError(f"{name}: the tensor's array is read-only (a broadcast view?); "
                               f"use an out-of-place op or .clone() first")

    def _bump(self):
        self._version += 1
        return self

    def _rebase(self, op, others, name):
        """In-place op in a recorded graph: the tensor's old value and history move to a new
        tensor, the op is recorded on it, and this tensor becomes the op's result. Its array is
        a new one here (the old one stays valid for the backward of the ops that saved it)."""
        old = Tensor._wrap(self.data, self._requires_grad)
        old.grad_fn, old._version = self.grad_fn, self._version
        out = apply(op, old, *others)
        self._check_result(out.data, name)
        if out.dtype != self.dtype:
            out = apply(E.Cast(dtype=self.dtype), out)
        self.data, self.grad_fn, self._requires_grad = out.data, out.grad_fn, out._requires_grad
        autograd.graph_edited()
        self._bump()
        self._rebased_at = self._version
        self.grad_fn.out_version = self._version
        return self

    def __iadd__(self, o):
        return self._inplace(E.Add(), o, name="add_")

    def __isub__(self, o):
        return self._inplace(E.Sub(), o, name="sub_")

    def __imul__(self, o):
        return self._inplace(E.Mul(), o, name="mul_")

    def __itruediv__(self, o):
        return self._inplace(E.Div(), o, name="div_")

    def add_(self, other, alpha=1):
        return self._inplace(E.Add(), other if alpha == 1 else other * alpha, name="add_")

    def sub_(self, other, alpha=1):
        return self._inplace(E.Sub(), other if alpha == 1 else other * alpha, name="sub_")

    def mul_(self, other):
        return self._inplace(E.Mul(), other, name="mul_")

    def div_(self, other):
        return self._inplace(E.Div(), other, name="div_")

    def clamp_(self, min=None, max=None):
        return self._inplace(E.Clip(min=min, max=max), name="clamp_")

    clip_ = clamp_

    def _overwrite(self, value, name):
        """fill_/zero_/copy_: new contents that do not depend on the old ones."""
        value = value.data if isinstance(value, Tensor) else value
        if autograd.is_grad_enabled():
            if self._requires_grad and self.grad_fn is None:
                raise RuntimeError("a leaf Variable that requires grad is being used in an "
                                   "in-place operation.")
            if self._requires_grad or self._symbolic:
                raise RuntimeError(f"{name}: pynn cannot record this in-place op on a tensor "
                                   f"that is part of a graph; do it under pynn.no_grad()")
        value = np.asarray(value)
        try:
            np.broadcast_to(value, self.shape)
        except ValueError:
            raise RuntimeError(f"{name}: cannot copy a value of shape {value.shape} into a "
                               f"tensor of shape {self.shape}") from None
        if not self.data.flags.writeable:
            raise RuntimeError(f"{name}: the tensor's array is read-only (a broadcast view?)")
        np.copyto(self.data, value, casting="unsafe")      # cast as torch's copy_ does
        return self._bump()

    def copy_(self, src):
        """Copy `src` (broadcast to this tensor's shape, cast to its dtype) into this tensor."""
        return self._overwrite(src, "copy_")

    def fill_(self, value):
        return self._overwrite(value, "fill_")

    def zero_(self):
        return self._overwrite(0, "zero_")

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
    def _floating(self):
        """This tensor, or a float32 copy of an integer/bool one: float ops on integers give
        float32, as in PyTorch (Tensor([1, 2]).exp() is not computed in int64)."""
        return self if self.data.dtype.kind == "f" else self.astype(np.float32)

    def exp(self):
        return apply(E.Exp(), self._floating())

    def log(self):
        return apply(E.Log(), self._floating())

    def sqrt(self):
        return apply(E.Sqrt(), self._floating())

    def abs(self):
        return apply(E.Abs(), self)

    __abs__ = abs

    def sin(self):
        return apply(E.Sin(), self._floating())

    def cos(self):
        return apply(E.Cos(), self._floating())

    def tanh(self):
        return apply(E.Tanh(), self._floating())

    def sigmoid(self):
        return apply(E.Sigmoid(), self._floating())

    def relu(self):
        return apply(E.Relu(), self)

    def leaky_relu(self, negative_slope=0.01):
        return apply(E.LeakyRelu(negative_slope=negative_slope), self)

    def gelu(self, approximate="none"):
        if approximate == "tanh":
            return apply(A.GeluTanh(), self._floating())
        if approximate != "none":
            raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
        return apply(E.Gelu(), self._floating())

    def softplus(self, beta=1.0, threshold=20.0):
        return apply(E.Softplus(beta=beta, threshold=threshold), self._floating())

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

    # every reduction also takes NumPy's names: axis= for dim= and keepdims= for keepdim=
    def sum(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        if dim is None and axis is None and keepdims is None:     # t.sum(), the common case
            return apply(R.Sum(dim=None, keepdim=keepdim), self)
        dim, keepdim = _numpy_names(dim, keepdim, axis, keepdims, "sum")
        return apply(R.Sum(dim=self._dim(dim, "sum"), keepdim=keepdim), self)

    def mean(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        if dim is None and axis is None and keepdims is None:     # t.mean(), the common case
            return apply(R.Mean(dim=None, keepdim=keepdim), self._floating())
        dim, keepdim = _numpy_names(dim, keepdim, axis, keepdims, "mean")
        return apply(R.Mean(dim=self._dim(dim, "mean"), keepdim=keepdim), self._floating())

    def amax(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        dim, keepdim = _numpy_names(dim, keepdim, axis, keepdims, "amax")
        return apply(R.Max(dim=self._dim(dim, "amax"), keepdim=keepdim), self)

    def amin(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        dim, keepdim = _numpy_names(dim, keepdim, axis, keepdims, "amin")
        return apply(R.Min(dim=self._dim(dim, "amin"), keepdim=keepdim), self)

    def max(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        """Largest value; with an int `dim`, `(values, indices)` as in PyTorch, and like PyTorch
        the gradient then goes to the returned index only (amax shares it among ties)."""
        dim, keepdim = _numpy_names(dim, keepdim, axis, keepdims, "max")
        if isinstance(dim, int):
            return self._pick(self.argmax(dim, keepdim=True), dim, keepdim, "max")
        return self.amax(dim, keepdim)

    def min(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        dim, keepdim = _numpy_names(dim, keepdim, axis, keepdims, "min")
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

    def var(self, dim=None, keepdim=False, correction=1, unbiased=None, *, axis=None,
            keepdims=None):
        dim, keepdim = _numpy_names(dim, keepdim, axis, keepdims, "var")
        if unbiased is not None:
            correction = int(unbiased)
        op = R.Var(dim=self._dim(dim, "var"), keepdim=keepdim, correction=correction)
        return apply(op, self._floating())

    def std(self, dim=None, keepdim=False, correction=1, unbiased=None, *, axis=None,
            keepdims=None):
        """sqrt(var); its gradient is 0 (not NaN) where the values are all equal, as torch."""
        dim, keepdim = _numpy_names(dim, keepdim, axis, keepdims, "std")
        if unbiased is not None:
            correction = int(unbiased)
        op = R.Std(dim=self._dim(dim, "std"), keepdim=keepdim, correction=correction)
        return apply(op, self._floating())

    def logsumexp(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        dim, keepdim = _numpy_names(dim, keepdim, axis, keepdims, "logsumexp")
        op = R.LogSumExp(dim=self._dim(dim, "logsumexp"), keepdim=keepdim)
        return apply(op, self._floating())

    def argmax(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        dim, keepdim = _numpy_names(dim, keepdim, axis, keepdims, "argmax")
        return self._arg(np.argmax, dim, keepdim, "argmax")

    def argmin(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        dim, keepdim = _numpy_names(dim, keepdim, axis, keepdims, "argmin")
        return self._arg(np.argmin, dim, keepdim, "argmin")

    def _arg(self, fn, dim, keepdim, name):
        axis = None if dim is None else self._dim(dim, name)[0]
        return apply(R.ArgReduce(fn=fn.__name__, dim=axis, keepdim=keepdim), self)

    def softmax(self, dim=-1, *, axis=None):
        x = self._floating()
        (axis,) = self._dim(dim if axis is None else axis, "softmax")
        return apply(R.Softmax(dim=axis), x)

    def log_softmax(self, dim=-1, *, axis=None):
        (axis,) = self._dim(dim if axis is None else axis, "log_softmax")
        return apply(R.LogSoftmax(dim=axis), self._floating())

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
        if self.ndim == 0:      # Tensor(1.0).squeeze(0): nothing to drop, as in PyTorch
            self._dim(dim, "squeeze")
            return apply(S.Squeeze(dim=()), self)
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
            raise ValueError(f"broadcast_to: cannot broadcast shape {self.shape} "
                             f"to {shape}") from None
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
                raise ValueError(f"split: sizes {sizes} do not add up to {n}, "
                                 f"the size of dim {axis}")
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
        if isinstance(index, Tensor) and index.dtype.kind in "iu":   # indices as data
            if index.size and (index.data.min() < -len(self) or index.data.max() >= len(self)):
                raise IndexError(f"index: indices in [{index.data.min()}, {index.data.max()}] "
                                 f"out of range for dim 0 of size {len(self)} (tensor of shape "
                                 f"{self.shape})")
            return apply(S.Take(), self, index)
        index = _plain_index(index)
        ints_first = _split_int_index(index, self.ndim)
        if ints_first is not None:          # t[1, :, [0, 1]]: PyTorch's order of dims
            return self[ints_first[0]][ints_first[1]]
        try:
            np.empty(self.shape, dtype=bool)[index]
        except IndexError as e:
            raise IndexError(f"index: {e} (tensor of shape {self.shape})") from None
        return apply(S.GetItem(index=index), self)

    def __setitem__(self, index, value):
        if self.requires_grad and autograd.is_grad_enabled():
            if self.grad_fn is None:
                raise RuntimeError("a leaf Variable that requires grad is being used in an "
                                   "in-place operation.")
            raise RuntimeError("in-place assignment to a tensor that requires grad; "
                               "do it under pynn.no_grad() or on a copy (t.clone())")
        self.data[_plain_index(index)] = getattr(value, "data", value)
        self._bump()

    # == more ops (issue 13): indexing, scans, products, sorting, movement, rounding, logic ==
    # Thin wrappers: each checks and normalises its arguments and applies one op from
    # pynn.ops.index / scan / reduce / movement / einsum / mathops (or a composition of ops).
    def _axis(self, dim, axis, name, default=None):
        """`dim`, or its NumPy/Keras alias `axis`, normalised (None stays None)."""
        if axis is not None:
            if dim is not None and dim != axis:
                raise TypeError(f"{name}: got both dim={dim} and axis={axis}")
            dim = axis
        return self._dim(default if dim is None else dim, name)

    @staticmethod
    def _index(index, name):
        index = index if isinstance(index, Tensor) else Tensor(np.asarray(index))
        if index.dtype.kind not in "iu":
            raise TypeError(f"{name}: index must hold integers, got dtype {index.dtype}")
        return index

    def _one_dim(self, dim, axis, name, default=None):
        dims = self._axis(dim, axis, name, default)
        if dims is None or len(dims) != 1:
            raise TypeError(f"{name}: give one dim (an int), got {dim if axis is None else axis}")
        return dims[0]

    def masked_fill(self, mask, value):
        """`value` where `mask` (broadcast to this shape) is true, this tensor elsewhere."""
        mask = mask if isinstance(mask, Tensor) else Tensor(np.asarray(mask, dtype=bool))
        value = value.item() if isinstance(value, Tensor) else value
        return apply(X.MaskedFill(value=value), self, mask)

    def gather(self, dim, index):
        """torch.gather: out[i][j] = self[index[i][j]][j] for dim 0 (likewise other dims)."""
        return apply(X.Gather(dim=self._one_dim(dim, None, "gather")), self,
                     self._index(index, "gather"))

    def scatter(self, dim, index, src=None, value=None):
        """A copy with entries at `index` along dim replaced by `src` (a tensor) or `value`."""
        d, index = self._one_dim(dim, None, "scatter"), self._index(index, "scatter")
        if src is None or not isinstance(src, (Tensor, np.ndarray, list)):
            value = src if value is None else value
            if not isinstance(value, numbers.Number):
                raise TypeError(f"scatter: give src (a tensor) or value (a number), got {value!r}")
            return apply(X.Scatter(dim=d, value=value), self, index)
        return apply(X.Scatter(dim=d, value=None), self, index, self._other(src))

    def scatter_add(self, dim, index, src):
        """A copy with `src` added at `index` along dim (repeated indices add up)."""
        return apply(X.ScatterAdd(dim=self._one_dim(dim, None, "scatter_add")), self,
                     self._index(index, "scatter_add"), self._other(src))

    def index_select(self, dim, index):
        """The entries `index` (1-d integers) along dim."""
        return apply(X.IndexSelect(dim=self._one_dim(dim, None, "index_select")), self,
                     self._index(index, "index_select"))

    def take_along_dim(self, indices, dim=None):
        """torch.take_along_dim: entries at `indices` along dim (dim None: of the flattened
        tensor); the other dims of the two broadcast."""
        indices = self._index(indices, "take_along_dim")
        if dim is None:
            return self.flatten().take_along_dim(indices.flatten(), 0)
        d = self._one_dim(dim, None, "take_along_dim")
        if indices.ndim != self.ndim:
            raise ValueError(f"take_along_dim: indices have {indices.ndim} dims, the tensor "
                             f"{self.ndim}")
        try:
            np.broadcast_shapes(self.shape[:d] + self.shape[d + 1:],
                                indices.shape[:d] + indices.shape[d + 1:])
        except ValueError:
            raise ValueError(f"take_along_dim: shapes {self.shape} and {indices.shape} do not "
                             f"broadcast outside dim {d}") from None
        return apply(S.TakeAlongDim(dim=d), self, indices)

    def cumsum(self, dim=None, axis=None):
        return apply(C.CumSum(dim=self._one_dim(dim, axis, "cumsum")), self)

    def cumprod(self, dim=None, axis=None):
        return apply(C.CumProd(dim=self._one_dim(dim, axis, "cumprod")), self)

    def prod(self, dim=None, keepdim=False, axis=None, keepdims=None):
        """Product of all entries, or over one dim."""
        keepdim = keepdim if keepdims is None else keepdims
        d = self._axis(dim, axis, "prod")
        if d is not None and len(d) != 1:
            raise TypeError("prod: dim must be one int (torch.prod reduces one dim)")
        return apply(R.Prod(dim=None if d is None else d[0], keepdim=keepdim), self)

    def norm(self, p="fro", dim=None, keepdim=False, axis=None, keepdims=None):
        """The vector p-norm over dim (None: every entry); p a number, inf, -inf or "fro" (2)."""
        keepdim = keepdim if keepdims is None else keepdims
        if p == "fro":
            p = 2
        if isinstance(p, str) or not isinstance(p, numbers.Real):
            raise ValueError(f"norm: p must be a number, inf or 'fro', got {p!r}")
        return apply(R.Norm(p=float(p), dim=self._axis(dim, axis, "norm"), keepdim=keepdim), self)

    def any(self, dim=None, keepdim=False, axis=None, keepdims=None):
        keepdim = keepdim if keepdims is None else keepdims
        return apply(R.BoolReduce(fn="any", dim=self._axis(dim, axis, "any"), keepdim=keepdim),
                     self)

    def all(self, dim=None, keepdim=False, axis=None, keepdims=None):
        keepdim = keepdim if keepdims is None else keepdims
        return apply(R.BoolReduce(fn="all", dim=self._axis(dim, axis, "all"), keepdim=keepdim),
                     self)

    @staticmethod
    def einsum(equation, *operands):
        """Einstein summation, as torch.einsum("ij,jk->ik", a, b)."""
        if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
            operands = operands[0]
        operands = [t if isinstance(t, Tensor) else Tensor(t) for t in operands]
        return apply(N.Einsum(equation=equation), *operands)

    def bmm(self, other):
        """Batched matrix product of (b, n, m) and (b, m, p) tensors."""
        other = self._other(other)
        if self.ndim != 3 or other.ndim != 3 or self.shape[0] != other.shape[0] \
                or self.shape[2] != other.shape[1]:
            raise ValueError(f"bmm: expected (b, n, m) and (b, m, p), got {self.shape} and "
                             f"{other.shape}")
        return self.matmul(other)

    def addmm(self, mat1, mat2, beta=1, alpha=1):
        """beta * self + alpha * (mat1 @ mat2), as torch.addmm(self, mat1, mat2)."""
        mat1, mat2 = self._other(mat1), self._other(mat2)
        if mat1.ndim != 2 or mat2.ndim != 2:
            raise ValueError(f"addmm: mat1 and mat2 must be matrices, got {mat1.shape} and "
                             f"{mat2.shape}")
        product = mat1.matmul(mat2)
        product = product if alpha == 1 else product * alpha
        return product + (self if beta == 1 else self * beta)

    def argsort(self, dim=-1, descending=False, stable=False, axis=None):
        """Indices that sort along dim (ties keep their order: a stable sort)."""
        d = self._one_dim(None if axis is not None else dim, axis, "argsort")
        return apply(X.ArgSort(dim=d, descending=bool(descending), stable=True), self)

    def sort(self, dim=-1, descending=False, stable=False, axis=None):
        """(values, indices) sorted along dim."""
        d = self._one_dim(None if axis is not None else dim, axis, "sort")
        indices = self.argsort(d, descending)
        return ValuesIndices(apply(S.TakeAlongDim(dim=d), self, indices), indices)

    def topk(self, k, dim=-1, largest=True, sorted=True):
        """(values, indices) of the k largest (or smallest) entries along dim, in order."""
        d = self._one_dim(dim, None, "topk")
        if not 0 <= k <= self.shape[d]:
            raise ValueError(f"topk: k={k} is out of range for dim {d} of size {self.shape[d]}")
        indices = apply(X.ArgSort(dim=d, descending=bool(largest), k=int(k)), self)
        return ValuesIndices(apply(S.TakeAlongDim(dim=d), self, indices), indices)

    def tril(self, diagonal=0):
        if self.ndim < 2:
            raise ValueError(f"tril: needs at least 2 dims, got shape {self.shape}")
        return apply(M.Triangular(diagonal=int(diagonal), upper=False), self)

    def triu(self, diagonal=0):
        if self.ndim < 2:
            raise ValueError(f"triu: needs at least 2 dims, got shape {self.shape}")
        return apply(M.Triangular(diagonal=int(diagonal), upper=True), self)

    def roll(self, shifts, dims=None):
        if dims is None:
            return apply(M.Roll(shifts=int(shifts), dims=None), self)
        shifts = tuple(shifts) if isinstance(shifts, (tuple, list)) else (shifts,)
        dims_t = tuple(dims) if isinstance(dims, (tuple, list)) else (dims,)
        if len(shifts) != len(dims_t):
            raise ValueError(f"roll: {len(shifts)} shifts for {len(dims_t)} dims")
        dims_t = tuple(self._one_dim(d, None, "roll") for d in dims_t)
        return apply(M.Roll(shifts=tuple(int(s) for s in shifts), dims=dims_t), self)

    def flip(self, *dims):
        dims = self._shape(dims)
        return apply(M.Flip(dims=tuple(self._one_dim(d, None, "flip") for d in dims)), self)

    def movedim(self, source, destination):
        """Move dims `source` to positions `destination` (ints or tuples); the rest keep order."""
        src = source if isinstance(source, (tuple, list)) else (source,)
        dst = destination if isinstance(destination, (tuple, list)) else (destination,)
        if len(src) != len(dst):
            raise ValueError(f"movedim: {len(src)} source dims but {len(dst)} destinations")
        src = [self._one_dim(d, None, "movedim") for d in src]
        dst = [self._one_dim(d, None, "movedim") for d in dst]
        rest = iter(d for d in range(self.ndim) if d not in src)
        placed = dict(zip(dst, src))
        return self.permute(tuple(placed[i] if i in placed else next(rest)
                                  for i in range(self.ndim)))

    moveaxis = movedim

    def unbind(self, dim=0):
        """The slices along dim, as a tuple of tensors with that dim removed."""
        d = self._one_dim(dim, None, "unbind")
        return tuple(self[(slice(None),) * d + (i,)] for i in range(self.shape[d]))

    def unfold(self, dimension, size, step):
        """Windows of `size` entries every `step` along `dimension` (torch.Tensor.unfold)."""
        if step < 1:
            raise ValueError(f"unfold: step must be positive, got {step}")
        return apply(M.Unfold(dim=self._one_dim(dimension, None, "unfold"), size=int(size),
                              step=int(step)), self)

    def repeat_interleave(self, repeats, dim=None):
        """Repeat each entry `repeats` times (an int or one count per entry) along dim
        (None: of the flattened tensor)."""
        if dim is None:
            return self.flatten().repeat_interleave(repeats, 0)
        d = self._one_dim(dim, None, "repeat_interleave")
        reps = np.asarray(getattr(repeats, "data", repeats))
        if reps.ndim > 1 or reps.dtype.kind not in "iu" or (reps.ndim == 1 and
                                                           len(reps) != self.shape[d]):
            raise ValueError(f"repeat_interleave: repeats must be an int or {self.shape[d]} "
                             f"ints, got {reps.tolist()}")
        reps = int(reps) if reps.ndim == 0 else tuple(int(r) for r in reps)
        return apply(X.RepeatInterleave(repeats=reps, dim=d), self)

    def nonzero(self, as_tuple=False):
        """Coordinates of the nonzero entries, (count, ndim) int64; eager only (the count
        depends on the values, so no Model can hold it)."""
        if self._symbolic:
            raise RuntimeError("nonzero: its output size depends on the values, so it cannot be "
                               "part of a Model; use it eagerly, or masked_fill/where instead")
        out = apply(X.Nonzero(), self)
        if as_tuple:
            return tuple(out[:, i] for i in range(self.ndim))
        return out

    def sign(self):
        return apply(F.Sign(), self)

    def floor(self):
        return apply(F.Floor(), self)

    def ceil(self):
        return apply(F.Ceil(), self)

    def round(self, decimals=0):
        return apply(F.Round(decimals=int(decimals)), self)

    def trunc(self):
        return apply(F.Trunc(), self)

    def fmod(self, other):
        return apply(F.Fmod(), self, self._other(other))

    def remainder(self, other):
        return apply(F.Remainder(), self, self._other(other))

    def __mod__(self, other):
        return apply(F.Remainder(), self, self._other(other))

    def __rmod__(self, other):
        return apply(F.Remainder(), self._other(other), self)

    def log1p(self):
        return apply(F.Log1p(), self)

    def expm1(self):
        return apply(F.Expm1(), self)

    def erf(self):
        return apply(F.Erf(), self)

    def square(self):
        return apply(F.Square(), self)

    def rsqrt(self):
        return apply(F.Rsqrt(), self)

    def _logical(self, fn, *others):
        others = [o if isinstance(o, Tensor) else Tensor(np.asarray(o)) for o in others]
        return apply(F.Logical(fn=fn), self, *others)

    def logical_and(self, other):
        return self._logical("logical_and", other)

    def logical_or(self, other):
        return self._logical("logical_or", other)

    def logical_xor(self, other):
        return self._logical("logical_xor", other)

    def logical_not(self):
        return self._logical("logical_not")

    @classmethod
    def randint(cls, low, high=None, size=None, *, dtype=np.int64):
        """Integers drawn uniformly from [low, high) (torch.randint(low, high, size), or
        torch.randint(high, size))."""
        if size is None:
            if not isinstance(high, (tuple, list)):
                raise TypeError("randint: give a size, e.g. Tensor.randint(0, 10, (3, 4))")
            low, high, size = 0, low, high
        elif high is None:
            low, high = 0, low
        size = (size,) if isinstance(size, int) else tuple(size)
        return cls(rng().integers(low, high, size=size), dtype=dtype)

    @classmethod
    def normal(cls, mean=0.0, std=1.0, size=None, requires_grad=False, dtype=np.float32):
        """Normal samples with the given mean and std (numbers or arrays that broadcast)."""
        mean, std = getattr(mean, "data", mean), getattr(std, "data", std)
        shape = size if size is not None else np.broadcast_shapes(np.shape(mean), np.shape(std))
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        data = mean + std * rng().standard_normal(shape)
        return cls(np.asarray(data, dtype=dtype), requires_grad=requires_grad, dtype=dtype)

    @classmethod
    def empty(cls, *shape, requires_grad=False, dtype=np.float32):
        """An uninitialised tensor (its values are whatever the memory held)."""
        return cls(np.empty(cls._shape(shape), dtype), requires_grad=requires_grad, dtype=dtype)
    # == end of issue-13 ops ==


def _numpy_names(dim, keepdim, axis, keepdims, name):
    """dim/keepdim from PyTorch's or NumPy's argument names (axis=, keepdims=)."""
    if axis is not None:
        if dim is not None:
            raise TypeError(f"{name}(): got both dim={dim!r} and axis={axis!r}; give one")
        dim = axis
    if keepdims is not None:
        keepdim = keepdims
    return dim, keepdim


def _is_int(i):
    return isinstance(i, (int, np.integer)) and not isinstance(i, (bool, np.bool_))


def _split_int_index(index, ndim):
    """PyTorch applies the integers of an index before its arrays, NumPy treats them as arrays:
    `t[1, :, [0, 1]]` of a (3, 5, 4) tensor is (5, 2) in PyTorch, (2, 5) in NumPy. For an index
    mixing both, return (the integers alone, the rest) to apply one after the other, else None."""
    if not isinstance(index, tuple) or not any(_is_int(i) for i in index):
        return None
    if not any(isinstance(i, np.ndarray) and i.ndim > 0 for i in index):
        return None
    used = sum(i.ndim if isinstance(i, np.ndarray) and i.dtype == bool else
               0 if i is None or i is Ellipsis else 1 for i in index)
    first, rest = [], []
    for i in index:
        if i is Ellipsis:
            first += [slice(None)] * (ndim - used)
            rest += [slice(None)] * (ndim - used)
        elif _is_int(i):
            first.append(i)
        elif i is None:
            rest.append(i)
        else:
            first += [slice(None)] * (i.ndim if isinstance(i, np.ndarray) and i.dtype == bool
                                      else 1)
            rest.append(i)
    return tuple(first), tuple(rest)


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
