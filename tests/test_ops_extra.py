"""The ops of issue 13 (indexing, scans, products, norms, einsum, sorting, movement, rounding,
remainders, special functions, logic), each checked three ways from one table:

1. against PyTorch in float64 (`helper_test_op`: forward values and dtypes, and every float
   input's gradient under a random cotangent), integer inputs (indices) passed to both sides;
2. by finite differences (tests/test_gradcheck.py's `gradcheck`) for differentiable ops;
3. inside a compiled Model (each float input an `Input`, integer inputs constants of the graph):
   outputs and gradients equal to the eager run, at a batch size other than the one the Model was
   built with (Input builds with batch 1), called twice to exercise the reused buffers.

A case names the op classes it exercises; `test_case_uses_the_ops_it_names` checks that those
classes really appear in the recorded graph, so the coverage sets below are honest.
"""
import collections
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import assert_close

import pynn
from pynn import Input, Model, Tensor

sys.path.insert(0, str(Path(__file__).parent))
from test_gradcheck import gradcheck  # noqa: E402

Case = collections.namedtuple("Case", "name ops fn floats ints torch_fn grad model tol fd")


def case(name, ops, fn, floats, ints=(), torch_fn=None, grad=True, model=True, tol=None,
         fd=True):
    """One row: `fn(*floats, *ints)` runs on both libraries (or `torch_fn` on torch's side).

    grad   the op is differentiable: compare gradients and run the finite-difference check
    fd     run the finite-difference check (False where inputs sit on ties or jumps on purpose)
    model  True: inside a Model at this batch size and another; "fixed": at this batch size
           only (the integer index fixes the rows it touches); False: not in a Model (the case
           is a variant of one that is)
    In a Model the first float input is the `Input`; the others are trainable tensors of the
    graph (weights), whose gradients are compared too."""
    return Case(name, set(ops), fn, [np.asarray(a, dtype=np.float64) for a in floats],
                [np.asarray(a) for a in ints], torch_fn or fn, grad, model, tol or {}, fd)


rng = np.random.default_rng(13)


def U(*shape, low=-2.0, high=2.0):
    return rng.uniform(low, high, size=shape)


def distinct(*shape, gap=0.25):
    """Values at least `gap` apart: no ties for sorting."""
    n = int(np.prod(shape))
    return (rng.permutation(n) * gap - n * gap / 2 + rng.uniform(0, gap / 10, n)).reshape(shape)


def nonint(*shape, low=-3.0, high=3.0):
    """Values at least 0.1 from any integer or half-integer (no rounding-edge cases)."""
    x = rng.uniform(low, high, size=shape)
    frac = x - np.floor(x * 2) / 2
    return np.where(np.abs(frac - 0.25) > 0.15, np.floor(x * 2) / 2 + 0.25, x)


def _outs(out):
    return list(out) if isinstance(out, (tuple, list)) else [out]


def _xp(values, lib):
    """The case's inputs for one library: float64 leaves that require grad, int tensors."""
    floats, ints = values
    if lib == "torch":
        return ([torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in floats],
                [torch.tensor(a) for a in ints])
    return ([Tensor(a, dtype="float64", requires_grad=True) for a in floats],
            [Tensor(a, dtype=a.dtype) for a in ints])


def helper_test_op(c, seed=0):
    """Compare `c.fn` in pynn with `c.torch_fn` in torch: outputs (values and dtypes), then the
    gradients of every float input under the same random cotangent on both sides."""
    tf, ti = _xp((c.floats, c.ints), "torch")
    pf, pi = _xp((c.floats, c.ints), "pynn")
    t_outs, p_outs = _outs(c.torch_fn(*tf, *ti)), _outs(c.fn(*pf, *pi))
    assert len(p_outs) == len(t_outs), f"{c.name}: {len(p_outs)} outputs, torch {len(t_outs)}"
    rtol, atol = c.tol.get("rtol", 1e-7), c.tol.get("atol", 1e-12)
    for k, (p, t) in enumerate(zip(p_outs, t_outs)):
        assert isinstance(p, Tensor), f"{c.name}: output {k} is a {type(p).__name__}"
        assert_close(f"{c.name}: output {k}", p, t, rtol, atol)
    if not c.grad:
        return
    r = np.random.default_rng(seed)
    pairs = [(p, t) for p, t in zip(p_outs, t_outs) if t.requires_grad]
    assert pairs, f"{c.name}: no differentiable output"
    seeds = [r.standard_normal(t.shape) for _, t in pairs]
    sum((t * torch.tensor(s)).sum() for (_, t), s in zip(pairs, seeds)).backward()
    for p, _ in pairs:
        assert p.requires_grad, f"{c.name}: pynn output does not require grad, torch's does"
    sum((p * Tensor(s, dtype="float64")).sum() for (p, _), s in zip(pairs, seeds)).backward()
    for i, (p, t) in enumerate(zip(pf, tf)):
        want = np.zeros_like(c.floats[i]) if t.grad is None else t.grad.numpy()
        got = np.zeros_like(c.floats[i]) if p.grad is None else p.grad.numpy()
        assert_close(f"{c.name}: grad of input {i}", got, want, rtol, atol)


