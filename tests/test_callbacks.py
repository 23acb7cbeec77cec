"""pynn.callbacks inside Model.fit: each callback's effect, with Keras's semantics.

Where a callback reacts to a monitored value, the test feeds it a chosen sequence through a
callback placed before it (`Feed`), so the epoch at which it must act follows from the rule
itself; a `Snapshots` callback keeps the weights at the end of every epoch to compare against.
"""
import csv
import math

import numpy as np
import pytest
import torch

import pynn
from pynn import Input, Model
from pynn.callbacks import (
    Callback,
    CSVLogger,
    EarlyStopping,
    History,
    LearningRateScheduler,
    ModelCheckpoint,
    ReduceLROnPlateau,
    TerminateOnNaN,
    overrides,
)
from pynn.datasets import make_moons
from pynn.layers import Dense
from pynn.losses import categorical_cross_entropy
from pynn.optimizers import SGD, Adam, StepLR


def mlp(seed=0):
    pynn.manual_seed(seed)
    x_in = Input((2,))
    return Model(x_in, Dense(16, 2, "softmax")(Dense(2, 16, "relu")(x_in)))


def data(n=200):
    x, y = make_moons(n, noise=0.1, seed=0)
    return x.astype(np.float32), y


def compiled(lr=1e-2, metrics=("accuracy",)):
    model = mlp()
    model.compile(Adam(lr), "sparse_categorical_crossentropy", metrics=list(metrics))
    return model


class Feed(Callback):
    """Overwrites logs[key] at each epoch's end with the next value of `values`."""

    def __init__(self, key, values):
        super().__init__()
        self.key, self.values = key, list(values)

    def on_epoch_end(self, epoch, logs=None):
        logs[self.key] = self.values[epoch]


class Snapshots(Callback):
    def __init__(self):
        super().__init__()
        self.weights = []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append({k: np.array(v) for k, v in self.model.state_dict().items()})


class LrSeen(Callback):
    """The learning rate the optimizer has during each epoch's first batch."""

    def __init__(self):
        super().__init__()
        self.lrs = []

    def on_train_batch_begin(self, batch, logs=None):
        if batch == 0:
            self.lrs.append(self.model.optimizer.lr)


def assert_weights(model, want):
    got = model.state_dict()
    for k in want:
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)


# -- EarlyStopping ---------------------------------------------------------------------------------
def test_early_stopping_stops_after_patience_epochs_without_improvement():
    x, y = data()
    model = compiled()
    stop = EarlyStopping(monitor="val_loss", patience=2)
    # best at epoch 1; epochs 2 and 3 do not improve -> stops at epoch 3
    feed = Feed("val_loss", [1.0, 0.5, 0.6, 0.55, 0.1, 0.1])
    history = model.fit(x, y, epochs=6, validation_split=0.2, callbacks=[feed, stop], verbose=0)
    assert history.epoch == [0, 1, 2, 3]
    assert stop.stopped_epoch == 3 and stop.best_epoch == 1 and stop.best == 0.5


def test_early_stopping_restores_the_best_weights():
    x, y = data()
    model = compiled()
    snaps = Snapshots()
    stop = EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    feed = Feed("val_loss", [1.0, 0.5, 0.7, 0.6, 0.1])
    model.fit(x, y, epochs=5, validation_split=0.2, callbacks=[feed, snaps, stop], verbose=0)
    assert len(snaps.weights) == 4
    assert_weights(model, snaps.weights[1])
    assert any(not np.array_equal(snaps.weights[1][k], snaps.weights[3][k])
               for k in snaps.weights[1])


def test_early_stopping_restores_the_best_weights_also_when_it_did_not_stop():
    x, y = data()
    model = compiled()
    snaps = Snapshots()
    stop = EarlyStopping(monitor="val_loss", patience=5, restore_best_weights=True)
    feed = Feed("val_loss", [1.0, 0.2, 0.7])
    model.fit(x, y, epochs=3, validation_split=0.2, callbacks=[feed, snaps, stop], verbose=0)
    assert stop.stopped_epoch == 0
    assert_weights(model, snaps.weights[1])


