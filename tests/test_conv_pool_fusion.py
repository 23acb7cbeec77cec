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


# -- building a model compiles only what its plan runs (Op.placeholder) -----------------------

def test_placeholders_of_conv_and_pool_have_the_forward_shapes_and_errors():
    for shape, conv, pool in [((1, 28, 28), dict(padding=1), 2), ((3, 9, 7), dict(stride=2), 3)]:
        x = Input(shape)
        y = MaxPool2d(pool)(Conv2d(shape[0], 4, 3, activation="relu", **conv)(x))
        eager = MaxPool2d(pool)(Conv2d(shape[0], 4, 3, activation="relu", **conv)(
            Tensor(np.zeros((2, *shape), np.float32))))
        assert y.shape[1:] == eager.shape[1:]
        assert not y.data.any()
    # the layers' own checks come first; the ops' placeholders make forward's checks too
    with pytest.raises(ValueError, match=r"MaxPool2d.*got input of shape \(None, 2, 2, 2\)"):
        MaxPool2d(3)(Conv2d(1, 2, 3)(Input((1, 4, 4))))
    pool = N.MaxPool2d(kernel_size=(3, 3), stride=(3, 3), padding=(0, 0))
    conv = N.Conv2d(stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1, activation=None,
                    padding_end=None, pool=None)
    x = np.zeros((1, 1, 2, 2), np.float32)
    for op, args in ((pool, (x,)), (conv, (x, np.zeros((2, 1, 3, 3), np.float32)))):
        with pytest.raises(ValueError, match="3x3 .*does not fit in input 2x2"):
            op.placeholder(*args)
        with pytest.raises(ValueError, match="3x3 .*does not fit in input 2x2"):
            op.forward(*args)


def test_building_a_fused_model_does_not_compile_the_unfused_kernels(tmp_path):
    # a fresh process on an empty Numba cache: after a training step of a model whose every
    # conv is fused with its pool, the unfused max-pool and conv bias kernels were never built
    import subprocess
    import sys
    code = """
import numpy as np, pynn
from pynn import Input, Model
from pynn.layers import Conv2d, MaxPool2d, Flatten, Dense
from pynn.losses import categorical_cross_entropy
from pynn.kernels import pool, activation
x = Input((1, 12, 12))
y = Dense(4 * 3 * 3, 10)(Flatten()(MaxPool2d(2)(Conv2d(2, 4, 3, activation="relu", padding=1)(
    MaxPool2d(2)(Conv2d(1, 2, 3, activation="relu", padding=1)(x))))))
model = Model(x, y)
out = model(np.ones((8, 1, 12, 12), np.float32))
categorical_cross_entropy(out, np.eye(10, dtype=np.float32)[np.arange(8) % 10]).backward()
print(len(pool.maxpool2d_forward.signatures),
      sum(len(k.signatures) for k in activation._BIAS_ACT_FORWARD_CNP.values()))
"""
    env = dict(__import__("os").environ, NUMBA_CACHE_DIR=str(tmp_path))
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True)
    assert res.stdout.split() == ["0", "0"]