# -- the table ----------------------------------------------------------------------------------
IDX_G = np.array([[2, 0]])                        # gather/scatter index, smaller than the input
IDX_FULL = np.array([[3, 0, 0], [1, 1, 2], [0, 3, 2]])
IDX_SCATTER = np.array([[3, 0, 1]])               # no repeats: scatter is deterministic
IDX_ADD = np.array([[3, 0, 3, 3], [1, 1, 0, 2]])  # repeats add up
MASK = np.array([True, False, False, True])
DIVISOR = np.array([1.3, -0.7, 2.1, -1.9])
T = torch


def _const(like, a):
    """A constant array as a tensor of `like`'s library."""
    return torch.tensor(a) if isinstance(like, torch.Tensor) else Tensor(a, dtype="float64")


CASES = [
    # indexing
    case("masked_fill", ["MaskedFill"], lambda x, m: x.masked_fill(m, -1.5), [U(3, 4)],
         [MASK]),
    case("masked_fill_2d_mask", ["MaskedFill"], lambda x, m: x.masked_fill(m, 0.0),
         [U(3, 4)], [rng.random((3, 4)) > 0.5], model=False),
    case("gather_small_index", ["Gather"], lambda x, i: x.gather(1, i), [U(3, 4)], [IDX_G],
         model="fixed"),
    case("gather_full", ["Gather"], lambda x, i: x.gather(1, i), [U(3, 4)], [IDX_FULL[:, :3]],
         model=False),
    case("gather_dim0", ["Gather"], lambda x, i: x.gather(0, i), [U(4, 3)], [IDX_FULL % 4],
         model=False),
    # (torch's backward rejects a src larger than the index, so src matches it here)
    case("scatter_src", ["Scatter"], lambda x, s, i: x.scatter(1, i, s), [U(3, 4), U(1, 3)],
         [IDX_SCATTER], model="fixed"),
    case("scatter_value", ["Scatter"], lambda x, i: x.scatter(1, i, 2.5), [U(3, 4)],
         [IDX_SCATTER], model="fixed"),
    case("scatter_add", ["ScatterAdd"], lambda x, s, i: x.scatter_add(1, i, s),
         [U(3, 4), U(2, 4)], [IDX_ADD], model=False),
    case("scatter_add_one_row", ["ScatterAdd"], lambda x, s, i: x.scatter_add(1, i, s),
         [U(3, 4), U(1, 4)], [IDX_ADD[:1]], model="fixed"),
    case("scatter_add_dim0", ["ScatterAdd"], lambda x, s, i: x.scatter_add(0, i, s),
         [U(4, 4), U(2, 4)], [IDX_ADD], model=False),
    case("index_select", ["IndexSelect"], lambda x, i: x.index_select(1, i), [U(3, 4)],
         [np.array([3, 0, 3, 1, 3])]),
    case("index_select_3d", ["IndexSelect"], lambda x, i: x.index_select(-1, i), [U(2, 3, 4)],
         [np.array([2, 2, 0])]),
    case("take_along_dim", ["TakeAlongDim"], lambda x, i: x.take_along_dim(i, 1), [U(3, 4)],
         [np.array([[3, 0, 3]])], torch_fn=lambda x, i: T.take_along_dim(x, i, 1)),
    case("take_along_dim_flat", ["TakeAlongDim", "Flatten"],
         lambda x, i: x.take_along_dim(i), [U(3, 4)], [np.array([11, 0, 5, 5])],
         torch_fn=lambda x, i: T.take_along_dim(x, i), model=False),
    case("repeat_interleave_int", ["RepeatInterleave"], lambda x: x.repeat_interleave(3, 1),
         [U(2, 3)], torch_fn=lambda x: T.repeat_interleave(x, 3, 1)),
    case("repeat_interleave_counts", ["RepeatInterleave"],
         lambda x: x.repeat_interleave([2, 0, 3], dim=1), [U(2, 3)],
         torch_fn=lambda x: x.repeat_interleave(T.tensor([2, 0, 3]), dim=1)),
    case("repeat_interleave_flat", ["RepeatInterleave", "Flatten"],
         lambda x: x.repeat_interleave(2), [U(2, 3)], model=False),
    # scans and products
    case("cumsum", ["CumSum"], lambda x: x.cumsum(1), [U(3, 4)]),
    case("cumsum_dim0", ["CumSum"], lambda x: x.cumsum(dim=0), [U(3, 4)]),
    case("cumsum_axis", ["CumSum"], lambda x: x.cumsum(axis=-1), [U(2, 3, 4)],
         torch_fn=lambda x: x.cumsum(-1)),
    case("cumprod", ["CumProd"], lambda x: x.cumprod(1), [U(3, 4)]),
    case("cumprod_with_zeros", ["CumProd"], lambda x: x.cumprod(-1),
         [[[1.5, 0.0, 2.0, -1.0], [0.0, 3.0, 0.0, 2.0], [0.5, -2.0, 1.5, 0.0]]]),
    case("prod", ["Prod"], lambda x: x.prod(), [U(3, 4)]),
    case("prod_dim", ["Prod"], lambda x: x.prod(1, keepdim=True), [U(3, 4)]),
    case("prod_axis_keepdims", ["Prod"], lambda x: x.prod(axis=-1, keepdims=False), [U(2, 3, 4)],
         torch_fn=lambda x: x.prod(-1)),
    case("prod_with_zeros", ["Prod"], lambda x: x.prod(1),
         [[[1.5, 0.0, 2.0, -1.0], [0.0, 3.0, 0.0, 2.0], [0.5, -2.0, 1.5, 3.0]]]),
    case("norm", ["Norm"], lambda x: x.norm(), [U(3, 4)]),
    case("norm_dim", ["Norm"], lambda x: x.norm(dim=1), [U(3, 4)]),
    case("norm_p1", ["Norm"], lambda x: x.norm(p=1, dim=-1, keepdim=True), [U(3, 4)]),
    case("norm_p3", ["Norm"], lambda x: x.norm(3, dim=(1, 2)), [U(2, 3, 4)]),
    case("norm_inf", ["Norm"], lambda x: x.norm(p=math.inf, dim=1), [distinct(3, 4)]),
    case("norm_ninf", ["Norm"], lambda x: x.norm(p=-math.inf, dim=1), [distinct(3, 4)],
         torch_fn=lambda x: T.linalg.vector_norm(x, -math.inf, dim=1)),
    case("norm_p0", ["Norm"], lambda x: x.norm(p=0, dim=1), [[[0.0, 1.0, -2.0], [3.0, 0.0, 0.0]]],
         torch_fn=lambda x: T.linalg.vector_norm(x, 0, dim=1)),
    case("norm_axis", ["Norm"], lambda x: x.norm(axis=0, keepdims=True), [U(3, 4)],
         torch_fn=lambda x: x.norm(dim=0, keepdim=True)),
    # matrix products
    case("einsum_matmul", ["Einsum"], lambda a, b: Tensor.einsum("ij,jk->ik", a, b),
         [U(3, 4), U(4, 5)], torch_fn=lambda a, b: T.einsum("ij,jk->ik", a, b)),
    case("einsum_batched_ellipsis", ["Einsum"], lambda a, b: pynn.einsum("...ij,...jk", a, b),
         [U(2, 3, 4), U(2, 4, 2)], torch_fn=lambda a, b: T.einsum("...ij,...jk", a, b),
         model="fixed"),
    case("einsum_attention_scores", ["Einsum"],
         lambda q, k: Tensor.einsum("bhqd,hkd->bhqk", q, k), [U(2, 2, 3, 4), U(2, 5, 4)],
         torch_fn=lambda q, k: T.einsum("bhqd,hkd->bhqk", q, k)),
    case("einsum_trace_diag", ["Einsum"], lambda a: Tensor.einsum("ii", a), [U(4, 4)],
         torch_fn=lambda a: T.einsum("ii", a), model=False),
    case("einsum_diag", ["Einsum"], lambda a: Tensor.einsum("bii->bi", a), [U(2, 3, 3)],
         torch_fn=lambda a: T.einsum("bii->bi", a)),
    case("einsum_sum_out_and_outer", ["Einsum"], lambda a, b: Tensor.einsum("bij,k->bk", a, b),
         [U(2, 3, 4), U(5)], torch_fn=lambda a, b: T.einsum("bij,k->bk", a, b)),
    case("einsum_three", ["Einsum"], lambda a, b, c: Tensor.einsum("bi,ij,bj->b", a, b, c),
         [U(3, 4), U(4, 5), U(3, 5)], torch_fn=lambda a, b, c: T.einsum("bi,ij,bj->b", a, b, c),
         model="fixed"),
    case("einsum_broadcast_ellipsis", ["Einsum"], lambda a, b: Tensor.einsum("...ij,...j", a, b),
         [U(2, 3, 4), U(1, 4)], torch_fn=lambda a, b: T.einsum("...ij,...j", a, b)),
    case("bmm", ["MatMul"], lambda a, b: a.bmm(b), [U(2, 3, 4), U(2, 4, 5)], model=False),
    case("bmm_gram", ["MatMul", "Permute"], lambda a: a.bmm(a.transpose(1, 2)), [U(2, 3, 4)]),
    case("addmm", ["MatMul", "Add", "Mul"], lambda a, c, b: c.addmm(a, b, beta=0.5, alpha=2.0),
         [U(3, 4), U(3, 5), U(4, 5)], model="fixed",
         torch_fn=lambda a, c, b: T.addmm(c, a, b, beta=0.5, alpha=2.0)),
    case("addmm_broadcast_bias", ["MatMul", "Add"], lambda a, c, b: c.addmm(a, b),
         [U(3, 4), U(5), U(4, 5)], torch_fn=lambda a, c, b: T.addmm(c, a, b)),
    # sorting
    case("sort", ["ArgSort", "TakeAlongDim"], lambda x: x.sort(1), [distinct(3, 5)]),
    case("sort_descending", ["ArgSort", "TakeAlongDim"],
         lambda x: x.sort(dim=0, descending=True), [distinct(4, 3)]),
    case("sort_ties_stable", ["ArgSort", "TakeAlongDim"],
         lambda x: x.sort(dim=-1, descending=True, stable=True),
         [[[1.0, 2.0, 1.0, 2.0, 0.5], [3.0, 3.0, 3.0, -1.0, 3.0]]], fd=False),
    case("argsort", ["ArgSort"], lambda x: x.argsort(1), [distinct(3, 5)], grad=False),
    case("argsort_descending_ties", ["ArgSort"],
         lambda x: x.argsort(dim=-1, descending=True, stable=True),
         [[[1.0, 2.0, 1.0, 2.0, 0.5], [3.0, 3.0, 3.0, -1.0, 3.0]]], grad=False),
    case("topk", ["ArgSort", "TakeAlongDim"], lambda x: x.topk(2), [distinct(3, 5)]),
    case("topk_smallest_dim", ["ArgSort", "TakeAlongDim"],
         lambda x: x.topk(3, dim=1, largest=False), [distinct(2, 4, 3)]),
    # movement
    case("tril", ["Triangular"], lambda x: x.tril(), [U(4, 5)]),
    case("tril_diag", ["Triangular"], lambda x: x.tril(-1), [U(2, 4, 4)]),
    case("triu", ["Triangular"], lambda x: x.triu(1), [U(4, 5)]),
    case("triu_batched", ["Triangular"], lambda x: x.triu(diagonal=-1), [U(2, 3, 4)]),
    case("roll", ["Roll"], lambda x: x.roll(2, 1), [U(3, 5)]),
    case("roll_dims", ["Roll"], lambda x: x.roll((1, -2), (1, 2)), [U(2, 3, 4)]),
    case("roll_flat", ["Roll"], lambda x: x.roll(3), [U(3, 4)]),
    case("flip", ["Flip"], lambda x: x.flip(1), [U(3, 4)]),
    case("flip_dims", ["Flip"], lambda x: x.flip((1, 2)), [U(2, 3, 4)]),
    case("movedim", ["Permute"], lambda x: x.movedim(1, -1), [U(2, 3, 4)]),
    case("movedim_many", ["Permute"], lambda x: x.movedim((1, 2), (3, 1)), [U(2, 3, 4, 5)]),
    case("unbind", ["GetItem"], lambda x: x.unbind(1), [U(2, 3, 4)]),
    case("unfold", ["Unfold"], lambda x: x.unfold(1, 2, 1), [U(3, 5)]),
    case("unfold_step", ["Unfold"], lambda x: x.unfold(1, 3, 2), [U(2, 8, 3)]),
    case("unfold_last", ["Unfold"], lambda x: x.unfold(-1, 2, 3), [U(2, 3, 7)]),
    # rounding (zero gradient, as torch)
    case("sign", ["Sign"], lambda x: x.sign(), [[[-2.0, 0.3, 1.5, -0.2]]]),
    case("sign_at_zero", ["Sign"], lambda x: x.sign(), [[[-2.0, 0.0, 1.5, 0.0]]], fd=False),
    case("floor", ["Floor"], lambda x: x.floor(), [nonint(3, 4)]),
    case("ceil", ["Ceil"], lambda x: x.ceil(), [nonint(3, 4)]),
    case("round", ["Round"], lambda x: x.round(), [nonint(3, 4)]),
    case("round_half_even", ["Round"], lambda x: x.round(),
         [[[0.5, 1.5, 2.5, -0.5, -1.5, 0.49]]], grad=False),
    case("round_decimals", ["Round"], lambda x: x.round(decimals=2), [[[1.2345, -0.0172, 3.14159]]],
         grad=False),
    case("trunc", ["Trunc"], lambda x: x.trunc(), [nonint(3, 4)]),
    # remainders
    case("fmod", ["Fmod"], lambda a, b: a.fmod(b), [nonint(3, 4, low=-5, high=5),
                                                   np.array([1.3, -0.7, 2.1, -1.9])]),
    case("fmod_scalar", ["Fmod"], lambda a: a.fmod(1.5), [nonint(3, 4, low=-5, high=5)]),
    # torch has no derivative of remainder for its second argument: the divisor is a constant
    # here, and test_remainder_divisor_gradient checks that derivative by finite differences
    case("remainder", ["Remainder"], lambda a: a % _const(a, DIVISOR),
         [nonint(3, 4, low=-5, high=5)]),
    case("remainder_method", ["Remainder"], lambda a: a.remainder(_const(a, DIVISOR[:3])),
         [nonint(2, 4, 3, low=-5, high=5)]),
    case("remainder_scalar", ["Remainder"], lambda a: a % 1.5, [nonint(3, 4, low=-5, high=5)]),
    case("rmod_scalar", ["Remainder"], lambda a: 5.0 % a, [[[1.3, -0.7, 2.1, -1.9]]],
         grad=False),
    # special functions
    case("log1p", ["Log1p"], lambda x: x.log1p(), [U(3, 4, low=-0.9, high=3.0)]),
    case("expm1", ["Expm1"], lambda x: x.expm1(), [U(3, 4)]),
    case("erf", ["Erf"], lambda x: x.erf(), [U(3, 4, low=-3, high=3)]),
    case("square", ["Square"], lambda x: x.square(), [U(3, 4)]),
    case("rsqrt", ["Rsqrt"], lambda x: x.rsqrt(), [U(3, 4, low=0.2, high=3.0)]),
    # boolean reductions and logic (no gradient)
    case("any", ["Compare", "BoolReduce"], lambda x: (x > 1.5).any(), [U(3, 4)], grad=False),
    case("any_dim", ["Compare", "BoolReduce"], lambda x: (x > 1.0).any(dim=1), [U(3, 4)],
         grad=False),
    case("all_dim_keepdim", ["Compare", "BoolReduce"], lambda x: (x > -1.5).all(1, keepdim=True),
         [U(3, 4)], grad=False),
    case("all_axis", ["Compare", "BoolReduce"], lambda x: (x > -1.5).all(axis=1), [U(3, 4)],
         torch_fn=lambda x: (x > -1.5).all(dim=1), grad=False),
    case("logical", ["Compare", "Logical"],
         lambda a, b: ((a > 0).logical_and(b > 0), (a > 0).logical_or(b < 0),
                       (a > 0).logical_not(), (a > 0).logical_xor(b > 0)),
         [U(3, 4), U(3, 4)], grad=False, model="fixed"),
]

