"""The compiled functional Model: against PyTorch, against the same layers run eagerly, and the
behaviour a user relies on (free batch dim, parameters, train/eval, predict, summary, state
dicts, gradient accumulation, errors, multi-input/output, loose eager ops, training)."""
import re

import numpy as np
import pytest
import torch
import torch.nn as tnn
import torch.nn.functional as F
from torch_helpers import as_float64_model, close

import pynn
from pynn import Input, Model, Tensor
from pynn.activations import relu, softmax
from pynn.layers import (
    AvgPool2d,
    BatchNorm1d,
    BatchNorm2d,
    Conv2d,
    Dense,
    Dropout,
    Flatten,
    MaxPool2d,
)
from pynn.losses import categorical_cross_entropy, cross_entropy
from pynn.optimizers import Adam

F64 = np.float64


def _rng(seed=0):
    return np.random.default_rng(seed)


def _copy(pynn_layer, torch_layer):
    with torch.no_grad():
        torch_layer.weight.copy_(torch.from_numpy(pynn_layer.weight.data.astype(F64)))
        if pynn_layer.bias is not None:
            torch_layer.bias.copy_(torch.from_numpy(pynn_layer.bias.data.astype(F64)))


def _grads(params):
    return [None if p.grad is None else p.grad.data.copy() for p in params]


def _clear(params):
    for p in params:
        p.grad = None


# -- the same network in torch ----------------------------------------------------------------
def _cnn(dtype=F64, batchnorm=False):
    """conv(relu) -> maxpool -> [batchnorm] -> conv(tanh, stride 2) -> avgpool -> flatten ->
    dense(relu) -> dense(softmax)"""
    pynn.manual_seed(0)
    layers = [Conv2d(1, 4, 3, padding=1, activation=relu), MaxPool2d(2)]
    if batchnorm:
        layers.append(BatchNorm2d(4))
    layers += [Conv2d(4, 6, (3, 2), stride=(2, 1), padding=(1, 0), activation="tanh"),
               AvgPool2d(2, stride=1), Flatten(), Dense(6 * 2 * 4, 12, relu),
               Dense(12, 5, softmax)]
    x_in = Input((1, 12, 12), dtype=dtype)
    x = x_in
    for layer in layers:
        x = layer(x)
    model = Model(x_in, x)
    if dtype == F64:
        as_float64_model(model)
    return model, layers


def _torch_cnn(layers, batchnorm=False):
    mods = [tnn.Conv2d(1, 4, 3, padding=1), tnn.ReLU(), tnn.MaxPool2d(2)]
    if batchnorm:
        mods.append(tnn.BatchNorm2d(4))
    mods += [tnn.Conv2d(4, 6, (3, 2), stride=(2, 1), padding=(1, 0)), tnn.Tanh(),
             tnn.AvgPool2d(2, stride=1), tnn.Flatten(), tnn.Linear(48, 12), tnn.ReLU(),
             tnn.Linear(12, 5)]
    net = tnn.Sequential(*mods).double()
    with_params = [m for m in mods if isinstance(m, (tnn.Conv2d, tnn.Linear, tnn.BatchNorm2d))]
    for p_layer, t_layer in zip([l for l in layers if l.parameters], with_params):
        _copy(p_layer, t_layer)
    return net


@pytest.mark.parametrize("batchnorm", [False, True])
@pytest.mark.parametrize("target", ["labels", "onehot"])
def test_whole_model_matches_torch(batchnorm, target):
    model, layers = _cnn(batchnorm=batchnorm)
    net = _torch_cnn(layers, batchnorm)
    rng = _rng(1)
    x = rng.standard_normal((6, 1, 12, 12))
    y = rng.integers(0, 5, 6)
    t = y if target == "labels" else np.eye(5)[y]
    for step in range(2):   # twice: the second call reuses every buffer
        model.zero_grad()
        net.zero_grad()
        loss = categorical_cross_entropy(model(x), t)
        loss.backward()
        tloss = F.cross_entropy(net(torch.from_numpy(x)), torch.from_numpy(t))
        tloss.backward()
        close(f"step {step} loss", np.float64(loss.item()), tloss)
        tparams = [p for p in net.parameters()]
        assert len(model.parameters) == len(tparams)
        for i, (p, tp) in enumerate(zip(model.parameters, tparams)):
            close(f"step {step} grad of parameter {i} {p.shape}", p.grad, tp.grad)
    if batchnorm:
        bn = next(l for l in layers if isinstance(l, BatchNorm2d))
        close("running_mean", bn.running_mean, net[3].running_mean)
        close("running_var", bn.running_var, net[3].running_var)
        model.eval()
        net.eval()
        close("eval output", model(x), torch.softmax(net(torch.from_numpy(x)), 1))


# -- compiled against eager ----------------------------------------------------------------------
def _apply(layers, x):
    for layer in layers:
        x = layer(x)
    return x


