"""The functional API: Input forms, a free batch dim, Keras-style layers, merge layers, several
inputs, nested and shared models, Lambda, Sequential, names, freezing, training=, and the graph
record they all read. Numbers are checked against the same torch modules where one exists."""
import numpy as np
import pytest
import torch

import pynn
from pynn import Input, Model, Sequential, Tensor
from pynn.graph import LayerCall, layer_call
from pynn.layers import (
    Add,
    Average,
    BatchNorm1d,
    Concatenate,
    Dense,
    Dot,
    Dropout,
    Flatten,
    Lambda,
    Layer,
    Maximum,
    Minimum,
    Multiply,
    Subtract,
)
from pynn.losses import mse
from pynn.optimizers import SGD

RTOL, ATOL = 1e-6, 1e-12
#: the graph-record ops this module checks (see tests/test_op_coverage.py)
TORCH_CHECKED_OPS = {"Take", "Identity"}
GRADCHECKED_OPS = {"Take", "Identity"}


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def to64(model):
    for p in model.weights:
        p.data = p.data.astype(np.float64)
    return model


# -- Input -------------------------------------------------------------------------------------
def test_input_forms():
    a, b = Input((784,)), Input(shape=(784,), name="pixels")
    assert a.shape[1:] == b.shape[1:] == (784,)
    assert b._spec.name == "pixels" and b._spec.shape == (784,)
    assert Input(5)._spec.shape == (5,)
    with pytest.raises(TypeError, match="give the shape"):
        Input()
    with pytest.raises(ValueError, match="sizes >= 0 or None"):
        Input((-3,))


def test_integer_input_carries_no_gradient_and_feeds_int_data():
    ids = Input((3,), dtype=np.int64)
    assert not ids.requires_grad and ids.dtype == np.int64
    table = Tensor(rand(10, 4), requires_grad=True)
    model = Model(ids, table[ids].sum(dim=1))
    x = np.array([[1, 2, 3], [9, 0, 0]])
    out = model(x)
    np.testing.assert_allclose(out.data, table.data[x].sum(1).astype(np.float32), rtol=1e-6)
    out.sum().backward()
    expected = np.zeros((10, 4))
    np.add.at(expected, x, 1.0)
    np.testing.assert_allclose(table.grad.data, expected)
    with pytest.raises(TypeError, match="expected integers"):
        model(np.ones((2, 3), np.float32))


def test_none_dims_take_any_length():
    x_in = Input((None, 4))
    model = Model(x_in, Dense(4, 2)(x_in).sum(dim=1))
    for length in (1, 5, 9):
        x = rand(3, length, 4).astype(np.float32)
        assert model(x).shape == (3, 2)
    with pytest.raises(ValueError, match=r"expected shape \(None, None, 4\), got \(3, 5, 3\)"):
        model(np.ones((3, 5, 3), np.float32))
    assert "(None, None, 4)" in model.summary(print_fn=None)


# -- the batch dimension stays free ------------------------------------------------------------
@pytest.mark.parametrize("build", [
    lambda x: x.reshape(x.shape[0], -1),
    lambda x: x.unsqueeze(1).expand(-1, 3, 2, 3).sum(dim=1),
    lambda x: x.unsqueeze(1).expand(x.shape[0], 3, 2, 3).sum(dim=1),
    lambda x: (x.sum(dim=(1, 2), keepdim=True)).broadcast_to(x.shape[0], 2, 3),
    lambda x: x.repeat(1, 2, 1),
    lambda x: x.reshape(x.shape[0], 3, 2).permute(0, 2, 1),
], ids=["reshape", "expand-1", "expand-batch", "broadcast_to", "repeat", "reshape-permute"])
def test_shape_ops_follow_the_real_batch(build):
    x_in = Input((2, 3))
    model = Model(x_in, build(x_in))
    for n in (1, 4, 7):
        x = rand(n, 2, 3).astype(np.float32)
        np.testing.assert_allclose(model(x).data, build(Tensor(x)).data, rtol=1e-6)


def test_a_captured_batch_size_fails_at_build_naming_the_op():
    x_in = Input((2, 3))
    with pytest.raises(ValueError, match="does not follow the batch size.*Reshape"):
        Model(x_in, x_in.reshape(1, 6) * 2)


