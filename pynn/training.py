"""Keras's compile / fit / evaluate / predict / train_on_batch for pynn Models.

    model.compile(optimizer=Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(x, y, batch_size=64, epochs=3, validation_split=0.1)
    history.history["val_accuracy"]

`fit` is a thin loop over the same compiled plan as the hand-written loop of the README, and
takes each step exactly as that loop does:

    for xb, yb in DataLoader(x, y, batch_size=batch_size, shuffle=shuffle):   # a new one per epoch
        pred = model(xb)
        loss = loss_fn(pred, yb)
        loss.zero_grad()
        loss.backward()
        optimizer.update(model.parameters)

so with the same seed both give the same weights. What fit adds per step is read from what the
step already made: `loss.item()` and the metrics computed on the NumPy output `pred.data`; the
progress bar's text is refreshed at most twice a second. The Model methods (`model.fit(...)`)
call the functions here, which take the model as their first argument.
"""
import functools
import math
import time

import numpy as np

from . import autograd
from . import losses as _losses
from . import metrics as _metrics
from . import optimizers as _optimizers
from .callbacks import Callback, History, overrides
from .data import DataLoader
from .ops.nn import constant_weights
from .tensor import Tensor

__all__ = ["compile", "fit", "evaluate", "predict", "train_on_batch", "test_on_batch"]

_BAR_INTERVAL = 0.5      # seconds between two redraws of the bar and of its loss/metric text


# -- losses and optimizers by name -----------------------------------------------------------------
def _same_shape_target(fn):
    """A loss on equal shapes that also takes a target with the prediction's number of elements
    in another shape (labels (N,) for predictions (N, 1)), reshaped as Keras does."""
    @functools.wraps(fn)
    def loss(pred, target):
        t = getattr(target, "data", target)
        t = t if isinstance(t, np.ndarray) else np.asarray(t)
        if t.shape != pred.shape and t.size == pred.data.size:
            t = t.reshape(pred.shape)
        return fn(pred, t)
    return loss


def _sparse_categorical_cross_entropy(pred, target):
    """categorical_cross_entropy of probabilities against integer labels (N,) or (N, 1)."""
    t = getattr(target, "data", target)
    t = t if isinstance(t, np.ndarray) else np.asarray(t)
    if t.dtype.kind not in "iu":
        raise ValueError(f"sparse_categorical_crossentropy: expected integer labels, got an array "
                         f"of dtype {t.dtype} and shape {t.shape} (one-hot targets go with "
                         "'categorical_crossentropy')")
    if t.ndim == 2 and t.shape[1] == 1:
        t = t.reshape(-1)
    return _losses.categorical_cross_entropy(pred, t)


LOSSES = {
    # Keras names
    "categorical_crossentropy": _losses.categorical_cross_entropy,
    "sparse_categorical_crossentropy": _sparse_categorical_cross_entropy,
    "binary_crossentropy": _same_shape_target(_losses.binary_cross_entropy),
    "mean_squared_error": _same_shape_target(_losses.mse),
    "mse": _same_shape_target(_losses.mse),
    "mean_absolute_error": _same_shape_target(_losses.mae),
    "mae": _same_shape_target(_losses.mae),
    "huber": _same_shape_target(_losses.huber),
    "huber_loss": _same_shape_target(_losses.huber),
    "hinge": _same_shape_target(_losses.hinge),
    # pynn names
    "categorical_cross_entropy": _losses.categorical_cross_entropy,
    "cross_entropy": _losses.cross_entropy,
    "binary_cross_entropy": _same_shape_target(_losses.binary_cross_entropy),
    "binary_cross_entropy_with_logits":
        _same_shape_target(_losses.binary_cross_entropy_with_logits),
    "nll_loss": _losses.nll_loss,
    "mse_loss": _same_shape_target(_losses.mse),
    "l1_loss": _same_shape_target(_losses.mae),
}