@pytest.mark.parametrize("dtype", [F64, np.float32])
def test_compiled_model_equals_eager_layers(dtype):
    pynn.manual_seed(5)
    layers = [Conv2d(2, 4, 3, padding=1, activation="relu"), BatchNorm2d(4), MaxPool2d(2),
              Conv2d(4, 4, 3, stride=2, padding=1, bias=False), Flatten(), Dropout(0.3),
              Dense(4 * 2 * 2, 8, "gelu"), BatchNorm1d(8), Dense(8, 3, "softmax")]
    x_in = Input((2, 8, 8), dtype=dtype)
    model = Model(x_in, _apply(layers, x_in))
    if dtype == F64:
        as_float64_model(model)
    params = model.parameters
    bns = [l for l in layers if isinstance(l, (BatchNorm1d, BatchNorm2d))]
    rng = _rng(2)
    for step, n in enumerate([5, 5, 3]):
        x = rng.standard_normal((n, 2, 8, 8)).astype(dtype)
        y = rng.integers(0, 3, n)
        stats = [(b.running_mean.copy(), b.running_var.copy()) for b in bns]

        pynn.manual_seed(100 + step)           # same dropout mask in both runs
        out_c = model(Tensor(x, dtype=dtype))
        loss_c = categorical_cross_entropy(out_c, y)
        _clear(params)
        loss_c.backward()
        grads_c = _grads(params)
        stats_c = [(b.running_mean.copy(), b.running_var.copy()) for b in bns]

        for b, (m, v) in zip(bns, stats):
            b.running_mean[...], b.running_var[...] = m, v
        pynn.manual_seed(100 + step)
        out_e = _apply(layers, Tensor(x, dtype=dtype))
        loss_e = categorical_cross_entropy(out_e, y)
        _clear(params)
        loss_e.backward()
        grads_e = _grads(params)

        assert out_c.dtype == out_e.dtype == dtype
        np.testing.assert_allclose(out_c.data, out_e.data, rtol=1e-12, atol=0)
        np.testing.assert_allclose(loss_c.item(), loss_e.item(), rtol=1e-12)
        for i, (gc, ge) in enumerate(zip(grads_c, grads_e)):
            assert gc.dtype == dtype
            np.testing.assert_allclose(gc, ge, rtol=1e-12, atol=1e-300, err_msg=f"param {i}")
        for (mc, vc), b in zip(stats_c, bns):
            np.testing.assert_array_equal(mc, b.running_mean)
            np.testing.assert_array_equal(vc, b.running_var)


def test_compiled_input_gradient_equals_eager():
    pynn.manual_seed(6)
    layers = [Dense(5, 6, "tanh"), Dense(6, 2)]
    x_in = Input((5,), dtype=F64)
    model = as_float64_model(Model(x_in, _apply(layers, x_in)))
    x = _rng(3).standard_normal((4, 5))
    g = _rng(4).standard_normal((4, 2))
    xc = Tensor(x, requires_grad=True, dtype=F64)
    model(xc).backward(g)
    xe = Tensor(x, requires_grad=True, dtype=F64)
    _apply(layers, xe).backward(g)
    np.testing.assert_allclose(xc.grad.data, xe.grad.data, rtol=1e-12, atol=1e-300)


# -- inputs and batch sizes --------------------------------------------------------------------
def _mlp(dtype=F64, seed=0):
    pynn.manual_seed(seed)
    x_in = Input((6,), dtype=dtype)
    h = Dense(6, 8, relu)(x_in)
    out = Dense(8, 3)(h)
    model = Model(x_in, out)
    return as_float64_model(model) if dtype == F64 else model


def _eager_forward_backward(model, x, seed_grad):
    """What the model's layers give when run eagerly (reference for the compiled run)."""
    params = model.parameters
    saved = _grads(params)
    _clear(params)
    out = _apply(model.layers, Tensor(x, dtype=model.dtype))
    out.backward(seed_grad)
    result = out.data.copy(), _grads(params)
    for p, g in zip(params, saved):
        p.grad = None if g is None else Tensor(g, dtype=g.dtype)
    return result


def test_free_batch_dim_any_size_and_alternating_shapes():
    model = _mlp()
    rng = _rng(5)
    xs = {n: rng.standard_normal((n, 6)) for n in (8, 3, 1)}
    gs = {n: rng.standard_normal((n, 3)) for n in xs}
    want = {n: _eager_forward_backward(model, xs[n], gs[n]) for n in xs}
    # several outputs of different shapes alive at once, backpropagated out of order
    outs = {n: model(xs[n]) for n in (8, 3, 1)}
    for n in (3, 8, 1):
        model.zero_grad()
        np.testing.assert_array_equal(outs[n].data, want[n][0])
        outs[n].backward(gs[n])
        for g, w in zip(_grads(model.parameters), want[n][1]):
            np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-300)
    # alternate shapes call after call: each batch gets its own buffers, nothing mixes
    for n in (8, 3, 8, 1, 3, 8):
        out = model(xs[n])
        np.testing.assert_array_equal(out.data, want[n][0])
    assert len(model._plans) == 3


def test_buffers_are_reused_call_after_call():
    pynn.manual_seed(14)
    x_in = Input((2, 6, 6))
    h = Flatten()(MaxPool2d(2)(Conv2d(2, 3, 3, padding=1, activation="relu")(x_in)))
    model = Model(x_in, Dense(27, 4)(h))
    rng = _rng(19)

    def step(n):
        out = model(rng.standard_normal((n, 2, 6, 6)).astype(np.float32))
        out.sum().backward()

    step(8)
    step(8)
    plan8 = next(p for k, p in model._plans.items() if k[0][0][0] == (8, 2, 6, 6))
    before = [id(b) for b in plan8.buffers()]
    assert before
    step(3)
    step(8)
    assert [id(b) for b in plan8.buffers()] == before