def test_early_stopping_min_delta_mode_and_baseline():
    x, y = data()
    # improvements of less than min_delta do not count: epochs 3 and 4 improve by less than
    # 0.1 on the best (0.5 at epoch 2), so patience 2 runs out at epoch 4
    feed = [1.0, 0.95, 0.5, 0.45, 0.42, 0.0]
    stop = EarlyStopping(monitor="val_loss", patience=2, min_delta=0.1)
    history = compiled().fit(x, y, epochs=6, validation_split=0.2, verbose=0, callbacks=[
        Feed("val_loss", feed), stop])
    assert history.epoch == [0, 1, 2, 3, 4]
    stop = EarlyStopping(monitor="val_loss", patience=2)
    history = compiled().fit(x, y, epochs=6, validation_split=0.2, verbose=0, callbacks=[
        Feed("val_loss", feed), stop])
    assert history.epoch == [0, 1, 2, 3, 4, 5]
    # "accuracy" is maximised in mode "auto"
    stop = EarlyStopping(monitor="val_accuracy", patience=1)
    assert stop.mode == "max"
    history = compiled().fit(x, y, epochs=5, validation_split=0.2, verbose=0, callbacks=[
        Feed("val_accuracy", [0.5, 0.8, 0.7, 0.9, 0.9]), stop])
    assert history.epoch == [0, 1, 2]
    # no value beats the baseline within patience epochs: stop, though each one is a new best
    stop = EarlyStopping(monitor="loss", patience=2, baseline=0.1)
    history = compiled().fit(x, y, epochs=6, verbose=0, callbacks=[
        Feed("loss", [0.9, 0.8, 0.7, 0.6, 0.5, 0.4]), stop])
    assert history.epoch == [0, 1]
    with pytest.raises(ValueError, match="mode"):
        EarlyStopping(mode="lowest")


def test_early_stopping_warns_when_the_monitored_value_is_missing():
    x, y = data()
    with pytest.warns(UserWarning, match="'val_loss' is not in the logs"):
        compiled().fit(x, y, epochs=1, verbose=0, callbacks=[EarlyStopping()])


# -- ModelCheckpoint -------------------------------------------------------------------------------
def test_checkpoint_with_save_best_only_writes_only_on_improvement(tmp_path):
    x, y = data()
    model = compiled()
    snaps = Snapshots()
    path = str(tmp_path / "ckpt-{epoch:02d}-{val_loss:.2f}.pynn")
    feed = Feed("val_loss", [1.0, 0.8, 0.9, 0.5, 0.5])
    model.fit(x, y, epochs=5, validation_split=0.2, verbose=0,
              callbacks=[feed, snaps, ModelCheckpoint(path, save_best_only=True)])
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "ckpt-01-1.00.pynn", "ckpt-02-0.80.pynn", "ckpt-04-0.50.pynn"]
    for name, epoch in [("ckpt-02-0.80.pynn", 1), ("ckpt-04-0.50.pynn", 3)]:
        loaded = pynn.load_model(str(tmp_path / name))
        assert_weights(loaded, snaps.weights[epoch])


def test_checkpoint_to_one_path_holds_the_best_epoch(tmp_path):
    x, y = data()
    model = compiled()
    snaps = Snapshots()
    path = tmp_path / "best.pynn"
    ckpt = ModelCheckpoint(path, monitor="val_accuracy", save_best_only=True, verbose=1)
    model.fit(x, y, epochs=4, validation_split=0.2, verbose=0,
              callbacks=[Feed("val_accuracy", [0.5, 0.9, 0.8, 0.85]), snaps, ckpt])
    assert ckpt.mode == "max" and ckpt.best == 0.9
    assert_weights(pynn.load_model(str(path)), snaps.weights[1])
    assert [p.name for p in tmp_path.iterdir()] == ["best.pynn"]     # no temporary files left


def test_checkpoint_every_epoch_and_weights_only(tmp_path):
    x, y = data()
    model = compiled()
    snaps = Snapshots()
    model.fit(x, y, epochs=3, verbose=0, callbacks=[
        snaps, ModelCheckpoint(tmp_path / "m{epoch}.pynn", monitor="loss"),
        ModelCheckpoint(tmp_path / "w{epoch}.weights", save_weights_only=True)])
    for e in range(3):
        assert_weights(pynn.load_model(str(tmp_path / f"m{e + 1}.pynn")), snaps.weights[e])
        assert (tmp_path / f"w{e + 1}.weights").is_file()
    if hasattr(model, "load_weights"):
        fresh = mlp(5)
        fresh.load_weights(str(tmp_path / "w3.weights"))
        assert_weights(fresh, snaps.weights[2])
    else:                                          # the fallback: the state dict as .npz
        with np.load(tmp_path / "w3.weights") as f:
            assert_weights(model, {k: f[k] for k in f.files})


def test_checkpoint_path_naming_a_missing_log_value_is_a_clear_error(tmp_path):
    x, y = data()
    with pytest.raises(KeyError, match="names 'val_loss'"):
        compiled().fit(x, y, epochs=1, verbose=0,
                       callbacks=[ModelCheckpoint(str(tmp_path / "{val_loss}.pynn"))])


