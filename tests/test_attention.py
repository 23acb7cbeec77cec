"""scaled_dot_product_attention against torch.nn.functional's and MultiHeadAttention against
torch.nn.MultiheadAttention(batch_first=True) in float64: outputs and every gradient, with key
padding, causal and float masks, eagerly and inside a compiled Model; the finite-difference
check of the ops."""
import numpy as np
import pytest
import torch
from test_gradcheck import gradcheck
from torch_helpers import as_float64, close

import pynn
import pynn.functional as F
from pynn import Input, Model, Tensor
from pynn.layers import MultiHeadAttention
from pynn.ops import attention as A
from pynn.tensor import apply

TORCH_CHECKED_OPS = {"ScaledDotProductAttention", "SplitHeads", "MergeHeads"}
GRADCHECKED_OPS = {"ScaledDotProductAttention", "SplitHeads", "MergeHeads"}

rng = np.random.default_rng(0)


def T64(a, grad=True):
    return Tensor(a, requires_grad=grad, dtype=np.float64)


@pytest.mark.parametrize("mask", [None, "bool", "float", "causal"])
def test_sdpa_against_torch(mask):
    q, k, v = rng.standard_normal((2, 3, 5, 4)), rng.standard_normal((2, 3, 6, 4)), \
        rng.standard_normal((2, 3, 6, 7))
    m = None
    if mask == "bool":
        m = rng.random((5, 6)) > 0.4
        m[:, 0] = True                       # no fully masked row (torch gives NaN there)
    elif mask == "float":
        m = rng.standard_normal((2, 1, 5, 6))
    ts = [torch.tensor(a, requires_grad=True) for a in (q, k, v)]
    mt = None if m is None else torch.tensor(m, requires_grad=mask == "float")
    causal = mask == "causal"
    yt = torch.nn.functional.scaled_dot_product_attention(*ts, attn_mask=mt, is_causal=causal)
    g = rng.standard_normal(yt.shape)
    yt.backward(torch.from_numpy(g))
    ps = [T64(a) for a in (q, k, v)]
    mp = None if m is None else (Tensor(m) if mask == "bool" else T64(m))
    y = F.scaled_dot_product_attention(*ps, attn_mask=mp, is_causal=causal)
    y.backward(g)
    close("output", y, yt)
    for name, p, t in zip("qkv", ps, ts, strict=True):
        close(f"grad of {name}", p.grad, t.grad)
    if mask == "float":
        close("grad of the float mask", mp.grad, mt.grad)


def test_sdpa_scale_and_3d_inputs():
    q, k, v = (rng.standard_normal((2, 4, 3)) for _ in range(3))
    yt = torch.nn.functional.scaled_dot_product_attention(
        *(torch.tensor(a) for a in (q, k, v)), scale=0.3)
    close("output", F.scaled_dot_product_attention(*(T64(a) for a in (q, k, v)), scale=0.3), yt)


def test_the_causal_mask_follows_each_calls_length():
    """One op object (as a compiled plan keeps it) called at two lengths masks each correctly."""
    op = A.ScaledDotProductAttention(causal=True, scale=None)
    for length in (5, 8, 3):
        q, k, v = (rng.standard_normal((2, length, 4)) for _ in range(3))
        want = torch.nn.functional.scaled_dot_product_attention(
            *(torch.tensor(a) for a in (q, k, v)), is_causal=True)
        close(f"length {length}", op.forward(q, k, v), want)


def test_sdpa_in_a_model_with_a_causal_mask():
    q_in, k_in, v_in = Input((5, 4), dtype=np.float64), Input((5, 4), dtype=np.float64), \
        Input((5, 3), dtype=np.float64)
    model = Model([q_in, k_in, v_in], F.scaled_dot_product_attention(q_in, k_in, v_in,
                                                                      is_causal=True))
    q, k, v = rng.standard_normal((2, 5, 4)), rng.standard_normal((2, 5, 4)), \
        rng.standard_normal((2, 5, 3))
    ts = [torch.tensor(a, requires_grad=True) for a in (q, k, v)]
    yt = torch.nn.functional.scaled_dot_product_attention(*ts, is_causal=True)
    g = rng.standard_normal(yt.shape)
    yt.backward(torch.from_numpy(g))
    ps = [T64(a) for a in (q, k, v)]
    y = model(*ps)
    y.backward(g)
    close("output", y, yt)
    for name, p, t in zip("qkv", ps, ts, strict=True):
        close(f"grad of {name}", p.grad, t.grad)