def test_dataloader_short_last_batch():
    from pynn.data import DataLoader
    model = _mlp(np.float32)
    x = _rng(6).standard_normal((70, 6)).astype(np.float32)
    y = _rng(6).integers(0, 3, 70)
    sizes = []
    for xb, yb in DataLoader(x, y, batch_size=32):
        loss = cross_entropy(model(xb), yb)
        loss.zero_grad()
        loss.backward()
        sizes.append(len(xb))
        assert all(p.grad.shape == p.shape for p in model.parameters)
    assert sizes == [32, 32, 6]


def test_outputs_are_not_overwritten_by_later_calls():
    model = _mlp()
    a = model(np.ones((4, 6)))
    first = a.data.copy()
    model(np.zeros((4, 6)))
    np.testing.assert_array_equal(a.data, first)


def test_concrete_tensor_as_input():
    """Tensor.randn((64, 784)) as the model's input, as in the original pynn sample."""
    pynn.manual_seed(7)
    x = Tensor.randn((64, 784))
    d1, d2 = Dense(784, 32, relu), Dense(32, 10, softmax)
    out = d2(d1(x))
    model = Model(x, out)
    assert model.input_shapes == [(784,)]
    np.testing.assert_array_equal(model(x).data, out.data)
    other = Tensor.randn((16, 784))
    assert model(other).shape == (16, 10)
    np.testing.assert_allclose(model(other).data, d2(d1(other)).data, rtol=1e-6)
    loss = categorical_cross_entropy(model(x), np.arange(64) % 10)
    loss.backward()
    assert d1.weight.grad.shape == (32, 784) and np.any(d1.weight.grad.data != 0)


def test_input_dtype_is_kept():
    for dtype in (np.float32, F64):
        x_in = Input((3, 4), dtype=dtype)
        assert x_in.dtype == dtype and x_in.shape == (1, 3, 4)
        model = Model(x_in, Flatten()(MaxPool2d(1)(x_in.reshape(-1, 1, 3, 4))))
        assert model(np.ones((2, 3, 4))).dtype == dtype
    assert Input(5).shape == (1, 5)


# -- parameters, zero_grad, train/eval ---------------------------------------------------------
def test_parameters_stable_order_and_callable():
    model, layers = _cnn()
    params = model.parameters
    assert isinstance(params, list)
    expected = [p for l in layers for p in l.parameters]
    assert len(params) == len(expected) == 8
    assert all(a is b for a, b in zip(params, expected))
    assert all(a is b for a, b in zip(model.parameters(), params))
    assert all(a is b for a, b in zip(model.parameters, params))
    assert all(p.requires_grad for p in params)


def test_shared_layer_parameters_listed_once():
    dense = Dense(4, 4, "tanh")
    x_in = Input((4,))
    model = Model(x_in, dense(dense(x_in)))
    assert len(model.parameters) == 2 and len(model.layers) == 1
    x = _rng(7).standard_normal((3, 4))
    model(x).sum().backward()
    g_model = dense.weight.grad.data.copy()
    _clear(model.parameters)
    dense(dense(Tensor(x))).sum().backward()
    np.testing.assert_allclose(g_model, dense.weight.grad.data, rtol=1e-6)


def test_zero_grad():
    model = _mlp()
    model(np.ones((2, 6))).sum().backward()
    assert all(np.any(p.grad.data != 0) for p in model.parameters)
    grads = [p.grad for p in model.parameters]
    model.zero_grad()
    for p, g in zip(model.parameters, grads):
        assert p.grad is g and np.all(p.grad.data == 0)    # zeroed in place
    # loss.zero_grad() reaches the parameters through the model's node, as in the user's loop
    loss = model(np.ones((2, 6))).sum()
    loss.backward()
    first = _grads(model.parameters)
    loss = model(np.ones((2, 6))).sum()
    loss.zero_grad()
    loss.backward()
    for g, f in zip(_grads(model.parameters), first):
        np.testing.assert_array_equal(g, f)


def test_train_eval_switch_dropout_and_batchnorm():
    pynn.manual_seed(8)
    x_in = Input((10,), dtype=F64)
    bn = BatchNorm1d(10)
    drop = Dropout(0.5)
    model = as_float64_model(Model(x_in, drop(bn(x_in))))
    assert model.training and bn.training and drop.training
    x = _rng(8).normal(3.0, 2.0, (64, 10))
    a, b = model(x).data, model(x).data
    assert not np.array_equal(a, b)                  # dropout is active
    assert np.mean(a == 0) > 0.3
    np.testing.assert_allclose(bn.running_mean, 0.19 * x.mean(0), rtol=1e-12)  # two updates

    assert model.eval() is model
    assert not model.training and not bn.training and not drop.training
    stats = bn.running_mean.copy(), bn.running_var.copy()
    c, d = model(x).data, model(x).data
    np.testing.assert_array_equal(c, d)              # deterministic
    expected = (x - stats[0]) / np.sqrt(stats[1] + bn.eps)
    np.testing.assert_allclose(c, expected, rtol=1e-12)
    np.testing.assert_array_equal(bn.running_mean, stats[0])   # no update in eval
    model.train()
    assert model.training and bn.training and drop.training


