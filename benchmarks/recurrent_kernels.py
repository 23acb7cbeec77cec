"""The recurrent cells' step kernels alone, one time step on one thread, at lstm-seqmnist's sizes.

    python benchmarks/recurrent_kernels.py [--rows 32] [--hidden 128] [--repeats 2000]

A compiled LSTM or GRU layer runs one of these per time step and row slice (32 rows per core at
batch 64), next to one BLAS product of the same rows (timed here too, with one BLAS thread, as
the split runs it). Prints the median microseconds per call over --repeats calls, with states
and pre-activations of a real sequence (PyTorch's uniform initialisation, inputs in [0, 1)),
so the exp and tanh see the values they see in training.
"""
import argparse
import time

import numpy as np

from pynn.kernels import threads
from pynn.kernels.recurrent import (
    gru_candidate,
    gru_output,
    gru_preactivations,
    gru_step_backward,
    lstm_step,
    lstm_step_backward,
)


def median_us(fn, repeats):
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times)) * 1e6


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=32)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--features", type=int, default=28)
    ap.add_argument("--repeats", type=int, default=2000)
    args = ap.parse_args()
    setter, _ = threads._find_blas_local_setter()
    if setter is not None:
        setter(1)
    N, H, F, T = args.rows, args.hidden, args.features, 28
    f = np.float32
    rng = np.random.default_rng(0)
    k = 1 / np.sqrt(H)
    x = rng.random((N, T, F)).astype(f)
    rows = []

    # LSTM: run a real sequence first, then time step t on its states
    w_ih, w_hh = (rng.uniform(-k, k, (4 * H, n)).astype(f) for n in (F, H))
    w_hh_t = np.ascontiguousarray(w_hh.T)
    xw = (x.reshape(-1, F) @ w_ih.T).reshape(N, T, 4 * H)
    hw, gates = np.empty((N, 4 * H), f), np.empty((N, T, 4 * H), f)
    out, tanh_c, c = np.empty((N, T, 2 * H), f), np.empty((N, T, H), f), np.zeros((N, H), f)
    h = np.zeros((N, H), f)
    for t in range(T):
        np.matmul(h, w_hh_t, out=hw)
        lstm_step(xw, t, hw, gates, c, out, tanh_c)
        h = out[:, t, :H]
    t = T // 2
    h_prev, c_prev = out[:, t - 1, :H].copy(), out[:, t - 1, H:].copy()
    np.matmul(h_prev, w_hh_t, out=hw)

    def lstm_forward():
        np.copyto(c, c_prev)
        lstm_step(xw, t, hw, gates, c, out, tanh_c)

    g = (rng.standard_normal((N, T, 2 * H)) * 0.1).astype(f)
    dh, dc, dgates = np.zeros((N, H), f), np.zeros((N, H), f), np.empty((N, T, 4 * H), f)
    rows.append(("lstm_step (+ a copy of c)", median_us(lstm_forward, args.repeats)))
    rows.append(("lstm_step_backward", median_us(
        lambda: lstm_step_backward(g, t, dh, dc, gates, tanh_c, out, t - 1, H, dgates),
        args.repeats)))
    dA = dgates[:, t]
    rows.append((f"BLAS h @ W_hh.T ({N}x{H} by {H}x{4 * H})",
                 median_us(lambda: np.matmul(h_prev, w_hh_t, out=hw), args.repeats)))
    dh_out = np.empty((N, H), f)
    rows.append((f"BLAS dA @ W_hh ({N}x{4 * H} by {4 * H}x{H})",
                 median_us(lambda: np.matmul(dA, w_hh, out=dh_out), args.repeats)))

    # GRU: one step of its three kernels and NumPy's exp and tanh between them
    # (the op passes views of its (N, T, .) buffers at step t, as here)
    wg_ih, wg_hh = (rng.uniform(-k, k, (3 * H, n)).astype(f) for n in (F, H))
    gxw = (x.reshape(-1, F) @ wg_ih.T).reshape(N, T, 3 * H)
    ghw = (h_prev @ wg_hh.T).astype(f)
    e, cand = np.empty((N, 2 * H), f), np.empty((N, H), f)
    gseq, hseq = np.empty((N, T, 4 * H), f), np.empty((N, T, H), f)
    hseq[:, t] = h_prev
    ghw0 = ghw.copy()

    def gru_forward():
        np.copyto(ghw, ghw0)
        gru_preactivations(gxw[:, t], ghw, e)
        np.exp(e, out=e)
        gru_candidate(gxw[:, t], ghw, e, gseq[:, t], cand)
        np.tanh(cand, out=cand)
        gru_output(gseq[:, t], cand, hseq[:, t], hseq[:, t + 1])

    gru_forward()
    dX, dH = np.empty((N, T, 3 * H), f), np.empty((N, T, 3 * H), f)
    gdh, gdhp = rng.standard_normal((N, H)).astype(f) * 0.1, np.empty((N, H), f)
    rows.append(("GRU step: 3 kernels, exp, tanh (+ a copy of hw)",
                 median_us(gru_forward, args.repeats)))
    rows.append(("gru_step_backward", median_us(
        lambda: gru_step_backward(gdh, gseq[:, t], hseq[:, t], dX[:, t], dH[:, t], gdhp),
        args.repeats)))

    print(f"rows {N}, hidden {H}, one thread; median of {args.repeats} calls")
    print("| kernel | us per call |\n|---|---:|")
    for name, us in rows:
        print(f"| {name} | {us:.1f} |")


if __name__ == "__main__":
    main()
