"""The graph record and its traversal, shared by the eager tape, the compiled Model, saving,
summary() and the graph pictures.

Every recorded op leaves an `autograd.Node` as its output's ``grad_fn``. When a layer (or a
nested Model) is called, the node of each tensor the call returns also carries the call, a
`LayerCall`: which layer, which of its calls, and the tensors it was called on. That is the one
record the layer-level view of a graph is read from, as Keras keeps a history on each symbolic
tensor; the op-level view (what the compiled plan replays) is the nodes themselves.
"""


class LayerCall:
    """One call of a layer: `layer(*inputs)` returned `outputs`; `index` counts the layer's
    calls (a shared layer is called several times, each call its own record)."""

    __slots__ = ("layer", "index", "inputs", "outputs")

    def __init__(self, layer, index, inputs, outputs):
        self.layer, self.index, self.inputs, self.outputs = layer, index, inputs, outputs

    def __repr__(self):
        return f"LayerCall({self.layer!r}, call {self.index})"


def layer_call(t):
    """The layer call that produced tensor `t`, or None (an input, a parameter, a loose op)."""
    fn = t.grad_fn
    return None if fn is None else fn.call


def layer_walk(outputs, stop=frozenset()):
    """The layer-level view between `stop` (ids of a model's inputs) and `outputs`: a list of
    ("layer", LayerCall) and ("op", tensor) entries in execution order, each once. A layer call is
    one entry whatever ops it ran inside; loose ops between layers are entries of their own."""
    order, seen = [], set()
    stack = [(t, False) for t in reversed(list(outputs))]
    while stack:
        t, expanded = stack.pop()
        call = layer_call(t)
        key = id(call) if call is not None else id(t)
        if expanded:
            if key not in seen:
                seen.add(key)
                order.append(("layer", call) if call is not None else ("op", t))
            continue
        if key in seen or id(t) in stop or t.grad_fn is None:
            continue
        parents = call.inputs if call is not None else t.grad_fn.inputs
        stack.append((t, True))
        stack.extend((p, False) for p in reversed(parents))
    return order


def walk(roots, stop=frozenset()):
    """Every tensor behind `roots` (included), each once, in topological order: a tensor comes
    after every tensor it was made from. The walk does not go behind tensors whose id is in
    `stop` (a Model's inputs). Iterative, so a chain of any length is fine."""
    order, seen = [], set()         # tensors hash by identity (Tensor.__hash__)
    mark, emit = seen.add, order.append
    for root in roots:
        if root in seen:
            continue
        mark(root)
        # Depth first: each stack entry is a tensor and an iterator over its parents still to
        # visit; a tensor is emitted once all its parents have been. (The parents are looked
        # up inline: this runs twice per eager training step, zero_grad and backward.)
        fn = root.grad_fn
        stack = [(root, iter(() if fn is None or (stop and id(root) in stop) else fn.inputs))]
        push, pop = stack.append, stack.pop
        while stack:
            t, parents = stack[-1]
            for parent in parents:
                if parent not in seen:
                    mark(parent)
                    fn = parent.grad_fn
                    push((parent, iter(() if fn is None or (stop and id(parent) in stop)
                                       else fn.inputs)))
                    break
            else:
                pop()
                emit(t)
    return order


def draw(tensor_or_model, path=None, rankdir="LR", plan=False):
    """A picture of a graph, or of a Model's compiled plan with `plan=True`: see
    `pynn.graphviz.draw` (imported here on first use, so this module depends on nothing)."""
    from .graphviz import draw as _draw
    return _draw(tensor_or_model, path, rankdir, plan)
