"""The losses of issue 13 against torch.nn.functional (values, gradients of the prediction and,
where torch has one, of the target), by finite differences, and inside a compiled Model:
l1_loss/mae, huber/smooth_l1_loss, kl_div, cosine_similarity (function and losses),
cross_entropy(weight=, ignore_index=, label_smoothing=), nll_loss(weight=, ignore_index=), and
binary cross-entropy's gradient with respect to its target."""
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import assert_close, check_op

import pynn
from pynn import Input, Model, Tensor
from pynn import losses as L

sys.path.insert(0, str(Path(__file__).parent))
from test_gradcheck import gradcheck  # noqa: E402

TORCH_CHECKED_OPS = {"SoftmaxCrossEntropy", "BinaryCrossEntropy", "BinaryCrossEntropyWithLogits",
                     "Huber", "KLDiv"}
GRADCHECKED_OPS = {"SoftmaxCrossEntropy", "BinaryCrossEntropy", "BinaryCrossEntropyWithLogits",
                   "Huber", "KLDiv"}

REDUCTIONS = ["mean", "sum", "none"]
N, C = 6, 4
rng = np.random.default_rng(31)


def labels(n=N, c=C, seed=0):
    return np.random.default_rng(seed).integers(0, c, n)


def prob_rows(n=N, c=C, seed=0):
    p = np.random.default_rng(seed).uniform(0.05, 1.0, (n, c))
    return p / p.sum(axis=1, keepdims=True)


# -- regression losses --------------------------------------------------------------------------
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_l1_loss_and_mae(reduction):
    for fn in (L.l1_loss, L.mae, L.mean_absolute_error):
        check_op([(N, 3), (N, 3)], lambda p, t: F.l1_loss(p, t, reduction=reduction),
                 lambda p, t, fn=fn: fn(p, t, reduction=reduction))
    target = rng.standard_normal((N, 3))         # an array target
    check_op([(N, 3)], lambda p: F.l1_loss(p, torch.tensor(target), reduction=reduction),
             lambda p: L.l1_loss(p, target, reduction=reduction))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("delta", [1.0, 0.3, 2.5])
def test_huber(reduction, delta):
    # inputs in [-3, 3): both branches (|d| <= delta and beyond) are hit
    check_op([(N, 5), (N, 5)], lambda p, t: F.huber_loss(p, t, reduction=reduction, delta=delta),
             lambda p, t: L.huber(p, t, reduction=reduction, delta=delta), low=-3, high=3)
    check_op([(N, 5), (N, 5)], lambda p, t: F.huber_loss(p, t, reduction=reduction, delta=delta),
             lambda p, t: L.huber_loss(p, t, reduction, delta), low=-3, high=3)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("beta", [1.0, 0.5, 0.0])
def test_smooth_l1_loss(reduction, beta):
    check_op([(N, 5), (N, 5)],
             lambda p, t: F.smooth_l1_loss(p, t, reduction=reduction, beta=beta),
             lambda p, t: L.smooth_l1_loss(p, t, reduction=reduction, beta=beta), low=-3, high=3)


# -- distributions ------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides")   # torch's notice about 'mean'
@pytest.mark.parametrize("reduction", REDUCTIONS + ["batchmean"])
def test_kl_div(reduction):
    t = prob_rows(seed=3)
    t[0, 1] = 0.0                     # a zero target entry contributes 0 (and no NaN)
    check_op([(N, C)],
             lambda z: F.kl_div(F.log_softmax(z, 1), torch.tensor(t), reduction=reduction),
             lambda z: L.kl_div(z.log_softmax(1), t, reduction=reduction))
    # the gradient with respect to the target too (positive targets: log t is smooth)
    check_op([(N, C), (N, C)], lambda x, q: F.kl_div(x, q, reduction=reduction),
             lambda x, q: L.kl_div(x, q, reduction=reduction), low=0.1, high=1.0)


