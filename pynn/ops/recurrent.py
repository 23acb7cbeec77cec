"""Recurrent ops: a whole sequence through one RNN / LSTM / GRU direction as ONE op, plus the
embedding lookup and a buffered slice.

Each recurrent op runs the whole sequence (batch-first x of shape (N, T, F)):

* one BLAS product projects every time step at once: XW = x.reshape(N*T, F) @ W_ih.T (+ biases);
* per step, the recurrent product h_{t-1} @ W_hh.T goes to BLAS into a reused (N, G) buffer, and
  one fused Numba kernel (pynn.kernels.recurrent) applies the gates and writes h_t (and c_t);
* backward through time runs the steps in reverse with the same buffers, and the weight
  gradients are again one BLAS product each over all time steps.

Every array comes from ``self.buffer(...)``: in a compiled Model nothing is allocated per step or
per call. Inputs: x, W_ih, W_hh, then b_ih, b_hh when attr ``bias`` is true, then the initial
state(s) when attr ``initial`` is true (h0, and c0 for the LSTM, each (N, H)); without them the
state starts at zero. attr ``reverse`` runs the sequence from the last step to the first (the
backward direction of a bidirectional layer); its outputs stay in time order.
"""
import numpy as np

from ..kernels.recurrent import (
    embedding_backward,
    gru_candidate,
    gru_output,
    gru_preactivations,
    gru_step_backward,
    lstm_cell,
    lstm_hidden,
    lstm_preactivations,
    lstm_step_backward,
    rnn_preactivations,
    rnn_step_backward,
)
from .base import Op


def _contiguous(a):
    return a if a.flags.c_contiguous else np.ascontiguousarray(a)


class _Recurrent(Op):
    """What the three recurrent ops share: unpacking inputs, the input projection, the shifted
    previous-hidden sequence and the weight gradients. Subclasses set `gates` (G = gates * H),
    and define `_steps` and `backward`.

    Derivative: backpropagation through time, stated by each subclass."""
    gates = 1
    n_states = 1

    def _unpack(self, x, w_ih, w_hh, rest):
        bias = self.attrs.get("bias", True)
        b_ih, b_hh = (rest[0], rest[1]) if bias else (None, None)
        states = rest[2:] if bias else rest
        if x.ndim != 3:
            raise ValueError(f"expected a batch-first sequence (batch, time, features), got "
                             f"shape {x.shape}")
        N, T, F = x.shape
        H = w_hh.shape[1]
        if w_ih.shape != (self.gates * H, F):
            raise ValueError(f"input has {F} features per step but W_ih has shape {w_ih.shape}")
        init = []
        for k in range(self.n_states):
            if self.attrs.get("initial", False):
                s = states[k]
                if s.shape != (N, H):
                    raise ValueError(f"initial state #{k} has shape {s.shape}, expected {(N, H)}")
                init.append(s)
            else:
                z = self.buffer(f"zero{k}", (N, H), x.dtype)
                z.fill(0)
                init.append(z)
        return b_ih, b_hh, init, N, T, F, H

    def _order(self, T):
        return range(T - 1, -1, -1) if self.attrs.get("reverse", False) else range(T)

    def _project(self, x, w_ih, N, T, F, G):
        self.x2 = self.contiguous("x_c", x).reshape(N * T, F)
        xw = self.buffer("xw", (N, T, G), x.dtype)
        np.matmul(self.x2, w_ih.T, out=xw.reshape(N * T, G))
        return xw

    def _hprev(self, h_seq, h0, N, T, H):
        """The sequence of previous hidden states h_{t-1} in time order (contiguous)."""
        hp = self.buffer("hprev", (N, T, H), h0.dtype)
        if self.attrs.get("reverse", False):
            hp[:, :T - 1] = h_seq[:, 1:]
            hp[:, T - 1] = h0
        else:
            hp[:, 1:] = h_seq[:, :T - 1]
            hp[:, 0] = h0
        return hp.reshape(N * T, H)

    def forward(self, x, w_ih, w_hh, *rest):
        b_ih, b_hh, init, N, T, F, H = self._unpack(x, w_ih, w_hh, rest)
        self.w_ih, self.w_hh, self.has_bias, self.shape = w_ih, w_hh, b_ih is not None, (N, T, F, H)
        self.init = init
        return self._steps(x, w_ih, w_hh, b_ih, b_hh, init, N, T, F, H)

    def _weight_grads(self, d_in, d_rec, N, T, F, H):
        """Gradients of x, W_ih, W_hh, b_ih, b_hh from dL/d(input projection) d_in and
        dL/d(recurrent projection) d_rec, both (N, T, G)."""
        G = self.gates * H
        dt = d_in.dtype
        d_in2, d_rec2 = d_in.reshape(N * T, G), d_rec.reshape(N * T, G)
        gx = gwi = gwh = gbi = gbh = None
        if self.needs(0):
            gx = self.buffer("gx", (N * T, F), dt)
            np.matmul(d_in2, self.w_ih, out=gx)
            gx = gx.reshape(N, T, F)
        if self.needs(1):
            gwi = self.buffer("gw_ih", (G, F), dt)
            np.matmul(d_in2.T, self.x2, out=gwi)
        if self.needs(2):
            gwh = self.buffer("gw_hh", (G, H), dt)
            np.matmul(d_rec2.T, self.hprev2, out=gwh)
        grads = [gx, gwi, gwh]
        if self.has_bias:
            if self.needs(3):
                gbi = np.sum(d_in2, axis=0, out=self.buffer("gb_ih", (G,), dt))
            if self.needs(4):
                gbh = np.sum(d_rec2, axis=0, out=self.buffer("gb_hh", (G,), dt))
            grads += [gbi, gbh]
        return grads


