"""Finite-difference gradient checks in float64 for every differentiable op.

For an op f and a random cotangent w, L(x) = sum(f(x) * w). Its gradient from backward() is
compared with central differences (L(x + eps e_j) - L(x - eps e_j)) / (2 eps) for every element
j of every input. Inputs are chosen away from kinks and ties (abs/relu at 0, clip bounds, equal
maxima), where the derivative is not defined and a finite difference straddles two branches.

Tolerances: with eps = 1e-6 the truncation error is ~eps^2 * f''' ~ 1e-12 and the rounding
error ~1e-16 * |L| / eps ~ 1e-9 for |L| ~ 10, so rtol 1e-6 / atol 1e-7 is comfortably above
both and far below any real gradient bug.
"""
import numpy as np
import pytest

import pynn
from pynn import Tensor

# op classes whose backward this module checks by finite differences (see CASES);
# tests/test_op_coverage.py requires every differentiable op to be in one such set
GRADCHECKED_OPS = {
    "Add", "Sub", "Mul", "Div", "Pow", "Neg", "MatMul", "Exp", "Log", "Sqrt", "Abs", "Sin", "Cos",
    "Tanh", "Sigmoid", "Relu", "LeakyRelu", "Gelu", "Softplus", "Clip", "Maximum", "Minimum",
    "Where", "Cast", "Sum", "Mean", "Max", "Min", "TakeAlongDim", "Var", "LogSumExp", "Softmax",
    "LogSoftmax", "Reshape", "Flatten", "Permute", "Squeeze", "Unsqueeze", "BroadcastTo",
    "Repeat", "Pad", "Stack", "Concat", "GetItem",
}

EPS, RTOL, ATOL = 1e-6, 1e-6, 1e-7


def _outputs(out):
    return list(out) if isinstance(out, (tuple, list)) else [out]


def gradcheck(fn, *arrays, seed=0):
    arrays = [np.array(a, dtype=np.float64) for a in arrays]
    rng = np.random.default_rng(seed)
    inputs = [Tensor(a, dtype="float64", requires_grad=True) for a in arrays]
    outs = [o for o in _outputs(fn(*inputs)) if o.dtype.kind == "f"]
    seeds = [rng.standard_normal(o.shape) for o in outs]
    for k, (o, s) in enumerate(zip(outs, seeds)):
        o.backward(s, retain_graph=k < len(outs) - 1)
    analytic = [np.zeros_like(a) if t.grad is None else t.grad.numpy()
                for a, t in zip(arrays, inputs)]

    @pynn.no_grad()
    def loss(xs):
        outs = [o for o in _outputs(fn(*[Tensor(x, dtype="float64") for x in xs]))
                if o.dtype.kind == "f"]
        return sum(float((o.numpy() * s).sum()) for o, s in zip(outs, seeds))

    for i, a in enumerate(arrays):
        numeric = np.zeros_like(a)
        for j in np.ndindex(a.shape):
            xs = [x.copy() for x in arrays]
            xs[i][j] = a[j] + EPS
            plus = loss(xs)
            xs[i][j] = a[j] - EPS
            numeric[j] = (plus - loss(xs)) / (2 * EPS)
        np.testing.assert_allclose(analytic[i], numeric, rtol=RTOL, atol=ATOL,
                                   err_msg=f"gradient of input {i}")


rng = np.random.default_rng(42)


def U(*shape, low=-2.0, high=2.0):
    return rng.uniform(low, high, size=shape)


def away_from_zero(*shape, margin=0.2):
    """Values in +-[margin, 2]: no element near a kink at 0."""
    return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(margin, 2.0, size=shape)


def distinct(*shape, gap=0.3):
    """Values at least `gap` apart: no ties for max/min, whichever axis is reduced."""
    n = int(np.prod(shape))
    return (rng.permutation(n) * gap - n * gap / 2 + rng.uniform(0, gap / 10, n)).reshape(shape)


