"""The compiled plan's attention fusion (pynn.plan._fuse_attention): multi-head self-attention
reads q, k and v as views of its one projection and writes the merged layout itself. The fused
plan must give the unfused eager layer's values and gradients, with masks and dropout, over
several steps; and it must not fuse where an intermediate is read by anything else."""
import numpy as np
import pytest
from torch_helpers import as_float64

import pynn
from pynn import Input, Model, Tensor
from pynn.graphviz import draw
from pynn.layers import Dense, LayerNorm, MultiHeadAttention
from pynn.ops import attention as A
from pynn.ops import recurrent as R
from pynn.tensor import apply

B, L, E, HEADS = 3, 5, 8, 2


def _plan_ops(model):
    return [op for plan in model._plans.values() for op in plan.ops]


def _fused(model):
    return [op for op in _plan_ops(model)
            if isinstance(op, A.ScaledDotProductAttention) and op.packed_heads]


def _block(dropout=0.0, causal=False, dtype=np.float32):
    pynn.manual_seed(0)
    layers = [LayerNorm(E), MultiHeadAttention(E, HEADS, dropout=dropout, causal=causal),
              Dense(E, 4)]
    return [as_float64(layer) for layer in layers] if dtype == np.float64 else layers


def _forward(layers, x, kpm=None):
    h = layers[1](layers[0](x), key_padding_mask=kpm) if kpm is not None else \
        layers[1](layers[0](x))
    return layers[2](h + x)


def _grads(layers, out, xt, g):
    params = [p for layer in layers for p in layer.parameters]
    for p in params:
        p.grad = None
    out.backward(g)
    return [out.data.copy(), xt.grad.data.copy()] + [p.grad.data.copy() for p in params]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", ["plain", "causal", "key_padding", "dropout"])
def test_fused_plan_equals_the_unfused_eager_layers(dtype, case):
    layers = _block(dropout=0.3 if case == "dropout" else 0.0, causal=case == "causal",
                    dtype=dtype)
    x_in = Input((L, E), dtype=dtype)
    inputs, kpm_in = [x_in], None
    if case == "key_padding":
        kpm_in = Input((L,), dtype=dtype)
        inputs.append(kpm_in)
    model = Model(inputs, _forward(layers, x_in, kpm_in))
    rng = np.random.default_rng(1)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-13)
    for step in range(3):                     # buffers reused: every step must still be right
        x = rng.standard_normal((B, L, E)).astype(dtype)
        g = rng.standard_normal((B, L, 4)).astype(dtype)
        kpm = np.where(rng.random((B, L)) < 0.3, -np.inf, 0.0).astype(dtype)
        kpm[:, 0] = 0.0                        # every row keeps a key
        args = [x] + ([kpm] if case == "key_padding" else [])
        pynn.manual_seed(step)
        xt = Tensor(x, requires_grad=True, dtype=dtype)
        compiled = _grads(layers, model(xt, *args[1:]), xt, g)
        pynn.manual_seed(step)
        xe = Tensor(x, requires_grad=True, dtype=dtype)
        eager = _grads(layers, _forward(layers, xe, args[1] if len(args) > 1 else None), xe, g)
        for i, (a, b) in enumerate(zip(compiled, eager)):
            np.testing.assert_allclose(a, b, err_msg=f"step {step}, array {i}", **tol)
    (op,) = _fused(model)
    assert op.packed_heads == HEADS and op.packed_embed == E
    passed = [type(o).__name__ for o in _plan_ops(model) if getattr(o, "fused", False)]
    assert sorted(passed) == ["MergeHeads", "Narrow", "Narrow", "Narrow",
                              "SplitHeads", "SplitHeads", "SplitHeads"]


def test_the_fused_plan_is_drawn_as_such():
    layers = _block()
    x_in = Input((L, E))
    model = Model(x_in, _forward(layers, x_in))
    model(np.zeros((B, L, E), np.float32))
    text = draw(model, plan=True)
    assert "ScaledDotProductAttention + head split and merge, fused" in text
    assert "SplitHeads (passed through: the attention reads the heads itself)" in text


def test_cross_attention_is_not_fused_and_still_right():
    pynn.manual_seed(0)
    mha = MultiHeadAttention(E, HEADS)
    q_in, kv_in = Input((L, E)), Input((L + 1, E))
    model = Model([q_in, kv_in], mha(q_in, kv_in, kv_in))
    rng = np.random.default_rng(0)
    q, kv = (rng.standard_normal(s).astype(np.float32) for s in ((B, L, E), (B, L + 1, E)))
    np.testing.assert_allclose(model(q, kv).data, mha(Tensor(q), Tensor(kv), Tensor(kv)).data,
                               rtol=1e-6, atol=1e-6)
    assert not _fused(model)


def _chain(qkv, extra):
    """q/k/v thirds of qkv, heads, attention and merge, op by op (on symbolic or eager
    tensors); `extra` adds a second reader of one intermediate (which must stop the fusion),
    or feeds q as k too. Returns the outputs."""
    thirds = [apply(R.Narrow(index=(Ellipsis, slice(i * E, (i + 1) * E))), qkv) for i in range(3)]
    heads = [apply(A.SplitHeads(num_heads=HEADS), t) for t in thirds]
    attend = heads if extra != "q is k" else [heads[0], heads[0], heads[2]]
    att = apply(A.ScaledDotProductAttention(causal=False, scale=None), *attend)
    outputs = [apply(A.MergeHeads(num_heads=HEADS), att)]
    if extra == "third read twice":
        outputs.append(thirds[1] * 2.0)
    elif extra == "heads are an output":
        outputs.append(heads[0])
    elif extra == "attention read twice":
        outputs.append(att * 1.0)
    return outputs


def _hand_built(extra):
    """A Model of _chain behind a Dense projection (4E wide for "projection wider than 3E")."""
    pynn.manual_seed(0)
    proj = Dense(E, 4 * E if extra == "projection wider than 3E" else 3 * E)
    x_in = Input((L, E))
    outputs = _chain(proj(x_in), extra)
    return Model(x_in, outputs if len(outputs) > 1 else outputs[0])


@pytest.mark.parametrize("extra", [None, "third read twice", "heads are an output",
                                   "attention read twice", "q is k", "projection wider than 3E"])
def test_no_fusion_where_an_intermediate_is_read_elsewhere(extra):
    model = _hand_built(extra)
    x = np.random.default_rng(0).standard_normal((B, L, E)).astype(np.float32)
    xt = Tensor(x, requires_grad=True)
    outs = model(xt)
    outs = outs if isinstance(outs, (list, tuple)) else [outs]
    assert bool(_fused(model)) == (extra is None)
    sum((o * o).sum() for o in outs).backward()
    # the same graph run eagerly, op by op, with the model's weights
    np.testing.assert_allclose(xt.grad.data, _eager_hand_built(model, x, extra),
                               rtol=1e-5, atol=1e-5)


def _eager_hand_built(model, x, extra):
    """The gradient of sum(outputs^2) w.r.t. x computed with eager ops and model's weights."""
    w, b = model.parameters
    xt = Tensor(x, requires_grad=True)
    sum((o * o).sum() for o in _chain(xt @ w.T + b, extra)).backward()
    return xt.grad.data
