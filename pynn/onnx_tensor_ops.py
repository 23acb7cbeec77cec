"""ONNX exporters of the loose Tensor ops: rounding and remainders, log1p/expm1/erf, logic,
products and norms, scans, einsum, gather/scatter, sorting, and the movement ops (tril/triu,
roll, flip, unfold, repeat_interleave).

Written the way `pynn.onnx_ops` explains (`fn(g, op, ins, out)`). Any size an op reads along a
dim is taken from the tensor's shape at run time, never from the build-time shape, so the free
batch dim (and any `None` dim of an Input) stays free whichever dim the op works on.
"""
import numpy as np

from .onnx_ops import INT64_MAX, ExportError, exporter
from .ops.einsum import parse_einsum

#: ops that stay eager-only, and why (the export error says so)
EAGER_ONLY = {
    "Nonzero": "its output's size (the count of nonzero entries) depends on the input's values, "
               "so it is eager-only and a Model holding it cannot be exported; use where / "
               "masked_fill, or a boolean mask with a fixed shape",
}


def _size(g, x, dim):
    """x.shape[dim] at run time: a 1-D int64 tensor of one entry."""
    return g.node("Gather", [g.node("Shape", [x]), g.ints([dim])], axis=0)


def _scalar_size(g, x, dim):
    """x.shape[dim] at run time as a 0-d int64 (what Range takes)."""
    return g.node("Squeeze", [_size(g, x, dim), g.ints([0])])


def _arange(g, n):
    """0, 1, ..., n - 1 (int64) for a 0-d int64 n known at run time."""
    zero, one = g.const(np.array(0, np.int64), "zero"), g.const(np.array(1, np.int64), "one")
    return g.node("Range", [zero, n, one])


def _is_true(g, x):
    """x as booleans: nonzero is true (NaN too), as NumPy's truth of a number."""
    if g.dtype(x) == np.bool_:
        return x
    return g.node("Not", [g.node("Equal", [x, g.scalar(0, g.dtype(x))])])


def _all_axes(g, x, dim):
    """The reduced axes: every axis for dim None, else the dims (an int or a tuple)."""
    if dim is None:
        return list(range(len(g.shape(x))))
    return [int(dim)] if isinstance(dim, (int, np.integer)) else [int(d) for d in dim]


# -- rounding (pynn.ops.mathops) -----------------------------------------------------------------
@exporter("Floor", "Ceil", "Sign")
def _rounding(g, op, ins, out):
    """Integers and bools come back as they are (sign of an integer is computed)."""
    kind = g.dtype(ins[0]).kind
    if kind == "b" or (kind in "iu" and op.name != "Sign"):
        g.node("Identity", ins, [out])
    else:
        g.node(op.name, ins, [out])


@exporter("Trunc")
def _trunc(g, op, ins, out):
    """Towards zero: ceil below zero, floor elsewhere (ONNX has no Trunc op)."""
    x = ins[0]
    if g.dtype(x).kind in "biu":
        g.node("Identity", [x], [out])
        return
    negative = g.node("Less", [x, g.scalar(0, g.dtype(x))])
    g.node("Where", [negative, g.node("Ceil", [x]), g.node("Floor", [x])], [out])


@exporter("Round")
def _round(g, op, ins, out):
    """Half to even (ONNX Round, like NumPy); with decimals d, NumPy's exact steps in x's dtype:
    round(x * 10^d) / 10^d, or round(x / 10^-d) * 10^-d for d < 0."""
    x, d = ins[0], int(op.decimals)
    dtype = g.dtype(x)
    if dtype.kind in "biu":
        g.node("Identity", [x], [out])
    elif d == 0:
        g.node("Round", [x], [out])
    else:
        f = g.scalar(10.0 ** abs(d), dtype)
        there, back = ("Mul", "Div") if d > 0 else ("Div", "Mul")
        g.node(back, [g.node("Round", [g.node(there, [x, f])]), f], [out])


@exporter("Fmod")
def _fmod(g, op, ins, out):
    """C's fmod (the sign of a): ONNX Mod with fmod=1, for floats and integers alike."""
    dtype = g.dtype(out)
    g.node("Mod", [g.cast(x, dtype) for x in ins], [out], fmod=1)