class LSTMSequence(_Recurrent):
    """One direction of one LSTM layer over a whole batch-first sequence (torch.nn.LSTM's math,
    gates i, f, g, o). Output (N, T, 2H): h_t in [..., :H] and c_t in [..., H:].

    Derivative: backpropagation through time: per step, with tc = tanh(c_t),
    dc_t += dh_t * o * (1 - tc^2); d(i, f, g, o) pre-activations = (dc_t * g * i(1-i),
    dc_t * c_{t-1} * f(1-f), dc_t * i * (1-g^2), dh_t * tc * o(1-o)) =: dA_t;
    dh_{t-1} += dA_t @ W_hh, dc_{t-1} = dc_t * f; then dW_ih = dA^T x, dW_hh = dA^T h_prev,
    db_ih = db_hh = sum dA, dx = dA @ W_ih, d(h0, c0) = the carried dh, dc."""
    gates = 4
    n_states = 2

    def _steps(self, x, w_ih, w_hh, b_ih, b_hh, init, N, T, F, H):
        xw = self._project(x, w_ih, N, T, F, 4 * H)
        if b_ih is not None:
            xw += b_ih
            xw += b_hh
        hw = self.buffer("hw", (N, 4 * H), x.dtype)
        out = self.buffer("out", (N, T, 2 * H), x.dtype)
        gates = self.buffer("gates", (N, T, 4 * H), x.dtype)
        tanh_c = self.buffer("tanh_c", (N, T, H), x.dtype)
        # exp and tanh run as NumPy's SIMD loops on contiguous scratch, the rest of each step in
        # three kernels that index the (N, T, .) buffers by t (pynn.kernels.recurrent); BLAS
        # reads a contiguous copy of W_hh^T (faster than the transposed view); nothing is
        # allocated per step.
        w_hh_t = self.buffer("w_hh_t", (H, 4 * H), x.dtype)
        np.copyto(w_hh_t, w_hh.T)
        e = self.buffer("sigmoid_e", (N, 4 * H), x.dtype)
        tg = self.buffer("tanh_g", (N, H), x.dtype)
        c = self.buffer("c_t", (N, H), x.dtype)
        tc = self.buffer("tanh_c_t", (N, H), x.dtype)
        h_prev = init[0]
        np.copyto(c, init[1])
        for t in self._order(T):
            np.matmul(h_prev, w_hh_t, out=hw)
            lstm_preactivations(xw, t, hw, e, tg)
            np.exp(e, out=e)
            np.tanh(tg, out=tg)
            lstm_cell(hw, e, tg, gates, t, c)                          # c = f c + i g
            np.tanh(c, out=tc)
            lstm_hidden(gates, t, tc, c, out, tanh_c)                  # h = o tanh(c)
            h_prev = out[:, t, :H]
        self.tanh_c = tanh_c
        self.out, self.gates_seq = out, gates
        self.hprev2 = self._hprev(out[:, :, :H], init[0], N, T, H)
        return out

    def backward(self, g):
        N, T, F, H = self.shape
        g = self.contiguous("g_c", g)
        dt = g.dtype
        dA = self.buffer("dA", (N, T, 4 * H), dt)
        dh = self.buffer("dh", (N, H), dt)
        dc = self.buffer("dc", (N, H), dt)
        dh.fill(0)
        dc.fill(0)
        order = list(self._order(T))
        out, w_hh, gates, tanh_c = self.out, self.w_hh, self.gates_seq, self.tanh_c
        c0 = self.contiguous("c0_c", self.init[1]).reshape(N, 1, H)
        for k in range(T - 1, -1, -1):
            t = order[k]
            if k == 0:       # c_{t-1} is the initial state, read as (N, 1, H)
                lstm_step_backward(g, t, dh, dc, gates, tanh_c, c0, 0, 0, dA)
            else:            # c_{t-1} is the forward output out[:, t_prev, H:]
                lstm_step_backward(g, t, dh, dc, gates, tanh_c, out, order[k - 1], H, dA)
            np.matmul(dA[:, t], w_hh, out=dh)
        grads = self._weight_grads(dA, dA, N, T, F, H)
        if self.attrs.get("initial", False):
            grads += [dh, dc]
        return tuple(grads)


