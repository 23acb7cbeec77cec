"""Functions in the style of torch.nn.functional, for what has no Tensor method."""
import numpy as np

from .ops.attention import ScaledDotProductAttention
from .tensor import Tensor, apply


def _t(x):
    return x if isinstance(x, Tensor) else Tensor(x)


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0,
                                 is_causal=False, scale=None):
    """softmax(query @ key^T * scale + mask) @ value, as torch.nn.functional's.

    query (..., L, E), key (..., S, E), value (..., S, Ev) -> (..., L, Ev). attn_mask, if given,
    broadcasts to (..., L, S): boolean (True = take part in attention) or float (added to the
    scores). is_causal masks key j > query i (top-left aligned), computed from the lengths of
    each call. scale defaults to 1 / sqrt(E). dropout_p drops attention weights (always, as
    torch's functional form: pass 0.0 in evaluation).

    >>> q = Tensor.randn(2, 4, 10, 8)
    >>> scaled_dot_product_attention(q, q, q, is_causal=True).shape
    (2, 4, 10, 8)
    """
    if not 0 <= dropout_p < 1:
        raise ValueError(f"scaled_dot_product_attention: dropout_p must be in [0, 1), got "
                         f"{dropout_p}")
    q, k, v = _t(query), _t(key), _t(value)
    if q.ndim < 2 or k.ndim < 2 or v.ndim < 2 or q.shape[-1] != k.shape[-1] or \
            k.shape[-2] != v.shape[-2]:
        raise ValueError(f"scaled_dot_product_attention: expected query (..., L, E), key "
                         f"(..., S, E) and value (..., S, Ev), got {q.shape}, {k.shape}, "
                         f"{v.shape}")
    masks = ()
    if attn_mask is not None:
        m = attn_mask if isinstance(attn_mask, Tensor) else Tensor(
            np.asarray(attn_mask) if np.asarray(attn_mask).dtype == np.bool_
            else np.asarray(attn_mask, dtype=q.dtype))
        masks = (m,)
    op = ScaledDotProductAttention(causal=bool(is_causal), scale=scale, dropout_p=dropout_p,
                                   module=None)
    return apply(op, q, k, v, *masks)