# Keras's default learning rates for optimizers given by name; the other hyper-parameters are
# pynn's (torch's) defaults.
OPTIMIZERS = {"adam": (_optimizers.Adam, 1e-3), "adamw": (_optimizers.AdamW, 1e-3),
              "sgd": (_optimizers.SGD, 1e-2), "rmsprop": (_optimizers.RMSprop, 1e-3),
              "adagrad": (_optimizers.Adagrad, 1e-3)}


def get_loss(identifier):
    """A loss function loss(pred, target) -> scalar Tensor from a Keras or pynn name, or a
    callable unchanged."""
    if callable(identifier):
        return identifier
    if isinstance(identifier, str) and identifier in LOSSES:
        return LOSSES[identifier]
    raise ValueError(f"unknown loss {identifier!r}; known names: {', '.join(sorted(LOSSES))}, "
                     "or pass a function loss(pred, target) -> scalar Tensor")


def get_optimizer(identifier):
    if isinstance(identifier, str):
        if identifier.lower() not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {identifier!r}; known names: "
                             f"{', '.join(sorted(OPTIMIZERS))}, or pass an optimizer object")
        cls, lr = OPTIMIZERS[identifier.lower()]
        return cls(lr)
    if not callable(getattr(identifier, "update", None)) or not hasattr(identifier, "lr"):
        raise TypeError(f"optimizer must be a name or a pynn optimizer (with update(params) and "
                        f"lr), got {type(identifier).__name__}")
    return identifier


# -- compile ---------------------------------------------------------------------------------------
class Compiled:
    """What compile() decided: the optimizer, the loss(es) and the metrics, kept on the model as
    `model.compiled`."""

    def __init__(self, optimizer, loss, metrics, loss_weights):
        self.optimizer = optimizer
        self.loss = loss
        self.loss_weights = loss_weights
        self.metrics = metrics            # [(name, fn)], or one such list per output
        self.distributed_optimizer = None


def compile(model, optimizer="rmsprop", loss=None, metrics=None, loss_weights=None):
    """Configure the model for `fit`/`evaluate`.

    Args:
        optimizer: a pynn optimizer (`Adam(1e-3)`) or a name ("adam", "sgd", "rmsprop",
            "adagrad", "adamw"; Keras's default learning rates).
        loss: a name (Keras: "categorical_crossentropy", "sparse_categorical_crossentropy",
            "binary_crossentropy", "mse", "mae", "huber", "hinge"; or a pynn.losses name) or a
            function `loss(pred, target) -> scalar Tensor` (pynn's order, prediction first).
            For a model with several outputs, one loss for all or a list, one per output.
        metrics: names (see `pynn.metrics.get`) or functions `metric(pred, target) -> float`,
            computed on every output; or a list of such lists, one per output.
        loss_weights: for several outputs, the weight of each output's loss in the total.
    """
    if loss is None:
        raise ValueError("compile: a loss is required, e.g. loss='categorical_crossentropy' or a "
                         "function loss(pred, target)")
    if isinstance(loss, dict) or isinstance(metrics, dict):
        raise TypeError("compile: losses and metrics by output name (dicts) are not supported; "
                        "give a list, one per output")
    loss_fns = [get_loss(f) for f in loss] if isinstance(loss, (list, tuple)) else get_loss(loss)
    if isinstance(metrics, (str, type(None))) or callable(metrics):
        metrics = [] if metrics is None else [metrics]
    metrics = list(metrics)
    if metrics and all(isinstance(m, (list, tuple)) or m is None for m in metrics):
        named = [_named_metrics(m or []) for m in metrics]      # a list per output
    else:
        named = _named_metrics(metrics)
    if loss_weights is not None:
        loss_weights = [float(w) for w in loss_weights]
    model.compiled = Compiled(get_optimizer(optimizer), loss_fns, named, loss_weights)
    model.optimizer = model.compiled.optimizer
    model.loss = loss
    return model


def _named_metrics(metrics):
    named = []
    for i, m in enumerate(metrics):
        fn = _metrics.get(m)
        name = m if isinstance(m, str) else getattr(m, "__name__", None) or f"metric_{i + 1}"
        named.append((name, fn))
    if len({n for n, _ in named}) != len(named):
        raise ValueError(f"compile: two metrics have the same name: {[n for n, _ in named]}")
    return named


