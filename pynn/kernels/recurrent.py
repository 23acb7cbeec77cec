"""Numba kernels for recurrent cells: one time step of the gates, forward and backward.

Layouts (N = batch, T = time steps, H = hidden size). The LSTM kernels take the op's whole
(N, T, .) buffers and the step t, and index them [n, t, j] (C-contiguous arrays, where Numba
knows the innermost stride is 1, instead of strided views xw[:, t]). The GRU and RNN kernels
take 2-D (N, gate features) arrays, which may be such views.

* LSTM: ``xw`` (N, T, 4H) is x @ W_ih.T + b_ih + b_hh, ``hw`` (N, 4H) h_{t-1} @ W_hh.T, gates
  in torch's order i, f, g, o; ``gates`` (N, T, 4H) keeps the activated gates for backward,
  ``tanh_c`` (N, T, H) tanh(c_t) and ``out`` (N, T, 2H) h_t and c_t. A forward step is three
  small kernels around NumPy's exp and tanh (SIMD loops, several times faster than the scalar
  libm calls a kernel would make).
* GRU: ``xw`` (N, 3H) holds x_t @ W_ih.T + b_ih, ``hw`` (N, 3H) h_{t-1} @ W_hh.T + b_hh, gates r,
  z, n; ``gates`` (N, 4H) keeps r, z, n and the (W_hn h + b_hn) term. A forward step is three
  kernels around NumPy's exp and tanh, as the LSTM's.
* RNN: ``hw`` (N, H) += xw, then ReLU here or NumPy's tanh, in place.

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


@njit(cache=True, inline="always")
def _sigmoid_of(x, e, one):
    """sigmoid(x) from e = exp(-|x|), stable in both tails: 1 / (1 + e) for x >= 0, else
    e / (1 + e); `one` is 1 in e's dtype, so the arithmetic stays in that precision."""
    s = one / (one + e)
    return s if x >= 0 else e * s


@njit(cache=True, nogil=True, error_model="numpy")
def add_rows(a, b):
    """a[n, :] += b for every row of a 2-D array a (in place, as NumPy's ``a += b``, which
    allocates a buffer of np.getbufsize() elements for the broadcast on every call, per thread)."""
    M, G = a.shape
    for n in range(M):
        for j in range(G):
            a[n, j] += b[j]


@njit(cache=True, nogil=True, error_model="numpy")
def add_step(a, seq, t):
    """a += seq[:, t] for a (N, H) and a C-contiguous (N, T, H) sequence (NumPy's ``+=`` of
    that strided view would allocate a buffer of np.getbufsize() elements, per thread)."""
    N, H = a.shape
    for n in range(N):
        for j in range(H):
            a[n, j] += seq[n, t, j]


@njit(cache=True, nogil=True, error_model="numpy")
def lstm_preactivations(xw, t, hw, e, gpre):
    """Step 1 of LSTM time step t. hw += xw[:, t] (the gates' pre-activations, in place; xw is
    the whole (N, T, 4H) input projection); e = -|hw| (the argument of the sigmoids' exp);
    gpre = the g gate's pre-activations (contiguous, for tanh). NumPy's SIMD exp and tanh then
    run on e and gpre."""
    N, G = hw.shape
    H = G // 4
    for n in range(N):
        for j in range(G):
            v = hw[n, j] + xw[n, t, j]
            hw[n, j] = v
            e[n, j] = -abs(v)
        for j in range(H):
            gpre[n, j] = hw[n, 2 * H + j]


@njit(cache=True, nogil=True, error_model="numpy")
def lstm_cell(pre, e, tanh_g, gates, t, c):
    """Step 2: with e = exp(-|pre|), the sigmoid gates i, f, o (stable: 1 / (1 + e) for
    pre >= 0, e / (1 + e) below) and g = tanh_g go to gates[:, t] (gates is (N, T, 4H));
    c = f c + i g, in place (c holds c_{t-1} on entry, c_t on return)."""
    N, H = c.shape
    one = e.dtype.type(1)
    for n in range(N):
        for j in range(2 * H):                      # i, f
            gates[n, t, j] = _sigmoid_of(pre[n, j], e[n, j], one)
        for j in range(2 * H, 3 * H):               # g
            gates[n, t, j] = tanh_g[n, j - 2 * H]
        for j in range(3 * H, 4 * H):               # o
            gates[n, t, j] = _sigmoid_of(pre[n, j], e[n, j], one)
        for j in range(H):
            c[n, j] = gates[n, t, H + j] * c[n, j] + gates[n, t, j] * gates[n, t, 2 * H + j]


@njit(cache=True, nogil=True, error_model="numpy")
def lstm_hidden(gates, t, tc, c, out, tanh_c):
    """Step 3: h = o * tanh(c_t) into out[:, t, :H], c_t into out[:, t, H:] and tanh(c_t) into
    tanh_c[:, t] (kept for backward); gates (N, T, 4H), out (N, T, 2H), tanh_c (N, T, H)."""
    N, H = c.shape
    for n in range(N):
        for j in range(H):
            out[n, t, j] = gates[n, t, 3 * H + j] * tc[n, j]
            out[n, t, H + j] = c[n, j]
            tanh_c[n, t, j] = tc[n, j]


