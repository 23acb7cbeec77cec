"""Keras's compile / fit / evaluate / train_on_batch on pynn Models (pynn/training.py).

The central check: fit takes exactly the README loop's steps, so from the same seed one epoch (or
several) of fit and of the hand-written loop end with bit-identical weights.
"""
import io
import itertools
import re
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import pynn
from pynn import Input, Model, training
from pynn.data import DataLoader
from pynn.datasets import make_moons
from pynn.layers import BatchNorm1d, Conv2d, Dense, Dropout, Flatten, MaxPool2d
from pynn.losses import categorical_cross_entropy, mse
from pynn.optimizers import SGD, Adam

README = Path(__file__).resolve().parents[1] / "README.md"
DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def mlp(seed=0, dropout=False, batchnorm=False, n_in=2, n_out=2):
    pynn.manual_seed(seed)
    x_in = Input((n_in,))
    x = Dense(n_in, 32, "relu")(x_in)
    if batchnorm:
        x = BatchNorm1d(32)(x)
    if dropout:
        x = Dropout(0.2)(x)
    x = Dense(32, n_out, "softmax")(x)
    return Model(x_in, x)


def small_cnn(seed=0):
    pynn.manual_seed(seed)
    x_in = Input((1, 8, 8))
    x = Conv2d(1, 4, 3, padding=1, activation="relu")(x_in)
    x = MaxPool2d(2)(x)
    x = Flatten()(x)
    x = Dense(4 * 4 * 4, 3, "softmax")(x)
    return Model(x_in, x)


def moons(n=600):
    x, y = make_moons(n, noise=0.1, seed=0)
    return x.astype(np.float32), y


def weights(model):
    return {k: np.array(v) for k, v in model.state_dict().items()}


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


# -- DataLoader seeding ----------------------------------------------------------------------------
def _loader_follows_manual_seed():
    orders = []
    for _ in range(2):
        pynn.manual_seed(5)
        orders.append(next(iter(DataLoader(np.arange(50), batch_size=50, shuffle=True))).data)
    return np.array_equal(*orders)


@pytest.fixture
def Loader(monkeypatch):
    """The DataLoader both fit and the README loop use. If DataLoader's default shuffling does
    not follow pynn.manual_seed yet, both get the same explicit seeds instead (one per DataLoader
    made, in order: the README loop makes one per epoch, and so does fit)."""
    if _loader_follows_manual_seed():
        return DataLoader
    seeds = itertools.count(100)

    class Seeded(DataLoader):
        def __init__(self, *args, seed=None, **kwargs):
            super().__init__(*args, seed=next(seeds) if seed is None else seed, **kwargs)

    def reset():
        nonlocal seeds
        seeds = itertools.count(100)
    Seeded.reset = staticmethod(reset)
    monkeypatch.setattr(training, "DataLoader", Seeded)
    return Seeded


def readme_loop(model, opt, x, y, epochs, batch_size, Loader, loss_fn=categorical_cross_entropy):
    """The training loop of the README, verbatim apart from the names and the bar."""
    for _ in range(epochs):
        for xb, yb in Loader(x, y, batch_size=batch_size, shuffle=True):
            pred = model(xb)
            loss = loss_fn(pred, yb)
            loss.zero_grad()
            loss.backward()
            opt.update(model.parameters)
    return loss.item()


def _reset(Loader):
    if hasattr(Loader, "reset"):
        Loader.reset()


@pytest.mark.parametrize("epochs", [1, 3])
@pytest.mark.parametrize("build", ["mlp", "mlp_dropout_batchnorm", "cnn"])
def test_fit_gives_bit_identical_weights_to_the_readme_loop(build, epochs, Loader):
    if build == "cnn":
        rng = np.random.default_rng(0)
        x = rng.standard_normal((200, 1, 8, 8)).astype(np.float32)
        y = rng.integers(0, 3, 200)
        make = small_cnn
    else:
        x, y = moons(300)
        make = (lambda s: mlp(s, dropout=True, batchnorm=True)) if build != "mlp" else mlp

    _reset(Loader)
    pynn.manual_seed(7)
    model = make(7)
    opt = Adam(1e-2)
    readme_loop(model, opt, x, y, epochs, 32, Loader)
    want = weights(model)

    _reset(Loader)
    pynn.manual_seed(7)
    model = make(7)
    model.compile(optimizer=Adam(1e-2), loss="categorical_crossentropy")
    model.fit(x, y, batch_size=32, epochs=epochs, shuffle=True, verbose=0)
    assert_same_weights(weights(model), want)


