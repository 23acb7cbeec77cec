"""Embedding against torch.nn.Embedding (lookup, weight gradient with repeated ids, padding_idx),
eagerly and inside a compiled Model, plus the finite-difference check of the op."""
import numpy as np
import pytest
import torch
from test_gradcheck import gradcheck
from torch_helpers import as_float64, close

import pynn
from pynn import Input, Model, Tensor
from pynn.layers import Embedding
from pynn.ops import recurrent as R
from pynn.tensor import apply

TORCH_CHECKED_OPS = {"Embedding"}
GRADCHECKED_OPS = {"Embedding"}

IDS = np.array([[1, 4, 4, 0], [3, 0, 1, 1], [4, 4, 4, 2]])


@pytest.mark.parametrize("padding_idx", [None, 0, -1])
@pytest.mark.parametrize("mode", ["eager", "model"])
def test_against_torch(mode, padding_idx):
    pynn.manual_seed(0)
    layer = as_float64(Embedding(5, 3, padding_idx=padding_idx))
    if padding_idx is not None:
        assert not layer.weight.data[padding_idx].any()      # the padding row starts at zero
    module = torch.nn.Embedding(5, 3, padding_idx=padding_idx).double()
    with torch.no_grad():
        module.weight.copy_(torch.from_numpy(layer.weight.data))
    yt = module(torch.from_numpy(IDS))
    g = np.random.default_rng(0).standard_normal(yt.shape)
    yt.backward(torch.from_numpy(g))
    if mode == "eager":
        y = layer(Tensor(IDS))
    else:
        # a compiled Model passes every input in its float dtype today; the op turns the
        # (whole-number) floats back into ids
        x_in = Input(IDS.shape[1:], dtype=np.float64)
        y = Model(x_in, layer(x_in))(IDS)
    y.backward(g)
    close("output", y, yt)
    close("weight grad", layer.weight.grad, module.weight.grad)


def test_errors():
    with pytest.raises(ValueError, match="padding_idx"):
        Embedding(5, 3, padding_idx=5)
    with pytest.raises(IndexError, match="5 rows"):
        Embedding(5, 3)(Tensor(np.array([1, 5])))
    with pytest.raises(ValueError, match="whole numbers"):
        Embedding(5, 3)(Tensor(np.array([1.5])))


def test_gradcheck_embedding():
    w = np.random.default_rng(1).standard_normal((5, 3))
    # (padding_idx deliberately cuts the padding row's gradient, which finite differences would
    # see: that rule is checked against torch above)
    gradcheck(lambda w: apply(R.Embedding(padding_idx=None), Tensor(IDS), w), w)
