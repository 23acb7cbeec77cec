"""The recurrent cells' step kernels alone, one time step on one thread, at lstm-seqmnist's sizes.

    python benchmarks/recurrent_kernels.py [--rows 32] [--hidden 128] [--repeats 2000] [--steps 50]

A compiled LSTM or GRU layer runs one of these per time step and row slice (32 rows per core at
batch 64), next to one BLAS product of the same rows (timed here too, with one BLAS thread, as
the split runs it). Prints the median microseconds per call over --repeats calls, with states
and pre-activations of a real sequence (PyTorch's uniform initialisation, inputs in [0, 1)),
so the exp and tanh see the values they see in training. Then a whole training step of an
LSTM, a GRU and an RNN (tanh) layer (Input -> layer -> Dense, Adam, batch 64) in pynn and in
PyTorch, every thread, as a user runs them (--steps; 0 leaves it out, as --repeats 0 leaves out
the kernels).
"""
import argparse
import time

import numpy as np

from pynn.kernels import threads


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
    ap.add_argument("--steps", type=int, default=50,
                    help="training steps of each whole layer, pynn and torch (0: none)")
    args = ap.parse_args()
    if args.repeats:
        step_kernels(args)
    if args.steps:
        layer_steps(args.hidden, args.steps)


def step_kernels(args):
    """The step kernels and products alone, on one BLAS thread (as a split slice runs them)."""
    from pynn.kernels.recurrent import gru_step, gru_step_backward, lstm_step, lstm_step_backward
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

    # GRU: its step kernel and the step's backward, on views of (N, T, .) buffers as the op's
    wg_ih, wg_hh = (rng.uniform(-k, k, (3 * H, n)).astype(f) for n in (F, H))
    b_hh = rng.uniform(-k, k, 3 * H).astype(f)
    gxw = (x.reshape(-1, F) @ wg_ih.T).reshape(N, T, 3 * H)
    gates_seq, hseq = np.empty((N, T, 4 * H), f), np.empty((N, T, H), f)
    hseq[:, t - 1] = h_prev
    ghw0 = (h_prev @ wg_hh.T).astype(f)
    ghw, gh = np.empty_like(ghw0), np.empty_like(h_prev)

    def gru_forward():
        np.copyto(ghw, ghw0)
        np.copyto(gh, h_prev)
        gru_step(gxw, t, ghw, b_hh, gates_seq, gh, hseq)

    gru_forward()
    dX, dH = np.empty((N, T, 3 * H), f), np.empty((N, T, 3 * H), f)
    g1 = (rng.standard_normal((N, T, H)) * 0.1).astype(f)
    gdh, gdhp = np.zeros((N, H), f), np.empty((N, H), f)
    rows.append(("gru_step (+ copies of hw and h)", median_us(gru_forward, args.repeats)))
    rows.append(("gru_step_backward", median_us(
        lambda: gru_step_backward(g1, t, gdh, gates_seq, hseq, dX, dH, gdhp), args.repeats)))

    print(f"rows {N}, hidden {H}, one thread; median of {args.repeats} calls")
    print("| kernel | us per call |\n|---|---:|")
    for name, us in rows:
        print(f"| {name} | {us:.1f} |")
    if setter is not None:
        setter(threads._default_threads())       # the layers run as a user runs them


def layer_steps(H, steps, batch=64, T=28, F=28, rounds=3):
    """A training step of Input((T, F)) -> LSTM / GRU / RNN(H) -> Dense(H, 10, softmax) at `batch`,
    in pynn and in torch (Adam, the same random batch), every thread: the median over `rounds`
    alternating blocks of `steps` steps each, after 10 untimed ones and 0.5 s idle before each
    block (torch's OpenMP threads spin for a while after its last op: a pynn step right after
    a torch step ran up to 2x slower)."""
    import torch
    print(f"\ntraining step, batch {batch}, {T} steps of {F} features, hidden {H}, "
          f"{threads.get_num_threads()} threads; median of {rounds} alternating blocks of "
          f"{steps} steps")
    print("| layer | pynn ms | torch ms | pynn/torch |\n|---|---:|---:|---:|")
    torch.set_num_threads(threads.get_num_threads())
    for name in ("LSTM", "GRU", "RNN"):
        fns = _pynn_step(name, H, batch, T, F), _torch_step(name, H, batch, T, F)
        times = ([], [])
        for fn in fns:
            for _ in range(10):
                fn()
        for _ in range(rounds):
            for fn, record in zip(fns, times):
                time.sleep(0.5)
                for _ in range(steps):
                    t = time.perf_counter()
                    fn()
                    record.append(time.perf_counter() - t)
        a, b = (float(np.median(r)) * 1e3 for r in times)
        print(f"| {name} | {a:.2f} | {b:.2f} | {a / b:.2f} |")


def _batch(batch, T, F):
    rng = np.random.default_rng(1)
    return rng.random((batch, T, F), dtype=np.float32), rng.integers(0, 10, batch)


def _pynn_step(name, H, batch, T, F):
    import pynn
    from pynn.layers import GRU, LSTM, RNN, Dense
    from pynn.losses import categorical_cross_entropy
    from pynn.optim import Adam
    x, y = _batch(batch, T, F)
    x_in = pynn.Input((T, F))
    layer = {"LSTM": LSTM, "GRU": GRU, "RNN": RNN}[name](H)
    model = pynn.Model(x_in, Dense(H, 10, "softmax")(layer(x_in)))
    opt, params = Adam(1e-3), model.parameters

    def step():
        loss = categorical_cross_entropy(model(x), y)
        loss.zero_grad()
        loss.backward()
        opt.update(params)
    return step


def _torch_step(name, H, batch, T, F):
    import torch
    x, y = (torch.from_numpy(a) for a in _batch(batch, T, F))
    rnn = {"LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU, "RNN": torch.nn.RNN}[name](
        F, H, batch_first=True)
    head = torch.nn.Linear(H, 10)
    opt = torch.optim.Adam(list(rnn.parameters()) + list(head.parameters()), lr=1e-3)

    def step():
        opt.zero_grad()
        out, _ = rnn(x)
        torch.nn.functional.cross_entropy(head(out[:, -1]), y).backward()
        opt.step()
    return step


if __name__ == "__main__":
    main()
