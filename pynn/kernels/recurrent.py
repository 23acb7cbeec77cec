"""Numba kernels for recurrent cells: one time step of the gates, forward and backward.

Layouts (N = batch, T = time steps, H = hidden size). The kernels take the op's whole (N, T, .)
buffers and the step t, and index them [n, t, j] (C-contiguous arrays, where Numba knows the
innermost stride is 1, instead of strided views xw[:, t]).

* LSTM: ``xw`` (N, T, 4H) is x @ W_ih.T + b_ih + b_hh, ``hw`` (N, 4H) h_{t-1} @ W_hh.T, gates
  in torch's order i, f, g, o; ``gates`` (N, T, 4H) keeps the activated gates for backward,
  ``tanh_c`` (N, T, H) tanh(c_t) and ``out`` (N, T, 2H) h_t and c_t. A forward step is one
  kernel (``lstm_step``) after the hidden product, with pynn.kernels.vecmath's exp and tanh,
  which vectorise; ``lstm_sequence`` and ``lstm_sequence_backward`` run the whole time loop,
  BLAS products included (pynn.kernels.blas), in one call without the GIL instead of a
  Python call per product and step.
* GRU: ``xw`` (N, T, 3H) holds x @ W_ih.T + b_ih, ``hw`` (N, 3H) h_{t-1} @ W_hh.T (+ b_hh, added
  by the step), gates r, z, n; ``gates`` (N, T, 4H) keeps r, z, n and the (W_hn h + b_hn) term.
  A forward step is one kernel (``gru_step``) with vecmath's exp and tanh, and
  ``gru_sequence`` / ``gru_sequence_backward`` run the whole time loop, as the LSTM's.
* RNN: h_t = ReLU or tanh (vecmath's) of ``xw[:, t]`` + ``hw``, one kernel (``rnn_step``), and
  the whole time loop in one call each way (``rnn_sequence``, ``rnn_sequence_backward``).

The backward kernels turn dL/dh_t (and dL/dc_t for the LSTM) into the pre-activation gradients of
the step, which the caller multiplies by the weights with BLAS.

Every kernel is compiled with ``error_model="numpy"``: Numba's default (Python's) error model
tests every float division for a zero divisor and raises ZeroDivisionError, and that branch
keeps LLVM from vectorising a loop with a division in it (the sigmoid's 1 / (1 + e)): the LSTM
cell kernel ran twice as fast without it. The backward kernels compute in the arrays' own
precision (``one = dh.dtype.type(1)``, not the float64 literal 1.0), so float32 gradients fill
twice the SIMD lanes: lstm-seqmnist's step went from ~11.7 to 10.7 ms with that alone
(``python benchmarks/op_times.py lstm-seqmnist``).
"""
from numba import njit

from .blas import matmul_into
from .vecmath import exp_nonpositive, tanh, wide_vectors


@njit(cache=True, inline="always")
def _sigmoid_of(x, e, one):
    """sigmoid(x) from e = exp(-|x|), stable in both tails: 1 / (1 + e) for x >= 0, else
    e / (1 + e); `one` is 1 in e's dtype, so the arithmetic stays in that precision."""
    s = one / (one + e)
    return s if x >= 0 else e * s


@njit(cache=True, nogil=True, error_model="numpy")
def add_rows(a, b, b2):
    """a[n, :] += b, then += b2 unless b2 is empty (shape (0,)), for every row of a 2-D array a,
    in one pass (in place, rounded as two NumPy ``a += b`` would be; NumPy allocates a buffer
    of np.getbufsize() elements for the broadcast on every call, per thread)."""
    M, G = a.shape
    if b.shape[0] != G or (b2.shape[0] != 0 and b2.shape[0] != G):
        raise ValueError("add_rows: b must have a's row length, b2 too or be empty")
    if b2.shape[0] == 0:
        for n in range(M):
            for j in range(G):
                a[n, j] += b[j]
    else:
        for n in range(M):
            for j in range(G):
                a[n, j] = (a[n, j] + b[j]) + b2[j]