# -- Keras-style layers ------------------------------------------------------------------------
def test_dense_infers_in_features():
    x_in = Input((7,))
    d1, d2 = Dense(5, activation="relu"), Dense(3, pynn.activations.softmax)
    model = Model(x_in, d2(d1(x_in)))
    assert d1.weight.shape == (5, 7) and d2.weight.shape == (3, 5)
    assert (d1.activation, d2.activation) == ("relu", "softmax")
    assert repr(d1) == "Dense(7->5)" and repr(Dense(4)) == "Dense(4)"
    assert model(np.ones((2, 7), np.float32)).shape == (2, 3)
    explicit = Dense(7, 5, "relu")
    assert explicit.weight.shape == (5, 7) and explicit.activation == "relu"
    with pytest.raises(ValueError, match="out_features must be a positive int"):
        Dense(7, 0)


# -- merge layers ------------------------------------------------------------------------------
@pytest.mark.parametrize("layer, fn", [
    (Add, lambda a, b, c: a + b + c),
    (Multiply, lambda a, b, c: a * b * c),
    (Average, lambda a, b, c: (a + b + c) / 3),
    (Maximum, lambda a, b, c: torch.maximum(torch.maximum(a, b), c)),
    (Minimum, lambda a, b, c: torch.minimum(torch.minimum(a, b), c)),
])
def test_elementwise_merge_layers_against_torch(layer, fn):
    xs = [rand(4, 5, seed=i) for i in range(3)]
    ins = [Input((5,), dtype=np.float64) for _ in xs]
    model = Model(ins, layer()(ins) * Tensor(rand(1, 5, seed=9), dtype=np.float64))
    ts = [torch.tensor(x, requires_grad=True) for x in xs]
    ref = fn(*ts) * torch.tensor(rand(1, 5, seed=9))
    pins = [Tensor(x, requires_grad=True, dtype=np.float64) for x in xs]
    out = model(pins)
    np.testing.assert_allclose(out.data, ref.detach().numpy(), rtol=RTOL, atol=ATOL)
    seed = rand(4, 5, seed=7)
    ref.backward(torch.tensor(seed))
    out.backward(seed)
    for p, t in zip(pins, ts):
        np.testing.assert_allclose(p.grad.data, t.grad.numpy(), rtol=RTOL, atol=ATOL)


def test_subtract_concatenate_dot_against_torch():
    a, b = rand(4, 3), rand(4, 3, seed=1)
    ia, ib = Input((3,), dtype=np.float64), Input((3,), dtype=np.float64)
    model = Model([ia, ib], [Subtract()([ia, ib]), Concatenate()([ia, ib]),
                             Dot(axes=1)([ia, ib]), Dot(axes=1, normalize=True)([ia, ib])])
    ta, tb = torch.tensor(a), torch.tensor(b)
    sub, cat, dot, cos = model(a, b)
    np.testing.assert_allclose(sub.data, a - b)
    np.testing.assert_allclose(cat.data, torch.cat([ta, tb], 1).numpy())
    np.testing.assert_allclose(dot.data, (ta * tb).sum(1, keepdim=True).numpy(), rtol=RTOL)
    cosine = torch.nn.functional.cosine_similarity(ta, tb).numpy()
    np.testing.assert_allclose(cos.data[:, 0], cosine, rtol=1e-6)
    x, y = rand(2, 4, 3), rand(2, 5, 3, seed=2)
    i3, j3 = Input((4, 3), dtype=np.float64), Input((5, 3), dtype=np.float64)
    out = Model([i3, j3], Dot(axes=2)([i3, j3]))(x, y)
    np.testing.assert_allclose(out.data, np.einsum("nid,njd->nij", x, y), rtol=RTOL)
    with pytest.raises(ValueError, match="must match"):
        Add()([Input((3,)), Input((4,))])
    with pytest.raises(ValueError, match="at least 2"):
        Concatenate()([Input((3,))])
    with pytest.raises(ValueError, match="batch dim"):
        Concatenate(axis=0)([ia, ib])


def test_users_multi_input_layer():
    class Gate(Layer):
        param_names = ("w",)

        def __init__(self, n):
            super().__init__()
            self.w = Tensor(np.ones(n), requires_grad=True)

        def forward(self, x, g):
            return x * g.sigmoid() * self.w

    a, b = Input((3,)), Input((3,))
    gate = Gate(3)
    model = Model([a, b], gate(a, b))
    x, g = rand(2, 3).astype(np.float32), rand(2, 3, seed=1).astype(np.float32)
    np.testing.assert_allclose(model(x, g).data, x / (1 + np.exp(-g)), rtol=1e-6)
    assert model.layers == [gate] and layer_call(model.outputs[0]).inputs == (a, b)