TORCH_CHECKED_OPS = set().union(*(c.ops for c in CASES)) - {"Add", "Mul", "Flatten", "Permute",
                                                            "GetItem", "Compare"}
GRADCHECKED_OPS = set().union(*(c.ops for c in CASES if c.grad and c.fd)) - {
    "Add", "Mul", "Flatten", "Permute", "GetItem", "Compare", "ArgSort"}
IDS = [c.name for c in CASES]


@pytest.mark.parametrize("c", CASES, ids=IDS)
def test_against_torch(c):
    helper_test_op(c)


FD_CASES = [c for c in CASES if c.grad and c.fd]


@pytest.mark.parametrize("c", FD_CASES, ids=[c.name for c in FD_CASES])
def test_gradcheck(c):
    ints = [Tensor(a, dtype=a.dtype) for a in c.ints]
    gradcheck(lambda *xs: c.fn(*xs, *ints), *c.floats)


def _graph_op_names(outs):
    names, stack, seen = set(), [o for o in outs], set()
    while stack:
        t = stack.pop()
        if id(t) in seen or t.grad_fn is None:
            continue
        seen.add(id(t))
        names.add(t.grad_fn.op.name)
        stack.extend(t.grad_fn.inputs)
    return names


@pytest.mark.parametrize("c", CASES, ids=IDS)
def test_case_uses_the_ops_it_names(c):
    ints = [Tensor(a, dtype=a.dtype) for a in c.ints]
    if c.model:     # symbolic: every op is recorded, differentiable or not
        xs = [Input(c.floats[0].shape[1:], dtype=np.float64)] + [
            Tensor(a, dtype="float64", requires_grad=True) for a in c.floats[1:]]
    else:
        xs = [Tensor(a, dtype="float64", requires_grad=True) for a in c.floats]
    names = _graph_op_names(_outs(c.fn(*xs, *ints)))
    assert c.ops <= names, f"{c.name}: {sorted(c.ops - names)} not in the graph ({sorted(names)})"


