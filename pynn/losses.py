"""Loss functions. Each takes (prediction, target, reduction="mean"|"sum"|"none").

Targets may be Tensors or arrays; class targets may be integer labels (N,) or one-hot rows (N, C).
"""
import numpy as np

from .ops.loss import (
    BinaryCrossEntropy,
    BinaryCrossEntropyWithLogits,
    Huber,
    KLDiv,
    SoftmaxCrossEntropy,
)
from .tensor import Tensor, apply

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


def _class_target(name, logits, target, ignore_index=None):
    """Integer labels (N,) or probability rows (N, C), checked against (N, C) scores. Labels
    equal to `ignore_index` are allowed whatever their value."""
    t = _array(target, logits)
    if logits.ndim != 2:
        raise ValueError(f"{name}: expected scores of shape (batch, classes), got {logits.shape}")
    n, c = logits.shape
    if t.ndim == 1 and t.dtype.kind in "iu":
        if t.shape[0] != n:
            raise ValueError(f"{name}: {n} predictions but {t.shape[0]} labels")
        counted = t if ignore_index is None else t[t != ignore_index]
        if counted.size and (counted.min() < 0 or counted.max() >= c):
            raise ValueError(f"{name}: labels must lie in [0, {c - 1}], got "
                             f"[{counted.min()}, {counted.max()}]")
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


def _target_tensor(name, pred, target):
    """The target as a Tensor of pred's shape (a Tensor that requires grad is kept, so the loss
    is differentiable in it too; arrays take pred's dtype)."""
    if isinstance(target, Tensor) and target.requires_grad:
        t = target
    else:
        t = Tensor(_array(target, pred.data), dtype=pred.dtype)
    _check_same(name, pred, t)
    return t


def binary_cross_entropy(pred, target, reduction="mean"):
    """-(y log p + (1-y) log(1-p)) for probabilities p; logs clamped at -100 as in PyTorch.
    Differentiable in both p and y (a target that requires grad gets a gradient too)."""
    t = _target_tensor("binary_cross_entropy", pred, target)
    _check_reduction(reduction)
    return apply(BinaryCrossEntropy(reduction=reduction), pred, t)


def binary_cross_entropy_with_logits(logits, target, reduction="mean"):
    """binary_cross_entropy(sigmoid(logits), target), computed stably from the logits;
    differentiable in both."""
    t = _target_tensor("binary_cross_entropy_with_logits", logits, target)
    _check_reduction(reduction)
    return apply(BinaryCrossEntropyWithLogits(reduction=reduction), logits, t)


def _class_weight(name, weight, logits):
    if weight is None:
        return None
    w = _array(weight, logits.data)
    if w.shape != (logits.shape[1],):
        raise ValueError(f"{name}: weight must hold one value per class ({logits.shape[1]},), "
                         f"got shape {w.shape}")
    return w


def cross_entropy(logits, target, reduction="mean", weight=None, ignore_index=-100,
                  label_smoothing=0.0):
    """Softmax cross-entropy from raw scores (torch.nn.functional.cross_entropy): integer labels
    (N,) or probability rows (N, C); class `weight`, `ignore_index` (labels only) and
    `label_smoothing` as in torch."""
    t = _class_target("cross_entropy", logits, target, ignore_index)
    _check_reduction(reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got "
                         f"{label_smoothing}")
    op = SoftmaxCrossEntropy(target=t, reduction=reduction,
                             weight=_class_weight("cross_entropy", weight, logits),
                             ignore_index=int(ignore_index),
                             label_smoothing=float(label_smoothing))
    return apply(op, logits)


def categorical_cross_entropy(pred, target, reduction="mean"):
    """Cross-entropy of probabilities `pred` (e.g. a softmax output) against labels or one-hot.

    When `pred` came straight out of a softmax (a softmax op, or a Model whose last step is one),
    the loss is computed from the logits behind it: exact and finite even when probabilities
    saturate to 0 or 1, with the gradient softmax - onehot. Otherwise probabilities are clipped
    to [1e-7, 1]."""
    fn = pred.grad_fn       # (a value changed in place since is no longer that softmax)
    fresh = fn is not None and pred._version == fn.out_version
    source = fn.op.softmax_logits(fn) if fresh else None
    if source is not None:
        return cross_entropy(source, target, reduction)
    t = _class_target("categorical_cross_entropy", pred, target)
    if t.ndim == 1:
        t = np.eye(pred.shape[1], dtype=pred.dtype)[t]
    per_item = -(Tensor(t, dtype=pred.dtype) * pred.clip(_EPS, 1.0).log()).sum(dim=1)
    return _reduce(per_item, reduction)


#: the (misspelt) name the original pynn used, kept so that its programs still run
categorical_cross_entory = categorical_cross_entropy


