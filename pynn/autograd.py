"""The eager tape: graph nodes, the reverse pass, and the grad-mode switches.

Every op applied to a tensor that requires grad records a `Node` (the result's ``grad_fn``)
holding the op and its input tensors. ``backward`` sorts the graph behind a tensor
topologically (iteratively: no recursion limit), then walks it in reverse, asking each op for its
inputs' gradients and adding them up.
"""
import functools
import threading

import numpy as np

from . import anomaly
from .graph import walk
from .ops.base import Op, unbroadcast


class _State(threading.local):
    """The grad mode of each thread (PyTorch's is per thread too). The defaults are class
    attributes, so reading them is a plain attribute lookup: every op reads them."""
    grad_enabled = True
    retain_all = False


_state = _State()


def is_grad_enabled():
    return _state.grad_enabled


def _retain_all():
    return _state.retain_all


class _GradMode:
    """Context manager and decorator that sets whether ops are recorded."""

    def __init__(self, enabled):
        self.enabled = enabled

    def __enter__(self):
        self.prev = is_grad_enabled()
        _state.grad_enabled = self.enabled

    def __exit__(self, *exc):
        _state.grad_enabled = self.prev

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with type(self)():
                return fn(*args, **kwargs)
        return wrapper


class no_grad(_GradMode):
    """``with pynn.no_grad():``, ``@pynn.no_grad()`` or ``@pynn.no_grad``: nothing inside is
    recorded."""

    def __new__(cls, fn=None):
        if fn is not None:          # used bare, as @pynn.no_grad: decorate fn at once
            return cls()(fn)
        return super().__new__(cls)

    def __init__(self):
        super().__init__(False)


class enable_grad(_GradMode):
    def __init__(self):
        super().__init__(True)


class retain_grads:
    """``with pynn.retain_grads():`` every tensor made inside keeps its ``.grad`` after backward."""

    def __enter__(self):
        self.prev = _retain_all()
        _state.retain_all = True

    def __exit__(self, *exc):
        _state.retain_all = self.prev


class Node:
    """A recorded op application: the ``grad_fn`` of the tensor it produced.

    ``call`` is the `graph.LayerCall` that returned this tensor when the op was the last one of
    a layer call (None otherwise): the layer-level record Model, summary, save and draw read.

    ``versions`` are the inputs' version counters when the op ran and ``out_version`` the
    output's: backward compares them with the tensors' current ``_version`` to catch an
    in-place change of a value the op saved for its backward (see ``check_versions``)."""

    __slots__ = ("op", "inputs", "released", "call", "versions", "out_version")

    def __init__(self, op, inputs, versions=None, out_version=0):
        self.op = op
        self.inputs = inputs
        self.released = False
        self.call = None
        if versions is None:
            versions = tuple(getattr(t, "_version", 0) for t in inputs)
        self.versions = versions
        self.out_version = out_version

    def name(self):
        return self.op.name + "Backward"

    @property
    def next_functions(self):
        return tuple((t.grad_fn, 0) for t in self.inputs)

    def __repr__(self):
        return f"<{self.name()}>"


def _modified_error(node, what, tensor, expected):
    return RuntimeError(
        f"one of the variables needed for gradient computation has been modified by an "
        f"inplace operation: {what} of {node.name()} (shape {tuple(tensor.shape)}, "
        f"{tensor.dtype}) is at version {tensor._version}; expected version {expected} "
        f"instead. Call backward() before changing it (e.g. before opt.step()), or change a "
        f"copy (t.clone())")


def check_versions(t, node):
    """Raise if a tensor that `node` (t's grad_fn) saved for its backward was changed in place
    since the op ran.

    A changed input whose memory the op did not keep (x in x + y) is fine, as in PyTorch,
    unless an in-place op under grad mode gave that tensor a new grad_fn meanwhile (`y += 1`
    on a non-leaf): the gradient would then flow through the wrong history."""
    for parent, version in zip(node.inputs, node.versions):     # the common case: unchanged
        if parent._version != version:
            break
    else:
        if t._version == node.out_version:
            return
    for i, (parent, version) in enumerate(zip(node.inputs, node.versions)):
        if parent._version != version and (
                parent._rebased_at > version or node.op.saves(parent.data)):
            raise _modified_error(node, f"input #{i}", parent, version)
    if t._version != node.out_version and node.op.saves(t.data):
        raise _modified_error(node, "the output", t, node.out_version)


#: how many times a recorded tensor got a new grad_fn after it was made (an in-place op in a
#: recorded graph, Tensor._rebase: the one change to a graph's shape once it exists)
_graph_edits = 0


def graph_edited():
    global _graph_edits
    _graph_edits += 1


