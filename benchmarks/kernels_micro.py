"""Scratch micro-benchmark of the Numba kernels on MNIST-CNN sizes, with torch as a yardstick.

Run:  python benchmarks/kernels_micro.py [--dtype float32|float64]

Times are the best of repeated calls, in milliseconds. Whether Numba threads pay inside a real
training step is measured by benchmarks/parallel_kernels.py instead.
"""
import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

from pynn.kernels import (
    ACT_RELU,
    avgpool2d_backward,
    avgpool2d_forward,
    bias_act_backward,
    bias_act_backward_cnp,
    bias_act_forward,
    bias_act_forward_cnp,
    col2im,
    conv_output_shape,
    im2col,
    maxpool2d_backward,
    maxpool2d_forward,
)


def bench(fn, *args, repeat=30, min_time=0.2):
    """Best wall time of fn(*args) in ms (after one warm-up call).

    The minimum, not the median: on a shared 2-core box other processes inflate
    the typical time, most of all for the thread-parallel kernels.
    """
    fn(*args)
    times = []
    t_end = time.perf_counter() + min_time
    while len(times) < repeat or time.perf_counter() < t_end:
        t0 = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - t0)
        if len(times) > 2000:
            break
    return 1e3 * min(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dtype", default="float32")
    args = ap.parse_args()
    dt = np.dtype(args.dtype)
    torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    print(f"dtype={dt}, torch threads={torch.get_num_threads()}")

    hdr = f"{'case':44s} {'numba':>8s} {'torch':>8s}  (ms)"
    print("\n== im2col / col2im (torch: F.unfold / F.fold) ==")
    print(hdr)
    for N, C, H, k, p, s in [(64, 1, 28, 3, 1, 1), (64, 8, 28, 3, 1, 1), (64, 16, 28, 3, 1, 1),
                             (64, 16, 14, 3, 1, 1), (64, 16, 28, 3, 0, 1), (64, 32, 14, 3, 1, 1),
                             (64, 1, 28, 5, 2, 1)]:
        OH, OW = conv_output_shape(H, H, k, k, s, s, p, p)
        x = rng.standard_normal((N, C, H, H)).astype(dt)
        cols = np.empty((C * k * k, N * OH * OW), dt)
        dx = np.empty_like(x)
        xt = torch.from_numpy(x)
        ct = F.unfold(xt, k, padding=p, stride=s)
        tag = f"N={N} C={C} {H}x{H} k={k} p={p} s={s}"
        a = (x, k, k, s, s, p, p, cols)
        print(f"{'im2col  ' + tag:44s} {bench(im2col, *a):8.3f} "
              f"{bench(lambda: F.unfold(xt, k, padding=p, stride=s)):8.3f}")
        a = (cols, k, k, s, s, p, p, dx)
        print(f"{'col2im  ' + tag:44s} {bench(col2im, *a):8.3f} "
              f"{bench(lambda: F.fold(ct, (H, H), k, padding=p, stride=s)):8.3f}")

    print("\n== pooling fwd / bwd (torch: F.max_pool2d(return_indices) / F.avg_pool2d "
          "+ autograd bwd) ==")
    print(hdr)
    for N, C, H, k, s, p in [(64, 8, 28, 2, 2, 0), (64, 16, 28, 2, 2, 0), (64, 16, 28, 3, 2, 1),
                             (64, 32, 14, 2, 2, 0)]:
        OH, OW = conv_output_shape(H, H, k, k, s, s, p, p)
        x = rng.standard_normal((N, C, H, H)).astype(dt)
        y = np.empty((N, C, OH, OW), dt)
        idx = np.empty((N, C, OH, OW), np.int64)
        gy = rng.standard_normal((N, C, OH, OW)).astype(dt)
        dx = np.empty_like(x)
        tag = f"N={N} C={C} {H}x{H} k={k} s={s} p={p}"
        xt = torch.from_numpy(x).requires_grad_()
        gyt = torch.from_numpy(gy)

        a = (x, k, k, s, s, p, p, y, idx)
        with torch.no_grad():
            t_t = bench(lambda: F.max_pool2d(xt, k, s, p, return_indices=True))
        print(f"{'maxpool fwd ' + tag:44s} {bench(maxpool2d_forward, *a):8.3f} {t_t:8.3f}")
        maxpool2d_forward(*a)
        a = (gy, idx, dx)
        yt, it = F.max_pool2d(xt, k, s, p, return_indices=True)
        t_t = bench(lambda: torch.ops.aten.max_pool2d_with_indices_backward(
            gyt, xt.detach(), [k, k], [s, s], [p, p], [1, 1], False, it))
        print(f"{'maxpool bwd ' + tag:44s} {bench(maxpool2d_backward, *a):8.3f} {t_t:8.3f}")

        a = (x, k, k, s, s, p, p, y)
        with torch.no_grad():
            t_t = bench(lambda: F.avg_pool2d(xt, k, s, p))
        print(f"{'avgpool fwd ' + tag:44s} {bench(avgpool2d_forward, *a):8.3f} {t_t:8.3f}")
        a = (gy, k, k, s, s, p, p, dx)
        t_t = bench(lambda: torch.ops.aten.avg_pool2d_backward(
            gyt, xt.detach(), [k, k], [s, s], [p, p], False, True, None))
        print(f"{'avgpool bwd ' + tag:44s} {bench(avgpool2d_backward, *a):8.3f} {t_t:8.3f}")

    print("\n== bias + relu (torch: relu(z + b) / threshold_backward + sum) ==")
    print(hdr)
    for N, O, P in [(64, 8, 784), (64, 16, 784), (64, 32, 196)]:
        z = rng.standard_normal((O, N * P)).astype(dt)
        b = rng.standard_normal(O).astype(dt)
        y = np.empty((N, O, P), dt)
        gy = rng.standard_normal((N, O, P)).astype(dt)
        gz = np.empty_like(z)
        gb = np.empty(O, dt)
        tag = f"cnp N={N} O={O} P={P}"
        a = (z, b, ACT_RELU, y)
        zt = torch.from_numpy(z.reshape(O, N, P).transpose(1, 0, 2).copy())
        bt = torch.from_numpy(b)[None, :, None]
        t_t = bench(lambda: torch.relu(zt + bt))
        print(f"{'fwd ' + tag:44s} {bench(bias_act_forward_cnp, *a):8.3f} {t_t:8.3f}")
        bias_act_forward_cnp(*a)
        a = (gy, y, ACT_RELU, gz, gb)
        yt, gyt = torch.from_numpy(y), torch.from_numpy(gy)
        t_t = bench(lambda: torch.ops.aten.threshold_backward(gyt, yt, 0).sum((0, 2)))
        print(f"{'bwd ' + tag:44s} {bench(bias_act_backward_cnp, *a):8.3f} {t_t:8.3f}")
    for N, Fd in [(64, 128), (64, 512), (1024, 512)]:
        z0 = rng.standard_normal((N, Fd)).astype(dt)
        z = z0.copy()
        b = rng.standard_normal(Fd).astype(dt)
        gy = rng.standard_normal((N, Fd)).astype(dt)
        gz = np.empty_like(gy)
        gb = np.empty(Fd, dt)
        tag = f"dense N={N} F={Fd}"
        zt, bt = torch.from_numpy(z0), torch.from_numpy(b)
        t_t = bench(lambda: torch.relu(zt + bt))
        print(f"{'fwd ' + tag:44s} {bench(bias_act_forward, z, b, ACT_RELU):8.3f} {t_t:8.3f}")
        y = np.maximum(z0 + b, 0)
        yt, gyt = torch.from_numpy(y), torch.from_numpy(gy)
        t_t = bench(lambda: torch.ops.aten.threshold_backward(gyt, yt, 0).sum(0))
        print(f"{'bwd ' + tag:44s} {bench(bias_act_backward, gy, y, ACT_RELU, gz, gb):8.3f} "
              f"{t_t:8.3f}")


if __name__ == "__main__":
    main()
