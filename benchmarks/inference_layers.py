"""Where the inference-mlp pass goes: each Dense layer's product in pynn and in PyTorch, timed
inside real passes, against this machine's SGEMM peak.

    python benchmarks/inference_layers.py [--passes 9] [--pause 0.5] [--batch 1024]
        [--data-dir DIR]

run.py's inference-mlp workload (784-256-128-32-10 over the 10,000 MNIST test images, batch
1024, 2 threads each) is all matrix products, so its ratio is bounded by how fast BLAS runs
each one. This script runs the same passes (workloads.inference's, which run.py times:
`model.predict` in pynn, the same network under `torch.no_grad()` in torch, alternating,
`--pause` seconds idle before each as in run.py) and times every layer's call inside them: in
pynn its product with the bias and activation pass after it (`pynn.ops.nn._dense_rows`), in
torch the `nn.Linear` module (its `addmm`, bias included; the ReLU modules and the softmax are
counted in the rest of the pass). It prints, per layer, the median milliseconds per pass, the
GFLOP/s they make of the layer's multiply-adds, and that rate as a fraction of the SGEMM peak
(benchmarks/flops.py, 2 BLAS threads, fresh process); then the rest of each pass (everything
outside the layers; in pynn it includes making predict's (in, out) copies of the weights,
pynn.ops.nn.constant_weights) and the whole pass. A third kind of pass, pynn's with those
copies off (every Dense multiplying by W.T), takes its turn in the same rotation: the last line
compares the two pynn passes of each round.
"""
import argparse
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]     # this checkout's pynn, not an installed one

THREADS = 2
if __name__ == "__main__":      # NumPy's BLAS reads its thread count once, when it loads
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = str(THREADS)

import numpy as np  # noqa: E402


def pynn_pass(run, layer_times):
    """Time one pass of `run` (workloads.inference's pynn pass); each layer's seconds are added
    to layer_times[(out, in)]."""
    import pynn.ops.nn as nn_ops
    inner = nn_ops._dense_rows

    def timed(x2, w_t, b, y, act):
        start = time.perf_counter()
        inner(x2, w_t, b, y, act)
        key = w_t.shape[::-1]
        layer_times[key] = layer_times.get(key, 0.0) + time.perf_counter() - start

    nn_ops._dense_rows = timed
    try:
        start = time.perf_counter()
        run()
        return time.perf_counter() - start
    finally:
        nn_ops._dense_rows = inner


def torch_pass(run, model, layer_times):
    """Time one pass of `run` (workloads.inference's torch pass over `model`); each
    nn.Linear's seconds go to layer_times."""
    import torch
    starts = {}

    def before(mod, args):
        starts[mod] = time.perf_counter()

    def after(mod, args, out):
        key = tuple(mod.weight.shape)
        layer_times[key] = layer_times.get(key, 0.0) + time.perf_counter() - starts[mod]

    hooks = [h for m in model if isinstance(m, torch.nn.Linear)
             for h in (m.register_forward_pre_hook(before), m.register_forward_hook(after))]
    try:
        start = time.perf_counter()
        run()
        return time.perf_counter() - start
    finally:
        for h in hooks:
            h.remove()


WITHOUT = "pynn, x @ W.T"


def without_copies(run):
    """run() with predict's (in, out) weight copies off (pynn.ops.nn.constant_weights): every
    Dense multiplies by W.T, the transposed view of its weight, as before the copies."""
    from pynn.ops.nn import Linear
    saved = Linear.CONSTANT_MIN_ROWS
    Linear.CONSTANT_MIN_ROWS = 1 << 62
    try:
        return run()
    finally:
        Linear.CONSTANT_MIN_ROWS = saved


