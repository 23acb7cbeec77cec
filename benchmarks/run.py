"""pynn against PyTorch on the same work, in one run: `python benchmarks/run.py`.

For every workload both frameworks start from the same weights, see the same batches in the same
order and use the same number of threads. Runs alternate (pynn, torch, pynn, torch, ...) so that
machine noise hits both alike; the table shows the median seconds of each, the pynn/torch ratio,
the final loss of each, and the peak extra memory of one run (each framework measured in a fresh
subprocess). Numba's compile time is measured separately, on a cold and on a warm cache.
"""
import argparse
import datetime
import gc
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

THREADS = 2
WORKLOADS = ["moons", "mnist-mlp", "mnist-cnn", "readme-cnn", "inference-mlp", "inference-cnn"]


def set_threads(n):
    import numba
    import torch
    torch.set_num_threads(n)
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))


def load_data(data_dir):
    from pynn.datasets import mnist
    (x, y), (tx, ty) = mnist(data_dir=data_dir, download=False)
    return x, y, tx, ty


def make(name, framework, data, steps, batch=None):
    """(run, model) for a workload; `batch` overrides the workload's batch size (warm-ups)."""
    import workloads as W
    x, y, tx, _ = data
    size = {} if batch is None else {"batch": batch}
    if name == "moons":
        return W.moons_training(framework)
    if name == "mnist-mlp":
        return W.classifier_training(framework, W.mlp_layers, x.reshape(len(x), -1), y, (784,),
                                     steps=steps, **size)
    if name == "mnist-cnn":
        return W.classifier_training(framework, W.small_cnn_layers, x, y, (1, 28, 28), steps=steps,
                                     **size)
    if name == "readme-cnn":
        return W.classifier_training(framework, W.readme_cnn_layers, x, y, (1, 28, 28), steps=steps,
                                     **size)
    if name == "inference-mlp":
        return W.inference(framework, W.mlp_layers, tx.reshape(len(tx), -1)[:batch or None], (784,),
                           **size)
    if name == "inference-cnn":
        return W.inference(framework, W.small_cnn_layers, tx[:batch or None], (1, 28, 28), **size)
    raise ValueError(name)


def time_workload(name, data, repeats, steps):
    times = {"pynn": [], "torch": []}
    losses = {}
    for fw in ("pynn", "torch"):        # warm up: JIT compile, BLAS threads, caches
        run, _ = make(name, fw, data, steps=min(steps, 20))
        run()
    for _ in range(repeats):
        for fw in ("pynn", "torch"):
            run, _ = make(name, fw, data, steps)
            start = time.perf_counter()
            losses[fw] = run()
            times[fw].append(time.perf_counter() - start)
    return {fw: statistics.median(t) for fw, t in times.items()}, losses


# -- memory, in a fresh subprocess per framework --------------------------------------------------
def _rss_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def memory_child(name, framework, data_dir, steps):
    """Peak resident memory added by one run, after imports, data, a warm-up step and the model
    are in place."""
    set_threads(THREADS)
    data = load_data(data_dir)
    # Two steps at batch 2 first (buffers of a few KiB), so that one-time library set-up (Numba
    # loading its compiled kernels, PyTorch's lazy initialisation) is not counted as the run's
    # memory. A full-size warm-up would not do: its freed buffers stay in the heap and the
    # measured run would reuse them unseen.
    make(name, framework, data, 2, batch=2)[0]()
    gc.collect()
    run, _ = make(name, framework, data, steps)
    with open("/proc/self/clear_refs", "w") as f:   # reset the peak (VmHWM) to the current RSS
        f.write("5")
    before = _rss_kib("VmRSS")
    run()
    print(f"{(_rss_kib('VmHWM') - before) / 1024:.1f}")


def peak_memory(name, data_dir, steps):
    out = {}
    for fw in ("pynn", "torch"):
        res = subprocess.run([sys.executable, __file__, "--memory-child", name, fw,
                              "--data-dir", data_dir, "--steps", str(steps)],
                             capture_output=True, text=True, check=True)
        out[fw] = float(res.stdout.strip().splitlines()[-1])
    return out


