"""Data-parallel training speed over MPI: the MNIST CNN on 1 and 2 processes, and a model of more.

    python benchmarks/distributed.py            # launches itself under mpiexec -n 1 and -n 2

Each rank runs the examples/mnist_cnn.py network (421,642 float32 parameters) on its own batch
of --batch-size random MNIST-shaped images (the speed does not depend on the pixel values), with
one BLAS/Numba thread per process, so two processes use two cores. Printed per world size:
samples per second over all ranks, the step time, and the share of a step spent inside the
gradient Allreduce (which includes waiting for the slower rank), plus the Allreduce of the
gradient buffer timed alone after a barrier (pure communication).

Then a model of the step time on N machines, T(N) = T_compute + T_allreduce(N), with a ring
all-reduce: every rank sends and receives 2(N-1)/N of the gradient bytes S in 2(N-1) messages,
T_allreduce(N) = 2(N-1)/N * S / bandwidth + 2(N-1) * latency. pynn all-reduces after the whole
backward pass (no overlap of communication with computation), so the two add up.
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def build_cnn():
    from pynn import Input, Model
    from pynn.activations import relu, softmax
    from pynn.layers import Conv2d, Dense, Flatten, MaxPool2d

    x_in = Input((1, 28, 28))
    x = Conv2d(1, 32, 3, padding=1, activation=relu)(x_in)
    x = MaxPool2d(2)(x)
    x = Conv2d(32, 64, 3, padding=1, activation=relu)(x)
    x = MaxPool2d(2)(x)
    x = Flatten()(x)
    x = Dense(64 * 7 * 7, 128, relu)(x)
    x = Dense(128, 10, softmax)(x)
    return Model(x_in, x)


def worker(args):
    """One rank: time --steps training steps after --warmup, report from rank 0 as JSON."""
    sys.path.insert(0, str(REPO))
    import pynn
    import pynn.distributed as dist
    from pynn.data import DataLoader
    from pynn.losses import categorical_cross_entropy
    from pynn.optimizers import Adam

    dist.init()
    pynn.manual_seed(0)
    model = build_cnn()
    dist.broadcast_parameters(model)
    opt = dist.DistributedOptimizer(Adam(1e-3))
    world, b = dist.world_size(), args.batch_size
    rng = np.random.default_rng(0)
    n = world * b * (args.warmup + args.steps)
    x = rng.random((n, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, n)
    loader = iter(DataLoader(x, y, batch_size=b, shuffle=True, seed=0, shard=dist.shard()))

    def step():
        xb, yb = next(loader)
        loss = categorical_cross_entropy(model(xb), yb)
        loss.zero_grad()
        loss.backward()
        opt.update(model.parameters)

    for _ in range(args.warmup):
        step()
    dist.barrier()
    opt.allreduce_seconds = 0.0
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    dist.barrier()
    seconds = time.perf_counter() - start
    in_step = dist.allreduce(opt.allreduce_seconds, "max") / args.steps
    # the gradient buffer's Allreduce alone, all ranks starting together
    buf = np.zeros(sum(p.data.size for p in model.parameters) + len(model.parameters), np.float32)
    alone = []
    for _ in range(20):
        dist.barrier()
        t0 = time.perf_counter()
        dist.allreduce(buf)
        alone.append(time.perf_counter() - t0)
    alone = dist.allreduce(float(np.median(alone)), "max")
    if dist.is_main():
        print("RESULT " + json.dumps({
            "world": world, "batch": b, "steps": args.steps, "seconds": seconds,
            "samples_per_s": world * b * args.steps / seconds,
            "step_s": seconds / args.steps, "allreduce_in_step_s": in_step,
            "allreduce_alone_s": alone, "grad_bytes": int(buf.nbytes)}), flush=True)


def launch(n, args):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.update({v: "1" for v in THREAD_VARS})
    mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    if not os.path.exists(mpiexec):
        mpiexec = "mpiexec"
    cmd = [mpiexec, "-n", str(n), sys.executable, __file__, "--worker",
           "--batch-size", str(args.batch_size), "--steps", str(args.steps),
           "--warmup", str(args.warmup)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def ring_allreduce_s(n, nbytes, gbit_s, latency_s):
    if n == 1:
        return 0.0
    return 2 * (n - 1) / n * nbytes / (gbit_s * 1e9 / 8) + 2 * (n - 1) * latency_s


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--batch-size", type=int, default=32, help="per rank (default: %(default)s)")
    p.add_argument("--steps", type=int, default=60, help="timed steps (default: %(default)s)")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps (default: %(default)s)")
    p.add_argument("--latency-us", type=float, default=50.0,
                   help="per-message latency of the modelled network (default: %(default)s us)")
    args = p.parse_args()
    if args.worker:
        return worker(args)

    print(f"MNIST CNN (examples/mnist_cnn.py), batch {args.batch_size} per process, "
          f"{args.steps} timed steps, 1 thread per process, {os.cpu_count()} cores")
    results = [launch(n, args) for n in (1, 2)]
    print(f"{'processes':>9} {'samples/s':>10} {'step ms':>8} {'allreduce ms (in step)':>23} "
          f"{'share':>6} {'allreduce ms (alone)':>21}")
    for r in results:
        share = r["allreduce_in_step_s"] / r["step_s"]
        print(f"{r['world']:>9} {r['samples_per_s']:>10.0f} {1e3 * r['step_s']:>8.1f} "
              f"{1e3 * r['allreduce_in_step_s']:>23.2f} {share:>6.1%} "
              f"{1e3 * r['allreduce_alone_s']:>21.2f}")
    one, two = results
    print(f"speed-up with 2 processes: {two['samples_per_s'] / one['samples_per_s']:.2f}x")

    compute = one["step_s"]
    nbytes = one["grad_bytes"]
    lat = args.latency_us * 1e-6
    print(f"\nModel for N machines, one process each: T(N) = T_compute + 2(N-1)/N * S / bandwidth "
          f"+ 2(N-1) * latency,\nT_compute = {1e3 * compute:.1f} ms (the 1-process step above), "
          f"S = {nbytes / 1e6:.2f} MB of float32 gradients, latency = {args.latency_us:g} us")
    print(f"{'N':>4} | {'1 Gbit/s: step ms':>17} {'allreduce':>9} {'samples/s':>9} "
          f"{'eff.':>5} | {'10 Gbit/s: step ms':>18} {'allreduce':>9} {'samples/s':>9} "
          f"{'eff.':>5}")
    for n in (1, 2, 4, 8, 16, 64):
        row = f"{n:>4} |"
        for gbit in (1, 10):
            comm = ring_allreduce_s(n, nbytes, gbit, lat)
            t = compute + comm
            width = 17 if gbit == 1 else 18
            row += (f" {1e3 * t:>{width}.1f} {1e3 * comm:>9.1f} "
                    f"{n * args.batch_size / t:>9.0f} {compute / t:>5.0%} |")
        print(row.rstrip(" |"))


if __name__ == "__main__":
    main()