@pytest.mark.parametrize("reduction", ["batchmean", "none"])
def test_kl_div_log_target(reduction):
    check_op([(N, C), (N, C)], lambda x, q: F.kl_div(x, q, reduction=reduction, log_target=True),
             lambda x, q: L.kl_div(x, q, reduction=reduction, log_target=True), low=-3, high=0)


@pytest.mark.parametrize("dim", [1, -1, 0])
def test_cosine_similarity_function(dim):
    check_op([(N, 5), (N, 5)], lambda a, b: F.cosine_similarity(a, b, dim=dim),
             lambda a, b: L.cosine_similarity(a, b, dim=dim))
    check_op([(2, 3, 4), (3, 4)], lambda a, b: F.cosine_similarity(a, b, dim=-1),
             lambda a, b: L.cosine_similarity(a, b, dim=-1))
    # a zero vector: eps keeps it finite, as in torch
    vals = [[[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]], [[1.0, -1.0, 2.0], [0.5, 0.5, 0.0]]]
    check_op(None, lambda a, b: F.cosine_similarity(a, b, dim=1),
             lambda a, b: L.cosine_similarity(a, b, dim=1), vals=vals)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("margin", [0.0, 0.3])
def test_cosine_embedding_loss(reduction, margin):
    y = np.array([1, -1, 1, -1, -1, 1])
    check_op([(N, 5), (N, 5)],
             lambda a, b: F.cosine_embedding_loss(a, b, torch.tensor(y), margin=margin,
                                                  reduction=reduction),
             lambda a, b: L.cosine_embedding_loss(a, b, y, margin=margin, reduction=reduction))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cosine_similarity_loss(reduction):
    ones = torch.ones(N)
    check_op([(N, 5), (N, 5)],
             lambda a, b: F.cosine_embedding_loss(a, b, ones, reduction=reduction),
             lambda a, b: L.cosine_similarity_loss(a, b, reduction=reduction))


# -- classification -----------------------------------------------------------------------------
WEIGHT = np.array([0.5, 2.0, 1.0, 0.25])


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weight", [None, WEIGHT])
@pytest.mark.parametrize("ignore_index", [-100, 2])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
def test_cross_entropy_options_with_labels(reduction, weight, ignore_index, label_smoothing):
    y = np.array([2, 0, 1, 2, 3, 1])
    tw = None if weight is None else torch.tensor(weight)
    check_op([(N, C)],
             lambda z: F.cross_entropy(z, torch.tensor(y), weight=tw, ignore_index=ignore_index,
                                       label_smoothing=label_smoothing, reduction=reduction),
             lambda z: L.cross_entropy(z, y, weight=weight, ignore_index=ignore_index,
                                       label_smoothing=label_smoothing, reduction=reduction),
             low=-4, high=4)


def test_cross_entropy_ignore_index_outside_the_class_range():
    y = np.array([2, -1, 1, -1, 3, 0])
    check_op([(N, C)], lambda z: F.cross_entropy(z, torch.tensor(y), ignore_index=-1),
             lambda z: L.cross_entropy(z, y, ignore_index=-1))
    with pytest.raises(ValueError, match="labels must lie"):
        L.cross_entropy(Tensor(np.zeros((N, C))), y)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weight", [None, WEIGHT])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.3])
def test_cross_entropy_options_with_probabilities(reduction, weight, label_smoothing):
    t = prob_rows(seed=4)
    tw = None if weight is None else torch.tensor(weight)
    check_op([(N, C)],
             lambda z: F.cross_entropy(z, torch.tensor(t), weight=tw,
                                       label_smoothing=label_smoothing, reduction=reduction),
             lambda z: L.cross_entropy(z, t, weight=weight, label_smoothing=label_smoothing,
                                       reduction=reduction), low=-4, high=4)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weight", [None, WEIGHT])
