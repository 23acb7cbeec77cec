"""Where a cold start goes: Numba's compile time per kernel for the first training step of W2
(mnist-mlp) and W3 (mnist-cnn), in a fresh process on an empty Numba cache.

    python benchmarks/compile_times.py [--data-dir DIR]

Spawns one child on a new temporary cache directory (cold) and a second on the same directory
(warm); each child times `import pynn` and the first step of both workloads (model building
included, as run.py's cold-start figure) and records every `numba:compile` event with its
duration (numba.core.event). The table lists the kernels by compile seconds.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def child(data_dir):
    from numba.core import event

    compiles = {}

    class Timer(event.Listener):
        def on_start(self, ev):
            self.start = time.perf_counter()

        def on_end(self, ev):
            fn = ev.data["dispatcher"].py_func
            key = f"{fn.__module__}.{fn.__qualname__}"
            compiles[key] = compiles.get(key, 0.0) + time.perf_counter() - self.start

    event.register("numba:compile", Timer())
    start = time.perf_counter()
    import pynn  # noqa: F401
    t_import = time.perf_counter() - start
    sys.path.insert(0, str(HERE))
    import run as R
    data = R.load_data(data_dir)
    _ = data.mnist
    start = time.perf_counter()
    for name in ("mnist-mlp", "mnist-cnn"):
        step, _ = R.make(name, "pynn", data, 1)
        step()
    t_steps = time.perf_counter() - start
    print(f"TOTAL {t_import:.3f} {t_steps:.3f}")
    for key, sec in sorted(compiles.items(), key=lambda kv: -kv[1]):
        print(f"KERNEL {sec:.3f} {key}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", default=os.environ.get(
        "PYNN_DATA_DIR", str(HERE.parents[1] / "shared" / "data")))
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(args.data_dir)
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        for label in ("cold", "warm"):
            out = subprocess.run([sys.executable, __file__, "--child", "--data-dir",
                                  args.data_dir], env=env, capture_output=True, text=True,
                                 check=True).stdout.splitlines()
            t_import, t_steps = (float(v) for v in out[0].split()[1:])
            kernels = [line.split(maxsplit=2)[1:] for line in out[1:]]
            total = sum(float(sec) for sec, _ in kernels)
            print(f"{label} cache: import {t_import:.2f} s, first W2 + W3 steps {t_steps:.2f} s "
                  f"(Numba compiling {total:.2f} s of it, {len(kernels)} functions)")
            if kernels:
                print("\n| kernel | compile s |\n|---|---:|")
                for sec, name in kernels:
                    print(f"| `{name}` | {float(sec):.2f} |")
                print()


if __name__ == "__main__":
    main()
