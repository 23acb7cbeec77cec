"""LayerNorm, GroupNorm and the BatchNorm options (affine=False, track_running_stats=False,
num_features inferred) against torch in float64, eagerly and in a compiled Model, and the
finite-difference check of the ops."""
import numpy as np
import pytest
import torch.nn as tnn
from test_gradcheck import gradcheck
from torch_helpers import check_layer

import pynn
from pynn import Input, Model, Tensor
from pynn.layers import BatchNorm1d, BatchNorm2d, GroupNorm, LayerNorm
from pynn.ops import nn, norm
from pynn.tensor import apply

TORCH_CHECKED_OPS = {"LayerNorm", "GroupNorm", "BatchNorm"}
GRADCHECKED_OPS = {"LayerNorm", "GroupNorm", "BatchNorm"}


def randomize(layer, seed=0):
    """Non-trivial affine parameters, so that a wrong weight/bias gradient shows."""
    rng = np.random.default_rng(seed)
    for name in layer.param_names:
        p = getattr(layer, name)
        if p is not None:
            p.data = rng.standard_normal(p.shape)
    return layer


@pytest.mark.parametrize("shape, normalized", [((4, 6), 6), ((2, 3, 5), (5,)),
                                               ((2, 3, 4, 5), (4, 5))])
@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm(shape, normalized, affine):
    layer = LayerNorm(normalized, eps=1e-4, elementwise_affine=affine)
    check_layer(randomize(layer), lambda: tnn.LayerNorm(normalized, eps=1e-4,
                                                        elementwise_affine=affine),
                shape, params=layer.param_names if affine else ())


def test_layer_norm_without_bias():
    layer = LayerNorm(6, bias=False)
    check_layer(randomize(layer), lambda: tnn.LayerNorm(6, bias=False), (4, 6), params=["weight"])


@pytest.mark.parametrize("groups, shape", [(2, (3, 4, 5)), (3, (2, 6, 3, 3)), (1, (2, 4)),
                                           (4, (2, 4, 5))])
@pytest.mark.parametrize("affine", [True, False])
def test_group_norm(groups, shape, affine):
    layer = GroupNorm(groups, shape[1], affine=affine)
    check_layer(randomize(layer), lambda: tnn.GroupNorm(groups, shape[1], affine=affine), shape,
                params=layer.param_names if affine else ())


@pytest.mark.parametrize("cls, tcls, shape", [(BatchNorm1d, tnn.BatchNorm1d, (6, 3)),
                                              (BatchNorm2d, tnn.BatchNorm2d, (4, 3, 2, 5))])
@pytest.mark.parametrize("affine, track", [(False, True), (True, False), (False, False)])
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_options(cls, tcls, shape, affine, track, training):
    layer = randomize(cls(3, affine=affine, track_running_stats=track))
    if track:
        layer.running_mean[...] = [0.5, -0.2, 0.1]
        layer.running_var[...] = [1.5, 0.7, 2.0]
    assert (layer.running_mean is None) == (not track) and (layer.weight is None) == (not affine)
    check_layer(layer, lambda: tcls(3, affine=affine, track_running_stats=track), shape,
                params=layer.param_names, buffers=layer.buffer_names, training=training)


@pytest.mark.parametrize("cls, shape", [(BatchNorm1d, (5, 3, 4)), (BatchNorm2d, (2, 3, 4, 4))])
def test_batch_norm_infers_num_features(cls, shape):
    layer = cls()
    assert layer.num_features is None
    x_in = Input(shape[1:])
    model = Model(x_in, layer(x_in))
    assert layer.num_features == 3 and layer.weight.shape == (3,)
    assert model(np.ones(shape, np.float32)).shape == shape
    assert cls().config()["num_features"] is None


def test_errors_name_the_layer_and_shapes():
    with pytest.raises(ValueError, match=r"LayerNorm\(\(5,\)\).*\(2, 4\)"):
        LayerNorm(5)(Tensor.randn(2, 4))
    with pytest.raises(ValueError, match="multiple of num_groups"):
        GroupNorm(3, 4)
    with pytest.raises(ValueError, match=r"GroupNorm\(2, 4\).*\(2, 6\)"):
        GroupNorm(2, 4)(Tensor.randn(2, 6))


def test_model_with_layer_norm_saves_and_loads(tmp_path):
    pynn.manual_seed(0)
    x_in = Input((3, 4))
    model = Model(x_in, GroupNorm(1, 3)(LayerNorm(4)(x_in)))
    model.save(tmp_path / "m.pynn")
    x = np.random.default_rng(0).standard_normal((2, 3, 4)).astype(np.float32)
    np.testing.assert_allclose(pynn.load_model(tmp_path / "m.pynn").predict(x), model.predict(x),
                               rtol=1e-6)


class _Module:
    def __init__(self, training, track):
        self.training, self.eps, self.momentum = training, 1e-5, 0.1
        self.running_mean = np.array([0.1, -0.3, 0.2]) if track else None
        self.running_var = np.array([1.2, 0.8, 1.5]) if track else None


rng = np.random.default_rng(7)


def test_gradcheck_layer_norm():
    gradcheck(lambda x, w, b: apply(norm.LayerNorm(ndim=2, eps=1e-5), x, w, b),
              rng.standard_normal((2, 3, 4)), rng.standard_normal((3, 4)),
              rng.standard_normal((3, 4)))
    gradcheck(lambda x: apply(norm.LayerNorm(ndim=1, eps=1e-5), x), rng.standard_normal((3, 5)))


def test_gradcheck_group_norm():
    gradcheck(lambda x, w, b: apply(norm.GroupNorm(num_groups=2, eps=1e-5), x, w, b),
              rng.standard_normal((2, 4, 3)), rng.standard_normal(4), rng.standard_normal(4))
    gradcheck(lambda x: apply(norm.GroupNorm(num_groups=3, eps=1e-5), x),
              rng.standard_normal((2, 6, 2, 2)))


@pytest.mark.parametrize("training, track", [(True, True), (False, True), (False, False)])
def test_gradcheck_batch_norm(training, track):
    gradcheck(lambda x: apply(nn.BatchNorm(module=_Module(training, track)), x),
              rng.standard_normal((4, 3, 2)))
    gradcheck(lambda x, w, b: apply(nn.BatchNorm(module=_Module(training, track)), x, w, b),
              rng.standard_normal((4, 3)), rng.standard_normal(3), rng.standard_normal(3))


def test_batchnorm_training_keeps_no_xhat_and_refuses_a_changed_input():
    """In training, BatchNorm's kernels keep only the batch statistics: backward recomputes xhat
    from the input (no activation-sized xhat buffer), so an in-place change of the input
    before backward is refused, as torch refuses it."""
    from pynn.layers import Conv2d
    x_in = Input((2, 6, 6))
    model = Model(x_in, BatchNorm2d(3)(Conv2d(2, 3, 3)(x_in)))
    model(np.ones((4, 2, 6, 6), np.float32)).sum().backward()
    bn_ops = [op for plan in model._plans.values() for op in plan.ops
              if type(op).__name__ == "BatchNorm"]
    assert bn_ops and all("xhat" not in op._buffers for op in bn_ops)

    bn = BatchNorm2d(3)
    h = Tensor(np.random.default_rng(0).standard_normal((4, 3, 5, 5)).astype(np.float32),
               requires_grad=True) * 2
    y = bn(h).sum()
    with pynn.no_grad():
        h += 1
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.backward()
