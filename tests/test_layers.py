"""Every layer against its PyTorch counterpart: same weights copied in, float64, rtol 1e-6.

Each check runs the pynn layer twice, eagerly (called on a Tensor) and inside a compiled Model,
and compares the output and the gradients of the input and of every parameter with torch (see
torch_helpers.check_layer). Dropout, which is random, is checked by its statistics instead.
"""
import math

import numpy as np
import pytest
import torch
import torch.nn as tnn
import torch.nn.functional as F
from torch_helpers import as_float64, as_float64_model, check_layer, close

import pynn
from pynn import Input, Model, Tensor
from pynn import activations as A
from pynn.layers import (
    GELU,
    AvgPool2d,
    BatchNorm1d,
    BatchNorm2d,
    Conv2d,
    Dense,
    Dropout,
    Flatten,
    LeakyReLU,
    Linear,
    LogSoftmax,
    MaxPool2d,
    ReLU,
    Reshape,
    Sigmoid,
    Softmax,
    Tanh,
)

# op classes this module checks against torch.nn through the layers built on them
# (tests/test_op_coverage.py reads it; Dropout is checked in test_nn_ops_checks.py)
TORCH_CHECKED_OPS = {"Linear", "Conv2d", "MaxPool2d", "AvgPool2d", "BatchNorm"}

WB = ["weight", "bias"]


class TorchAct(tnn.Module):
    """A torch module applying `fn` after `inner` (for activations fused into Dense/Conv2d)."""

    def __init__(self, inner, fn):
        super().__init__()
        self.inner, self.fn = inner, fn

    def forward(self, x):
        return self.fn(self.inner(x))


TORCH_ACT = {
    None: lambda y: y,
    "linear": lambda y: y,
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "softmax": lambda y: torch.softmax(y, -1),
    "log_softmax": lambda y: torch.log_softmax(y, -1),
    "gelu": F.gelu,
    "leaky_relu": F.leaky_relu,
    "softplus": F.softplus,
}
INNER = {"weight": "inner.weight", "bias": "inner.bias"}


# -- Dense ------------------------------------------------------------------------------------
@pytest.mark.parametrize("activation", list(TORCH_ACT))
def test_dense_each_activation(activation):
    pynn.manual_seed(0)
    layer = Dense(7, 5, activation)
    check_layer(layer, lambda: TorchAct(tnn.Linear(7, 5), TORCH_ACT[activation]), (6, 7), INNER)


@pytest.mark.parametrize("activation", [A.relu, A.sigmoid, A.tanh, A.softmax, A.gelu])
def test_dense_activation_given_as_function(activation):
    layer = Dense(4, 3, activation=activation)
    name = activation.__name__
    check_layer(layer, lambda: TorchAct(tnn.Linear(4, 3), TORCH_ACT[name]), (5, 4), INNER)


@pytest.mark.parametrize("activation", [None, "relu", "tanh"])
def test_dense_without_bias(activation):
    layer = Dense(6, 4, activation, bias=False)
    assert layer.bias is None and len(layer.parameters) == 1
    check_layer(layer, lambda: TorchAct(tnn.Linear(6, 4, bias=False), TORCH_ACT[activation]),
                (3, 6), {"weight": "inner.weight"})


@pytest.mark.parametrize("x_shape", [(5,), (2, 3, 5), (2, 1, 3, 5)])
@pytest.mark.parametrize("activation", [None, "sigmoid"])
def test_dense_on_nd_input(x_shape, activation):
    layer = Dense(5, 4, activation)
    modes = ("eager",) if len(x_shape) == 1 else ("eager", "model")
    check_layer(layer, lambda: TorchAct(tnn.Linear(5, 4), TORCH_ACT[activation]), x_shape, INNER,
                modes=modes)


def test_dense_float32_stays_float32():
    layer = Dense(3, 2, "relu")
    y = layer(Tensor(np.ones((4, 3), np.float32)))
    assert y.dtype == np.float32 and y.shape == (4, 2)
    assert Linear is Dense


