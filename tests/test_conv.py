"""Conv2d (padding "same"/"valid", dilation, groups, Keras-style arguments, initializers), Conv1d
and ConvTranspose2d against PyTorch in float64 (output, input gradient, weight and bias gradients;
eagerly and inside a compiled Model), their finite-difference gradients, and the layers' argument
checks."""
import numpy as np
import pytest
import torch
import torch.nn as tnn
from test_gradcheck import gradcheck
from torch_helpers import check_layer

import pynn
from pynn import Input, Model, Tensor
from pynn.layers import Conv1d, Conv2D, Conv2d, ConvTranspose2d
from pynn.ops import nn as N
from pynn.tensor import apply

TORCH_CHECKED_OPS = {"Conv2d", "ConvTranspose2d"}
GRADCHECKED_OPS = {"Conv2d", "ConvTranspose2d"}
WB = ["weight", "bias"]

# (in, out, kernel, stride, padding, dilation, groups, x_shape)
CONV2D_CASES = [
    (3, 4, 3, 1, "same", 1, 1, (2, 3, 7, 8)),
    (3, 4, 2, 1, "same", 1, 1, (2, 3, 6, 5)),         # even kernel: extra padding at the end
    (2, 4, (4, 3), 1, "same", (1, 2), 2, (2, 2, 9, 8)),
    (4, 6, 3, 1, "same", 2, 2, (2, 4, 7, 8)),
    (3, 5, 3, 1, "valid", 1, 1, (2, 3, 6, 7)),
    (4, 4, 3, 2, 1, 1, 4, (3, 4, 9, 8)),              # depthwise
    (4, 8, 3, 1, 1, 1, 4, (2, 4, 6, 6)),              # depthwise with channel multiplier 2
    (6, 4, (3, 2), (2, 1), (2, 0), (2, 3), 2, (2, 6, 11, 9)),
    (2, 3, 1, 2, 0, 1, 1, (2, 2, 5, 5)),
    (3, 2, 3, 3, (1, 2), 2, 1, (1, 3, 10, 12)),
]


def _torch_conv2d(cin, cout, k, s, p, d, g, bias=True):
    return lambda: tnn.Conv2d(cin, cout, k, stride=s, padding=p, dilation=d, groups=g, bias=bias)


@pytest.mark.parametrize("cin, cout, k, s, p, d, g, x_shape", CONV2D_CASES)
def test_conv2d_against_torch(cin, cout, k, s, p, d, g, x_shape):
    pynn.manual_seed(0)
    layer = Conv2d(cin, cout, k, stride=s, padding=p, dilation=d, groups=g)
    check_layer(layer, _torch_conv2d(cin, cout, k, s, p, d, g), x_shape, WB)


@pytest.mark.parametrize("activation", ["relu", "tanh", "elu", "silu"])
def test_conv2d_same_grouped_without_bias_with_activation(activation):
    pynn.manual_seed(1)
    layer = Conv2d(4, 4, 3, padding="same", groups=2, bias=False, activation=activation)
    fn = {"relu": torch.relu, "tanh": torch.tanh, "elu": torch.nn.functional.elu,
          "silu": torch.nn.functional.silu}[activation]
    conv = _torch_conv2d(4, 4, 3, 1, "same", 1, 2, bias=False)
    check_layer(layer, lambda: _Then(conv(), fn), (2, 4, 6, 5), {"weight": "inner.weight"})


class _Then(tnn.Module):
    def __init__(self, inner, fn):
        super().__init__()
        self.inner, self.fn = inner, fn

    def forward(self, x):
        return self.fn(self.inner(x))


@pytest.mark.parametrize("block_bytes", [1 << 20, 1])
def test_conv2d_groups_by_blocks_equals_whole_batch(block_bytes, monkeypatch):
    """The per-block products (one image per block with BLOCK_BYTES = 1) give torch's results
    with groups, dilation and asymmetric padding too."""
    monkeypatch.setattr(N.Conv2d, "BLOCK_BYTES", block_bytes)
    pynn.manual_seed(2)
    layer = Conv2d(4, 6, 2, padding="same", dilation=1, groups=2)
    check_layer(layer, _torch_conv2d(4, 6, 2, 1, "same", 1, 2), (3, 4, 7, 6), WB)