@exporter("Remainder")
def _remainder(g, op, ins, out):
    """Python's a % b (the sign of b). Integers: ONNX Mod with fmod=0. Floats (where ONNX allows
    only fmod=1): NumPy's own steps, m = fmod(a, b), plus b where m is nonzero and its sign
    differs from b's; exact, unlike a - floor(a / b) * b."""
    dtype = g.dtype(out)
    a, b = (g.cast(x, dtype) for x in ins)
    if dtype.kind in "iu":
        g.node("Mod", [a, b], [out], fmod=0)
        return
    zero = g.scalar(0, dtype)
    m = g.node("Mod", [a, b], fmod=1)
    signs_differ = g.node("Xor", [g.node("Less", [b, zero]), g.node("Less", [m, zero])])
    fix = g.node("And", [g.node("Not", [g.node("Equal", [m, zero])]), signs_differ])
    g.node("Where", [fix, g.node("Add", [m, b]), m], [out])


# -- log1p, expm1, erf, square, rsqrt ------------------------------------------------------------
@exporter("Log1p")
def _log1p(g, op, ins, out):
    """log(1 + x) accurate for small x (ONNX has no Log1p): with u = 1 + x rounded,
    log(u) * x / (u - 1), which cancels u's rounding error; x itself where u == 1, and u where
    u is inf."""
    dtype = g.dtype(out)
    x = g.cast(ins[0], dtype)
    one = g.scalar(1, dtype)
    u = g.node("Add", [x, one])
    y = g.node("Mul", [g.node("Log", [u]), g.node("Div", [x, g.node("Sub", [u, one])])])
    y = g.node("Where", [g.node("IsInf", [u]), u, y])
    g.node("Where", [g.node("Equal", [u, one]), x, y], [out])


@exporter("Expm1")
def _expm1(g, op, ins, out):
    """exp(x) - 1 accurate for small x (ONNX has no Expm1): with u = exp(x) rounded,
    (u - 1) * x / log(u); x where u == 1, -1 where u - 1 == -1, u where u is inf."""
    dtype = g.dtype(out)
    x = g.cast(ins[0], dtype)
    one = g.scalar(1, dtype)
    u = g.node("Exp", [x])
    um1 = g.node("Sub", [u, one])
    y = g.node("Mul", [um1, g.node("Div", [x, g.node("Log", [u])])])
    y = g.node("Where", [g.node("IsInf", [u]), u, y])
    minus_one = g.scalar(-1, dtype)
    y = g.node("Where", [g.node("Equal", [um1, minus_one]), minus_one, y])
    g.node("Where", [g.node("Equal", [u, one]), x, y], [out])


@exporter("Erf")
def _erf(g, op, ins, out):
    g.node("Erf", [g.cast(ins[0], g.dtype(out))], [out])


@exporter("Square")
def _square(g, op, ins, out):
    g.node("Mul", [ins[0], ins[0]], [out])


@exporter("Rsqrt")
def _rsqrt(g, op, ins, out):
    """1 / sqrt(x), as pynn computes it (Div, not Reciprocal, for the same rounding)."""
    dtype = g.dtype(out)
    g.node("Div", [g.scalar(1, dtype), g.node("Sqrt", [g.cast(ins[0], dtype)])], [out])


LOGICAL = {"logical_and": "And", "logical_or": "Or", "logical_xor": "Xor", "logical_not": "Not"}


@exporter("Logical")
def _logical(g, op, ins, out):
    """And / Or / Xor / Not of the inputs' truth values (nonzero is true)."""
    if op.fn not in LOGICAL:
        raise ExportError(f"logical op {op.fn!r} has no ONNX form here")
    g.node(LOGICAL[op.fn], [_is_true(g, x) for x in ins], [out])