def test_fit_on_a_dataloader_equals_the_loop_over_that_dataloader():
    """x may be a DataLoader (reused across epochs, as a user's loop may reuse one)."""
    x, y = moons(300)
    model = mlp(1)
    opt = Adam(1e-2)
    loader = DataLoader(x, y, batch_size=50, shuffle=True, seed=3)
    for _ in range(2):
        for xb, yb in loader:
            loss = categorical_cross_entropy(model(xb), yb)
            loss.zero_grad()
            loss.backward()
            opt.update(model.parameters)
    want = weights(model)
    model = mlp(1)
    model.compile(Adam(1e-2), "sparse_categorical_crossentropy")
    model.fit(DataLoader(x, y, batch_size=50, shuffle=True, seed=3), epochs=2, verbose=0)
    assert_same_weights(weights(model), want)


# -- learning, history, validation -----------------------------------------------------------------
def test_fit_learns_moons_and_history_is_keras_shaped():
    x, y = moons(1000)
    model = mlp(0)
    model.compile(optimizer=Adam(1e-2), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(x, y, batch_size=32, epochs=15, validation_split=0.2, verbose=0)
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 15 for v in history.history.values())
    assert history.epoch == list(range(15))
    assert model.history is history
    assert history.history["val_accuracy"][-1] > 0.95
    assert history.history["loss"][-1] < history.history["loss"][0]
    xt, yt = make_moons(500, noise=0.1, seed=1)
    loss, acc = model.evaluate(xt, yt, verbose=0)
    assert acc > 0.95


def test_history_logs_are_sample_weighted_epoch_means():
    """logs["loss"] is the mean over the epoch's samples of the per-batch losses (a short last
    batch weighs less), as Keras reports it; recorded here batch by batch."""
    x, y = moons(100)
    seen = []

    def loss_fn(pred, target):
        loss = categorical_cross_entropy(pred, target)
        seen.append((len(target), loss.item()))
        return loss
    model = mlp(0)
    model.compile("sgd", loss=loss_fn)
    history = model.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0)
    assert [n for n, _ in seen] == [32, 32, 32, 4]
    want = sum(n * v for n, v in seen) / 100
    assert history.history["loss"][0] == pytest.approx(want, rel=1e-12)


def _recording_regression():
    """A 1->1 linear model whose target is the sample's index, and a metric recording the targets
    it sees in training mode and in inference mode."""
    pynn.manual_seed(0)
    x_in = Input((1,))
    model = Model(x_in, Dense(1, 1)(x_in))
    seen = {"train": [], "val": []}

    def ids(pred, target):
        seen["train" if model.training else "val"].append(np.asarray(target).ravel().copy())
        return 0.0
    model.compile(SGD(0.0), loss="mse", metrics=[ids])
    n = 100
    x = np.zeros((n, 1), np.float32)
    y = np.arange(n, dtype=np.float32)
    return model, x, y, seen


@pytest.mark.parametrize("shuffle", [True, False])
def test_validation_split_takes_the_last_fraction_before_shuffling(shuffle):
    model, x, y, seen = _recording_regression()
    model.fit(x, y, batch_size=16, epochs=2, validation_split=0.25, shuffle=shuffle, verbose=0)
    for epoch_train in np.split(np.concatenate(seen["train"]), 2):
        np.testing.assert_array_equal(np.sort(epoch_train), np.arange(75))
        assert shuffle != np.array_equal(epoch_train, np.arange(75))
    np.testing.assert_array_equal(np.concatenate(seen["val"]),
                                  np.concatenate([np.arange(75, 100)] * 2))


