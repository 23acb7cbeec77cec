"""Which threads pay? pynn's CNN workloads three ways -- everything on one thread of kernels
(``pynn.set_num_threads(1)``: BLAS alone uses the cores), the batch split across the cores
(``pynn.set_num_threads(2)``, the default: pynn/kernels/threads.py), and the kernels compiled
with Numba's ``parallel=True`` (no split) -- with PyTorch as the yardstick, in one run.

    python benchmarks/parallel_kernels.py [--repeats 3] [--steps 300]

The kernels whose outer loop is a ``prange`` (im2col, max-pool forward, conv bias + activation
forward) are recompiled from their Python source with ``parallel=True`` and swapped into
pynn.ops.nn for the "parallel" runs. Runs alternate (serial, parallel, torch, ...); the table
shows medians. BLAS and Numba each get the benchmark's thread count (2).
"""
import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from numba import njit

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

PARALLEL_KERNELS = ["im2col", "maxpool2d_forward", "bias_act_forward_cnp"]


def swap_kernels(parallel):
    """Point pynn.ops.nn at the parallel builds (or back at the shipped ones)."""
    import pynn.kernels as K
    import pynn.ops.nn as nn_ops
    if not hasattr(swap_kernels, "builds"):
        swap_kernels.builds = {name: njit(parallel=True)(getattr(K, name).py_func)
                               for name in PARALLEL_KERNELS}
    for name in PARALLEL_KERNELS:
        setattr(nn_ops, name, swap_kernels.builds[name] if parallel else getattr(K, name))


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    shared_data = str(HERE.parents[1] / "shared" / "data")
    p.add_argument("--data-dir", default=os.environ.get("PYNN_DATA_DIR", shared_data))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--only", nargs="*", default=["mnist-cnn", "readme-cnn", "inference-cnn"])
    args = p.parse_args()
    import run as R
    R.set_threads(R.THREADS)
    data = R.load_data(args.data_dir)
    print(f"date: {time.strftime('%Y-%m-%d %H:%M')}  machine: {R.machine()}")
    print(f"{R.THREADS} threads for BLAS, Numba and torch; "
          f"median of {args.repeats} alternating runs; "
          f"{args.steps} batches per training run")
    print(f"command: python benchmarks/{Path(__file__).name} {' '.join(sys.argv[1:])}\n")
    print("| workload | one thread s | batch split s | numba parallel s | torch s | one/torch "
          "| split/torch | parallel/torch |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    import pynn
    variants = ("serial", "split", "parallel", "torch")

    def select(variant):
        swap_kernels(variant == "parallel")
        pynn.set_num_threads(R.THREADS if variant == "split" else 1)

    for name in args.only:
        for variant in variants:             # warm up: JIT compile (per kernel build), BLAS threads
            select(variant)
            R.make(name, "torch" if variant == "torch" else "pynn", data, min(args.steps, 20))[0]()
        times = {k: [] for k in variants}
        for _ in range(args.repeats):
            for variant in variants:
                select(variant)
                run, _ = R.make(name, "torch" if variant == "torch" else "pynn", data, args.steps)
                t0 = time.perf_counter()
                run()
                times[variant].append(time.perf_counter() - t0)
        swap_kernels(False)
        pynn.set_num_threads(R.THREADS)
        s, sp, par, t = (float(np.median(times[k])) for k in variants)
        print(f"| {name} | {s:.3f} | {sp:.3f} | {par:.3f} | {t:.3f} | {s / t:.2f} | {sp / t:.2f} "
              f"| {par / t:.2f} |")


if __name__ == "__main__":
    main()
