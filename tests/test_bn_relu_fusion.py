"""A compiled Model lets a BatchNorm whose output feeds only a ReLU apply it (BatchNorm.fuse_relu,
the ReLU passing through): outputs and gradients must equal the unfused eager layers' bit for
bit, in training and in eval mode, with and without affine parameters, NaN included; and
nothing is fused where another op reads the BatchNorm's output."""
import numpy as np
import pytest

import pynn
from pynn import Input, Model, Tensor
from pynn.layers import BatchNorm1d, BatchNorm2d, Conv2d, Dense, Flatten, ReLU
from pynn.ops import nn as N


def _apply(layers, x):
    for layer in layers:
        x = layer(x)
    return x


def _fused(model):
    """The fused BatchNorm ops of every plan the model compiled (None if one is not fused)."""
    ops = [op for plan in model._plans.values() for op in plan.ops if isinstance(op, N.BatchNorm)]
    return ops if all(op.relu for op in ops) else None


def _step(fn, params, x, seed):
    xt = Tensor(x, requires_grad=True)
    for p in params:
        p.grad = None
    out = fn(xt)
    out.backward(Tensor(seed))
    return [out.data.copy(), xt.grad.data.copy()] + [p.grad.data.copy() for p in params]


@pytest.mark.parametrize("kind", ["2d", "1d"])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("training", [True, False])
def test_fused_plan_equals_unfused_eager_layers(kind, affine, training):
    pynn.manual_seed(0)
    if kind == "2d":
        shape, layers = (2, 6, 6), [Conv2d(2, 3, 3, padding=1), BatchNorm2d(3, affine=affine),
                                    ReLU(), Flatten()]
    else:
        shape, layers = (5,), [Dense(5, 7), BatchNorm1d(7, affine=affine), ReLU()]
    x_in = Input(shape)
    model = Model(x_in, _apply(layers, x_in))
    bn = layers[1]
    rng = np.random.default_rng(1)
    params = [p for layer in layers for p in layer.parameters]
    for step in range(2):
        x = rng.standard_normal((4,) + shape).astype(np.float32)
        x[0].flat[0] = np.nan if step == 1 else x[0].flat[0]
        seed = rng.standard_normal(model(x).shape).astype(np.float32)
        bn.train(training)
        running = [bn.running_mean.copy(), bn.running_var.copy()]
        got = _step(model, params, x, seed)
        after_model = [bn.running_mean.copy(), bn.running_var.copy()]
        bn.running_mean[:], bn.running_var[:] = running
        want = _step(lambda t: _apply(layers, t), params, x, seed)
        assert _fused(model)
        for i, (a, b) in enumerate(zip(got, want)):
            np.testing.assert_array_equal(a, b, err_msg=f"step {step}, array {i}")
        for a, b in zip(after_model, [bn.running_mean, bn.running_var]):
            np.testing.assert_array_equal(a, b)
    bn.train(True)


def test_no_fusion_when_another_op_reads_the_batchnorm():
    pynn.manual_seed(2)
    x_in = Input((4,))
    bn = BatchNorm1d(4)
    h = bn(Dense(4, 4)(x_in))
    model = Model(x_in, [ReLU()(h), h * 2.0])
    x = np.random.default_rng(3).standard_normal((6, 4)).astype(np.float32)
    relu, doubled = model(x)
    assert [op.relu for plan in model._plans.values() for op in plan.ops
            if isinstance(op, N.BatchNorm)] == [False]
    np.testing.assert_array_equal(relu.data, np.maximum(doubled.data / 2, 0))


def test_the_plan_picture_shows_the_fusion():
    x_in = Input((3,))
    model = Model(x_in, ReLU()(BatchNorm1d(3)(Dense(3, 3)(x_in))))
    model(np.ones((4, 3), np.float32)).sum().backward()
    text = pynn.graph.draw(model, plan=True)
    assert "BatchNorm + ReLU, fused" in text
    assert "Relu (computed by the BatchNorm before it)" in text