def _batched(a, n):
    """The case's float input with its first (batch) dim resized to n (tiling the rows)."""
    reps = -(-n // a.shape[0])
    return np.concatenate([a] * reps)[:n] + 0.01 * np.arange(n).reshape((n,) + (1,) * (a.ndim - 1))


MODEL_CASES = [c for c in CASES if c.model]


@pytest.mark.parametrize("c", MODEL_CASES, ids=[c.name for c in MODEL_CASES])
def test_in_a_model(c):
    """The op replayed by a compiled Model gives the eager values and gradients (of the input
    and of the graph's weights), at the case's batch size and a larger one, twice each."""
    ints = [Tensor(a, dtype=a.dtype) for a in c.ints]
    x_in = Input(c.floats[0].shape[1:], dtype=np.float64)
    weights = [Tensor(a, dtype="float64", requires_grad=True) for a in c.floats[1:]]
    outs = _outs(c.fn(x_in, *weights, *ints))
    try:
        model = Model(x_in, outs if len(outs) > 1 else outs[0])
    except ValueError as e:
        # a graph that ties the batch to a weight's size is refused when the model is built (it
        # is run once at batch 2), naming the op
        assert c.model == "fixed" and "does not follow the batch size" in str(e), str(e)
        assert "failed on inputs of shape" in str(e), str(e)      # the step is named
        return
    n = c.floats[0].shape[0]
    for batch in ((n,) if c.model == "fixed" else (n, n + 2)):
        x = _batched(c.floats[0], batch)
        r = np.random.default_rng(batch)
        for _ in range(2):                      # twice: buffers reused from the first call
            xe = Tensor(x, dtype="float64", requires_grad=True)
            xm = Tensor(x, dtype="float64", requires_grad=True)
            eager = _outs(c.fn(xe, *weights, *ints))
            got = _outs(model(xm))
            assert len(got) == len(eager)
            for k, (g, e) in enumerate(zip(got, eager)):
                assert_close(f"{c.name}: model output {k} (batch {batch})", g, e)
            if not c.grad:
                continue
            seeds = [Tensor(r.standard_normal(e.shape), dtype="float64") for e in eager]
            pairs = [(g, e, s) for g, e, s in zip(got, eager, seeds) if e.dtype.kind == "f"]
            for w in weights:
                w.grad = None
            sum((e * s).sum() for _, e, s in pairs).backward()
            want = [xe.grad] + [w.grad for w in weights]
            for w in weights:
                w.grad = None
            sum((g * s).sum() for g, _, s in pairs).backward()
            for i, (a, b) in enumerate(zip([xm.grad] + [w.grad for w in weights], want)):
                assert_close(f"{c.name}: model grad of input {i} (batch {batch})", a, b)


# -- the rest: integer semantics, creation, eager-only nonzero, errors ---------------------------
def test_nonzero_eager_and_refused_in_a_model():
    x = np.array([[0.0, 1.5, 0.0], [2.0, 0.0, -1.0]])
    assert_close("nonzero", Tensor(x).nonzero(), torch.tensor(x).nonzero())
    for p, t in zip(Tensor(x).nonzero(as_tuple=True), torch.tensor(x).nonzero(as_tuple=True)):
        assert_close("nonzero as_tuple", p, t)
    with pytest.raises(RuntimeError, match="nonzero"):
        Input((3,)).nonzero()


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.bool_])
def test_integer_and_bool_semantics_as_torch(dtype):
    a = np.array([[3, -2, 0, 5], [1, 1, -4, 2]]).astype(dtype)
    tt, pt = torch.tensor(a), Tensor(a, dtype=a.dtype)
    for name in ["cumsum", "cumprod"]:
        assert_close(name, getattr(pt, name)(1), getattr(tt, name)(1))
    assert_close("prod", pt.prod(1), tt.prod(1))
    for name in ["floor", "ceil", "round", "trunc"]:
        if dtype != np.bool_:
            assert_close(name, getattr(pt, name)(), getattr(tt, name)())
    if dtype != np.bool_:
        assert_close("sign", pt.sign(), tt.sign())
        assert_close("square", pt.square(), tt.square())
        assert_close("fmod", pt.fmod(3), tt.fmod(3))
        assert_close("%", pt % 3, tt % 3)
    for name in ["log1p", "expm1", "erf"]:          # integers give the default float
        if dtype != np.bool_:
            assert_close(name, getattr(pt.abs() if name == "log1p" else pt, name)(),
                         getattr(tt.abs() if name == "log1p" else tt, name)(), rtol=1e-6)
    assert_close("any", pt.any(1), tt.any(1))
    assert_close("all", pt.all(), tt.all())
    assert_close("logical_and", pt.logical_and(pt), tt.logical_and(tt))
    assert_close("flip", pt.flip(1), tt.flip(1))
    assert_close("tril", pt.tril(), tt.tril())
    assert_close("argsort", pt.argsort(dim=1, stable=True), tt.argsort(dim=1, stable=True))
    assert_close("sort", pt.sort(dim=1, stable=True)[0], tt.sort(dim=1, stable=True)[0])