# -- Conv2d ---------------------------------------------------------------------------------
CONV_GRID = [
    # in, out, kernel, stride, padding, input (N, C, H, W)
    (1, 1, 1, 1, 0, (2, 1, 4, 4)),
    (1, 4, 3, 1, 1, (2, 1, 6, 6)),
    (3, 2, 3, 2, 0, (2, 3, 7, 7)),
    (2, 3, 3, 2, 1, (3, 2, 8, 8)),
    (2, 5, 5, 1, 2, (1, 2, 5, 5)),
    (3, 4, 2, 2, 0, (2, 3, 6, 8)),
    (2, 2, 3, 3, 2, (2, 2, 7, 5)),
    (4, 3, (3, 2), (1, 2), (1, 0), (2, 4, 6, 7)),
    (2, 3, (1, 3), (2, 1), (0, 1), (2, 2, 5, 6)),
    (1, 2, (2, 4), 1, (1, 2), (1, 1, 3, 4)),
    (3, 2, (5, 3), (2, 3), 0, (2, 3, 9, 10)),
    (3, 2, 1, 2, 0, (2, 3, 5, 5)),                 # stride > kernel: some pixels unused
    (2, 3, 1, 1, 1, (1, 2, 3, 3)),                 # 1x1 kernel with padding: a border of bias
    (2, 2, 3, (3, 1), (2, 0), (2, 2, 4, 3)),       # output only as wide as the kernel
]


@pytest.mark.parametrize("cin, cout, k, s, p, x_shape", CONV_GRID)
def test_conv2d_grid(cin, cout, k, s, p, x_shape):
    pynn.manual_seed(1)
    layer = Conv2d(cin, cout, k, stride=s, padding=p)
    check_layer(layer, lambda: tnn.Conv2d(cin, cout, k, stride=s, padding=p), x_shape, WB)


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh", "gelu", "softplus"])
def test_conv2d_fused_and_separate_activations(activation):
    layer = Conv2d(3, 4, 3, stride=1, padding=1, activation=activation)
    check_layer(layer, lambda: TorchAct(tnn.Conv2d(3, 4, 3, padding=1), TORCH_ACT[activation]),
                (2, 3, 5, 6), INNER)


@pytest.mark.parametrize("activation", [None, "relu"])
def test_conv2d_without_bias(activation):
    layer = Conv2d(2, 3, (3, 2), stride=(2, 1), padding=(1, 1), activation=activation, bias=False)
    assert layer.bias is None
    check_layer(layer, lambda: TorchAct(tnn.Conv2d(2, 3, (3, 2), stride=(2, 1), padding=(1, 1),
                                                   bias=False), TORCH_ACT[activation]),
                (2, 2, 6, 5), {"weight": "inner.weight"})


def test_conv2d_int_and_tuple_arguments_are_the_same_layer():
    a = Conv2d(2, 3, 3, stride=2, padding=1)
    b = Conv2d(2, 3, (3, 3), stride=(2, 2), padding=[1, 1])
    assert (a.kernel_size, a.stride, a.padding) == (b.kernel_size, b.stride, b.padding) \
        == ((3, 3), (2, 2), (1, 1))
    b.weight.data[...] = a.weight.data
    b.bias.data[...] = a.bias.data
    x = Tensor.randn((2, 2, 6, 6))
    np.testing.assert_array_equal(a(x).data, b(x).data)


def test_conv2d_input_that_does_not_need_grad_in_a_model():
    """A conv as the first layer: the input needs no gradient, the weights still get theirs."""
    layer = as_float64(Conv2d(1, 2, 3))
    x_in = Input((1, 5, 5), dtype=np.float64)
    model = Model(x_in, layer(x_in))
    x = np.random.default_rng(0).standard_normal((2, 1, 5, 5))
    model(x).sum().backward()
    tconv = tnn.Conv2d(1, 2, 3).double()
    with torch.no_grad():
        tconv.weight.copy_(torch.from_numpy(layer.weight.data))
        tconv.bias.copy_(torch.from_numpy(layer.bias.data))
    tconv(torch.from_numpy(x)).sum().backward()
    close("weight grad", layer.weight.grad, tconv.weight.grad)
    close("bias grad", layer.bias.grad, tconv.bias.grad)


