"""Every loss and its gradient against torch.nn.functional, for each reduction, in float64.

The comparison is helpers.check_op (forward value, and the gradient of the prediction under a
random cotangent); targets are fixed arrays captured by the two closures.
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import check_op
from torch_helpers import as_float64, close

import pynn
from pynn import Input, Model, Tensor
from pynn.activations import softmax
from pynn.layers import Dense
from pynn.losses import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    categorical_cross_entropy,
    cross_entropy,
    hinge,
    mean_squared_error,
    mse,
    mse_loss,
    nll_loss,
)

# op classes this module checks against torch.nn.functional (tests/test_op_coverage.py reads it)
TORCH_CHECKED_OPS = {"SoftmaxCrossEntropy", "BinaryCrossEntropy", "BinaryCrossEntropyWithLogits"}

REDUCTIONS = ["mean", "sum", "none"]
N, C = 6, 4


def _rng(seed=0):
    return np.random.default_rng(seed)


def _labels(seed=0, n=N, c=C):
    return _rng(seed).integers(0, c, n)


def _prob_rows(seed=0, n=N, c=C):
    p = _rng(seed).uniform(0.05, 1.0, (n, c))
    return p / p.sum(axis=1, keepdims=True)


# -- regression and binary losses -------------------------------------------------------------
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(N,), (N, 3), (2, 3, 4)])
def test_mse(shape, reduction):
    y = _rng(1).standard_normal(shape)
    check_op([shape], lambda p: F.mse_loss(p, torch.from_numpy(y), reduction=reduction),
             lambda p: mse(p, y, reduction=reduction))
    assert mse_loss is mse and mean_squared_error is mse


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mse_target_as_tensor(reduction):
    y = _rng(1).standard_normal((N, 2))
    check_op([(N, 2)], lambda p: F.mse_loss(p, torch.from_numpy(y), reduction=reduction),
             lambda p: mse(p, Tensor(y, dtype=np.float64), reduction=reduction))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_cross_entropy(reduction):
    y = _rng(2).integers(0, 2, (N, 3)).astype(np.float64)
    y[0, 0] = 0.3                       # soft targets are allowed too
    check_op([(N, 3)],
             lambda p: F.binary_cross_entropy(p, torch.from_numpy(y), reduction=reduction),
             lambda p: binary_cross_entropy(p, y, reduction=reduction), low=0.02, high=0.98)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_cross_entropy_saturated_probabilities_like_torch(reduction):
    """p of exactly 0 or 1 (a saturated sigmoid): torch clamps the logs at -100 and the
    gradient's denominator at 1e-12, so loss and gradient stay finite; pynn must match."""
    p = np.array([0.0, 1.0, 0.0, 1.0, 0.5, 1e-300, 1e-60, 1 - 1e-16])
    y = np.array([1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 1.0])
    check_op([p.shape], lambda t: F.binary_cross_entropy(t, torch.from_numpy(y),
                                                         reduction=reduction),
             lambda t: binary_cross_entropy(t, y, reduction=reduction), vals=[p])


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("scale", [1.0, 50.0], ids=["moderate", "large"])
def test_binary_cross_entropy_with_logits(reduction, scale):
    y = _rng(3).integers(0, 2, (N, 2)).astype(np.float64)
    check_op([(N, 2)], lambda z: F.binary_cross_entropy_with_logits(
        z * scale, torch.from_numpy(y), reduction=reduction),
        lambda z: binary_cross_entropy_with_logits(z * scale, y, reduction=reduction))


def test_binary_cross_entropy_with_logits_extreme():
    z = np.array([-1000.0, 1000.0, -1000.0, 1000.0, 0.0])
    y = np.array([1.0, 0.0, 0.0, 1.0, 1.0])
    check_op([z.shape], lambda t: F.binary_cross_entropy_with_logits(t, torch.from_numpy(y)),
             lambda t: binary_cross_entropy_with_logits(t, y), vals=[z])


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("labels", ["pm1", "01"])
def test_hinge(reduction, labels):
    y = _rng(4).integers(0, 2, (N, 3)).astype(np.float64)
    y_pm = 2 * y - 1
    given = y_pm if labels == "pm1" else y

    def torch_hinge(p):
        per_item = torch.clamp(1 - torch.from_numpy(y_pm) * p, min=0)
        return {"mean": per_item.mean(), "sum": per_item.sum(), "none": per_item}[reduction]

    check_op([(N, 3)], torch_hinge, lambda p: hinge(p, given, reduction=reduction))


# -- classification losses ----------------------------------------------------------------------
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_int_labels(reduction):
    y = _labels(5)
    check_op([(N, C)], lambda z: F.cross_entropy(z, torch.from_numpy(y), reduction=reduction),
             lambda z: cross_entropy(z, y, reduction=reduction), low=-4, high=4)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("kind", ["probs", "onehot"])
