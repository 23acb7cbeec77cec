"""Fused losses whose gradient is simpler and steadier than the chain of their parts."""
import numpy as np

from .base import Op
from .elementwise import stable_sigmoid


def _reduce(per_item, reduction):
    if reduction == "mean":
        return np.asarray(per_item.mean(), dtype=per_item.dtype)
    if reduction == "sum":
        return np.asarray(per_item.sum(), dtype=per_item.dtype)
    return per_item


def _spread(g, reduction, n, dtype):
    """The gradient of the reduction, per item."""
    if reduction == "mean":
        return np.asarray(g, dtype) / n
    return np.asarray(g, dtype)


class SoftmaxCrossEntropy(Op):
    """Cross-entropy of softmax(logits) against `target`: integer class labels (N,) or
    probabilities / one-hot rows (N, C). Gradient: (softmax(logits) - onehot) per row (for
    one-hot rows), which stays finite however saturated the softmax is. attrs: target, reduction."""

    def forward(self, z):
        shifted = z - z.max(axis=1, keepdims=True)
        logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        t = self.target
        if t.ndim == 1:
            per_item = -logp[np.arange(len(t)), t]
        else:
            per_item = -(t * logp).sum(axis=1)
        self.logp = logp
        return _reduce(per_item, self.reduction)

    def backward(self, g):
        n = self.logp.shape[0]
        grad = np.exp(self.logp)
        t = self.target
        if t.ndim == 1:
            grad[np.arange(n), t] -= 1
        else:   # d/dz of -sum(t * log_softmax(z)) = softmax(z) * sum(t) - t
            grad = grad * t.sum(axis=1, keepdims=True) - t
        g = _spread(g, self.reduction, n, grad.dtype)
        return (grad * (g.reshape(-1, 1) if g.ndim else g),)


class BinaryCrossEntropyWithLogits(Op):
    """mean of max(z, 0) - z*y + log(1 + exp(-|z|)); gradient sigmoid(z) - y.
    attrs: target (same shape as z), reduction."""

    def forward(self, z):
        y = self.target
        self.z = z
        per_item = np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))
        return _reduce(per_item.astype(z.dtype, copy=False), self.reduction)

    def backward(self, g):
        grad = stable_sigmoid(self.z) - self.target
        return (grad * _spread(g, self.reduction, self.z.size, grad.dtype),)


class BinaryCrossEntropy(Op):
    """-(y log p + (1-y) log(1-p)) for probabilities p, each log clamped at -100 as in PyTorch;
    gradient (p - y) / max(p (1 - p), 1e-12), so probabilities of exactly 0 or 1 (a saturated
    sigmoid) give a finite loss and a finite gradient. attrs: target (same shape), reduction."""

    def forward(self, p):
        y = self.target
        self.p = p
        with np.errstate(divide="ignore"):
            log_p = np.maximum(np.log(p), -100)
            log_q = np.maximum(np.log1p(-p), -100)
        per_item = -(y * log_p + (1 - y) * log_q)
        return _reduce(per_item.astype(p.dtype, copy=False), self.reduction)

    def backward(self, g):
        p, y = self.p, self.target
        grad = (p - y) / np.maximum(p * (1 - p), 1e-12)
        return ((grad * _spread(g, self.reduction, p.size, p.dtype)).astype(p.dtype, copy=False),)