@pytest.mark.parametrize("bias", ["trained", "frozen", "none"])
@pytest.mark.parametrize("block_bytes", [1, 14000])   # 6200 bytes of cols + z per image
def test_conv2d_by_blocks_equals_whole_batch(block_bytes, bias, monkeypatch):
    """Training runs Conv2d a block of images at a time (one image; blocks of 2, 2 and 1): z,
    gz and gx per block, the weight and bias gradients summed over the blocks. In float64 the
    output and every gradient equal the one-block computation (up to summation order), with a
    trained bias, a frozen one, and none."""
    def outputs():
        pynn.manual_seed(0)
        layer = as_float64(Conv2d(3, 4, 3, stride=2, padding=1, activation="relu",
                                  bias=bias != "none"))
        if bias == "frozen":
            layer.bias.requires_grad = False
        x = Tensor(np.random.default_rng(2).standard_normal((5, 3, 9, 9)), requires_grad=True,
                   dtype=np.float64)
        y = layer(x)
        (y * Tensor(np.random.default_rng(3).standard_normal(y.shape), dtype=np.float64)
         ).sum().backward()
        assert layer.weight.grad.dtype == np.float64
        if bias != "trained":
            assert layer.bias is None or layer.bias.grad is None
            return y.data, x.grad.data, layer.weight.grad.data
        return y.data, x.grad.data, layer.weight.grad.data, layer.bias.grad.data

    whole = outputs()
    monkeypatch.setattr(pynn.ops.nn.Conv2d, "BLOCK_BYTES", block_bytes)
    for a, b in zip(outputs(), whole):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("conv", [
    dict(in_channels=3, out_channels=4, kernel_size=3, padding=1, activation="relu"),
    dict(in_channels=4, out_channels=6, kernel_size=3, stride=2, padding=1, groups=2),
    dict(in_channels=1, out_channels=8, kernel_size=3),            # weight_grad_small's
], ids=["same-relu", "strided-groups", "first-layer"])
@pytest.mark.parametrize("pool", [False, True])
def test_conv2d_unfolding_again_equals_keeping_cols(conv, pool, monkeypatch):
    """With RECOMPUTE_BYTES = 0 training keeps no cols at all (backward unfolds x again, a block
    at a time); in float64 the compiled model's output and every gradient are those of the
    default path, which keeps these small cols (up to summation order)."""
    def run():
        pynn.manual_seed(0)
        x_in = Input((conv["in_channels"], 10, 10))
        y = Conv2d(**conv)(x_in)
        model = as_float64_model(Model(x_in, MaxPool2d(2)(y) if pool else y))
        x = Tensor(np.random.default_rng(2).standard_normal((6, conv["in_channels"], 10, 10)),
                   requires_grad=True, dtype=np.float64)
        out = model(x)
        (out * Tensor(np.random.default_rng(3).standard_normal(out.shape), dtype=np.float64)
         ).sum().backward()
        keys = {k for plan in model._plans.values() for op in plan.ops for k in op._buffers}
        kept = any(k.startswith("cols_batch") for k in keys)
        return kept, [out.data, x.grad.data] + [p.grad.data for p in model.parameters]

    kept, want = run()
    assert kept
    monkeypatch.setattr(pynn.ops.nn.Conv2d, "BLOCK_BYTES", 3000)     # blocks of a few images
    monkeypatch.setattr(pynn.ops.nn.Conv2d, "RECOMPUTE_BYTES", 0)
    kept, got = run()
    assert not kept
    for a, b in zip(got, want):
        assert a.dtype == np.float64
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("block_bytes", [1, 20000, 1 << 20])
def test_conv2d_and_maxpool_predict_match_training_forward(block_bytes, monkeypatch):
    """Inference (no gradient anywhere) runs Conv2d a block of images at a time and MaxPool2d
    without argmax indices: outputs equal the training-mode forward for any block size,
    including a short last block, and are written into the layer's buffers in place."""
    monkeypatch.setattr(pynn.ops.nn.Conv2d, "BLOCK_BYTES", block_bytes)
    pynn.manual_seed(0)
    x_in = Input((2, 9, 9))
    h = MaxPool2d(2)(Conv2d(2, 3, 3, padding=1, activation="relu")(x_in))
    model = Model(x_in, Conv2d(3, 4, 2, stride=2)(h))
    x = np.random.default_rng(1).standard_normal((7, 2, 9, 9)).astype(np.float32)
    trained = model(x)                         # records a graph: the full-batch path
    inferred = model.predict(x)
    np.testing.assert_allclose(inferred, trained.data, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(model.predict(x, batch_size=3), trained.data, rtol=1e-6, atol=1e-6)
    for (_, record, *_), plan in model._plans.items():
        keys = {k for op in plan.ops for k in op._buffers}
        # inference never holds the whole batch's cols (cols_batch0, cols_batch1: per slice)
        assert any(k.startswith("cols_batch") for k in keys) == record


# -- pooling --------------------------------------------------------------------------------
POOL_GRID = [
    # kernel, stride, padding, input
    (2, None, 0, (2, 3, 6, 6)),
    (2, None, 0, (2, 2, 7, 5)),        # odd sizes: the last row/column is dropped (floor)
    (3, 1, 0, (1, 2, 5, 6)),
    (3, 2, 1, (2, 2, 7, 7)),
    (2, 1, 1, (1, 3, 4, 5)),
    ((2, 3), (1, 2), (1, 1), (2, 2, 6, 7)),
    ((3, 1), (3, 1), (1, 0), (2, 1, 8, 3)),
    (4, 3, 2, (1, 2, 9, 9)),
    (2, 3, 0, (2, 2, 8, 7)),                       # stride > kernel
    ((1, 2), (2, 3), (0, 1), (1, 2, 5, 8)),
]


@pytest.mark.parametrize("k, s, p, x_shape", POOL_GRID)
def test_maxpool2d(k, s, p, x_shape):
    check_layer(MaxPool2d(k, s, p), lambda: tnn.MaxPool2d(k, s, p), x_shape)


@pytest.mark.parametrize("k, s, p, x_shape", POOL_GRID)
def test_avgpool2d(k, s, p, x_shape):
    check_layer(AvgPool2d(k, s, p), lambda: tnn.AvgPool2d(k, s, p), x_shape)


def test_maxpool2d_ties_send_gradient_to_one_element_like_torch():
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, :2, :2] = 1.0
    check_layer(MaxPool2d(2), lambda: tnn.MaxPool2d(2), None, x=x)