E, HEADS, B, L, S = 8, 2, 3, 5, 6
TORCH_NAMES = {"in_proj_weight": "in_proj_weight", "in_proj_bias": "in_proj_bias",
               "out_proj_weight": "out_proj.weight", "out_proj_bias": "out_proj.bias"}


def make_mha(bias=True):
    pynn.manual_seed(0)
    mha = as_float64(MultiHeadAttention(E, HEADS, bias=bias))
    if bias:        # torch starts the biases at zero: random ones test their gradients
        mha.in_proj_bias.data[:] = rng.standard_normal(3 * E)
        mha.out_proj_bias.data[:] = rng.standard_normal(E)
    module = torch.nn.MultiheadAttention(E, HEADS, bias=bias, batch_first=True).double()
    with torch.no_grad():
        for name, tname in TORCH_NAMES.items():
            if getattr(mha, name) is not None:
                p = module
                for part in tname.split("."):
                    p = getattr(p, part)
                p.copy_(torch.from_numpy(getattr(mha, name).data))
    return mha, module


CASES = ["self", "cross", "key_padding", "causal", "float_mask_2d", "float_mask_3d",
         "float_key_padding", "no_bias"]


# a (N * heads, L, S) mask fixes the batch size, so it is no Model input: eager only
@pytest.mark.parametrize("case, mode", [(c, m) for c in CASES for m in ("eager", "model")
                                        if (c, m) != ("float_mask_3d", "model")])
def test_mha_against_torch(case, mode):
    mha, module = make_mha(bias=case != "no_bias")
    x, kv = rng.standard_normal((B, L, E)), rng.standard_normal((B, S, E))
    torch_kw, our_kw, masks = {}, {}, []
    if case == "key_padding":
        kpm = np.zeros((B, L), bool)
        kpm[0, 3:] = True
        kpm[2, 1] = True
        torch_kw = {"key_padding_mask": torch.from_numpy(kpm)}
        # inside a Model every input is float: the same mask as 0 / -inf
        masks = [np.where(kpm, -np.inf, 0.0)] if mode == "model" else [kpm]
        our_key = "key_padding_mask"
    elif case == "float_key_padding":
        fk = rng.standard_normal((B, L))
        torch_kw, masks, our_key = {"key_padding_mask": torch.from_numpy(fk)}, [fk], \
            "key_padding_mask"
    elif case == "causal":
        torch_kw = {"attn_mask": torch.from_numpy(np.triu(np.ones((L, L), bool), 1))}
        our_kw = {"is_causal": True}
    elif case.startswith("float_mask"):
        fm = rng.standard_normal((B * HEADS, L, L) if case.endswith("3d") else (L, L))
        torch_kw, masks, our_key = {"attn_mask": torch.from_numpy(fm)}, [fm], "attn_mask"
    xt, kvt = torch.tensor(x, requires_grad=True), torch.tensor(kv, requires_grad=True)
    cross = case == "cross"
    yt, _ = module(xt, kvt if cross else xt, kvt if cross else xt, need_weights=False,
                   **torch_kw)
    g = rng.standard_normal(yt.shape)
    yt.backward(torch.from_numpy(g))
    xp, kvp = T64(x), T64(kv)
    if mode == "eager":
        kw = dict(our_kw, **({our_key: masks[0]} if masks else {}))
        y = mha(xp, kvp, kvp, **kw) if cross else mha(xp, **kw)
    else:
        x_in = Input((L, E), dtype=np.float64)
        ins, args = [x_in], [xp]
        if cross:
            kv_in = Input((S, E), dtype=np.float64)
            out = mha(x_in, kv_in, kv_in)
            ins, args = [x_in, kv_in], [xp, kvp]
        elif masks:
            m_in = Input(masks[0].shape[1:], dtype=np.float64)
            if our_key == "attn_mask":      # an (L, S) mask has no batch dim: a constant
                out = mha(x_in, attn_mask=masks[0])
            else:
                out = mha(x_in, key_padding_mask=m_in)
                ins, args = [x_in, m_in], [xp, masks[0]]
        else:
            out = mha(x_in, **our_kw)
        y = Model(ins, out)(*args)
    y.backward(g)
    close("output", y, yt)
    close("grad of query", xp.grad, xt.grad)
    if cross:
        close("grad of key/value", kvp.grad, kvt.grad)
    for name, tname in TORCH_NAMES.items():
        if getattr(mha, name) is None:
            continue
        p = module
        for part in tname.split("."):
            p = getattr(p, part)
        close(f"grad of {name}", getattr(mha, name).grad, p.grad)


