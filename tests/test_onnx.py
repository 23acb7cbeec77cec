"""ONNX export: every exporter against onnxruntime, on models built from each op and layer and
on the worked examples' architectures.

Each model is exported, checked by onnx.checker, run by onnxruntime at two batch sizes (neither
the batch of 1 the model was built with, so the batch dimension must really be free) and
compared with `model.predict` in float32 within 1e-5. The tests skip when onnx/onnxruntime are
not installed, except under CI=true, where they must run.
"""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import pynn
import pynn.functional as F
from pynn import Input, Model
from pynn.activations import relu, softmax
from pynn.layers import (
    ELU,
    GELU,
    GRU,
    LSTM,
    RNN,
    SELU,
    AdaptiveAvgPool2d,
    AvgPool2d,
    BatchNorm1d,
    BatchNorm2d,
    Conv1d,
    Conv2d,
    ConvTranspose2d,
    Dense,
    Dropout,
    Embedding,
    Flatten,
    GlobalAveragePooling2D,
    GlobalMaxPooling2D,
    GroupNorm,
    Hardsigmoid,
    Hardtanh,
    LayerNorm,
    MaxPool2d,
    Mish,
    MultiHeadAttention,
    PReLU,
    Reshape,
    SiLU,
    SimpleRNN,
    Softsign,
    SyncBatchNorm,
    Upsample,
    UpSampling2D,
)
from pynn.layers import Identity as IdentityLayer
from pynn.layers.base import Layer
from pynn.ops.base import Op
from pynn.tensor import apply

if os.environ.get("CI") == "true":      # in CI the extras are installed: never skip there
    import onnx
    import onnxruntime as ort
else:
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")

from test_examples import DATA_DIR, needs_mnist, run_example  # noqa: E402

import pynn.onnx  # noqa: E402
from pynn.onnx_ops import EXPORTERS  # noqa: E402

RTOL = ATOL = 1e-5       # float32, pynn against onnxruntime
BATCHES = (3, 8)


def _data(shape, low=-2.0, high=2.0, seed=0):
    return np.random.default_rng(seed).uniform(low, high, shape).astype(np.float32)


def run_onnx(model, path, inputs, opset=17):
    """Export, check, and run with onnxruntime; returns the list of outputs."""
    pynn.onnx.export(model, path, opset=opset)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    assert all(i.shape[0] == "batch" for i in session.get_inputs())
    return session.run(None, dict(zip(names, inputs, strict=True)))


def check_export(model, tmp_path, low=-2.0, high=2.0, opset=17, batches=BATCHES):
    """onnxruntime's outputs equal model.predict's at each batch size."""
    for k, n in enumerate(batches):
        xs = [_data((n,) + shape, low, high, seed=k + 10 * i) if t.dtype.kind == "f" else
              np.random.default_rng(k + 10 * i).integers(low, high, (n,) + shape).astype(t.dtype)
              for i, (shape, t) in enumerate(zip(model.input_shapes, model.inputs, strict=True))]
        got = run_onnx(model, tmp_path / f"model_{n}.onnx", xs, opset)
        want = model.predict(xs if len(xs) > 1 else xs[0])
        want = want if isinstance(want, list) else [want]
        assert len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            assert g.shape == w.shape and g.dtype == w.dtype, (g.shape, w.shape, g.dtype, w.dtype)
            if w.dtype.kind == "f":
                np.testing.assert_allclose(g, w, rtol=RTOL, atol=ATOL)
            else:
                np.testing.assert_array_equal(g, w)


def _input(shape):
    """Input(shape), or Input(shape[0], dtype=shape[1]) for a (shape, "int64") pair."""
    if len(shape) == 2 and isinstance(shape[1], str):
        return Input(shape[0], dtype=shape[1])
    return Input(shape)


def _model(shape, fn, *more_shapes):
    inputs = [_input(shape)] + [_input(s) for s in more_shapes]
    with np.errstate(divide="ignore"):     # the model is built on zeros: log(0) is fine there
        out = fn(*inputs)
    return Model(inputs if more_shapes else inputs[0], out)


def _batchnorm(layer):
    """A BatchNorm layer with running statistics and affine weights away from their defaults."""
    rng = np.random.default_rng(3)
    n = layer.num_features
    layer.running_mean[...] = rng.normal(size=n)
    layer.running_var[...] = rng.uniform(0.5, 2.0, n)
    layer.weight.data[...] = rng.normal(size=n)
    layer.bias.data[...] = rng.normal(size=n)
    return layer


def _affine(layer):
    """A LayerNorm with weight (and bias) away from ones and zeros."""
    rng = np.random.default_rng(4)
    for t in (layer.weight, layer.bias):
        if t is not None:
            t.data[...] = rng.normal(size=t.shape)
    return layer


def _masked_attention(x):
    """Cross-attention with a key padding mask, a boolean and a float (L, S) mask (no query
    row has every key masked)."""
    att = MultiHeadAttention(8, 2)
    pad = np.zeros((1, 5), bool)
    pad[0, 4] = True
    causal = np.triu(np.ones((5, 5), bool), k=1)
    scores = _data((5, 5), seed=7)
    return [att(x, x * 0.5, x.tanh(), key_padding_mask=pynn.Tensor(pad)),
            att(x, x, x, attn_mask=pynn.Tensor(causal)),
            att(x, attn_mask=pynn.Tensor(scores))]


def _per_head_masks(x):
    """(N * heads, L, S) masks made from the input: boolean (True = not allowed, a different
    one per head, the diagonal always allowed) and float, stacked per head or repeated."""
    att = MultiHeadAttention(8, 2)
    scores = x @ x.transpose(1, 2)                                        # (N, 5, 5)
    off_diagonal = pynn.Tensor(~np.eye(5, dtype=bool))
    drop = (scores < 0).logical_and(off_diagonal)
    per_head = pynn.stack([drop, drop.logical_not().logical_and(off_diagonal)], dim=1)
    added = pynn.stack([scores.tanh(), -scores.tanh()], dim=1)
    return [att(x, attn_mask=per_head.reshape(-1, 5, 5)),
            att(x, attn_mask=added.reshape(-1, 5, 5)),
            att(x, x * 0.5, x.tanh(), attn_mask=drop.repeat_interleave(2, 0))]


