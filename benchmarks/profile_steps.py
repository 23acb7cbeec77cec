"""Where a training step's time goes: BLAS, Numba kernels, or Python/NumPy.

    python benchmarks/profile_steps.py [--steps 300] [--workload mnist-mlp mnist-cnn]

Runs a pynn workload of benchmarks/run.py under cProfile. Matrix products are routed through a
named wrapper so that BLAS time shows up on its own line; every function in pynn/kernels is
counted as Numba; everything else (the plan, the tape, the optimizer's Python side, NumPy
elementwise work) as Python/NumPy.
"""
import argparse
import cProfile
import os
import pstats
import sys
import types
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

_matmul = np.matmul


def blas_matmul(*args, **kwargs):
    return _matmul(*args, **kwargs)


def route_matmul_through_wrapper():
    import pynn.ops.linalg
    import pynn.ops.nn
    for module in (pynn.ops.nn, pynn.ops.linalg):
        proxy = types.ModuleType("numpy_proxy")
        proxy.__dict__.update(np.__dict__)
        proxy.matmul = blas_matmul
        module.np = proxy


def shares(stats):
    total = blas = numba = 0.0
    for (filename, _, name), (_, _, tottime, _, _) in stats.stats.items():
        total += tottime
        if name == "blas_matmul":
            blas += tottime
        elif f"pynn{os.sep}kernels" in filename:
            numba += tottime
    return total, blas, numba


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--workload", nargs="*", default=["mnist-mlp", "mnist-cnn"])
    shared_data = str(HERE.parents[1] / "shared" / "data")
    p.add_argument("--data-dir", default=os.environ.get("PYNN_DATA_DIR", shared_data))
    p.add_argument("--top", type=int, default=0, help="also print the N most expensive functions")
    args = p.parse_args()
    import run as R
    R.set_threads(R.THREADS)
    route_matmul_through_wrapper()
    data = R.load_data(args.data_dir)
    print("| workload | ms/step | BLAS | Numba kernels | Python + NumPy |")
    print("|---|---:|---:|---:|---:|")
    for name in args.workload:
        warm, _ = R.make(name, "pynn", data, 20)
        warm()
        run, _ = R.make(name, "pynn", data, args.steps)
        prof = cProfile.Profile()
        prof.runcall(run)
        stats = pstats.Stats(prof)
        total, blas, numba = shares(stats)
        rest = total - blas - numba
        print(f"| {name} | {1e3 * total / args.steps:.2f} | {100 * blas / total:.0f}% "
              f"| {100 * numba / total:.0f}% | {100 * rest / total:.0f}% |")
        if args.top:
            stats.sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()