def test_validation_data_gives_val_logs_equal_to_evaluate():
    x, y = moons(400)
    xv, yv = make_moons(200, noise=0.1, seed=3)
    model = mlp(0, dropout=True)
    model.compile(Adam(1e-2), "sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, batch_size=32, epochs=3, validation_data=(xv, yv), verbose=0)
    loss, acc = model.evaluate(xv, yv, batch_size=32, verbose=0)
    assert history.history["val_loss"][-1] == loss
    assert history.history["val_accuracy"][-1] == acc
    assert model.training       # the model is left in the mode it was in


def test_positional_arguments_follow_keras_order():
    x, y = moons(200)
    model = mlp(0)
    model.compile(Adam(1e-2), "sparse_categorical_crossentropy")
    history = model.fit(x, y, 50, 2, 0)                 # batch_size, epochs, verbose
    assert history.params["batch_size"] == 50 and history.epoch == [0, 1]
    assert isinstance(model.evaluate(x, y, 50, 0), float)


def test_validation_freq_and_initial_epoch():
    x, y = moons(200)
    model = mlp(0)
    model.compile(Adam(1e-2), "sparse_categorical_crossentropy")
    history = model.fit(x, y, epochs=5, initial_epoch=1, validation_split=0.1,
                        validation_freq=2, verbose=0)
    assert history.epoch == [1, 2, 3, 4]
    assert len(history.history["loss"]) == 4
    assert len(history.history["val_loss"]) == 2      # after epochs 2 and 4 (1-based)


def test_steps_per_epoch_limits_the_batches():
    model, x, y, seen = _recording_regression()
    model.fit(x, y, batch_size=10, epochs=2, steps_per_epoch=3, verbose=0)
    assert len(seen["train"]) == 6


# -- evaluate, train_on_batch, test_on_batch, predict ----------------------------------------------
def test_evaluate_matches_a_manual_computation():
    x, y = moons(300)
    model = mlp(0, dropout=True, batchnorm=True)
    model.compile(Adam(1e-2), "sparse_categorical_crossentropy",
                  metrics=["accuracy", "sparse_top_k_categorical_accuracy"])
    model.fit(x, y, epochs=2, verbose=0)
    probs = model.predict(x)                                 # eval mode, as evaluate runs
    manual_loss = float(-np.mean(np.log(probs[np.arange(len(y)), y].astype(np.float64))))
    manual_acc = float(np.mean(probs.argmax(1) == y))
    loss, acc, top = model.evaluate(x, y, batch_size=64, verbose=0)
    assert loss == pytest.approx(manual_loss, rel=1e-5)
    assert acc == pytest.approx(manual_acc, abs=1e-12)
    assert top == 1.0                                        # 2 classes, k = 5
    logs = model.evaluate(x, y, batch_size=7, verbose=0, return_dict=True)
    assert list(logs) == ["loss", "accuracy", "sparse_top_k_categorical_accuracy"]
    assert logs["loss"] == pytest.approx(loss, rel=1e-5)     # batch size does not change it
    assert model.metrics_names == list(logs)


def _wide_mlp(seed):
    pynn.manual_seed(seed)
    x_in = Input((2,))
    return Model(x_in, Dense(32, 2, "softmax")(Dense(2, 32, "relu")(x_in)))


def test_evaluate_multiplies_by_weight_copies_unless_a_callback_runs_between_batches(
        weights_multiplied, monkeypatch):
    """evaluate over >= Linear.CONSTANT_MIN_ROWS rows runs its Dense layers on (in, out) copies
    of their weights (pynn.ops.nn.constant_weights), with the same loss as without them; a
    callback's on_test_batch_end may change the weights, and then every batch reads them as
    they are."""
    from pynn.ops.nn import Linear
    x, y = moons(Linear.CONSTANT_MIN_ROWS + 52)
    model = _wide_mlp(5)
    model.compile("adam", "sparse_categorical_crossentropy")
    hidden = model.layers[0]                       # Dense(2->32): one that is copied
    weights_multiplied.clear()                      # (the layers' calls on the Input)
    loss = model.evaluate(x, y, batch_size=100, verbose=0)
    copies = weights_multiplied[0::2]               # Dense(2->32)'s, batch by batch
    assert copies[0].flags.c_contiguous and not np.shares_memory(copies[0], hidden.weight.data)
    assert all(c is copies[0] for c in copies) and len(copies) == -(-len(x) // 100)
    with monkeypatch.context() as patch:
        patch.setattr(Linear, "CONSTANT_MIN_ROWS", 10 ** 12)
        assert model.evaluate(x, y, batch_size=100, verbose=0) == pytest.approx(loss, rel=1e-6)

    seen = []

    class Shrink(pynn.callbacks.Callback):
        def on_test_batch_end(self, batch, logs=None):
            seen.append(logs["loss"])
            hidden.weight.data[...] *= 0.5          # the next batch must see this

    model.evaluate(x, y, batch_size=100, verbose=0, callbacks=[Shrink()])
    # the same batches against the weights each one saw, batch by batch
    fresh = _wide_mlp(5)
    fresh.compile("adam", "sparse_categorical_crossentropy")
    total, count = 0.0, 0
    for k, start in enumerate(range(0, len(x), 100)):
        xb, yb = x[start:start + 100], y[start:start + 100]
        total += fresh.evaluate(xb, yb, batch_size=100, verbose=0) * len(yb)
        count += len(yb)
        assert seen[k] == pytest.approx(total / count, rel=1e-5), k
        fresh.layers[0].weight.data[...] *= 0.5


def test_evaluate_without_metrics_returns_a_float():
    x, y = moons(100)
    model = mlp(0)
    model.compile("adam", "sparse_categorical_crossentropy")
    assert isinstance(model.evaluate(x, y, verbose=0), float)


def test_train_on_batch_equals_one_manual_step():
    x, y = moons(64)
    a = mlp(3, dropout=True)
    pynn.manual_seed(11)
    pred = a(x)
    loss = categorical_cross_entropy(pred, y)
    loss.zero_grad()
    loss.backward()
    Adam(1e-2).update(a.parameters)
    acc = float(np.mean(pred.data.argmax(1) == y))

    b = mlp(3, dropout=True)
    b.compile(Adam(1e-2), "sparse_categorical_crossentropy", metrics=["accuracy"])
    pynn.manual_seed(11)
    got_loss, got_acc = b.train_on_batch(x, y)
    assert got_loss == loss.item() and got_acc == acc
    assert_same_weights(weights(b), weights(a))


def test_test_on_batch_runs_in_inference_mode_without_changing_weights():
    x, y = moons(64)
    model = mlp(0, dropout=True)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    before = weights(model)
    loss, acc = model.test_on_batch(x, y)
    assert_same_weights(weights(model), before)
    assert model.training
    manual = model.predict(x)
    assert acc == float(np.mean(manual.argmax(1) == y))
    assert model.test_on_batch(x, y, return_dict=True) == {"loss": loss, "accuracy": acc}


def test_predict_with_a_bar_equals_model_predict(capsys):
    x, _ = moons(100)
    model = mlp(0)
    np.testing.assert_array_equal(training.predict(model, x, batch_size=16, verbose=1),
                                  model.predict(x))
    assert "predict" in capsys.readouterr().err


# -- losses, optimizers and metrics by name --------------------------------------------------------
@pytest.mark.parametrize("loss,make_y", [
    ("mse", lambda x: x.sum(1)),
    ("mean_squared_error", lambda x: x.sum(1, keepdims=True)),
    ("mae", lambda x: x.sum(1)),
    ("huber", lambda x: x.sum(1)),
])
def test_regression_losses_by_name_take_targets_of_shape_n_or_n1(loss, make_y):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, 3)).astype(np.float32)
    y = make_y(x).astype(np.float32)
    pynn.manual_seed(0)
    x_in = Input((3,))
    model = Model(x_in, Dense(3, 1)(x_in))
    model.compile(Adam(5e-2), loss=loss, metrics=["mae"])
    history = model.fit(x, y, batch_size=32, epochs=8, verbose=0)
    assert history.history["mae"][-1] < 0.2 * history.history["mae"][0]


