"""A compiled Model fuses Conv2d (identity or ReLU) with the 2x2 MaxPool2d after it
(pynn.kernels.conv_pool): the fused plan must give the unfused eager layers' outputs and
gradients, and fuse only where the conv's output feeds nothing but that pool."""
import numpy as np
import pytest
from torch_helpers import as_float64_model

import pynn
from pynn import Input, Model, Tensor
from pynn.layers import Conv2d, Dense, Flatten, MaxPool2d
from pynn.losses import categorical_cross_entropy
from pynn.ops import nn as N


def _apply(layers, x):
    for layer in layers:
        x = layer(x)
    return x


def _fused_convs(model):
    return [op for plan in model._plans.values() for op in plan.ops
            if isinstance(op, N.Conv2d) and op.pool is not None]


def _run(fn, layers, params, x, y):
    xt = Tensor(x, requires_grad=True, dtype=x.dtype)
    out = fn(xt)
    loss = categorical_cross_entropy(out, y)
    for p in params:
        p.grad = None
    loss.backward()
    return out.data.copy(), xt.grad.data.copy(), [p.grad.data.copy() for p in params]


# (conv kwargs, input shape (C, H, W), batch)
CASES = [
    (dict(activation="relu", padding=1), (2, 8, 8), 5),
    (dict(activation=None, padding=0), (3, 9, 7), 4),           # odd conv output: floor mode
    (dict(activation="relu", bias=False, stride=2, padding=2), (1, 11, 10), 3),
    (dict(activation="relu", groups=2, padding=1, dilation=2), (4, 10, 9), 2),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("conv_kwargs, shape, batch", CASES)
def test_fused_plan_equals_unfused_eager_layers(conv_kwargs, shape, batch, dtype, monkeypatch):
    # small blocks, so that the block loop of the fused forward and backward runs several times
    monkeypatch.setattr(N.Conv2d, "BLOCK_BYTES", 2048)
    pynn.manual_seed(3)
    layers = [Conv2d(shape[0], 4, 3, **conv_kwargs), MaxPool2d(2), Flatten()]
    x_in = Input(shape, dtype=dtype)
    h = _apply(layers, x_in)
    layers.append(Dense(h.shape[1], 3, "softmax"))
    model = Model(x_in, layers[-1](h))
    if dtype == np.float64:
        as_float64_model(model)
    params = model.parameters
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch,) + shape).astype(dtype)
    x[0, 0, :3, :3] = 0.0                       # ties inside pooling windows
    y = rng.integers(0, 3, batch)
    out_c, gx_c, grads_c = _run(model, layers, params, x, y)
    assert len(_fused_convs(model)) == 1
    out_e, gx_e, grads_e = _run(lambda t: _apply(layers, t), layers, params, x, y)
    np.testing.assert_array_equal(out_c, out_e)
    np.testing.assert_array_equal(gx_c, gx_e)
    tol = 1e-6 if dtype == np.float32 else 1e-13     # the bias sum adds in another order
    for i, (gc, ge) in enumerate(zip(grads_c, grads_e)):
        np.testing.assert_allclose(gc, ge, rtol=tol, atol=tol * np.abs(ge).max(),
                                   err_msg=f"parameter {i}")


def test_fused_inference_equals_eager_and_nan_propagates():
    pynn.manual_seed(4)
    layers = [Conv2d(1, 3, 3, padding=1, activation="relu"), MaxPool2d(2), Flatten()]
    x_in = Input((1, 6, 6))
    model = Model(x_in, _apply(layers, x_in))
    x = np.random.default_rng(1).standard_normal((4, 1, 6, 6)).astype(np.float32)
    x[1, 0, 2, 2] = np.nan
    pred = model.predict(x, batch_size=4)
    assert len(_fused_convs(model)) == 1
    expected = _apply(layers, Tensor(x)).data
    np.testing.assert_array_equal(pred, expected)       # equal NaNs included
    assert np.isnan(pred[1]).any() and not np.isnan(pred[0]).any()


@pytest.mark.parametrize("case", ["conv output is a model output", "second reader",
                                  "tanh", "3x3 pool", "stride-1 pool"])
def test_no_fusion_where_it_would_change_the_model(case):
    pynn.manual_seed(5)
    x_in = Input((2, 8, 8))
    conv = Conv2d(2, 3, 3, padding=1, activation="tanh" if case == "tanh" else "relu")
    pool = {"3x3 pool": MaxPool2d(3), "stride-1 pool": MaxPool2d(2, stride=1)}.get(case,
                                                                                  MaxPool2d(2))
    c = conv(x_in)
    p = pool(c)
    outputs = [p, c] if case == "conv output is a model output" else p
    if case == "second reader":
        outputs = [p, c * 2.0]
    model = Model(x_in, outputs)
    x = np.random.default_rng(2).standard_normal((3, 2, 8, 8)).astype(np.float32)
    got = model(x)
    got = got if isinstance(got, list) else [got]
    assert _fused_convs(model) == []
    want = [pool(conv(Tensor(x)))]
    if case == "conv output is a model output":
        want.append(conv(Tensor(x)))
    if case == "second reader":
        want.append(conv(Tensor(x)) * 2.0)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g.data, w.data)