# -- learning-rate callbacks -----------------------------------------------------------------------
def test_learning_rate_scheduler_with_a_function_sets_the_lr_of_each_epoch():
    x, y = data()
    model = compiled(lr=0.1)
    seen = LrSeen()
    sched = LearningRateScheduler(lambda epoch, lr: lr * 0.5 if epoch >= 2 else lr)
    history = model.fit(x, y, epochs=5, verbose=0, callbacks=[sched, seen])
    assert seen.lrs == [0.1, 0.1, 0.05, 0.025, 0.0125]
    assert history.history["learning_rate"] == seen.lrs
    # a one-argument schedule works too
    seen = LrSeen()
    model.fit(x, y, epochs=3, verbose=0,
              callbacks=[LearningRateScheduler(lambda epoch: 0.01 * (epoch + 1)), seen])
    assert seen.lrs == [0.01, 0.02, 0.03]


def test_learning_rate_scheduler_changes_training_exactly_as_setting_lr_by_hand():
    x, y = data()
    lrs = [0.05, 0.02, 0.01]
    a = mlp(1)
    opt = SGD(1.0)
    for lr in lrs:
        opt.lr = lr
        for start in range(0, len(x), 32):
            loss = categorical_cross_entropy(a(x[start:start + 32]), y[start:start + 32])
            loss.zero_grad()
            loss.backward()
            opt.update(a.parameters)
    b = mlp(1)
    b.compile(SGD(1.0), "sparse_categorical_crossentropy")
    b.fit(x, y, batch_size=32, epochs=3, shuffle=False, verbose=0,
          callbacks=[LearningRateScheduler(lambda epoch, lr: lrs[epoch])])
    assert_weights(b, a.state_dict())


def test_learning_rate_scheduler_with_a_pynn_scheduler_follows_torch():
    x, y = data()
    model = mlp()
    opt = Adam(0.1)
    model.compile(opt, "sparse_categorical_crossentropy")
    seen = LrSeen()
    sched = StepLR(opt, step_size=2, gamma=0.5)
    model.fit(x, y, epochs=5, verbose=0, callbacks=[LearningRateScheduler(sched), seen])

    topt = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=0.1)
    tsched = torch.optim.lr_scheduler.StepLR(topt, step_size=2, gamma=0.5)
    want = []
    for _ in range(5):
        want.append(tsched.get_last_lr()[0])
        topt.step()
        tsched.step()
    assert seen.lrs == pytest.approx(want, rel=1e-15)
    # resuming at initial_epoch=3 starts from that epoch's value
    seen = LrSeen()
    model.fit(x, y, epochs=5, initial_epoch=3, verbose=0,
              callbacks=[LearningRateScheduler(sched), seen])
    assert seen.lrs == pytest.approx(want[3:], rel=1e-15)


def test_learning_rate_scheduler_refuses_another_optimizers_scheduler():
    x, y = data()
    sched = StepLR(Adam(0.1), step_size=1)
    with pytest.raises(ValueError, match="another optimizer"):
        compiled().fit(x, y, epochs=1, verbose=0, callbacks=[LearningRateScheduler(sched)])


def test_reduce_lr_on_plateau():
    x, y = data()
    model = compiled(lr=0.1)
    seen = LrSeen()
    plateau = ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2, min_lr=0.02)
    # best at epoch 0; epochs 1, 2 bad -> halve after epoch 2; 3, 4 bad -> halve after 4;
    # 5, 6 bad -> would halve to 0.0125, clamped at min_lr 0.02; then stays
    feed = Feed("val_loss", [1.0] * 9)
    history = model.fit(x, y, epochs=9, validation_split=0.2, verbose=0,
                        callbacks=[feed, plateau, seen])
    assert seen.lrs == [0.1, 0.1, 0.1, 0.05, 0.05, 0.025, 0.025, 0.02, 0.02]
    assert history.history["learning_rate"] == [0.1, 0.1, 0.1, 0.05, 0.05, 0.025, 0.025, 0.02,
                                                0.02]


