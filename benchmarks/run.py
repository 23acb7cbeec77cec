"""pynn against PyTorch on the same work, in one run: `python benchmarks/run.py`.

For every workload both frameworks start from the same weights, see the same batches in the same
order and use the same number of threads. Runs alternate (pynn, torch, torch, pynn, ...) so that
machine noise hits both alike, each after `--pause` seconds of idle (the other framework's BLAS
or OpenMP workers keep spinning for a while after its last product); the table shows the median
seconds of each, the pynn/torch ratio, the final loss of each, and the peak extra memory of one
run (each framework measured in a fresh subprocess).

Warm-up: before its timed runs each framework trains a separate model instance for 20 steps at
the workload's exact shapes (JIT compilation, BLAS threads, allocator caches, torch's lazy
set-up); every timed training run then starts from a fresh model. An inference workload builds
each model once, runs one untimed pass over the test images, then times `--passes` passes.
Cold start is its own figure: in fresh processes, `import pynn` plus the first training step of
W2 and W3 on a cold and on a warm Numba cache, and the same for torch.

A second table gives each workload's FLOPs (matrix products only, a training step counted as 3x
the forward work minus the first layer's input gradient: see benchmarks/flops.py) as GFLOP/s
and as a fraction of this machine's SGEMM peak (NumPy float32 matmul on 2048x2048 matrices,
best of 5, with the same number of BLAS threads, measured in a fresh process by this script).
`--profile` appends the BLAS / Numba / Python shares of each pynn workload
(benchmarks/profile_steps.py, in a subprocess).

Workloads: moons, mnist-mlp, mnist-cnn and readme-cnn train for --steps batches (default 900),
resnet-fmnist, lstm-seqmnist and transformer-words (the models of examples/fashion_resnet.py at
width 24, examples/seq_mnist_lstm.py with 128 units and examples/words_transformer.py with
embed 64, 4 heads, 2 blocks) for --steps (default 300), all at batch 64 (moons: full batch of
100, always 100 steps); inference-* run forward on the 10,000 test images at batch 1024.
"""
import argparse
import datetime
import functools
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
sys.path[:0] = [str(HERE), str(HERE.parent)]     # this checkout's pynn, not an installed one

THREADS = 2
if __name__ == "__main__":      # NumPy's BLAS reads its thread count once, when it loads
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = str(THREADS)
WORKLOADS = ["moons", "mnist-mlp", "mnist-cnn", "readme-cnn", "resnet-fmnist", "lstm-seqmnist",
             "transformer-words", "inference-mlp", "inference-cnn"]
#: batches per training run when --steps is not given
DEFAULT_STEPS = {"mnist-mlp": 900, "mnist-cnn": 900, "readme-cnn": 900, "resnet-fmnist": 300,
                 "lstm-seqmnist": 300, "transformer-words": 300}
INFERENCE = ("inference-mlp", "inference-cnn")
MOONS_STEPS, MOONS_BATCH, INFERENCE_BATCH = 100, 100, 1024


def set_threads(n):
    import numba
    import torch
    torch.set_num_threads(n)
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))


class Data:
    """The data sets, each loaded on first use: `mnist` (x, y, test x, test y), `fashion`
    (x, y) and `words` (x, y, mask, block) of examples/words_transformer.py."""

    def __init__(self, data_dir):
        self.data_dir = data_dir

    @functools.cached_property
    def mnist(self):
        from pynn.datasets import mnist
        (x, y), (tx, ty) = mnist(data_dir=self.data_dir, download=False)
        return x, y, tx, ty

    @functools.cached_property
    def fashion(self):
        from pynn.datasets import fashion_mnist
        (x, y), _ = fashion_mnist(data_dir=self.data_dir, download=False)
        return x, y

    @functools.cached_property
    def words(self):
        import workloads as W
        return W.load_words(self.data_dir)


def load_data(data_dir):
    return Data(data_dir)


