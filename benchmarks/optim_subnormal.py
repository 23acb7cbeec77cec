"""Adam's step when its moments have decayed into the subnormal range, pynn against torch.

    python benchmarks/optim_subnormal.py [--steps 1000] [--repeats 5]

One float32 parameter of the MNIST MLP's first layer (784 x 256). Its first gradient is dense;
after that only the rows of 'live' pixels (the middle 60% of the rows) get a gradient, and the
rest get exact zeros, as a weight on an MNIST border pixel does. A zero gradient makes Adam's
first moment shrink by beta1 = 0.9 each step, so after about 750 steps it is below float32's
smallest normal number (1.2e-38), where x86 computes through a slow microcode assist. pynn
flushes such moments to zero (see `pynn/kernels/optim.py`); torch keeps them.

The script runs --steps untimed steps in each framework, counts the subnormal entries left in
the state, then times the median step of --repeats runs of 100 steps (frameworks alternating),
and the same on fresh states before any decay (the first 100 steps) for comparison. The last
column is the largest difference between the two frameworks' weights at the end: float32
rounding that the two implementations' different operation order accumulates over the steps.
"""
import argparse
import os
import statistics
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from pynn import Tensor  # noqa: E402
from pynn.optim import Adam  # noqa: E402

SHAPE = (784, 256)
TINY = np.finfo(np.float32).tiny


def gradients(seed=0):
    """The dense first gradient, and the masked gradients of every later step (cycled)."""
    rng = np.random.default_rng(seed)
    first = (rng.standard_normal(SHAPE) * 1e-2).astype(np.float32)
    live = np.zeros(SHAPE[0], bool)
    live[int(0.2 * SHAPE[0]):int(0.8 * SHAPE[0])] = True
    later = []
    for _ in range(8):
        g = (rng.standard_normal(SHAPE) * 1e-2).astype(np.float32)
        g[~live] = 0.0
        later.append(g)
    return first, later


class PynnAdam:
    def __init__(self, w):
        self.p = Tensor(w.copy(), requires_grad=True)
        self.opt = Adam(1e-3)

    def step(self, g):
        self.p.grad = Tensor(g)
        self.opt.update([self.p])

    def subnormals(self):
        s = self.opt._states_for([self.p])[0]
        return sum(int(((0 < np.abs(b)) & (np.abs(b) < TINY)).sum()) for b in (s.b0, s.b1))


class TorchAdam:
    def __init__(self, w):
        self.p = torch.tensor(w, requires_grad=True)
        self.opt = torch.optim.Adam([self.p], lr=1e-3)

    def step(self, g):
        self.p.grad = torch.from_numpy(g)
        self.opt.step()

    def subnormals(self):
        state = self.opt.state[self.p]
        return sum(int(((0 < b.abs()) & (b.abs() < TINY)).sum())
                   for b in (state["exp_avg"], state["exp_avg_sq"]))


def timed(runner, grads, steps=100):
    start = time.perf_counter()
    for k in range(steps):
        runner.step(grads[k % len(grads)])
    return (time.perf_counter() - start) / steps * 1e6


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=1000, help="untimed steps before timing")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ["OPENBLAS_NUM_THREADS"]))
    first, later = gradients()
    w = (np.random.default_rng(1).standard_normal(SHAPE) * 0.05).astype(np.float32)

    rows = []
    for phase in ("fresh", "decayed"):
        runners = {"pynn": PynnAdam(w), "torch": TorchAdam(w)}
        for r in runners.values():
            r.step(first)
            if phase == "decayed":
                for k in range(args.steps):
                    r.step(later[k % len(later)])
        times = {name: [] for name in runners}
        for _ in range(args.repeats):
            for name, r in runners.items():
                times[name].append(timed(r, later))
        counts = {name: r.subnormals() for name, r in runners.items()}
        if phase == "fresh":
            counts = {name: "-" for name in runners}
        diff = np.abs(runners["pynn"].p.data - runners["torch"].p.detach().numpy()).max()
        med = {k: statistics.median(v) for k, v in times.items()}
        rows.append((phase, med, counts, diff))

    print(f"Adam on a {SHAPE[0]}x{SHAPE[1]} float32 parameter, 40% of its rows with zero "
          f"gradients after the first step; median of {args.repeats} x 100 steps, torch "
          f"{torch.__version__}")
    print()
    print("| state | pynn us/step | torch us/step | pynn / torch | subnormal entries pynn / torch "
          "| max weight difference |")
    print("|---|---:|---:|---:|---|---:|")
    for phase, med, counts, diff in rows:
        label = ("first 100 steps" if phase == "fresh"
                 else f"after {args.steps} steps")
        print(f"| {label} | {med['pynn']:.1f} | {med['torch']:.1f} | "
              f"{med['pynn'] / med['torch']:.2f} | {counts['pynn']} / {counts['torch']} | "
              f"{diff:.1e} |")


if __name__ == "__main__":
    main()