# -- the graph record --------------------------------------------------------------------------
def test_each_call_is_recorded_once_on_its_outputs():
    x_in = Input((4,))
    dense = Dense(4, 4)
    h1 = dense(x_in)
    h2 = dense(h1)                  # a shared layer: two calls, two records
    c1, c2 = layer_call(h1), layer_call(h2)
    assert isinstance(c1, LayerCall) and c1.layer is dense is c2.layer
    assert (c1.index, c2.index) == (0, 1) and c2.inputs == (h1,) and c1.outputs == (h1,)
    model = Model(x_in, h2 + 1)
    assert [k for k, _ in model.entries] == ["layer", "layer", "op"]
    assert model.layers == [dense]
    # a layer returning its input gets a node of its own, so its call is recorded
    ident = Lambda(lambda x: x)(x_in)
    assert ident is not x_in and layer_call(ident).layer.function is not None


# -- nested and shared models ------------------------------------------------------------------
def _torch_encoder(enc):
    m = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 4)).double()
    with torch.no_grad():
        for tl, pl in ((m[0], enc.layers[0]), (m[2], enc.layers[1])):
            tl.weight.copy_(torch.tensor(pl.weight.data))
            tl.bias.copy_(torch.tensor(pl.bias.data))
    return m


def test_nested_model_matches_torch_and_shares_weights():
    pynn.manual_seed(0)
    a = Input((6,), dtype=np.float64)
    encoder = to64(Model(a, Dense(5, 4)(Dense(6, 5, "tanh")(a)), name="encoder"))
    x_in = Input((6,), dtype=np.float64)
    head = Dense(4, 2)
    outer = Model(x_in, head(encoder(x_in)))
    to64(outer)
    assert outer.layers == [encoder, head]
    assert [n for n, _ in outer.named_parameters()] == [
        "encoder.dense_1.weight", "encoder.dense_1.bias", "encoder.dense_2.weight",
        "encoder.dense_2.bias", "dense_1.weight", "dense_1.bias"]   # names are per model
    assert all(p is q for p, q in zip(outer.parameters[:4], encoder.parameters))
    tenc = _torch_encoder(encoder)
    thead = torch.nn.Linear(4, 2).double()
    with torch.no_grad():
        thead.weight.copy_(torch.tensor(head.weight.data))
        thead.bias.copy_(torch.tensor(head.bias.data))
    x = rand(3, 6)
    ref = thead(tenc(torch.tensor(x)))
    out = outer(x)
    np.testing.assert_allclose(out.data, ref.detach().numpy(), rtol=RTOL)
    seed = rand(3, 2, seed=3)
    out.backward(seed)
    ref.backward(torch.tensor(seed))
    for p, t in zip(outer.parameters, list(tenc.parameters()) + list(thead.parameters())):
        np.testing.assert_allclose(p.grad.data, t.grad.numpy(), rtol=RTOL, atol=ATOL)
    # training the outer model changes the encoder's weights, and encoder.predict sees them
    before = encoder.predict(x)
    opt = SGD(0.1)
    opt.update(outer.parameters)
    assert not np.allclose(encoder.predict(x), before)
    np.testing.assert_allclose(outer.predict(x), head(Tensor(encoder.predict(x))).data, rtol=1e-6)


def test_siamese_model_called_twice_shares_weights_and_sums_gradients():
    pynn.manual_seed(1)
    a = Input((3,), dtype=np.float64)
    tower = to64(Model(a, Dense(3, 2, "tanh")(a)))
    l, r = Input((3,), dtype=np.float64), Input((3,), dtype=np.float64)
    siamese = Model([l, r], Subtract()([tower(l), tower(r)]))
    assert len(siamese.parameters) == 2
    lin = torch.nn.Linear(3, 2).double()
    with torch.no_grad():
        lin.weight.copy_(torch.tensor(tower.layers[0].weight.data))
        lin.bias.copy_(torch.tensor(tower.layers[0].bias.data))
    x1, x2 = rand(4, 3), rand(4, 3, seed=5)
    ref = torch.tanh(lin(torch.tensor(x1))) - torch.tanh(lin(torch.tensor(x2)))
    out = siamese(x1, x2)
    np.testing.assert_allclose(out.data, ref.detach().numpy(), rtol=RTOL)
    (out * out).sum().backward()
    (ref * ref).sum().backward()
    np.testing.assert_allclose(tower.layers[0].weight.grad.data, lin.weight.grad.numpy(),
                               rtol=RTOL, atol=ATOL)