def topological_order(root):
    """Tensors behind `root` (itself included) that have a grad_fn, inputs before outputs.

    The walk that `loss.zero_grad()` just made of the same graph is used again when no graph
    was edited since (see leaves_and_nodes): an eager step walks its graph once, not twice."""
    walked = root.__dict__.pop("_walked", None)
    if walked is not None and walked[0] == _graph_edits:
        order = walked[1]
        order.append(root)
    else:
        order = walk([root])
    return [t for t in order if t.grad_fn is not None]


def leaves_and_nodes(root):
    """Every tensor in the graph behind `root`, leaves included (for zero_grad). The order is
    kept on `root` for its backward (without root itself, so that root does not hold itself)."""
    order = walk([root])
    if root.grad_fn is not None:
        root._walked = (_graph_edits, order[:-1])
    return order


#: held while a gradient is added into a leaf's .grad, so that threads running backward into
#: the same parameters at once add up their contributions instead of losing some
_grad_lock = threading.Lock()


def _accumulate(tensor, grad, adopt=False):
    """Add `grad` (an array of tensor's shape) into tensor.grad. With `adopt` (grad is an array
    nothing else holds, see _adoptable), a first gradient of the tensor's dtype becomes .grad
    as it is, without a copy."""
    with _grad_lock:
        if tensor.grad is None:
            if not (adopt and grad.dtype == tensor.data.dtype):
                grad = np.array(grad, dtype=tensor.data.dtype, copy=True)
            tensor.grad = type(tensor)._wrap(grad)
        else:
            tensor.grad.data += grad


def _adoptable(grad, buffers, grads):
    """Can a leaf keep `grad`, one of an op's input gradients `grads`, as its .grad? Yes when
    it is one of the op's own `buffers` (or a whole C-contiguous view of one) that no other of
    `grads` shares, and the op drops its buffers once its backward has run: then nothing else
    holds that memory. (A copy of an 800 KB weight gradient took 5% of an eager MLP step.)"""
    base = grad if grad.base is None else grad.base
    if not any(base is b for b in buffers.values()):
        return False
    if grad is not base and (grad.size != base.size or not grad.flags.c_contiguous):
        return False
    return sum(1 for x in grads if x is not None and (x is base or x.base is base)) == 1


def backward(root, grad=None, retain_graph=False):
    if not root.requires_grad:
        raise RuntimeError(
            "backward(): this tensor does not require grad and has no grad_fn; create the leaves "
            "with requires_grad=True (and don't compute it under pynn.no_grad())")
    if grad is None:
        if root.data.size != 1:
            raise RuntimeError(
                f"backward(): grad can be implicitly created only for scalar outputs, but this "
                f"tensor has shape {root.shape}; pass grad= of that shape")
        grad = np.empty_like(root.data)      # (np.ones_like runs Python code: ~2 us)
        grad.fill(1)
    else:
        grad = np.asarray(getattr(grad, "data", grad), dtype=root.data.dtype)
        if grad.shape != root.shape:
            raise RuntimeError(f"backward(): grad has shape {grad.shape} but the tensor has shape "
                               f"{root.shape}")

    if root.grad_fn is None:          # a leaf: its gradient is the seed itself
        _accumulate(root, grad)
        return

    grads = {root: grad}            # keyed by the tensors themselves: they hash by identity
    for t in reversed(topological_order(root)):
        g = grads.pop(t, None)
        if g is None:
            continue
        if t._retains_grad:
            _accumulate(t, g)
        node = t.grad_fn
        if node.released:
            raise RuntimeError(
                f"backward(): trying to go through {node.name()} a second time, but its saved "
                f"values were freed by the first backward; call backward(retain_graph=True) "
                f"the first time")
        check_versions(t, node)
        input_grads = node.op.backward(g)
        if anomaly.enabled:
            anomaly.check_backward(node.op, input_grads,
                                   lambda t=t: anomaly.layer_of(t, [root]))
        # an op released after this backward leaves its buffers to the leaves' gradients
        buffers = None if retain_graph or type(node.op).release is not Op.release \
            else node.op._buffers
        for parent, pg in zip(node.inputs, input_grads):
            if pg is None or not parent._requires_grad:
                continue
            if pg.shape != parent.data.shape:
                pg = unbroadcast(pg, parent.data.shape)
            if parent.grad_fn is None:
                _accumulate(parent, pg, bool(buffers) and parent.grad is None
                            and _adoptable(pg, buffers, input_grads))
            elif parent in grads:
                grads[parent] = grads[parent] + pg
            else:
                grads[parent] = pg
        if not retain_graph:
            node.op.release()
            node.released = True