# -- reductions (pynn.ops.reduce) ----------------------------------------------------------------
@exporter("BoolReduce")
def _bool_reduce(g, op, ins, out):
    """any / all: the max / min of the truth values as 0 / 1 (ONNX's ReduceMax takes bools only
    from opset 20), back to bool."""
    truth = _is_true(g, ins[0])
    if op.dim is not None and len(op.dim) == 0:        # no axis: NumPy gives the truth values
        g.node("Identity", [truth], [out])
        return
    kind = {"any": "ReduceMax", "all": "ReduceMin"}[op.fn]
    r = g.reduce(kind, g.cast(truth, np.int32), _all_axes(g, ins[0], op.dim), op.keepdim)
    g.node("Cast", [r], [out], to=g.elem_type(np.bool_))


@exporter("Prod")
def _prod(g, op, ins, out):
    """ReduceProd over one dim or all of them, in the output's dtype (int64 for integers)."""
    x = g.cast(ins[0], g.dtype(out))
    g.reduce("ReduceProd", x, _all_axes(g, ins[0], op.dim), op.keepdim, out)


@exporter("Norm")
def _norm(g, op, ins, out):
    """The p-norm as pynn computes it: ReduceL1 / ReduceL2 for p = 1, 2, the max / min of |x|
    for +-inf, the count of nonzeros for 0, else (sum |x|^p)^(1/p)."""
    dtype, p = g.dtype(out), float(op.p)
    x = g.cast(ins[0], dtype)
    axes, keep = _all_axes(g, ins[0], op.dim), op.keepdim
    if p == 1:
        g.reduce("ReduceL1", x, axes, keep, out)
    elif p == 2:
        g.reduce("ReduceL2", x, axes, keep, out)
    elif p in (np.inf, -np.inf):
        g.reduce("ReduceMax" if p > 0 else "ReduceMin", g.node("Abs", [x]), axes, keep, out)
    elif p == 0:
        nonzero = g.cast(_is_true(g, x), dtype)
        g.reduce("ReduceSum", nonzero, axes, keep, out)
    else:
        powered = g.node("Pow", [g.node("Abs", [x]), g.scalar(p, dtype)])
        total = g.reduce("ReduceSum", powered, axes, keep)
        g.node("Pow", [total, g.scalar(1.0 / p, dtype)], [out])


# -- scans and einsum (pynn.ops.scan, pynn.ops.einsum) -------------------------------------------
@exporter("CumSum")
def _cumsum(g, op, ins, out):
    x = g.cast(ins[0], g.dtype(out))
    g.node("CumSum", [x, g.const(np.array(op.dim, np.int64), "axis")], [out])


@exporter("CumProd")
def _cumprod(g, op, ins, out):
    """ONNX has no CumProd; y_i = prod_{j <= i} x_j without a loop or a log: x laid out as
    (..., i, j, ...) with x_j where j <= i and 1 elsewhere (a triangular mask of the dim's run-time
    length), then ReduceProd over j. Exact products (zeros and signs too); n^2 memory along the
    dim."""
    dtype = g.dtype(out)
    x, dim = g.cast(ins[0], dtype), int(op.dim)
    ndim = len(g.shape(ins[0]))
    r = _arange(g, _scalar_size(g, ins[0], dim))
    rows = g.node("Unsqueeze", [r, g.ints([1])])                     # i
    cols = g.node("Unsqueeze", [r, g.ints([0])])                     # j
    keep = g.node("LessOrEqual", [cols, rows])                       # (n_i, n_j)
    if ndim - dim - 1:
        keep = g.node("Unsqueeze", [keep, g.ints(range(2, 2 + ndim - dim - 1))])
    spread = g.node("Where", [keep, g.node("Unsqueeze", [x, g.ints([dim])]),
                              g.scalar(1, dtype)])                   # (..., n_i, n_j, ...)
    g.reduce("ReduceProd", spread, [dim + 1], False, out)


@exporter("Einsum")
def _einsum(g, op, ins, out):
    """ONNX Einsum with the subscripts spelled out as pynn parses them (ellipses as letters, the
    implicit output made explicit); operands in the output's dtype."""
    subs, result, _ = parse_einsum(op.equation, [g.shape(x) for x in ins])
    dtype = g.dtype(out)
    g.node("Einsum", [g.cast(x, dtype) for x in ins], [out],
           equation=",".join(subs) + "->" + result)


