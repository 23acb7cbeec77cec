"""What the host charges when one core writes memory that the other core has just read.

    python benchmarks/cross_core.py [--rounds 8] [--reps 200] [--no-torch]

An optimizer step writes every weight that the forward pass's matrix products read. With two
BLAS threads, both cores read the weight, so both hold its cache lines. The step runs on one
core, so each of its stores must first take the line away from the other core. This script
times that, each round a median of --reps calls:

- `alone`: pynn's Adam kernel (pynn.kernels.optim.adam_step_usual) on a 256x784 float32
  weight, the first layer of benchmarks/run.py's mnist-mlp, called repeatedly with nothing in
  between;
- `after 2-thread read`: the same kernel right after `x @ W.T` at batch 64 (a Linear's forward)
  on two BLAS threads;
- `after 1-thread read`: the same after that product on one BLAS thread (pynn's own setting,
  pynn.kernels.threads), so only the core that then writes has read the weight;
- `torch after read`: torch.optim.Adam's step on the same weight right after torch's
  F.linear reads it (torch.set_num_threads(2)), unless --no-torch.

Rounds are a second apart. On a shared VM the cost of handing cache lines between the two
virtual cores changes over time, so the rounds show how far it moves.
"""
import argparse
import statistics
import time

import numpy as np

from pynn.kernels import optim as K
from pynn.kernels import threads

OUT, IN, BATCH = 256, 784, 64


def median_us(before, kernel, reps):
    times = []
    for i in range(reps):
        before()
        start = time.perf_counter()
        kernel(i)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def pynn_case(reps):
    """Three timings (us) of pynn's Adam kernel on the weight: alone, after a two-thread
    product that reads it, after the same product on one BLAS thread."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((OUT, IN)).astype(np.float32)
    p = w.reshape(-1)
    g = (rng.standard_normal(p.size) * 1e-2).astype(np.float32)
    m, v = np.zeros_like(p), np.zeros_like(p)
    hp = np.array([1e-3, 0.9, 0.999, 1e-8, 0.0, 0.0, 0.0])
    x = rng.standard_normal((BATCH, IN)).astype(np.float32)
    y = np.empty((BATCH, OUT), np.float32)
    state = {"step": 0}

    def adam(_):
        state["step"] += 1
        K.adam_step_usual(p, g, m, v, state["step"], hp)

    def read():
        np.matmul(x, w.T, out=y)

    adam(0)                                   # compiled (or loaded from the cache) first
    alone = median_us(lambda: None, adam, reps)
    two = median_us(read, adam, reps)
    one = None
    if threads.blas_local_threads_available():
        before = threads._getter()
        threads._setter(1)
        try:
            one = median_us(read, adam, reps)
        finally:
            threads._setter(before)
    return alone, two, one


def torch_case(reps):
    """torch.optim.Adam's step (us) on the same weight right after F.linear reads it."""
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(2)
    gen = torch.Generator().manual_seed(0)
    w = torch.nn.Parameter(torch.randn(OUT, IN, generator=gen))
    w.grad = torch.randn(OUT, IN, generator=gen) * 1e-2
    opt = torch.optim.Adam([w], lr=1e-3)
    x = torch.randn(BATCH, IN, generator=gen)

    def read():
        with torch.no_grad():
            F.linear(x, w)

    opt.step()
    return median_us(read, lambda _: opt.step(), reps)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--pause", type=float, default=1.0, help="seconds between rounds")
    ap.add_argument("--no-torch", action="store_true")
    args = ap.parse_args()
    print(f"Adam on a {OUT}x{IN} float32 weight, median us of {args.reps} calls per round, "
          f"rounds {args.pause:g} s apart")
    print()
    print("| round | alone | after 2-thread read | after 1-thread read | torch after read |")
    print("|---:|---:|---:|---:|---:|")
    ratios = []
    for r in range(args.rounds):
        if r:
            time.sleep(args.pause)
        alone, two, one = pynn_case(args.reps)
        tt = None if args.no_torch else torch_case(args.reps)
        ratios.append(two / alone)
        cells = [f"{alone:.0f}", f"{two:.0f}", "-" if one is None else f"{one:.0f}",
                 "-" if tt is None else f"{tt:.0f}"]
        print(f"| {r + 1} | " + " | ".join(cells) + " |")
    print()
    print(f"after a 2-thread read / alone: median {statistics.median(ratios):.2f}x, "
          f"lowest {min(ratios):.2f}x, highest {max(ratios):.2f}x")


if __name__ == "__main__":
    main()
