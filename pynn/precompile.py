"""Compile pynn's Numba kernels before the first training step: ``python -m pynn.precompile``.

Numba compiles a kernel the first time it is called with new argument types and keeps the
machine code in its cache (``pynn/kernels/__pycache__``, or ``NUMBA_CACHE_DIR``), so only the
first run after an install pays: about 2.8 s for the first steps of an MLP and a CNN
(``python benchmarks/compile_times.py``). :func:`warm_up` pays it up front: it trains a few tiny
float32 models -- one per layer family: dense, convolutional (with pooling and batch norm),
recurrent and attention -- for a step each, in a compiled Model and eagerly, with the usual
optimizers, and runs each once more in inference mode. Every kernel a usual training step
calls is then compiled and in the cache.

The wheel build runs it (``setup.py``), so a wheel or a ``pip install .`` carries the cache
next to the kernels and a new install starts warm; an editable install (``pip install -e .``)
runs it on the clone, whose ``pynn/kernels/__pycache__`` then holds the cache. Numba reuses a
cached kernel only on a machine with the same CPU model and features and with the same Numba
and Python versions; on any other it compiles again, as without the cache. Run ``python -m
pynn.precompile`` yourself after an install that could not use the shipped cache (another CPU, a
read-only install whose cache goes to ``~/.cache/numba``, or an image you build once and run
many times).
"""
import sys
import time

import numpy as np

from . import kernels
from .autograd import no_grad
from .kernels.activation import PerActivation
from .kernels.threads import get_num_threads, split_batch
from .layers import (
    GRU,
    LSTM,
    AvgPool2d,
    BatchNorm1d,
    BatchNorm2d,
    Conv2d,
    Dense,
    Dropout,
    Embedding,
    Flatten,
    GlobalAveragePooling2D,
    LayerNorm,
    MaxPool2d,
    MultiHeadAttention,
    SimpleRNN,
)
from .losses import categorical_cross_entropy, cross_entropy
from .model import Input, Model
from .optim import SGD, Adam, AdamW, RMSprop
from .tensor import Tensor

__all__ = ["warm_up", "kernel_dispatchers", "main"]

BATCH = 8


def _mlp(x):
    x = Dense(12, 16, "relu")(x)
    x = Dense(16, 16, "tanh")(x)
    x = Dropout(0.1)(BatchNorm1d(16)(Dense(16, 16, "sigmoid")(x)))
    return Dense(16, 4, "softmax")(x)


def _cnn(x):
    x = MaxPool2d(2)(Conv2d(1, 4, 3, padding=1, activation="relu")(x))   # fused conv + pool
    x = MaxPool2d(2)(Conv2d(4, 6, 3, activation="relu")(x))              # 'valid', odd size
    x = Conv2d(6, 8, 1, bias=False)(x)
    return Dense(8 * 2 * 2, 4, "softmax")(Flatten()(x))


def _winograd_cnn(x):
    x = Conv2d(16, 32, 1)(x)            # so that the Winograd convs' input gradients run too
    x = Conv2d(32, 64, 3, padding=1)(x)                                    # Winograd
    x = MaxPool2d(2)(Conv2d(64, 16, 3, padding=1, activation="relu")(x))   # Winograd + pool
    return Dense(16 * 2 * 2, 4, "softmax")(Flatten()(x))


def _resnet(x):
    x = BatchNorm2d(4)(Conv2d(1, 4, 3, padding="same", bias=False)(x)).relu()
    h = BatchNorm2d(8)(Conv2d(4, 8, 3, stride=2, padding=1, bias=False)(x)).relu()
    x = h + BatchNorm2d(8)(Conv2d(4, 8, 1, stride=2, bias=False)(x))
    x = GlobalAveragePooling2D()(AvgPool2d(2)(x.relu()))
    return Dense(8, 4, "softmax")(x)


def _recurrent(x):
    h = GRU(8, 8)(LSTM(5, 8)(x))                       # torch's form: the whole sequence
    return Dense(8, 4, "softmax")(SimpleRNN(8)(h) + LSTM(8)(h))   # Keras's: the last step


def _transformer(x):
    h = Embedding(11, 16)(x)
    h = h + MultiHeadAttention(16, 2, causal=True)(LayerNorm(16)(h))
    h = h + Dense(32, 16)(Dense(16, 32)(LayerNorm(16)(h)).gelu())
    return Dense(16, 11)(LayerNorm(16)(h))


