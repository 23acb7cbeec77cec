"""The moons demo's eager loop in this checkout's pynn against another checkout's, in one process.

    python benchmarks/eager_ab.py OTHER_PYNN_DIR [--runs 100]

For a change to the eager tape (pynn/autograd.py, pynn/tensor.py, the ops), whose effect on a
step of half a millisecond is smaller than this host's noise between two processes: the other
package (e.g. `git worktree add /tmp/base HEAD~1`, then /tmp/base/pynn) is copied under the name
`pynn_other` and imported beside `pynn`, and the moons workload's loop (workloads.moons_pynn:
MLP 2-16-16-1 through a Model, max-margin loss + L2 in eager ops, 100 SGD steps) runs in each,
alternating, --runs times. Prints the medians and the median of the per-pair ratios (this /
other); both must give the same loss.
"""
import argparse
import importlib
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]     # workloads.py, and this checkout's pynn


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("other", help="the other checkout's pynn package directory")
    ap.add_argument("--runs", type=int, default=100)
    args = ap.parse_args()
    other = Path(args.other).resolve()
    if not (other / "__init__.py").exists():
        sys.exit(f"eager_ab: {other} is not a package directory (no __init__.py)")
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(other, Path(tmp) / "pynn_other",
                        ignore=shutil.ignore_patterns("__pycache__"))
        sys.path.insert(0, tmp)
        import workloads
        runs = {name: workloads.moons_pynn(importlib.import_module(name))[0]
                for name in ("pynn", "pynn_other")}
        losses = {name: run() for name, run in runs.items()}         # also the warm-up
        times = {name: [] for name in runs}
        for _ in range(args.runs):
            for name, run in runs.items():
                t = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - t)
    this, that = np.array(times["pynn"]), np.array(times["pynn_other"])
    print(f"moons eager loop, 100 steps, {args.runs} alternating runs each; "
          f"loss {losses['pynn']:.6f} (this) vs {losses['pynn_other']:.6f} (other)")
    print(f"this: {np.median(this) * 1e4:.1f} us/step, other ({other}): "
          f"{np.median(that) * 1e4:.1f} us/step")
    print(f"this / other: median of the pairs {np.median(this / that):.3f}")


if __name__ == "__main__":
    main()