@njit(cache=True, nogil=True, error_model="numpy")
def lstm_step(xw, t, hw, gates, c, out, tanh_c):
    """LSTM time step t once hw = h_{t-1} @ W_hh.T (N, 4H) is made: pre = hw + xw[:, t]; the
    sigmoid gates i, f, o (stable: 1 / (1 + e) for pre >= 0, e / (1 + e) below, e =
    exp(-|pre|)) and g = tanh(pre) go to gates[:, t]; c = f c + i g in place (c_{t-1} on entry,
    c_t on return); h = o tanh(c) to out[:, t, :H], c to out[:, t, H:], tanh(c) to tanh_c[:, t].
    exp and tanh are pynn.kernels.vecmath's, so the loops vectorise in float32 (512-bit
    vectors where the CPU has them: wide_vectors)."""
    wide_vectors()
    N, H = c.shape
    one = c.dtype.type(1)
    for n in range(N):
        # 1-D views, each loop indexed by its counter from 0: LLVM vectorises these loops.
        # (Indexing the 3-D arrays inside the loops kept them scalar, and a loop over
        # range(2 * H, 3 * H) of a whole row was slow too, likely Numba's negative-index
        # wraparound, which LLVM cannot rule out there: with the g and o gates read that way
        # this kernel took 32 us a step against 14 us at N = 32, H = 128, the same results
        # bit for bit (benchmarks/recurrent_kernels.py).)
        pre, x_t, gate = hw[n], xw[n, t], gates[n, t]
        for j in range(2 * H):                      # i, f
            v = pre[j] + x_t[j]
            gate[j] = _sigmoid_of(v, exp_nonpositive(-abs(v)), one)
        pg, xg, gg = pre[2 * H:3 * H], x_t[2 * H:3 * H], gate[2 * H:3 * H]
        for j in range(H):                          # g
            gg[j] = tanh(pg[j] + xg[j])
        po, xo, go = pre[3 * H:], x_t[3 * H:], gate[3 * H:]
        for j in range(H):                          # o
            v = po[j] + xo[j]
            go[j] = _sigmoid_of(v, exp_nonpositive(-abs(v)), one)
        gi, gf = gate[:H], gate[H:2 * H]
        c_n, out_t, tc_t = c[n], out[n, t], tanh_c[n, t]
        h_t, c_t = out_t[:H], out_t[H:]
        for j in range(H):
            cj = gf[j] * c_n[j] + gi[j] * gg[j]
            tc = tanh(cj)
            c_n[j] = cj
            h_t[j] = go[j] * tc
            c_t[j] = cj
            tc_t[j] = tc


@njit(cache=True, nogil=True, error_model="numpy")
def lstm_sequence(gemm, xw, w_hh_t, h0, c, order, hw, gates, out, tanh_c):
    """The whole forward time loop of lstm_step over the steps in `order`, each step's hidden
    product h_{t-1} @ W_hh.T (w_hh_t: W_hh.T, contiguous) by BLAS (gemm: pynn.kernels.blas), the
    first from h0 (N, H): one call, no GIL taken per step."""
    H = c.shape[1]
    for i in range(order.size):
        if i == 0:
            matmul_into(gemm, h0, w_hh_t, hw)
        else:
            matmul_into(gemm, out[:, order[i - 1], :H], w_hh_t, hw)
        lstm_step(xw, order[i], hw, gates, c, out, tanh_c)


@njit(cache=True, nogil=True, error_model="numpy")
def lstm_step_backward(g, t, dh, dc, gates, tanh_c, c_prev, tp, cp0, dgates):
    """Backward of LSTM time step t. dh: the recurrent part of dL/dh_t (dh_{t+1}'s product with
    W_hh), to which g[:, t, :H] is added; dc: dL/dc_t carried from step t+1, to which
    g[:, t, H:] is added, overwritten with dL/dc_{t-1}. c_{t-1} is c_prev[:, tp, cp0:cp0 + H]
    (the forward output, or the initial state as (N, 1, H)). dgates[:, t] (dgates is
    (N, T, 4H)) receives dL/d(pre-activation gates). tanh_c is tanh(c), kept by the forward
    pass (no transcendental function here: the loop vectorises, in 512-bit vectors where the
    CPU has them: wide_vectors)."""
    wide_vectors()
    N, H = dh.shape
    one = dh.dtype.type(1)      # arithmetic in the arrays' precision (float32: twice the lanes)
    for n in range(N):
        # 1-D row views indexed by the loop counter, so that the loop vectorises (lstm_step)
        gate, dgate, g_t = gates[n, t], dgates[n, t], g[n, t]
        gi, gf, gg, go = gate[:H], gate[H:2 * H], gate[2 * H:3 * H], gate[3 * H:]
        di, df, dg, do = dgate[:H], dgate[H:2 * H], dgate[2 * H:3 * H], dgate[3 * H:]
        g_h, g_c, tc_t, cp = g_t[:H], g_t[H:], tanh_c[n, t], c_prev[n, tp, cp0:cp0 + H]
        dh_n, dc_n = dh[n], dc[n]
        for j in range(H):
            i, f, gv, o, tc = gi[j], gf[j], gg[j], go[j], tc_t[j]
            d = dh_n[j] + g_h[j]
            dct = dc_n[j] + g_c[j] + d * o * (one - tc * tc)
            di[j] = dct * gv * i * (one - i)
            df[j] = dct * cp[j] * f * (one - f)
            dg[j] = dct * i * (one - gv * gv)
            do[j] = d * tc * o * (one - o)
            dc_n[j] = dct * f