# -- predict ---------------------------------------------------------------------------------
def test_predict_batches_eval_mode_no_graph():
    pynn.manual_seed(9)
    x_in = Input((6,), dtype=F64)
    bn, drop = BatchNorm1d(8), Dropout(0.5)
    out = Dense(8, 3, softmax)(drop(bn(Dense(6, 8, relu)(x_in))))
    model = as_float64_model(Model(x_in, out))
    bn.running_mean[...] = 0.3
    x = _rng(9).standard_normal((23, 6))
    stats = bn.running_mean.copy()
    p_all = model.predict(x)
    p_batched = model.predict(x, batch_size=5)
    assert isinstance(p_all, np.ndarray) and p_all.shape == (23, 3)
    np.testing.assert_allclose(p_batched, p_all, rtol=1e-12)
    np.testing.assert_array_equal(bn.running_mean, stats)      # eval mode: no stat updates
    assert model.training and bn.training                      # mode restored
    model.eval()
    with pynn.no_grad():
        called = model(x)
    assert not called.requires_grad and called.grad_fn is None
    np.testing.assert_array_equal(p_all, called.data)
    model.train()
    # a Tensor works as well as an array
    np.testing.assert_array_equal(model.predict(Tensor(x, dtype=F64), batch_size=7), p_all)
    # no graph: nothing recorded, and predict does not disturb a pending backward
    out = model(x[:4])
    model.predict(x[:4])
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters)


def _linear_ops(model):
    from pynn.ops.nn import Linear
    return [op for plan in model._plans.values() for op in plan.ops if type(op) is Linear]


@pytest.mark.parametrize("dtype", [np.float32, F64])
def test_predict_multiplies_by_a_fresh_in_out_copy_of_each_big_weight(dtype, weights_multiplied,
                                                                      monkeypatch):
    """predict over >= Linear.CONSTANT_MIN_ROWS rows runs its Dense layers (>= 16 outputs) on
    contiguous (in, out) copies of their weights, made once per call and shared by its plans
    (the short last batch's too), so a change of the weights between two calls shows in the
    second; the result is the layers' own."""
    from pynn.ops.nn import Linear
    pynn.manual_seed(3)
    x_in = Input((20,), dtype=dtype)
    h = Dense(20, 32, relu)(x_in)
    out = Dense(16, 4)(Dense(32, 16)(h))           # the last one: under 16 outputs, no copy
    model = Model(x_in, out)
    if dtype == F64:
        model = as_float64_model(model)
    dense = [layer for layer in model.layers if isinstance(layer, Dense)]
    x = _rng(3).standard_normal((Linear.CONSTANT_MIN_ROWS + 100, 20)).astype(dtype)
    weights_multiplied.clear()                      # (the layers' calls on the Input)

    def reference():
        a = x.astype(F64)
        for layer, act in zip(dense, (True, False, False)):
            a = a @ layer.weight.data.astype(F64).T + layer.bias.data.astype(F64)
            a = np.maximum(a, 0) if act else a
        return a

    def check_copies():
        """Three batches (1000, 1000, 148 rows) of three products each."""
        assert len(weights_multiplied) == 9
        for k, layer in enumerate(dense):
            used = weights_multiplied[k::3]
            np.testing.assert_array_equal(used[0], layer.weight.data.T)
            if k < 2:
                assert used[0].flags.c_contiguous and not np.shares_memory(used[0],
                                                                          layer.weight.data)
                assert all(u is used[0] for u in used)          # one copy for the call
            else:
                assert all(np.shares_memory(u, layer.weight.data) for u in used)  # the view
        first = list(weights_multiplied)
        weights_multiplied.clear()
        return first

    rtol = 1e-4 if dtype == np.float32 else 1e-12
    got = model.predict(x, batch_size=1000)
    np.testing.assert_allclose(got, reference(), rtol=rtol, atol=rtol)
    first = check_copies()
    assert all(op.weight_is_param for op in _linear_ops(model))

    dense[0].weight.data[...] *= -0.5               # in place, between two calls
    dense[1].weight.data = dense[1].weight.data[::-1].copy()   # or a new array
    got = model.predict(x, batch_size=1000)
    np.testing.assert_allclose(got, reference(), rtol=rtol, atol=rtol)
    second = check_copies()
    assert second[0] is not first[0] and second[1] is not first[1]     # copied again
    import gc
    import weakref
    copy = weakref.ref(second[0])
    del first, second
    gc.collect()
    assert copy() is None                           # nothing keeps a copy after the call

    # the same numbers as without the copies (which x @ W.T gives), to rounding
    monkeypatch.setattr(Linear, "CONSTANT_MIN_ROWS", 10 ** 12)
    plain = model.predict(x, batch_size=1000)
    assert all(np.shares_memory(u, d.weight.data) for u, d in zip(weights_multiplied, dense))
    np.testing.assert_allclose(got, plain, rtol=rtol, atol=rtol)


