"""Graph traversal shared by the eager tape, the compiled Model and the graph pictures."""


def walk(roots, stop=frozenset()):
    """Every tensor behind `roots` (included), each once, in topological order: a tensor comes
    after every tensor it was made from. The walk does not go behind tensors whose id is in
    `stop` (a Model's inputs). Iterative, so a chain of any length is fine."""
    order, seen = [], set()
    stack = [(t, False) for t in reversed(list(roots))]
    while stack:
        t, expanded = stack.pop()
        if expanded:
            order.append(t)
            continue
        if id(t) in seen:
            continue
        seen.add(id(t))
        stack.append((t, True))
        if t.grad_fn is not None and id(t) not in stop:
            for parent in reversed(t.grad_fn.inputs):
                if id(parent) not in seen:
                    stack.append((parent, False))
    return order


from .graphviz import draw  # noqa: E402  (pictures of graphs: DOT source, SVG/PNG via Graphviz)
