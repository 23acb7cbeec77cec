"""Every differentiable op against PyTorch, forward and backward, on float64 data (check_op)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import check_op

import pynn
from pynn import Tensor

# op classes this module checks against torch (forward, and backward where differentiable);
# tests/test_op_coverage.py requires every differentiable op to be in one such set
TORCH_CHECKED_OPS = {
    "Add", "Sub", "Mul", "Div", "Pow", "Neg", "MatMul", "Exp", "Log", "Sqrt", "Abs", "Sin", "Cos",
    "Tanh", "Sigmoid", "Relu", "LeakyRelu", "Gelu", "Softplus", "Clip", "Maximum", "Minimum",
    "Where", "Cast", "Sum", "Mean", "Max", "Min", "TakeAlongDim", "Var", "LogSumExp", "Softmax",
    "LogSoftmax", "Reshape", "Flatten", "Permute", "Squeeze", "Unsqueeze", "BroadcastTo",
    "Repeat", "Pad", "Stack", "Concat", "GetItem", "ArgReduce", "Compare",
}

# a few shapes for elementwise ops: scalar, vector, matrix, with size-1 dims, 4-d
UNARY_SHAPES = [(), (5,), (3, 4), (2, 1, 3), (2, 3, 1, 4)]
# pairs that broadcast: equal, trailing, size-1 stretching on both sides, scalar
BINARY_SHAPES = [
    [(3, 4), (3, 4)],
    [(3, 4), (4,)],
    [(4,), (3, 4)],
    [(3, 1), (1, 4)],
    [(2, 1, 4), (3, 1)],
    [(), (2, 3)],
    [(2, 3), ()],
    [(1,), (2, 3)],
]


# -- arithmetic -----------------------------------------------------------------------------
@pytest.mark.parametrize("shapes", BINARY_SHAPES)
def test_add(shapes):
    check_op(shapes, lambda a, b: a + b)


@pytest.mark.parametrize("shapes", BINARY_SHAPES)
def test_sub(shapes):
    check_op(shapes, lambda a, b: a - b)


@pytest.mark.parametrize("shapes", BINARY_SHAPES)
def test_mul(shapes):
    check_op(shapes, lambda a, b: a * b)


@pytest.mark.parametrize("shapes", BINARY_SHAPES)
def test_div(shapes):
    # divisors in [0.5, 2): away from 0
    check_op(shapes, lambda a, b: a / (b * b + 0.5))
    check_op(shapes, lambda a, b: a / b, low=0.5, high=2.0)


@pytest.mark.parametrize("shapes", BINARY_SHAPES)
def test_pow(shapes):
    check_op(shapes, lambda a, b: a ** b, low=0.5, high=2.0)


@pytest.mark.parametrize("shape", [(), (5,), (2, 1, 3)])
def test_scalar_both_sides(shape):
    check_op([shape], lambda x: x + 2.5)
    check_op([shape], lambda x: 2.5 + x)
    check_op([shape], lambda x: x - 2.5)
    check_op([shape], lambda x: 2.5 - x)
    check_op([shape], lambda x: x * -3.0)
    check_op([shape], lambda x: -3.0 * x)
    check_op([shape], lambda x: x / 4.0)
    check_op([shape], lambda x: 4.0 / x, low=0.5, high=2.0)
    check_op([shape], lambda x: x ** 3)
    check_op([shape], lambda x: x ** 2.5, low=0.5, high=2.0)
    check_op([shape], lambda x: x ** -1.5, low=0.5, high=2.0)
    check_op([shape], lambda x: 2 ** x)
    check_op([shape], lambda x: 0.5 ** x)
    check_op([shape], lambda x: -x)
    check_op([shape], lambda x: x + 1)           # Python int scalars too
    check_op([shape], lambda x: 3 - x)


def test_same_tensor_twice():
    # both operands are one tensor: its gradient is the sum of both paths
    check_op([(3, 4)], lambda x: x * x)
    check_op([(3, 4)], lambda x: x / (x * x + 1))
    check_op([(3, 4)], lambda x: x ** x, low=0.5, high=2.0)


# -- matmul ---------------------------------------------------------------------------------
@pytest.mark.parametrize("shapes", [
    [(4,), (4,)],                  # dot product -> scalar
    [(3, 4), (4,)],                # matrix @ vector
    [(4,), (4, 5)],                # vector @ matrix
    [(3, 4), (4, 5)],
    [(1, 4), (4, 1)],
    [(2, 3, 4), (4, 5)],           # batched @ matrix
    [(3, 4), (2, 4, 5)],           # matrix @ batched
    [(2, 3, 4), (2, 4, 5)],
    [(2, 1, 3, 4), (5, 4, 2)],     # batch dims broadcast
    [(2, 3, 4), (4,)],             # batched @ vector
    [(4,), (2, 4, 5)],             # vector @ batched
])
def test_matmul(shapes):
    check_op(shapes, lambda a, b: a @ b)
    check_op(shapes, lambda a, b: a.matmul(b))


# -- unary math -----------------------------------------------------------------------------
@pytest.mark.parametrize("shape", UNARY_SHAPES)
def test_unary(shape):
    check_op([shape], lambda x: x.exp())
    check_op([shape], lambda x: x.log(), low=0.1, high=3.0)
    check_op([shape], lambda x: x.sqrt(), low=0.1, high=3.0)
    check_op([shape], lambda x: x.abs())
    check_op([shape], lambda x: x.sin())
    check_op([shape], lambda x: x.cos())
    check_op([shape], lambda x: x.tanh())
    check_op([shape], lambda x: x.sigmoid())
    check_op([shape], lambda x: x.relu())
    check_op([shape], lambda x: F.leaky_relu(x, 0.1), lambda x: x.leaky_relu(0.1))
    check_op([shape], lambda x: F.leaky_relu(x), lambda x: x.leaky_relu())
    check_op([shape], lambda x: F.gelu(x), lambda x: x.gelu())
    check_op([shape], lambda x: F.softplus(x), lambda x: x.softplus())


def test_unary_at_and_near_kinks():
    # torch's conventions at the kinks: abs'(0) = 0, relu'(0) = 0, leaky_relu'(0) = slope
    vals = [[-2.0, -1e-3, 0.0, 1e-3, 2.0]]
    check_op(None, lambda x: x.abs(), vals=vals)
    check_op(None, lambda x: x.relu(), vals=vals)
    check_op(None, lambda x: F.leaky_relu(x, 0.2), lambda x: x.leaky_relu(0.2), vals=vals)


def test_unary_extremes():
    # no overflow or NaN in sigmoid / softplus / tanh / gelu for large |x|
    vals = [[-1000.0, -50.0, -20.0, -1.0, 0.0, 1.0, 20.0, 50.0, 1000.0]]
    check_op(None, lambda x: x.sigmoid(), vals=vals)
    check_op(None, lambda x: x.tanh(), vals=vals)
    check_op(None, lambda x: F.gelu(x), lambda x: x.gelu(), vals=vals)
    check_op(None, lambda x: F.softplus(x), lambda x: x.softplus(), vals=vals)


@pytest.mark.parametrize("beta,threshold", [(1.0, 20.0), (2.0, 5.0), (0.5, 1.0)])
def test_softplus_beta_threshold(beta, threshold):
    # inputs straddle the threshold where softplus turns linear
    check_op([(4, 5)], lambda x: F.softplus(x, beta, threshold),
             lambda x: x.softplus(beta, threshold), low=-8.0, high=8.0)


@pytest.mark.parametrize("lo,hi", [(-0.5, 0.5), (None, 0.3), (-0.3, None)])
def test_clip(lo, hi):
    check_op([(4, 5)], lambda x: x.clip(lo, hi))
    check_op([(4, 5)], lambda x: x.clamp(lo, hi))
    # exactly on a bound the gradient passes (PyTorch's convention)
    bound = lo if lo is not None else hi
    check_op(None, lambda x: x.clip(lo, hi), vals=[[bound, 0.0, 1.0, -1.0]])


@pytest.mark.parametrize("shapes", [[(3, 4), (3, 4)], [(3, 4), (4,)], [(3, 1), (1, 4)]])
def test_maximum_minimum(shapes):
    check_op(shapes, torch.maximum, lambda a, b: a.maximum(b))
    check_op(shapes, torch.minimum, lambda a, b: a.minimum(b))
    check_op(shapes, torch.maximum, pynn.maximum)
    check_op(shapes, torch.minimum, pynn.minimum)


def test_maximum_minimum_ties():
    # on a tie the gradient is split evenly between the two inputs, as in PyTorch
    vals = [[1.0, 2.0, 3.0, -1.0], [1.0, 0.0, 3.0, 2.0]]
    check_op(None, torch.maximum, lambda a, b: a.maximum(b), vals=vals)
    check_op(None, torch.minimum, lambda a, b: a.minimum(b), vals=vals)


def test_maximum_with_scalar():
    check_op([(3, 4)], lambda x: torch.clamp_min(x, 0.5), lambda x: x.maximum(0.5))
    check_op([(3, 4)], lambda x: torch.clamp_max(x, 0.5), lambda x: x.minimum(0.5))


@pytest.mark.parametrize("shapes,cond_shape", [
    ([(3, 4), (3, 4)], (3, 4)),
    ([(3, 4), (4,)], (3, 4)),
    ([(3, 1), (1, 4)], (3, 4)),
    ([(4,), (4,)], (3, 4)),            # the condition broadcasts both inputs
])
def test_where(shapes, cond_shape):
    cond = np.random.default_rng(1).random(cond_shape) > 0.5
    check_op(shapes, lambda a, b: torch.where(torch.tensor(cond), a, b),
             lambda a, b: pynn.where(cond, a, b))
    check_op(shapes, lambda a, b: torch.where(torch.tensor(cond), a, b),
             lambda a, b: Tensor.where(Tensor(cond), a, b))


def test_where_scalar_branch():
    cond = np.array([[True, False, True], [False, False, True]])
    check_op([(2, 3)], lambda x: torch.where(torch.tensor(cond), x, 0.0),
             lambda x: pynn.where(cond, x, 0.0))
    check_op([(2, 3)], lambda x: torch.where(torch.tensor(cond), 0.0, x),
             lambda x: pynn.where(cond, 0.0, x))


def test_astype_roundtrip():
    check_op([(3, 4)], lambda x: x.to(torch.float32).to(torch.float64),
             lambda x: x.astype("float32").astype("float64"), rtol=1e-6)
    check_op([(3, 4)], lambda x: x.float().double(), lambda x: x.float().double(), rtol=1e-6)


# -- reductions -----------------------------------------------------------------------------
REDUCE_CASES = [
    ((5,), None, False),
    ((5,), 0, True),
    ((3, 4), None, True),
    ((3, 4), 0, False),
    ((3, 4), -1, True),
    ((2, 3, 4), (0, 2), False),
    ((2, 3, 4), (-1, 1), True),
    ((2, 1, 4), 1, False),
    ((), None, False),
]


def _torch_dim(shape, dim):
    return tuple(range(len(shape))) if dim is None else dim


@pytest.mark.parametrize("shape,dim,keepdim", REDUCE_CASES)
def test_sum_mean(shape, dim, keepdim):
    if dim is None and not keepdim:
        check_op([shape], lambda x: x.sum())
        check_op([shape], lambda x: x.mean())
    check_op([shape], lambda x: x.sum(dim=_torch_dim(shape, dim), keepdim=keepdim),
             lambda x: x.sum(dim=dim, keepdim=keepdim))
    check_op([shape], lambda x: x.mean(dim=_torch_dim(shape, dim), keepdim=keepdim),
             lambda x: x.mean(dim=dim, keepdim=keepdim))


@pytest.mark.parametrize("shape,dim,keepdim", REDUCE_CASES)
def test_amax_amin(shape, dim, keepdim):
    # random floats: no ties
    check_op([shape], lambda x: x.amax(dim=_torch_dim(shape, dim), keepdim=keepdim),
             lambda x: x.amax(dim=dim, keepdim=keepdim))
    check_op([shape], lambda x: x.amin(dim=_torch_dim(shape, dim), keepdim=keepdim),
             lambda x: x.amin(dim=dim, keepdim=keepdim))


@pytest.mark.parametrize("shape,dim", [((5,), 0), ((3, 4), 0), ((3, 4), -1), ((2, 3, 4), 1)])
@pytest.mark.parametrize("keepdim", [False, True])
def test_max_min_dim_gives_values_and_indices(shape, dim, keepdim):
    check_op([shape], lambda x: x.max(dim, keepdim))
    check_op([shape], lambda x: x.min(dim, keepdim))
    check_op([shape], lambda x: x.max(dim=dim, keepdim=keepdim).values)
    check_op([shape], lambda x: x.min(dim=dim, keepdim=keepdim).indices, forward_only=True)


def test_max_min_whole_tensor():
    check_op([(3, 4)], lambda x: x.max())
    check_op([(3, 4)], lambda x: x.min())
    # a tuple dim gives values only (torch spells that amax/amin)
    check_op([(2, 3, 4)], lambda x: x.amax((0, 2)), lambda x: x.max(dim=(0, 2)))
    check_op([(2, 3, 4)], lambda x: x.amin((0, 1), True), lambda x: x.min((0, 1), keepdim=True))
    # ties in a full reduction: the gradient is shared evenly (torch does the same for max())
    vals = [[[1.0, 3.0, 3.0], [0.0, 3.0, -1.0]]]
    check_op(None, lambda x: x.max(), vals=vals)
    check_op(None, lambda x: x.amax(dim=1), vals=vals)
    check_op(None, lambda x: (-x).min(), vals=vals)


@pytest.mark.parametrize("keepdim", [False, True])
def test_max_min_dim_ties_send_the_gradient_to_the_returned_index(keepdim):
    """max/min over one dim return (values, indices); on ties the whole gradient goes to the
    returned index, as in PyTorch (amax/amin share it instead)."""
    vals = [[[1.0, 3.0, 3.0, 0.0], [0.0, 3.0, -1.0, 3.0], [2.0, 2.0, 2.0, 2.0]]]
    for dim in (0, 1, -1):
        check_op(None, lambda x, dim=dim: x.max(dim, keepdim), vals=vals)
        check_op(None, lambda x, dim=dim: x.min(dim, keepdim), vals=vals)
        check_op(None, lambda x, dim=dim: (x * x).max(dim=dim, keepdim=keepdim).values,
                 vals=vals)


@pytest.mark.parametrize("shape,dim,keepdim", [c for c in REDUCE_CASES if c[0] != (2, 1, 4)][:-1])
@pytest.mark.parametrize("correction", [0, 1])
def test_var_std(shape, dim, keepdim, correction):
    # atol: the mean-centred values cancel, so tiny outputs differ by rounding only
    check_op([shape], lambda x: x.var(dim=_torch_dim(shape, dim), keepdim=keepdim,
                                      correction=correction),
             lambda x: x.var(dim=dim, keepdim=keepdim, correction=correction), atol=1e-12)
    check_op([shape], lambda x: x.std(dim=_torch_dim(shape, dim), keepdim=keepdim,
                                      correction=correction),
             lambda x: x.std(dim=dim, keepdim=keepdim, correction=correction), atol=1e-12)


def test_var_std_defaults():
    check_op([(3, 4)], lambda x: x.var())
    check_op([(3, 4)], lambda x: x.std())
    check_op([(3, 4)], lambda x: x.var(1, unbiased=False), lambda x: x.var(1, unbiased=False))
    # over a size-1 dim the biased variance is 0 (the unbiased one is 0/0, left out)
    check_op([(2, 1, 4)], lambda x: x.var(1, correction=0))
    check_op([(2, 1, 4)], lambda x: x.var(1, keepdim=True, correction=0))


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_unbiased_var_over_one_element_is_nan_without_warnings():
    """0/0, as in PyTorch: a NaN value and a NaN gradient; like PyTorch a UserWarning says why,
    and no NumPy RuntimeWarning reaches the user."""
    x = np.array([[1.0], [2.0]])
    ours = pynn.Tensor(x, dtype="float64", requires_grad=True)
    theirs = torch.tensor(x, requires_grad=True)
    with pytest.warns(UserWarning, match="degrees of freedom"):
        v = ours.var(1)
    with pytest.warns(UserWarning, match="degrees of freedom"):
        tv = theirs.var(1)
    v.sum().backward()
    tv.sum().backward()
    np.testing.assert_array_equal(v.numpy(), tv.detach().numpy())
    np.testing.assert_array_equal(ours.grad.numpy(), theirs.grad.numpy())
    assert np.isnan(ours.grad.numpy()).all()


@pytest.mark.parametrize("shape,dim,keepdim", REDUCE_CASES)
def test_logsumexp(shape, dim, keepdim):
    check_op([shape], lambda x: torch.logsumexp(x, dim=_torch_dim(shape, dim), keepdim=keepdim),
             lambda x: x.logsumexp(dim=dim, keepdim=keepdim))


def test_logsumexp_large():
    vals = [[[1000.0, -1000.0, 999.0], [-1000.0, -1000.0, -999.0]]]
    check_op(None, lambda x: torch.logsumexp(x, dim=1), lambda x: x.logsumexp(dim=1), vals=vals)
    check_op(None, lambda x: torch.logsumexp(x, dim=(0, 1)), lambda x: x.logsumexp(), vals=vals)


@pytest.mark.parametrize("shape,dim", [((5,), 0), ((3, 4), 1), ((3, 4), 0), ((2, 3, 4), -2)])
@pytest.mark.parametrize("keepdim", [False, True])
def test_argmax_argmin(shape, dim, keepdim):
    check_op([shape], lambda x: x.argmax(dim, keepdim), forward_only=True)
    check_op([shape], lambda x: x.argmin(dim=dim, keepdim=keepdim), forward_only=True)
    check_op([shape], lambda x: x.argmax(), forward_only=True)
    check_op([shape], lambda x: x.argmin(), forward_only=True)


@pytest.mark.parametrize("shape,dim", [((5,), 0), ((3, 4), 1), ((3, 4), 0), ((2, 3, 4), -2),
                                       ((2, 1, 4), 1)])
def test_softmax_log_softmax(shape, dim):
    check_op([shape], lambda x: x.softmax(dim))
    check_op([shape], lambda x: x.log_softmax(dim))
    check_op([shape], lambda x: x.softmax(dim=dim), low=-10.0, high=10.0)
    check_op([shape], lambda x: x.log_softmax(dim=dim), low=-10.0, high=10.0)


def test_softmax_at_plus_minus_1000():
    vals = [[[1000.0, -1000.0, 0.0, 999.0],
             [-1000.0, -1000.0, -1000.0, -1000.0],
             [1000.0, 1000.0, -1000.0, 0.0]]]
    check_op(None, lambda x: x.softmax(-1), vals=vals)
    check_op(None, lambda x: x.log_softmax(-1), vals=vals)
    check_op(None, lambda x: x.softmax(0), vals=vals)
    check_op(None, lambda x: x.log_softmax(0), vals=vals)
    p = Tensor(vals[0], dtype="float32", requires_grad=True)
    out = p.log_softmax(-1)
    out.sum().backward()
    assert np.isfinite(out.numpy()).all() and np.isfinite(p.grad.numpy()).all()


# -- shape ops ------------------------------------------------------------------------------
def test_reshape_view():
    check_op([(2, 3, 4)], lambda x: x.reshape(6, 4))
    check_op([(2, 3, 4)], lambda x: x.reshape((4, -1)))
    check_op([(2, 3, 4)], lambda x: x.view(-1))
    check_op([(2, 3, 4)], lambda x: x.view(2, 12))
    check_op([()], lambda x: x.reshape(1, 1))
    check_op([(1,)], lambda x: x.reshape(()))


def test_transpose_permute_T():
    check_op([(3, 4)], lambda x: x.transpose(0, 1))
    check_op([(1, 4)], lambda x: x.transpose(1, 0))
    check_op([(5,)], lambda x: x.transpose(0, 0))
    check_op([(2, 3, 4)], lambda x: x.transpose(0, 2))
    check_op([(2, 3, 4)], lambda x: x.transpose(-1, 1))
    check_op([(2, 3, 4)], lambda x: x.permute(2, 0, 1))
    check_op([(2, 3, 4)], lambda x: x.permute((1, 2, 0)))
    check_op([(2, 3, 4, 5)], lambda x: x.permute(3, 1, 0, 2))
    check_op([(2, 3, 4)], lambda x: x.permute(-1, 0, 1))
    check_op([(3, 4)], lambda x: x.T)
    # a permuted (non-contiguous) result feeding another op
    check_op([(2, 3, 4)], lambda x: x.permute(2, 0, 1) * torch.arange(3.0, dtype=torch.float64),
             lambda x: x.permute(2, 0, 1) * Tensor(np.arange(3.0), dtype="float64"))


def test_squeeze_unsqueeze():
    check_op([(2, 1, 3, 1)], lambda x: x.squeeze())
    check_op([(2, 1, 3, 1)], lambda x: x.squeeze(1))
    check_op([(2, 1, 3, 1)], lambda x: x.squeeze(-1))
    check_op([(2, 1, 3, 1)], lambda x: x.squeeze(0))       # not size 1: left alone
    check_op([(2, 1, 3, 1)], lambda x: x.squeeze((1, 3)))
    check_op([(2, 3)], lambda x: x.unsqueeze(0))
    check_op([(2, 3)], lambda x: x.unsqueeze(1))
    check_op([(2, 3)], lambda x: x.unsqueeze(2))
    check_op([(2, 3)], lambda x: x.unsqueeze(-1))
    check_op([(2, 3)], lambda x: x.unsqueeze(-3))
    check_op([()], lambda x: x.unsqueeze(0))


def test_flatten():
    check_op([(2, 3, 4)], lambda x: x.flatten())
    check_op([(2, 3, 4)], lambda x: x.flatten(1))
    check_op([(2, 3, 4, 5)], lambda x: x.flatten(1, 2))
    check_op([(2, 3, 4, 5)], lambda x: x.flatten(0, -2))
    check_op([()], lambda x: x.flatten())


def test_expand_broadcast_to():
    check_op([(3, 1)], lambda x: x.expand(3, 4))
    check_op([(3, 1)], lambda x: x.expand(2, -1, 4))
    check_op([(1, 4)], lambda x: x.expand((5, 4)))
    check_op([(4,)], lambda x: x.broadcast_to((2, 3, 4)))
    check_op([()], lambda x: x.broadcast_to((2, 3)))
    check_op([(2, 1, 3)], lambda x: x.broadcast_to(2, 4, 3))


def test_repeat():
    check_op([(2, 3)], lambda x: x.repeat(2, 1))
    check_op([(2, 3)], lambda x: x.repeat(3, 2))
    check_op([(2, 3)], lambda x: x.repeat(2, 1, 3))       # more repeats than dims
    check_op([(3,)], lambda x: x.repeat((4,)))


@pytest.mark.parametrize("pad,value", [((1, 2), 0.0), ((0, 1, 2, 0), 0.0),
                                       ((1, 1, 1, 1, 1, 1), 0.0),
                                       ((2, 0), -3.5)])
def test_pad(pad, value):
    check_op([(2, 3, 4)], lambda x: F.pad(x, pad, value=value), lambda x: x.pad(pad, value))


@pytest.mark.parametrize("dim", [0, 1, 2, -1])
def test_stack(dim):
    check_op([(2, 3)] * 3, lambda *xs: torch.stack(xs, dim), lambda *xs: Tensor.stack(xs, dim))
    check_op([(2, 3)] * 2, lambda *xs: torch.stack(xs, dim=dim),
             lambda *xs: pynn.stack(list(xs), dim=dim))


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_concat_cat(dim):
    shapes = [(2, 3), (2, 3), (2, 3)]
    if dim == 0:
        shapes = [(1, 3), (4, 3), (2, 3)]
    elif dim in (1, -1):
        shapes = [(2, 1), (2, 5), (2, 3)]
    check_op(shapes, lambda *xs: torch.cat(xs, dim), lambda *xs: Tensor.concat(xs, dim))
    check_op(shapes, lambda *xs: torch.cat(xs, dim=dim), lambda *xs: Tensor.cat(xs, dim=dim))
    check_op(shapes, lambda *xs: torch.cat(xs, dim=dim), lambda *xs: pynn.concat(xs, dim=dim))


def test_split_chunk():
    check_op([(7, 3)], lambda x: x.split(3))               # 3, 3, 1
    check_op([(7, 3)], lambda x: x.split([2, 5]))
    check_op([(3, 7)], lambda x: x.split(2, dim=1))
    check_op([(3, 7)], lambda x: x.split([1, 4, 2], -1))
    check_op([(6, 3)], lambda x: x.chunk(3))
    check_op([(7, 3)], lambda x: x.chunk(3))
    check_op([(3, 5)], lambda x: x.chunk(2, dim=1))
    # only some pieces used: the others get zero gradient
    check_op([(7, 3)], lambda x: x.split(3)[1] * 2)


# -- indexing -------------------------------------------------------------------------------
@pytest.mark.parametrize("index", [
    0, -1, (1, 2), slice(1, 3), slice(None, None, 2), slice(-3, None, 3),
    (slice(None), 1), (Ellipsis, 0), (None, slice(1, None)), (slice(None), None, 2),
    (1, Ellipsis, slice(None, None, 2)), (slice(0, 3, 2), slice(None), slice(1, 2)),
    (Ellipsis, None),
])
def test_getitem_basic(index):
    check_op([(4, 3, 5)], lambda x: x[index])


def test_getitem_negative_step():
    # torch has no negative steps; flip is the same thing
    check_op([(4, 3, 5)], lambda x: x.flip(0), lambda x: x[::-1])
    check_op([(4, 3, 5)], lambda x: x.flip(2)[:, 1], lambda x: x[:, 1, ::-1])


def test_getitem_integer_arrays_repeated_indices():
    idx = np.array([0, 2, 2, 0, 3, 2])           # repeated: gradients must accumulate
    ti = torch.tensor(idx)
    check_op([(4, 3)], lambda x: x[ti], lambda x: x[idx])
    check_op([(4, 3)], lambda x: x[ti], lambda x: x[Tensor(idx)])
    check_op([(4, 3)], lambda x: x[idx.tolist()], lambda x: x[idx.tolist()])
    check_op([(3, 4)], lambda x: x[:, ti], lambda x: x[:, idx])
    rows, cols = np.array([0, 1, 1, 2, 0]), np.array([3, 0, 0, 1, 3])
    check_op([(3, 4)], lambda x: x[torch.tensor(rows), torch.tensor(cols)],
             lambda x: x[rows, cols])
    # 2-d index array; and the cross-entropy pattern x[arange(n), labels]
    idx2 = np.array([[0, 1], [1, 1]])
    check_op([(3, 4)], lambda x: x[torch.tensor(idx2)], lambda x: x[idx2])
    labels = np.array([2, 0, 2, 3, 3])
    check_op([(5, 4)], lambda x: x.log_softmax(1)[torch.arange(5), torch.tensor(labels)],
             lambda x: x.log_softmax(1)[np.arange(5), labels])
    # an integer array with a slice and a step
    check_op([(4, 6)], lambda x: x[ti[:4], ::2], lambda x: x[idx[:4], ::2])


def test_getitem_boolean_mask():
    mask = np.random.default_rng(2).random((3, 4)) > 0.4
    check_op([(3, 4)], lambda x: x[torch.tensor(mask)], lambda x: x[mask])
    check_op([(3, 4)], lambda x: x[torch.tensor(mask)], lambda x: x[Tensor(mask)])
    row_mask = np.array([True, False, True])
    check_op([(3, 4)], lambda x: x[torch.tensor(row_mask)], lambda x: x[row_mask])
    check_op([(3, 4)], lambda x: x[:, torch.tensor(mask[0])], lambda x: x[:, mask[0]])
    # a mask computed from the tensor itself
    check_op([(3, 4)], lambda x: x[x > 0], lambda x: x[x > 0])


# -- compositions ---------------------------------------------------------------------------
def test_mlp_cross_entropy():
    labels = np.array([1, 0, 2, 2])

    def fn(x, w1, b1, w2):
        logits = (x @ w1 + b1).relu() @ w2
        return -logits.log_softmax(1)[torch.arange(4) if isinstance(x, torch.Tensor)
                                      else np.arange(4), labels].mean()
    check_op([(4, 5), (5, 6), (6,), (6, 3)], fn)


def test_layer_norm_by_hand():
    def fn(x, g):
        mu = x.mean(-1, keepdim=True)
        sd = (x.var(-1, keepdim=True, correction=0) + 1e-5).sqrt()
        return (x - mu) / sd * g
    check_op([(3, 6), (6,)], fn)


def test_graph_reuses_a_value_in_many_places():
    # a diamond: `a` reaches the output both directly and through `b`
    def fn(x):
        a = x * 2
        b = a.exp() * a
        return (a + b).sum(0) * a.mean()
    check_op([(3, 4)], fn)
