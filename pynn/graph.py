"""Graph traversal shared by the eager tape, the compiled Model and the graph pictures."""


def walk(roots, stop=frozenset()):
    """Every tensor behind `roots` (included), each once, in topological order: a tensor comes
    after every tensor it was made from. The walk does not go behind tensors whose id is in
    `stop` (a Model's inputs). Iterative, so a chain of any length is fine."""
    order, seen = [], set()
    mark, emit = seen.add, order.append
    for root in roots:
        if id(root) in seen:
            continue
        mark(id(root))
        # Depth first: each stack entry is a tensor and an iterator over its parents still to
        # visit; a tensor is emitted once all its parents have been.
        stack = [(root, _parents(root, stop))]
        push, pop = stack.append, stack.pop
        while stack:
            t, parents = stack[-1]
            for parent in parents:
                if id(parent) not in seen:
                    mark(id(parent))
                    push((parent, _parents(parent, stop)))
                    break
            else:
                pop()
                emit(t)
    return order


def _parents(t, stop):
    fn = t.grad_fn
    return iter(() if fn is None or id(t) in stop else fn.inputs)


from .graphviz import draw  # noqa: E402, F401  (pictures of graphs: DOT source, SVG/PNG via Graphviz)
