"""Eager pynn against eager PyTorch: one training step of a 784-256-10 MLP.

    python benchmarks/eager_mlp.py [--steps 50] [--repeats 7] [--threads 2] [--profile]

The step is forward + backward at batch 64: relu(x @ w1 + b1) @ w2 + b2, then a softmax
cross-entropy built from plain tensor ops (log_softmax, integer-array indexing, mean). Both
libraries get the same float32 data and weights and the same number of threads (torch's, and
NumPy's BLAS's); each repeat times `--steps` steps of pynn then of torch, alternating, so machine
noise hits both alike. The table shows the median milliseconds per step (with min and max: on a
busy machine the spread says how far to trust the median). `--profile` adds a cProfile of pynn's
steps.
"""
import argparse
import cProfile
import datetime
import io
import os
import platform
import pstats
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _threads_from_argv(default=2):
    for i, arg in enumerate(sys.argv):
        if arg == "--threads" and i + 1 < len(sys.argv):
            return int(sys.argv[i + 1])
        if arg.startswith("--threads="):
            return int(arg.split("=", 1)[1])
    return default


# NumPy's BLAS reads its thread count when it is loaded: set it before the import, to the same
# number torch gets
THREADS = _threads_from_argv()
os.environ["OPENBLAS_NUM_THREADS"] = os.environ["OMP_NUM_THREADS"] = str(THREADS)

import flops  # noqa: E402  (this folder: the BLAS kernels line)
import numpy as np  # noqa: E402
import torch  # noqa: E402

from pynn import Tensor  # noqa: E402

BATCH, N_IN, N_HIDDEN, N_OUT = 64, 784, 256, 10


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def make_data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((BATCH, N_IN)).astype(np.float32)
    y = rng.integers(0, N_OUT, BATCH)
    w1 = (rng.standard_normal((N_IN, N_HIDDEN)) * np.sqrt(2 / N_IN)).astype(np.float32)
    b1 = np.zeros(N_HIDDEN, np.float32)
    w2 = (rng.standard_normal((N_HIDDEN, N_OUT)) * np.sqrt(1 / N_HIDDEN)).astype(np.float32)
    b2 = np.zeros(N_OUT, np.float32)
    return x, y, [w1, b1, w2, b2]


def pynn_step_fn(x, y, weights):
    x, rows, y = Tensor(x), np.arange(BATCH), y
    params = [Tensor(w.copy(), requires_grad=True) for w in weights]
    w1, b1, w2, b2 = params

    def step():
        for p in params:
            p.grad = None
        logits = (x @ w1 + b1).relu() @ w2 + b2
        loss = -logits.log_softmax(1)[rows, y].mean()
        loss.backward()
        return loss.item()
    return step, params


def torch_step_fn(x, y, weights):
    x, rows, y = torch.from_numpy(x), torch.arange(BATCH), torch.from_numpy(y)
    params = [torch.tensor(w, requires_grad=True) for w in weights]
    w1, b1, w2, b2 = params

    def step():
        for p in params:
            p.grad = None
        logits = (x @ w1 + b1).relu() @ w2 + b2
        loss = -logits.log_softmax(1)[rows, y].mean()
        loss.backward()
        return loss.item()
    return step, params


def time_steps(step, n):
    start = time.perf_counter()
    for _ in range(n):
        step()
    return (time.perf_counter() - start) / n * 1e3


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=50, help="steps per timed run")
    ap.add_argument("--repeats", type=int, default=7, help="timed runs per library")
    ap.add_argument("--profile", action="store_true", help="cProfile pynn's steps too")
    ap.add_argument("--pause", type=float, default=0.5,
                    help="seconds to idle before each timed run (default 0.5)")
    ap.add_argument("--threads", type=int, default=THREADS,
                    help="threads for torch and for NumPy's BLAS (default 2)")
    args = ap.parse_args()
    torch.set_num_threads(THREADS)
    load_before = os.getloadavg()[0]

    x, y, weights = make_data()
    p_step, p_params = pynn_step_fn(x, y, weights)
    t_step, t_params = torch_step_fn(x, y, weights)

    # same work: same loss and gradients (float32, so rtol 1e-4)
    p_loss, t_loss = p_step(), t_step()
    np.testing.assert_allclose(p_loss, t_loss, rtol=1e-4)
    for p, t in zip(p_params, t_params):
        np.testing.assert_allclose(p.grad.numpy(), t.grad.numpy(), rtol=1e-4, atol=1e-6)

    for _ in range(5):                  # warm up caches and BLAS threads
        p_step(), t_step()
    times = {"pynn": [], "torch": []}
    for _ in range(args.repeats):
        for name, step in (("pynn", p_step), ("torch", t_step)):
            # NumPy's OpenBLAS workers busy-wait for a while after a product, and torch's OpenMP
            # workers do too: without a pause, the library timed second shares its cores with
            # the other one's spinning threads (on 2 cores that doubled torch's time)
            time.sleep(args.pause)
            step()                      # wake this library's own thread pool
            times[name].append(time_steps(step, args.steps))
    med = {k: statistics.median(v) for k, v in times.items()}

    print(f"Eager MLP {N_IN}-{N_HIDDEN}-{N_OUT} training step (forward + backward, relu, "
          f"log_softmax cross-entropy), batch {BATCH}, float32")
    print()
    print(f"- date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}")
    print(f"- machine: {cpu_model()}, {os.cpu_count()} cores; {THREADS} threads for torch and "
          f"for NumPy's BLAS; load average before the run {load_before:.2f}")
    print(f"- python {platform.python_version()}, numpy {np.__version__}, "
          f"torch {torch.__version__}")
    print(f"- NumPy's BLAS: {flops.blas_kernels()}")
    print(f"- median of {args.repeats} runs of {args.steps} steps each, libraries alternating; "
          f"loss {p_loss:.4f} (pynn) vs {t_loss:.4f} (torch)")
    print()
    print("| library | ms / step (median) | min | max |")
    print("|---|---:|---:|---:|")
    for k in ("pynn", "torch"):
        print(f"| {k} (eager) | {med[k]:.3f} | {min(times[k]):.3f} | {max(times[k]):.3f} |")
    print(f"| **pynn / torch** | **{med['pynn'] / med['torch']:.2f}x** | | |")

    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(args.steps * 4):
            p_step()
        prof.disable()
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(20)
        print()
        print("```")
        print(out.getvalue().strip())
        print("```")


if __name__ == "__main__":
    main()
