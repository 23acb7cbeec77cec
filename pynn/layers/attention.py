"""MultiHeadAttention, as torch.nn.MultiheadAttention with batch_first=True."""
import math

import numpy as np

from ..ops import attention as A
from ..ops import nn
from ..ops import recurrent as R
from ..tensor import Tensor, apply
from .base import Layer, kaiming_uniform_bound, uniform_


class MultiHeadAttention(Layer):
    """Multi-head scaled dot-product attention (torch.nn.MultiheadAttention, batch_first=True).

    Args:
        embed_dim: E, the size of queries, keys, values and the output.
        num_heads: h; E must be a multiple of it (each head has E // h features).
        dropout: dropout on the attention weights in training mode (default 0).
        bias: learn the projection biases (default True).
        batch_first: must be True (inputs (N, L, E)).
        causal: apply the causal mask on every call (the default of ``is_causal``); unlike a
            call's keyword, it is saved with a model.

    Call: ``mha(x)`` for self-attention, ``mha(query, key, value)`` (value defaults to key),
    with keyword masks as torch's:

    * ``key_padding_mask`` (N, S): boolean, True = a padding key that is ignored; or float,
      added to the scores (0 / -inf).
    * ``attn_mask`` (L, S) or (N * h, L, S): boolean, True = not allowed; or float, added.
    * ``is_causal=True`` (default: the layer's ``causal``): query i attends to keys j <= i
      only. The mask is made from the lengths of each call, so it follows the real sequence
      length inside a compiled Model. (Keywords of a call are not saved with a model: use
      ``causal=True`` for a model you save.)

    Inside a compiled Model every input is passed in the model's float dtype: give masks there
    as float (0 = attend, -inf = masked).

    Returns the attention output (N, L, E) only (torch also returns the averaged weights;
    ``need_weights=False`` is accepted, True is refused).

    Parameters and their torch names: ``in_proj_weight`` (3E, E) and ``in_proj_bias`` (3E,)
    (query, key, value rows in that order; torch's own names), ``out_proj_weight`` (E, E) and
    ``out_proj_bias`` (E,) (torch's ``out_proj.weight`` / ``out_proj.bias``). Init as torch:
    xavier-uniform in_proj_weight, zero biases, out_proj_weight U(-1/sqrt(E), 1/sqrt(E)).

    Shape:
        query (N, L, E), key and value (N, S, E); output (N, L, E).

    Example:
        >>> x = Tensor.randn(2, 10, 32)
        >>> MultiHeadAttention(32, 4)(x, is_causal=True).shape
        (2, 10, 32)
    """

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, batch_first=True,
                 causal=False, name=None):
        super().__init__(name=name)
        embed_dim, num_heads = int(embed_dim), int(num_heads)
        if embed_dim <= 0 or num_heads <= 0 or embed_dim % num_heads:
            raise ValueError(f"MultiHeadAttention: embed_dim ({embed_dim}) must be a positive "
                             f"multiple of num_heads ({num_heads})")
        if not 0 <= dropout < 1:
            raise ValueError(f"MultiHeadAttention: dropout must be in [0, 1), got {dropout}")
        if not batch_first:
            raise ValueError("MultiHeadAttention: inputs are batch-first (N, L, E); "
                             "batch_first=False is not supported")
        self.embed_dim, self.num_heads, self.dropout = embed_dim, num_heads, float(dropout)
        self.use_bias, self.causal = bool(bias), bool(causal)
        E = embed_dim
        self.in_proj_weight = Tensor(uniform_((3 * E, E), math.sqrt(6.0 / (4 * E))),
                                     requires_grad=True)
        self.out_proj_weight = Tensor(uniform_((E, E), kaiming_uniform_bound(E)),
                                      requires_grad=True)
        self.in_proj_bias = Tensor(np.zeros(3 * E, np.float32), requires_grad=True) \
            if bias else None
        self.out_proj_bias = Tensor(np.zeros(E, np.float32), requires_grad=True) \
            if bias else None
        self.param_names = ("in_proj_weight", "in_proj_bias", "out_proj_weight", "out_proj_bias")

    def __call__(self, query, key=None, value=None, key_padding_mask=None, attn_mask=None,
                 is_causal=None, need_weights=False):
        if need_weights:
            raise ValueError(f"{self!r}: need_weights=True is not supported; the layer returns "
                             f"the attention output only")
        qkv = (query,) if key is None else (query, key, key if value is None else value)
        masks, layouts = [], []
        # a float64 NumPy mask keeps its precision here (Layer.__call__ would make it float32);
        # forward casts it to the queries' dtype
        key_padding_mask, attn_mask = (Tensor(m, dtype=m.dtype) if isinstance(m, np.ndarray)
                                       else m for m in (key_padding_mask, attn_mask))
        if key_padding_mask is not None:
            masks.append(key_padding_mask)
            layouts.append("padding")
        if attn_mask is not None:
            masks.append(attn_mask)
            layouts.append("heads" if np.ndim(getattr(attn_mask, "data", attn_mask)) == 3
                           else "attn")
        self._n_qkv = len(qkv)
        return super().__call__(*qkv, *masks, n_qkv=len(qkv), layouts=tuple(layouts),
                                is_causal=self.causal if is_causal is None else bool(is_causal))

    def check_input(self, *xs):
        qkv = xs[:self._n_qkv]
        for x in qkv:
            if x.ndim != 3 or x.shape[-1] != self.embed_dim:
                raise self.output_shape_error(x, f"(batch, length, {self.embed_dim})")
        if len(qkv) == 3 and (qkv[1].shape != qkv[2].shape or qkv[0].shape[0] != qkv[1].shape[0]):
            raise ValueError(f"{self!r}: query {tuple(qkv[0].shape)}, key {tuple(qkv[1].shape)} "
                             f"and value {tuple(qkv[2].shape)} must share the batch size, and "
                             f"key and value their shape")

    def _project(self, x, rows):
        E = self.embed_dim
        w = apply(R.Narrow(index=(slice(rows * E, (rows + 1) * E),)), self.in_proj_weight)
        if self.in_proj_bias is None:
            return apply(nn.Linear(activation=None), x, w)
        b = apply(R.Narrow(index=(slice(rows * E, (rows + 1) * E),)), self.in_proj_bias)
        return apply(nn.Linear(activation=None), x, w, b)

    def forward(self, *xs, n_qkv=1, layouts=(), is_causal=False):
        E, h = self.embed_dim, self.num_heads
        inputs, masks = xs[:n_qkv], xs[n_qkv:]
        if n_qkv == 1:        # self-attention: one product for q, k and v
            params = (self.in_proj_weight,) if self.in_proj_bias is None else \
                (self.in_proj_weight, self.in_proj_bias)
            qkv = apply(nn.Linear(activation=None), inputs[0], *params)
            q, k, v = (apply(R.Narrow(index=(Ellipsis, slice(i * E, (i + 1) * E))), qkv)
                       for i in range(3))
        else:
            q, k, v = (self._project(x, i) for i, x in enumerate(inputs))
        q, k, v = (apply(A.SplitHeads(num_heads=h), t) for t in (q, k, v))
        masks = [m if m.dtype == np.bool_ or m.dtype == q.dtype else m.astype(q.dtype)
                 for m in masks]
        op = A.ScaledDotProductAttention(causal=is_causal, scale=None, dropout_p=self.dropout,
                                         module=self, bool_masks_drop=True, mask_layouts=layouts)
        o = apply(A.MergeHeads(num_heads=h), apply(op, q, k, v, *masks))
        params = (self.out_proj_weight,) if self.out_proj_bias is None else \
            (self.out_proj_weight, self.out_proj_bias)
        return apply(nn.Linear(activation=None), o, *params)

    def config(self):
        return {"embed_dim": self.embed_dim, "num_heads": self.num_heads,
                "dropout": self.dropout, "bias": self.use_bias, "causal": self.causal}

    def __repr__(self):
        return f"MultiHeadAttention({self.embed_dim}, num_heads={self.num_heads})"


MultiheadAttention = MultiHeadAttention