def test_cross_entropy_probability_targets(reduction, kind):
    t = _prob_rows(6) if kind == "probs" else np.eye(C)[_labels(6)]
    check_op([(N, C)], lambda z: F.cross_entropy(z, torch.from_numpy(t), reduction=reduction),
             lambda z: cross_entropy(z, t, reduction=reduction), low=-4, high=4)


def test_cross_entropy_unnormalised_probability_targets():
    t = _rng(7).uniform(0, 2, (N, C))      # rows not summing to 1: torch just weights the logs
    check_op([(N, C)], lambda z: F.cross_entropy(z, torch.from_numpy(t)),
             lambda z: cross_entropy(z, t))


def test_cross_entropy_labels_as_tensor_and_int32():
    y = _labels(8)
    for given in (Tensor(y), y.astype(np.int32), pynn.tensor(y).long()):
        check_op([(N, C)], lambda z: F.cross_entropy(z, torch.from_numpy(y)),
                 lambda z, given=given: cross_entropy(z, given))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_nll_loss(reduction):
    y = _labels(9)
    check_op([(N, C)],
             lambda z: F.nll_loss(F.log_softmax(z, 1), torch.from_numpy(y), reduction=reduction),
             lambda z: nll_loss(z.log_softmax(1), y, reduction=reduction))
    # on arbitrary scores (nll_loss does not need normalised inputs)
    check_op([(N, C)], lambda z: F.nll_loss(z, torch.from_numpy(y), reduction=reduction),
             lambda z: nll_loss(z, y, reduction=reduction))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("kind", ["labels", "onehot", "probs"])
def test_categorical_cross_entropy_of_softmax_equals_cross_entropy_of_logits(reduction, kind):
    t = {"labels": _labels(10), "onehot": np.eye(C)[_labels(10)], "probs": _prob_rows(10)}[kind]
    check_op([(N, C)], lambda z: F.cross_entropy(z, torch.from_numpy(t), reduction=reduction),
             lambda z: categorical_cross_entropy(z.softmax(1), t, reduction=reduction),
             low=-4, high=4)
    # the softmax layer function gives the same
    check_op([(N, C)], lambda z: F.cross_entropy(z, torch.from_numpy(t), reduction=reduction),
             lambda z: categorical_cross_entropy(softmax(z), t, reduction=reduction),
             low=-4, high=4)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_categorical_cross_entropy_of_plain_probabilities(reduction):
    """Probabilities that did not come from a softmax op: -sum(t * log p) per row."""
    p0, y = _prob_rows(11), _labels(11)

    def torch_cce(p):
        per_item = -(F.one_hot(torch.from_numpy(y), C).double() * torch.log(p)).sum(1)
        return {"mean": per_item.mean(), "sum": per_item.sum(), "none": per_item}[reduction]

    check_op([(N, C)], torch_cce, lambda p: categorical_cross_entropy(p, y, reduction=reduction),
             vals=[p0])


# -- saturated softmax ------------------------------------------------------------------------
SATURATED = np.array([[1000.0, -1000.0, 0.0],
                      [-1000.0, 1000.0, 999.0],
                      [0.0, 0.0, -1000.0],
                      [-1000.0, -1000.0, 1000.0]])


@pytest.mark.parametrize("target", ["right", "wrong", "onehot"])
def test_categorical_cross_entropy_saturated_softmax_eager(target):
    y = {"right": np.array([0, 1, 0, 2]), "wrong": np.array([1, 0, 2, 0]),
         "onehot": np.eye(3)[[2, 2, 1, 1]]}[target]
    for reduction in REDUCTIONS:
        check_op([SATURATED.shape],
                 lambda z, r=reduction: F.cross_entropy(z, torch.from_numpy(y), reduction=r),
                 lambda z, r=reduction: categorical_cross_entropy(z.softmax(1), y, reduction=r),
                 vals=[SATURATED])
    z = Tensor(SATURATED, requires_grad=True, dtype=np.float64)
    loss = categorical_cross_entropy(z.softmax(-1), y)
    loss.backward()
    assert np.isfinite(loss.item()) and np.all(np.isfinite(z.grad.data))
    if target == "wrong":          # confidently wrong costs ~1000 nats, not a clipped log(1e-7)
        assert loss.item() > 500


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_categorical_cross_entropy_saturated_softmax_from_model(dtype):
    """Model(..., Dense(.., softmax)) whose logits are +-1000: the loss and gradients are those of
    cross_entropy on the logits (computed by torch), finite, not the clipped-log approximation."""
    pynn.manual_seed(0)
    dense = Dense(2, 3, softmax)
    dense.weight.data[...] = np.array([[500.0, 0.0], [-500.0, 0.0], [0.0, 500.0]])
    dense.bias.data[...] = 0.0
    if dtype == np.float64:
        as_float64(dense)
    x_in = Input((2,), dtype=dtype)
    model = Model(x_in, dense(x_in))
    x = np.array([[2.0, 0.0], [-2.0, 0.0], [0.0, 2.0], [0.0, -2.0]], dtype=dtype)
    y = np.array([1, 0, 0, 2])
    pred = model(x)
    assert pred.dtype == dtype
    probs_saturated = np.any(pred.data == 0.0) and np.any(pred.data == 1.0)
    assert probs_saturated
    loss = categorical_cross_entropy(pred, y)
    loss.backward()

    tlin = torch.nn.Linear(2, 3).double()
    with torch.no_grad():
        tlin.weight.copy_(torch.from_numpy(dense.weight.data.astype(np.float64)))
        tlin.bias.copy_(torch.from_numpy(dense.bias.data.astype(np.float64)))
    tloss = F.cross_entropy(tlin(torch.from_numpy(x.astype(np.float64))), torch.from_numpy(y))
    tloss.backward()
    rtol = 1e-6 if dtype == np.float64 else 1e-5
    assert np.isfinite(loss.item()) and loss.item() > 100
    close("loss", np.float64(loss.item()), tloss, rtol=rtol)
    close("weight grad", dense.weight.grad.data.astype(np.float64), tlin.weight.grad, rtol=rtol)
    close("bias grad", dense.bias.grad.data.astype(np.float64), tlin.bias.grad, rtol=rtol)


