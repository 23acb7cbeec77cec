"""Graph traversal shared by the eager tape, the compiled Model and the graph pictures."""


def walk(roots, stop=frozenset()):
    """Every tensor behind `roots` (included), each once, in topological order: a tensor comes
    after every tensor it was made from. The walk does not go behind tensors whose id is in
    `stop` (a Model's inputs). Iterative, so a chain of any length is fine."""
    order, seen = [], set()
    stack = [(t, False) for t in reversed(list(roots))]
    pop, push, mark = stack.pop, stack.append, seen.add
    while stack:
        t, expanded = pop()
        if expanded:
            order.append(t)
            continue
        if id(t) in seen:
            continue
        mark(id(t))
        push((t, True))
        fn = t.grad_fn
        if fn is not None and id(t) not in stop:
            for parent in reversed(fn.inputs):
                if id(parent) not in seen:
                    push((parent, False))
    return order


from .graphviz import draw  # noqa: E402  (pictures of graphs: DOT source, SVG/PNG via Graphviz)