def resolve_steps(name, steps=None):
    """Batches one run of `name` processes: the moons demo's fixed 100, an inference pass's
    batches of 1024 over the test set, else `steps` or the workload's default."""
    if name == "moons":
        return MOONS_STEPS
    if name in INFERENCE:
        return -(-10000 // INFERENCE_BATCH)
    return steps or DEFAULT_STEPS[name]


def make(name, framework, data, steps, batch=None):
    """(run, model) for a workload; `batch` overrides the workload's batch size (warm-ups)."""
    import workloads as W
    size = {} if batch is None else {"batch": batch}
    if name == "moons":
        return W.moons_training(framework)
    if name in ("resnet-fmnist",):
        x, y = data.fashion
        return W.resnet_training(framework, x, y, steps=steps, **size)
    if name == "transformer-words":
        return W.words_training(framework, data.words, steps=steps, **size)
    x, y, tx, _ = data.mnist
    if name == "mnist-mlp":
        return W.classifier_training(framework, W.mlp_layers, x.reshape(len(x), -1), y, (784,),
                                     steps=steps, **size)
    if name == "mnist-cnn":
        return W.classifier_training(framework, W.small_cnn_layers, x, y, (1, 28, 28), steps=steps,
                                     **size)
    if name == "readme-cnn":
        return W.classifier_training(framework, W.readme_cnn_layers, x, y, (1, 28, 28), steps=steps,
                                     **size)
    if name == "lstm-seqmnist":
        return W.lstm_training(framework, x.reshape(len(x), 28, 28), y, steps=steps, **size)
    if name == "inference-mlp":
        return W.inference(framework, W.mlp_layers, tx.reshape(len(tx), -1)[:batch or None], (784,),
                           **size)
    if name == "inference-cnn":
        return W.inference(framework, W.small_cnn_layers, tx[:batch or None], (1, 28, 28), **size)
    raise ValueError(name)


def run_flops(name, data, steps):
    """FLOPs of one run of `name` (benchmarks/flops.py's convention)."""
    import flops
    import workloads as W
    _, model = make(name, "pynn", data, 1)
    if name in INFERENCE:
        return flops.forward_flops(model) * len(data.mnist[2])
    batch = MOONS_BATCH if name == "moons" else W.BATCH
    return flops.training_flops(model) * batch * steps


def ratio_range(times):
    """(lowest, highest) pynn/torch ratio of the timed runs taken side by side (run i of pynn
    against run i of torch, which ran right before or after it): the spread of the median's
    ratio from machine noise."""
    ratios = [a / b for a, b in zip(times["pynn"], times["torch"], strict=True)]
    return min(ratios), max(ratios)


def time_workload(name, data, repeats, steps, passes, pause=0.5):
    """Median seconds, last loss and every run's seconds of each framework. Training: a 20-step
    warm-up on a separate model instance, then `repeats` runs, each on a fresh model,
    alternating (pynn first in even repeats, torch first in odd ones). Inference: each model
    built once and warmed up with one untimed pass, then `passes` timed passes, alternating the
    same way. Every timed run starts `pause` seconds after the previous one ended: NumPy's
    OpenBLAS workers and torch's OpenMP workers busy-wait for a while after their last product,
    and on 2 cores the framework timed next would share them with those spinning threads (it
    doubled torch's inference-mlp time)."""
    times = {"pynn": [], "torch": []}
    losses = {}
    order = (("pynn", "torch"), ("torch", "pynn"))
    if name in INFERENCE:
        runs = {fw: make(name, fw, data, steps)[0] for fw in ("pynn", "torch")}
        for run in runs.values():
            run()
        for r in range(passes):
            for fw in order[r % 2]:
                time.sleep(pause)
                start = time.perf_counter()
                losses[fw] = runs[fw]()
                times[fw].append(time.perf_counter() - start)
        return {fw: statistics.median(t) for fw, t in times.items()}, losses, times
    for fw in ("pynn", "torch"):        # warm up: JIT compile, BLAS threads, caches
        run, _ = make(name, fw, data, steps=min(steps, 20))
        run()
    for r in range(repeats):
        for fw in order[r % 2]:
            run, _ = make(name, fw, data, steps)
            time.sleep(pause)
            start = time.perf_counter()
            losses[fw] = run()
            times[fw].append(time.perf_counter() - start)
    return {fw: statistics.median(t) for fw, t in times.items()}, losses, times


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


def compile_child(data_dir, framework):
    """Seconds of `import <framework>` and of the first training step of W2 and W3 (model
    building included), in this fresh process; data loading is not counted."""
    start = time.perf_counter()
    if framework == "pynn":
        import workloads  # noqa: F401

        import pynn  # noqa: F401
    t_import = time.perf_counter() - start
    data = load_data(data_dir)
    _ = data.mnist                      # untimed (for torch this also imports pynn)
    start = time.perf_counter()
    if framework == "torch":
        import torch  # noqa: F401
        t_import = time.perf_counter() - start
    for name in ("mnist-mlp", "mnist-cnn"):
        run, _ = make(name, framework, data, 1)
        run()
    total = time.perf_counter() - start
    print(f"{t_import:.2f} {total - (t_import if framework == 'torch' else 0):.2f}")


def compile_times(data_dir):
    """{(framework, cache): (import s, first steps s)}: pynn with a cold then a warm Numba
    cache (a fresh cache directory), torch once its files are in the page cache (a first
    untimed process)."""
    out = {}
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        for key in (("pynn", "cold"), ("pynn", "warm"), ("torch", "first"), ("torch", "warm")):
            res = subprocess.run([sys.executable, __file__, "--compile-child", key[0],
                                  "--data-dir", data_dir], capture_output=True, text=True,
                                 check=True, env=env)
            out[key] = tuple(float(v) for v in res.stdout.strip().splitlines()[-1].split())
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
    p.add_argument("--repeats", type=int, default=5, help="timed training runs per framework")
    p.add_argument("--passes", type=int, default=7,
                   help="timed inference passes per framework (default: %(default)s)")
    p.add_argument("--pause", type=float, default=0.5,
                   help="seconds of idle before each timed run, so that the other framework's "
                        "spinning BLAS/OpenMP workers have gone to sleep (default: %(default)s)")
    p.add_argument("--steps", type=int, default=None,
                   help="batches per training run (default: 900 for the MNIST workloads, the "
                        "spec; 300 for resnet-fmnist, lstm-seqmnist, transformer-words)")
    p.add_argument("--only", nargs="*", choices=WORKLOADS, default=WORKLOADS)
    p.add_argument("--no-memory", action="store_true")
    p.add_argument("--no-cold-start", action="store_true",
                   help="skip the memory-growth and cold-start subprocesses")
    p.add_argument("--peak-size", type=int, default=2048,
                   help="matrix size of the SGEMM peak measurement (default: %(default)s)")
    p.add_argument("--profile", action="store_true",
                   help="append benchmarks/profile_steps.py's table for the same workloads")
    p.add_argument("--memory-child", nargs=2, help=argparse.SUPPRESS)
    p.add_argument("--growth-child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--compile-child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.memory_child:
        return memory_child(*args.memory_child, args.data_dir, args.steps)
    if args.growth_child:
        return growth_child(args.data_dir)
    if args.compile_child:
        return compile_child(args.data_dir, args.compile_child)

    import flops
    import numba
    import numpy as np
    import torch
    set_threads(THREADS)
    peak = flops.sgemm_peak_subprocess(THREADS, n=args.peak_size)
    steps = {name: resolve_steps(name, args.steps) for name in args.only}
    training_steps = sorted({steps[n] for n in args.only if n not in INFERENCE + ("moons",)})
    print(f"date: {datetime.date.today()}  machine: {machine()}")
    print(f"python {platform.python_version()}, numpy {np.__version__}, numba {numba.__version__}, "
          f"torch {torch.__version__}; {THREADS} threads each (BLAS, Numba, torch); training: "
          f"median of {args.repeats} alternating runs of "
          f"{'/'.join(map(str, training_steps)) or '-'} batches after a 20-step warm-up; "
          f"inference: median of {args.passes} alternating passes after one warm-up pass; "
          f"{args.pause:g} s idle before each timed run; side-by-side runs: the lowest and "
          f"highest ratio of a pynn run to the torch run next to it")
    print(f"NumPy's BLAS: {flops.blas_kernels()}")
    print(f"command: python benchmarks/run.py {' '.join(sys.argv[1:])}".rstrip())
    print()
    data = load_data(args.data_dir)
    print("| workload | steps | pynn s | torch s | pynn/torch | side-by-side runs "
          "| pynn final loss | torch final loss | pynn peak MiB | torch peak MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    rates = []
    for name in args.only:
        med, losses, times = time_workload(name, data, args.repeats, steps[name], args.passes,
                                           args.pause)
        mem = {"pynn": float("nan"), "torch": float("nan")} if args.no_memory else \
            peak_memory(name, args.data_dir, steps[name])
        lo, hi = ratio_range(times)
        print(f"| {name} | {steps[name]} | {med['pynn']:.3f} | {med['torch']:.3f} "
              f"| {med['pynn'] / med['torch']:.2f} | {lo:.2f}-{hi:.2f} "
              f"| {losses['pynn']:.4f} | {losses['torch']:.4f} | {mem['pynn']:.1f} "
              f"| {mem['torch']:.1f} |", flush=True)
        rates.append((name, run_flops(name, data, steps[name]), med))
    print()
    print(f"SGEMM peak: NumPy float32 {args.peak_size}x{args.peak_size} matmul, {THREADS} BLAS "
          f"threads, best of 5, fresh process: {peak:.1f} GFLOP/s. FLOPs count matrix products "
          "only; a training step is 3x the forward work minus the first layer's input gradient "
          "(benchmarks/flops.py).")
    print()
    print("| workload | GFLOP per run | pynn GFLOP/s | torch GFLOP/s | pynn % of peak "
          "| torch % of peak |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, work, med in rates:
        g = {fw: work / med[fw] / 1e9 for fw in med}
        print(f"| {name} | {work / 1e9:.2f} | {g['pynn']:.1f} | {g['torch']:.1f} "
              f"| {100 * g['pynn'] / peak:.0f}% | {100 * g['torch'] / peak:.0f}% |")
    if not args.no_cold_start:
        print()
        res = subprocess.run([sys.executable, __file__, "--growth-child", "--data-dir",
                              args.data_dir], capture_output=True, text=True, check=True)
        a, b = res.stdout.split()
        print(f"pynn RSS during W2 training: {a} MiB after 100 steps, {b} MiB after 900 steps")
        c = compile_times(args.data_dir)
        print(f"numba compile (first W2 and W3 step, import excluded): cold cache "
              f"{c['pynn', 'cold'][1]:.2f} s, warm cache {c['pynn', 'warm'][1]:.2f} s")
        print(f"cold start, fresh process (import + building and first step of W2 and W3): "
              f"pynn {sum(c['pynn', 'cold']):.2f} s on a cold Numba cache (import "
              f"{c['pynn', 'cold'][0]:.2f} s), {sum(c['pynn', 'warm']):.2f} s on a warm one "
              f"(import {c['pynn', 'warm'][0]:.2f} s); torch {sum(c['torch', 'warm']):.2f} s "
              f"(import {c['torch', 'warm'][0]:.2f} s; {sum(c['torch', 'first']):.2f} s in the "
              f"first torch process of this run)")
        if os.environ.get("PYTHONDONTWRITEBYTECODE"):
            print("(PYTHONDONTWRITEBYTECODE is set: each fresh process compiled pynn's Python "
                  "sources again, about 0.1 s of its import; benchmarks/compile_times.py "
                  "--bytecode times it without)")
    if args.profile:
        print()
        cmd = [sys.executable, str(HERE / "profile_steps.py"), "--data-dir", args.data_dir,
               "--steps", str(args.steps or 300), "--workload", *args.only]
        print(f"profile: python benchmarks/profile_steps.py --steps {args.steps or 300} "
              f"--workload {' '.join(args.only)}")
        print()
        sys.stdout.flush()
        subprocess.run(cmd, check=True)


if __name__ == "__main__":
    main()
