"""Fused losses whose gradient is simpler and steadier than the chain of their parts."""
import numpy as np

from .base import Op
from .elementwise import stable_sigmoid


def _reduce(per_item, reduction, denom=None):
    """The mean (over `denom` when given, e.g. the total class weight), sum, or the items."""
    if reduction == "mean":
        if denom is None:
            return np.asarray(per_item.mean(), dtype=per_item.dtype)
        with np.errstate(divide="ignore", invalid="ignore"):   # all ignored: NaN, as torch
            return np.asarray(per_item.sum() / denom, dtype=per_item.dtype)
    if reduction == "sum":
        return np.asarray(per_item.sum(), dtype=per_item.dtype)
    return per_item


def _spread(g, reduction, n, dtype):
    """The gradient of the reduction, per item."""
    if reduction == "mean":
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.asarray(g, dtype) / n
    return np.asarray(g, dtype)


class SoftmaxCrossEntropy(Op):
    """Cross-entropy of softmax(logits z) against `target`: integer class labels (N,) or
    probabilities / one-hot rows (N, C), as torch.nn.functional.cross_entropy, with optional
    class `weight` (C,), `ignore_index` (labels equal to it count for nothing) and
    `label_smoothing` eps (the target becomes (1 - eps) onehot + eps / C). The mean over labels
    divides by the summed weight of the counted labels, as torch does.
    Every case is loss_i = -sum_c A_ic log_softmax(z)_ic for coefficients A (onehot for plain
    labels), so the gradient softmax * sum(A) - A stays finite however saturated the softmax is.
    attrs: target, reduction, weight, ignore_index, label_smoothing.
    Derivative: d/dz = g * (softmax(z) * sum_c A_c - A) per row (softmax - onehot for plain
    labels), divided by N (or the summed weight) for the mean
    """

    def __init__(self, target, reduction="mean", weight=None, ignore_index=-100,
                 label_smoothing=0.0):
        super().__init__(target=target, reduction=reduction, weight=weight,
                         ignore_index=ignore_index, label_smoothing=label_smoothing)

    def _coefficients(self, n, c, dtype):
        """A (N, C) and the mean's divisor, or (None, None) for plain labels (the fast path)."""
        t, w, eps = self.target, self.weight, self.label_smoothing
        if t.ndim == 1:
            keep = t != self.ignore_index
            if w is None and eps == 0 and keep.all():
                return None, None
            wv = np.ones(c, dtype) if w is None else w.astype(dtype, copy=False)
            labels = np.where(keep, t, 0)
            a = np.zeros((n, c), dtype)
            a[np.arange(n), labels] = (1 - eps) * keep
            if eps:
                a += (eps / c) * keep[:, None]
            return a * wv, np.sum(wv[labels] * keep)
        a = t * (1 - eps) + eps / c if eps else t
        return (a if w is None else a * w.astype(dtype, copy=False)), None

    def forward(self, z):
        shifted = z - z.max(axis=1, keepdims=True)
        logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        self.logp = logp
        self.coef, self.denom = self._coefficients(*z.shape, z.dtype)
        if self.coef is None:
            per_item = -logp[np.arange(len(self.target)), self.target]
        else:
            per_item = -(self.coef * logp).sum(axis=1)
        return _reduce(per_item, self.reduction, self.denom)

    def backward(self, g):
        n = self.logp.shape[0]
        grad = np.exp(self.logp)
        if self.coef is None:
            grad[np.arange(n), self.target] -= 1
        else:   # d/dz of -sum(A * log_softmax(z)) = softmax(z) * sum(A) - A
            grad = grad * self.coef.sum(axis=1, keepdims=True) - self.coef
        g = _spread(g, self.reduction, n if self.denom is None else self.denom, grad.dtype)
        return (grad * (g.reshape(-1, 1) if g.ndim else g),)


