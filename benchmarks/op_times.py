"""Where a compiled training step goes, op by op: `python benchmarks/op_times.py readme-cnn`.

Trains a benchmarks/run.py workload in pynn for --steps batches after a warm-up, with every op of
the model's plan timed (wall clock, so the batch split's second thread is counted in the op that
started it), and prints milliseconds per step for each op's forward and backward, summed by op
type and listed per step of the plan. "rest" is the step time outside the plan: the loss, the
tape, the optimizer.
"""
import argparse
import collections
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def time_ops(plan, acc):
    """Wrap each op's forward and backward in `plan` to add its seconds into acc[key]."""
    for i, op in enumerate(plan.ops):
        name = op.name + (" + MaxPool2d" if getattr(op, "pool", None) is not None else "")
        for method in ("forward", "backward"):
            inner = getattr(op, method)

            def timed(*args, inner=inner, key=(i, name, method)):
                start = time.perf_counter()
                out = inner(*args)
                acc[key] += time.perf_counter() - start
                return out
            setattr(op, method, timed)


def workload_parser(doc):
    """The arguments this script and torch_op_times.py share: a run.py workload, --steps and
    --data-dir (default: $PYNN_DATA_DIR, else ../shared/data beside the repo)."""
    p = argparse.ArgumentParser(description=doc,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("workload")
    p.add_argument("--steps", type=int, default=100)
    shared_data = str(HERE.parents[1] / "shared" / "data")
    p.add_argument("--data-dir", default=os.environ.get("PYNN_DATA_DIR", shared_data))
    return p


def main():
    p = workload_parser(__doc__)
    p.add_argument("--per-step", action="store_true", help="also list every step of the plan")
    p.add_argument("--no-winograd", action="store_true",
                   help="every conv by im2col (Conv2d.WINOGRAD = False), to compare")
    args = p.parse_args()
    if args.no_winograd:
        from pynn.ops.nn import Conv2d
        Conv2d.WINOGRAD = False
    import run as R
    R.set_threads(R.THREADS)
    data = R.load_data(args.data_dir)
    run, model = R.make(args.workload, "pynn", data, args.steps)
    run()                                   # warm-up: compiles the kernels, builds the plan
    if len(model._plans) != 1:
        raise SystemExit(f"{args.workload}: expected one training plan, found {len(model._plans)}")
    acc = collections.defaultdict(float)
    time_ops(next(iter(model._plans.values())), acc)
    start = time.perf_counter()
    run()
    total = time.perf_counter() - start
    per_step = 1e3 / args.steps
    by_type = collections.defaultdict(float)
    for (_, name, method), seconds in acc.items():
        by_type[(name, method)] += seconds
    ops = sum(acc.values())
    print(f"{args.workload}: {total * per_step:.2f} ms per step, {ops * per_step:.2f} ms in the "
          f"plan's ops, rest {(total - ops) * per_step:.2f} ms ({args.steps} steps)")
    from pynn.ops.nn import Conv2d
    convs = [op for op in next(iter(model._plans.values())).ops if type(op) is Conv2d]
    print(f"convs: {len(convs)}, by Winograd: {sum(op.winograd for op in convs)}\n")
    print("| op | pass | ms/step |")
    print("|---|---|---:|")
    for (name, method), seconds in sorted(by_type.items(), key=lambda kv: -kv[1]):
        print(f"| {name} | {method} | {seconds * per_step:.3f} |")
    if args.per_step:
        print("\n| step | op | pass | ms/step |")
        print("|---:|---|---|---:|")
        for (i, name, method), seconds in sorted(acc.items()):
            print(f"| {i} | {name} | {method} | {seconds * per_step:.3f} |")


if __name__ == "__main__":
    main()