def _compiled(model, what):
    cfg = getattr(model, "compiled", None)
    if not isinstance(cfg, Compiled):
        raise RuntimeError(f"{what}: compile the model first, e.g. model.compile(optimizer="
                           "'adam', loss='sparse_categorical_crossentropy', metrics=['accuracy'])")
    if cfg.optimizer is not getattr(model, "optimizer", cfg.optimizer):
        cfg.optimizer = model.optimizer          # the user replaced model.optimizer
    return cfg


class _Objective:
    """The compiled loss and metrics resolved for a number of outputs: the total loss of a batch
    and the figures logged for it ("loss", per-output losses, metrics), in `keys` order."""

    def __init__(self, model, cfg, n_outputs):
        self.multi = n_outputs > 1
        fns = cfg.loss if isinstance(cfg.loss, list) else [cfg.loss] * n_outputs
        if len(fns) != n_outputs:
            raise ValueError(f"compile: {len(fns)} losses given for a model with {n_outputs} "
                             "outputs")
        weights = cfg.loss_weights or [1.0] * n_outputs
        if len(weights) != n_outputs:
            raise ValueError(f"compile: {len(weights)} loss_weights for {n_outputs} outputs")
        self.loss_fns, self.weights = fns, weights
        per_output = cfg.metrics if cfg.metrics and isinstance(cfg.metrics[0], list) else \
            [cfg.metrics] * n_outputs
        if len(per_output) != n_outputs:
            raise ValueError(f"compile: {len(per_output)} lists of metrics given for a model "
                             f"with {n_outputs} outputs")
        self.metrics = [(i, fn) for i in range(n_outputs) for _, fn in per_output[i]]
        if self.multi:
            names = list(getattr(model, "output_names", None) or
                         [f"output_{i + 1}" for i in range(n_outputs)])
            self.keys = ["loss"] + [f"{n}_loss" for n in names]
            self.keys += [f"{names[i]}_{m}" for i in range(n_outputs) for m, _ in per_output[i]]
        else:
            self.keys = ["loss"] + [m for m, _ in per_output[0]]
        self.n_outputs = n_outputs

    def loss(self, pred, y):
        """(total loss Tensor, the per-output loss Tensors or None)."""
        if not self.multi:
            if isinstance(pred, (list, tuple)):
                raise ValueError(f"fit: the model has {len(pred)} outputs but one target array "
                                 "was given (pass y as a list, one array per output)")
            return _checked(self.loss_fns[0](pred, y)), None
        if not isinstance(pred, (list, tuple)) or len(pred) != self.n_outputs:
            got = len(pred) if isinstance(pred, (list, tuple)) else 1
            raise ValueError(f"fit: {self.n_outputs} target arrays were given but the model has "
                             f"{got} output(s)")
        parts = [_checked(fn(p, t)) for fn, p, t in zip(self.loss_fns, pred, y, strict=True)]
        total = None
        for w, part in zip(self.weights, parts, strict=True):
            term = part if w == 1.0 else part * w
            total = term if total is None else total + term
        return total, parts

    def values(self, pred, y, loss, parts):
        """The logged figures of one batch, as floats in `keys` order."""
        out = [loss.item()]
        if self.multi:
            out += [p.item() for p in parts]
            for i, fn in self.metrics:
                out.append(float(fn(pred[i].data, getattr(y[i], "data", y[i]))))
        elif self.metrics:
            p, t = pred.data, getattr(y, "data", y)       # metrics see NumPy arrays
            for _, fn in self.metrics:
                out.append(float(fn(p, t)))
        return out


def _checked(loss):
    if not isinstance(loss, Tensor) or loss.data.size != 1:
        what = f"a Tensor of shape {loss.shape}" if isinstance(loss, Tensor) else \
            type(loss).__name__
        raise TypeError(f"the loss function must return a scalar Tensor (reduction 'mean' or "
                        f"'sum'), got {what}")
    return loss


