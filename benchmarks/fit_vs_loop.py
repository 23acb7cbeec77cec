"""Model.fit against the README's hand-written loop, on the same work: `python
benchmarks/fit_vs_loop.py`.

Both train the MNIST CNN (benchmarks/workloads.py) from the same initial weights with Adam(1e-3),
one epoch over the first `--samples` training images in batches of 64, each through a fresh
`DataLoader(x, y, batch_size=64, shuffle=True)`. Two pairings:

  silent    fit(verbose=0)  against the loop without a bar
  with bar  fit(verbose=1)  against the README loop verbatim (tqdm bar, set_postfix every step)

(bars are drawn to /dev/null). Runs alternate (loop, fit, loop, fit, ...; the first of each pair
alternates too) so machine noise hits both alike; the table shows the median seconds of each and
the fit/loop ratio. A warm-up run of each first compiles the Numba kernels and the plans.
"""
import argparse
import contextlib
import datetime
import os
import platform
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))


def _threads():
    """--threads N (default 1), applied to BLAS and Numba before NumPy loads. On a machine
    shared with other jobs, several threads per process oversubscribe the cores: a README-CNN
    step was measured at 5.8 s instead of 0.08 s with 2 threads each under a load of ~12."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--threads", type=int, default=1)
    n = pre.parse_known_args()[0].threads
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                "NUMBA_NUM_THREADS"):
        os.environ[var] = str(n)
    return n


THREADS = _threads()

import flops  # noqa: E402
import numpy as np  # noqa: E402
import workloads as W  # noqa: E402
from tqdm import tqdm  # noqa: E402

import pynn  # noqa: E402
from pynn.data import DataLoader  # noqa: E402
from pynn.losses import categorical_cross_entropy  # noqa: E402
from pynn.optimizers import Adam  # noqa: E402

MODELS = {"readme-cnn": W.readme_cnn_layers, "small-cnn": W.small_cnn_layers}


def build(layers_fn):
    pynn.manual_seed(0)
    return W.pynn_model(layers_fn(), (1, 28, 28))


def loop(layers_fn, x, y, bar):
    model = build(layers_fn)
    opt = Adam(1e-3)
    start = time.perf_counter()
    batches = DataLoader(x, y, batch_size=W.BATCH, shuffle=True)
    if bar:                                   # the README's loop, verbatim
        bar = tqdm(batches)
        for xb, yb in bar:
            pred = model(xb)
            loss = categorical_cross_entropy(pred, yb)
            loss.zero_grad()
            loss.backward()
            opt.update(model.parameters)
            bar.set_postfix(loss=loss.item())
    else:
        for xb, yb in batches:
            pred = model(xb)
            loss = categorical_cross_entropy(pred, yb)
            loss.zero_grad()
            loss.backward()
            opt.update(model.parameters)
    return time.perf_counter() - start


def fit(layers_fn, x, y, bar):
    model = build(layers_fn)
    model.compile(optimizer=Adam(1e-3), loss="categorical_crossentropy", metrics=["accuracy"])
    start = time.perf_counter()
    model.fit(x, y, batch_size=W.BATCH, epochs=1, shuffle=True, verbose=1 if bar else 0)
    return time.perf_counter() - start


def machine():
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f
                       if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores"


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=os.environ.get(
        "PYNN_DATA_DIR", str(ROOT.parent / "shared" / "data")))
    p.add_argument("--model", choices=sorted(MODELS), default="readme-cnn")
    p.add_argument("--samples", type=int, default=12800,
                   help="training images in the epoch (12800 = 200 batches; 60000 = all)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1, help="BLAS and Numba threads (default 1)")
    args = p.parse_args()

    import numba

    from pynn.datasets import mnist
    if args.threads:
        numba.set_num_threads(args.threads)
    (x, y), _ = mnist(data_dir=args.data_dir, download=False)
    x, y = np.ascontiguousarray(x[:args.samples]), np.ascontiguousarray(y[:args.samples])
    layers_fn = MODELS[args.model]
    print(f"date: {datetime.date.today()}  machine: {machine()}")
    print(f"python {platform.python_version()}, numpy {np.__version__}, numba {numba.__version__}"
          f", {THREADS} BLAS/Numba thread(s); {args.model}, one epoch of {len(x)} images "
          f"in batches of {W.BATCH} ({-(-len(x) // W.BATCH)} steps); median of {args.repeats} "
          "alternating runs")
    print(f"NumPy's BLAS: {flops.blas_kernels()}")
    print(f"command: python benchmarks/fit_vs_loop.py {' '.join(sys.argv[1:])}".rstrip())
    print()
    print("| pairing | loop s | fit s | fit/loop |")
    print("|---|---:|---:|---:|")
    with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):
        for name, bar in (("silent", False), ("with bar", True)):
            small = slice(0, 8 * W.BATCH)                          # warm-up: compile everything
            loop(layers_fn, x[small], y[small], bar)
            fit(layers_fn, x[small], y[small], bar)
            times = {"loop": [], "fit": []}
            for r in range(args.repeats):
                order = (("loop", loop), ("fit", fit)) if r % 2 == 0 else \
                    (("fit", fit), ("loop", loop))
                for key, run in order:
                    times[key].append(run(layers_fn, x, y, bar))
            med = {k: statistics.median(v) for k, v in times.items()}
            print(f"| {name} | {med['loop']:.3f} | {med['fit']:.3f} | "
                  f"{med['fit'] / med['loop']:.3f} |", file=sys.stdout, flush=True)
            spread = {k: (min(v), max(v)) for k, v in times.items()}
            print(f"  (min-max: loop {spread['loop'][0]:.3f}-{spread['loop'][1]:.3f} s, fit "
                  f"{spread['fit'][0]:.3f}-{spread['fit'][1]:.3f} s)", flush=True)


if __name__ == "__main__":
    main()