@pytest.mark.parametrize("ignore_index", [-100, 1])
def test_nll_loss_options(reduction, weight, ignore_index):
    y = np.array([2, 0, 1, 2, 3, 1])
    tw = None if weight is None else torch.tensor(weight)
    check_op([(N, C)],
             lambda z: F.nll_loss(F.log_softmax(z, 1), torch.tensor(y), weight=tw,
                                  ignore_index=ignore_index, reduction=reduction),
             lambda z: L.nll_loss(z.log_softmax(1), y, weight=weight, ignore_index=ignore_index,
                                  reduction=reduction))


# -- binary cross-entropy: the target's gradient -------------------------------------------------
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_cross_entropy_gradient_of_the_target(reduction):
    check_op([(N, 3), (N, 3)], lambda p, y: F.binary_cross_entropy(p, y, reduction=reduction),
             lambda p, y: L.binary_cross_entropy(p, y, reduction=reduction), low=0.05, high=0.95)
    check_op([(N, 3), (N, 3)],
             lambda z, y: F.binary_cross_entropy_with_logits(z, y, reduction=reduction),
             lambda z, y: L.binary_cross_entropy_with_logits(z, y, reduction=reduction),
             low=-3, high=3)


def test_binary_cross_entropy_target_that_needs_no_grad_gets_none():
    p = Tensor(np.full((2, 2), 0.3), requires_grad=True)
    y = Tensor(np.ones((2, 2)))
    L.binary_cross_entropy(p, y).backward()
    assert y.grad is None and p.grad is not None


# -- finite differences ---------------------------------------------------------------------------
def U(*shape, low=-2.0, high=2.0):
    return rng.uniform(low, high, size=shape)


Y = np.array([2, 0, 1, 2, 3, 1])
GRAD_CASES = {
    "cross_entropy_labels": (lambda z: L.cross_entropy(z, Y), [U(N, C)]),
    "cross_entropy_all_options": (
        lambda z: L.cross_entropy(z, Y, weight=WEIGHT, ignore_index=2, label_smoothing=0.2),
        [U(N, C)]),
    "cross_entropy_probs_weight": (
        lambda z: L.cross_entropy(z, prob_rows(seed=5), weight=WEIGHT, label_smoothing=0.1,
                                  reduction="sum"), [U(N, C)]),
    "nll_loss_weight_ignore": (
        lambda z: L.nll_loss(z.log_softmax(1), Y, weight=WEIGHT, ignore_index=1), [U(N, C)]),
    "bce": (lambda p, y: L.binary_cross_entropy(p, y), [U(N, 3, low=0.1, high=0.9),
                                                         U(N, 3, low=0.0, high=1.0)]),
    "bce_with_logits": (lambda z, y: L.binary_cross_entropy_with_logits(z, y, reduction="sum"),
                        [U(N, 3), U(N, 3, low=0.0, high=1.0)]),
    "huber": (lambda p, t: L.huber(p, t, delta=0.7),
              # |p - t| kept away from delta, where the second derivative jumps
              [np.array([0.1, -0.3, 1.5, -2.0, 0.2]), np.array([0.0, 0.0, 0.0, 0.0, 0.6])]),
    "smooth_l1": (lambda p, t: L.smooth_l1_loss(p, t, beta=0.5, reduction="sum"),
                  [np.array([0.1, -0.3, 1.5, -2.0]), np.array([0.0, 0.1, 0.0, 0.5])]),
    "l1": (lambda p, t: L.l1_loss(p, t), [np.array([0.5, -1.0, 2.0]), np.array([0.0, 0.3, -1.0])]),
    "kl_div": (lambda x, t: L.kl_div(x, t, reduction="batchmean"),
               [U(N, C, low=-3, high=0), U(N, C, low=0.1, high=1.0)]),
    "kl_div_log_target": (lambda x, t: L.kl_div(x, t, reduction="sum", log_target=True),
                          [U(N, C, low=-3, high=0), U(N, C, low=-3, high=0)]),
    "cosine_similarity": (lambda a, b: L.cosine_similarity(a, b), [U(N, 5), U(N, 5)]),
    "cosine_embedding_loss": (
        lambda a, b: L.cosine_embedding_loss(a, b, np.array([1, -1, 1, -1, -1, 1]), margin=-0.5),
        [U(N, 5), U(N, 5)]),
}