def test_predict_copies_the_weights_of_nested_models_and_shares_a_shared_layers(
        weights_multiplied):
    pynn.manual_seed(6)
    a = Input((8,))
    first = Dense(8, 32, relu)
    inner = Model(a, first(a))
    b = Input((8,))
    shared = Dense(32, 32, relu)
    outer = Model(b, shared(shared(inner(b))))
    x = _rng(6).standard_normal((3000, 8)).astype(np.float32)
    expected = np.maximum(x.astype(F64) @ first.weight.data.T + first.bias.data, 0)
    for _ in range(2):
        expected = np.maximum(expected @ shared.weight.data.T + shared.bias.data, 0)
    weights_multiplied.clear()
    np.testing.assert_allclose(outer.predict(x, batch_size=1000), expected, rtol=1e-4,
                               atol=1e-5)
    assert len(weights_multiplied) == 9 and all(w.flags.c_contiguous for w in weights_multiplied)
    np.testing.assert_array_equal(weights_multiplied[0], first.weight.data.T)
    assert all(w is weights_multiplied[1] for w in weights_multiplied[1::3] +
               weights_multiplied[2::3])           # one copy for both uses, every batch


def test_predict_of_few_rows_and_calls_of_the_model_use_the_weight_itself(weights_multiplied):
    pynn.manual_seed(4)
    x_in = Input((8,))
    layer = Dense(8, 32, relu)
    model = Model(x_in, layer(x_in))
    x = _rng(4).standard_normal((100, 8)).astype(np.float32)
    weights_multiplied.clear()                      # (the layer's call on the Input)
    model.predict(x)                                # 100 rows: under CONSTANT_MIN_ROWS
    model(x)
    with pynn.no_grad():
        model(x)
    assert len(weights_multiplied) == 3
    assert all(np.shares_memory(u, layer.weight.data) for u in weights_multiplied)


def test_a_linear_whose_weight_is_computed_never_uses_a_copy(weights_multiplied):
    """Only a parameter is constant during predict: a weight that is another input of the
    model (here a new one per call) is multiplied as it comes."""
    from pynn.ops.nn import Linear, constant_weights
    from pynn.tensor import apply
    x_in, w_in = Input((8,)), Input((8,))
    y = apply(Linear(activation=None), x_in, w_in)
    model = Model([x_in, w_in], y)
    rng = _rng(5)
    x = rng.standard_normal((40, 8)).astype(np.float32)
    for _ in range(2):
        w = rng.standard_normal((40, 8)).astype(np.float32)
        with constant_weights(10 ** 6):
            got = model([x, w])
        np.testing.assert_allclose(got.data, x @ w.T, rtol=1e-5, atol=1e-5)
        assert np.shares_memory(weights_multiplied[-1], w)
    assert [op.weight_is_param for op in _linear_ops(model)] == [False]


# -- summary ----------------------------------------------------------------------------------
def test_summary_table_and_numbers():
    x_in = Input((1, 28, 28))
    x = Conv2d(1, 16, 3, padding=1, activation=relu)(x_in)
    x = MaxPool2d(2)(x)
    x = BatchNorm2d(16)(x)
    x = Flatten()(x)
    x = Dense(16 * 14 * 14, 10, softmax)(x)
    model = Model(x_in, x)
    printed = []
    text = model.summary(print_fn=printed.append)
    assert printed == [text]
    rows = {line.split()[0]: line for line in text.splitlines() if line and line[0].isalpha()}
    assert re.search(r"\(None, 1, 28, 28\)\s+0", rows["input_1"])
    assert re.search(r"\(Conv2d\)\s+\(None, 16, 28, 28\)\s+160\b", rows["conv2d_1"])
    assert re.search(r"\(MaxPool2d\)\s+\(None, 16, 14, 14\)\s+0\b", rows["maxpool2d_1"])
    # as Keras: gamma, beta and the two running statistics (non-trainable) of 16 channels
    assert re.search(r"\(BatchNorm2d\)\s+\(None, 16, 14, 14\)\s+64\b", rows["batchnorm2d_1"])
    assert re.search(r"\(Flatten\)\s+\(None, 3136\)\s+0\b", rows["flatten_1"])
    assert re.search(r"\(Dense\)\s+\(None, 10\)\s+31,370\b", rows["dense_1"])
    total = 160 + 32 + 31370
    assert sum(p.data.size for p in model.parameters) == total
    assert f"Total params: {total + 32:,}" in text
    assert f"Trainable params: {total:,}" in text and "Non-trainable params: 32" in text
    assert "Layer (type)" in text and "Output Shape" in text and "Param #" in text
    assert model.summary(print_fn=None) == text


def test_summary_lists_loose_ops():
    x_in = Input((4,))
    h = Dense(4, 3)(x_in) * 2
    model = Model(x_in, Dense(3, 2)(h.relu()))
    text = model.summary(print_fn=None)
    assert "(Mul)" in text and "(Relu)" in text and "Total params: 23" in text