def test_reduce_lr_on_plateau_counts_improvements_by_min_delta_and_cools_down():
    x, y = data()
    model = compiled(lr=0.1)
    seen = LrSeen()
    plateau = ReduceLROnPlateau(monitor="val_loss", factor=0.1, patience=1, cooldown=2,
                                min_delta=0.05)
    # epoch 1 improves by 0.01 < min_delta: bad -> reduce after epoch 1. Keras's cooldown
    # counter then runs down 2 -> 1 at epoch 2 (not counted) and 1 -> 0 at epoch 3, which counts
    # again: bad -> reduce after epoch 3; epochs 4 and 5 cool down.
    feed = Feed("val_loss", [1.0, 0.99, 0.98, 0.97, 0.96, 0.95])
    model.fit(x, y, epochs=6, validation_split=0.2, verbose=0, callbacks=[feed, plateau, seen])
    assert seen.lrs == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001, 0.001], rel=1e-12)
    with pytest.raises(ValueError, match="factor"):
        ReduceLROnPlateau(factor=1.5)


# -- TerminateOnNaN, CSVLogger, stop_training ------------------------------------------------------
def test_terminate_on_nan_stops_at_the_batch(capsys):
    x, y = data()
    calls = []

    def exploding(pred, target):
        calls.append(1)
        loss = categorical_cross_entropy(pred, target)
        return loss * math.nan if len(calls) == 3 else loss
    model = mlp()
    model.compile(Adam(1e-2), exploding)
    history = model.fit(x, y, batch_size=20, epochs=4, verbose=0, callbacks=[TerminateOnNaN()])
    assert len(calls) == 3                     # batch 2 of epoch 0, then nothing more
    assert history.epoch == [0] and math.isnan(history.history["loss"][0])
    assert "Batch 2: Invalid loss, terminating training" in capsys.readouterr().out


def test_csv_logger_writes_a_row_per_epoch(tmp_path):
    x, y = data()
    path = tmp_path / "log.csv"
    model = compiled()
    history = model.fit(x, y, epochs=3, validation_split=0.2, verbose=0,
                        callbacks=[CSVLogger(path)])
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss"]
    assert [r[0] for r in rows[1:]] == ["0", "1", "2"]
    for i, key in enumerate(rows[0][1:], start=1):
        assert [float(r[i]) for r in rows[1:]] == history.history[key]
    # append=True continues the file without a second header
    model.fit(x, y, epochs=2, validation_split=0.2, verbose=0,
              callbacks=[CSVLogger(path, append=True)])
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert len(rows) == 6 and rows[0][0] == "epoch" and rows[4][0] == "0"


def test_a_callback_can_stop_training():
    class StopAfter(Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                self.model.stop_training = True
    x, y = data()
    history = compiled().fit(x, y, epochs=10, verbose=0, callbacks=[StopAfter()])
    assert history.epoch == [0, 1]


def test_hooks_are_called_in_keras_order():
    class Record(Callback):
        def __init__(self):
            super().__init__()
            self.calls = []

        def on_train_begin(self, logs=None):
            self.calls.append("train_begin")

        def on_epoch_begin(self, epoch, logs=None):
            self.calls.append(f"epoch_begin {epoch}")

        def on_train_batch_begin(self, batch, logs=None):
            self.calls.append(f"batch_begin {batch}")

        def on_batch_end(self, batch, logs=None):        # the older Keras name
            self.calls.append(f"batch_end {batch} {sorted(logs)}")

        def on_test_begin(self, logs=None):
            self.calls.append("test_begin")

        def on_test_end(self, logs=None):
            self.calls.append(f"test_end {sorted(logs)}")

        def on_epoch_end(self, epoch, logs=None):
            self.calls.append(f"epoch_end {epoch} {sorted(logs)}")

        def on_train_end(self, logs=None):
            self.calls.append("train_end")
    x, y = data(50)
    rec = Record()
    compiled().fit(x, y, batch_size=20, epochs=1, validation_data=(x, y), verbose=0,
                   callbacks=[rec])
    assert rec.calls == [
        "train_begin", "epoch_begin 0",
        "batch_begin 0", "batch_end 0 ['accuracy', 'loss']",
        "batch_begin 1", "batch_end 1 ['accuracy', 'loss']",
        "batch_begin 2", "batch_end 2 ['accuracy', 'loss']",
        "test_begin", "test_end ['accuracy', 'loss']",
        "epoch_end 0 ['accuracy', 'loss', 'val_accuracy', 'val_loss']", "train_end"]
    assert rec.params["epochs"] == 1 and rec.params["steps"] == 3


def test_batch_hooks_of_epoch_level_callbacks_are_not_called():
    assert not overrides(EarlyStopping(), "on_train_batch_end", "on_batch_end")
    assert overrides(TerminateOnNaN(), "on_train_batch_end")
    assert isinstance(History(), Callback)


def test_callbacks_must_be_callback_objects():
    x, y = data()
    with pytest.raises(TypeError, match="Callback objects"):
        compiled().fit(x, y, epochs=1, verbose=0, callbacks=[lambda epoch: None])