def test_float32_stays_float32():
    x = Tensor(U(3, 4), requires_grad=True)
    for out in [x.cumsum(1), x.cumprod(1), x.prod(), x.norm(), x.erf(), x.rsqrt().abs(),
                x.log1p().abs(), x.expm1(), x.square(), x.fmod(1.5), x % 1.5,
                Tensor.einsum("ij,kj->ik", x, x), x.sort(1).values, x.unfold(1, 2, 1),
                x.masked_fill(Tensor(MASK), 1.0), x.floor()]:
        assert out.dtype == np.float32, out
        out.sum().backward()
        assert x.grad.dtype == np.float32


def test_creation():
    pynn.manual_seed(0)
    a = Tensor.randint(0, 10, (3, 4))
    assert a.shape == (3, 4) and a.dtype == np.int64
    assert 0 <= a.numpy().min() <= a.numpy().max() < 10
    assert Tensor.randint(5, (100,)).numpy().max() < 5
    assert Tensor.randint(-3, 3, size=2).shape == (2,)
    n = Tensor.normal(2.0, 0.5, (20000,))
    assert n.dtype == np.float32 and abs(n.numpy().mean() - 2.0) < 0.02
    assert abs(n.numpy().std() - 0.5) < 0.02
    m = Tensor.normal(np.array([0.0, 100.0]), 1.0)
    assert m.shape == (2,) and m.numpy()[1] > 90
    e = Tensor.empty(2, 3, dtype=np.float64)
    assert e.shape == (2, 3) and e.dtype == np.float64
    assert Tensor.empty((4,), requires_grad=True).requires_grad
    pynn.manual_seed(1)
    first = Tensor.randint(0, 100, (5,)).numpy()
    pynn.manual_seed(1)
    np.testing.assert_array_equal(first, Tensor.randint(0, 100, (5,)).numpy())