# (name, build, input shape without the batch, data, loss, optimizer)
def _workloads(rng):
    def floats(*shape):
        return rng.standard_normal((BATCH,) + shape).astype(np.float32)

    classes = rng.integers(0, 4, BATCH)
    ids = rng.integers(0, 11, (BATCH, 7))

    def classify(pred):
        return categorical_cross_entropy(pred, classes)

    def next_id(logits):
        return cross_entropy(logits.reshape(-1, 11), ids.reshape(-1))

    return [
        ("dense", _mlp, (12,), floats(12), classify, lambda: SGD(0.01, momentum=0.9)),
        ("conv", _cnn, (1, 12, 12), floats(1, 12, 12), classify, lambda: Adam(1e-3)),
        ("winograd", _winograd_cnn, (16, 4, 4), floats(16, 4, 4), classify, lambda: Adam(1e-3)),
        ("resnet", _resnet, (1, 8, 8), floats(1, 8, 8), classify, lambda: AdamW(1e-3)),
        ("recurrent", _recurrent, (6, 5), floats(6, 5), classify, lambda: RMSprop(1e-3)),
        ("attention", _transformer, (7,), ids.astype(np.float32), next_id, lambda: Adam(1e-3)),
    ]


def _train_step(forward, x, loss_fn, opt, parameters):
    loss = loss_fn(forward(x))
    loss.zero_grad()
    loss.backward()
    opt.update(parameters)


def kernel_dispatchers():
    """{'module.name': dispatcher} of every Numba kernel in pynn.kernels; a kernel made once
    per activation (``PerActivation``) is listed once per activation, as 'module.name[relu]'."""
    found = {}
    for mod_name, module in sorted(sys.modules.items()):
        if not mod_name.startswith(kernels.__name__ + "."):
            continue
        for obj in vars(module).values():
            candidates = obj.values() if isinstance(obj, PerActivation) else (obj,)
            for d in candidates:
                if hasattr(d, "py_func") and hasattr(d, "signatures") \
                        and getattr(d.py_func, "__module__", None) == mod_name:
                    found[f"{mod_name}.{d.py_func.__qualname__}"] = d
    return found


def warm_up(verbose=False):
    """Train each tiny model one step (compiled Model and eager), then run it in inference mode.

    Returns the seconds it took. Compiles (or loads from Numba's cache) every kernel those steps
    call, for float32.
    """
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for name, build, shape, data, loss_fn, make_opt in _workloads(rng):
        t0 = time.perf_counter()
        x_in = Input(shape)
        model = Model(x_in, build(x_in))
        opt = make_opt()
        for _ in range(2):                       # the second step runs the optimizer's state
            _train_step(model, data, loss_fn, opt, model.parameters)
        # eagerly: new layers called on a tensor instead of a symbolic input (the optimizer's
        # kernels are compiled by now)
        loss_fn(build(Tensor(data))).backward()
        model.eval()
        with no_grad():
            model(data)
        model.train()
        if verbose:
            print(f"  {name:<10} {time.perf_counter() - t0:6.2f} s", flush=True)
    for shape in ((BATCH, 6), (BATCH, 3, 6)):    # tensor methods, outside any layer
        x = Tensor(rng.standard_normal(shape).astype(np.float32), requires_grad=True)
        y = x.relu() + x.tanh() + x.sigmoid() + x.gelu() + x.log_softmax(-1) + x.softmax(-1)
        y.sum().backward()
    if get_num_threads() > 1:       # a big batch is split across the cores: the pool's wait
        split_batch(lambda k, n0, n1: None, 2, 2)
    return time.perf_counter() - start


def main(argv=None):
    import argparse

    p = argparse.ArgumentParser(prog="python -m pynn.precompile", description=__doc__.split(
        "\n")[0])
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing")
    args = p.parse_args(argv)
    seconds = warm_up(verbose=not args.quiet)
    if not args.quiet:
        dispatchers = kernel_dispatchers()
        ready = sum(1 for d in dispatchers.values() if d.signatures)
        print(f"pynn.precompile: {seconds:.1f} s; {ready} of {len(dispatchers)} kernels compiled "
              f"or loaded from Numba's cache")
    return 0


if __name__ == "__main__":
    sys.exit(main())