@njit(cache=True, nogil=True, error_model="numpy")
def lstm_sequence_backward(gemm, g, dh, dc, gates, tanh_c, out, c0, order, dgates, w_hh,
                           need_dh0):
    """The whole backward time loop, latest step first: lstm_step_backward (c_{t-1} from the
    forward output, or c0 (N, 1, H) at the first step), then dh = dgates[:, t] @ W_hh by BLAS
    for the step before (after the first step only with `need_dh0`: dh is then the initial
    state's gradient): one call, no GIL taken per step."""
    H = dh.shape[1]
    for i in range(order.size - 1, -1, -1):
        t = order[i]
        if i == 0:
            lstm_step_backward(g, t, dh, dc, gates, tanh_c, c0, 0, 0, dgates)
        else:
            lstm_step_backward(g, t, dh, dc, gates, tanh_c, out, order[i - 1], H, dgates)
        if i > 0 or need_dh0:
            matmul_into(gemm, dgates[:, t], w_hh, dh)


@njit(cache=True, nogil=True, error_model="numpy")
def gru_step(xw, t, hw, b_hh, gates, h, out):
    """GRU time step t once hw = h_{t-1} @ W_hh.T (N, 3H) is made: b_hh ((3H,), or (0,) for
    none) is added to hw in place; r, z = sigmoid(x + h parts) (stable, as lstm_step's), n =
    tanh(xn + r * hn), h_t = (1 - z) n + z h_{t-1}; gates[:, t] (gates is (N, T, 4H)) keeps r,
    z, n and hn for backward. h (N, H) holds h_{t-1} on entry and h_t on return (an array of
    its own: with h_{t-1} read from `out` itself the kernel took 42 us a step against 9-12 at
    N = 32, H = 128, benchmarks/recurrent_kernels.py); h_t also goes to out[:, t]. exp and tanh are
    pynn.kernels.vecmath's, so the loops vectorise in float32 (see lstm_step)."""
    wide_vectors()
    N, H = h.shape
    has_bias = b_hh.shape[0] != 0
    one = h.dtype.type(1)
    for n in range(N):
        # 1-D views, each loop indexed from 0 (see lstm_step)
        pre, x_t, gate = hw[n], xw[n, t], gates[n, t]
        if has_bias:
            for j in range(3 * H):
                pre[j] += b_hh[j]
        for j in range(2 * H):                      # r, z
            v = pre[j] + x_t[j]
            gate[j] = _sigmoid_of(v, exp_nonpositive(-abs(v)), one)
        hn, xn = pre[2 * H:], x_t[2 * H:]
        r, z, g_n, g_hn = gate[:H], gate[H:2 * H], gate[2 * H:3 * H], gate[3 * H:]
        h_n, h_t = h[n], out[n, t]
        for j in range(H):
            nn = tanh(xn[j] + r[j] * hn[j])
            g_n[j] = nn
            g_hn[j] = hn[j]
            v = (one - z[j]) * nn + z[j] * h_n[j]
            h_n[j] = v
            h_t[j] = v


@njit(cache=True, nogil=True, error_model="numpy")
def gru_sequence(gemm, xw, w_hh_t, b_hh, h, order, hw, gates, out):
    """The whole forward time loop of gru_step over the steps in `order`, each step's hidden
    product h @ W_hh.T by BLAS (w_hh_t contiguous); h (N, H) starts as the initial state: one
    call, no GIL taken per step (lstm_sequence)."""
    for i in range(order.size):
        matmul_into(gemm, h, w_hh_t, hw)
        gru_step(xw, order[i], hw, b_hh, gates, h, out)


@njit(cache=True, nogil=True, error_model="numpy")
def gru_step_backward(g, t, dh, gates, hprev, dxw, dhw, dh_prev):
    """Backward of GRU time step t. dh (N, H): the recurrent part of dL/dh_t (dh_{t+1}'s
    product with W_hh), to which g[:, t] is added; hprev (N, T, H) holds h_{t-1} at [:, t];
    dxw[:, t], dhw[:, t] (both (N, T, 3H)) receive dL/d(xw), dL/d(hw); dh_prev (N, H) the
    direct part of dL/dh_{t-1} (z * dh; the caller adds dhw[:, t] @ W_hh)."""
    wide_vectors()
    N, H = dh.shape
    one = dh.dtype.type(1)
    for n in range(N):
        gate, dx, dhh = gates[n, t], dxw[n, t], dhw[n, t]
        r, z, nn, hn = gate[:H], gate[H:2 * H], gate[2 * H:3 * H], gate[3 * H:]
        dxr, dxz, dxn = dx[:H], dx[H:2 * H], dx[2 * H:]
        dhr, dhz, dhn = dhh[:H], dhh[H:2 * H], dhh[2 * H:]
        d_n, g_t, hp, dp = dh[n], g[n, t], hprev[n, t], dh_prev[n]
        for j in range(H):
            d = d_n[j] + g_t[j]
            dan = d * (one - z[j]) * (one - nn[j] * nn[j])
            dar = dan * hn[j] * r[j] * (one - r[j])
            daz = d * (hp[j] - nn[j]) * z[j] * (one - z[j])
            dxr[j] = dar
            dxz[j] = daz
            dxn[j] = dan
            dhr[j] = dar
            dhz[j] = daz
            dhn[j] = dan * r[j]
            dp[j] = d * z[j]


