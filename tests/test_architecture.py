"""Saving the architecture: get_config/from_config, to_json/model_from_json, save/load_model
and save_weights/load_weights round-trip nested models, shared layers, merge layers, Lambda of
registered functions, loose slicing ops and users' registered layers."""
import json

import numpy as np
import pytest

import pynn
from pynn import Input, Model, Tensor, load_model, model_from_json
from pynn.layers import Add, BatchNorm1d, Concatenate, Dense, Dot, Lambda, Layer, Multiply, register


@register
def double_it(x):
    return x * 2


@register
class Scale(Layer):
    """A user's layer: x * a learnt scale per feature."""
    param_names = ("scale",)

    def __init__(self, features):
        super().__init__()
        self.features = features
        self.scale = Tensor(np.full(features, 1.5, np.float32), requires_grad=True)

    def forward(self, x):
        return x * self.scale

    def config(self):
        return {"features": self.features}


def _rich_model():
    pynn.manual_seed(0)
    a = Input((6,))
    encoder = Model(a, Dense(6, 4, "relu")(a), name="encoder")
    x_in, y_in = Input((6,), name="left"), Input((6,), name="right")
    ex, ey = encoder(x_in), encoder(y_in)                   # shared (siamese)
    merged = Concatenate()([Add()([ex, ey]), Multiply()([ex, ey])])
    h = Lambda(double_it)(merged)[:, :5]                    # a loose slicing op
    h = Scale(5)(BatchNorm1d(5)(h))
    dot = Dot(axes=1)([ex, ey])
    return Model([x_in, y_in], [Dense(5, 3)(h), dot + 1.0])


def _data():
    rng = np.random.default_rng(1)
    return rng.standard_normal((4, 6)).astype(np.float32), \
        rng.standard_normal((4, 6)).astype(np.float32)


def _same_outputs(a, b, xs):
    for pa, pb in zip(a.predict(xs), b.predict(xs)):
        np.testing.assert_array_equal(pa, pb)


def test_save_and_load_round_trip_everything(tmp_path):
    model = _rich_model()
    xs = list(_data())
    model(*xs)                                  # move BatchNorm's running statistics
    model.save(tmp_path / "m.pynn")
    loaded = load_model(tmp_path / "m.pynn")
    _same_outputs(model, loaded, xs)
    assert loaded.layer_names == model.layer_names
    assert [type(l).__name__ for l in loaded.layers] == [type(l).__name__ for l in model.layers]
    inner = loaded.get_layer("encoder")
    assert isinstance(inner, Model) and inner.layers[0].weight is loaded.weights[0]
    assert [s.name for s in loaded.specs] == ["left", "right"]
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(loaded.state_dict()[k], v)


def test_config_and_json_round_trip_give_the_same_architecture_fresh_weights():
    model = _rich_model()
    config = model.get_config()
    assert json.loads(json.dumps(config)) == config          # JSON-able as it is
    again = Model.from_config(config)
    assert again.get_config() == config
    clone = model_from_json(model.to_json())
    assert clone.get_config() == config
    clone.load_state_dict(model.state_dict())
    _same_outputs(model, clone, list(_data()))


def test_save_weights_and_load_weights(tmp_path):
    model, other = _rich_model(), _rich_model()
    for p in other.weights:
        p.data = p.data + 1
    model.save_weights(tmp_path / "w.pynnw")
    other.load_weights(tmp_path / "w.pynnw")
    _same_outputs(model, other, list(_data()))
    with pytest.raises(ValueError, match="holds weights, not a model"):
        load_model(tmp_path / "w.pynnw")
    for p in other.weights:
        p.data = p.data + 1
    model.save(tmp_path / "m.pynn")             # a model file holds the weights too
    other.load_weights(tmp_path / "m.pynn")
    _same_outputs(model, other, list(_data()))


def test_load_state_dict_strict_false_returns_missing_and_unexpected():
    model = _rich_model()
    state = dict(model.state_dict())
    removed = state.pop("dense_1.bias")
    state["extra.weight"] = np.zeros(3)
    with pytest.raises(KeyError, match="missing keys.*dense_1.bias.*unexpected keys.*extra"):
        model.load_state_dict(state)
    result = model.load_state_dict(state, strict=False)
    assert result.missing_keys == ["dense_1.bias"] and result.unexpected_keys == ["extra.weight"]
    missing, unexpected = result
    assert missing == ["dense_1.bias"]
    np.testing.assert_array_equal(model.state_dict()["dense_1.bias"], removed)
    state["dense_1.weight"] = np.zeros((2, 2))
    with pytest.raises(ValueError, match="dense_1.weight has shape"):
        model.load_state_dict(state, strict=False)


def test_unregistered_things_are_refused_at_save_with_their_name(tmp_path):
    class Unknown(Layer):
        def forward(self, x):
            return x * 3
    x_in = Input((2,))
    with pytest.raises(ValueError, match="Unknown.*not registered.*register"):
        Model(x_in, Unknown()(x_in)).save(tmp_path / "a.pynn")
    with pytest.raises(ValueError, match="not registered"):
        Model(x_in, Lambda(lambda t: t + 1)(x_in)).save(tmp_path / "b.pynn")
    assert not (tmp_path / "a.pynn").exists() and not (tmp_path / "b.pynn").exists()


def test_unknown_class_on_load_is_a_clear_error():
    x_in = Input((2,))
    config = Model(x_in, Scale(2)(x_in)).get_config()
    config["layers"][0]["class"] = "NotALayer"
    with pytest.raises(ValueError, match="unknown layer class 'NotALayer'.*register"):
        Model.from_config(config)
    config["layers"][0]["class"] = "Scale"
    del config["nodes"]
    with pytest.raises(ValueError, match="malformed"):
        Model.from_config(config)


def test_free_batch_settings_survive_saving(tmp_path):
    x_in = Input((2, 3))
    model = Model(x_in, x_in.reshape(x_in.shape[0], -1) * 2)
    model.save(tmp_path / "r.pynn")
    loaded = load_model(tmp_path / "r.pynn")
    x = np.ones((5, 2, 3), np.float32)
    np.testing.assert_array_equal(loaded.predict(x), np.full((5, 6), 2, np.float32))


def test_register_refuses_a_taken_name():
    with pytest.raises(ValueError, match="taken"):
        register(name="Dense")(Scale)


def test_multi_output_layers_and_sequence_layers_round_trip(tmp_path):
    from pynn.layers import LSTM, Embedding, LayerNorm, MultiHeadAttention
    pynn.manual_seed(2)
    ids = Input((7,), dtype=np.int64)
    h = Embedding(20, 8)(ids)
    out, h_n, c_n = LSTM(8, return_sequences=True, return_state=True)(h)
    y = LayerNorm(8)(out + MultiHeadAttention(8, num_heads=2, causal=True)(out))
    model = Model(ids, [y.mean(dim=1), h_n + c_n])
    x = np.random.default_rng(0).integers(0, 20, size=(3, 7))
    model.save(tmp_path / "seq.pynn")
    loaded = load_model(tmp_path / "seq.pynn")
    for a, b in zip(model.predict(x), loaded.predict(x)):
        np.testing.assert_array_equal(a, b)
    text = model.summary(print_fn=None)
    assert text.count("(LSTM)") == 1