class BinaryCrossEntropyWithLogits(Op):
    """max(z, 0) - z*y + log(1 + exp(-|z|)) per element, reduced. Inputs z and the target y
    (same shape). attrs: reduction.
    Derivative: d/dz = g * (sigmoid(z) - y), d/dy = -g * z"""

    def forward(self, z, y):
        self.z, self.y = z, y
        per_item = np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))
        return _reduce(per_item.astype(z.dtype, copy=False), self.reduction)

    def backward(self, g):
        g = _spread(g, self.reduction, self.z.size, self.z.dtype)
        gz = (stable_sigmoid(self.z) - self.y) * g if self.needs(0) else None
        gy = -self.z * g if self.needs(1) else None
        return gz, gy


class BinaryCrossEntropy(Op):
    """-(y log p + (1-y) log(1-p)) for probabilities p, each log clamped at -100 as in PyTorch,
    reduced; probabilities of exactly 0 or 1 (a saturated sigmoid) give a finite loss and a
    finite gradient. Inputs p and the target y (same shape). attrs: reduction.
    Derivative: d/dp = g * (p - y) / max(p (1 - p), 1e-12), d/dy = g * (log(1-p) - log p)
    (logs clamped at -100)"""

    def forward(self, p, y):
        self.p, self.y = p, y
        with np.errstate(divide="ignore"):
            self.log_p = np.maximum(np.log(p), -100)
            self.log_q = np.maximum(np.log1p(-p), -100)
        per_item = -(y * self.log_p + (1 - y) * self.log_q)
        return _reduce(per_item.astype(p.dtype, copy=False), self.reduction)

    def backward(self, g):
        p, y = self.p, self.y
        g = _spread(g, self.reduction, p.size, p.dtype)
        gp = gy = None
        if self.needs(0):
            gp = ((p - y) / np.maximum(p * (1 - p), 1e-12) * g).astype(p.dtype, copy=False)
        if self.needs(1):
            gy = ((self.log_q - self.log_p) * g).astype(p.dtype, copy=False)
        return gp, gy


class Huber(Op):
    """The Huber loss per element of d = prediction - target: 0.5 d^2 where |d| <= delta,
    delta (|d| - 0.5 delta) elsewhere (torch.nn.functional.huber_loss, before reduction).
    attrs: delta.
    Derivative: d/dpred = g * clip(d, -delta, delta), d/dtarget = -that"""

    def forward(self, pred, target):
        self.d = d = pred - target
        a = np.abs(d)
        return np.where(a <= self.delta, 0.5 * d * d, self.delta * (a - 0.5 * self.delta))

    def backward(self, g):
        gd = g * np.clip(self.d, -self.delta, self.delta)
        return gd, (-gd if self.needs(1) else None)


class KLDiv(Op):
    """torch.nn.functional.kl_div before reduction: target * (log target - input) for an input
    of log-probabilities, 0 where target is 0; with log_target, exp(t) * (t - input).
    attrs: log_target.
    Derivative: d/dinput = -g * target (-g * exp(t)), d/dtarget = g * (log target + 1 - input)
    (g * exp(t) * (t + 1 - input) with log_target; 0 where target is 0)"""

    def forward(self, x, t):
        self.x, self.t = x, t
        if self.log_target:
            self.p = np.exp(t)
            return self.p * (t - x)
        with np.errstate(divide="ignore", invalid="ignore"):
            self.log_t = np.where(t > 0, np.log(np.where(t > 0, t, 1)), 0)
        return np.where(t > 0, t * (self.log_t - x), 0).astype(x.dtype, copy=False)

    def backward(self, g):
        x, t = self.x, self.t
        gx = gt = None
        if self.log_target:
            if self.needs(0):
                gx = -g * self.p
            if self.needs(1):
                gt = g * self.p * (t + 1 - x)
            return gx, gt
        if self.needs(0):
            gx = -g * t
        if self.needs(1):
            gt = np.where(t > 0, g * (self.log_t + 1 - x), 0).astype(x.dtype, copy=False)
        return gx, gt
