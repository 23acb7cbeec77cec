"""Loss functions. Each takes (prediction, target, reduction="mean"|"sum"|"none").

Targets may be Tensors or arrays; class targets may be integer labels (N,) or one-hot rows (N, C).
"""
import numpy as np

from .tensor import Tensor, apply
from .ops.loss import SoftmaxCrossEntropy, BinaryCrossEntropyWithLogits, BinaryCrossEntropy

_EPS = 1e-7


def _array(target, like=None):
    t = np.asarray(getattr(target, "data", target))
    if like is not None and t.dtype.kind == "f":
        t = t.astype(like.dtype, copy=False)
    return t


def _check_reduction(reduction):
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _reduce(per_item, reduction):
    if reduction == "mean":
        return per_item.mean()
    if reduction == "sum":
        return per_item.sum()
    if reduction == "none":
        return per_item
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _check_same(name, pred, target):
    if pred.shape != target.shape:
        raise ValueError(f"{name}: prediction has shape {pred.shape} but target has shape "
                         f"{target.shape}")


def _class_target(name, logits, target):
    """Integer labels (N,) or probability rows (N, C), checked against (N, C) scores."""
    t = _array(target, logits)
    if logits.ndim != 2:
        raise ValueError(f"{name}: expected scores of shape (batch, classes), got {logits.shape}")
    n, c = logits.shape
    if t.ndim == 1 and t.dtype.kind in "iu":
        if t.shape[0] != n:
            raise ValueError(f"{name}: {n} predictions but {t.shape[0]} labels")
        if t.size and (t.min() < 0 or t.max() >= c):
            raise ValueError(f"{name}: labels must lie in [0, {c - 1}], got [{t.min()}, {t.max()}]")
        return t
    if t.shape != (n, c):
        raise ValueError(f"{name}: target must be integer labels ({n},) or one-hot rows "
                         f"({n}, {c}), got shape {t.shape} of dtype {t.dtype}")
    return t


def mse(pred, target, reduction="mean"):
    """Mean squared error (torch.nn.functional.mse_loss)."""
    target = Tensor(_array(target, pred.data), dtype=pred.dtype)
    _check_same("mse", pred, target)
    return _reduce((pred - target) ** 2, reduction)


mse_loss = mean_squared_error = mse


def binary_cross_entropy(pred, target, reduction="mean"):
    """-(y log p + (1-y) log(1-p)) for probabilities p; logs clamped at -100 as in PyTorch."""
    t = _array(target, pred.data)
    _check_same("binary_cross_entropy", pred, t)
    _check_reduction(reduction)
    return apply(BinaryCrossEntropy(target=t, reduction=reduction), pred)


def binary_cross_entropy_with_logits(logits, target, reduction="mean"):
    """binary_cross_entropy(sigmoid(logits), target), computed stably from the logits."""
    t = _array(target, logits.data)
    _check_same("binary_cross_entropy_with_logits", logits, t)
    _check_reduction(reduction)
    return apply(BinaryCrossEntropyWithLogits(target=t, reduction=reduction), logits)


def cross_entropy(logits, target, reduction="mean"):
    """Softmax cross-entropy from raw scores (torch.nn.functional.cross_entropy)."""
    t = _class_target("cross_entropy", logits, target)
    _check_reduction(reduction)
    return apply(SoftmaxCrossEntropy(target=t, reduction=reduction), logits)


def categorical_cross_entropy(pred, target, reduction="mean"):
    """Cross-entropy of probabilities `pred` (e.g. a softmax output) against labels or one-hot.

    When `pred` came straight out of a softmax (a softmax op, or a Model whose last step is one),
    the loss is computed from the logits behind it: exact and finite even when probabilities
    saturate to 0 or 1, with the gradient softmax - onehot. Otherwise probabilities are clipped
    to [1e-7, 1]."""
    source = getattr(pred, "_softmax_of", None)
    if source is not None:
        return cross_entropy(source, target, reduction)
    t = _class_target("categorical_cross_entropy", pred, target)
    if t.ndim == 1:
        t = np.eye(pred.shape[1], dtype=pred.dtype)[t]
    per_item = -(Tensor(t, dtype=pred.dtype) * pred.clip(_EPS, 1.0).log()).sum(dim=1)
    return _reduce(per_item, reduction)


def nll_loss(log_probs, target, reduction="mean"):
    """Negative log-likelihood of integer labels given log-probabilities (N, C)."""
    t = _class_target("nll_loss", log_probs, target)
    if t.ndim != 1:
        raise ValueError("nll_loss: target must be integer labels")
    per_item = -log_probs[np.arange(len(t)), t]
    return _reduce(per_item, reduction)


def hinge(pred, target, reduction="mean"):
    """max(0, 1 - y * pred) with labels y in {-1, 1} (0/1 labels are mapped to -1/1, as Keras)."""
    t = _array(target, pred.data)
    _check_same("hinge", pred, t)
    if t.size and t.min() >= 0:
        t = 2 * t - 1
    return _reduce((1 - Tensor(t, dtype=pred.dtype) * pred).relu(), reduction)


def mae(pred, target, reduction="mean"):
    """Mean absolute error (torch.nn.functional.l1_loss)."""
    target = Tensor(_array(target, pred.data), dtype=pred.dtype)
    _check_same("mae", pred, target)
    return _reduce((pred - target).abs(), reduction)


l1_loss = mean_absolute_error = mae


def huber(pred, target, reduction="mean", delta=1.0):
    """Huber loss (torch.nn.functional.huber_loss): 0.5 d^2 where |d| <= delta, else
    delta (|d| - 0.5 delta), for d = pred - target."""
    if not delta > 0:
        raise ValueError(f"huber: delta must be positive, got {delta}")
    target = Tensor(_array(target, pred.data), dtype=pred.dtype)
    _check_same("huber", pred, target)
    a = (pred - target).abs()
    q = a.minimum(delta)               # the quadratic part; the rest of |d| is linear
    return _reduce(0.5 * q * q + delta * (a - q), reduction)


huber_loss = huber