COND = np.array([[True, False, True, True], [False, True, False, False], [True, True, False, True]])
IDX = np.array([0, 2, 2, 1, 0])
MASK = np.array([[True, False, True, True], [False, False, True, False], [True, True, False, True]])

CASES = {
    # arithmetic, with broadcasting and scalars on either side
    "add": (lambda a, b: a + b, [U(3, 4), U(4)]),
    "sub": (lambda a, b: a - b, [U(3, 1), U(1, 4)]),
    "rsub_scalar": (lambda a: 1.5 - a, [U(3, 4)]),
    "mul": (lambda a, b: a * b, [U(2, 3, 4), U(3, 1)]),
    "div": (lambda a, b: a / b, [U(3, 4), away_from_zero(4)]),
    "rdiv_scalar": (lambda a: 2.0 / a, [away_from_zero(3, 4)]),
    "pow": (lambda a, b: a ** b, [U(3, 4, low=0.5), U(3, 4)]),
    "pow_scalar_exp": (lambda a: a ** 3, [U(3, 4)]),
    "rpow_scalar_base": (lambda a: 2.0 ** a, [U(3, 4)]),
    "neg": (lambda a: -a, [U(3, 4)]),
    # matmul: vectors, matrices, batched with broadcasting
    "matmul_vv": (lambda a, b: a @ b, [U(4), U(4)]),
    "matmul_mv": (lambda a, b: a @ b, [U(3, 4), U(4)]),
    "matmul_vm": (lambda a, b: a @ b, [U(4), U(4, 3)]),
    "matmul_mm": (lambda a, b: a @ b, [U(3, 4), U(4, 2)]),
    "matmul_batched_broadcast": (lambda a, b: a.matmul(b), [U(2, 1, 2, 3), U(3, 3, 2)]),
    # unary math
    "exp": (lambda a: a.exp(), [U(3, 4)]),
    "log": (lambda a: a.log(), [U(3, 4, low=0.2, high=3.0)]),
    "sqrt": (lambda a: a.sqrt(), [U(3, 4, low=0.2, high=3.0)]),
    "abs": (lambda a: a.abs(), [away_from_zero(3, 4)]),
    "sin": (lambda a: a.sin(), [U(3, 4)]),
    "cos": (lambda a: a.cos(), [U(3, 4)]),
    "tanh": (lambda a: a.tanh(), [U(3, 4)]),
    "sigmoid": (lambda a: a.sigmoid(), [U(3, 4, low=-6, high=6)]),
    "relu": (lambda a: a.relu(), [away_from_zero(3, 4)]),
    "leaky_relu": (lambda a: a.leaky_relu(0.1), [away_from_zero(3, 4)]),
    "gelu": (lambda a: a.gelu(), [U(3, 4, low=-4, high=4)]),
    "softplus": (lambda a: a.softplus(), [U(3, 4, low=-6, high=6)]),
    "softplus_beta": (lambda a: a.softplus(beta=2.0, threshold=3.0),
                      [np.array([-3.0, -1.0, 0.3, 1.0, 1.3, 2.0, 4.0])]),
    "clip": (lambda a: a.clip(-0.5, 0.7), [np.array([-1.5, -0.8, -0.3, 0.1, 0.5, 0.9, 1.7])]),
    "maximum": (lambda a, b: a.maximum(b), [U(3, 4), None]),
    "minimum": (lambda a, b: a.minimum(b), [U(3, 4), None]),
    "where": (lambda a, b: pynn.where(COND, a, b), [U(3, 4), U(4)]),
    "astype": (lambda a: a.astype("float64") * a, [U(3, 4)]),
    # reductions
    "sum": (lambda a: a.sum(), [U(3, 4)]),
    "sum_dims": (lambda a: a.sum(dim=(0, 2), keepdim=True), [U(2, 3, 4)]),
    "mean": (lambda a: a.mean(1), [U(3, 4)]),
    "mean_dims": (lambda a: a.mean(dim=(-1, 0)), [U(2, 3, 4)]),
    "max": (lambda a: a.max(), [distinct(3, 4)]),
    "max_dim": (lambda a: a.max(1), [distinct(3, 4)]),
    "min_dim": (lambda a: a.min(dim=0, keepdim=True), [distinct(3, 4)]),
    "amax": (lambda a: a.amax(dim=(0, 2)), [distinct(2, 3, 4)]),
    "amin": (lambda a: a.amin(dim=1), [distinct(2, 3, 4)]),
    "var": (lambda a: a.var(1), [U(3, 4)]),
    "var_biased_all": (lambda a: a.var(correction=0), [U(3, 4)]),
    "std": (lambda a: a.std(dim=(0, 1), keepdim=True), [U(3, 4, 2)]),
    "logsumexp": (lambda a: a.logsumexp(1), [U(3, 4)]),
    "logsumexp_all": (lambda a: a.logsumexp(), [U(3, 4)]),
    "softmax": (lambda a: a.softmax(-1), [U(3, 4, low=-4, high=4)]),
    "softmax_dim0": (lambda a: a.softmax(0), [U(3, 4, low=-4, high=4)]),
    "log_softmax": (lambda a: a.log_softmax(1), [U(3, 4, low=-4, high=4)]),
    # shape ops
    "reshape": (lambda a: a.reshape(4, 6) * Tensor(np.arange(6.0), dtype="float64"), [U(2, 3, 4)]),
    "view": (lambda a: a.view(-1), [U(2, 3, 4)]),
    "transpose": (lambda a: a.transpose(0, 2), [U(2, 3, 4)]),
    "permute": (lambda a: a.permute(1, 2, 0), [U(2, 3, 4)]),
    "T": (lambda a: a.T, [U(3, 4)]),
    "squeeze": (lambda a: a.squeeze(1), [U(3, 1, 4)]),
    "unsqueeze": (lambda a: a.unsqueeze(1), [U(3, 4)]),
    "flatten": (lambda a: a.flatten(1), [U(2, 3, 4)]),
    "expand": (lambda a: a.expand(2, 3, 4), [U(3, 1)]),
    "broadcast_to": (lambda a: a.broadcast_to((2, 3, 4)), [U(4)]),
    "repeat": (lambda a: a.repeat(2, 1, 3), [U(3, 2)]),
    "pad": (lambda a: a.pad((1, 2, 0, 1), value=0.5), [U(2, 3, 4)]),
    "stack": (lambda a, b: Tensor.stack((a, b), dim=1), [U(3, 4), U(3, 4)]),
    "concat": (lambda a, b: Tensor.concat((a, b), dim=1), [U(3, 2), U(3, 4)]),
    "split": (lambda a: a.split([1, 3], dim=1), [U(3, 4)]),
    "chunk": (lambda a: a.chunk(3), [U(7, 2)]),
    "getitem_basic": (lambda a: a[1:, None, ::2], [U(3, 4)]),
    "getitem_int_array": (lambda a: a[IDX], [U(3, 4)]),
    "getitem_two_arrays": (lambda a: a[IDX, IDX[::-1]], [U(3, 4)]),
    "getitem_mask": (lambda a: a[MASK], [U(3, 4)]),
}


def _fill(name, arrays):
    if name in ("maximum", "minimum"):     # b = a shifted by +-[0.2, 1]: never a tie
        a = arrays[0]
        return [a, a + rng.choice([-1.0, 1.0], a.shape) * rng.uniform(0.2, 1.0, a.shape)]
    return arrays


@pytest.mark.parametrize("name", list(CASES))
def test_gradcheck(name):
    fn, arrays = CASES[name]
    gradcheck(fn, *_fill(name, arrays))


def test_gradcheck_composite():
    """A small network: every op's gradient chained through the others."""
    labels = np.array([1, 0, 2])

    def net(x, w, b, v):
        h = (x @ w + b).tanh()
        z = h.gelu() @ v
        return -(z.log_softmax(1)[np.arange(3), labels]).mean() + (w * w).sum() * 0.01

    gradcheck(net, U(3, 4), U(4, 5), U(5), U(5, 3))