def test_models_nest_to_any_depth():
    x = Input((4,))
    m1 = Model(x, Dense(4, 4)(x))
    y = Input((4,))
    m2 = Model(y, m1(y) * 2)
    z = Input((4,))
    m3 = Model(z, Dense(4, 1)(m2(z)))
    data = rand(5, 4).astype(np.float32)
    expected = m3.layers[1](Tensor(m1.predict(data) * 2)).data
    np.testing.assert_allclose(m3.predict(data), expected, rtol=1e-5)
    assert "model" in m3.summary(print_fn=None).lower()


# -- Lambda, Sequential --------------------------------------------------------------------------
def test_lambda_and_sequential():
    x_in = Input((4,))
    model = Model(x_in, Lambda(lambda t: t[:, :2] * 2)(x_in))
    x = rand(3, 4).astype(np.float32)
    np.testing.assert_allclose(model(x).data, x[:, :2] * 2)
    seq = Sequential([Dense(4, 8, "relu"), Dense(8, 2)], input_shape=(4,))
    assert len(seq.layers) == 2 and seq(x).shape == (3, 2)
    lazy = Sequential([Dense(5, activation="relu"), Dense(2)])
    with pytest.raises(RuntimeError, match="not built yet"):
        _ = lazy.parameters
    assert lazy(x).shape == (3, 2) and lazy.layers[0].weight.shape == (5, 4)
    first = Sequential([Input((4,)), Dense(4, 1)])
    assert first(x).shape == (3, 1)


# -- names -------------------------------------------------------------------------------------
def test_names_unique_and_lookups():
    x_in = Input((4,))
    h = Dense(4, 4, name="hidden")(x_in)
    h = Dense(4, 4)(h)
    model = Model(x_in, Dense(4, 2)(h))
    assert model.layer_names == ["hidden", "dense_1", "dense_2"]
    assert model.get_layer("hidden") is model.layers[0]
    assert model.get_layer(index=2) is model.layers[2]
    with pytest.raises(ValueError, match="no layer named 'nope'"):
        model.get_layer("nope")
    assert [n for n, _ in model.named_parameters()][:2] == ["hidden.weight", "hidden.bias"]
    layer = model.layers[0]
    assert layer.parameters() == layer.parameters == [layer.weight, layer.bias]
    assert model.parameters() == model.parameters
    x2 = Input((4,))
    with pytest.raises(ValueError, match="two layers are named 'same'"):
        Model(x2, Dense(4, 4, name="same")(Dense(4, 4, name="same")(x2)))
    assert Flatten(name="flat").name == "flat"


# -- freezing ----------------------------------------------------------------------------------
def _mlp():
    pynn.manual_seed(3)
    x_in = Input((4,))
    first, second = Dense(4, 3, "relu"), Dense(3, 2)
    return Model(x_in, second(first(x_in))), first, second


@pytest.mark.parametrize("how", ["trainable", "requires_grad"])
@pytest.mark.parametrize("when", ["before", "after"])
def test_freezing_takes_effect_at_next_call_and_can_be_undone(how, when):
    def freeze(layer, value):
        if how == "trainable":
            layer.trainable = not value
        else:
            for p in layer.weights:
                p.requires_grad_(not value)

    pynn.manual_seed(3)
    x_in = Input((4,))
    first, second = Dense(4, 3, "relu"), Dense(3, 2)
    if when == "before":
        freeze(first, True)
    model = Model(x_in, second(first(x_in)))
    x, y = rand(8, 4).astype(np.float32), rand(8, 2).astype(np.float32)
    model(x)                                   # a plan exists before the change
    if when == "after":
        freeze(first, True)
    assert model.parameters == [second.weight, second.bias]
    assert len(model.weights) == 4 and len(model.state_dict()) == 4
    assert not first.trainable
    w0 = first.weight.data.copy()
    loss = mse(model(x), y)
    loss.backward()
    assert first.weight.grad is None and second.weight.grad is not None
    SGD(0.1).update(model.parameters)
    np.testing.assert_array_equal(first.weight.data, w0)
    text = model.summary(print_fn=None)
    assert "Trainable params: 8" in text and "Non-trainable params: 15" in text
    freeze(first, False)                       # undone: trains again at the next call
    assert len(model.parameters) == 4
    mse(model(x), y).backward()
    assert first.weight.grad is not None