# -- batch normalisation --------------------------------------------------------------------
def _randomize_bn(layer, seed=0):
    rng = np.random.default_rng(seed)
    c = layer.num_features
    layer.weight.data[...] = rng.uniform(0.5, 1.5, c)
    layer.bias.data[...] = rng.uniform(-0.5, 0.5, c)
    layer.running_mean[...] = rng.uniform(-1, 1, c)
    layer.running_var[...] = rng.uniform(0.5, 2, c)
    return layer


BN_CASES = [
    (BatchNorm1d, tnn.BatchNorm1d, 4, (8, 4)),
    (BatchNorm1d, tnn.BatchNorm1d, 3, (5, 3, 6)),
    (BatchNorm2d, tnn.BatchNorm2d, 3, (4, 3, 5, 6)),
    (BatchNorm2d, tnn.BatchNorm2d, 2, (1, 2, 3, 3)),
]


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("cls, tcls, c, x_shape", BN_CASES)
def test_batchnorm(cls, tcls, c, x_shape, training):
    layer = _randomize_bn(as_float64(cls(c)))
    # running stats are compared after the call: updated in train mode, untouched in eval
    x = np.random.default_rng(1).normal(2.0, 3.0, x_shape)
    check_layer(layer, lambda: tcls(c), None, WB, ["running_mean", "running_var"],
                training=training, x=x)