class GRUSequence(_Recurrent):
    """One direction of one GRU layer over a whole batch-first sequence (torch.nn.GRU's math:
    r = s(xr + hr), z = s(xz + hz), n = tanh(xn + r * hn), h = (1 - z) n + z h_{t-1}, where
    x* = x W_i*^T + b_i* and h* = h_{t-1} W_h*^T + b_h*). Output (N, T, H).

    Derivative: backpropagation through time: per step dn = dh (1-z)(1-n^2),
    dr = dn * hn * r(1-r), dz = dh (h_{t-1} - n) z(1-z); d(x-projection) = (dr, dz, dn),
    d(h-projection) = (dr, dz, dn * r); dh_{t-1} = dh * z + d(h-projection) @ W_hh; then
    dW_ih = dX^T x, db_ih = sum dX, dW_hh = dH^T h_prev, db_hh = sum dH, dx = dX @ W_ih."""
    gates = 3

    def _steps(self, x, w_ih, w_hh, b_ih, b_hh, init, N, T, F, H):
        xw = self._project(x, w_ih, N, T, F, 3 * H)
        if b_ih is not None:
            xw += b_ih
        hw = self.buffer("hw", (N, 3 * H), x.dtype)
        out = self.buffer("out", (N, T, H), x.dtype)
        gates = self.buffer("gates", (N, T, 4 * H), x.dtype)
        # exp and tanh as NumPy's SIMD loops on contiguous scratch, between three kernels
        e = self.buffer("sigmoid_e", (N, 2 * H), x.dtype)
        cand = self.buffer("candidate", (N, H), x.dtype)
        h_prev = init[0]
        for t in self._order(T):
            np.matmul(h_prev, w_hh.T, out=hw)
            if b_hh is not None:
                hw += b_hh
            gru_preactivations(xw[:, t], hw, e)
            np.exp(e, out=e)
            gru_candidate(xw[:, t], hw, e, gates[:, t], cand)
            np.tanh(cand, out=cand)
            gru_output(gates[:, t], cand, h_prev, out[:, t])
            h_prev = out[:, t]
        self.out, self.gates_seq = out, gates
        self.hprev2 = self._hprev(out, init[0], N, T, H)
        return out

    def backward(self, g):
        N, T, F, H = self.shape
        g = self.contiguous("g_c", g)
        dt = g.dtype
        dX = self.buffer("dX", (N, T, 3 * H), dt)
        dH = self.buffer("dH", (N, T, 3 * H), dt)
        dh = self.buffer("dh", (N, H), dt)
        dhz = self.buffer("dhz", (N, H), dt)
        dh.fill(0)
        order = list(self._order(T))
        hprev = self.hprev2.reshape(N, T, H)
        for k in range(T - 1, -1, -1):
            t = order[k]
            dh += g[:, t]
            gru_step_backward(dh, self.gates_seq[:, t], hprev[:, t], dX[:, t], dH[:, t], dhz)
            np.matmul(dH[:, t], self.w_hh, out=dh)
            dh += dhz
        grads = self._weight_grads(dX, dH, N, T, F, H)
        if self.attrs.get("initial", False):
            grads += [dh]
        return tuple(grads)


