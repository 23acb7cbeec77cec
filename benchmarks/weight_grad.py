"""A conv layer's weight gradient, cols @ gz.T, by OpenBLAS and by pynn's weight_grad_small.

    python benchmarks/weight_grad.py [--repeats 7]

For the first convolutions of the benchmark CNNs (one input channel, 3x3: 9 rows of cols) and,
for contrast, mnist-cnn's second one, at the shapes one half of a batch of 64 has when a
compiled Model splits the batch across the two cores. Each product is timed on one thread
alone, then on two threads at once (each on its own half, as the split runs them), both with
one OpenBLAS thread per caller. Prints the median microseconds per product; for two threads,
the slower thread's. Conv2d uses the kernel when rows x filters <= SMALL_WEIGHT_GRAD.
"""
import argparse
import os
import statistics
import threading
import time

os.environ["OPENBLAS_NUM_THREADS"] = "1"

import numpy as np  # noqa: E402

from pynn.kernels.conv import SMALL_WEIGHT_GRAD, weight_grad_small  # noqa: E402

# (name, rows of cols, filters, columns of one half batch: 32 images x OH*OW)
SHAPES = [
    ("mnist-cnn conv1 (1->8, 26x26)", 9, 8, 32 * 26 * 26),
    ("resnet-fmnist stem (1->24, 28x28)", 9, 24, 32 * 28 * 28),
    ("readme-cnn conv1 (1->32, 28x28)", 9, 32, 32 * 28 * 28),
    ("mnist-cnn conv2 (8->16, 11x11)", 72, 16, 32 * 11 * 11),
]


def blas(cols, gz, out):
    np.matmul(cols, gz.T, out=out)


def kernel(cols, gz, out):
    weight_grad_small(cols, 0, cols.shape[1], gz, out)


def timed(fn, args, reps, results, k):
    start = time.perf_counter()
    for _ in range(reps):
        fn(*args)
    results[k] = (time.perf_counter() - start) / reps * 1e6


def run(fn, operands, threads, reps):
    results = [0.0] * threads
    workers = [threading.Thread(target=timed, args=(fn, operands[k], reps, results, k))
               for k in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return max(results)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    print(f"cols @ gz.T in float32, one OpenBLAS thread per caller; median of {args.repeats}; "
          f"SMALL_WEIGHT_GRAD = {SMALL_WEIGHT_GRAD}")
    print()
    print("| layer | rows x filters | BLAS, 1 thread | BLAS, 2 at once | kernel, 1 thread | "
          "kernel, 2 at once | kernel's max rel. error |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, R, O, J in SHAPES:
        operands = [(rng.random((R, J), np.float32), rng.random((O, J), np.float32),
                     np.empty((R, O), np.float32)) for _ in range(2)]
        cols, gz, out = operands[0]
        kernel(cols, gz, out)
        want = cols.astype(np.float64) @ gz.T.astype(np.float64)
        err = float(np.abs(out - want).max() / np.abs(want).max())
        reps = max(5, int(2e7 / (R * O * J)))
        row = []
        for fn in (blas, kernel):
            for threads in (1, 2):
                row.append(statistics.median(run(fn, operands, threads, reps)
                                             for _ in range(args.repeats)))
        cells = " | ".join(f"{t:.0f} us" for t in row)
        print(f"| {name} | {R} x {O} = {R * O} | {cells} | {err:.1e} |")


if __name__ == "__main__":
    main()
