"""pynn.precompile: after ``python -m pynn.precompile`` a user's first steps compile nothing.

The slow test runs it on an empty Numba cache (NUMBA_CACHE_DIR in a temporary folder), then
trains models of every layer family at other sizes and batch sizes than precompile's own, in a
new process that records each Numba compilation: there must be none, since Numba specialises a
kernel on its argument types (dtype, dimensions, layout), not on the shapes.
"""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from compile_events import RECORD_COMPILES, RECORD_COMPILES_REPORT, compiled_count

from pynn.precompile import kernel_dispatchers

REPO = Path(__file__).resolve().parents[1]

FIRST_STEPS = RECORD_COMPILES + textwrap.dedent('''
    import numpy as np

    import pynn
    from pynn import Input, Model, no_grad
    from pynn.layers import (LSTM, BatchNorm2d, Conv2d, Dense, Embedding, Flatten, LayerNorm,
                             MaxPool2d, MultiHeadAttention, GlobalAveragePooling2D)
    from pynn.losses import categorical_cross_entropy, cross_entropy
    from pynn.optimizers import SGD, Adam

    rng = np.random.default_rng(1)
    n = 32

    def train(x_in, out, x, loss_fn, opt):
        model = Model(x_in, out)
        for _ in range(2):
            loss = loss_fn(model(x))
            loss.zero_grad()
            loss.backward()
            opt.update(model.parameters)
        model.eval()
        with no_grad():
            model(x)

    y = rng.integers(0, 10, n)
    classify = lambda p: categorical_cross_entropy(p, y)
    # an MLP as in examples/mnist_mlp.py
    x_in = Input((784,))
    out = Dense(128, 10, "softmax")(Dense(784, 128, "relu")(x_in))
    train(x_in, out, rng.random((n, 784), dtype=np.float32), classify, SGD(0.1, momentum=0.9))
    # a CNN as in the README: conv + relu + max-pool (fused), twice
    x_in = Input((1, 28, 28))
    h = MaxPool2d(2)(Conv2d(1, 16, 5, padding=2, activation="relu")(x_in))
    h = MaxPool2d(2)(Conv2d(16, 32, 3, padding=1, activation="relu")(h))
    out = Dense(32 * 7 * 7, 10, "softmax")(Flatten()(h))
    train(x_in, out, rng.random((n, 1, 28, 28), dtype=np.float32), classify, Adam(1e-3))
    # a residual block: "same" convolutions, batch norm, a strided projection
    x_in = Input((3, 16, 16))
    h = BatchNorm2d(8)(Conv2d(3, 8, 3, padding="same", bias=False)(x_in)).relu()
    h = BatchNorm2d(8)(Conv2d(8, 8, 3, stride=2, padding=1, bias=False)(h))
    h = (h + Conv2d(3, 8, 1, stride=2, bias=False)(x_in)).relu()
    out = Dense(8, 10, "softmax")(GlobalAveragePooling2D()(h))
    train(x_in, out, rng.random((n, 3, 16, 16), dtype=np.float32), classify, Adam(1e-3))
    # an LSTM over a sequence of rows
    x_in = Input((28, 28))
    out = Dense(32, 10, "softmax")(LSTM(32)(x_in))
    train(x_in, out, rng.random((n, 28, 28), dtype=np.float32), classify, Adam(1e-3))
    # a one-block causal transformer on characters
    ids = rng.integers(0, 27, (n, 12))
    x_in = Input((12,))
    h = Embedding(27, 32)(x_in)
    h = h + MultiHeadAttention(32, 4, causal=True)(LayerNorm(32)(h))
    h = h + Dense(64, 32)(Dense(32, 64)(LayerNorm(32)(h)).gelu())
    out = Dense(32, 27)(LayerNorm(32)(h))
    train(x_in, out, ids.astype(np.float32),
          lambda logits: cross_entropy(logits.reshape(-1, 27), ids.reshape(-1)), Adam(1e-3))
''') + RECORD_COMPILES_REPORT