# -- state dicts -------------------------------------------------------------------------------
def test_state_dict_round_trip():
    model, layers = _cnn(batchnorm=True)
    state = model.state_dict()
    assert list(state) == ["conv2d_1.weight", "conv2d_1.bias", "batchnorm2d_1.weight",
                           "batchnorm2d_1.bias", "batchnorm2d_1.running_mean",
                           "batchnorm2d_1.running_var", "conv2d_2.weight", "conv2d_2.bias",
                           "dense_1.weight", "dense_1.bias", "dense_2.weight", "dense_2.bias"]
    x = _rng(10).standard_normal((3, 1, 12, 12))
    model(x)                      # train mode: moves the running stats away from 0/1
    model.eval()
    want = model(x).data.copy()
    saved = {k: v.copy() for k, v in model.state_dict().items()}

    other, other_layers = _cnn(batchnorm=True)
    for p in other.parameters:
        p.data[...] = 0.5
    other.eval()
    assert not np.allclose(other(x).data, want)
    other.load_state_dict(saved)
    np.testing.assert_array_equal(other(x).data, want)
    for k, v in other.state_dict().items():
        np.testing.assert_array_equal(v, saved[k])
    # loading copies: changing the source dict later does not change the model
    saved["dense_2.bias"][...] = 99
    assert not np.any(other.state_dict()["dense_2.bias"] == 99)


def test_load_state_dict_errors():
    model = _mlp()
    state = model.state_dict()
    with pytest.raises(KeyError, match=r"missing keys \['dense_2.bias'\]"):
        model.load_state_dict({k: v for k, v in state.items() if k != "dense_2.bias"})
    with pytest.raises(KeyError, match=r"unexpected keys \['extra'\]"):
        model.load_state_dict({**state, "extra": np.zeros(1)})
    bad = dict(state)
    bad["dense_1.weight"] = np.zeros((3, 3))
    with pytest.raises(ValueError, match=r"dense_1.weight has shape \(8, 6\).*\(3, 3\)"):
        model.load_state_dict(bad)


# -- gradients ---------------------------------------------------------------------------------
def test_gradients_accumulate_across_backward_calls_like_torch():
    model = _mlp()
    d1, d2 = model.layers
    t1, t2 = tnn.Linear(6, 8).double(), tnn.Linear(8, 3).double()
    _copy(d1, t1)
    _copy(d2, t2)
    tnet = tnn.Sequential(t1, tnn.ReLU(), t2)
    rng = _rng(11)
    x1, x2 = rng.standard_normal((4, 6)), rng.standard_normal((7, 6))
    y1, y2 = rng.integers(0, 3, 4), rng.integers(0, 3, 7)
    cross_entropy(model(x1), y1).backward()
    cross_entropy(model(x2), y2).backward()
    cross_entropy(model(x1), y2[:4]).backward()          # same shape as the first call
    for xx, yy in ((x1, y1), (x2, y2), (x1, y2[:4])):
        F.cross_entropy(tnet(torch.from_numpy(xx)), torch.from_numpy(yy)).backward()
    for p, tp in zip(model.parameters, tnet.parameters()):
        close("accumulated grad", p.grad, tp.grad)
    # backward twice through one output: with retain_graph=True as in torch, else an error
    model.zero_grad()
    loss = cross_entropy(model(x1), y1)
    loss.backward(retain_graph=True)
    once = _grads(model.parameters)
    loss.backward()
    for p, g in zip(model.parameters, once):
        np.testing.assert_allclose(p.grad.data, 2 * g, rtol=1e-15)
    with pytest.raises(RuntimeError, match="a second time"):
        loss.backward()


def test_eager_loss_from_several_model_outputs():
    """loss = f(model(a), model(b), a softmax's logits...): every path reaches the weights."""
    model = _mlp()
    rng = _rng(12)
    a, b = rng.standard_normal((4, 6)), rng.standard_normal((5, 6))
    ya = rng.integers(0, 3, 4)
    out_a, out_b = model(a), model(b)
    loss = cross_entropy(out_a, ya) + (out_b ** 2).mean() * 0.5 - out_a.sum() * out_b.mean()
    loss.backward()
    got = _grads(model.parameters)
    _clear(model.parameters)
    ea = _apply(model.layers, Tensor(a, dtype=F64))
    eb = _apply(model.layers, Tensor(b, dtype=F64))
    eloss = cross_entropy(ea, ya) + (eb ** 2).mean() * 0.5 - ea.sum() * eb.mean()
    eloss.backward()
    np.testing.assert_allclose(loss.item(), eloss.item(), rtol=1e-12)
    for g, p in zip(got, model.parameters):
        np.testing.assert_allclose(g, p.grad.data, rtol=1e-12, atol=1e-300)


def test_same_output_used_twice_in_a_loss():
    model = _mlp()
    x = _rng(13).standard_normal((4, 6))
    out = model(x)
    (out.sum() + (out * out).sum()).backward()
    got = _grads(model.parameters)
    _clear(model.parameters)
    e = _apply(model.layers, Tensor(x, dtype=F64))
    (e.sum() + (e * e).sum()).backward()
    for g, p in zip(got, model.parameters):
        np.testing.assert_allclose(g, p.grad.data, rtol=1e-12, atol=1e-300)


