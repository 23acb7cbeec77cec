"""pynn.metrics against torch (float64) on random predictions, the name lookup, and the two losses
added for compile(loss="mae" / "huber") against torch.nn.functional.

Metrics are plain functions metric(pred, target) -> float on arrays or Tensors; the references
are computed with torch from the same arrays.
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import check_op

from pynn import Tensor, metrics
from pynn.losses import huber, huber_loss, l1_loss, mae, mean_absolute_error

N, C = 50, 7


def _scores(seed=0, n=N, c=C):
    return np.random.default_rng(seed).standard_normal((n, c))


def _labels(seed=1, n=N, c=C):
    return np.random.default_rng(seed).integers(0, c, n)


def _torch_top_k(scores, labels, k):
    top = torch.topk(torch.from_numpy(scores), k, dim=1).indices
    return (top == torch.from_numpy(labels)[:, None]).any(dim=1).double().mean().item()


def test_sparse_categorical_accuracy_against_torch():
    s, y = _scores(), _labels()
    want = (torch.from_numpy(s).argmax(1) == torch.from_numpy(y)).double().mean().item()
    assert 0 < want < 1
    assert metrics.sparse_categorical_accuracy(s, y) == want
    assert metrics.sparse_categorical_accuracy(s, y.reshape(-1, 1)) == want    # labels (N, 1)
    assert metrics.sparse_categorical_accuracy(Tensor(s), Tensor(y)) == pytest.approx(want)


def test_categorical_accuracy_against_torch():
    s, y = _scores(), _labels()
    onehot = F.one_hot(torch.from_numpy(y), C).numpy().astype(np.float64)
    want = (torch.from_numpy(s).argmax(1) == torch.from_numpy(onehot).argmax(1)).double().mean()
    assert metrics.categorical_accuracy(s, onehot) == want.item()
    with pytest.raises(ValueError, match="one-hot"):
        metrics.categorical_accuracy(s, y)


@pytest.mark.parametrize("k", [1, 2, 5])
def test_top_k_against_torch_topk(k):
    s, y = _scores(2), _labels(3)
    want = _torch_top_k(s, y, k)
    assert metrics.sparse_top_k_categorical_accuracy(s, y, k=k) == pytest.approx(want, abs=1e-15)
    onehot = np.eye(C)[y]
    assert metrics.top_k_categorical_accuracy(s, onehot, k=k) == pytest.approx(want, abs=1e-15)


def test_top_k_default_is_5_and_ties_count_as_in_top_k():
    s, y = _scores(4), _labels(5)
    assert metrics.sparse_top_k_categorical_accuracy(s, y) == pytest.approx(
        _torch_top_k(s, y, 5), abs=1e-15)
    # tf.math.in_top_k: classes tied with the k-th score are all in the top k
    tied = np.array([[0.5, 0.5, 0.0], [0.5, 0.5, 0.0]])
    assert metrics.sparse_top_k_categorical_accuracy(tied, np.array([0, 1]), k=1) == 1.0
    assert metrics.sparse_top_k_categorical_accuracy(tied, np.array([2, 2]), k=2) == 0.0


@pytest.mark.parametrize("shape", [(N,), (N, 1), (N, 3)])
def test_binary_accuracy_against_torch(shape):
    rng = np.random.default_rng(6)
    p = rng.uniform(0, 1, shape)
    y = rng.integers(0, 2, shape).astype(np.float64)
    want = ((torch.from_numpy(p) > 0.5).double() == torch.from_numpy(y)).double().mean().item()
    assert metrics.binary_accuracy(p, y) == pytest.approx(want, abs=1e-15)
    want_t = ((torch.from_numpy(p) > 0.7).double() == torch.from_numpy(y)).double().mean().item()
    assert metrics.binary_accuracy(p, y, threshold=0.7) == pytest.approx(want_t, abs=1e-15)


def test_binary_accuracy_takes_labels_of_another_shape_with_as_many_elements():
    rng = np.random.default_rng(7)
    p = rng.uniform(0, 1, (N, 1))
    y = rng.integers(0, 2, N)
    assert metrics.binary_accuracy(p, y) == metrics.binary_accuracy(p, y.reshape(-1, 1))
    with pytest.raises(ValueError, match=r"\(50, 1\).*\(49,\)"):
        metrics.binary_accuracy(p, y[:-1])


def test_accuracy_picks_the_variant_from_the_shapes():
    s, y = _scores(), _labels()
    assert metrics.accuracy(s, y) == metrics.sparse_categorical_accuracy(s, y)
    assert metrics.accuracy(s, np.eye(C)[y]) == metrics.categorical_accuracy(s, np.eye(C)[y])
    p = np.random.default_rng(8).uniform(0, 1, (N, 1))
    yb = np.random.default_rng(9).integers(0, 2, (N, 1)).astype(np.float32)
    assert metrics.accuracy(p, yb) == metrics.binary_accuracy(p, yb)
    assert metrics.accuracy(p[:, 0], yb[:, 0]) == metrics.binary_accuracy(p, yb)


@pytest.mark.parametrize("shape", [(N,), (N, 3)])
def test_mse_and_mae_against_torch(shape):
    rng = np.random.default_rng(10)
    p, y = rng.standard_normal(shape), rng.standard_normal(shape)
    tp, ty = torch.from_numpy(p), torch.from_numpy(y)
    assert metrics.mean_squared_error(p, y) == pytest.approx(F.mse_loss(tp, ty).item(), rel=1e-14)
    assert metrics.mean_absolute_error(p, y) == pytest.approx(F.l1_loss(tp, ty).item(), rel=1e-14)
    assert metrics.mse is metrics.mean_squared_error and metrics.mae is metrics.mean_absolute_error
    assert metrics.mse(Tensor(p), Tensor(y)) == pytest.approx(F.mse_loss(tp, ty).item(), rel=1e-6)


def test_metrics_return_python_floats():
    s, y = _scores(), _labels()
    for name in ["accuracy", "sparse_categorical_accuracy", "sparse_top_k_categorical_accuracy"]:
        assert type(metrics.get(name)(s, y)) is float
    assert type(metrics.mse(s, s + 1)) is float


def test_get_looks_up_names_and_passes_callables():
    assert metrics.get("accuracy") is metrics.accuracy
    assert metrics.get("acc") is metrics.accuracy
    assert metrics.get("mse") is metrics.mean_squared_error
    assert metrics.get("mean_absolute_error") is metrics.mean_absolute_error
    assert metrics.get("top_k_categorical_accuracy") is metrics.top_k_categorical_accuracy

    def mine(pred, target):
        return 0.0
    assert metrics.get(mine) is mine
    with pytest.raises(ValueError, match="unknown metric 'acuracy'.*accuracy"):
        metrics.get("acuracy")


def test_label_shape_errors_name_the_metric_and_shapes():
    with pytest.raises(ValueError, match=r"sparse_categorical_accuracy.*\(50, 7\).*\(49,\)"):
        metrics.sparse_categorical_accuracy(_scores(), _labels()[:-1])
    with pytest.raises(ValueError, match="labels must lie in"):
        metrics.sparse_top_k_categorical_accuracy(_scores(), np.full(N, C), k=2)


# -- the losses behind compile(loss="mae") and compile(loss="huber") -------------------------------
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mae_against_torch(reduction):
    y = np.random.default_rng(11).standard_normal((6, 3))
    check_op([(6, 3)], lambda p: F.l1_loss(p, torch.from_numpy(y), reduction=reduction),
             lambda p: mae(p, y, reduction=reduction))
    assert l1_loss is mae and mean_absolute_error is mae


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("delta", [1.0, 0.3])
def test_huber_against_torch(reduction, delta):
    y = np.random.default_rng(12).standard_normal((6, 3))
    check_op([(6, 3)],
             lambda p: F.huber_loss(p, torch.from_numpy(y), reduction=reduction, delta=delta),
             lambda p: huber(p, y, delta=delta, reduction=reduction), low=-3, high=3)
    assert huber_loss is huber


def test_huber_rejects_a_non_positive_delta():
    with pytest.raises(ValueError, match="delta"):
        huber(Tensor(np.zeros(3)), np.zeros(3), delta=0)