def test_binary_crossentropy_and_binary_accuracy():
    x, y = moons(600)
    pynn.manual_seed(0)
    x_in = Input((2,))
    out = Dense(16, 1, "sigmoid")(Dense(2, 16, "relu")(x_in))
    model = Model(x_in, out)
    model.compile(Adam(2e-2), "binary_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y.astype(np.float32), batch_size=32, epochs=10, verbose=0)
    assert history.history["accuracy"][-1] > 0.9


def test_categorical_crossentropy_with_one_hot_targets_equals_integer_labels(Loader):
    x, y = moons(200)
    runs = []
    for target in (y, np.eye(2, dtype=np.float32)[y]):
        _reset(Loader)
        model = mlp(2)
        model.compile(Adam(1e-2), "categorical_crossentropy", metrics=["accuracy"])
        history = model.fit(x, target, batch_size=32, epochs=2, verbose=0)
        runs.append((weights(model), history.history))
    for k in runs[0][0]:
        np.testing.assert_allclose(runs[0][0][k], runs[1][0][k], rtol=1e-5, atol=1e-6)
    assert runs[0][1]["accuracy"] == runs[1][1]["accuracy"]


def test_optimizer_names_use_keras_learning_rates():
    model = mlp(0)
    for name, cls, lr in [("adam", "Adam", 1e-3), ("sgd", "SGD", 1e-2),
                          ("rmsprop", "RMSprop", 1e-3), ("Adagrad", "Adagrad", 1e-3)]:
        model.compile(name, "mse")
        assert type(model.optimizer).__name__ == cls and model.optimizer.lr == lr


def test_a_callable_loss_and_metric():
    x, y = moons(200)
    model = mlp(0)

    def my_loss(pred, target):
        return categorical_cross_entropy(pred, target) * 2.0

    def half_accuracy(pred, target):
        return float(np.mean(pred.argmax(1) == target)) / 2
    model.compile(Adam(1e-2), my_loss, metrics=[half_accuracy, "accuracy"])
    history = model.fit(x, y, epochs=2, verbose=0)
    assert list(history.history) == ["loss", "half_accuracy", "accuracy"]
    assert history.history["half_accuracy"] == pytest.approx(
        [a / 2 for a in history.history["accuracy"]], rel=1e-12)


# -- several inputs and outputs --------------------------------------------------------------------
def two_in_two_out(seed=0):
    pynn.manual_seed(seed)
    a, b = Input((3,)), Input((2,))
    h = Dense(3, 8, "relu")(a) + Dense(2, 8, "relu")(b)
    return Model([a, b], [Dense(8, 3, "softmax")(h), Dense(8, 1)(h)])


def test_several_inputs_and_outputs():
    rng = np.random.default_rng(0)
    xa = rng.standard_normal((200, 3)).astype(np.float32)
    xb = rng.standard_normal((200, 2)).astype(np.float32)
    y1 = (xa[:, 0] > 0).astype(np.int64) + (xb[:, 0] > 0)
    y2 = (xa.sum(1, keepdims=True) - xb[:, :1]).astype(np.float32)
    model = two_in_two_out()
    model.compile(Adam(1e-2), loss=["sparse_categorical_crossentropy", "mse"],
                  loss_weights=[1.0, 0.5], metrics=[["accuracy"], ["mae"]])
    history = model.fit([xa, xb], [y1, y2], batch_size=20, epochs=20, validation_split=0.2,
                        verbose=0)
    h = history.history
    assert list(h) == ["loss", "output_1_loss", "output_2_loss", "output_1_accuracy",
                       "output_2_mae", "val_loss", "val_output_1_loss", "val_output_2_loss",
                       "val_output_1_accuracy", "val_output_2_mae"]
    for prefix in ("", "val_"):      # the logged total is the weighted sum of the parts
        np.testing.assert_allclose(h[prefix + "loss"], np.add(h[prefix + "output_1_loss"],
                                   0.5 * np.array(h[prefix + "output_2_loss"])), rtol=1e-6)
    assert h["output_2_mae"][-1] < 0.5 * h["output_2_mae"][0]
    assert h["output_1_accuracy"][-1] > 0.8        # the majority class is 52%
    logs = model.evaluate([xa, xb], [y1, y2], verbose=0, return_dict=True)
    assert set(logs) == {k for k in h if not k.startswith("val_")}


def test_several_outputs_step_equals_the_manual_step():
    rng = np.random.default_rng(1)
    xa = rng.standard_normal((16, 3)).astype(np.float32)
    xb = rng.standard_normal((16, 2)).astype(np.float32)
    y1, y2 = rng.integers(0, 3, 16), rng.standard_normal((16, 1)).astype(np.float32)
    a = two_in_two_out(4)
    p1, p2 = a([xa, xb])
    loss = categorical_cross_entropy(p1, y1) + mse(p2, y2) * 0.5
    loss.zero_grad()
    loss.backward()
    Adam(1e-2).update(a.parameters)
    b = two_in_two_out(4)
    b.compile(Adam(1e-2), ["categorical_crossentropy", "mse"], loss_weights=[1, 0.5])
    got = b.train_on_batch([xa, xb], [y1, y2])
    assert got[0] == loss.item()
    assert_same_weights(weights(b), weights(a))


# -- output ----------------------------------------------------------------------------------------
def test_verbose_0_prints_nothing(capsys):
    x, y = moons(200)
    model = mlp(0)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=2, validation_split=0.1, verbose=0)
    model.evaluate(x, y, verbose=0)
    model.train_on_batch(x[:8], y[:8])
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