# -- gather, scatter, sorting (pynn.ops.index) ---------------------------------------------------
def _index(g, idx):
    return g.cast(idx, np.int64)


@exporter("Gather")
def _gather(g, op, ins, out):
    """torch.gather is GatherElements (the index may be smaller than x off the dim)."""
    g.node("GatherElements", [ins[0], _index(g, ins[1])], [out], axis=int(op.dim))


@exporter("IndexSelect")
def _index_select(g, op, ins, out):
    g.node("Gather", [ins[0], _index(g, ins[1])], [out], axis=int(op.dim))


def _updates(g, op, x, idx, src):
    """What scatter writes at each index position: src cut to the index's shape (torch lets src
    be larger), or the op's value broadcast to it; in x's dtype."""
    dtype = g.dtype(x)
    if src is None:
        return g.node("Expand", [g.scalar(op.value, dtype), g.node("Shape", [idx])])
    ndim = len(g.shape(idx))
    head = g.node("Slice", [src, g.ints([0] * ndim), g.node("Shape", [idx]),
                            g.ints(range(ndim))])
    return g.cast(head, dtype) if g.dtype(src) != dtype else head


@exporter("Scatter")
def _scatter(g, op, ins, out):
    """ScatterElements (with repeated indices ONNX leaves the winner unspecified; pynn keeps the
    last)."""
    x, idx = ins[0], _index(g, ins[1])
    updates = _updates(g, op, x, idx, ins[2] if len(ins) > 2 else None)
    g.node("ScatterElements", [x, idx, updates], [out], axis=int(op.dim))


@exporter("ScatterAdd")
def _scatter_add(g, op, ins, out):
    """ScatterElements with reduction="add" (repeated indices add up): opset 16 and later."""
    if g.opset < 16:
        raise ExportError(f"scatter_add is ScatterElements(reduction='add'), which needs opset "
                          f">= 16; got opset {g.opset}")
    x, idx = ins[0], _index(g, ins[1])
    g.node("ScatterElements", [x, idx, _updates(g, op, x, idx, ins[2])], [out],
           axis=int(op.dim), reduction="add")


@exporter("ArgSort")
def _argsort(g, op, ins, out):
    """TopK over the whole dim (its run-time length) or the first k, sorted; TopK breaks ties by
    the lower index first, which is pynn's stable order both ascending and descending."""
    x, dim = ins[0], int(op.dim)
    if g.dtype(x).kind in "bu":
        x = g.cast(x, np.int64)
    k = _size(g, x, dim) if op.k is None else g.ints([op.k])
    g.node("TopK", [x, k], [g.fresh("topk_values"), out], axis=dim,
           largest=int(op.descending), sorted=1)


@exporter("RepeatInterleave")
def _repeat_interleave(g, op, ins, out):
    """An int count r: x unsqueezed after the dim, expanded r times there, reshaped to the
    run-time shape with the dim times r. One count per entry: a Gather of the repeated
    positions (the dim's length is fixed by the counts)."""
    x, dim = ins[0], int(op.dim)
    ndim = len(g.shape(x))
    reps = op.repeats
    if isinstance(reps, (int, np.integer)) and reps > 0:
        wide = g.node("Expand", [g.node("Unsqueeze", [x, g.ints([dim + 1])]),
                                 g.ints([1] * (dim + 1) + [reps] + [1] * (ndim - dim - 1))])
        factors = g.ints([reps if d == dim else 1 for d in range(ndim)])
        g.node("Reshape", [wide, g.node("Mul", [g.node("Shape", [x]), factors])], [out])
        return
    n = g.shape(x)[dim]
    positions = np.repeat(np.arange(n), np.broadcast_to(np.asarray(reps), (n,)))
    g.node("Gather", [x, g.const(positions.astype(np.int64), "positions")], [out], axis=dim)