def test_calling_again_before_backward_is_a_clear_error():
    model = _mlp()
    first = model(np.ones((4, 6)))
    second = model(np.zeros((4, 6)))
    with pytest.raises(RuntimeError, match=r"model was called again at the same input shape"):
        first.sum().backward()
    second.sum().backward()           # the latest output is fine
    # a different batch size does not invalidate it
    a = model(np.ones((4, 6)))
    model(np.ones((5, 6)))
    a.sum().backward()


def test_input_gradient_through_model():
    model = _mlp()
    x = Tensor(_rng(14).standard_normal((3, 6)), requires_grad=True, dtype=F64)
    (model(x * 2.0) ** 2).sum().backward()
    xe = Tensor(x.data, requires_grad=True, dtype=F64)
    (_apply(model.layers, xe * 2.0) ** 2).sum().backward()
    np.testing.assert_allclose(x.grad.data, xe.grad.data, rtol=1e-12)


# -- errors ------------------------------------------------------------------------------------
def test_build_time_shape_errors_name_layer_and_both_shapes():
    with pytest.raises(ValueError, match=r"Dense\(784->256\) got input of shape \(64, 100\); "
                                         r"expected \(batch, 784\)"):
        Dense(784, 256)(Tensor.randn((64, 100)))
    x_in = Input((100,))
    with pytest.raises(ValueError, match=r"Dense\(784->256\) got input of shape \(None, 100\)"):
        Dense(784, 256)(x_in)
    x_in = Input((3, 16, 16))
    h = Flatten()(MaxPool2d(2)(Conv2d(3, 8, 3, padding=1)(x_in)))
    with pytest.raises(ValueError, match=r"Dense\(500->10\) got input of shape \(None, 512\)"):
        Dense(500, 10)(h)
    with pytest.raises(ValueError, match=r"Conv2d\(1->4.*\(None, 3, 16, 16\).*"
                                         r"\(batch, 1, height, width\)"):
        Conv2d(1, 4, 3)(x_in)


def test_calling_with_wrong_input_gives_clear_error():
    model = _mlp()
    with pytest.raises(ValueError, match=r"Model input #0: expected shape \(None, 6\), got "
                                         r"\(4, 5\)"):
        model(np.ones((4, 5)))
    with pytest.raises(ValueError, match=r"expected shape \(None, 6\), got \(6,\)"):
        model(np.ones(6))
    with pytest.raises(TypeError, match=r"Model input #0: expected numbers, got an array of "
                                        r"dtype <U1"):
        model(np.array([["a"] * 6]))
    with pytest.raises(TypeError, match=r"Model input #0: expected numbers.*object"):
        model(np.array([[None] * 6]))
    with pytest.raises(TypeError, match=r"Model input #0: could not turn it into an array"):
        model([[1.0] * 6, [1.0] * 5])
    with pytest.raises(TypeError, match=r"Model takes 1 input\(s\), got 2"):
        model(np.ones((2, 6)), np.ones((2, 6)))
    with pytest.raises(TypeError, match="must be Tensors"):
        Model(np.ones((1, 3)), Input(3))
    # the model still works after the errors; integer arrays are fine
    assert model(np.ones((2, 6), dtype=np.int64)).shape == (2, 3)


def test_run_time_failure_names_the_layer_and_shapes():
    x_in = Input((2, 3))
    h = x_in.reshape(int(x_in.shape[0]), -1)     # int() bakes in the build-time batch of 1
    # found when the model is built: it is run once at batch 2
    with pytest.raises(ValueError, match=r"does not follow the batch size.*Dense\(6->2\) failed "
                                         r"on inputs of shape \(1, 12\), \(2, 6\), \(2,\).*"
                                         r"use -1 or Flatten"):
        Model(x_in, Dense(6, 2)(h))


def test_outputs_not_depending_on_input_is_an_error():
    a, b = Input((3,)), Input((3,))
    out = Dense(3, 2)(a)
    with pytest.raises(ValueError, match=r"do not depend on input #1"):
        Model([a, b], out)


# -- multi-input, multi-output, loose ops ---------------------------------------------------------
def test_multi_input_multi_output_model():
    pynn.manual_seed(10)
    a_in, b_in = Input((4,), dtype=F64), Input((1, 6, 6), dtype=F64)
    da = Dense(4, 5, "tanh")
    conv = Conv2d(1, 2, 3, activation="relu")
    dm, dout = Dense(2 * 4 * 4, 5), Dense(5, 3, softmax)

    def net(a, b):
        ha = da(a)
        hb = dm(Flatten()(conv(b)))
        h = ha + hb
        return [dout(h), ha]

    model = as_float64_model(Model([a_in, b_in], net(a_in, b_in)))
    assert len(model.inputs) == 2 and len(model.outputs) == 2
    rng = _rng(15)
    a, b = rng.standard_normal((6, 4)), rng.standard_normal((6, 1, 6, 6))
    y = rng.integers(0, 3, 6)
    probs, ha = model(a, b)
    probs2, _ = model([a, b])                        # a list of inputs works too
    np.testing.assert_array_equal(probs.data, probs2.data)
    probs, ha = model(a, b)
    loss = categorical_cross_entropy(probs, y) + (ha ** 2).mean()
    loss.backward()
    got = _grads(model.parameters)
    _clear(model.parameters)
    ep, eh = net(Tensor(a, dtype=F64), Tensor(b, dtype=F64))
    eloss = categorical_cross_entropy(ep, y) + (eh ** 2).mean()
    eloss.backward()
    np.testing.assert_allclose(probs.data, ep.data, rtol=1e-12)
    np.testing.assert_allclose(loss.item(), eloss.item(), rtol=1e-12)
    for i, (g, p) in enumerate(zip(got, model.parameters)):
        np.testing.assert_allclose(g, p.grad.data, rtol=1e-12, atol=1e-300, err_msg=str(i))
    # predict with several inputs and outputs
    for batch_size in (None, 1, 4):
        pa, ph = model.predict([a, b], batch_size=batch_size)
        np.testing.assert_allclose(pa, ep.data, rtol=1e-12)
        np.testing.assert_allclose(ph, eh.data, rtol=1e-12)