def test_frozen_weights_get_no_gradient_like_torch():
    model, first, second = _mlp()
    to64(model)
    first.trainable = False
    tf, ts = torch.nn.Linear(4, 3).double(), torch.nn.Linear(3, 2).double()
    with torch.no_grad():
        for t, p in ((tf, first), (ts, second)):
            t.weight.copy_(torch.tensor(p.weight.data))
            t.bias.copy_(torch.tensor(p.bias.data))
    tf.requires_grad_(False)
    x = rand(5, 4)
    xt = torch.tensor(x, requires_grad=True)
    ref = ts(torch.relu(tf(xt)))
    xp = Tensor(x, requires_grad=True, dtype=np.float64)
    out = model(xp)
    seed = rand(5, 2, seed=4)
    out.backward(seed)
    ref.backward(torch.tensor(seed))
    np.testing.assert_allclose(xp.grad.data, xt.grad.numpy(), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(second.weight.grad.data, ts.weight.grad.numpy(), rtol=RTOL)
    assert first.weight.grad is None and tf.weight.grad is None


def test_freezing_a_nested_model():
    a = Input((4,))
    encoder = Model(a, Dense(4, 3)(a))
    x_in = Input((4,))
    outer = Model(x_in, Dense(3, 1)(encoder(x_in)))
    encoder.trainable = False
    assert len(outer.parameters) == 2 and len(outer.weights) == 4
    encoder.trainable = True
    assert len(outer.parameters) == 4


# -- training= ---------------------------------------------------------------------------------
def test_training_false_for_one_call():
    pynn.manual_seed(0)
    x_in = Input((50,))
    bn = BatchNorm1d(50)
    model = Model(x_in, Dropout(0.5)(bn(x_in)))
    x = rand(16, 50).astype(np.float32) * 3 + 1
    stats = bn.running_mean.copy()
    out = model(x, training=False)
    # eval: no dropout, running statistics used and left alone
    expected = (x - stats) / np.sqrt(bn.running_var + bn.eps) * bn.weight.data + bn.bias.data
    np.testing.assert_allclose(out.data, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(bn.running_mean, stats)
    assert model.training and bn.training
    out = model(x)                              # train mode again: dropout zeroes about half
    assert 0.3 < np.mean(out.data == 0) < 0.7


def test_weight_changed_between_a_model_forward_and_its_backward_is_an_error():
    x_in = Input((3,))
    model = Model(x_in, Dense(3, 2)(x_in))
    out = model(np.ones((4, 3), np.float32))
    with pynn.no_grad():
        model.layers[0].weight -= 1.0          # in place, between forward and backward
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.sum().backward()


# -- the ops the record adds: Take (indices as data) and Identity ------------------------------
def test_take_and_identity_against_torch_and_finite_differences():
    from test_gradcheck import gradcheck

    from pynn.ops.shape import Identity
    from pynn.tensor import apply
    x = rand(5, 3)
    idx = np.array([[4, 0], [0, 2]])
    xt = torch.tensor(x, requires_grad=True)
    xp = Tensor(x, requires_grad=True, dtype=np.float64)
    seed = rand(2, 2, 3, seed=1)
    out, ref = xp[Tensor(idx)], xt[torch.tensor(idx)]
    np.testing.assert_array_equal(out.data, ref.detach().numpy())
    out.backward(seed)
    ref.backward(torch.tensor(seed))
    np.testing.assert_allclose(xp.grad.data, xt.grad.numpy(), rtol=RTOL, atol=ATOL)
    ident = apply(Identity(), Tensor(x, requires_grad=True, dtype=np.float64))
    np.testing.assert_array_equal(ident.data, torch.nn.Identity()(torch.tensor(x)).numpy())
    gradcheck(lambda a: a[Tensor(idx)], x)
    gradcheck(lambda a: apply(Identity(), a) * a, x)
    with pytest.raises(IndexError, match="out of range for dim 0 of size 5"):
        xp[Tensor(np.array([5]))]
