"""Floating-point work of a pynn model, counted from its layers and their shapes, and this
machine's SGEMM peak, for the GFLOP/s columns of benchmarks/run.py.

Convention (the usual one for "model FLOPs"):

* Only matrix-product work is counted: Dense, Conv1d/Conv2d (and their transposes), the LSTM,
  GRU and RNN input and recurrent products, and MultiHeadAttention's q/k/v and output
  projections plus its two batched products (q @ k^T and p @ v, over the full L x S score
  matrix even when the mask is causal, since both libraries compute all of it). Biases,
  activations, normalisation, pooling, embeddings, gate non-linearities, the loss and the
  optimizer are left out (a few percent at most for these models).
* One multiply-add is 2 FLOPs.
* A training step costs 3x the forward work (forward; gradient with respect to the weights;
  gradient with respect to the layer's input), except that a layer whose inputs need no
  gradient (the first layer, reading the model's input data) skips its input gradient; for a
  recurrent first layer that is the input projection part only (the recurrent product's
  gradient is needed to go back in time).
* Inference is the forward work alone.

Counts are per sample; multiply by the batch size and the number of steps.
"""
import math
import os
import subprocess
import sys
import time

import numpy as np

GATES = {"LSTM": 4, "GRU": 3, "RNN": 1, "SimpleRNN": 1}


def _macs(call):
    """(forward multiply-adds per sample, the part of them whose input gradient is the layer
    input's) for one layer call."""
    layer, kind = call.layer, type(call.layer).__name__
    x = call.inputs[0].data.shape[1:]
    out = call.outputs[0].data.shape[1:]
    if kind == "Dense":
        m = math.prod(x[:-1]) * layer.in_features * layer.out_features
        return m, m
    if kind.startswith("Conv"):
        transposed = "Transpose" in kind
        taps = math.prod(layer.kernel_size)
        # a convolution: every output value sums C/groups * taps products; a transposed one:
        # every input value is spread over O/groups * taps outputs
        if transposed:
            m = math.prod(x) * layer.out_channels // layer.groups * taps
        else:
            m = math.prod(out) * x[0] // layer.groups * taps
        return m, m
    if kind in GATES:
        T, H, D = x[0], layer.hidden_size, 2 if layer.bidirectional else 1
        G = GATES[kind] * H
        total = first_input = 0
        for i in range(layer.num_layers):
            features = x[-1] if i == 0 else D * H
            total += D * T * G * (features + H)
            if i == 0:
                first_input = D * T * G * features
        return total, first_input
    if kind == "MultiHeadAttention":
        E = layer.embed_dim
        L = x[0]
        S = call.inputs[1].data.shape[1] if len(call.inputs) > 1 and \
            call.inputs[1].data.ndim == 3 else L
        m = L * E * E + 2 * S * E * E + 2 * L * S * E + L * E * E
        return m, m
    return 0, 0


def _needs_grad(t, model_inputs):
    """Whether a layer's input tensor gets a gradient: not the model's input data (whose graph
    placeholder is marked requires_grad), not a constant."""
    return id(t) not in model_inputs and bool(getattr(t, "requires_grad", False))


def forward_flops(model):
    """Forward FLOPs per sample of a pynn Model."""
    return 2 * sum(_macs(call)[0] for call in model.calls)


def training_flops(model):
    """FLOPs per sample of one training step (forward + backward) of a pynn Model, by the
    module docstring's convention."""
    total, model_inputs = 0, {id(t) for t in model.inputs}
    for call in model.calls:
        m, input_part = _macs(call)
        total += 3 * m
        if not any(_needs_grad(t, model_inputs) for t in call.inputs):
            total -= input_part
    return 2 * total


# -- machine peak -----------------------------------------------------------------------------
def blas_kernels():
    """Which kernels NumPy's OpenBLAS runs: its core name (DYNAMIC_ARCH builds pick one for the
    CPU at load), and the OPENBLAS_* settings of the environment (OPENBLAS_CORETYPE overrides
    that choice; the thread counts are left out). On the AMD EPYC (Zen 5) host of 2026-12-07
    the sandbox set OPENBLAS_CORETYPE=Haswell: AVX2 kernels at half the float32 peak of the
    SkylakeX (AVX-512) ones OpenBLAS picks there by itself."""
    import ctypes

    from pynn.kernels.blas import openblas_libraries
    from pynn.kernels.threads import _first_symbol
    name = "?"
    for lib in openblas_libraries():
        fn = _first_symbol(lib, "openblas_get_corename", "scipy_openblas_get_corename64_")
        if fn is not None:
            fn.restype = ctypes.c_char_p
            name = fn().decode()
            break
    overrides = " ".join(f"{k}={v}" for k, v in sorted(os.environ.items())
                         if k.startswith("OPENBLAS_") and not k.endswith("_NUM_THREADS"))
    return f"OpenBLAS {name} kernels" + (f" ({overrides} set in the environment)" if overrides
                                         else " (its own choice for this CPU)")


def sgemm_peak(n=2048, repeats=5):
    """Best GFLOP/s of NumPy's float32 (n x n) @ (n x n), over `repeats` products after one
    untimed product, with whatever BLAS threads this process has."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    c = np.empty((n, n), np.float32)
    np.matmul(a, b, out=c)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        np.matmul(a, b, out=c)
        best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / best / 1e9


def sgemm_peak_subprocess(threads, n=2048, repeats=5):
    """sgemm_peak in a fresh process whose BLAS is given `threads` threads before NumPy loads
    (OpenBLAS reads its thread count once, at load)."""
    env = dict(os.environ)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    code = (f"import sys; sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r}); "
            f"import flops; print(flops.sgemm_peak({n}, {repeats}))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=env)
    return float(res.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    print(f"SGEMM peak, NumPy float32 2048x2048, {threads} threads: "
          f"{sgemm_peak_subprocess(threads):.1f} GFLOP/s; {blas_kernels()}")
