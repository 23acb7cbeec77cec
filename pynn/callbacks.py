"""Callbacks for `Model.fit`, with Keras's names, hooks and semantics.

A callback sees the model (`self.model`) and fit's settings (`self.params`: epochs, steps,
verbose, is_main) and is told about training as it goes:

    on_train_begin(logs)   on_epoch_begin(epoch, logs)   on_train_batch_begin(batch, logs)
    on_train_end(logs)     on_epoch_end(epoch, logs)     on_train_batch_end(batch, logs)
    on_test_begin / on_test_end / on_test_batch_begin / on_test_batch_end (evaluate)

`epoch` counts from 0; `logs` at an epoch's end hold "loss", the metrics and their "val_"
twins. Setting `self.model.stop_training = True` ends fit after the current batch. Batch hooks
are only called for callbacks that override them, so an epoch-level callback costs nothing per
step. `on_batch_begin` / `on_batch_end` are Keras's older names of the train-batch hooks.
"""
import csv
import inspect
import math
import os
import tempfile
import warnings

import numpy as np

__all__ = ["Callback", "History", "EarlyStopping", "ModelCheckpoint", "LearningRateScheduler",
           "ReduceLROnPlateau", "TerminateOnNaN", "CSVLogger"]


class Callback:
    """Base class: every hook does nothing."""

    def __init__(self):
        self.model = None
        self.params = {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = params

    def on_train_begin(self, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass

    def on_epoch_begin(self, epoch, logs=None):
        pass

    def on_epoch_end(self, epoch, logs=None):
        pass

    def on_batch_begin(self, batch, logs=None):
        pass

    def on_batch_end(self, batch, logs=None):
        pass

    def on_train_batch_begin(self, batch, logs=None):
        self.on_batch_begin(batch, logs)

    def on_train_batch_end(self, batch, logs=None):
        self.on_batch_end(batch, logs)

    def on_test_begin(self, logs=None):
        pass

    def on_test_end(self, logs=None):
        pass

    def on_test_batch_begin(self, batch, logs=None):
        pass

    def on_test_batch_end(self, batch, logs=None):
        pass

    @property
    def _is_main(self):
        """False on the ranks other than 0 of a distributed fit (they write no files)."""
        return self.params.get("is_main", True)


def overrides(callback, *hooks):
    """Whether `callback` defines any of `hooks` itself (fit skips batch hooks nobody uses)."""
    return any(getattr(type(callback), h) is not getattr(Callback, h) for h in hooks)


class History(Callback):
    """Records the logs of every epoch: `history.history["val_loss"][e]`, and `history.epoch`.
    fit adds one itself and returns it."""

    def __init__(self):
        super().__init__()
        self.history = {}
        self.epoch = []

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)


def _monitor_mode(name, monitor, mode):
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"{name}: mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode == "auto":
        mode = "max" if monitor.endswith(("acc", "accuracy", "auc")) else "min"
    return mode


def _copy_weights(model):
    return {k: np.array(v, copy=True) for k, v in model.state_dict().items()}


class EarlyStopping(Callback):
    """Stop training when `monitor` has not improved by more than `min_delta` for `patience`
    epochs. With `restore_best_weights=True` the model ends with the weights of its best epoch
    (Keras 3: restored at the end of training, whether or not training stopped early).
    `baseline`: training stops unless the monitored value beats it within `patience` epochs.
    `start_from_epoch`: epochs of warm-up before the monitoring starts. After training,
    `stopped_epoch` is the epoch at which it stopped (0 if it did not) and `best_epoch` the best.
    """

    def __init__(self, monitor="val_loss", min_delta=0.0, patience=0, verbose=0, mode="auto",
                 baseline=None, restore_best_weights=False, start_from_epoch=0):
        super().__init__()
        if patience < 0:
            raise ValueError(f"EarlyStopping: patience must be >= 0, got {patience}")
        self.monitor = monitor
        self.mode = _monitor_mode("EarlyStopping", monitor, mode)
        self.min_delta = abs(float(min_delta))
        self.patience = int(patience)
        self.verbose = verbose
        self.baseline = baseline
        self.restore_best_weights = restore_best_weights
        self.start_from_epoch = int(start_from_epoch)

    def _better(self, value, reference):
        if self.mode == "min":
            return value + self.min_delta < reference
        return value - self.min_delta > reference

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.stopped_epoch = 0
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_weights = None
        self.best_epoch = 0

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None:
            warnings.warn(f"EarlyStopping: {self.monitor!r} is not in the logs (available: "
                          f"{', '.join(logs or {})})", stacklevel=2)
            return
        if epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = _copy_weights(self.model)
        self.wait += 1
        if self._better(value, self.best):
            self.best = value
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = _copy_weights(self.model)
            if self.baseline is None or self._better(value, self.baseline):
                self.wait = 0        # a new best that also beats the baseline restarts the count
                return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print(f"Restoring model weights from the end of the best epoch: "
                      f"{self.best_epoch + 1}.")
            self.model.load_state_dict(self.best_weights)


def _save_weights(model, path):
    """model.save_weights(path) where the model has it; else the state dict as an .npz, written
    to a temporary file and renamed over `path` (atomic, like model.save)."""
    if hasattr(model, "save_weights"):
        model.save_weights(path)
        return
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **model.state_dict())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class ModelCheckpoint(Callback):
    """Save the model at the end of every epoch, through `model.save` (atomic: a crash mid-save
    leaves the previous file intact), or only its weights with `save_weights_only=True`.

    `filepath` may hold format fields: `{epoch}` (counted from 1, as Keras) and any log value,
    e.g. "ckpt-{epoch:02d}-{val_loss:.3f}.pynn". With `save_best_only=True` the file is written
    only when `monitor` improves on the best value so far (or on `initial_value_threshold`).
    """

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False,
                 save_weights_only=False, mode="auto", save_freq="epoch",
                 initial_value_threshold=None):
        super().__init__()
        if save_freq != "epoch":
            raise ValueError("ModelCheckpoint: only save_freq='epoch' is supported")
        self.filepath = os.fspath(filepath)
        self.monitor = monitor
        self.verbose = verbose
        self.save_best_only = save_best_only
        self.save_weights_only = save_weights_only
        self.mode = _monitor_mode("ModelCheckpoint", monitor, mode)
        self.initial_value_threshold = initial_value_threshold
        self.best = None

    def on_train_begin(self, logs=None):
        if self.best is None:
            if self.initial_value_threshold is not None:
                self.best = float(self.initial_value_threshold)
            else:
                self.best = math.inf if self.mode == "min" else -math.inf

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        try:
            path = self.filepath.format(epoch=epoch + 1, **logs)
        except KeyError as e:
            raise KeyError(f"ModelCheckpoint: the file path {self.filepath!r} names {e}, which "
                           f"is not in the logs (available: epoch, {', '.join(logs)})") from None
        if self.save_best_only:
            value = logs.get(self.monitor)
            if value is None:
                warnings.warn(f"ModelCheckpoint: can save the best model only with "
                              f"{self.monitor!r} in the logs; skipping", stacklevel=2)
                return
            better = value < self.best if self.mode == "min" else value > self.best
            if not better:
                if self.verbose > 0 and self._is_main:
                    print(f"Epoch {epoch + 1}: {self.monitor} did not improve from "
                          f"{self.best:.5f}")
                return
            if self.verbose > 0 and self._is_main:
                print(f"Epoch {epoch + 1}: {self.monitor} improved from {self.best:.5f} to "
                      f"{value:.5f}, saving model to {path}")
            self.best = value
        elif self.verbose > 0 and self._is_main:
            print(f"Epoch {epoch + 1}: saving model to {path}")
        if not self._is_main:
            return
        if self.save_weights_only:
            _save_weights(self.model, path)
        else:
            self.model.save(path)