def _slopes(layer):
    layer.weight.data[...] = np.linspace(-0.5, 0.8, layer.weight.data.size).astype(np.float32)
    return layer


def _raw_lstm(x, reverse=False):
    """pynn's LSTM op applied by hand, its (N, T, 2H) output read whole (the cell state of every
    step too): the per-step ONNX form."""
    from pynn.ops.recurrent import LSTMSequence
    w_ih = pynn.Tensor(_data((16, 3), -0.5, 0.5, seed=1), requires_grad=True)
    w_hh = pynn.Tensor(_data((16, 4), -0.5, 0.5, seed=2), requires_grad=True)
    y = apply(LSTMSequence(reverse=reverse, bias=False, initial=False), x, w_ih, w_hh)
    return y


# name: (input shape, function of the symbolic input, (low, high) of the random inputs)
CASES = {
    "dense": ((5,), lambda x: Dense(5, 4)(x), None),
    "dense_relu": ((5,), lambda x: Dense(5, 4, relu)(x), None),
    "dense_sigmoid_nobias": ((5,), lambda x: Dense(5, 4, "sigmoid", bias=False)(x), None),
    "dense_tanh_3d": ((2, 5), lambda x: Dense(5, 3, "tanh")(x), None),
    "dense_3d_nobias": ((2, 5), lambda x: Dense(5, 3, bias=False)(x), None),
    "dense_gelu": ((5,), lambda x: Dense(5, 4, "gelu")(x), None),
    "conv2d_relu": ((2, 7, 6), lambda x: Conv2d(2, 3, 3, padding=1, activation=relu)(x), None),
    "conv2d_strided_nobias": ((2, 9, 8), lambda x: Conv2d(2, 4, (3, 2), stride=(2, 1),
                                                         padding=(1, 0), activation="tanh",
                                                         bias=False)(x), None),
    "conv2d_sigmoid": ((1, 6, 6), lambda x: Conv2d(1, 2, 2, stride=2, activation="sigmoid")(x),
                       None),
    "maxpool2d": ((2, 7, 8), lambda x: MaxPool2d(3, stride=2, padding=1)(x), None),
    "maxpool2d_2": ((2, 8, 8), lambda x: MaxPool2d(2)(x), None),
    "avgpool2d": ((2, 7, 8), lambda x: AvgPool2d(2, stride=1, padding=1)(x), None),
    "batchnorm1d": ((4,), lambda x: _batchnorm(BatchNorm1d(4))(x), None),
    "batchnorm1d_3d": ((4, 5), lambda x: _batchnorm(BatchNorm1d(4))(x), None),
    "batchnorm2d": ((3, 4, 5), lambda x: _batchnorm(BatchNorm2d(3))(x), None),
    "sync_batchnorm": ((3, 4, 5), lambda x: _batchnorm(SyncBatchNorm(3))(x), None),
    "dropout": ((6,), lambda x: Dropout(0.5)(Dense(6, 6)(x)), None),
    "flatten_layer": ((2, 3, 4), lambda x: Flatten()(x), None),
    "flatten_middle": ((2, 3, 4), lambda x: x.flatten(1, 2), None),
    "reshape_layer": ((12,), lambda x: Reshape((3, 4))(x), None),
    "reshape": ((3, 4), lambda x: x.reshape(-1, 2, 6), None),
    "neg_exp": ((3, 4), lambda x: (-x).exp(), None),
    "log_sqrt": ((3, 4), lambda x: x.log() + x.sqrt(), (0.1, 3.0)),
    "abs_sin_cos": ((3, 4), lambda x: x.abs() * x.sin() - x.cos(), None),
    "tanh_sigmoid_relu": ((3, 4), lambda x: x.tanh() + x.sigmoid() + x.relu(), None),
    "leaky_relu": ((3, 4), lambda x: x.leaky_relu(0.2), None),
    "gelu": ((3, 4), lambda x: x.gelu(), (-4.0, 4.0)),
    "softplus": ((3, 4), lambda x: x.softplus() + x.softplus(beta=2.0, threshold=1.0), None),
    "clip": ((3, 4), lambda x: x.clip(-0.5, 1.0) + x.clip(min=0.2) + x.clip(max=0.1), None),
    "arithmetic": ((3, 4), lambda x: (x + 1.5) * x - x / 3.0 + 2.0 / (x * x + 1), None),
    "pow": ((3, 4), lambda x: x ** 2.0 + 2.0 ** x + x ** x, (0.1, 2.0)),
    "maximum_minimum": ((3, 4), lambda x: pynn.maximum(x, 0.3) + pynn.minimum(x, x * 0.5), None),
    "matmul_const": ((3, 4), lambda x: x @ pynn.Tensor(_data((4, 2), seed=5)), None),
    "matmul_batched": ((3, 4), lambda x: x @ x.transpose(1, 2), None),
    "where_compare": ((3, 4), lambda x: pynn.where(x > 0.5, x, x * 0.1), None),
    "compare": ((3, 4), lambda x: [x < 0.2, x <= 0.2, x >= 0.5, x == x, x != x.relu()], None),
    "cast_detach": ((3, 4), lambda x: x.double() + x.detach().double(), None),
    "sum_mean": ((3, 4), lambda x: x.sum(1) + x.mean(dim=1) + x.sum() + x.mean(), None),
    "sum_keepdim": ((3, 4), lambda x: x.sum((1, 2), keepdim=True) * x.mean(2, keepdim=True),
                    None),
    "sum_over_batch": ((3, 4), lambda x: x + x.sum(0) - x.mean(0, keepdim=True), None),
    "amax_amin": ((3, 4), lambda x: x.amax(1) - x.amin(1) + x.amax(), None),
    "logsumexp": ((3, 4), lambda x: x.logsumexp(2) + x.logsumexp(1, keepdim=True).sum(2), None),
    "var_std": ((3, 4), lambda x: x.var(2) + x.std(1, correction=0).mean(1, keepdim=True)
                + x.var(), None),
    "argmax_argmin": ((3, 4), lambda x: [x.argmax(2) + x.argmax(), x.argmin(1, keepdim=True)],
                      None),
    "max_dim": ((3, 4), lambda x: list(x.max(dim=2)), None),
    "softmax": ((5,), lambda x: x.softmax(1), None),
    "log_softmax_3d": ((3, 4), lambda x: x.log_softmax(1) + x.softmax(-1), None),
    "permute_transpose": ((2, 3, 4), lambda x: x.permute(0, 3, 2, 1) * 2 + x.transpose(1, 3),
                          None),
    "squeeze_unsqueeze": ((3, 1, 4), lambda x: x.squeeze(2).unsqueeze(1)
                          + x.squeeze(-2).unsqueeze(2), None),
    "broadcast_to": ((4,), lambda x: x.unsqueeze(1) + x.sum(0).broadcast_to((3, 4)), None),
    "repeat": ((3,), lambda x: [x.repeat(1, 2), x.repeat(2, 1, 1)], None),
    "pad": ((2, 3, 4), lambda x: [x.pad((1, 2), value=0.5), x.pad((1, 1, 2, 0))], None),
    "stack_concat": ((3,), lambda x: [pynn.stack([x, x * 2], dim=1), pynn.concat([x, x.exp()],
                                                                                 dim=1)], None),
    "getitem_slices": ((5, 6), lambda x: x[:, 1:4, 3:] * 2 + x[:, ::-2, 1:4:2].sum(2, keepdim=True)
                       + x[:, -3:, 2:5], None),
    "getitem_int_none_ellipsis": ((5, 6), lambda x: [x[:, 0], x[..., -1], x[:, None, 2:, 3],
                                                     x[:, 1:3, None]], None),
    "getitem_array_mask": ((5, 6), lambda x: [x[:, [4, 0, 0, 2]], x[..., np.array([1, 3])],
                                              x[:, np.array([True, False, True, True, False])],
                                              x[:, [[0, 1], [2, 3]]]], None),
    "split_chunk": ((6,), lambda x: list(x.split(2, dim=1)) + list(x.chunk(4, dim=1)), None),
    # ops of the newer layers; (shape, "int64") is an integer Input, its range [low, high)
    "embedding": (((5,), "int64"), lambda i: Embedding(10, 4)(i), (0, 10)),
    "embedding_padding_2d": (((2, 3), "int32"), lambda i: Embedding(7, 3, padding_idx=0)(i),
                             (0, 7)),
    "take": (((4,), "int64"), lambda i: pynn.Tensor(_data((6, 3), seed=4))[i], (-6, 6)),
    "layer_norm": ((3, 4), lambda x: _affine(LayerNorm(4, eps=1e-3))(x), None),
    "layer_norm_2d_plain": ((3, 4), lambda x: LayerNorm((3, 4), elementwise_affine=False)(x),
                            None),
    "group_norm": ((6, 4, 3), lambda x: _affine(GroupNorm(3, 6, eps=1e-3))(x), None),
    "group_norm_plain_1d": ((4, 5), lambda x: GroupNorm(2, 4, affine=False)(x), None),
    "layer_norm_nobias": ((3, 4), lambda x: _affine(LayerNorm(4, bias=False))(x), None),
    "activations": ((3, 4), lambda x: [x.elu(), x.elu(0.5), x.selu(), x.silu(), x.mish(),
                                       x.softsign(), x.hardtanh(), x.hardtanh(-0.5, 0.25),
                                       x.hardsigmoid()], (-4.0, 4.0)),
    "gelu_tanh": ((3, 4), lambda x: GELU("tanh")(x), (-4.0, 4.0)),
    "activation_layers": ((3, 4), lambda x: [SELU()(x), SiLU()(x), Mish()(x), Softsign()(x),
                                             Hardsigmoid()(x), ELU(0.7)(x), Hardtanh()(x)],
                          (-4.0, 4.0)),
    "prelu": ((3, 4), lambda x: _slopes(PReLU(3))(x) + PReLU()(x), None),
    "prelu_2d": ((3,), lambda x: _slopes(PReLU(3))(x), None),
    "identity": ((3,), lambda x: IdentityLayer()(x), None),
    "conv1d": ((4, 11), lambda x: Conv1d(4, 6, 3, stride=2, padding=1, dilation=2, groups=2,
                                         activation="relu")(x), None),
    "conv1d_same": ((3, 8), lambda x: Conv1d(3, 2, 4, padding="same", bias=False)(x), None),
    "conv2d_dilation_groups": ((4, 9, 8), lambda x: Conv2d(4, 6, 3, dilation=(2, 1), groups=2,
                                                           padding=(2, 1))(x), None),
    "conv2d_same_even_kernel": ((2, 7, 6), lambda x: Conv2d(2, 3, (2, 4), padding="same",
                                                            activation="sigmoid")(x), None),
    "conv2d_depthwise": ((3, 6, 6), lambda x: Conv2d(3, 3, 3, groups=3, padding=1)(x), None),
    "conv_transpose2d": ((4, 5, 4), lambda x: ConvTranspose2d(4, 6, 3, stride=2, padding=1,
                                                              output_padding=1, groups=2,
                                                              dilation=(1, 2))(x), None),
    "conv_transpose2d_relu": ((3, 4, 4), lambda x: ConvTranspose2d(3, 2, 2, stride=2, bias=False,
                                                                   activation="relu")(x), None),
    "global_pooling": ((3, 5, 4), lambda x: [GlobalAveragePooling2D()(x),
                                             GlobalAveragePooling2D(keepdims=True)(x),
                                             GlobalMaxPooling2D()(x)], None),
    "adaptive_avgpool2d": ((2, 7, 6), lambda x: [AdaptiveAvgPool2d((3, 4))(x),
                                                 AdaptiveAvgPool2d(1)(x),
                                                 AdaptiveAvgPool2d((7, 2))(x),
                                                 AdaptiveAvgPool2d((None, 5))(x)], None),
    "upsample_nearest": ((2, 3, 4), lambda x: [Upsample(scale_factor=2)(x),
                                               Upsample(size=(5, 7))(x),
                                               Upsample(scale_factor=(1.5, 3))(x),
                                               UpSampling2D((2, 3))(x)], None),
    "upsample_bilinear": ((2, 3, 4), lambda x: [Upsample(scale_factor=2, mode="bilinear")(x),
                                                Upsample(size=(5, 7), mode="bilinear")(x),
                                                Upsample(size=(6, 3), mode="bilinear",
                                                         align_corners=True)(x),
                                                Upsample(scale_factor=(1.5, 2.5),
                                                         mode="bilinear")(x)], None),
    "lstm": ((5, 3), lambda x: LSTM(3, 4)(x), None),
    "lstm_one_step_keras": ((1, 3), lambda x: LSTM(4, bias=False)(x), None),
    "lstm_bidirectional_stacked": ((4, 3), lambda x: list(LSTM(3, 4, num_layers=2,
                                                               bidirectional=True,
                                                               return_state=True)(x)), None),
    "lstm_cell_sequence": ((4, 3), lambda x: [_raw_lstm(x), _raw_lstm(x, True)[:, :, 4:] * 2],
                           None),
    "gru": ((5, 3), lambda x: [GRU(3, 4, bidirectional=True)(x), GRU(4, bias=False)(x)], None),
    "rnn": ((5, 3), lambda x: list(RNN(3, 4, num_layers=2, nonlinearity="relu",
                                       return_state=True)(x)) + [SimpleRNN(4)(x)], None),
    "masked_fill": ((3, 4), lambda x: x.masked_fill(x > 0.5, -1.0)
                    + x.masked_fill(pynn.Tensor(np.array([True, False, False, True])), 2.0),
                    None),
    "self_attention": ((5, 8), lambda x: [MultiHeadAttention(8, 2, dropout=0.3)(x),
                                          MultiHeadAttention(8, 4, bias=False)(x,
                                                                               is_causal=True)],
                       None),
    "attention_masks": ((5, 8), lambda x: _masked_attention(x), None),
    "attention_per_head_masks": ((5, 8), lambda x: _per_head_masks(x), None),
    "sdpa": ((2, 5, 4), lambda x: [F.scaled_dot_product_attention(x, x, x, is_causal=True),
                                   F.scaled_dot_product_attention(
                                       x, x * 2, x, scale=0.3,
                                       attn_mask=pynn.Tensor(_data((5, 5), seed=6))),
                                   F.scaled_dot_product_attention(
                                       x, x, x[:, :, :, :3],
                                       attn_mask=pynn.Tensor(np.tril(np.ones((5, 5), bool))))],
             None),
    # the loose Tensor ops (pynn.onnx_tensor_ops)
    "rounding": ((3, 4), lambda x: [x.floor(), x.ceil(), x.trunc(), x.sign(), x.round(),
                                    x.round(2), x.round(-1)], (-20.0, 20.0)),
    "rounding_ties_and_integers": ((4,), lambda x: [
        (x * 0 + pynn.Tensor(np.array([0.5, 1.5, 2.5, -2.5], np.float32))).round(),
        (x * 0 + pynn.Tensor(np.array([0.25, 0.75, -0.25, 1.25], np.float32))).round(1),
        (x * 3).long().floor(), (x * 3).long().sign(), (x * 3).long().round(),
        (x * 3).long().trunc(), (x > 0).sign(), (x > 0).ceil()], None),
    "fmod_remainder": ((3, 4), lambda x: [x.fmod(0.7), x.fmod(-1.3), x % 0.7, x % -1.3,
                                          x.remainder(x.abs() + 0.5),
                                          x.remainder(-(x.abs() + 0.5)), 2.5 % (x.abs() + 0.5),
                                          (x * 3).long() % 4, (x * 3).long() % -3,
                                          (x * 3).long().fmod(3)], None),
    "log1p_expm1_erf_square_rsqrt": ((3, 4), lambda x: [
        x.log1p(), x.expm1(), x.erf(), x.square(), (x.abs() + 0.1).rsqrt(),
        (x * 1e-6).log1p() * 1e6, (x * 1e-6).expm1() * 1e6,      # accurate for small x
        (x * 3).long().abs().log1p(), (x * 3).long().erf(), (x * 3).long().square()],
        (-0.9, 2.0)),
    "logical": ((3, 4), lambda x: [(x > 0).logical_and(x < 1), (x > 0).logical_or(x.relu()),
                                   x.logical_xor(x > 0.5), x.relu().logical_not(),
                                   (x > 0).logical_not()], None),
    "any_all": ((3, 4), lambda x: [(x > 0).all(2).logical_or((x > 0).any()),
                                   (x > 1).any(1, keepdim=True),
                                   x.relu().any(dim=(1, 2)).logical_and(x.relu().all()),
                                   (x > -1.5).all(0)], None),
    "prod": ((3, 4), lambda x: [x.prod(2) * x.prod(), x.prod(1, keepdim=True), x.prod(0),
                                (x * 2).long().prod(2), x.relu().prod(2)], None),
    "norm": ((3, 4), lambda x: [x.norm(dim=2) - x.norm(), x.norm(1, dim=2),
                                x.norm(float("inf"), dim=1),
                                x.norm(-np.inf, 2), x.relu().norm(0, dim=2),
                                x.norm(3, dim=(1, 2)), x.norm(2, dim=2, keepdim=True),
                                x.norm(0.5, dim=0)], None),
    "cumsum_cumprod": ((3, 4), lambda x: [x.cumsum(2), x.cumsum(0), (x > 0).cumsum(1),
                                          (x * 3).long().cumsum(2), x.cumprod(2), x.cumprod(1),
                                          x.cumprod(0), (x * 2).long().cumprod(2),
                                          x.relu().cumprod(2)], None),
    "cumprod_long": ((40,), lambda x: x.cumprod(1), (0.8, 1.25)),
    "einsum": ((3, 4), lambda x: [pynn.einsum("bij,bkj->bik", x, x),
                                  pynn.einsum("...j,jk", x, pynn.Tensor(_data((4, 2), seed=5))),
                                  pynn.einsum("bij->b", x) + pynn.einsum("bij->", x),
                                  pynn.einsum("bii->bi", x[:, :, :3]),
                                  pynn.einsum("bij,bij->bi", x, x.exp()),
                                  pynn.einsum("bij,bj->bi", x,
                                              pynn.Tensor(_data((1, 4), seed=6)))], None),
    "gather_index_select": ((3, 5), lambda x: [x.gather(2, x.argsort(2)),
                                               x.gather(1, x.argsort(1)[:, :2, 1:4]),
                                               x.gather(0, x.argsort(0)),
                                               x.index_select(2, pynn.Tensor(np.array([4, 0, 0,
                                                                                       2]))),
                                               x.index_select(1, pynn.Tensor(np.array([2])))],
                            None),
    "scatter": ((3, 5), lambda x: [x.scatter(2, x.argsort(2)[:, :, :2], x * 10),
                                   x.scatter(1, x.argsort(1)[:, :2, :3], -0.5),
                                   x.scatter_add(2, (x > 0).long(), x * 2),
                                   x.scatter_add(1, (x[:, :2, :] > 0).long(), x.exp()),
                                   x.scatter_add(0, x.argsort(0), x.tanh())], None),
    "sort_topk": ((3, 5), lambda x: [*x.sort(2), *x.sort(1, descending=True),
                                     *x.topk(2, dim=2), *x.topk(2, dim=1, largest=False),
                                     x.argsort(0), (x * 2).round().argsort(2),      # ties
                                     (x * 2).round().argsort(2, descending=True),
                                     (x > 0).argsort(1), (x * 2).long().argsort(2)], None),
    "tril_triu": ((3, 4), lambda x: [x.tril(), x.triu(1), x.tril(-1), x.sum(1).triu(),
                                     (x * 3).long().tril(1), (x > 0).triu(-1)], None),
    "roll_flip": ((3, 4), lambda x: [x.flip(1), x.flip(0, 2), x.roll(1, 2), x.roll(-6, 1),
                                     x.roll((2, -1), (0, 1)), x.roll(5)], None),
    "unfold": ((3, 7), lambda x: [x.unfold(2, 2, 1), x.unfold(1, 2, 2), x.unfold(2, 3, 2),
                                  x.unfold(2, 7, 3), x.sum(1).unfold(0, 1, 1)], None),
    "repeat_interleave": ((3, 4), lambda x: [x.repeat_interleave(2, 2),
                                             x.repeat_interleave(3, 0),
                                             x.repeat_interleave([1, 0, 2], 1),
                                             x.repeat_interleave(2),
                                             x.repeat_interleave(1, 1)], None),
}


