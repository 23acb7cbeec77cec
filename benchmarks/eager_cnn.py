"""Eager pynn (no Model) against eager PyTorch: a training step of the README's CNN.

    python benchmarks/eager_cnn.py [--steps 20] [--repeats 5]

The layers of examples/mnist_cnn.py (benchmarks/workloads.py readme_cnn_layers) called on
tensors, at batch 64 on random MNIST-sized images, with Adam: pynn with its batch split across
the cores (the default), pynn on one thread (`pynn.set_num_threads(1)`: BLAS still uses every
thread) and torch with its weights copied from pynn's, 2 threads each. Each repeat times
`--steps` steps of each, alternating; the table gives the median milliseconds per step, with
the fastest and slowest run (on a busy host the spread says how far to trust the median).
"""
import argparse
import datetime
import os
import statistics
import sys
import time
from pathlib import Path

THREADS = 2
os.environ["OPENBLAS_NUM_THREADS"] = os.environ["OMP_NUM_THREADS"] = str(THREADS)
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import flops  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import pynn  # noqa: E402
from pynn import Tensor  # noqa: E402
from pynn.losses import categorical_cross_entropy  # noqa: E402
from pynn.optimizers import Adam  # noqa: E402

BATCH = 64


def pynn_step(layers, x, y):
    params = [p for layer in layers for p in layer.parameters]
    opt = Adam(1e-3)

    def step():
        h = Tensor(x)
        for layer in layers:
            h = layer(h)
        loss = categorical_cross_entropy(h, y)
        loss.zero_grad()
        loss.backward()
        opt.update(params)
        return loss.item()
    return step


def torch_step(model, x, y):
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)

    def step():
        loss = torch.nn.functional.cross_entropy(model(tx), ty)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()
    return step


def main():
    import workloads as W
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--no-winograd", action="store_true",
                   help="every conv by im2col (Conv2d.WINOGRAD = False), to compare")
    args = p.parse_args()
    if args.no_winograd:
        from pynn.ops.nn import Conv2d
        Conv2d.WINOGRAD = False
    torch.set_num_threads(THREADS)
    rng = np.random.default_rng(0)
    x = rng.random((BATCH, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, BATCH)
    pynn.manual_seed(0)
    layers = W.readme_cnn_layers()
    twin = W.torch_model(layers)
    split, torch_run = pynn_step(layers, x, y), torch_step(twin, x, y)

    # (name, pynn's thread count during the run, step)
    runs = [("pynn eager, batch split", THREADS, split), ("pynn eager, one thread", 1, split),
            ("torch eager", THREADS, torch_run)]
    times = {name: [] for name, _, _ in runs}
    for _ in range(3):                       # warm-up: compile, BLAS threads, allocators
        for _, threads, step in runs:
            pynn.set_num_threads(threads)
            step()
    for _ in range(args.repeats):
        for name, threads, step in runs:
            pynn.set_num_threads(threads)
            step()                           # the first step after a change is not timed
            start = time.perf_counter()
            for _ in range(args.steps):
                step()
            times[name].append((time.perf_counter() - start) / args.steps * 1e3)
    pynn.set_num_threads(THREADS)
    print(f"Eager README CNN training step (examples/mnist_cnn.py's layers, Adam), batch {BATCH},"
          f" float32, {THREADS} threads\n")
    print(f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC")
    print(f"- python {sys.version.split()[0]}, numpy {np.__version__}, torch {torch.__version__}")
    print(f"- NumPy's BLAS: {flops.blas_kernels()}")
    print(f"- median of {args.repeats} runs of {args.steps} steps each, alternating")
    print("- command: python benchmarks/eager_cnn.py " + " ".join(sys.argv[1:]) + "\n")
    print("| run | ms / step (median) | min | max | / torch |\n|---|---:|---:|---:|---:|")
    torch_ms = statistics.median(times["torch eager"])
    for name, ts in times.items():
        ms = statistics.median(ts)
        print(f"| {name} | {ms:.2f} | {min(ts):.2f} | {max(ts):.2f} | {ms / torch_ms:.2f} |")


if __name__ == "__main__":
    main()