def test_kernel_dispatchers_lists_pynn_kernels():
    found = kernel_dispatchers()
    assert "pynn.kernels.optim.adam_step" in found
    assert "pynn.kernels.optim.adam_step_usual" in found
    # a kernel made once per activation: once per activation
    assert "pynn.kernels.conv_pool.bias_act_maxpool2x2_forward[relu]" in found
    assert "pynn.kernels.conv_pool.bias_act_maxpool2x2_forward[identity]" in found
    assert "pynn.kernels.activation.bias_act_forward[tanh]" in found
    assert all(name.startswith("pynn.kernels.") for name in found)
    assert all(hasattr(d, "py_func") and hasattr(d, "signatures") for d in found.values())


@pytest.mark.slow
def test_first_steps_compile_nothing_after_precompile(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["NUMBA_CACHE_DIR"] = str(tmp_path / "numba-cache")          # empty: a cold start
    proc = subprocess.run([sys.executable, "-m", "pynn.precompile"], capture_output=True,
                          text=True, timeout=900, env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = proc.stdout.strip().splitlines()[-1]
    assert summary.startswith("pynn.precompile: "), proc.stdout
    assert any((tmp_path / "numba-cache").rglob("*.nbi")), "precompile wrote no cache"
    (tmp_path / "first_steps.py").write_text(FIRST_STEPS)
    proc = subprocess.run([sys.executable, str(tmp_path / "first_steps.py")],
                          capture_output=True, text=True, timeout=900, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    count, line = compiled_count(proc.stdout)
    assert count == 0, line


COLD_MLP_AND_CNN = RECORD_COMPILES + textwrap.dedent('''
    import numpy as np

    from pynn import Input, Model
    from pynn.layers import Conv2d, Dense, Flatten, MaxPool2d
    from pynn.losses import categorical_cross_entropy
    from pynn.optimizers import Adam

    rng = np.random.default_rng(0)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 16)]
    x_in = Input((1, 12, 12))
    h = MaxPool2d(2)(Conv2d(1, 4, 3, padding=1, activation="relu")(x_in))
    mlp_in = Input((144,))
    for x_in, out, x in (
            (mlp_in, Dense(32, 10, "softmax")(Dense(144, 32, "relu")(mlp_in)),
             rng.random((16, 144), dtype=np.float32)),
            (x_in, Dense(4 * 6 * 6, 10, "softmax")(Flatten()(h)),
             rng.random((16, 1, 12, 12), dtype=np.float32))):
        model, opt = Model(x_in, out), Adam(1e-3)
        loss = categorical_cross_entropy(model(x), y)
        loss.zero_grad()
        loss.backward()
        opt.update(model.parameters)
''') + RECORD_COMPILES_REPORT


def test_a_cold_first_step_compiles_only_the_kernels_it_calls(tmp_path):
    """On an empty Numba cache, the first steps of an MLP and a CNN compile pynn's kernels only
    (no Numba helper such as min()'s), each once, and only the variants they use: the ReLU
    kernels and not the other activations', no kernel for a bias without an activation (NumPy
    adds it), and Adam's kernel for the usual options, not the general one."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["NUMBA_CACHE_DIR"] = str(tmp_path / "numba-cache")
    (tmp_path / "cold.py").write_text(COLD_MLP_AND_CNN)
    proc = subprocess.run([sys.executable, str(tmp_path / "cold.py")], capture_output=True,
                          text=True, timeout=900, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    count, line = compiled_count(proc.stdout)
    names = line.split()[2:]
    assert count == len(names), line                   # none compiled twice
    assert all(name.startswith("pynn.kernels.") for name in names), line
    for used in ("activation.bias_act_forward[relu]", "activation.bias_act_backward[relu]",
                 "conv_pool.bias_act_maxpool2x2_forward[relu]", "optim.adam_step_usual"):
        assert f"pynn.kernels.{used}" in names, line
    assert not [name for name in names if "[" in name and not name.endswith("[relu]")], line
    assert "pynn.kernels.optim.adam_step" not in names, line