@pytest.mark.parametrize("limit", [0, 1 << 30])
@pytest.mark.parametrize("case", [CONV2D_CASES[0], CONV2D_CASES[2], CONV2D_CASES[5]])
def test_conv2d_weight_gradient_by_blas_and_by_kernel(case, limit, monkeypatch):
    """The weight gradient from BLAS (limit 0) and from kernels.conv.weight_grad_small (every
    weight counted small) both give torch's, groups and depthwise included."""
    monkeypatch.setattr(N, "SMALL_WEIGHT_GRAD", limit)
    cin, cout, k, s, p, d, g, x_shape = case
    pynn.manual_seed(3)
    layer = Conv2d(cin, cout, k, stride=s, padding=p, dilation=d, groups=g)
    check_layer(layer, _torch_conv2d(cin, cout, k, s, p, d, g), x_shape, WB)


# (in, out, kernel, stride, padding, dilation, groups, x_shape)
CONV1D_CASES = [
    (3, 4, 3, 1, "same", 1, 1, (2, 3, 10)),
    (3, 4, 4, 1, "same", 1, 1, (2, 3, 9)),
    (4, 6, 3, 2, 2, 2, 2, (3, 4, 11)),
    (4, 4, 5, 1, 0, 1, 4, (2, 4, 12)),
    (2, 3, 1, 1, "valid", 1, 1, (1, 2, 5)),
]