# -- movement (pynn.ops.movement) ----------------------------------------------------------------
@exporter("Triangular")
def _triangular(g, op, ins, out):
    """Trilu from opset 14 (for the types onnxruntime runs it on); else, and for other dtypes,
    Where (And for bools) over the mask col - row >= k (triu) / <= k (tril) of the run-time
    sizes."""
    x, k = ins[0], int(op.diagonal)
    dtype = g.dtype(x)
    if g.opset >= 14 and dtype in (np.float32, np.float64, np.int64):
        g.node("Trilu", [x, g.const(np.array(k, np.int64), "diagonal")], [out],
               upper=int(op.upper))
        return
    ndim = len(g.shape(x))
    rows = g.node("Unsqueeze", [_arange(g, _scalar_size(g, x, ndim - 2)), g.ints([1])])
    cols = g.node("Unsqueeze", [_arange(g, _scalar_size(g, x, ndim - 1)), g.ints([0])])
    offset = g.node("Sub", [cols, rows])
    kk = g.const(np.array(k, np.int64), "diagonal")
    keep = g.node("GreaterOrEqual" if op.upper else "LessOrEqual", [offset, kk])
    if dtype == np.bool_:                     # onnxruntime's Where takes no bools
        g.node("And", [keep, x], [out])
        return
    g.node("Where", [keep, x, g.const(np.zeros((), dtype), "zero")], [out])


def _roll_one(g, x, shift, dim, out=None):
    """np.roll along one dim: with n the run-time length and k = n - (shift mod n), the entries
    from k on, then those before k."""
    n = _size(g, x, dim)
    k = g.node("Sub", [n, g.node("Mod", [g.ints([shift]), n], fmod=0)])
    axis = g.ints([dim])
    tail = g.node("Slice", [x, k, g.ints([INT64_MAX]), axis])
    head = g.node("Slice", [x, g.ints([0]), k, axis])
    return g.node("Concat", [tail, head], [out] if out else 1, axis=dim)


@exporter("Roll")
def _roll(g, op, ins, out):
    """Along each dim in turn; dims None rolls the flattened tensor and restores the shape."""
    x = ins[0]
    if op.dims is None:
        flat = g.node("Reshape", [x, g.ints([-1])])
        rolled = _roll_one(g, flat, int(op.shifts), 0)
        g.node("Reshape", [rolled, g.node("Shape", [x])], [out])
        return
    pairs = list(zip(op.shifts, op.dims, strict=True))
    if not pairs:
        g.node("Identity", [x], [out])
    for i, (shift, dim) in enumerate(pairs):
        x = _roll_one(g, x, int(shift), int(dim), out if i == len(pairs) - 1 else None)


@exporter("Flip")
def _flip(g, op, ins, out):
    """Slice with step -1 from the last entry along each dim."""
    dims = [int(d) for d in op.dims]
    if not dims:
        g.node("Identity", ins, [out])
        return
    k = len(dims)
    g.node("Slice", [ins[0], g.ints([-1] * k), g.ints([np.iinfo(np.int64).min] * k),
                     g.ints(dims), g.ints([-1] * k)], [out])


@exporter("Unfold")
def _unfold(g, op, ins, out):
    """A Gather of the window positions start + offset, (count, size), along the dim (count =
    (n - size) // step + 1 from the run-time length n), then the size axis moved last."""
    x, dim, size, step = ins[0], int(op.dim), int(op.size), int(op.step)
    ndim = len(g.shape(x))
    n = _scalar_size(g, x, dim)
    span = g.node("Sub", [n, g.const(np.array(size, np.int64), "size")])
    count = g.node("Add", [g.node("Div", [span, g.const(np.array(step, np.int64), "step")]),
                           g.const(np.array(1, np.int64), "one")])
    starts = g.node("Mul", [_arange(g, count), g.const(np.array(step, np.int64), "step")])
    positions = g.node("Add", [g.node("Unsqueeze", [starts, g.ints([1])]),
                               g.const(np.arange(size, dtype=np.int64)[None, :], "offsets")])
    if dim == ndim - 1:
        g.node("Gather", [x, positions], [out], axis=dim)
        return
    windows = g.node("Gather", [x, positions], axis=dim)     # (..., count, size, ...)
    perm = list(range(dim + 1)) + list(range(dim + 2, ndim + 1)) + [dim + 1]
    g.node("Transpose", [windows], [out], perm=perm)