class RNNSequence(_Recurrent):
    """One direction of one Elman RNN layer over a whole batch-first sequence:
    h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh), act = tanh or relu (attr
    ``nonlinearity``). Output (N, T, H).

    Derivative: backpropagation through time: dA_t = dh_t * act'(h_t) (1 - h^2 or h > 0),
    dh_{t-1} += dA_t @ W_hh; dW_ih = dA^T x, dW_hh = dA^T h_prev, db_ih = db_hh = sum dA,
    dx = dA @ W_ih, dh0 = the carried dh."""

    def _steps(self, x, w_ih, w_hh, b_ih, b_hh, init, N, T, F, H):
        xw = self._project(x, w_ih, N, T, F, H)
        if b_ih is not None:
            xw += b_ih
            xw += b_hh
        hw = self.buffer("hw", (N, H), x.dtype)
        out = self.buffer("out", (N, T, H), x.dtype)
        relu = self.attrs.get("nonlinearity", "tanh") == "relu"
        h_prev = init[0]
        for t in self._order(T):
            np.matmul(h_prev, w_hh.T, out=hw)
            rnn_preactivations(xw[:, t], hw, relu)
            if not relu:
                np.tanh(hw, out=hw)            # NumPy's SIMD tanh, on contiguous scratch
            out[:, t] = hw
            h_prev = out[:, t]
        self.out = out
        self.hprev2 = self._hprev(out, init[0], N, T, H)
        return out

    def backward(self, g):
        N, T, F, H = self.shape
        g = self.contiguous("g_c", g)
        dA = self.buffer("dA", (N, T, H), g.dtype)
        dh = self.buffer("dh", (N, H), g.dtype)
        dh.fill(0)
        relu = self.attrs.get("nonlinearity", "tanh") == "relu"
        for t in reversed(list(self._order(T))):
            dh += g[:, t]
            rnn_step_backward(dh, self.out[:, t], relu, dA[:, t])
            np.matmul(dA[:, t], self.w_hh, out=dh)
        grads = self._weight_grads(dA, dA, N, T, F, H)
        if self.attrs.get("initial", False):
            grads += [dh]
        return tuple(grads)


class Narrow(Op):
    """x[index] for a basic index (ints and slices), copied into a reused buffer so that the
    result is contiguous; the gradient is written into a reused buffer, zeroed once. attrs: index.

    Derivative: d/dx = zeros of x's shape with g placed at x[index]."""

    def forward(self, x):
        view = x[self.index]
        y = self.buffer("y", view.shape, x.dtype)
        np.copyto(y, view)
        self.in_shape = x.shape
        return y

    def backward(self, g):
        gx = self.buffer("gx", self.in_shape, g.dtype)
        # Only x[index] is ever written after the first fill: nothing downstream writes into a
        # gradient it is given, so a reused buffer stays zero elsewhere (q, k and v, the
        # thirds of one projection, then cost a third of the fill each).
        if self._buffers.get("gx_zero_outside") is not gx:
            gx.fill(0)
            self._buffers["gx_zero_outside"] = gx
        gx[self.index] = g
        return (gx,)


class Embedding(Op):
    """Rows of a weight table picked by integer indices: y[..., :] = W[idx[...], :].

    Inputs idx (any shape; integers, or floats holding integers as a compiled Model passes them)
    and W (V, D). attrs: padding_idx (None or a row that gets no gradient).

    Derivative: d/dW = scatter-add of g's rows into the rows named by idx (none into
    padding_idx); idx has no gradient."""

    def forward(self, idx, w):
        V = w.shape[0]
        flat = idx.reshape(-1)
        if idx.dtype.kind != "i":
            ints = self.buffer("idx", flat.shape, np.int64)
            np.copyto(ints, flat, casting="unsafe")
            if flat.size and not np.array_equal(ints, flat):
                raise ValueError("indices must be whole numbers")
            flat = ints
        if flat.size and (flat.min() < 0 or flat.max() >= V):
            raise IndexError(f"index out of range: the table has {V} rows, got indices in "
                             f"[{flat.min()}, {flat.max()}]")
        y = self.buffer("y", (flat.shape[0], w.shape[1]), w.dtype)
        np.take(w, flat, axis=0, out=y, mode="clip")    # checked above; "raise" would copy
        self.flat, self.w_shape = _contiguous(flat), w.shape
        self.out_shape = idx.shape + (w.shape[1],)
        return y.reshape(self.out_shape)

    def backward(self, g):
        gw = None
        if self.needs(1):
            gw = self.buffer("gw", self.w_shape, g.dtype)
            pad = -1 if self.padding_idx is None else self.padding_idx
            embedding_backward(self.flat.astype(np.int64, copy=False),
                               self.contiguous("g_c", g).reshape(-1, self.w_shape[1]), pad, gw)
        return None, gw
