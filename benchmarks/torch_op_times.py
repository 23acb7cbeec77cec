"""PyTorch's side of op_times.py: `python benchmarks/torch_op_times.py resnet-fmnist --shapes`.

Trains a benchmarks/run.py workload in PyTorch (the torch twin run.py times) for --steps batches
after a warm-up, under torch.profiler, and prints each aten op's own CPU time (time in the ops
it calls not counted) in milliseconds per step, largest first; with --shapes, one row per op and
input shapes, so that a convolution of one layer can be set beside the same layer's row in
`python benchmarks/op_times.py WORKLOAD --per-step`. The profiler adds a little to every op.
"""
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from op_times import workload_parser  # noqa: E402


def main():
    p = workload_parser(__doc__)
    p.add_argument("--shapes", action="store_true", help="one row per op and input shapes")
    p.add_argument("--rows", type=int, default=20, help="how many rows to print")
    args = p.parse_args()
    import run as R
    R.set_threads(R.THREADS)
    from torch.profiler import ProfilerActivity, profile
    data = R.load_data(args.data_dir)
    run, _ = R.make(args.workload, "torch", data, args.steps)
    run()                                   # warm-up at the workload's shapes
    with profile(activities=[ProfilerActivity.CPU], record_shapes=args.shapes) as prof:
        run()
    rows = [e for e in prof.key_averages(group_by_input_shape=args.shapes)
            if e.key.startswith("aten::")]
    rows.sort(key=lambda e: -e.self_cpu_time_total)
    print(f"{args.workload} in torch: {args.steps} steps under torch.profiler\n")
    print("| op | input shapes | calls/step | ms/step |" if args.shapes else
          "| op | calls/step | ms/step |")
    print("|---|---|---:|---:|" if args.shapes else "|---|---:|---:|")
    for e in rows[:args.rows]:
        ms = e.self_cpu_time_total / 1e3 / args.steps         # profiler times are in us
        calls = e.count / args.steps
        if args.shapes:
            shapes = ", ".join(str(list(s)) for s in e.input_shapes if s)
            print(f"| {e.key} | {shapes} | {calls:g} | {ms:.3f} |")
        else:
            print(f"| {e.key} | {calls:g} | {ms:.3f} |")


if __name__ == "__main__":
    main()