@njit(cache=True, nogil=True, error_model="numpy")
def gru_sequence_backward(gemm, g, dh, gates, hprev, order, dxw, dhw, dh_prev, w_hh, need_dh0):
    """The whole backward time loop, latest step first: gru_step_backward, then dh =
    dhw[:, t] @ W_hh by BLAS + the direct part, for the step before (after the first step only
    with `need_dh0`: dh is then the initial state's gradient). One call, no GIL per step."""
    N, H = dh.shape
    for i in range(order.size - 1, -1, -1):
        t = order[i]
        gru_step_backward(g, t, dh, gates, hprev, dxw, dhw, dh_prev)
        if i > 0 or need_dh0:
            matmul_into(gemm, dhw[:, t], w_hh, dh)
            for n in range(N):
                d_n, dp = dh[n], dh_prev[n]
                for j in range(H):
                    d_n[j] += dp[j]


@njit(cache=True, nogil=True, error_model="numpy")
def rnn_step(xw, t, hw, h, out, relu):
    """Elman RNN time step t once hw = h_{t-1} @ W_hh.T (N, H) is made: h_t = act(xw[:, t] +
    hw), act = ReLU (NaN to 0) or tanh (vecmath's); h (N, H) holds h_{t-1} on entry and h_t on
    return (an array of its own, see gru_step), and h_t goes to out[:, t] too."""
    wide_vectors()
    N, H = h.shape
    zero = h.dtype.type(0)
    for n in range(N):
        pre, x_t, h_n, h_t = hw[n], xw[n, t], h[n], out[n, t]
        if relu:
            for j in range(H):
                a = pre[j] + x_t[j]
                v = a if a > 0 else zero
                h_n[j] = v
                h_t[j] = v
        else:
            for j in range(H):
                v = tanh(pre[j] + x_t[j])
                h_n[j] = v
                h_t[j] = v


@njit(cache=True, nogil=True, error_model="numpy")
def rnn_sequence(gemm, xw, w_hh_t, h, order, hw, out, relu):
    """The whole forward time loop of rnn_step over the steps in `order`, each step's product
    h @ W_hh.T by BLAS; h starts as the initial state: one call (lstm_sequence)."""
    for i in range(order.size):
        matmul_into(gemm, h, w_hh_t, hw)
        rnn_step(xw, order[i], hw, h, out, relu)


@njit(cache=True, nogil=True, error_model="numpy")
def rnn_step_backward(g, t, dh, out, relu, da):
    """da[:, t] = dL/d(pre-activation) of step t, from dh (the recurrent part of dL/dh_t) +
    g[:, t] and h_t = out[:, t]: times 1 - h^2 (tanh) or h > 0 (ReLU)."""
    wide_vectors()
    N, H = dh.shape
    one = dh.dtype.type(1)
    zero = dh.dtype.type(0)
    for n in range(N):
        d_n, g_t, h_t, da_t = dh[n], g[n, t], out[n, t], da[n, t]
        if relu:
            for j in range(H):
                da_t[j] = d_n[j] + g_t[j] if h_t[j] > 0 else zero
        else:
            for j in range(H):
                da_t[j] = (d_n[j] + g_t[j]) * (one - h_t[j] * h_t[j])


@njit(cache=True, nogil=True, error_model="numpy")
def rnn_sequence_backward(gemm, g, dh, out, order, da, w_hh, relu, need_dh0):
    """The whole backward time loop, latest step first: rnn_step_backward, then dh =
    da[:, t] @ W_hh by BLAS for the step before (after the first step only with `need_dh0`)."""
    for i in range(order.size - 1, -1, -1):
        t = order[i]
        rnn_step_backward(g, t, dh, out, relu, da)
        if i > 0 or need_dh0:
            matmul_into(gemm, da[:, t], w_hh, dh)


@njit(cache=True, nogil=True, error_model="numpy")
def embedding_backward(idx, g, padding_idx, gw):
    """gw (V, D) = scatter-add of the rows of g (M, D) at idx (M,), skipping padding_idx."""
    gw[:] = 0.0
    M, D = g.shape
    for m in range(M):
        k = idx[m]
        if k == padding_idx:
            continue
        for d in range(D):
            gw[k, d] += g[m, d]