class _Mean:
    """Sample-weighted running means of the logged figures over an epoch (Keras's epoch logs)."""

    def __init__(self, keys):
        self.keys = keys
        self.sums = [0.0] * len(keys)
        self.count = 0

    def add(self, n, values):
        self.count += n
        sums = self.sums
        for i, v in enumerate(values):
            sums[i] += v * n

    def result(self):
        if not self.count:
            return {}
        return {k: s / self.count for k, s in zip(self.keys, self.sums, strict=True)}


# -- data ------------------------------------------------------------------------------------------
def _as_array(a, what):
    if isinstance(a, Tensor):
        return a.data
    if isinstance(a, np.ndarray):
        return a
    try:
        arr = np.asarray(a)
    except (ValueError, TypeError) as e:
        raise TypeError(f"{what}: could not turn it into an array ({e})") from None
    if arr.ndim == 0:
        raise ValueError(f"{what}: expected an array with samples along the first axis, got a "
                         "scalar")
    return arr


def _arrays(x, what):
    """A list of arrays for a list of inputs/targets, a single array otherwise."""
    if x is None:
        raise ValueError(f"{what} is required")
    if isinstance(x, (list, tuple)):
        if not x:
            raise ValueError(f"{what}: empty list")
        return [_as_array(a, f"{what}[{i}]") for i, a in enumerate(x)]
    return _as_array(x, what)


def _length(name, a):
    return len(a[0]) if isinstance(a, list) else len(a)


def _check_data(where, x, y):
    if y is None:
        raise ValueError(f"{where}: targets y are required (or pass a DataLoader yielding "
                         "(x, y) batches as x)")
    for name, a in (("x", x), ("y", y)):
        if isinstance(a, list):
            sizes = {len(b) for b in a}
            if len(sizes) > 1:
                raise ValueError(f"{where}: the arrays of {name} have different numbers of "
                                 f"samples: {[len(b) for b in a]}")
    nx, ny = _length("x", x), _length("y", y)
    if nx != ny:
        raise ValueError(f"{where}: x has {nx} samples but y has {ny}")
    if nx == 0:
        raise ValueError(f"{where}: no samples")


def _take(a, idx):
    return [np.take(b, idx, axis=0) for b in a] if isinstance(a, list) else np.take(a, idx, axis=0)


class _Gather:
    """Batches of lists of arrays (several inputs or outputs): a DataLoader over the sample
    indices gives the order (the same permutation a DataLoader(x, y) would draw) and each array
    is gathered by it."""

    def __init__(self, x, y, batch_size, shuffle, **loader_kw):
        self.x, self.y = x, y
        self.index = DataLoader(np.arange(_length("x", x)), batch_size=batch_size,
                                shuffle=shuffle, **loader_kw)
        self.batch_size = self.index.batch_size

    def __len__(self):
        return len(self.index)

    def __iter__(self):
        for idx in self.index:
            yield _take(self.x, idx.data), _take(self.y, idx.data)


def _batches(x, y, batch_size, shuffle, **loader_kw):
    """One epoch's batches of (x, y): DataLoader(x, y, ...) as in the README's loop for a single
    input and target, index gathering for lists."""
    if isinstance(x, list) or isinstance(y, list):
        return _Gather(x, y, batch_size, shuffle, **loader_kw)
    return DataLoader(x, y, batch_size=batch_size, shuffle=shuffle, **loader_kw)


def _is_loader(x):
    return isinstance(x, DataLoader) or (hasattr(x, "__iter__") and hasattr(x, "__len__")
                                         and not isinstance(x, (np.ndarray, list, tuple, Tensor)))


def _split(a, start, stop):
    return [b[start:stop] for b in a] if isinstance(a, list) else a[start:stop]


def _n_outputs(y):
    return len(y) if isinstance(y, list) else 1


def _check_batch_size(where, batch_size):
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or batch_size < 1:
        raise ValueError(f"{where}: batch_size must be a positive integer, got {batch_size!r}")
    return int(batch_size)