def _optimizer(callback):
    opt = getattr(callback.model, "optimizer", None)
    if opt is None or not hasattr(opt, "lr"):
        raise RuntimeError(f"{type(callback).__name__}: the model has no compiled optimizer with "
                           "an 'lr' attribute (call model.compile first)")
    return opt


def _takes_two(fn):
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return True
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return True
    return sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params) >= 2


class LearningRateScheduler(Callback):
    """Set the optimizer's learning rate at the start of every epoch.

    `schedule` is a function `schedule(epoch, lr) -> new lr` (or `schedule(epoch)`), epoch
    counted from 0, or a pynn scheduler (`pynn.optimizers.StepLR(opt, ...)` etc.), which is set
    to the epoch with `scheduler.step(epoch)`: its closed form gives the lr of every epoch, so
    `initial_epoch` resumes on the right value. The lr used is logged as "learning_rate".
    """

    def __init__(self, schedule, verbose=0):
        super().__init__()
        self.schedule = schedule
        self.verbose = verbose

    def _is_scheduler(self):
        return hasattr(self.schedule, "optimizer") and hasattr(self.schedule, "get_last_lr")

    def on_epoch_begin(self, epoch, logs=None):
        opt = _optimizer(self)
        if self._is_scheduler():
            if self.schedule.optimizer is not opt:
                raise ValueError("LearningRateScheduler: the scheduler was made for another "
                                 "optimizer than the model's compiled one")
            self.schedule.step(epoch)
            lr = opt.lr
        else:
            if _takes_two(self.schedule):
                lr = self.schedule(epoch, float(opt.lr))
            else:
                lr = self.schedule(epoch)
            if not isinstance(lr, (int, float, np.floating, np.integer)) or isinstance(lr, bool):
                raise ValueError(f"LearningRateScheduler: the schedule must return a number, "
                                 f"got {lr!r}")
            opt.lr = float(lr)
        if self.verbose > 0 and self._is_main:
            print(f"Epoch {epoch + 1}: LearningRateScheduler setting learning rate to {lr}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(_optimizer(self).lr)


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by `factor` when `monitor` has not improved by more than
    `min_delta` for `patience` epochs, never below `min_lr`; then wait `cooldown` epochs before
    counting again (Keras's ReduceLROnPlateau)."""

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto",
                 min_delta=1e-4, cooldown=0, min_lr=0.0):
        super().__init__()
        if not factor < 1.0:
            raise ValueError(f"ReduceLROnPlateau does not support a factor >= 1.0, got {factor}")
        self.monitor = monitor
        self.factor = float(factor)
        self.patience = int(patience)
        self.verbose = verbose
        self.mode = _monitor_mode("ReduceLROnPlateau", monitor, mode)
        self.min_delta = float(min_delta)
        self.cooldown = int(cooldown)
        self.min_lr = float(min_lr)

    def _better(self, value):
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.cooldown_counter = 0
        self.best = math.inf if self.mode == "min" else -math.inf

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        opt = _optimizer(self)
        logs["learning_rate"] = float(opt.lr)
        value = logs.get(self.monitor)
        if value is None:
            warnings.warn(f"ReduceLROnPlateau: {self.monitor!r} is not in the logs (available: "
                          f"{', '.join(logs)})", stacklevel=2)
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._better(value):
            self.best = value
            self.wait = 0
        elif self.cooldown_counter <= 0:
            self.wait += 1
            if self.wait >= self.patience:
                old = float(opt.lr)
                if old > self.min_lr:
                    opt.lr = max(old * self.factor, self.min_lr)
                    if self.verbose > 0 and self._is_main:
                        print(f"Epoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to "
                              f"{opt.lr}.")
                    self.cooldown_counter = self.cooldown
                    self.wait = 0


class TerminateOnNaN(Callback):
    """Stop training at the first batch whose loss is NaN or infinite."""

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            print(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True


class CSVLogger(Callback):
    """Write one row per epoch to a CSV file: "epoch" (from 0, as Keras) then the logs' keys in
    sorted order. `append=True` continues an existing file (no second header)."""

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.filename = os.fspath(filename)
        self.separator = separator
        self.append = append
        self.keys = None
        self._file = self._writer = None

    def on_train_begin(self, logs=None):
        if not self._is_main:
            return
        has_header = (self.append and os.path.exists(self.filename)
                      and os.path.getsize(self.filename) > 0)
        self._file = open(self.filename, "a" if self.append else "w", newline="")
        self._writer = None
        self.keys = None
        self._has_header = has_header

    def on_epoch_end(self, epoch, logs=None):
        if self._file is None:
            return
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
            self._writer = csv.DictWriter(self._file, fieldnames=["epoch"] + self.keys,
                                          delimiter=self.separator, extrasaction="ignore")
            if not self._has_header:
                self._writer.writeheader()
        row = {"epoch": epoch}
        row.update({k: logs.get(k, "NA") for k in self.keys})
        self._writer.writerow(row)
        self._file.flush()

    def on_train_end(self, logs=None):
        if self._file is not None:
            self._file.close()
            self._file = self._writer = None