def test_errors_name_the_op_and_shapes():
    x = Tensor(U(3, 4))
    with pytest.raises(IndexError, match="cumsum"):
        x.cumsum(2)
    with pytest.raises(TypeError, match="gather: index must hold integers"):
        x.gather(1, np.array([[0.5]]))
    with pytest.raises(ValueError, match=r"Gather.*exceeds"):
        x.gather(1, np.zeros((4, 1), dtype=np.int64))
    with pytest.raises(ValueError, match="einsum"):
        Tensor.einsum("ij,jk->ik", x, x)
    with pytest.raises(ValueError, match="unfold"):
        x.unfold(1, 5, 1)
    with pytest.raises(ValueError, match="topk"):
        x.topk(5)
    with pytest.raises(ValueError, match="bmm"):
        x.bmm(x)
    with pytest.raises(TypeError, match="both dim"):
        x.prod(dim=0, axis=1)
    with pytest.raises(TypeError, match="cumsum: give one dim"):
        x.cumsum()
    with pytest.raises(TypeError, match="scatter: give src"):
        x.scatter(1, np.zeros((1, 1), dtype=np.int64))


def test_remainder_divisor_gradient():
    """torch has no derivative of remainder for the divisor; finite differences check ours
    (d/db = -g * floor(a / b)), for a tensor divisor and for a number divided by a tensor."""
    a, b = nonint(3, 4, low=-5, high=5), DIVISOR
    gradcheck(lambda x, y: x % y, a, b)
    gradcheck(lambda x, y: x.remainder(y), a, b[:, None].repeat(3, 1).T)
    gradcheck(lambda y: 5.0 % y, np.array([1.3, -0.7, 2.1, -1.9]))
    gradcheck(lambda x, y: x.fmod(y), a, b)


