"""torch.einsum / np.einsum, with its gradient written as one more einsum per operand."""
import string

import numpy as np

from .base import Op


def parse_einsum(equation, shapes):
    """Explicit subscripts for every operand and the output, ellipses spelled out as letters.

    Returns (input subscripts, output subscripts, {letter: size}); sizes of 1 stretch (they
    broadcast, as in np.einsum), so the sizes are the broadcast ones."""
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(shapes):
        raise ValueError(f"einsum: {equation!r} names {len(terms)} operands but got "
                         f"{len(shapes)}")
    free = [c for c in string.ascii_letters if c not in eq]
    n_ell = max([len(s) - len(t.replace("...", "")) for t, s in zip(terms, shapes) if "..." in t]
                or [0])
    ell = "".join(free[:n_ell])
    subs = []
    for t, s in zip(terms, shapes):
        if "..." in t:
            k = len(s) - len(t.replace("...", ""))
            t = t.replace("...", ell[n_ell - k:])
        if len(t) != len(s):
            raise ValueError(f"einsum: subscripts {t!r} do not match an operand of shape {s}")
        subs.append(t)
    if arrow:
        out = rhs.replace("...", ell)
    else:       # implicit output: the ellipsis, then the letters seen once, in order
        letters = "".join(subs)
        out = ell + "".join(sorted(c for c in set(letters) if letters.count(c) == 1
                                   and c not in ell))
    sizes = {}
    for t, s in zip(subs, shapes):
        for c, n in zip(t, s):
            m = sizes.get(c)
            if m is not None and m != n and 1 not in (m, n):
                raise ValueError(f"einsum: subscript {c!r} has sizes {m} and {n}")
            sizes[c] = n if m is None else max(m, n)
    for c in out:
        if c not in sizes:
            raise ValueError(f"einsum: output subscript {c!r} is not in any operand")
    return subs, out, sizes


class Einsum(Op):
    """Einstein summation (torch.einsum), any number of operands. attrs: equation.
    Derivative: d/dx_i = einsum(g and the other operands -> x_i's subscripts), with identity
    factors for a repeated subscript (a diagonal) and ones for a subscript only x_i has"""

    def forward(self, *xs):
        self.subs, self.out, self.sizes = parse_einsum(self.equation, [x.shape for x in xs])
        self.xs = xs
        spec = ",".join(self.subs) + "->" + self.out
        return np.asarray(np.einsum(spec, *xs, optimize=len(xs) > 2))

    def backward(self, g):
        return tuple(self._grad(i, g) if self.needs(i) else None for i in range(len(self.xs)))

    def _grad(self, i, g):
        subs, sizes, xs = self.subs, self.sizes, self.xs
        free = iter(c for c in string.ascii_letters if c not in sizes)
        # the operand's subscripts with repeats renamed, plus an identity per repeat
        target, extra_subs, extra = "", [], []
        for c in subs[i]:
            if c in target:
                fresh = next(free)
                target += fresh
                extra_subs.append(c + fresh)
                extra.append(np.eye(sizes[c], dtype=g.dtype))
            else:
                target += c
        others = [s for j, s in enumerate(subs) if j != i]
        seen = set(self.out) | set("".join(others)) | set("".join(extra_subs))
        for c in set(target):
            if c not in seen:        # summed away in forward: its gradient is broadcast
                extra_subs.append(c)
                extra.append(np.ones(sizes[c], dtype=g.dtype))
        # operands stretched by broadcasting are read at full size, then summed back
        operands = [np.broadcast_to(xs[j], [sizes[c] for c in subs[j]])
                    for j in range(len(xs)) if j != i]
        spec = ",".join([self.out] + others + extra_subs) + "->" + target
        grad = np.einsum(spec, g, *operands, *extra, optimize=True)
        shape = xs[i].shape
        axes = tuple(d for d, n in enumerate(shape) if n == 1 and grad.shape[d] != 1)
        if axes:
            grad = grad.sum(axis=axes, keepdims=True)
        return grad