@pytest.mark.parametrize("momentum, eps", [(0.3, 1e-3), (0.01, 1e-5)])
def test_batchnorm_momentum_eps_and_running_stats_over_steps(momentum, eps):
    layer = as_float64(BatchNorm2d(3, eps=eps, momentum=momentum))
    ref = tnn.BatchNorm2d(3, eps=eps, momentum=momentum).double()
    rng = np.random.default_rng(2)
    for step in range(4):
        x = rng.normal(step, 1 + step, (4, 3, 3, 3))
        y = layer(Tensor(x, dtype=np.float64))
        yt = ref(torch.from_numpy(x))
        close(f"step {step} output", y, yt)
    close("running_mean", layer.running_mean, ref.running_mean)
    close("running_var", layer.running_var, ref.running_var)
    layer.eval()
    ref.eval()
    x = rng.normal(0, 1, (2, 3, 3, 3))
    close("eval output", layer(Tensor(x, dtype=np.float64)), ref(torch.from_numpy(x)))


def test_batchnorm_float32_keeps_float32():
    layer = BatchNorm1d(3)
    y = layer(Tensor.randn((4, 3)))
    assert y.dtype == np.float32
    assert layer.running_mean.dtype == np.float32 and layer.running_var.dtype == np.float32


# -- dropout --------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["eager", "model"])
def test_dropout_eval_is_identity(mode):
    layer = Dropout(0.5).eval()
    x = Tensor(np.random.default_rng(0).standard_normal((4, 6)), requires_grad=True,
               dtype=np.float64)
    if mode == "eager":
        y = layer(x)
    else:
        x_in = Input((6,), dtype=np.float64)
        model = Model(x_in, layer(x_in) * 1.0)
        model.eval()
        y = model(x)
    np.testing.assert_array_equal(y.data, x.data)
    g = np.random.default_rng(1).standard_normal((4, 6))
    y.backward(g)
    np.testing.assert_array_equal(x.grad.data, g)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