def test_multi_output_with_non_leaf_input():
    """Two outputs of one call, both in the loss, one computed from the other, with an input
    that is itself computed: the input's gradient gets both contributions (each output's
    backward runs the same steps, so their results must not share a buffer)."""
    pynn.manual_seed(13)
    d1, d2 = Dense(6, 5, "tanh"), Dense(5, 3)
    h_in = Input((6,), dtype=F64)
    h = d1(h_in)
    two = as_float64_model(Model(h_in, [h, d2(h)]))
    x = Tensor(_rng(16).standard_normal((3, 6)), requires_grad=True, dtype=F64)
    u, v = two(x * 1.5)
    (u.sum() + (v ** 2).sum()).backward()
    got = _grads(two.parameters)
    _clear(two.parameters)
    xe = Tensor(x.data, requires_grad=True, dtype=F64)
    he = d1(xe * 1.5)
    (he.sum() + (d2(he) ** 2).sum()).backward()
    np.testing.assert_allclose(x.grad.data, xe.grad.data, rtol=1e-12)
    for g, p in zip(got, two.parameters):
        np.testing.assert_allclose(g, p.grad.data, rtol=1e-12, atol=1e-300)


def test_model_with_loose_eager_ops_and_free_parameter():
    pynn.manual_seed(11)
    scale = Tensor(np.full(5, 0.5), requires_grad=True, dtype=F64)
    d1, d2 = Dense(4, 5), Dense(5, 2, softmax)

    def net(x):
        h = d1(x) * 2
        h = h.relu() * scale + 1.0
        return d2(h.tanh())

    x_in = Input((4,), dtype=F64)
    model = as_float64_model(Model(x_in, net(x_in)))
    assert model.parameters[-1] is scale and len(model.parameters) == 5
    x = _rng(17).standard_normal((6, 4))
    y = _rng(17).integers(0, 2, 6)
    loss = categorical_cross_entropy(model(x), y)
    loss.backward()
    got = _grads(model.parameters)
    _clear(model.parameters)
    eloss = categorical_cross_entropy(net(Tensor(x, dtype=F64)), y)
    eloss.backward()
    np.testing.assert_allclose(loss.item(), eloss.item(), rtol=1e-12)
    for g, p in zip(got, model.parameters):
        np.testing.assert_allclose(g, p.grad.data, rtol=1e-12, atol=1e-300)
    assert "param_0" in model.state_dict()


# -- training ----------------------------------------------------------------------------------
def test_adam_update_trains_the_model():
    pynn.manual_seed(12)
    rng = _rng(18)
    x = rng.standard_normal((256, 2)).astype(np.float32)
    y = (x[:, 0] * x[:, 1] > 0).astype(np.int64)          # XOR of the signs: needs the hidden layer
    x_in = Input((2,))
    out = Dense(32, 2, softmax)(Dense(2, 32, relu)(x_in))
    model = Model(x_in, out)
    opt = Adam(0.01)
    losses = []
    for _ in range(150):
        idx = rng.integers(0, 256, 64)
        loss = categorical_cross_entropy(model(x[idx]), y[idx])
        model.zero_grad()
        loss.backward()
        opt.update(model.parameters)
        losses.append(loss.item())
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10])
    accuracy = np.mean(model.predict(x).argmax(1) == y)
    assert accuracy > 0.9, accuracy


def test_non_differentiable_ops_on_an_input_are_replayed_not_frozen():
    """Comparisons, argmax, where-conditions and detach computed from an Input are steps of the
    compiled model, evaluated on each call's data (not constants captured from the placeholder)."""
    x_in = pynn.Input((4,))
    relu_by_mask = pynn.Model(x_in, x_in * (x_in > 0))
    by_where = pynn.Model(x_in, pynn.Tensor.where(x_in > 0, x_in, 0.0))
    winner = pynn.Model(x_in, x_in.argmax(1))
    detached = pynn.Model(x_in, x_in.detach() + 1)
    a = np.array([[1.0, -2.0, 3.0, -4.0], [-1.0, 5.0, 0.5, 2.0]], np.float32)
    expected = np.maximum(a, 0)
    np.testing.assert_array_equal(relu_by_mask(a).numpy(), expected)
    np.testing.assert_array_equal(by_where(a).numpy(), expected)
    np.testing.assert_array_equal(winner(a).numpy(), [2, 1])
    np.testing.assert_array_equal(detached(a).numpy(), a + 1)
