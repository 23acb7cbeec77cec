"""Where a training step's time goes: BLAS, Numba kernels, or Python/NumPy.

    python benchmarks/profile_steps.py [--steps 300] [--workload mnist-mlp mnist-cnn ...]

Runs pynn workloads of benchmarks/run.py (any of its names; default all) under cProfile, after
an untimed 20-step warm-up at the same shapes. Every np.matmul and np.dot called from pynn's
Python modules is routed through a named wrapper so that BLAS time shows up on its own line;
every function in pynn/kernels is counted as Numba; everything else (the plan, the tape, the
optimizer's Python side, NumPy elementwise work) as Python/NumPy. A step is one training
batch; for the inference workloads one batch of 1024 of a pass over the 10,000 test images.
`python benchmarks/run.py --profile` prints this table after its own.
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
sys.path[:0] = [str(HERE), str(HERE.parent)]     # this checkout's pynn, not an installed one

_matmul, _dot = np.matmul, np.dot


def blas_matmul(*args, **kwargs):
    return _matmul(*args, **kwargs)


def blas_dot(*args, **kwargs):
    return _dot(*args, **kwargs)


def route_matmul_through_wrapper():
    """Give every loaded pynn module outside pynn.kernels (Numba resolves its globals at
    compile time and must see NumPy itself) a NumPy whose matmul and dot are the wrappers."""
    proxy = types.ModuleType("numpy_proxy")
    proxy.__dict__.update(np.__dict__)
    proxy.matmul, proxy.dot = blas_matmul, blas_dot
    for name, module in list(sys.modules.items()):
        if (name == "pynn" or name.startswith("pynn.")) and not name.startswith("pynn.kernels") \
                and getattr(module, "np", None) is np:
            module.np = proxy


def shares(stats):
    total = blas = numba = 0.0
    for (filename, _, name), (_, _, tottime, _, _) in stats.stats.items():
        total += tottime
        if name in ("blas_matmul", "blas_dot"):
            blas += tottime
        elif f"pynn{os.sep}kernels" in filename:
            numba += tottime
    return total, blas, numba


def main():
    import run as R
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=300,
                   help="training batches per profiled run (default: %(default)s)")
    p.add_argument("--workload", nargs="*", choices=R.WORKLOADS, default=R.WORKLOADS)
    shared_data = str(HERE.parents[1] / "shared" / "data")
    p.add_argument("--data-dir", default=os.environ.get("PYNN_DATA_DIR", shared_data))
    p.add_argument("--top", type=int, default=0, help="also print the N most expensive functions")
    p.add_argument("--callers", nargs="*", default=[],
                   help="also print who calls the functions matching these patterns")
    args = p.parse_args()
    R.set_threads(R.THREADS)
    data = R.load_data(args.data_dir)
    print("| workload | ms/step | BLAS | Numba kernels | Python + NumPy |")
    print("|---|---:|---:|---:|---:|")
    for name in args.workload:
        steps = R.resolve_steps(name, args.steps)
        warm, _ = R.make(name, "pynn", data, min(steps, 20))
        warm()
        route_matmul_through_wrapper()     # every module the workload uses is loaded by now
        # inference: the warmed-up model again (its predict plan is built); training: a fresh one
        run = warm if name in R.INFERENCE else R.make(name, "pynn", data, steps)[0]
        prof = cProfile.Profile()
        prof.runcall(run)
        stats = pstats.Stats(prof)
        total, blas, numba = shares(stats)
        rest = total - blas - numba
        print(f"| {name} | {1e3 * total / steps:.2f} | {100 * blas / total:.0f}% "
              f"| {100 * numba / total:.0f}% | {100 * rest / total:.0f}% |", flush=True)
        if args.top:
            stats.sort_stats("tottime").print_stats(args.top)
            for pattern in args.callers:
                stats.print_callers(pattern)


if __name__ == "__main__":
    main()
