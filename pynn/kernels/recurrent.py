"""Numba kernels for recurrent cells: one time step of the gates, forward and backward.

Layouts (N = batch, H = hidden size). Every array is 2-D over (N, gate features); the time-step
arrays may be strided views (rows of a (N, T, F) buffer), which Numba reads in place.

* LSTM: ``xw`` (N, 4H) is x_t @ W_ih.T + b_ih, ``hw`` (N, 4H) is h_{t-1} @ W_hh.T + b_hh, gates
  in torch's order i, f, g, o. ``gates`` (N, 4H) keeps the activated gates for backward.
* GRU: ``xw`` (N, 3H) holds x_t @ W_ih.T + b_ih, ``hw`` (N, 3H) h_{t-1} @ W_hh.T + b_hh, gates r,
  z, n; ``gates`` (N, 4H) keeps r, z, n and the (W_hn h + b_hn) term.
* RNN: ``a`` (N, H) = xw + hw, activated in place to h (tanh or relu).

The backward kernels turn dL/dh_t (and dL/dc_t for the LSTM) into the pre-activation gradients of
the step, which the caller multiplies by the weights with BLAS.
"""
import math

from numba import njit


@njit(cache=True, inline="always")
def _sigmoid(x):
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


@njit(cache=True)
def lstm_step_forward(xw, hw, c_prev, gates, c, h):
    N, H = c.shape
    for n in range(N):
        for j in range(H):
            i = _sigmoid(xw[n, j] + hw[n, j])
            f = _sigmoid(xw[n, H + j] + hw[n, H + j])
            g = math.tanh(xw[n, 2 * H + j] + hw[n, 2 * H + j])
            o = _sigmoid(xw[n, 3 * H + j] + hw[n, 3 * H + j])
            cn = f * c_prev[n, j] + i * g
            gates[n, j] = i
            gates[n, H + j] = f
            gates[n, 2 * H + j] = g
            gates[n, 3 * H + j] = o
            c[n, j] = cn
            h[n, j] = o * math.tanh(cn)


@njit(cache=True)
def lstm_step_backward(dh, dc, gates, c, c_prev, dgates):
    """dh, dc: dL/dh_t, dL/dc_t (N, H); dc is overwritten with dL/dc_{t-1}. dgates (N, 4H)
    receives dL/d(pre-activation gates)."""
    N, H = dh.shape
    for n in range(N):
        for j in range(H):
            i = gates[n, j]
            f = gates[n, H + j]
            g = gates[n, 2 * H + j]
            o = gates[n, 3 * H + j]
            tc = math.tanh(c[n, j])
            d = dh[n, j]
            dct = dc[n, j] + d * o * (1.0 - tc * tc)
            dgates[n, j] = dct * g * i * (1.0 - i)
            dgates[n, H + j] = dct * c_prev[n, j] * f * (1.0 - f)
            dgates[n, 2 * H + j] = dct * i * (1.0 - g * g)
            dgates[n, 3 * H + j] = d * tc * o * (1.0 - o)
            dc[n, j] = dct * f


@njit(cache=True)
def gru_step_forward(xw, hw, h_prev, gates, h):
    N, H = h.shape
    for n in range(N):
        for j in range(H):
            r = _sigmoid(xw[n, j] + hw[n, j])
            z = _sigmoid(xw[n, H + j] + hw[n, H + j])
            hn = hw[n, 2 * H + j]
            nn = math.tanh(xw[n, 2 * H + j] + r * hn)
            gates[n, j] = r
            gates[n, H + j] = z
            gates[n, 2 * H + j] = nn
            gates[n, 3 * H + j] = hn
            h[n, j] = (1.0 - z) * nn + z * h_prev[n, j]


@njit(cache=True)
def gru_step_backward(dh, gates, h_prev, dxw, dhw, dh_prev):
    """dh: dL/dh_t (N, H). dxw, dhw (N, 3H) receive dL/d(xw), dL/d(hw); dh_prev (N, H) the
    direct part of dL/dh_{t-1} (z * dh; the caller adds dhw @ W_hh)."""
    N, H = dh.shape
    for n in range(N):
        for j in range(H):
            r = gates[n, j]
            z = gates[n, H + j]
            nn = gates[n, 2 * H + j]
            hn = gates[n, 3 * H + j]
            d = dh[n, j]
            dan = d * (1.0 - z) * (1.0 - nn * nn)
            dar = dan * hn * r * (1.0 - r)
            daz = d * (h_prev[n, j] - nn) * z * (1.0 - z)
            dxw[n, j] = dar
            dxw[n, H + j] = daz
            dxw[n, 2 * H + j] = dan
            dhw[n, j] = dar
            dhw[n, H + j] = daz
            dhw[n, 2 * H + j] = dan * r
            dh_prev[n, j] = d * z


@njit(cache=True)
def rnn_step_forward(xw, hw, relu, h):
    N, H = h.shape
    for n in range(N):
        for j in range(H):
            a = xw[n, j] + hw[n, j]
            if relu:
                h[n, j] = a if a > 0 else 0.0
            else:
                h[n, j] = math.tanh(a)


@njit(cache=True)
def rnn_step_backward(dh, h, relu, da):
    N, H = h.shape
    for n in range(N):
        for j in range(H):
            if relu:
                da[n, j] = dh[n, j] if h[n, j] > 0 else 0.0
            else:
                da[n, j] = dh[n, j] * (1.0 - h[n, j] * h[n, j])


@njit(cache=True)
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