# -- distributed -----------------------------------------------------------------------------------
def _distributed():
    """pynn.distributed, imported when fit(distributed=True) asks for it."""
    try:
        from . import distributed as dist
    except ImportError as e:
        raise RuntimeError("fit(distributed=True) needs pynn.distributed (data-parallel training "
                           f"over MPI, with mpi4py), which could not be imported: {e}") from e
    if not dist.is_initialized():
        raise RuntimeError("fit(distributed=True): the distributed world is not initialised; "
                           "call pynn.distributed.init() first and launch with mpirun")
    return dist


def _across_ranks(dist, model, logs):
    """At an epoch's end in a distributed fit: the BatchNorm running statistics averaged over the
    ranks (so validation and checkpoints see the same model everywhere) and the training logs
    averaged too, so that callbacks decide alike on every rank (an EarlyStopping that stopped one
    rank only would leave the others waiting in their next all-reduce)."""
    if hasattr(dist, "sync_batchnorm_stats"):
        dist.sync_batchnorm_stats(model)
    if logs and hasattr(dist, "allreduce"):
        values = np.array(list(logs.values()), dtype=np.float64)
        dist.allreduce(values, "mean")
        logs = dict(zip(logs, values.tolist(), strict=True))
    return logs


# -- the loops -------------------------------------------------------------------------------------
def _mode(model, training):
    """model.train(training), skipped when the model is in that mode already (an unbuilt
    Sequential has no layers to switch yet: it builds at its first call)."""
    if model.training != training:
        model.train(training)


def _bar(total, desc, enabled):
    if not enabled:
        return None
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, unit="batch", mininterval=_BAR_INTERVAL, leave=True,
                dynamic_ncols=True)


def _format(logs):
    return " - ".join(f"{k}: {v:.4f}" for k, v in logs.items())


def _postfix(logs):
    return ", ".join(f"{k}={v:.4f}" for k, v in logs.items())


def _callbacks(model, callbacks, params):
    cbs = list(callbacks or [])
    for cb in cbs:
        if not isinstance(cb, Callback):
            raise TypeError(f"callbacks must be pynn.callbacks.Callback objects, got "
                            f"{type(cb).__name__}")
        cb.set_model(model)
        cb.set_params(params)
    return cbs


def _run_test(model, objective, batches, callbacks, verbose, desc="evaluate"):
    """Loss and metrics over `batches` in inference mode without a graph; the logs dict."""
    mean = _Mean(objective.keys)
    ends = [cb for cb in callbacks if overrides(cb, "on_test_batch_end")]
    for cb in callbacks:
        cb.on_test_begin()
    bar = _bar(len(batches), desc, verbose == 1)
    next_text = 0.0
    was_training = model.training
    # no callback runs between the batches: the weights stay as they are, and the Dense layers
    # may multiply by copies of them in the faster layout (pynn.ops.nn.constant_weights)
    rows = 0 if ends else len(batches) * (getattr(batches, "batch_size", None) or 0)
    _mode(model, False)
    try:
        with autograd.no_grad(), constant_weights(rows):
            for step, (xb, yb) in enumerate(batches):
                pred = model(xb)
                loss, parts = objective.loss(pred, yb)
                mean.add(len(yb[0]) if isinstance(yb, list) else len(yb),
                         objective.values(pred, yb, loss, parts))
                for cb in ends:
                    cb.on_test_batch_end(step, mean.result())
                if bar is not None:
                    bar.update(1)
                    now = time.perf_counter()
                    if now >= next_text:
                        bar.set_postfix_str(_postfix(mean.result()), refresh=False)
                        next_text = now + _BAR_INTERVAL
    finally:
        _mode(model, was_training)
        if bar is not None:
            bar.set_postfix_str(_postfix(mean.result()), refresh=False)
            bar.close()
    logs = mean.result()
    for cb in callbacks:
        cb.on_test_end(logs)
    return logs


