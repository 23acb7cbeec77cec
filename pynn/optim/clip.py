"""Gradient clipping (in place), like ``torch.nn.utils.clip_grad_norm_`` /
``clip_grad_value_``."""
import math

import numpy as np

from ..kernels import optim as _k
from .base import _grad_array


def _grads(params):
    if hasattr(params, "grad") and hasattr(params, "data"):
        params = [params]
    return [_grad_array(p.grad) for p in params if p.grad is not None]


def clip_grad_norm(params, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Scale the grads of ``params`` in place so that their total norm (over all
    grads viewed as one vector) is at most ``max_norm``, like
    ``torch.nn.utils.clip_grad_norm_``: grads are multiplied by
    ``min(1, max_norm / (total_norm + 1e-6))``.  Returns the total norm before
    clipping as a Python float.  ``norm_type`` may be any p > 0, ``inf`` or 0
    (like torch, the norm of the per-tensor norms, i.e. the number of non-zero grads)."""
    grads = _grads(params)
    norm_type = float(norm_type)
    if not norm_type >= 0.0:
        raise ValueError(f"unsupported norm_type {norm_type}")
    if not grads:
        return 0.0
    parts = [_k.norm_pow_sum(g.reshape(-1), norm_type) for g in grads]
    if norm_type == math.inf:
        total = max(parts) if not any(x != x for x in parts) else math.nan
    elif norm_type == 0.0:              # torch: the 0-"norm" of the per-tensor 0-norms
        total = float(sum(x != 0.0 for x in parts))
    else:
        total = math.fsum(parts) ** (1.0 / norm_type)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(f"The total norm of order {norm_type} for gradients is non-finite, "
                           "so it cannot be clipped.")
    coef = float(max_norm) / (total + 1e-6)
    if not coef >= 1.0:                 # also propagates NaN like torch
        for g in grads:
            np.multiply(g, coef, out=g, casting="unsafe")
    return total


def clip_grad_value(params, clip_value):
    """Clamp every grad element of ``params`` to [-clip_value, clip_value] in place."""
    c = float(clip_value)
    for g in _grads(params):
        np.clip(g, -c, c, out=g)


clip_grad_norm_ = clip_grad_norm
clip_grad_value_ = clip_grad_value