def _case_model(name):
    pynn.manual_seed(0)
    shape, fn, _ = CASES[name]
    return _model(shape, fn)


@pytest.mark.parametrize("name", sorted(CASES))
def test_op_exports_and_matches_predict(name, tmp_path):
    low, high = CASES[name][2] or (-2.0, 2.0)
    check_export(_case_model(name), tmp_path, low, high)


def test_every_exporter_is_tested():
    """Each op with an exporter appears in at least one model above."""
    seen = {step.op.name for name in CASES for step in _case_model(name).graph.steps}
    untested = sorted(set(EXPORTERS) - seen)
    assert not untested, f"exporters without a test model: {untested}"


def test_two_inputs_and_input_names(tmp_path):
    a, b = Input((3,)), Input((4,))
    out = Dense(7, 2, relu)(pynn.concat([a, b.tanh()], dim=1))
    model = Model([a, b], [out, b * 2])
    check_export(model, tmp_path)
    proto = pynn.onnx.to_onnx(model, input_names=["left", "right"], output_names=["y", "z"])
    assert [i.name for i in proto.graph.input] == ["left", "right"]
    assert [o.name for o in proto.graph.output] == ["y", "z"]


def test_weights_are_initializers_named_like_the_state_dict():
    pynn.manual_seed(0)
    model = _case_model("batchnorm2d")
    proto = pynn.onnx.to_onnx(model)
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in proto.graph.initializer}
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(inits[key], value)
    dims = proto.graph.output[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and [d.dim_value for d in dims[1:]] == [3, 4, 5]


def _node_count(model, op_type):
    return sum(n.op_type == op_type for n in pynn.onnx.to_onnx(model).graph.node)


@pytest.mark.parametrize("name, nodes", [("lstm", 1), ("lstm_one_step_keras", 1),
                                         ("lstm_bidirectional_stacked", 4),
                                         ("lstm_cell_sequence", 8)])
def test_lstm_is_one_onnx_node_unless_the_cell_sequence_is_read(name, nodes):
    """One ONNX LSTM per layer and direction when the model reads the h sequence and the final
    (h, c); one per time step (4 steps, two ops here) when it reads every step's cell state."""
    assert _node_count(_case_model(name), "LSTM") == nodes


def _random_weights(layer, scale, seed):
    """Weights far from the default init (saturating gates), like a trained layer's."""
    rng = np.random.default_rng(seed)
    for p in layer.parameters:
        p.data[...] = rng.normal(0.0, scale, p.shape)
    return layer


def _check_sequence_lengths(model, tmp_path, lengths, features, n_states=0, hidden=None):
    """onnxruntime against predict for inputs (N, T, features) of each length T (and initial
    states (N, *hidden) when the model takes them), at two batch sizes."""
    path = tmp_path / "seq.onnx"
    pynn.onnx.export(model, path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    assert session.get_inputs()[0].shape == ["batch", f"{names[0]}_dim1", features]
    for T in lengths:
        for n in BATCHES:
            xs = [_data((n, T, features), seed=T + n)]
            xs += [_data((n,) + hidden, seed=T + n + k + 1) for k in range(n_states)]
            got = session.run(None, dict(zip(names, xs, strict=True)))
            want = model.predict(xs if len(xs) > 1 else xs[0])
            want = want if isinstance(want, list) else [want]
            for a, b in zip(got, want, strict=True):
                assert a.shape == b.shape
                np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL)


def test_lstm_with_a_free_sequence_length(tmp_path):
    """Input((None, 3)): the exported sequence length is free too; a 2-layer bidirectional LSTM
    with random, large weights (its gates saturate, as a trained layer's do) and a Keras-form
    LSTM on its output match predict at sequence lengths 4 and 11."""
    pynn.manual_seed(0)
    x_in = Input((None, 3))
    seq, h, c = _random_weights(LSTM(3, 5, num_layers=2, bidirectional=True,
                                     return_state=True), 0.8, 1)(x_in)
    last = _random_weights(LSTM(6), 0.8, 2)(seq)
    model = Model(x_in, [seq, h, c, Dense(6, 2)(last)])
    assert _node_count(model, "LSTM") == 5
    _check_sequence_lengths(model, tmp_path, (4, 11), 3)


def test_lstm_with_initial_states_and_a_free_sequence_length(tmp_path):
    pynn.manual_seed(0)
    x_in, h0, c0 = Input((None, 3)), Input((4,)), Input((4,))
    out, h, c = _random_weights(LSTM(3, 4, return_state=True), 0.8, 3)(x_in, h0, c0)
    _check_sequence_lengths(Model([x_in, h0, c0], [out, h, c]), tmp_path, (2, 9), 3,
                            n_states=2, hidden=(4,))


def test_lstm_cell_sequence_with_a_free_length_is_not_exported(tmp_path):
    model = _model((None, 3), lambda x: _raw_lstm(x))
    path = tmp_path / "model.onnx"
    with pytest.raises(pynn.onnx.ExportError, match="LSTMSequence.*cell state at every step.*"
                                                    "fixed sequence length"):
        pynn.onnx.export(model, path)
    assert not path.exists()


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_recurrent_with_initial_states(kind, tmp_path):
    """Initial states as model inputs (pynn's (N, H) per layer and direction)."""
    pynn.manual_seed(0)
    layer = {"LSTM": LSTM, "GRU": GRU, "RNN": RNN}[kind](3, 4, bidirectional=True,
                                                       return_state=True)
    x = Input((5, 3))
    states = [Input((2, 4)) for _ in range(2 if kind == "LSTM" else 1)]
    check_export(Model([x] + states, list(layer(x, *states))), tmp_path)


@pytest.mark.parametrize("opset", [13, 18, 20])
def test_other_opsets(opset, tmp_path):
    """Reductions take their axes as inputs from opset 18; Gelu is one op from opset 20."""
    model = _model((3, 4), lambda x: x.gelu().amax(1) + x.mean(2).logsumexp(1, keepdim=True)
                   + x.var(1) + x.sum(1))
    check_export(model, tmp_path, opset=opset)


NEWER_CASES = ["layer_norm", "layer_norm_2d_plain", "group_norm", "gelu_tanh", "activations",
               "prelu", "upsample_nearest", "upsample_bilinear", "adaptive_avgpool2d",
               "conv1d_same", "conv_transpose2d", "lstm", "gru", "embedding", "take",
               "attention_masks", "attention_per_head_masks", "sdpa"]


@pytest.mark.parametrize("opset", [13, 20])
@pytest.mark.parametrize("name", NEWER_CASES)
def test_newer_ops_at_other_opsets(name, opset, tmp_path):
    """LayerNorm is written out below opset 17; gelu-tanh is one Gelu op from opset 20."""
    low, high = CASES[name][2] or (-2.0, 2.0)
    check_export(_case_model(name), tmp_path, low, high, opset=opset)


TENSOR_OP_CASES = ["rounding", "fmod_remainder", "log1p_expm1_erf_square_rsqrt", "logical",
                   "any_all", "prod", "norm", "cumsum_cumprod", "einsum", "gather_index_select",
                   "sort_topk", "tril_triu", "roll_flip", "unfold", "repeat_interleave"]


@pytest.mark.parametrize("opset", [13, 18])
@pytest.mark.parametrize("name", TENSOR_OP_CASES)
def test_tensor_ops_at_other_opsets(name, opset, tmp_path):
    """Below opset 14 tril/triu is a Where over a run-time mask (no Trilu); from 18 the
    reductions take their axes as inputs."""
    low, high = CASES[name][2] or (-2.0, 2.0)
    check_export(_case_model(name), tmp_path, low, high, opset=opset)


def test_scatter_add_needs_opset_16(tmp_path):
    model = _case_model("scatter")
    with pytest.raises(pynn.onnx.ExportError, match=r"ScatterAdd.*needs opset >= 16; got "
                                                    r"opset 15"):
        pynn.onnx.export(model, tmp_path / "model.onnx", opset=15)
    check_export(model, tmp_path, opset=16)


def test_nonzero_is_eager_only_and_the_error_says_why(tmp_path):
    """Tensor.nonzero refuses a symbolic input; the op applied by hand reaches the exporter,
    which names it and the reason before writing anything."""
    from pynn.ops.index import Nonzero
    x_in = Input((3,))
    with pytest.raises(RuntimeError, match="depends on the values"):
        x_in.nonzero()
    model = Model(x_in, apply(Nonzero(), x_in))
    path = tmp_path / "model.onnx"
    with pytest.raises(pynn.onnx.ExportError, match=r"cannot export the Nonzero\(\) op .*size "
                                                    r"\(the count of nonzero entries\) depends "
                                                    r"on the input's values.*eager-only"):
        pynn.onnx.export(model, path)
    assert not path.exists()


def test_per_head_mask_as_a_model_input(tmp_path):
    """A float (N * heads, L, S) mask given as an input (its batch is N * heads)."""
    pynn.manual_seed(0)
    x_in, m_in = Input((5, 8)), Input((5, 5))
    model = Model([x_in, m_in], MultiHeadAttention(8, 2)(x_in, attn_mask=m_in))
    path = tmp_path / "model.onnx"
    pynn.onnx.export(model, path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for n in BATCHES:
        x, m = _data((n, 5, 8), seed=n), _data((2 * n, 5, 5), seed=n + 1)
        got = session.run(None, {"input_0": x, "input_1": m})[0]
        with pynn.no_grad():
            want = model([pynn.Tensor(x), pynn.Tensor(m)]).numpy()
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


def test_attention_dropout_of_the_functional_form_is_not_exported(tmp_path):
    model = _model((5, 4), lambda x: F.scaled_dot_product_attention(x, x, x, dropout_p=0.1))
    with pytest.raises(pynn.onnx.ExportError, match="ScaledDotProductAttention.*dropout_p"):
        pynn.onnx.export(model, tmp_path / "model.onnx")


# -- the worked examples' architectures ----------------------------------------------------------
def _moons_mlp():
    x_in = Input((2,))
    x = Dense(2, 16, relu)(x_in)
    x = Dense(16, 16, relu)(x)
    return Model(x_in, Dense(16, 1)(x))


def _mnist_mlp():
    x_in = Input((784,))
    x = Dense(784, 256, relu)(x_in)
    x = Dense(256, 128, relu)(x)
    x = Dense(128, 32, relu)(x)
    return Model(x_in, Dense(32, 10, softmax)(x))


def _mnist_cnn():
    x_in = Input((1, 28, 28))
    x = Conv2d(1, 32, 3, padding=1, activation=relu)(x_in)
    x = MaxPool2d(2)(x)
    x = Conv2d(32, 64, 3, padding=1, activation=relu)(x)
    x = MaxPool2d(2)(x)
    x = Flatten()(x)
    x = Dense(64 * 7 * 7, 128, relu)(x)
    return Model(x_in, Dense(128, 10, softmax)(x))


def _fashion_resnet():
    """examples/fashion_resnet.py's shape, narrower: "same" convs with BatchNorm, a residual
    block, a strided block with a 1x1 shortcut, global average pooling."""
    from pynn.layers import BatchNorm2d, GlobalAveragePooling2D
    x_in = Input((1, 28, 28))
    h = BatchNorm2d(8)(Conv2d(1, 8, 3, padding="same")(x_in)).relu()
    r = BatchNorm2d(8)(Conv2d(8, 8, 3, padding="same")(h)).relu()
    h = (h + BatchNorm2d(8)(Conv2d(8, 8, 3, padding="same")(r))).relu()
    s = Conv2d(8, 16, 1, stride=2)(h)
    r = BatchNorm2d(16)(Conv2d(8, 16, 3, stride=2, padding=1)(h)).relu()
    h = (s + BatchNorm2d(16)(Conv2d(16, 16, 3, padding="same")(r))).relu()
    return Model(x_in, Dense(16, 10, softmax)(GlobalAveragePooling2D()(h)))


def _seq_mnist_lstm():
    """examples/seq_mnist_lstm.py's shape: 28 rows of 28 pixels through an LSTM, the last step
    into Dense(10) (fewer units)."""
    from pynn.layers import LSTM
    x_in = Input((28, 28))
    return Model(x_in, Dense(16, 10, softmax)(LSTM(16)(x_in)))


def _words_transformer():
    """examples/words_transformer.py's shape: token and position embeddings, a causal
    self-attention block with LayerNorm and an MLP, logits per position."""
    from pynn.layers import Embedding, LayerNorm, MultiHeadAttention
    T, E = 8, 16
    ids = Input((T,), dtype=np.int64)
    positions = pynn.Tensor(np.arange(T)[None, :])
    h = Embedding(27, E)(ids) + Embedding(T, E)(positions)
    h = h + MultiHeadAttention(E, num_heads=2, causal=True)(LayerNorm(E)(h))
    h = h + Dense(4 * E, E)(Dense(E, 4 * E, "gelu")(LayerNorm(E)(h)))
    return Model(ids, Dense(E, 27)(LayerNorm(E)(h)))


def _transfer_fashion():
    """examples/transfer_fashion.py's clothes model: a nested, partly frozen encoder."""
    image = Input((1, 28, 28))
    h = MaxPool2d(2)(Conv2d(1, 4, 3, padding=1, activation=relu)(image))
    encoder = Model(image, Flatten()(h), name="encoder")
    encoder.trainable = False
    x_in = Input((1, 28, 28))
    return Model(x_in, Dense(4 * 14 * 14, 10, softmax)(encoder(x_in)))


@pytest.mark.parametrize("build", [_moons_mlp, _mnist_mlp, _mnist_cnn, _fashion_resnet,
                                   _seq_mnist_lstm, _transfer_fashion])
def test_worked_example_models(build, tmp_path):
    pynn.manual_seed(0)
    check_export(build(), tmp_path, 0.0, 1.0)


def test_words_transformer_model(tmp_path):
    """Integer token ids in: onnxruntime's logits equal predict's at two batch sizes."""
    pynn.manual_seed(0)
    model = _words_transformer()
    path = tmp_path / "words.onnx"
    pynn.onnx.export(model, path)
    import onnxruntime as ort
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    for n in BATCHES:
        ids = np.random.default_rng(n).integers(0, 27, size=(n, 8)).astype(np.int64)
        got = session.run(None, {name: ids})[0]
        np.testing.assert_allclose(got, model.predict(ids), rtol=1e-5, atol=1e-5)


# -- what cannot be exported ---------------------------------------------------------------------
class Cube(Op):
    """x * w ** 3, an op with no exporter.

    Derivative: d/dx = g * w^3, d/dw = g * 3 x w^2"""

    def forward(self, x, w):
        self.x, self.w = x, w
        return x * w ** 3

    def backward(self, g):
        return g * self.w ** 3, g * 3 * self.x * self.w ** 2


class CubeLayer(Layer):
    param_names = ("weight",)

    def __init__(self, n):
        super().__init__()
        self.weight = pynn.Tensor(np.ones(n, np.float32), requires_grad=True)

    def forward(self, x):
        return apply(Cube(), x, self.weight)


def test_unexportable_op_names_the_layer_and_writes_nothing(tmp_path):
    x_in = Input((3,))
    model = Model(x_in, Dense(3, 2)(CubeLayer(3)(x_in)))
    path = tmp_path / "model.onnx"
    with pytest.raises(pynn.onnx.ExportError, match=r"no exporter for the Cube\(\) op of layer "
                                                    r"cubelayer_1"):
        pynn.onnx.export(model, path)
    assert not path.exists()


def test_unexportable_setting_names_the_op(tmp_path):
    x_in = Input((4, 5))
    model = Model(x_in, x_in[:, [0, 1], [1, 2]])
    path = tmp_path / "model.onnx"
    with pytest.raises(pynn.onnx.ExportError, match="GetItem.*only one integer array"):
        pynn.onnx.export(model, path)
    assert not path.exists()


def test_a_registered_exporter_makes_it_exportable(tmp_path, monkeypatch):
    monkeypatch.setitem(EXPORTERS, "Cube", None)

    @pynn.onnx.exporter("Cube")
    def _cube(g, op, ins, out):
        w3 = g.node("Mul", [ins[1], g.node("Mul", [ins[1], ins[1]])])
        g.node("Mul", [ins[0], w3], [out])

    pynn.manual_seed(0)
    x_in = Input((3,))
    layer = CubeLayer(3)
    layer.weight.data[...] = [0.5, -1.0, 1.5]
    check_export(Model(x_in, layer(x_in)), tmp_path)


def test_import_pynn_needs_no_extras():
    """pynn.onnx and pynn.interop import onnx / safetensors only when a function is called."""
    code = ("import sys, pynn, pynn.onnx, pynn.interop; "
            "print(sorted(m for m in ('onnx', 'onnxruntime', 'safetensors', 'torch') "
            "if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_bad_opset():
    with pytest.raises(ValueError, match="opset"):
        pynn.onnx.to_onnx(_moons_mlp(), opset=9)


# -- the example script --------------------------------------------------------------------------
@needs_mnist
def test_export_onnx_example(tmp_path):
    limit = 512
    onnx_path, weights = tmp_path / "cnn.onnx", tmp_path / "cnn.safetensors"
    _, fields = run_example("export_onnx.py", "--data-dir", DATA_DIR, "--limit", limit,
                            "--onnx", onnx_path, "--weights", weights, cwd=tmp_path)
    # measured: 0.58 with seed 0 (16 steps); chance is 0.10
    assert 0.25 < float(fields["pynn_test_acc"]) <= 1.0
    assert fields["onnx_test_acc"] == fields["pynn_test_acc"]
    assert float(fields["max_abs_diff"]) < 1e-5
    onnx.checker.check_model(onnx.load(str(onnx_path)))
    assert weights.stat().st_size > 4 * 400_000          # the CNN's ~420k float32 weights


# -- building blocks for layers not in this tree yet, against torch directly ---------------------
def run_blocks(build, inputs, opset=17):
    """Run the ONNX nodes `build(g, *input_names)` writes to "out" (plus any extra outputs it
    returns) with onnxruntime. `inputs`: name -> array (its first dim is the free batch)."""
    g = pynn.onnx.GraphBuilder(opset, {})
    values = []
    for name, a in inputs.items():
        g.declare(name, a.dtype, (1,) + a.shape[1:])
        dims = ["batch"] + list(a.shape[1:])
        values.append(onnx.helper.make_tensor_value_info(name, g.elem_type(a.dtype), dims))
    g.declare("out", np.float32, ())
    extra = build(g, *inputs) or []
    proto = g.to_model(values, [(n, np.float32) for n in ["out"] + list(extra)])
    session = ort.InferenceSession(proto.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    return session.run(None, inputs)


def _torch_weights(g, module):
    return {k: g.const(v.detach().numpy()) for k, v in module.state_dict().items()}


@pytest.mark.parametrize("kind, bias, states, opset", [
    ("LSTM", True, True, 17), ("LSTM", False, False, 13), ("GRU", True, True, 17),
    ("GRU", True, False, 14), ("RNN", False, True, 17), ("RNN-relu", True, False, 17)])
def test_recurrent_block_matches_torch(kind, bias, states, opset):
    torch = pytest.importorskip("torch")
    from pynn.onnx_blocks import recurrent
    torch.manual_seed(0)
    base = kind.split("-")[0]
    extra = {"nonlinearity": "relu"} if kind == "RNN-relu" else {}
    net = getattr(torch.nn, base)(3, 4, batch_first=True, bias=bias, **extra).eval()
    n, steps = 5, 6
    x = _data((n, steps, 3), seed=1)
    inputs = {"x": x}
    if states:
        inputs["h0"] = _data((n, 4), seed=2)
        if base == "LSTM":
            inputs["c0"] = _data((n, 4), seed=3)

    def build(g, *names):
        w = _torch_weights(g, net)
        ins = dict(zip(names, names, strict=True))
        _, *rest = recurrent(g, base, "x", w["weight_ih_l0"], w["weight_hh_l0"],
                             w.get("bias_ih_l0"), w.get("bias_hh_l0"), ins.get("h0"),
                             ins.get("c0"), out="out", nonlinearity=extra.get("nonlinearity",
                                                                               "tanh"))
        return rest

    got = run_blocks(build, inputs, opset)
    with torch.no_grad():
        t_states = None
        if states:
            h0 = torch.from_numpy(inputs["h0"])[None]
            t_states = (h0, torch.from_numpy(inputs["c0"])[None]) if base == "LSTM" else h0
        y, h = net(torch.from_numpy(x), t_states)
    want = [y, h[0][0], h[1][0]] if base == "LSTM" else [y, h[0]]
    assert len(got) == len(want)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b.numpy(), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("affine, opset", [(True, 17), (True, 13), (False, 17), (False, 13)])
def test_layer_norm_block_matches_torch(affine, opset):
    torch = pytest.importorskip("torch")
    from pynn.onnx_blocks import layer_norm
    torch.manual_seed(0)
    net = torch.nn.LayerNorm((4, 5), eps=1e-4, elementwise_affine=affine)
    if affine:
        with torch.no_grad():
            net.weight.normal_()
            net.bias.normal_()
    x = _data((6, 3, 4, 5))

    def build(g, name):
        w = _torch_weights(g, net)
        layer_norm(g, name, w.get("weight"), w.get("bias"), 1e-4, 2, "out")

    got = run_blocks(build, {"x": x}, opset)[0]
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


def test_embedding_block_matches_torch():
    torch = pytest.importorskip("torch")
    from pynn.onnx_blocks import embedding
    torch.manual_seed(0)
    net = torch.nn.Embedding(10, 4)
    idx = np.random.default_rng(0).integers(0, 10, (6, 5))

    def build(g, name):
        embedding(g, _torch_weights(g, net)["weight"], name, "out")

    got = run_blocks(build, {"idx": idx})[0]
    np.testing.assert_array_equal(got, net(torch.from_numpy(idx)).detach().numpy())


@pytest.mark.parametrize("transpose, nd", [(False, 1), (True, 1), (True, 2)])
def test_conv_blocks_match_torch(transpose, nd):
    """Conv1d through conv(..., nd=1) with dilation and groups; ConvTranspose1d/2d."""
    torch = pytest.importorskip("torch")
    from types import SimpleNamespace

    from pynn.onnx_blocks import conv_transpose
    from pynn.onnx_ops import conv
    torch.manual_seed(0)
    cls = getattr(torch.nn, f"Conv{'Transpose' if transpose else ''}{nd}d")
    attrs = dict(stride=2, padding=1, dilation=2, groups=2)
    if transpose:
        attrs["output_padding"] = 1
    net = cls(4, 6, 3, **attrs)
    x = _data((3, 4) + (9,) * nd)

    def build(g, name):
        w = _torch_weights(g, net)
        op = SimpleNamespace(attrs=dict(attrs, activation=None))
        (conv_transpose if transpose else conv)(g, op, [name, w["weight"], w["bias"]], "out",
                                                nd)

    got = run_blocks(build, {"x": x})[0]
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)