def test_model_softmax_output_then_loss_matches_eager():
    """Dense(softmax) in a Model, loss from its output: same loss and gradient as eagerly."""
    dense = as_float64(Dense(5, 4, softmax))
    x_in = Input((5,), dtype=np.float64)
    model = Model(x_in, dense(x_in))
    x = _rng(12).standard_normal((N, 5)) * 10
    y = _labels(12)
    loss = categorical_cross_entropy(model(x), y)
    loss.backward()
    got = [loss.item(), dense.weight.grad.data.copy(), dense.bias.grad.data.copy()]
    dense.weight.grad = dense.bias.grad = None
    loss = categorical_cross_entropy(dense(Tensor(x, dtype=np.float64)), y)
    loss.backward()
    np.testing.assert_allclose(got[0], loss.item(), rtol=1e-12)
    np.testing.assert_allclose(got[1], dense.weight.grad.data, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(got[2], dense.bias.grad.data, rtol=1e-12, atol=1e-15)


# -- errors -----------------------------------------------------------------------------------
def test_bad_targets_give_clear_errors():
    z = Tensor(np.zeros((4, 3)), requires_grad=True, dtype=np.float64)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\], got \[0, 3\]"):
        cross_entropy(z, np.array([0, 1, 2, 3]))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\]"):
        categorical_cross_entropy(z.softmax(1), np.array([-1, 1, 2, 0]))
    with pytest.raises(ValueError, match=r"labels must lie"):
        nll_loss(z, np.array([0, 1, 2, 5]))
    with pytest.raises(ValueError, match=r"4 predictions but 3 labels"):
        cross_entropy(z, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match=r"\(4, 3\).*got shape \(4, 2\)"):
        cross_entropy(z, np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"got shape \(4,\) of dtype float64"):
        categorical_cross_entropy(z.softmax(1), np.array([0.0, 1.0, 2.0, 1.0]))
    with pytest.raises(ValueError, match=r"expected scores of shape \(batch, classes\)"):
        cross_entropy(Tensor(np.zeros(4)), np.array([0, 1, 2, 0]))
    with pytest.raises(ValueError, match=r"mse: prediction has shape \(4, 3\) but target has "
                                         r"shape \(4,\)"):
        mse(z, np.zeros(4))
    with pytest.raises(ValueError, match=r"binary_cross_entropy: prediction has shape"):
        binary_cross_entropy(z.sigmoid(), np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"binary_cross_entropy_with_logits: prediction has"):
        binary_cross_entropy_with_logits(z, np.zeros((4, 1)))
    with pytest.raises(ValueError, match=r"hinge: prediction has shape"):
        hinge(z, np.zeros(3))
    with pytest.raises(ValueError, match=r"nll_loss: target must be integer labels"):
        nll_loss(z, np.zeros((4, 3)))
    for fn in (mse, hinge, binary_cross_entropy_with_logits):
        with pytest.raises(ValueError, match=r"reduction must be 'mean', 'sum' or 'none'"):
            fn(z, np.zeros((4, 3)), reduction="avg")
    for fn in (cross_entropy, nll_loss):
        with pytest.raises(ValueError, match=r"reduction must be"):
            fn(z, np.array([0, 1, 2, 0]), reduction="avg")


def test_losses_keep_float32():
    z = Tensor.randn((4, 3), requires_grad=True)
    y = np.array([0, 1, 2, 0])
    for loss in (cross_entropy(z, y), categorical_cross_entropy(z.softmax(1), y),
                 mse(z, np.zeros((4, 3))), binary_cross_entropy_with_logits(z, np.ones((4, 3))),
                 hinge(z, np.ones((4, 3))), nll_loss(z.log_softmax(1), y),
                 binary_cross_entropy(z.sigmoid(), np.ones((4, 3)))):
        assert loss.dtype == np.float32 and loss.shape == ()
        loss.backward()
    assert z.grad.dtype == np.float32
