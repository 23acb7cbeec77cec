"""Attention ops: scaled dot-product attention as one fused op, and the head split/merge of
multi-head attention.

Masks are read at run time from the arrays' shapes (the causal mask follows the real query and
key lengths of each call), so nothing about the sequence length is captured when a Model is
built. Batched matrix products go to BLAS through np.matmul into reused buffers.
"""
import math

import numpy as np

from ..kernels.softmax import softmax_backward_rows, softmax_rows
from ..random import rng
from .base import Op, unbroadcast


class ScaledDotProductAttention(Op):
    """softmax(q @ k^T * scale + mask) @ v over the last two dims, batched over the leading ones.

    Inputs q (..., L, E), k (..., S, E), v (..., S, Ev), then any number of masks, each
    broadcastable to (..., L, S): a boolean mask keeps the scores where it is True (torch's
    scaled_dot_product_attention) unless attr ``bool_masks_drop`` is true (torch.nn.
    MultiheadAttention: True = not allowed); a float mask is added to the scores. attrs: causal
    (mask out key j > query i, top-left aligned as torch's is_causal), scale (None: 1/sqrt(E)),
    dropout_p and module (dropout on the attention weights while module.training, or always
    when module is None, as the functional form), mask_layouts (per mask: "attn" broadcasts as
    is; "padding" is a (N, S) key padding mask, read as (N, 1, 1, S); "heads" is (N*h, L, S)
    read as (N, h, L, S)).

    In a compiled Model the plan may fuse multi-head self-attention's head split and merge
    into this op (``fuse_packed``, see ``pynn.plan``): it then reads q, k and v as strided
    views of the one (N, L, 3E) projection, writes its output straight in the merged (N, L, E)
    layout, and returns d/dq, d/dk and d/dv in one (N, L, 3E) gradient.

    Derivative: with p = softmax(s) and pd = p * dropout mask, d/dv = pd^T @ g,
    dp = (g @ v^T) * dropout mask, ds = p * (dp - sum(dp * p, -1)), d/dq = ds @ k * scale,
    d/dk = ds^T @ q * scale, d/d(float mask) = ds (summed to the mask's shape); boolean masks
    have no gradient."""
    packed_heads = 0        # > 0 once fuse_packed(): the heads of the packed (N, L, 3E) input

    def fuse_packed(self, num_heads, embed_dim):
        """From now on, read q, k and v from the (N, L, 3 * embed_dim) projection that the
        fused Narrow and SplitHeads ops pass through, as `num_heads` heads each, and write the
        output merged, (N, L, embed_dim), which the fused MergeHeads passes on."""
        self.packed_heads, self.packed_embed = num_heads, embed_dim

    def _heads(self, x, parts):
        """The (N, h, L, d) strided views of the `parts` thirds ... of x (N, L, parts * E)."""
        N, L, _ = x.shape
        h = self.packed_heads
        split = x.reshape(N, L, parts, h, self.packed_embed // h)
        return [split[:, :, i].transpose(0, 2, 1, 3) for i in range(parts)]

    def _mask(self, m, layout, shape):
        if layout == "padding":
            return m.reshape(m.shape[0], *([1] * (len(shape) - 2)), m.shape[-1])
        if layout == "heads" and m.ndim == 3 and len(shape) == 4:
            return m.reshape(shape[0], -1, m.shape[1], m.shape[2])
        return m

    def forward(self, q, k, v, *masks):
        packed = self.packed_heads
        if packed:
            if q.ndim != 3 or q.shape[-1] != 3 * self.packed_embed:
                raise ValueError(f"fused attention: expected the (batch, length, "
                                 f"{3 * self.packed_embed}) q/k/v projection, got {q.shape}")
            merged = self.buffer("merged", q.shape[:2] + (self.packed_embed,), q.dtype)
            q, k, v = self._heads(q, 3)
        E, L, S = q.shape[-1], q.shape[-2], k.shape[-2]
        # a Python float: a NumPy float64 scalar would run float32 scores in float64
        scale = 1.0 / math.sqrt(E) if self.attrs.get("scale") is None else float(self.scale)
        lead = np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
        s = self.buffer("s", lead + (L, S), q.dtype)
        np.matmul(q, np.swapaxes(k, -1, -2), out=s)
        s *= scale
        layouts = self.attrs.get("mask_layouts") or ("attn",) * len(masks)
        self.mask_shapes = []
        for m, layout in zip(masks, layouts, strict=True):
            m = self._mask(m, layout, s.shape)
            if m.dtype == np.bool_:
                drop = m if self.attrs.get("bool_masks_drop", False) else ~m
                np.copyto(s, -np.inf, where=np.broadcast_to(drop, s.shape))
                self.mask_shapes.append(None)
            else:
                s += m
                self.mask_shapes.append(m.shape)
        # softmax in place over the last axis (row kernels around NumPy's SIMD exp), the
        # causal mask (-inf where key j > query i, top-left aligned) applied by the first
        p = softmax_rows(s, L, bool(self.attrs.get("causal", False)))
        self.drop = None
        dropout_p = self.attrs.get("dropout_p", 0.0)
        module = self.attrs.get("module")
        if dropout_p > 0 and (module is None or module.training):
            u = self.buffer("u", p.shape, p.dtype)
            rng().random(out=u, dtype=u.dtype)
            self.drop = self.buffer("drop", p.shape, p.dtype)
            np.greater_equal(u, dropout_p, out=self.drop, casting="unsafe")
            self.drop *= 1.0 / (1.0 - dropout_p)
            pd = np.multiply(p, self.drop, out=u)
        else:
            pd = p
        self.q, self.k, self.v, self.p, self.pd, self.scale_used = q, k, v, p, pd, scale
        if packed:
            np.matmul(pd, v, out=self._heads(merged, 1)[0])
            return merged
        out = self.buffer("out", lead + (L, v.shape[-1]), q.dtype)
        np.matmul(pd, v, out=out)
        return out

    def backward(self, g):
        if self.packed_heads:
            return self._packed_backward(g)
        q, k, v, pd = self.q, self.k, self.v, self.pd
        gv = unbroadcast(_matmul(self, "gv", np.swapaxes(pd, -1, -2), g), v.shape) \
            if self.needs(2) else None
        ds, grads_masks = self._ds(g, v)
        gq = gk = None
        if self.needs(0):
            gq = _matmul(self, "gq", ds, k)
            gq *= self.scale_used
            gq = unbroadcast(gq, q.shape)
        if self.needs(1):
            gk = _matmul(self, "gk", np.swapaxes(ds, -1, -2), q)
            gk *= self.scale_used
            gk = unbroadcast(gk, k.shape)
        return (gq, gk, gv, *grads_masks)

    def _ds(self, g, v):
        """d(loss)/d(scores) from the output gradient g (..., L, Ev), in the buffer "dp"; and
        the float masks' gradients."""
        p = self.p
        dp = self.buffer("dp", p.shape, g.dtype)
        np.matmul(g, np.swapaxes(v, -1, -2), out=dp)
        if self.drop is not None:
            dp *= self.drop
        if p.dtype == dp.dtype:
            softmax_backward_rows(dp.reshape(-1, p.shape[-1]), p.reshape(-1, p.shape[-1]))
        else:
            dp -= np.sum(dp * p, axis=-1, keepdims=True)
            dp *= p
        # masked entries have p = 0, so ds is 0 there (no NaN from -inf: p is exactly 0)
        grads_masks = [None if shape is None or not self.needs(3 + i)
                       else unbroadcast(dp, shape).reshape(shape).copy()
                       for i, shape in enumerate(self.mask_shapes)]
        return dp, grads_masks

    def _packed_backward(self, g):
        """The fused form's backward: g (N, L, E) merged; d/dq, d/dk, d/dv written into the
        thirds of one (N, L, 3E) gradient, returned as the first input's (the other two
        inputs are the same projection: they get None, so it is not added three times)."""
        q, k, v, pd = self.q, self.k, self.v, self.pd
        (g,) = self._heads(g, 1)
        N, L = g.shape[0], g.shape[2]
        gqkv = self.buffer("g_qkv", (N, L, 3 * self.packed_embed), g.dtype)
        gq, gk, gv = self._heads(gqkv, 3)
        np.matmul(np.swapaxes(pd, -1, -2), g, out=gv)
        ds, grads_masks = self._ds(g, v)
        np.matmul(ds, k, out=gq)
        gq *= self.scale_used
        np.matmul(np.swapaxes(ds, -1, -2), q, out=gk)
        gk *= self.scale_used
        return (gqkv, None, None, *grads_masks)


def _matmul(op, key, a, b):
    """a @ b over stacks of matrices, into op's buffer `key` (NumPy's own result for mixed
    dtypes)."""
    if a.dtype != b.dtype:
        return np.matmul(a, b)
    shape = np.broadcast_shapes(a.shape[:-2], b.shape[:-2]) + (a.shape[-2], b.shape[-1])
    return np.matmul(a, b, out=op.buffer(key, shape, a.dtype))


class SplitHeads(Op):
    """(N, L, h*d) -> (N, h, L, d): the heads of multi-head attention as a batch dim, copied
    contiguous. attrs: num_heads.

    attr ``fused`` (set by the plan, see ScaledDotProductAttention.fuse_packed): the attention
    after it reads the heads itself, and this op passes values and gradients through.

    Derivative: d/dx = g moved back from (N, h, L, d) to (N, L, h*d)."""
    fused = False

    def forward(self, x):
        if self.fused:
            return x
        N, L, E = x.shape
        h = self.num_heads
        y = self.buffer("y", (N, h, L, E // h), x.dtype)
        np.copyto(y, x.reshape(N, L, h, E // h).transpose(0, 2, 1, 3))
        return y

    def backward(self, g):
        if self.fused:
            return (g,)
        N, h, L, d = g.shape
        gx = self.buffer("gx", (N, L, h * d), g.dtype)
        np.copyto(gx.reshape(N, L, h, d), g.transpose(0, 2, 1, 3))
        return (gx,)


class MergeHeads(Op):
    """(N, h, L, d) -> (N, L, h*d), the inverse of SplitHeads.

    attr ``fused``: the attention before it writes the merged layout itself, and this op passes
    values and gradients through.

    Derivative: d/dx = g moved back from (N, L, h*d) to (N, h, L, d)."""
    fused = False

    def forward(self, x):
        if self.fused:
            return x
        N, h, L, d = x.shape
        y = self.buffer("y", (N, L, h * d), x.dtype)
        np.copyto(y.reshape(N, L, h, d), x.transpose(0, 2, 1, 3))
        return y

    def backward(self, g):
        if self.fused:
            return (g,)
        N, L, E = g.shape
        h = self.attrs["num_heads"]
        gx = self.buffer("gx", (N, h, L, E // h), g.dtype)
        np.copyto(gx, g.reshape(N, L, h, E // h).transpose(0, 2, 1, 3))
        return (gx,)