@njit(cache=True, nogil=True, error_model="numpy")
def lstm_step_backward(g, t, dh, dc, gates, tanh_c, c_prev, tp, cp0, dgates):
    """Backward of LSTM time step t. dh: the recurrent part of dL/dh_t (dh_{t+1}'s product with
    W_hh), to which g[:, t, :H] is added; dc: dL/dc_t carried from step t+1, to which
    g[:, t, H:] is added, overwritten with dL/dc_{t-1}. c_{t-1} is c_prev[:, tp, cp0:cp0 + H]
    (the forward output, or the initial state as (N, 1, H)). dgates[:, t] (dgates is
    (N, T, 4H)) receives dL/d(pre-activation gates). tanh_c is tanh(c), kept by the forward
    pass (no transcendental function here: the loop vectorises)."""
    N, H = dh.shape
    one = dh.dtype.type(1)      # arithmetic in the arrays' precision (float32: twice the lanes)
    for n in range(N):
        for j in range(H):
            i = gates[n, t, j]
            f = gates[n, t, H + j]
            gg = gates[n, t, 2 * H + j]
            o = gates[n, t, 3 * H + j]
            tc = tanh_c[n, t, j]
            d = dh[n, j] + g[n, t, j]
            dct = dc[n, j] + g[n, t, H + j] + d * o * (one - tc * tc)
            dgates[n, t, j] = dct * gg * i * (one - i)
            dgates[n, t, H + j] = dct * c_prev[n, tp, cp0 + j] * f * (one - f)
            dgates[n, t, 2 * H + j] = dct * i * (one - gg * gg)
            dgates[n, t, 3 * H + j] = d * tc * o * (one - o)
            dc[n, j] = dct * f


@njit(cache=True, nogil=True, error_model="numpy")
def gru_preactivations(xw, hw, e):
    """Step 1 of a GRU time step: hw[:, :2H] += xw[:, :2H] (the r and z pre-activations, in
    place) and e = -|those| (the sigmoids' exp argument, for NumPy's SIMD exp)."""
    N, H = e.shape[0], e.shape[1] // 2
    for n in range(N):
        for j in range(2 * H):
            v = hw[n, j] + xw[n, j]
            hw[n, j] = v
            e[n, j] = -abs(v)


@njit(cache=True, nogil=True, error_model="numpy")
def gru_candidate(xw, hw, e, gates, npre):
    """Step 2: with e = exp(-|pre|), r and z (stable sigmoids) and hn = hw[:, 2H:] go to gates
    (r, z, -, hn); npre = xn + r * hn, the candidate's pre-activation (for NumPy's tanh)."""
    N, H = npre.shape
    one = e.dtype.type(1)
    for n in range(N):
        for j in range(2 * H):
            gates[n, j] = _sigmoid_of(hw[n, j], e[n, j], one)
        for j in range(H):
            hn = hw[n, 2 * H + j]
            gates[n, 3 * H + j] = hn
            npre[n, j] = xw[n, 2 * H + j] + gates[n, j] * hn


@njit(cache=True, nogil=True, error_model="numpy")
def gru_output(gates, n_t, h_prev, h):
    """Step 3: with n_t = tanh(npre): gates[:, 2H:3H] = n_t, h = (1 - z) n + z h_prev."""
    N, H = h.shape
    for n in range(N):
        for j in range(H):
            nn = n_t[n, j]
            z = gates[n, H + j]
            gates[n, 2 * H + j] = nn
            h[n, j] = (1 - z) * nn + z * h_prev[n, j]


@njit(cache=True, nogil=True, error_model="numpy")
def gru_step_backward(dh, gates, h_prev, dxw, dhw, dh_prev):
    """dh: dL/dh_t (N, H). dxw, dhw (N, 3H) receive dL/d(xw), dL/d(hw); dh_prev (N, H) the
    direct part of dL/dh_{t-1} (z * dh; the caller adds dhw @ W_hh)."""
    N, H = dh.shape
    one = dh.dtype.type(1)
    for n in range(N):
        for j in range(H):
            r = gates[n, j]
            z = gates[n, H + j]
            nn = gates[n, 2 * H + j]
            hn = gates[n, 3 * H + j]
            d = dh[n, j]
            dan = d * (one - z) * (one - nn * nn)
            dar = dan * hn * r * (one - r)
            daz = d * (h_prev[n, j] - nn) * z * (one - z)
            dxw[n, j] = dar
            dxw[n, H + j] = daz
            dxw[n, 2 * H + j] = dan
            dhw[n, j] = dar
            dhw[n, H + j] = daz
            dhw[n, 2 * H + j] = dan * r
            dh_prev[n, j] = d * z


@njit(cache=True, nogil=True, error_model="numpy")
def rnn_preactivations(xw, hw, relu):
    """hw += xw, then ReLU in place when relu (a tanh is left to NumPy's SIMD loop)."""
    N, H = hw.shape
    zero = hw.dtype.type(0)
    for n in range(N):
        for j in range(H):
            a = xw[n, j] + hw[n, j]
            if relu:
                a = a if a > 0 else zero
            hw[n, j] = a


@njit(cache=True, nogil=True, error_model="numpy")
def rnn_step_backward(dh, h, relu, da):
    N, H = h.shape
    one = dh.dtype.type(1)
    for n in range(N):
        for j in range(H):
            if relu:
                da[n, j] = dh[n, j] if h[n, j] > 0 else 0.0
            else:
                da[n, j] = dh[n, j] * (one - h[n, j] * h[n, j])


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