@pytest.mark.parametrize("mode", ["eager", "model"])
def test_dropout_train_statistics_scaling_and_gradient(p, mode):
    pynn.manual_seed(3)
    layer = Dropout(p)
    n = 200_000
    x = Tensor(np.full((n // 100, 100), 2.0), requires_grad=True, dtype=np.float64)
    if mode == "eager":
        y = layer(x)
    else:
        x_in = Input((100,), dtype=np.float64)
        model = Model(x_in, layer(x_in))
        y = model(x)
    kept = y.data != 0
    # survivors are scaled by 1/(1-p); everything else is exactly 0
    np.testing.assert_allclose(y.data[kept], 2.0 / (1 - p), rtol=1e-15)
    # the kept fraction is Binomial(n, 1-p)/n: 5 standard deviations of slack
    sd = math.sqrt(p * (1 - p) / n)
    assert abs(kept.mean() - (1 - p)) < 5 * sd
    # the mean is preserved in expectation
    assert abs(y.data.mean() - 2.0) < 5 * 2.0 / (1 - p) * sd
    # the gradient is the mask (scaled), elementwise
    g = np.random.default_rng(4).standard_normal(x.shape)
    y.backward(g)
    np.testing.assert_allclose(x.grad.data, g * kept / (1 - p), rtol=1e-15)


def test_dropout_masks_differ_between_calls_and_are_seeded():
    layer = Dropout(0.5)
    x = Tensor.ones((50, 50))
    pynn.manual_seed(7)
    a, b = layer(x).data.copy(), layer(x).data.copy()
    assert not np.array_equal(a, b)
    pynn.manual_seed(7)
    np.testing.assert_array_equal(layer(x).data, a)


def test_dropout_p0_and_bad_p():
    x = Tensor.randn((3, 4))
    np.testing.assert_array_equal(Dropout(0.0)(x).data, x.data)
    for p in (-0.1, 1.0, 1.5):
        with pytest.raises(ValueError, match="Dropout"):
            Dropout(p)


# -- activation layers and Flatten -------------------------------------------------------------
ACT_LAYERS = [
    (ReLU, lambda: tnn.ReLU(), {}),
    (Sigmoid, lambda: tnn.Sigmoid(), {}),
    (Tanh, lambda: tnn.Tanh(), {}),
    (GELU, lambda: tnn.GELU(), {}),
    (Softmax, lambda: tnn.Softmax(dim=-1), {}),
    (Softmax, lambda: tnn.Softmax(dim=1), {"dim": 1}),
    (LogSoftmax, lambda: tnn.LogSoftmax(dim=-1), {}),
    (LogSoftmax, lambda: tnn.LogSoftmax(dim=1), {"dim": 1}),
    (LeakyReLU, lambda: tnn.LeakyReLU(), {}),
    (LeakyReLU, lambda: tnn.LeakyReLU(0.2), {"negative_slope": 0.2}),
]


@pytest.mark.parametrize("x_shape", [(4, 5), (2, 3, 4)])
@pytest.mark.parametrize("cls, make_torch, kwargs", ACT_LAYERS,
                         ids=[f"{c.__name__}{k}" for c, _, k in ACT_LAYERS])
def test_activation_layers(cls, make_torch, kwargs, x_shape):
    check_layer(cls(**kwargs), make_torch, x_shape)


@pytest.mark.parametrize("start, end, x_shape", [(1, -1, (2, 3, 4, 5)), (2, -1, (2, 3, 4, 5)),
                                                 (1, 2, (2, 3, 4, 5)), (1, -1, (3, 4))])
def test_flatten(start, end, x_shape):
    check_layer(Flatten(start, end), lambda: tnn.Flatten(start, end), x_shape)


def test_reshape_layer():
    check_layer(Reshape((4, 3)), lambda: tnn.Unflatten(1, (4, 3)), (2, 12))


# -- initialisation ------------------------------------------------------------------------------
def _check_uniform(values, bound, name):
    """values look like U(-bound, bound): inside the bounds, reaching near both, right moments."""
    v = np.asarray(values, np.float64).ravel()
    n = v.size
    assert np.all(np.abs(v) <= bound), f"{name}: values outside +-{bound}"
    # for U(-b, b): mean 0 (sd b/sqrt(3n)), variance b^2/3 (sd of the estimate ~ b^2*0.3/sqrt(n))
    assert abs(v.mean()) < 5 * bound / math.sqrt(3 * n), f"{name}: mean {v.mean()}"
    assert abs(v.var() - bound ** 2 / 3) < 5 * 0.3 * bound ** 2 / math.sqrt(n), \
        f"{name}: variance {v.var()} vs {bound ** 2 / 3}"
    # the extremes come within a few bin widths of the bounds
    assert v.max() > bound * (1 - 20 / n) and v.min() < -bound * (1 - 20 / n), name


@pytest.mark.parametrize("fan_in, fan_out", [(784, 256), (30, 500)])
def test_dense_init_matches_torch_distribution(fan_in, fan_out):
    pynn.manual_seed(fan_in)
    torch.manual_seed(fan_in)
    layer = Dense(fan_in, fan_out)
    bound = 1 / math.sqrt(fan_in)
    _check_uniform(layer.weight.data, bound, "weight")
    _check_uniform(layer.bias.data, bound, "bias")
    # torch's Linear draws from the same distribution: same bound within sampling error
    ref = tnn.Linear(fan_in, fan_out)
    _check_uniform(ref.weight.detach().numpy(), bound, "torch weight")
    assert layer.weight.dtype == np.float32 and layer.weight.requires_grad


@pytest.mark.parametrize("cin, cout, k", [(16, 64, 3), (3, 200, (5, 3))])
def test_conv2d_init_matches_torch_distribution(cin, cout, k):
    pynn.manual_seed(cin)
    torch.manual_seed(cin)
    layer = Conv2d(cin, cout, k)
    kh, kw = (k, k) if isinstance(k, int) else k
    bound = 1 / math.sqrt(cin * kh * kw)
    assert layer.weight.shape == (cout, cin, kh, kw)
    _check_uniform(layer.weight.data, bound, "weight")
    _check_uniform(layer.bias.data, bound, "bias")
    _check_uniform(tnn.Conv2d(cin, cout, k).weight.detach().numpy(), bound, "torch weight")


def test_batchnorm_init():
    layer = BatchNorm2d(5)
    np.testing.assert_array_equal(layer.weight.data, np.ones(5))
    np.testing.assert_array_equal(layer.bias.data, np.zeros(5))
    np.testing.assert_array_equal(layer.running_mean, np.zeros(5))
    np.testing.assert_array_equal(layer.running_var, np.ones(5))


def test_manual_seed_makes_init_reproducible():
    def build():
        return [Dense(10, 5), Conv2d(2, 3, 3), Dense(5, 2, bias=False)]

    pynn.manual_seed(123)
    a = build()
    pynn.manual_seed(123)
    b = build()
    for la, lb in zip(a, b):
        for pa, pb in zip(la.parameters, lb.parameters):
            np.testing.assert_array_equal(pa.data, pb.data)
    pynn.manual_seed(124)
    c = build()
    assert not np.array_equal(a[0].weight.data, c[0].weight.data)
    # two layers made one after the other differ
    assert not np.array_equal(a[0].weight.data[:2], Dense(10, 5).weight.data[:2])


# -- errors -----------------------------------------------------------------------------------
def test_layer_shape_errors_name_layer_and_shapes():
    with pytest.raises(ValueError, match=r"Dense\(784->256\) got input of shape \(64, 100\)"):
        Dense(784, 256)(Tensor.randn((64, 100)))
    with pytest.raises(ValueError, match=r"Dense\(784->256\) got input of shape \(None, 100\)"):
        Dense(784, 256)(Input((100,)))
    with pytest.raises(ValueError, match=r"Conv2d\(3->8.*got input of shape \(2, 1, 8, 8\)"):
        Conv2d(3, 8, 3)(Tensor.randn((2, 1, 8, 8)))
    with pytest.raises(ValueError, match=r"Conv2d\(1->8.*got input of shape \(2, 1, 8\)"):
        Conv2d(1, 8, 3)(Tensor.randn((2, 1, 8)))
    with pytest.raises(ValueError, match=r"Conv2d.*\(2, 1, 2, 8\)"):
        Conv2d(1, 8, 3)(Tensor.randn((2, 1, 2, 8)))
    with pytest.raises(ValueError, match=r"MaxPool2d.*\(2, 8\)"):
        MaxPool2d(2)(Tensor.randn((2, 8)))
    with pytest.raises(ValueError, match=r"BatchNorm1d\(4\).*\(2, 3\)"):
        BatchNorm1d(4)(Tensor.randn((2, 3)))
    with pytest.raises(ValueError, match=r"BatchNorm2d\(3\).*\(2, 3\)"):
        BatchNorm2d(3)(Tensor.randn((2, 3)))
    with pytest.raises(TypeError, match="Dense"):
        Dense(3, 2)([[1.0, 2.0, 3.0]])
    with pytest.raises(ValueError, match="unknown activation"):
        Dense(3, 2, "no_such_activation")


def test_layers_accept_numpy_arrays():
    layer = Dense(3, 2)
    x = np.ones((4, 3), np.float32)
    np.testing.assert_array_equal(layer(x).data, layer(Tensor(x)).data)