def measure(x, passes, pause, batch):
    """{framework: (pass seconds [...], {weight shape: [seconds per pass]})} of run.py's
    inference-mlp passes (workloads.inference), once both models are shown to predict the same
    and have made one untimed pass."""
    import run as R
    import torch
    import workloads as W
    R.set_threads(THREADS)
    (pynn_run, pynn_model), (torch_run, torch_model) = (
        W.inference(fw, W.mlp_layers, x, (784,), batch=batch) for fw in ("pynn", "torch"))
    with torch.no_grad():
        expected = torch.softmax(torch_model(torch.from_numpy(x)), dim=1).numpy()
    np.testing.assert_allclose(pynn_model.predict(x, batch_size=batch), expected, rtol=1e-4,
                               atol=1e-5)
    runs = {"pynn": lambda lt: pynn_pass(pynn_run, lt),
            "torch": lambda lt: torch_pass(torch_run, torch_model, lt),
            WITHOUT: lambda lt: without_copies(lambda: pynn_pass(pynn_run, lt))}
    for run in runs.values():       # warm-up passes, untimed
        run({})
    results = {fw: ([], {}) for fw in runs}
    names = list(runs)
    for r in range(passes):         # each in each place of the order equally often
        for fw in names[r % 3:] + names[:r % 3]:
            time.sleep(pause)
            layer_times = {}
            results[fw][0].append(runs[fw](layer_times))
            for key, sec in layer_times.items():
                results[fw][1].setdefault(key, []).append(sec)
    return results


def report(results, rows, peak):
    """The table: per layer, then the rest of the pass and the whole pass."""
    print("| layer | GFLOP per pass | pynn ms | pynn GFLOP/s | pynn % of peak | torch ms | "
          "torch GFLOP/s | torch % of peak |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    shapes = sorted(results["pynn"][1], key=lambda s: -s[0] * s[1])
    for out_f, in_f in shapes:
        gflop = 2 * rows * in_f * out_f / 1e9
        cells = []
        for fw in ("pynn", "torch"):
            sec = float(np.median(results[fw][1][(out_f, in_f)]))
            cells += [f"{sec * 1e3:.3f}", f"{gflop / sec:.1f}", f"{gflop / sec / peak:.0%}"]
        print(f"| Dense {in_f}->{out_f} | {gflop:.3f} | " + " | ".join(cells) + " |")
    for label, pick in (("rest of the pass", "rest"), ("whole pass", "pass")):
        cells = []
        for fw in ("pynn", "torch"):
            passes, layers = results[fw]
            per = [p - sum(v[i] for v in layers.values()) if pick == "rest" else p
                   for i, p in enumerate(passes)]
            cells += [f"{float(np.median(per)) * 1e3:.3f}", "", ""]
        print(f"| {label} | | " + " | ".join(cells) + " |")
    ratio = float(np.median(results["pynn"][0])) / float(np.median(results["torch"][0]))
    print(f"\npynn/torch, whole pass (medians): {ratio:.2f}")
    plain = float(np.median(results[WITHOUT][0]))
    pairs = np.array(results["pynn"][0]) / np.array(results[WITHOUT][0])
    print(f"without the weight copies ({WITHOUT}): whole pass {plain * 1e3:.3f} ms, pynn/torch "
          f"{plain / float(np.median(results['torch'][0])):.2f}; with / without, median of the "
          f"rounds' ratios: {float(np.median(pairs)):.3f}")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--passes", type=int, default=9)
    p.add_argument("--pause", type=float, default=0.5,
                   help="seconds idle before each timed pass (as run.py's --pause)")
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--images", type=int, default=10000, help="test images per pass")
    p.add_argument("--peak-size", type=int, default=2048,
                   help="matrix size of the SGEMM peak's products")
    p.add_argument("--data-dir", default=os.environ.get(
        "PYNN_DATA_DIR", str(HERE.parents[1] / "shared" / "data")))
    args = p.parse_args()
    import flops
    import run as R
    peak = flops.sgemm_peak_subprocess(THREADS, n=args.peak_size)
    tx = R.load_data(args.data_dir).mnist[2]
    x = np.ascontiguousarray(tx.reshape(len(tx), -1)[:args.images])
    print(f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; NumPy's BLAS: "
          f"{flops.blas_kernels()}; {THREADS} threads each")
    print(f"inference-mlp: {len(x)} images, batch {args.batch}, median of {args.passes} "
          f"alternating passes, {args.pause:g} s idle before each; SGEMM peak "
          f"{peak:.1f} GFLOP/s\n")
    report(measure(x, args.passes, args.pause, args.batch), len(x), peak)


if __name__ == "__main__":
    main()
