"""A Linear layer's product x @ W.T with W as PyTorch stores it (out, in), against the same
product with a contiguous (in, out) copy of W, the layout Model.predict multiplies by
(pynn.ops.nn.constant_weights).

    python benchmarks/linear_layouts.py [--repeats 5] [--rows 64 256 1024]

For each (in, out) shape of the benchmark models' Dense layers and a grid around them, and each
number of rows, both products run alternately (float32, 2 BLAS threads, `np.matmul(x, w,
out=y)` on the same x), each timed as the median of many calls; a repeat gives their ratio,
and the table shows the median ratio over the repeats (below 1: the copy is faster), with the
microseconds the (out, in) product took and what making the copy once costs (`np.copyto` from
the transposed view). Linear uses the copy inside predict for layers of at least
Linear.CONSTANT_MIN_OUT outputs when the call has at least Linear.CONSTANT_MIN_ROWS rows.
"""
import argparse
import os
import statistics

os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")

import numpy as np  # noqa: E402
from recurrent_kernels import median_us  # noqa: E402  (benchmarks/: one call, then the median)

from pynn.ops.nn import Linear  # noqa: E402

# (in, out) of the benchmark models' Dense layers (benchmarks/workloads.py), then a grid
MODEL_SHAPES = [(784, 256), (256, 128), (128, 32), (32, 10), (400, 10), (3136, 128), (64, 192)]
GRID = [(k, n) for k in (32, 128, 400, 784, 3136) for n in (10, 32, 128, 256)]


def compare(k, n, m, repeats, rng):
    """(median ratio copy/view, median us of the view's product, us of making the copy)."""
    w = rng.standard_normal((n, k), dtype=np.float32)
    w_t = np.ascontiguousarray(w.T)
    x = rng.standard_normal((m, k), dtype=np.float32)
    y = np.empty((m, n), np.float32)
    calls = max(20, min(300, int(3e8 / (m * k * n))))
    ratios, views = [], []
    for _ in range(repeats):
        view = median_us(lambda: np.matmul(x, w.T, out=y), calls)
        copy = median_us(lambda: np.matmul(x, w_t, out=y), calls)
        ratios.append(copy / view)
        views.append(view)
    making = median_us(lambda: np.copyto(w_t, w.T), 50)
    return statistics.median(ratios), statistics.median(views), making


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--rows", type=int, nargs="+", default=[64, 256, 1024])
    ap.add_argument("--shapes", choices=["models", "grid", "all"], default="all")
    args = ap.parse_args()
    shapes = {"models": MODEL_SHAPES, "grid": GRID,
              "all": MODEL_SHAPES + [s for s in GRID if s not in MODEL_SHAPES]}[args.shapes]
    rng = np.random.default_rng(0)
    print(f"float32, 2 BLAS threads; time of x @ W_copy / time of x @ W.T, median of "
          f"{args.repeats} repeats; Linear.CONSTANT_MIN_OUT = {Linear.CONSTANT_MIN_OUT}, "
          f"CONSTANT_MIN_ROWS = {Linear.CONSTANT_MIN_ROWS}")
    print()
    print("| in -> out | " + " | ".join(f"{m} rows: copy/view (view us)" for m in args.rows)
          + " | making the copy, us |")
    print("|---|" + "---:|" * (len(args.rows) + 1))
    for k, n in shapes:
        cells, making = [], 0.0
        for m in args.rows:
            ratio, view, making = compare(k, n, m, args.repeats, rng)
            cells.append(f"{ratio:.2f} ({view:.1f})")
        print(f"| {k} -> {n} | " + " | ".join(cells) + f" | {making:.1f} |", flush=True)


if __name__ == "__main__":
    main()
