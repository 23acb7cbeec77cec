"""Finite-difference checks of the fused neural-network ops (pynn.ops.nn), applied directly on
float64 arrays so that every input (data, weights, bias) is differentiated; and Dropout against
torch's definition. The layers built on these ops are checked against torch.nn in
test_layers.py (Linear, Conv2d, pooling, BatchNorm)."""
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import assert_close

import pynn
from pynn import Tensor
from pynn.layers import BatchNorm1d, BatchNorm2d
from pynn.layers import Dropout as DropoutLayer
from pynn.ops import nn
from pynn.tensor import apply

sys.path.insert(0, str(Path(__file__).parent))
from test_gradcheck import distinct, gradcheck  # noqa: E402

TORCH_CHECKED_OPS = {"Dropout"}
GRADCHECKED_OPS = {"Linear", "Conv2d", "MaxPool2d", "AvgPool2d", "Dropout", "BatchNorm"}

rng = np.random.default_rng(7)


def U(*shape):
    return rng.uniform(-1.0, 1.0, size=shape)


def _pool(cls, k, s, p):
    return cls(kernel_size=(k, k), stride=(s, s), padding=(p, p))


CASES = {
    "linear": (lambda x, w, b: apply(nn.Linear(activation=None), x, w, b),
               [U(3, 4), U(5, 4), U(5)]),
    "linear_tanh_3d": (lambda x, w, b: apply(nn.Linear(activation="tanh"), x, w, b),
                       [U(2, 3, 4), U(5, 4), U(5)]),
    "linear_sigmoid_no_bias": (lambda x, w: apply(nn.Linear(activation="sigmoid"), x, w),
                               [U(3, 4), U(2, 4)]),
    "conv2d": (lambda x, w, b: apply(nn.Conv2d(stride=(1, 1), padding=(1, 1), activation=None),
                                     x, w, b), [U(2, 2, 5, 5), U(3, 2, 3, 3), U(3)]),
    "conv2d_stride_tanh": (lambda x, w, b: apply(nn.Conv2d(stride=(2, 1), padding=(0, 1),
                                                           activation="tanh"), x, w, b),
                           [U(1, 2, 5, 4), U(2, 2, 3, 2), U(2)]),
    "maxpool2d": (lambda x: apply(_pool(nn.MaxPool2d, 2, 2, 0), x), [distinct(2, 2, 4, 4)]),
    "maxpool2d_overlap_pad": (lambda x: apply(_pool(nn.MaxPool2d, 3, 2, 1), x),
                              [distinct(1, 2, 5, 5)]),
    "avgpool2d": (lambda x: apply(_pool(nn.AvgPool2d, 2, 2, 0), x), [U(2, 2, 4, 4)]),
    "avgpool2d_overlap_pad": (lambda x: apply(_pool(nn.AvgPool2d, 3, 2, 1), x), [U(1, 2, 5, 5)]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_gradcheck_nn_ops(name):
    fn, arrays = CASES[name]
    gradcheck(fn, *arrays)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("layer,shape", [(BatchNorm1d, (4, 3)), (BatchNorm1d, (3, 2, 4)),
                                         (BatchNorm2d, (2, 2, 3, 3))])
def test_gradcheck_batchnorm(layer, shape, training):
    bn = layer(shape[1]).train(training)
    bn.running_mean = rng.uniform(-0.5, 0.5, shape[1])
    bn.running_var = rng.uniform(0.5, 1.5, shape[1])
    gradcheck(lambda x, g, b: apply(nn.BatchNorm(module=bn), x, g, b),
              U(*shape), rng.uniform(0.5, 1.5, shape[1]), U(shape[1]))


@pytest.mark.parametrize("p", [0.0, 0.3, 0.7])
def test_gradcheck_dropout(p):
    layer = DropoutLayer(p)

    def fn(x):
        pynn.manual_seed(5)            # the same mask on every evaluation
        return apply(nn.Dropout(p=p, module=layer), x)
    gradcheck(fn, U(4, 6))


@pytest.mark.parametrize("p", [0.0, 0.25, 0.6])
def test_dropout_against_torch(p):
    """torch's dropout on the mask pynn drew: kept entries x / (1 - p), the others 0, and the
    gradient the same mask; in eval mode (and for p = 0) both are the identity."""
    x = U(8, 10)
    layer = DropoutLayer(p)
    xt = torch.tensor(x, requires_grad=True)
    xp = Tensor(x, dtype="float64", requires_grad=True)
    y = apply(nn.Dropout(p=p, module=layer), xp)
    kept = torch.tensor(y.numpy() != 0)
    # torch's F.dropout is x * mask / (1 - p) for a Bernoulli(1 - p) mask: that formula on ours
    yt = xt * kept / (1 - p) if p < 1 else xt * 0
    g = rng.standard_normal(x.shape)
    y.backward(g)
    yt.backward(torch.tensor(g))
    assert_close("dropout output", y, yt, rtol=1e-15)
    assert_close("dropout grad", xp.grad, xt.grad, rtol=1e-15)
    layer.eval()
    xp.grad = None
    ye = apply(nn.Dropout(p=p, module=layer), xp)
    assert_close("dropout eval", ye, F.dropout(torch.tensor(x), p, training=False))
    if p == 0:
        layer.train()
        assert_close("dropout p=0", apply(nn.Dropout(p=p, module=layer), xp),
                     F.dropout(torch.tensor(x), 0.0, training=True))