def test_verbose_1_draws_a_bar_per_epoch_and_2_prints_a_line_per_epoch(capsys):
    x, y = moons(200)
    model = mlp(0)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=2, validation_split=0.1, verbose=1)
    err = capsys.readouterr().err
    assert "Epoch 1/2" in err and "Epoch 2/2" in err
    assert re.search(r"loss=\d\.\d{4}, accuracy=\d\.\d{4}, val_loss=\d\.\d{4}", err)
    model.fit(x, y, epochs=2, validation_split=0.1, verbose=2)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    assert re.match(r"Epoch 2/2 - [\d.]+s - loss: \d\.\d{4} - accuracy: \d\.\d{4} - val_loss: ",
                    lines[1])


# -- errors ----------------------------------------------------------------------------------------
def test_fit_before_compile_says_to_compile():
    x, y = moons(20)
    model = mlp(0)
    for call in (lambda: model.fit(x, y), lambda: model.evaluate(x, y),
                 lambda: model.train_on_batch(x, y)):
        with pytest.raises(RuntimeError, match=r"compile the model first.*model\.compile\("):
            call()


def test_bad_inputs_give_clear_errors():
    x, y = moons(20)
    model = mlp(0)
    with pytest.raises(ValueError, match="unknown loss 'categorical_crossentropyy'.*known names"):
        model.compile("adam", "categorical_crossentropyy")
    with pytest.raises(ValueError, match="unknown metric 'acuracy'"):
        model.compile("adam", "mse", metrics=["acuracy"])
    with pytest.raises(ValueError, match="unknown optimizer 'adamm'"):
        model.compile("adamm", "mse")
    with pytest.raises(TypeError, match="optimizer must be a name or a pynn optimizer"):
        model.compile(object(), "mse")
    with pytest.raises(ValueError, match="a loss is required"):
        model.compile("adam")
    model.compile("adam", "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="x has 20 samples but y has 19"):
        model.fit(x, y[:-1], verbose=0)
    with pytest.raises(ValueError, match="x has 20 samples but y has 19"):
        model.evaluate(x, y[:-1], verbose=0)
    with pytest.raises(ValueError, match="targets y are required"):
        model.fit(x, verbose=0)
    with pytest.raises(ValueError, match=r"validation_split must be in \(0, 1\)"):
        model.fit(x, y, validation_split=1.5, verbose=0)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        model.fit(x, y, batch_size=0, verbose=0)
    with pytest.raises(ValueError, match="validation_data must be"):
        model.fit(x, y, validation_data=(x, y, y), verbose=0)
    with pytest.raises(ValueError, match="pass y=None"):
        model.fit(DataLoader(x, y), y, verbose=0)
    with pytest.raises(ValueError, match="expected integer labels"):
        model.fit(x, np.eye(2, dtype=np.float32)[y], verbose=0)
    with pytest.raises(ValueError, match=r"expected shape \(None, 2\), got \(20, 3\)"):
        model.fit(np.zeros((20, 3), np.float32), y, verbose=0)
    model.compile("adam", lambda pred, target: 0.5)
    with pytest.raises(TypeError, match="must return a scalar Tensor.*got float"):
        model.fit(x, y, verbose=0)
    model.compile("adam", lambda pred, target: categorical_cross_entropy(pred, target, "none"))
    with pytest.raises(TypeError, match=r"scalar Tensor.*shape \(20,\)"):
        model.fit(x, y, batch_size=20, verbose=0)
    model.compile("adam", ["mse", "mse"])
    with pytest.raises(ValueError, match="2 losses given for a model with 1 outputs"):
        model.fit(x, y, verbose=0)


def test_distributed_without_pynn_distributed_is_a_clear_error(monkeypatch):
    x, y = moons(20)
    model = mlp(0)
    model.compile("adam", "sparse_categorical_crossentropy")
    monkeypatch.setitem(sys.modules, "pynn.distributed", None)     # import fails
    monkeypatch.delattr(pynn, "distributed", raising=False)
    with pytest.raises(RuntimeError, match=r"fit\(distributed=True\) needs pynn.distributed"):
        model.fit(x, y, distributed=True, verbose=0)


class _ShardingLoader(DataLoader):
    """A DataLoader with the `shard=(rank, world)` argument that pynn.distributed's DataLoader
    has: every rank draws the same permutation and takes every world-th batch."""

    def __init__(self, *args, shard=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.rank, self.world = shard or (0, 1)

    def __len__(self):
        return len(range(self.rank, super().__len__(), self.world))

    def __iter__(self):
        return itertools.islice(super().__iter__(), self.rank, None, self.world)


def _fake_world(rank, world, updates):
    dist = types.ModuleType("pynn.distributed")
    dist.is_initialized = lambda: True
    dist.shard = lambda: (rank, world)
    dist.is_main = lambda: rank == 0

    def allreduce(x, op="sum"):
        updates.append(f"allreduce {op} {len(x)}")
        return x
    dist.allreduce = allreduce
    dist.sync_batchnorm_stats = lambda model: updates.append("sync_batchnorm_stats")

    class DistributedOptimizer:
        def __init__(self, opt):
            self.opt = opt

        def update(self, params):
            updates.append(len(params))
            self.opt.update(params)
    dist.DistributedOptimizer = DistributedOptimizer
    dist.broadcast_parameters = lambda model, root=0: updates.append("broadcast")
    return dist


@pytest.mark.parametrize("rank", [0, 1])
def test_distributed_fit_uses_the_distributed_api(rank, monkeypatch, capsys, tmp_path):
    """Against a stand-in for pynn.distributed (is_initialized, shard, is_main,
    DistributedOptimizer, broadcast_parameters, allreduce, sync_batchnorm_stats): the optimizer
    is wrapped, each rank runs its shard of the batches, logs and BatchNorm statistics are
    averaged at each epoch's end, the validation set is whole on every rank, only rank 0 prints
    and writes files."""
    from pynn.callbacks import CSVLogger
    updates = []
    fake = _fake_world(rank, 2, updates)
    monkeypatch.setitem(sys.modules, "pynn.distributed", fake)
    monkeypatch.setattr(pynn, "distributed", fake)         # what `from . import` finds first
    monkeypatch.setattr(training, "DataLoader", _ShardingLoader)
    x, y = moons(200)
    model = mlp(0)
    model.compile(Adam(1e-2), "sparse_categorical_crossentropy", metrics=["accuracy"])
    csv_path = tmp_path / "log.csv"
    history = model.fit(x, y, batch_size=20, epochs=2, validation_data=(x[:50], y[:50]),
                        distributed=True, verbose=1, callbacks=[CSVLogger(csv_path)])
    steps = [len(model.parameters)] * 5                          # 5 of the 10 batches
    epoch_end = ["sync_batchnorm_stats", "allreduce mean 2"]     # loss and accuracy
    assert updates == ["broadcast"] + (steps + epoch_end) * 2
    out = capsys.readouterr()
    assert (out.err != "") == (rank == 0)
    assert csv_path.exists() == (rank == 0)
    assert history.history["val_loss"][-1] == model.evaluate(x[:50], y[:50], batch_size=20,
                                                             verbose=0)[0]


# -- the README section ----------------------------------------------------------------------------
def _readme_fit_example():
    text = README.read_text()
    section = text.split("## Training with fit()", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_fit_example_runs(tmp_path, monkeypatch):
    """The README's fit example, run as written on a small slice of MNIST (or on random images of
    the same shape when the MNIST files are missing), with the README's model."""
    code = _readme_fit_example()
    if (DATA_DIR / "mnist" / "train-images-idx3-ubyte.gz").is_file():
        from pynn.datasets import mnist
        (tx, ty), (vx, vy) = mnist(data_dir=DATA_DIR, download=False)
    else:
        rng = np.random.default_rng(0)
        tx, ty = rng.uniform(0, 1, (600, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, 600)
        vx, vy = tx[:100], ty[:100]
    pynn.manual_seed(0)
    x_in = Input((1, 28, 28))
    x = Conv2d(1, 16, 3, padding=1, activation="relu")(x_in)
    x = MaxPool2d(2)(x)
    x = Flatten()(x)
    x = Dense(16 * 14 * 14, 10, "softmax")(x)
    model = Model(x_in, x)
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    namespace = {"model": model, "train_x": tx[:600], "train_y": ty[:600],
                 "test_x": vx[:200], "test_y": vy[:200]}
    exec(compile(code, "README.md", "exec"), namespace)
    history = namespace["history"]
    assert set(history.history) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert (tmp_path / "best.pynn").is_file()
    assert "test accuracy" in out.getvalue()
    assert 0.0 <= namespace["acc"] <= 1.0