def nll_loss(log_probs, target, reduction="mean", weight=None, ignore_index=-100):
    """Negative log-likelihood of integer labels given log-probabilities (N, C), with class
    `weight` and `ignore_index` as torch.nn.functional.nll_loss (the mean divides by the summed
    weight of the counted labels)."""
    t = _class_target("nll_loss", log_probs, target, ignore_index)
    if t.ndim != 1:
        raise ValueError("nll_loss: target must be integer labels")
    _check_reduction(reduction)
    w = _class_weight("nll_loss", weight, log_probs)
    keep = t != ignore_index
    labels = np.where(keep, t, 0)
    scale = keep.astype(log_probs.dtype) * (1 if w is None else w[labels])
    per_item = -log_probs[np.arange(len(t)), labels]
    if w is not None or not keep.all():
        per_item = per_item * Tensor(scale, dtype=log_probs.dtype)
    if reduction == "mean" and (w is not None or not keep.all()):
        return per_item.sum() / float(scale.sum())
    return _reduce(per_item, reduction)


def hinge(pred, target, reduction="mean"):
    """max(0, 1 - y * pred) with labels y in {-1, 1} (0/1 labels are mapped to -1/1, as Keras)."""
    t = _array(target, pred.data)
    _check_same("hinge", pred, t)
    if t.size and t.min() >= 0:
        t = 2 * t - 1
    return _reduce((1 - Tensor(t, dtype=pred.dtype) * pred).relu(), reduction)


def l1_loss(pred, target, reduction="mean"):
    """Mean absolute error |pred - target| (torch.nn.functional.l1_loss)."""
    target = _target_tensor("l1_loss", pred, target)
    return _reduce((pred - target).abs(), reduction)


mae = mean_absolute_error = l1_loss


def huber(pred, target, reduction="mean", delta=1.0):
    """The Huber loss: 0.5 d^2 where |d| <= delta, delta (|d| - delta / 2) elsewhere, for
    d = pred - target (torch.nn.functional.huber_loss; Keras's Huber)."""
    if not delta > 0:
        raise ValueError(f"huber: delta must be positive, got {delta}")
    target = _target_tensor("huber", pred, target)
    _check_reduction(reduction)
    return _reduce(apply(Huber(delta=float(delta)), pred, target), reduction)


huber_loss = huber


def smooth_l1_loss(pred, target, reduction="mean", beta=1.0):
    """0.5 d^2 / beta where |d| < beta, |d| - beta / 2 elsewhere (huber / beta; l1 at beta 0),
    as torch.nn.functional.smooth_l1_loss."""
    if beta < 0:
        raise ValueError(f"smooth_l1_loss: beta must be >= 0, got {beta}")
    if beta == 0:
        return l1_loss(pred, target, reduction)
    target = _target_tensor("smooth_l1_loss", pred, target)
    _check_reduction(reduction)
    return _reduce(apply(Huber(delta=float(beta)), pred, target) / beta, reduction)


def kl_div(input, target, reduction="mean", log_target=False):
    """KL divergence of `target` from the distribution whose log-probabilities are `input`,
    pointwise target * (log target - input), as torch.nn.functional.kl_div; reduction
    "batchmean" divides the sum by the batch size (the true KL divergence per sample)."""
    target = _target_tensor("kl_div", input, target)
    if reduction not in ("mean", "sum", "none", "batchmean"):
        raise ValueError(f"reduction must be 'mean', 'sum', 'none' or 'batchmean', got "
                         f"{reduction!r}")
    pointwise = apply(KLDiv(log_target=bool(log_target)), input, target)
    if reduction == "batchmean":       # the batch size read at run time (a Model's is free)
        if pointwise.ndim <= 1:
            return pointwise.mean()
        return pointwise.sum(dim=tuple(range(1, pointwise.ndim))).mean()
    return _reduce(pointwise, reduction)


def cosine_similarity(x1, x2, dim=1, eps=1e-8):
    """x1 . x2 / (max(|x1|, eps) * max(|x2|, eps)) along dim (torch.nn.functional.cosine_similarity;
    a function, not a loss: see cosine_similarity_loss)."""
    x1 = x1 if isinstance(x1, Tensor) else Tensor(x1)
    x2 = x2 if isinstance(x2, Tensor) else x1._other(x2)
    n1 = x1.norm(dim=dim, keepdim=True).clip(min=eps)
    n2 = x2.norm(dim=dim, keepdim=True).clip(min=eps)
    return ((x1 / n1) * (x2 / n2)).sum(dim)


def cosine_embedding_loss(x1, x2, target, margin=0.0, reduction="mean", eps=1e-8):
    """1 - cos(x1, x2) for target 1, max(0, cos(x1, x2) - margin) for target -1, over rows
    (torch.nn.functional.cosine_embedding_loss)."""
    y = _array(target)
    cos = cosine_similarity(x1, x2, dim=-1, eps=eps)
    if y.shape != cos.shape:
        raise ValueError(f"cosine_embedding_loss: target has shape {y.shape}, expected "
                         f"{cos.shape} (one +-1 per row)")
    per_item = Tensor.where(y > 0, 1 - cos, (cos - margin).relu())
    return _reduce(per_item, reduction)


def cosine_similarity_loss(pred, target, dim=-1, reduction="mean", eps=1e-8):
    """1 - cosine_similarity(pred, target) per row: 0 when they point the same way (what
    cosine_embedding_loss gives for target 1; Keras's CosineSimilarity loss is this minus 1)."""
    target = _target_tensor("cosine_similarity_loss", pred, target)
    return _reduce(1 - cosine_similarity(pred, target, dim, eps), reduction)