def test_mha_dropout_only_in_training_and_errors():
    pynn.manual_seed(0)
    mha = MultiHeadAttention(8, 2, dropout=0.5)
    x = Tensor.randn(2, 4, 8)
    mha.eval()
    a, b = mha(x).data, mha(x).data
    np.testing.assert_array_equal(a, b)
    mha.train()
    assert not np.allclose(mha(x).data, a)
    with pytest.raises(ValueError, match="multiple of num_heads"):
        MultiHeadAttention(10, 3)
    with pytest.raises(ValueError, match=r"MultiHeadAttention\(8, num_heads=2\).*\(2, 4, 6\)"):
        MultiHeadAttention(8, 2)(Tensor.randn(2, 4, 6))
    with pytest.raises(ValueError, match="batch-first"):
        MultiHeadAttention(8, 2, batch_first=False)


def test_mha_saves_and_loads(tmp_path):
    pynn.manual_seed(0)
    x_in = Input((4, 8))
    model = Model(x_in, MultiHeadAttention(8, 2, causal=True)(x_in))
    x = np.random.default_rng(0).standard_normal((2, 4, 8)).astype(np.float32)
    model.save(tmp_path / "m.pynn")
    loaded = pynn.load_model(tmp_path / "m.pynn")
    np.testing.assert_allclose(loaded.predict(x), model.predict(x), rtol=1e-5, atol=1e-6)
    # causal=True is is_causal=True on every call
    eager = MultiHeadAttention(8, 2)
    for p, q in zip(eager.parameters, model.layers[0].parameters, strict=True):
        p.data[...] = q.data
    np.testing.assert_allclose(eager(x, is_causal=True).data, model.predict(x), rtol=1e-5,
                               atol=1e-6)


def test_gradcheck_sdpa():
    q, k, v = rng.standard_normal((2, 3, 2)), rng.standard_normal((2, 4, 2)), \
        rng.standard_normal((2, 4, 3))
    m = rng.standard_normal((3, 4))
    gradcheck(lambda q, k, v, m: apply(A.ScaledDotProductAttention(causal=False, scale=None),
                                       q, k, v, m), q, k, v, m)
    gradcheck(lambda q, k, v: apply(A.ScaledDotProductAttention(causal=True, scale=0.7), q, k, v),
              q, k, v)


def test_gradcheck_heads():
    x = rng.standard_normal((2, 3, 4))
    gradcheck(lambda x: apply(A.SplitHeads(num_heads=2), x), x)
    gradcheck(lambda x: apply(A.MergeHeads(num_heads=2), x), rng.standard_normal((2, 2, 3, 2)))


def test_split_and_merge_heads_against_torch():
    x = rng.standard_normal((2, 3, 4))
    want = torch.tensor(x).reshape(2, 3, 2, 2).transpose(1, 2)
    split = apply(A.SplitHeads(num_heads=2), T64(x, grad=False))
    close("split", split, want)
    close("merge", apply(A.MergeHeads(num_heads=2), split), x)


def test_compiled_self_attention_gradients_stay_right_over_many_steps():
    # the q/k/v slices' gradient buffers are zeroed once and reused (Narrow.backward): every
    # step of one compiled model must still give torch's gradients of that step
    mha, module = make_mha()
    x_in = Input((L, E), dtype=np.float64)
    model = Model(x_in, mha(x_in))
    for step in range(3):
        x = rng.standard_normal((B, L, E))
        xt = torch.tensor(x, requires_grad=True)
        module.zero_grad()
        yt, _ = module(xt, xt, xt, need_weights=False)
        g = rng.standard_normal(yt.shape)
        yt.backward(torch.from_numpy(g))
        for p in mha.parameters:
            p.grad = None
        xp = T64(x)
        model(xp).backward(g)
        close(f"step {step}: grad of query", xp.grad, xt.grad)
        close(f"step {step}: grad of in_proj_weight", mha.in_proj_weight.grad,
              module.in_proj_weight.grad)