@pytest.mark.parametrize("name", list(GRAD_CASES))
def test_gradcheck_losses(name):
    fn, arrays = GRAD_CASES[name]
    gradcheck(fn, *arrays)


# -- inside a Model -------------------------------------------------------------------------------
@pytest.mark.parametrize("name,loss", [
    ("huber", lambda p, t: L.huber(p, t, reduction="none", delta=0.5)),
    ("smooth_l1", lambda p, t: L.smooth_l1_loss(p, t, reduction="sum")),
    ("kl_div", lambda p, t: L.kl_div(p.log_softmax(1), t.softmax(1), reduction="batchmean")),
    ("bce", lambda p, t: L.binary_cross_entropy(p.sigmoid(), t.sigmoid(), reduction="none")),
    ("bce_logits", lambda p, t: L.binary_cross_entropy_with_logits(p, t.sigmoid())),
    ("l1", lambda p, t: L.l1_loss(p, t)),
    ("cosine", lambda p, t: L.cosine_similarity_loss(p, t, reduction="none")),
])
def test_two_input_losses_in_a_model(name, loss):
    p_in, t_in = Input((4,), dtype=np.float64), Input((4,), dtype=np.float64)
    model = Model([p_in, t_in], loss(p_in, t_in))
    for n in (3, 5):
        a, b = rng.standard_normal((n, 4)), rng.standard_normal((n, 4))
        pe, te = (Tensor(v, dtype="float64", requires_grad=True) for v in (a, b))
        pm, tm = (Tensor(v, dtype="float64", requires_grad=True) for v in (a, b))
        want, got = loss(pe, te), model(pm, tm)
        assert_close(f"{name}: value", got, want)
        seed = Tensor(rng.standard_normal(want.shape), dtype="float64")
        (want * seed).sum().backward()
        (got * seed).sum().backward()
        assert_close(f"{name}: grad of prediction", pm.grad, pe.grad)
        assert_close(f"{name}: grad of target", tm.grad, te.grad)


def test_cross_entropy_with_options_on_a_model_output():
    from pynn.layers import Dense
    x_in = Input((5,), dtype=np.float64)
    dense = Dense(5, C)
    for name in ("weight", "bias"):
        getattr(dense, name).data = getattr(dense, name).data.astype(np.float64)
    model = Model(x_in, dense(x_in))
    x = rng.standard_normal((N, 5))
    loss = L.cross_entropy(model(Tensor(x, dtype="float64")), Y, weight=WEIGHT, ignore_index=3,
                           label_smoothing=0.1)
    loss.backward()
    lin = torch.nn.Linear(5, C).double()
    with torch.no_grad():
        lin.weight.copy_(torch.tensor(dense.weight.data))
        lin.bias.copy_(torch.tensor(dense.bias.data))
    tl = F.cross_entropy(lin(torch.tensor(x)), torch.tensor(Y), weight=torch.tensor(WEIGHT),
                         ignore_index=3, label_smoothing=0.1)
    tl.backward()
    assert_close("loss", loss, tl)
    assert_close("weight grad", dense.weight.grad, lin.weight.grad)
    assert_close("bias grad", dense.bias.grad, lin.bias.grad)


def test_loss_argument_errors():
    z = Tensor(np.zeros((N, C)))
    with pytest.raises(ValueError, match="weight must hold one value per class"):
        L.cross_entropy(z, Y, weight=np.ones(3))
    with pytest.raises(ValueError, match="label_smoothing"):
        L.cross_entropy(z, Y, label_smoothing=1.5)
    with pytest.raises(ValueError, match="delta"):
        L.huber(z, z, delta=0)
    with pytest.raises(ValueError, match="batchmean"):
        L.kl_div(z, z, reduction="avg")
    with pytest.raises(ValueError, match="shape"):
        L.l1_loss(z, np.zeros((N, 3)))
    assert pynn.losses.mae is L.l1_loss