def fit(model, x=None, y=None, batch_size=None, epochs=1, verbose=1, callbacks=None,
        validation_split=0.0, validation_data=None, shuffle=True, *, initial_epoch=0,
        steps_per_epoch=None, validation_batch_size=None, validation_freq=1, distributed=False):
    """Train for `epochs` epochs; returns a `History` (`history.history`: a list per log key).

    Args:
        x, y: arrays or Tensors with samples first (lists of them for several inputs or
            outputs), or a DataLoader yielding (x, y) batches as `x` (then `y` is None).
        batch_size: samples per step (default 32; per process when distributed).
        epochs: the index of the last epoch (training runs from `initial_epoch` to `epochs`).
        verbose: 0 silent, 1 a tqdm bar per epoch with the running loss and metrics, 2 one line
            per epoch.
        callbacks: pynn.callbacks objects (EarlyStopping, ModelCheckpoint, ...).
        validation_split: the fraction of the data held out for validation: the LAST samples,
            taken before any shuffling (as Keras).
        validation_data: (x_val, y_val), or a DataLoader; overrides validation_split.
        shuffle: reshuffle the training data every epoch (through a DataLoader, as the README's
            loop).
        steps_per_epoch: stop each epoch after this many batches.
        validation_freq: validate every this many epochs.
        distributed: data-parallel over MPI through pynn.distributed (which must be initialised):
            each process trains on its shard of every epoch (the same permutation on every rank,
            seeded by the epoch number) with gradients averaged by `DistributedOptimizer`; at
            each epoch's end the training logs and the BatchNorm running statistics are averaged
            over the ranks, and validation runs on the whole validation set on every process, so
            callbacks decide alike everywhere; only rank 0 prints and writes files
            (ModelCheckpoint, CSVLogger).

    Logs hold "loss" and each metric (sample-weighted means over the epoch, as Keras), then
    "val_loss" and "val_<metric>" when there is validation data.
    """
    cfg = _compiled(model, "fit")
    batch_size = _check_batch_size("fit", 32 if batch_size is None else batch_size)
    if not isinstance(epochs, (int, np.integer)) or isinstance(epochs, bool) or epochs < 0:
        raise ValueError(f"fit: epochs must be a non-negative integer, got {epochs!r}")
    if verbose not in (0, 1, 2):
        raise ValueError(f"fit: verbose must be 0, 1 or 2, got {verbose!r}")
    if steps_per_epoch is not None and steps_per_epoch < 1:
        raise ValueError(f"fit: steps_per_epoch must be >= 1, got {steps_per_epoch}")
    dist = _distributed() if distributed else None
    loader_kw = {}
    if dist is not None:
        loader_kw["shard"] = dist.shard()
    is_main = dist.is_main() if dist is not None else True

    # the training data, and the validation data held apart
    loader = x if _is_loader(x) else None
    val = None
    if loader is not None:
        if y is not None:
            raise ValueError("fit: x is a DataLoader, which yields the targets too; pass y=None")
        if validation_split:
            raise ValueError("fit: validation_split needs arrays (a DataLoader cannot be split); "
                             "pass validation_data instead")
        if dist is not None:
            raise ValueError("fit(distributed=True) needs arrays, not a DataLoader, to shard them")
        n_out = 1
    else:
        x, y = _arrays(x, "fit: x"), _arrays(y, "fit: y") if y is not None else None
        _check_data("fit", x, y)
        n_out = _n_outputs(y)
        if validation_split and validation_data is None:
            if not 0.0 < validation_split < 1.0:
                raise ValueError(f"fit: validation_split must be in (0, 1), got "
                                 f"{validation_split}")
            n = _length("x", x)
            split_at = int(math.floor(n * (1.0 - validation_split)))
            if split_at == 0 or split_at == n:
                raise ValueError(f"fit: validation_split={validation_split} of {n} samples leaves "
                                 "an empty training or validation set")
            val = (_split(x, split_at, n), _split(y, split_at, n))
            x, y = _split(x, 0, split_at), _split(y, 0, split_at)
    if validation_data is not None:
        val = _validation(validation_data)
    val_batch = _check_batch_size("fit", validation_batch_size or batch_size)

    objective = _Objective(model, cfg, n_out)
    opt = cfg.optimizer
    if dist is not None:
        if not isinstance(opt, dist.DistributedOptimizer):
            if cfg.distributed_optimizer is None or cfg.distributed_optimizer[0] is not opt:
                cfg.distributed_optimizer = (opt, dist.DistributedOptimizer(opt))
            opt = cfg.distributed_optimizer[1]
        if hasattr(dist, "broadcast_parameters"):
            dist.broadcast_parameters(model, root=0)

    def epoch_batches(epoch):
        if loader is not None:
            return loader
        kw = dict(loader_kw)
        if dist is not None:
            kw["seed"] = epoch           # every rank draws the same permutation, then its shard
        try:
            return _batches(x, y, batch_size, shuffle, **kw)
        except TypeError as e:
            if "shard" in kw:
                raise RuntimeError(f"fit(distributed=True): this DataLoader cannot shard ({e})") \
                    from e
            raise

    # (no DataLoader is made here for plain arrays: making one could draw from pynn's generator
    # and change the shuffling the epochs get)
    if loader is not None or dist is not None:
        steps = len(epoch_batches(initial_epoch))
    else:
        steps = -(-_length("x", x) // batch_size)
    if steps_per_epoch is not None:
        steps = min(steps, steps_per_epoch)
    history = History()
    params = {"epochs": epochs, "steps": steps, "verbose": verbose, "batch_size": batch_size,
              "is_main": is_main}
    cbs = _callbacks(model, callbacks, params) + _callbacks(model, [history], params)
    begins = [cb for cb in cbs if overrides(cb, "on_train_batch_begin", "on_batch_begin")]
    ends = [cb for cb in cbs if overrides(cb, "on_train_batch_end", "on_batch_end")]
    show = verbose if is_main else 0

    model.stop_training = False
    was_training = model.training
    logs = {}
    for cb in cbs:
        cb.on_train_begin()
    try:
        for epoch in range(initial_epoch, epochs):
            _mode(model, True)
            for cb in cbs:
                cb.on_epoch_begin(epoch, {})
            started = time.perf_counter()
            mean = _Mean(objective.keys)
            batches = epoch_batches(epoch)
            bar = _bar(min(steps, len(batches)), f"Epoch {epoch + 1}/{epochs}", show == 1)
            next_text = 0.0
            for step, (xb, yb) in enumerate(batches):
                if step == steps:
                    break
                for cb in begins:
                    cb.on_train_batch_begin(step, {})
                # the README's step
                pred = model(xb)
                loss, parts = objective.loss(pred, yb)
                loss.zero_grad()
                loss.backward()
                opt.update(model.parameters)
                mean.add(len(yb[0]) if isinstance(yb, list) else len(yb),
                         objective.values(pred, yb, loss, parts))
                if ends:
                    batch_logs = mean.result()
                    for cb in ends:
                        cb.on_train_batch_end(step, batch_logs)
                if bar is not None:
                    bar.update(1)
                    now = time.perf_counter()
                    if now >= next_text:
                        bar.set_postfix_str(_postfix(mean.result()), refresh=False)
                        next_text = now + _BAR_INTERVAL
                if model.stop_training:
                    break
            logs = mean.result()
            if dist is not None:
                logs = _across_ranks(dist, model, logs)
            if val is not None and not model.stop_training and (epoch + 1) % validation_freq == 0:
                val_logs = _run_test(model, objective, _test_batches(val, val_batch), cbs, 0)
                logs.update({f"val_{k}": v for k, v in val_logs.items()})
            if bar is not None:
                bar.set_postfix_str(_postfix(logs), refresh=False)
                bar.close()
            if show == 2:
                print(f"Epoch {epoch + 1}/{epochs} - {time.perf_counter() - started:.1f}s - "
                      f"{_format(logs)}", flush=True)
            for cb in cbs:
                cb.on_epoch_end(epoch, logs)
            if model.stop_training:
                break
    finally:
        _mode(model, was_training)
    for cb in cbs:
        cb.on_train_end(logs)
    model.history = history
    history.params = params
    return history


def _validation(data):
    if _is_loader(data):
        return data
    if not isinstance(data, (list, tuple)) or len(data) != 2:
        raise ValueError("fit: validation_data must be (x_val, y_val) or a DataLoader "
                         "(sample weights are not supported)")
    xv, yv = _arrays(data[0], "fit: validation x"), _arrays(data[1], "fit: validation y")
    _check_data("fit: validation_data", xv, yv)
    return xv, yv


def _test_batches(data, batch_size):
    if _is_loader(data):
        return data
    return _batches(data[0], data[1], batch_size, shuffle=False)


def _result(objective, logs, return_dict):
    if return_dict:
        return logs
    values = [logs[k] for k in objective.keys]
    return values[0] if len(values) == 1 else values


def evaluate(model, x=None, y=None, batch_size=None, verbose=1, *, callbacks=None,
             return_dict=False):
    """The loss (and metrics) over (x, y) in inference mode, in batches of `batch_size`
    (default 32): a float when there are no metrics, else [loss, metric, ...] in
    `model.metrics_names` order, or a dict with `return_dict=True`."""
    cfg = _compiled(model, "evaluate")
    batch_size = _check_batch_size("evaluate", 32 if batch_size is None else batch_size)
    if _is_loader(x):
        if y is not None:
            raise ValueError("evaluate: x is a DataLoader, which yields the targets too; pass "
                             "y=None")
        data, n_out = x, 1
    else:
        x, y = _arrays(x, "evaluate: x"), _arrays(y, "evaluate: y") if y is not None else None
        _check_data("evaluate", x, y)
        data, n_out = (x, y), _n_outputs(y)
    objective = _Objective(model, cfg, n_out)
    model.metrics_names = list(objective.keys)
    cbs = _callbacks(model, callbacks, {"verbose": verbose, "is_main": True})
    logs = _run_test(model, objective, _test_batches(data, batch_size), cbs, verbose)
    return _result(objective, logs, return_dict)


def _one_batch(model, where, x, y):
    cfg = _compiled(model, where)
    x, y = _arrays(x, f"{where}: x"), _arrays(y, f"{where}: y") if y is not None else None
    _check_data(where, x, y)
    objective = _Objective(model, cfg, _n_outputs(y))
    model.metrics_names = list(objective.keys)
    return cfg, objective, x, y


def train_on_batch(model, x, y, return_dict=False):
    """One training step on this batch, exactly the README loop's step (in training mode);
    returns the batch's loss (and metrics), as `evaluate`."""
    cfg, objective, x, y = _one_batch(model, "train_on_batch", x, y)
    was_training = model.training
    _mode(model, True)
    try:
        pred = model(x)
        loss, parts = objective.loss(pred, y)
        loss.zero_grad()
        loss.backward()
        cfg.optimizer.update(model.parameters)
    finally:
        _mode(model, was_training)
    logs = dict(zip(objective.keys, objective.values(pred, y, loss, parts), strict=True))
    return _result(objective, logs, return_dict)


def test_on_batch(model, x, y, return_dict=False):
    """The loss (and metrics) of this batch in inference mode, without a graph."""
    _, objective, x, y = _one_batch(model, "test_on_batch", x, y)
    was_training = model.training
    _mode(model, False)
    try:
        with autograd.no_grad():
            pred = model(x)
            loss, parts = objective.loss(pred, y)
            logs = dict(zip(objective.keys, objective.values(pred, y, loss, parts), strict=True))
    finally:
        _mode(model, was_training)
    return _result(objective, logs, return_dict)


def predict(model, x, batch_size=None, verbose=0):
    """`model.predict(x, batch_size)` (NumPy out, inference mode, no graph), with a tqdm bar over
    the batches when `verbose=1`."""
    if not verbose:
        return model.predict(x, batch_size=batch_size)
    xs = _arrays(x, "predict: x")
    n = _length("x", xs)
    size = _check_batch_size("predict", batch_size or 32)
    bar = _bar(-(-n // size), "predict", True)
    chunks = []
    try:
        for i in range(0, n, size):
            chunks.append(model.predict(_split(xs, i, i + size)))
            bar.update(1)
    finally:
        bar.close()
    if isinstance(chunks[0], list):
        return [np.concatenate([c[k] for c in chunks]) for k in range(len(chunks[0]))]
    return np.concatenate(chunks)

