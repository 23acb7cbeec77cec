"""The compiled Model reuses its buffers: after the first step at a shape, a training step
allocates no new arrays inside the plan, and memory does not grow from step to step."""
import tracemalloc

import numpy as np
import pytest
from alloc_helpers import peak_bytes

import pynn
from pynn import Input, Model
from pynn.layers import BatchNorm1d, BatchNorm2d, Conv2d, Dense, Flatten, MaxPool2d
from pynn.losses import categorical_cross_entropy
from pynn.optimizers import Adam


def cnn(batch_norm=False):
    pynn.manual_seed(0)
    x_in = Input((1, 12, 12))
    x = Conv2d(1, 4, 3, padding=1, activation="relu")(x_in)
    if batch_norm:
        x = BatchNorm2d(4)(x)
    x = MaxPool2d(2)(x)
    x = Flatten()(x)
    x = Dense(4 * 6 * 6, 16, "relu")(x)
    if batch_norm:
        x = BatchNorm1d(16)(x)
    x = Dense(16, 10, "softmax")(x)
    return Model(x_in, x)


def step(model, opt, xb, yb):
    pred = model(xb)
    loss = categorical_cross_entropy(pred, yb)
    loss.zero_grad()
    loss.backward()
    opt.update(model.parameters)
    return loss.item()


def batches(n=8, size=16, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.random((size, 1, 12, 12), dtype=np.float32), rng.integers(0, 10, size))
            for _ in range(n)]


@pytest.mark.parametrize("batch_norm", [False, True])
def test_buffers_are_the_same_arrays_after_the_first_step(batch_norm):
    model, opt = cnn(batch_norm), Adam(1e-3)
    data = batches()
    step(model, opt, *data[0])
    (plan,) = model._plans.values()
    first = [(id(b), b.shape) for b in plan.buffers()]
    grads = [id(p.grad.data) for p in model.parameters]
    assert first, "the plan should own buffers"
    for xb, yb in data[1:]:
        step(model, opt, xb, yb)
    assert [(id(b), b.shape) for b in plan.buffers()] == first
    assert [id(p.grad.data) for p in model.parameters] == grads
    assert len(model._plans) == 1


def test_a_new_batch_size_gets_its_own_plan_and_the_old_one_is_kept():
    model, opt = cnn(), Adam(1e-3)
    (xa, ya), (xb, yb) = batches(2, size=16)[0], batches(1, size=5)[0]
    step(model, opt, xa, ya)
    step(model, opt, xb, yb)
    step(model, opt, xa, ya)
    assert len(model._plans) == 2


@pytest.mark.parametrize("batch_norm", [False, True])
def test_memory_does_not_grow_across_steps(batch_norm):
    model, opt = cnn(batch_norm), Adam(1e-3)
    data = batches(40)
    for xb, yb in data[:5]:
        step(model, opt, xb, yb)
    tracemalloc.start()
    try:
        for xb, yb in data[5:15]:
            step(model, opt, xb, yb)
        after_10, _ = tracemalloc.get_traced_memory()
        for xb, yb in data[15:]:
            step(model, opt, xb, yb)
        after_35, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # 25 more steps may not keep anything: no graph, no per-step buffer survives a step
    assert after_35 - after_10 < 64 * 1024, (after_10, after_35)


@pytest.mark.parametrize("batch_norm", [False, True])
def test_a_step_allocates_less_than_one_activation(batch_norm):
    """After the first steps, a whole training step (model forward and backward, the loss, the
    optimizer) allocates less at its peak than one conv activation of the batch: every
    full-size array is a reused buffer. (Before BatchNorm used buffers, its step peaked at
    about six activations.)"""
    model, opt = cnn(batch_norm), Adam(1e-3)
    data = batches(10, size=64)
    for xb, yb in data[:3]:
        step(model, opt, xb, yb)
    activation_bytes = 64 * 4 * 12 * 12 * 4        # Conv2d(1, 4) output at batch 64, float32
    peak = peak_bytes(lambda: [step(model, opt, xb, yb) for xb, yb in data[3:]])
    assert peak < activation_bytes, (peak, activation_bytes)