@pytest.mark.parametrize("cin, cout, k, s, p, d, g, x_shape", CONV1D_CASES)
def test_conv1d_against_torch(cin, cout, k, s, p, d, g, x_shape):
    pynn.manual_seed(0)
    layer = Conv1d(cin, cout, k, stride=s, padding=p, dilation=d, groups=g)
    assert layer.weight.shape == (cout, cin // g, k)
    check_layer(layer, lambda: tnn.Conv1d(cin, cout, k, stride=s, padding=p, dilation=d,
                                          groups=g), x_shape, WB)


# (in, out, kernel, stride, padding, output_padding, dilation, groups, x_shape)
CONVT_CASES = [
    (4, 3, 2, 2, 0, 0, 1, 1, (2, 4, 5, 6)),
    (4, 6, 3, 2, 1, 1, 1, 2, (2, 4, 5, 4)),
    (3, 2, (3, 2), (2, 3), (1, 0), (1, 2), 1, 1, (1, 3, 4, 5)),
    (4, 6, 3, 2, 1, 1, 2, 2, (2, 4, 5, 6)),
    (2, 2, 3, 1, 1, 0, 1, 2, (2, 2, 6, 6)),
]


@pytest.mark.parametrize("cin, cout, k, s, p, op, d, g, x_shape", CONVT_CASES)
def test_conv_transpose2d_against_torch(cin, cout, k, s, p, op, d, g, x_shape):
    pynn.manual_seed(0)
    layer = ConvTranspose2d(cin, cout, k, stride=s, padding=p, output_padding=op, dilation=d,
                            groups=g)
    assert layer.weight.shape == (cin, cout // g) + layer.kernel_size
    check_layer(layer, lambda: tnn.ConvTranspose2d(cin, cout, k, stride=s, padding=p,
                                                   output_padding=op, dilation=d, groups=g),
                x_shape, WB)


def test_conv_transpose2d_without_bias():
    layer = ConvTranspose2d(3, 2, 3, stride=2, bias=False)
    check_layer(layer, lambda: tnn.ConvTranspose2d(3, 2, 3, stride=2, bias=False), (2, 3, 4, 4),
                ["weight"])


# -- finite differences ------------------------------------------------------------------------
GRAD_CASES = [
    # stride, padding, padding_end, dilation, groups, x_shape, w_shape
    ((1, 1), (0, 1), (1, 1), (1, 1), 1, (2, 2, 4, 5), (3, 2, 2, 3)),
    ((2, 1), (1, 1), None, (2, 1), 2, (2, 4, 6, 5), (4, 2, 2, 2)),
    ((1, 2), (0, 1), None, (1, 2), 3, (1, 3, 4, 7), (3, 1, 3, 2)),
]


@pytest.mark.parametrize("stride, pad, pad_end, dil, groups, x_shape, w_shape", GRAD_CASES)
def test_conv2d_op_gradcheck(stride, pad, pad_end, dil, groups, x_shape, w_shape):
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal(x_shape), rng.standard_normal(w_shape), rng.standard_normal(
        w_shape[0])
    op = dict(stride=stride, padding=pad, padding_end=pad_end, dilation=dil, groups=groups,
              activation=None)
    gradcheck(lambda x, w, b: apply(N.Conv2d(**op), x, w, b), x, w, b)


def test_conv2d_op_gradcheck_1d():
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((2, 2, 7)), rng.standard_normal((3, 2, 3))
    op = dict(stride=(1, 2), padding=(0, 1), dilation=(1, 2), groups=1, activation="tanh")
    gradcheck(lambda x, w: apply(N.Conv2d(**op), x, w), x, w)


@pytest.mark.parametrize("stride, pad, out_pad, dil, groups", [
    ((2, 2), (1, 0), (1, 0), (1, 1), 1), ((1, 2), (0, 1), (0, 1), (2, 1), 2)])
def test_conv_transpose2d_op_gradcheck(stride, pad, out_pad, dil, groups):
    rng = np.random.default_rng(2)
    cout_per_group = 2
    x = rng.standard_normal((2, 2, 3, 4))
    w = rng.standard_normal((2, cout_per_group, 2, 3))     # (Cin, Cout / groups, kh, kw)
    b = rng.standard_normal(cout_per_group * groups)
    op = dict(stride=stride, padding=pad, output_padding=out_pad, dilation=dil, groups=groups)
    gradcheck(lambda x, w, b: apply(N.ConvTranspose2d(**op), x, w, b), x, w, b)


# -- Keras-style arguments, initializers, argument checks ----------------------------------------
def test_keras_form_infers_in_channels_and_matches_torch():
    pynn.manual_seed(3)
    layer = Conv2d(5, 3, padding="same")
    assert layer.weight is None and layer.in_channels is None
    x_in = Input((2, 6, 6))
    y = layer(x_in)
    assert layer.in_channels == 2 and layer.weight.shape == (5, 2, 3, 3)
    assert y.shape[1:] == (5, 6, 6)
    check_layer(layer, _torch_conv2d(2, 5, 3, 1, "same", 1, 1), (2, 2, 6, 6), WB)
    assert Conv2D is Conv2d


def test_keras_form_inside_a_model_trains():
    pynn.manual_seed(4)
    x_in = Input((1, 8, 8))
    h = Conv2d(4, 3, padding="same", activation="relu")(x_in)
    h = Conv1d(3, 3, padding="same")(h.reshape(-1, 4, 64))
    model = Model(x_in, h.mean())
    x = Tensor(np.random.default_rng(0).standard_normal((2, 1, 8, 8)).astype(np.float32))
    loss = model(x)
    loss.backward()
    assert all(p.grad is not None and np.isfinite(p.grad.data).all() for p in model.parameters)


def test_default_init_matches_torch_bounds_with_groups():
    layer = Conv2d(8, 16, 3, groups=4)
    bound = 1 / np.sqrt(8 // 4 * 9)             # torch: fan_in = in_channels / groups * k * k
    assert np.abs(layer.weight.data).max() <= bound
    assert np.abs(layer.weight.data).max() > 0.9 * bound
    t = ConvTranspose2d(8, 6, 2, groups=2)          # torch: fan_in = weight.size(1) * k * k
    assert np.abs(t.weight.data).max() <= 1 / np.sqrt(3 * 4)


@pytest.mark.parametrize("name, check", [
    ("zeros", lambda w: np.all(w == 0)),
    ("ones", lambda w: np.all(w == 1)),
    ("he_normal", lambda w: abs(w.std() - np.sqrt(2 / (16 * 9))) < 0.1 * np.sqrt(2 / 144)),
    ("glorot_uniform", lambda w: np.abs(w).max() <= np.sqrt(6 / (16 * 9 + 64 * 9))),
])
def test_initializers_by_name(name, check):
    layer = Conv2d(16, 64, 3, kernel_initializer=name, bias_initializer="zeros")
    assert layer.weight.dtype == np.float32
    assert check(layer.weight.data)
    assert np.all(layer.bias.data == 0)


@pytest.mark.parametrize("kwargs, match", [
    (dict(in_channels=3, out_channels=4, kernel_size=0), "kernel_size must be positive"),
    (dict(in_channels=3, out_channels=4, kernel_size=3, stride=0), "stride must be positive"),
    (dict(in_channels=3, out_channels=4, kernel_size=3, dilation=-1), "dilation must be positive"),
    (dict(in_channels=3, out_channels=4, kernel_size=3, padding=-1), "padding must be >= 0"),
    (dict(in_channels=3, out_channels=4, kernel_size=3, padding="full"), "padding must be"),
    (dict(in_channels=3, out_channels=4, kernel_size=3, padding="same", stride=2), "stride 1"),
    (dict(in_channels=3, out_channels=4, kernel_size=3, groups=2), "divisible by groups"),
    (dict(in_channels=4, out_channels=3, kernel_size=3, groups=2), "divisible by groups"),
    (dict(in_channels=3, out_channels=4, kernel_size=3, kernel_initializer="nope"),
     "unknown initializer"),
])
def test_conv2d_argument_errors_name_the_layer(kwargs, match):
    with pytest.raises(ValueError, match="Conv2d") as e:
        Conv2d(**kwargs)
    assert match in str(e.value)


def test_conv_transpose_and_conv1d_argument_errors():
    with pytest.raises(ValueError, match="ConvTranspose2d.*output_padding"):
        ConvTranspose2d(3, 4, 3, stride=2, output_padding=2)
    with pytest.raises(ValueError, match="ConvTranspose2d.*stride 1"):
        ConvTranspose2d(3, 4, 3, padding="same")
    with pytest.raises(ValueError, match="Conv1d: kernel_size"):
        Conv1d(3, 4, (3, 3))


def test_conv_shape_errors_name_layer_and_shapes():
    with pytest.raises(ValueError, match=r"Conv2d\(3->4.*\(2, 5, 8, 8\)"):
        Conv2d(3, 4, 3)(Tensor.randn(2, 5, 8, 8))
    with pytest.raises(ValueError, match=r"Conv2d.*dilation 3"):
        Conv2d(3, 4, 3, dilation=3)(Tensor.randn(2, 3, 4, 8))
    with pytest.raises(ValueError, match=r"Conv1d"):
        Conv1d(3, 4, 3)(Tensor.randn(2, 3, 4, 8))


def test_config_round_trip_keeps_the_layer():
    for layer in (Conv2d(3, 4, 2, padding="same", dilation=2, groups=1, activation="relu"),
                  Conv1d(4, 4, 3, groups=4, padding="valid"),
                  ConvTranspose2d(4, 2, 3, stride=2, output_padding=1)):
        again = type(layer)(**layer.config())
        assert again.config() == layer.config()
        assert again.weight.shape == layer.weight.shape
    unbuilt = Conv2d(8, 3)
    assert type(unbuilt)(**unbuilt.config()).config() == unbuilt.config()


def test_conv2d_float32_stays_float32():
    layer = Conv2d(2, 3, 3, padding="same", groups=1, dilation=2)
    y = layer(Tensor.randn(2, 2, 5, 5))
    assert y.dtype == np.float32
    t = ConvTranspose2d(3, 2, 2, stride=2)(y)
    assert t.dtype == np.float32 and t.shape == (2, 2, 10, 10)