def test_a_model_of_the_new_ops_saves_and_loads(tmp_path):
    """Every new op's settings are plain values, so a Model using them round-trips through
    save/load (pynn.load_model rebuilds the ops from their names and settings)."""
    x_in = Input((4, 6), dtype=np.float64)
    y = x_in.masked_fill(Tensor(np.tril(np.ones((6, 6), dtype=bool))[:4] == 0), -1.0)
    y = y.cumsum(2).flip(1).roll(1, 2).triu(-1) + y.unfold(2, 3, 3).flatten(2)
    y = y.sort(dim=-1, descending=True).values.norm(p=3, dim=-1, keepdim=True) * y.erf()
    y = pynn.einsum("bij,bkj->bik", y, y.square().log1p()).prod(-1) % 2.5
    y = y.repeat_interleave([1, 2, 0, 1], dim=1).topk(3).values.movedim(1, 0)
    model = Model(x_in, y)
    path = tmp_path / "ops.pynn"
    model.save(str(path))
    loaded = pynn.load_model(str(path))
    x = rng.standard_normal((3, 4, 6))
    assert_close("loaded model", loaded(Tensor(x, dtype="float64")),
                 model(Tensor(x, dtype="float64")))


def test_masked_fill_reuses_its_buffers_in_a_model():
    """An attention-style causal mask inside a Model: after the first call, masked_fill writes
    into the same arrays every step."""
    x_in = Input((5, 8))
    causal = Tensor.ones(5, 5).triu(1) > 0
    scores = pynn.einsum("bqd,bkd->bqk", x_in, x_in).masked_fill(causal, -1e9).softmax(-1)
    model = Model(x_in, scores)
    x = Tensor(rng.standard_normal((4, 5, 8)).astype(np.float32), requires_grad=True)
    model(x).sum().backward()
    (plan,) = model._plans.values()
    op = next(o for o in plan.ops if o.name == "MaskedFill")
    first = {k: id(b) for k, b in op._buffers.items()}
    assert set(first) == {"out", "gx"}
    for _ in range(3):
        model(x).sum().backward()
    assert {k: id(b) for k, b in op._buffers.items()} == first