# -- memory growth across steps and the Numba compile time -----------------------------------------
def growth_child(data_dir):
    """RSS after 100 and after 900 steps of W2 in pynn (the same 100 batches nine times over):
    flat if graphs and buffers are freed or reused."""
    set_threads(THREADS)
    run, _ = make("mnist-mlp", "pynn", load_data(data_dir), 100)
    run()
    after_100 = _rss_kib("VmRSS") / 1024
    for _ in range(8):
        run()
    print(f"{after_100:.1f} {_rss_kib('VmRSS') / 1024:.1f}")


def compile_child(data_dir):
    """Seconds from `import pynn` to the end of the first training step of W2 and W3."""
    start = time.perf_counter()
    data = load_data(data_dir)
    t_data = time.perf_counter() - start
    for name in ("mnist-mlp", "mnist-cnn"):
        run, _ = make(name, "pynn", data, 1)
        run()
    print(f"{time.perf_counter() - start - t_data:.2f}")


def compile_times(data_dir):
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        out = []
        for _ in ("cold", "warm"):
            res = subprocess.run([sys.executable, __file__, "--compile-child", "--data-dir",
                                  data_dir], capture_output=True, text=True, check=True, env=env)
            out.append(float(res.stdout.strip().splitlines()[-1]))
    return out


def machine():
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores"


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    shared_data = str(ROOT.parent / "shared" / "data")
    p.add_argument("--data-dir", default=os.environ.get("PYNN_DATA_DIR", shared_data))
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--steps", type=int, default=900,
                   help="batches per training run (900 = the spec)")
    p.add_argument("--only", nargs="*", choices=WORKLOADS, default=WORKLOADS)
    p.add_argument("--no-memory", action="store_true")
    p.add_argument("--memory-child", nargs=2, help=argparse.SUPPRESS)
    p.add_argument("--growth-child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--compile-child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.memory_child:
        return memory_child(*args.memory_child, args.data_dir, args.steps)
    if args.growth_child:
        return growth_child(args.data_dir)
    if args.compile_child:
        return compile_child(args.data_dir)

    import numba
    import numpy as np
    import torch
    set_threads(THREADS)
    print(f"date: {datetime.date.today()}  machine: {machine()}")
    print(f"python {platform.python_version()}, numpy {np.__version__}, numba {numba.__version__}, "
          f"torch {torch.__version__}; {THREADS} threads each; "
          f"median of {args.repeats} alternating "
          f"runs; {args.steps} batches per training run")
    print(f"command: python benchmarks/run.py {' '.join(sys.argv[1:])}".rstrip())
    print()
    data = load_data(args.data_dir)
    print("| workload | pynn s | torch s | pynn/torch | pynn final loss | torch final loss "
          "| pynn peak MiB | torch peak MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name in args.only:
        med, losses = time_workload(name, data, args.repeats, args.steps)
        mem = {"pynn": float("nan"), "torch": float("nan")} if args.no_memory else \
            peak_memory(name, args.data_dir, args.steps)
        print(f"| {name} | {med['pynn']:.3f} | {med['torch']:.3f} "
              f"| {med['pynn'] / med['torch']:.2f} "
              f"| {losses['pynn']:.4f} | {losses['torch']:.4f} | {mem['pynn']:.1f} "
              f"| {mem['torch']:.1f} |", flush=True)
    print()
    res = subprocess.run([sys.executable, __file__, "--growth-child", "--data-dir", args.data_dir],
                         capture_output=True, text=True, check=True)
    a, b = res.stdout.split()
    print(f"pynn RSS during W2 training: {a} MiB after 100 steps, {b} MiB after 900 steps")
    cold, warm = compile_times(args.data_dir)
    print(f"numba compile (import pynn + first W2 and W3 step): cold cache {cold:.2f} s, "
          f"warm cache {warm:.2f} s")


if __name__ == "__main__":
    main()
