"""Winograd F(2x2, 3x3) for a 3x3 conv fused with the 2x2 max-pool after it
(pynn.kernels.winograd, Conv2d's Winograd path): the kernels against the direct method
(im2col + product + pool) in float64, where the two agree to rounding; a compiled Model that
takes the path against the same Model with it turned off, and against PyTorch, in float32;
which convs take it; NaN; blocks and threads."""
import numpy as np
import pytest
import torch

import pynn
from pynn import Input, Model
from pynn.kernels import threads
from pynn.kernels.activation import ACT_NONE, ACT_RELU
from pynn.kernels.conv import col2im, im2col
from pynn.kernels.conv_pool import bias_act_maxpool2x2_backward, bias_act_maxpool2x2_forward
from pynn.kernels.winograd import (
    WEIGHT_TRANSFORM,
    tile_bases,
    winograd_input,
    winograd_input_adjoint,
    winograd_maxpool_grad,
    winograd_output,
    winograd_output_grad,
    winograd_output_maxpool,
)
from pynn.layers import Conv2d, Dense, Flatten, MaxPool2d
from pynn.losses import categorical_cross_entropy
from pynn.ops import nn as N


def _direct(x, w, b, act, ph, pw, gy):
    """Pooled output, argmax, and (gx, gw, gb) for the pooled gradient gy, by im2col."""
    n, C, H, W = x.shape
    O = w.shape[0]
    OH, OW = H + 2 * ph - 2, W + 2 * pw - 2
    cols = np.empty((C * 9, n * OH * OW), x.dtype)
    im2col(x, 3, 3, 1, 1, ph, pw, cols)
    z = w.reshape(O, -1) @ cols
    y = np.empty((n, O, OH // 2, OW // 2), x.dtype)
    idx = np.empty(y.shape, np.int32)
    bias_act_maxpool2x2_forward(z, b, act, OH, OW, y, idx, np.empty(OH * OW, x.dtype))
    gz, gb = np.empty_like(z), np.empty(b.shape, x.dtype)
    bias_act_maxpool2x2_backward(gy, y, idx, act, OH, OW, gz, gb)
    gx = np.empty_like(x)
    col2im(w.reshape(O, -1).T @ gz, 3, 3, 1, 1, ph, pw, gx)
    return y, idx, gx, (gz @ cols.T).reshape(w.shape), gb


def _winograd(x, w, b, act, ph, pw, gy):
    """The same through the Winograd kernels, as Conv2d's Winograd path calls them."""
    n, C, H, W = x.shape
    O = w.shape[0]
    OH, OW = H + 2 * ph - 2, W + 2 * pw - 2
    TH, TW = OH // 2, OW // 2
    T = n * TH * TW
    U = (WEIGHT_TRANSFORM @ w.reshape(O * C, 9).T).reshape(16, O, C).astype(x.dtype)
    D, V = np.empty((C * 16, T), x.dtype), np.empty((16, C, T), x.dtype)
    E = np.empty((17, T), x.dtype)
    im2col(x, 4, 4, 2, 2, ph, pw, D)
    winograd_input(D, V, E[:16])
    M = U @ V
    F = np.empty((12, O * T), x.dtype)
    bases = tile_bases(TH, TW, OW)
    y, idx = np.empty((n, O, TH, TW), x.dtype), np.empty((n, O, TH, TW), np.int32)
    winograd_output_maxpool(M, b, act, bases, OW, y, idx, F)
    Mg, gb = np.empty_like(M), np.empty(b.shape, x.dtype)
    winograd_maxpool_grad(gy, y, idx, act, bases, OW, Mg, gb, F)
    dU = Mg @ V.transpose(0, 2, 1)
    gw = (dU.reshape(16, O * C).T @ WEIGHT_TRANSFORM).reshape(w.shape)
    dV = U.transpose(0, 2, 1) @ Mg
    winograd_input_adjoint(dV, D, E)
    gx = np.empty_like(x)
    col2im(D, 4, 4, 2, 2, ph, pw, gx)
    return y, idx, gx, gw, gb


# (C, O, H, W, ph, pw, act, bias)
KERNEL_CASES = [
    (3, 5, 8, 6, 1, 1, ACT_RELU, True),
    (2, 4, 6, 10, 0, 0, ACT_NONE, True),
    (4, 3, 6, 4, 2, 2, ACT_RELU, False),
    (1, 2, 8, 6, 1, 0, ACT_NONE, False),          # asymmetric padding
    (5, 7, 2, 2, 1, 1, ACT_RELU, True),           # a single tile
]


@pytest.mark.parametrize("C, O, H, W, ph, pw, act, bias", KERNEL_CASES)
def test_kernels_equal_the_direct_method_in_float64(C, O, H, W, ph, pw, act, bias):
    rng = np.random.default_rng(C * 100 + H)
    x = rng.standard_normal((3, C, H, W))
    w = rng.standard_normal((O, C, 3, 3))
    b = rng.standard_normal(O) if bias else np.zeros(0)
    gy = rng.standard_normal((3, O, (H + 2 * ph - 2) // 2, (W + 2 * pw - 2) // 2))
    ref = _direct(x, w, b, act, ph, pw, gy)
    got = _winograd(x, w, b, act, ph, pw, gy)
    np.testing.assert_allclose(got[0], ref[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(got[1], ref[1])
    for name, g, r in zip(("gx", "gw", "gb"), got[2:], ref[2:]):
        scale = max(1.0, np.abs(r).max(initial=0))
        np.testing.assert_allclose(g, r, rtol=1e-12, atol=1e-12 * scale, err_msg=name)


def test_the_transforms_are_adjoint():
    """<winograd_input(D), V> == <D, winograd_input_adjoint(V)> for random D and V."""
    rng = np.random.default_rng(5)
    C, T = 3, 11
    D, dV = rng.standard_normal((C * 16, T)), rng.standard_normal((16, C, T))
    V, dD = np.empty((16, C, T)), np.empty((C * 16, T))
    winograd_input(D, V, np.empty((16, T)))
    winograd_input_adjoint(dV, dD, np.empty((17, T)))
    assert np.isclose((V * dV).sum(), (D * dD).sum(), rtol=1e-12)


def test_kernels_check_their_shapes():
    V = np.empty((16, 2, 5), np.float32)
    with pytest.raises(ValueError, match="winograd_input"):
        winograd_input(np.empty((16, 5), np.float32), V, np.empty((16, 5), np.float32))
    y = np.empty((1, 2, 2, 2), np.float32)
    with pytest.raises(ValueError, match="winograd_output_maxpool"):
        winograd_output_maxpool(np.empty((16, 2, 3), np.float32), np.zeros(0, np.float32),
                                ACT_RELU, tile_bases(2, 2, 4), 4, y, np.empty(y.shape, np.int32),
                                np.empty((12, 6), np.float32))


def _model(C=16, O=16, hw=8, **conv):
    pynn.manual_seed(7)
    x_in = Input((C, hw, hw))
    conv = Conv2d(C, O, 3, **{"padding": 1, "activation": "relu", **conv})
    h = Flatten()(MaxPool2d(2)(conv(x_in)))
    return Model(x_in, Dense(h.shape[1], 5, "softmax")(h))


def _convs(model):
    return [op for plan in model._plans.values() for op in plan.ops if isinstance(op, N.Conv2d)]


def _train_step(model, x, y):
    out = model(x)
    loss = categorical_cross_entropy(out, y)
    for p in model.parameters:
        p.grad = None
    loss.backward()
    return out.data.copy(), [p.grad.data.copy() for p in model.parameters]


@pytest.mark.parametrize("conv, hw", [({}, 8), ({"padding": 0}, 10), ({"bias": False}, 6),
                                      ({"activation": None}, 8)])
def test_a_model_on_winograd_equals_the_direct_method_in_float32(conv, hw, monkeypatch):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 16, hw, hw)).astype(np.float32)
    y = rng.integers(0, 5, 6)
    model = _model(hw=hw, **conv)
    out_w, grads_w = _train_step(model, x, y)
    assert [op.winograd for op in _convs(model)] == [True]
    monkeypatch.setattr(N.Conv2d, "WINOGRAD", False)
    model = _model(hw=hw, **conv)
    out_d, grads_d = _train_step(model, x, y)
    assert [op.winograd for op in _convs(model)] == [False]
    np.testing.assert_allclose(out_w, out_d, rtol=1e-5, atol=1e-7)
    for i, (gw, gd) in enumerate(zip(grads_w, grads_d)):
        np.testing.assert_allclose(gw, gd, rtol=1e-4, atol=1e-5 * np.abs(gd).max(),
                                   err_msg=f"parameter {i}")


def test_a_model_on_winograd_matches_torch():
    """The README CNN's second block (32 -> 64 channels on 14x14, ReLU, 2x2 pool) with its input
    gradient, in float32 against torch."""
    pynn.manual_seed(3)
    x_in = Input((32, 14, 14))
    conv = Conv2d(32, 64, 3, padding=1, activation="relu")
    model = Model(x_in, MaxPool2d(2)(conv(x_in)))
    x = np.random.default_rng(2).standard_normal((8, 32, 14, 14)).astype(np.float32)
    g = np.random.default_rng(3).standard_normal((8, 64, 7, 7)).astype(np.float32)
    xt = pynn.Tensor(x, requires_grad=True)
    out = model(xt)
    out.backward(pynn.Tensor(g))
    assert [op.winograd for op in _convs(model)] == [True]
    tx = torch.tensor(x, requires_grad=True)
    tw = torch.tensor(conv.weight.data, requires_grad=True)
    tb = torch.tensor(conv.bias.data, requires_grad=True)
    F = torch.nn.functional
    ty = F.max_pool2d(torch.relu(F.conv2d(tx, tw, tb, padding=1)), 2)
    ty.backward(torch.tensor(g))
    np.testing.assert_allclose(out.data, ty.detach().numpy(), rtol=1e-5, atol=1e-5)
    for got, want in [(xt.grad.data, tx.grad), (conv.weight.grad.data, tw.grad),
                      (conv.bias.grad.data, tb.grad)]:
        want = want.numpy()
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * np.abs(want).max())


@pytest.mark.parametrize("conv, C, hw, dtype, expected", [
    ({}, 16, 8, np.float32, True),
    ({}, 8, 8, np.float32, False),                   # too few channels: im2col
    ({}, 16, 7, np.float32, False),                  # odd output
    ({"stride": 2}, 16, 8, np.float32, False),
    ({"dilation": 2, "padding": 2}, 16, 8, np.float32, False),
    ({"groups": 2}, 16, 8, np.float32, False),
    ({}, 16, 8, np.float64, False),                  # float64 keeps the direct method
])
def test_which_convs_take_the_winograd_path(conv, C, hw, dtype, expected):
    pynn.manual_seed(0)
    x_in = Input((C, hw, hw), dtype=dtype)
    layer = Conv2d(C, 16, 3, **{"padding": 1, "activation": "relu", **conv})
    h = MaxPool2d(2)(layer(x_in))
    model = Model(x_in, Flatten()(h))
    if dtype == np.float64:
        for p in model.parameters:
            p.data = p.data.astype(np.float64)
    model.predict(np.zeros((2, C, hw, hw), dtype))
    assert [op.winograd for op in _convs(model)] == [expected]


def test_an_unfused_conv_with_few_channel_pairs_keeps_im2col():
    """Eagerly (no plan, so no fused pool), and when the conv's output feeds more than the
    pool, a conv of 16 -> 16 channels (256 pairs, under WINOGRAD_UNPOOLED_MIN_PAIRS) keeps
    the direct method."""
    pynn.manual_seed(0)
    layer = Conv2d(16, 16, 3, padding=1)
    x = np.zeros((2, 16, 8, 8), np.float32)
    out = layer(pynn.Tensor(x))
    assert out.grad_fn is None or not getattr(out.grad_fn.op, "winograd", False)
    x_in = Input((16, 8, 8))
    h = layer(x_in)
    model = Model(x_in, [MaxPool2d(2)(h), h])
    model.predict(x)
    assert {op.winograd for op in _convs(model)} == {False}


@pytest.mark.parametrize("conv, C, hw, expected", [
    ({}, 32, 8, True),                                # 32 x 64 pairs, as the README CNN's conv2
    ({"activation": None, "bias": False}, 32, 8, True),
    ({"padding": 0}, 32, 10, True),
    ({}, 32, 7, False),                               # odd output
    ({"activation": "tanh"}, 32, 8, False),           # only identity and ReLU are fused
    ({}, 16, 8, False),                               # 16 x 64 pairs: too few
])
def test_unpooled_convs_with_many_channel_pairs_take_it(conv, C, hw, expected):
    """Without a pool after it (eagerly, too) a conv that qualifies runs Winograd; compiled and
    eager give the same results, and torch's to float32 rounding."""
    pynn.manual_seed(0)
    layer = Conv2d(C, 64, 3, **{"padding": 1, "activation": "relu", **conv})
    x_in = Input((C, hw, hw))
    model = Model(x_in, layer(x_in))
    rng = np.random.default_rng(6)
    x = rng.standard_normal((3, C, hw, hw)).astype(np.float32)
    g = rng.standard_normal(model.predict(x).shape).astype(np.float32)
    results = []
    for run in (lambda t: model(t), lambda t: layer(t)):         # compiled, then eager
        xt = pynn.Tensor(x, requires_grad=True)
        for p in layer.parameters():
            p.grad = None
        out = run(xt)
        ops = [out.grad_fn.op] if out.grad_fn.op.__class__ is N.Conv2d else _convs(model)
        assert {op.winograd for op in ops} == {expected}
        out.backward(pynn.Tensor(g))
        results.append([out.data.copy(), xt.grad.data.copy()]
                       + [p.grad.data.copy() for p in layer.parameters()])
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)
    tx = torch.tensor(x, requires_grad=True)
    tw = torch.tensor(layer.weight.data, requires_grad=True)
    tb = torch.tensor(layer.bias.data, requires_grad=True) if layer.bias is not None else None
    ty = torch.nn.functional.conv2d(tx, tw, tb, padding=layer.padding)
    act = {"relu": torch.relu, "tanh": torch.tanh}.get(layer.activation)
    ty = act(ty) if act else ty
    ty.backward(torch.tensor(g))
    want = [ty.detach(), tx.grad, tw.grad] + ([tb.grad] if tb is not None else [])
    for got, w in zip(results[0], want):
        w = w.numpy()
        np.testing.assert_allclose(got, w, rtol=1e-4, atol=1e-5 * np.abs(w).max())


def test_nan_in_a_patch_gives_nan_in_its_window():
    pynn.manual_seed(0)
    x = np.random.default_rng(0).standard_normal((2, 16, 8, 8)).astype(np.float32)
    x[1, 3, 5, 2] = np.nan
    x_in = Input((16, 8, 8))
    probe = Model(x_in, MaxPool2d(2)(Conv2d(16, 16, 3, padding=1, activation="relu")(x_in)))
    y = probe.predict(x)
    assert [op.winograd for op in _convs(probe)] == [True]
    nan = np.isnan(y)
    # input row 5, column 2 lies in the 3x3 fields of outputs rows 4..6, columns 1..3: windows
    # (2, 0), (2, 1), (3, 0), (3, 1) of every output channel of image 1, and nothing else
    expected = np.zeros_like(nan)
    expected[1, :, 2:4, 0:2] = True
    np.testing.assert_array_equal(nan, expected)


@pytest.mark.parametrize("block_bytes", [1, 1 << 30])
def test_blocks_and_threads_give_the_same_result(block_bytes, monkeypatch):
    """One image per block (block_bytes 1) or the whole slice in one block, on one thread or
    split across two. With one image per block both runs make the same products, so the
    outputs are the same bit for bit; with whole slices the two threads' products have half the
    rows of the one thread's, and BLAS need not round each entry the same way for another row
    count (the kernels OpenBLAS chose on the hosts of earlier runs did; its Haswell kernels,
    its choice on a Zen 5, do not), so the outputs agree to float32 rounding, as the weight
    gradients always do (the per-slice sums add in another order)."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((8, 16, 8, 8)).astype(np.float32)
    y = rng.integers(0, 5, 8)
    monkeypatch.setattr(N.Conv2d, "WINOGRAD_BLOCK_BYTES", block_bytes)
    monkeypatch.setattr(threads, "MIN_WORK", 1)
    results = []
    before = threads.get_num_threads()
    for n in (1, 2):
        threads.set_num_threads(n)
        try:
            results.append(_train_step(_model(), x, y))
        finally:
            threads.set_num_threads(before)
    (out1, g1), (out2, g2) = results
    if block_bytes == 1:
        np.testing.assert_array_equal(out1, out2)
    else:
        np.testing.assert_allclose(out2, out1, rtol=1e-5, atol=1e-6 * np.abs(out1).max())
    for a, b in zip(g1, g2):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6 * np.abs(b).max())


def test_a_frozen_winograd_conv_still_passes_its_input_gradient(monkeypatch):
    """trainable = False: no weight gradient is made (the patches are not transformed again),
    and the input gradient is still the direct method's."""
    rng = np.random.default_rng(8)
    x = rng.standard_normal((4, 16, 8, 8)).astype(np.float32)
    results = []
    for on in (True, False):
        monkeypatch.setattr(N.Conv2d, "WINOGRAD", on)
        pynn.manual_seed(9)
        x_in = Input((16, 8, 8))
        h = Conv2d(16, 16, 1)(x_in)
        conv = Conv2d(16, 16, 3, padding=1, activation="relu")
        conv.trainable = False
        model = Model(x_in, Dense(256, 5, "softmax")(Flatten()(MaxPool2d(2)(conv(h)))))
        out, grads = _train_step(model, x, np.arange(4) % 5)
        assert [op.winograd for op in _convs(model)] == [False, on]
        assert conv.weight.grad is None
        results.append((out, grads))
    (out_w, g_w), (out_d, g_d) = results
    np.testing.assert_allclose(out_w, out_d, rtol=1e-5, atol=1e-7)
    for a, b in zip(g_w, g_d):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * np.abs(b).max())


def _direct_unpooled(x, w, b, act, ph, pw, g):
    """Conv output, and (gx, gw, gb) for its gradient g, by im2col."""
    n, C, H, W = x.shape
    O = w.shape[0]
    OH, OW = H + 2 * ph - 2, W + 2 * pw - 2
    cols = np.empty((C * 9, n * OH * OW), x.dtype)
    im2col(x, 3, 3, 1, 1, ph, pw, cols)
    z = (w.reshape(O, -1) @ cols).reshape(O, n, OH, OW).transpose(1, 0, 2, 3)
    z = z + (b.reshape(1, -1, 1, 1) if b.size else 0)
    y = np.maximum(z, 0) if act == ACT_RELU else z
    gz = g * (y > 0) if act == ACT_RELU else g
    gz2 = gz.transpose(1, 0, 2, 3).reshape(O, -1)
    gx = np.empty_like(x)
    col2im(w.reshape(O, -1).T @ gz2, 3, 3, 1, 1, ph, pw, gx)
    gb = gz.sum(axis=(0, 2, 3)) if b.size else b
    return y, gx, (gz2 @ cols.T).reshape(w.shape), gb


def _winograd_unpooled(x, w, b, act, ph, pw, g):
    n, C, H, W = x.shape
    O = w.shape[0]
    OH, OW = H + 2 * ph - 2, W + 2 * pw - 2
    T = n * (OH // 2) * (OW // 2)
    U = (WEIGHT_TRANSFORM @ w.reshape(O * C, 9).T).reshape(16, O, C)
    D, V, E = np.empty((C * 16, T)), np.empty((16, C, T)), np.empty((17, T))
    im2col(x, 4, 4, 2, 2, ph, pw, D)
    winograd_input(D, V, E[:16])
    F = np.empty((12, O * T))
    y = np.empty((n, O, OH, OW))
    winograd_output(U @ V, b, act, y, F)
    Mg, gb = np.empty((16, O, T)), np.empty(b.shape)
    winograd_output_grad(g, y, act, Mg, gb, F)
    gw = ((Mg @ V.transpose(0, 2, 1)).reshape(16, O * C).T @ WEIGHT_TRANSFORM).reshape(w.shape)
    winograd_input_adjoint(U.transpose(0, 2, 1) @ Mg, D, E)
    gx = np.empty_like(x)
    col2im(D, 4, 4, 2, 2, ph, pw, gx)
    return y, gx, gw, gb


# (C, O, H, W, ph, pw, act, bias)
UNPOOLED_CASES = [
    (3, 5, 8, 6, 1, 1, ACT_RELU, True),
    (2, 4, 6, 10, 0, 0, ACT_NONE, False),         # 'valid', 4x8
    (3, 2, 4, 6, 2, 1, ACT_NONE, True),           # 6x6, asymmetric padding
    (2, 2, 2, 2, 1, 1, ACT_RELU, True),           # a single tile
]


@pytest.mark.parametrize("C, O, H, W, ph, pw, act, bias", UNPOOLED_CASES)
def test_unpooled_kernels_equal_the_direct_method_in_float64(C, O, H, W, ph, pw, act, bias):
    rng = np.random.default_rng(C * 10 + H * W)
    x = rng.standard_normal((3, C, H, W))
    w = rng.standard_normal((O, C, 3, 3))
    b = rng.standard_normal(O) if bias else np.zeros(0)
    g = rng.standard_normal((3, O, H + 2 * ph - 2, W + 2 * pw - 2))
    ref = _direct_unpooled(x, w, b, act, ph, pw, g)
    got = _winograd_unpooled(x, w, b, act, ph, pw, g)
    for name, a, r in zip(("y", "gx", "gw", "gb"), got, ref):
        scale = max(1.0, np.abs(r).max(initial=0))
        np.testing.assert_allclose(a, r, rtol=1e-12, atol=1e-12 * scale, err_msg=name)
