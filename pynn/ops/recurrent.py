"""Recurrent ops: a whole sequence through one RNN / LSTM / GRU direction as ONE op, plus the
embedding lookup and a buffered slice.

Each recurrent op runs the whole sequence (batch-first x of shape (N, T, F)):

* one BLAS product projects every time step at once: XW = x.reshape(N*T, F) @ W_ih.T (+ biases);
* per step, the recurrent product h_{t-1} @ W_hh.T goes to BLAS into a reused (N, G) buffer, and
  small fused Numba kernels (pynn.kernels.recurrent) apply the gates and write h_t (and c_t);
* backward through time runs the steps in reverse with the same buffers, and the weight
  gradients are again one BLAS product each over all time steps.

The rows of a batch never meet until the weight gradients, so a big enough batch is cut in two
(``pynn.kernels.threads``): each core runs the whole time loop, forward and backward, for its
own rows, with one BLAS thread, and the two halves' weight gradients are added at the end.

Every array comes from ``self.buffer(...)``: in a compiled Model nothing is allocated per step or
per call. Inputs: x, W_ih, W_hh, then b_ih, b_hh when attr ``bias`` is true, then the initial
state(s) when attr ``initial`` is true (h0, and c0 for the LSTM, each (N, H)); without them the
state starts at zero. attr ``reverse`` runs the sequence from the last step to the first (the
backward direction of a bidirectional layer); its outputs stay in time order.
"""
import numpy as np

from ..kernels.blas import gemm_for
from ..kernels.recurrent import (
    add_rows,
    embedding_backward,
    gru_sequence,
    gru_sequence_backward,
    gru_step,
    gru_step_backward,
    lstm_sequence,
    lstm_sequence_backward,
    lstm_step,
    lstm_step_backward,
    rnn_sequence,
    rnn_sequence_backward,
    rnn_step,
    rnn_step_backward,
)
from ..kernels.threads import slices, split_batch
from .base import Op

#: Elements the step kernels touch per gate value and time step, roughly (the projections, the
#: exp/tanh scratch and the saved gates): what a batch's work is measured in before it is split.
STEP_TOUCHES = 8


def _contiguous(a):
    return a if a.flags.c_contiguous else np.ascontiguousarray(a)


class _Recurrent(Op):
    """What the three recurrent ops share: unpacking inputs, the input projection, the shifted
    previous-hidden sequence, the batch split and the weight gradients. Subclasses set `gates`
    (G = gates * H) and `fold_hidden_bias` (b_hh added to the projection once, not per step),
    and define `_allocate` (the whole batch's saved buffers, made before the split), `_steps`
    and `_through_time` (one slice of rows each).

    Derivative: backpropagation through time, stated by each subclass."""
    gates = 1
    n_states = 1
    fold_hidden_bias = True

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

    def _loop_buffers(self, T, H, dt):
        """What the time-loop kernels read besides the sequence: a contiguous copy of W_hh^T
        (BLAS reads it faster than the transposed view) for the step products, W_hh with unit
        stride along its rows for backward's, and the steps' order (_order(T)) as an array."""
        self.w_hh_t = self.buffer("w_hh_t", (H, self.gates * H), dt)
        np.copyto(self.w_hh_t, self.w_hh.T)
        self.w_hh_c = self.contiguous("w_hh_c", self.w_hh)
        self.order = self.buffer("order", (T,), np.int64)
        self.order[:] = self._order(T)

    def _order(self, T):
        return range(T - 1, -1, -1) if self.attrs.get("reverse", False) else range(T)

    def _steps_back(self, T):
        """The time steps for backward, latest first: (t, t_prev, carry) with t_prev the step
        before t in the sequence's order (None at the first step) and carry whether dh goes on
        through W_hh after t (not after the first step, unless the initial state h0 needs
        its gradient)."""
        order, need_dh0 = list(self._order(T)), self._needs_state(0)
        for i in range(T - 1, -1, -1):
            yield order[i], (order[i - 1] if i else None), bool(i) or need_dh0

    def _hprev(self, h_seq, h0, hp):
        """hp = the previous hidden states h_{t-1} of h_seq (rows, T, H) in time order."""
        T = hp.shape[1]
        if self.attrs.get("reverse", False):
            hp[:, :T - 1] = h_seq[:, 1:]
            hp[:, T - 1] = h0
        else:
            hp[:, 1:] = h_seq[:, :T - 1]
            hp[:, 0] = h0

    def forward(self, x, w_ih, w_hh, *rest):
        b_ih, b_hh, init, N, T, F, H = self._unpack(x, w_ih, w_hh, rest)
        self.w_ih, self.w_hh, self.has_bias, self.shape = w_ih, w_hh, b_ih is not None, (N, T, F, H)
        self.init = init
        G = self.gates * H
        x2 = self.x2 = self.contiguous("x_c", x).reshape(N * T, F)
        xw = self.buffer("xw", (N, T, G), x.dtype)
        hprev = self.buffer("hprev", (N, T, H), x.dtype)
        self.hprev2 = hprev.reshape(N * T, H)
        self._allocate(N, T, H, x.dtype)
        self.parts = slices(N, STEP_TOUCHES * N * T * G)

        no_bias = self.buffer("no_bias", (0,), x.dtype)

        def run(k, n0, n1):
            """Rows [n0, n1) of the batch, the whole sequence, on a thread of its own."""
            xw_k = xw[n0:n1]
            xw2 = xw_k.reshape(-1, G)
            np.matmul(x2[n0 * T:n1 * T], w_ih.T, out=xw2)
            if b_ih is not None:       # b_hh too, in the same pass, when it is folded in
                add_rows(xw2, b_ih, b_hh if self.fold_hidden_bias else no_bias)
            h_seq = self._steps(k, slice(n0, n1), xw_k, b_hh, [s[n0:n1] for s in init])
            self._hprev(h_seq, init[0][n0:n1], hprev[n0:n1])

        split_batch(run, N, self.parts)
        return self.out

    def backward(self, g):
        N, T, F, H = self.shape
        g = self.contiguous("g_c", g)
        G, dt = self.gates * H, g.dtype
        d_in, d_rec = self._allocate_grads(N, T, H, dt)
        gx = self.buffer("gx", (N * T, F), dt) if self.needs(0) else None

        def run(k, n0, n1):
            """Rows [n0, n1): backward through time, then this slice's share of the weight
            gradients (its own buffers, k) and its rows of dx."""
            self._through_time(k, slice(n0, n1), g)
            d_in2 = d_in[n0:n1].reshape(-1, G)
            d_rec2 = d_rec[n0:n1].reshape(-1, G)
            rows = slice(n0 * T, n1 * T)
            if gx is not None:
                np.matmul(d_in2, self.w_ih, out=gx[rows])
            if self.needs(1):
                np.matmul(d_in2.T, self.x2[rows], out=self.buffer(f"gw_ih{k}", (G, F), dt))
            if self.needs(2):
                np.matmul(d_rec2.T, self.hprev2[rows], out=self.buffer(f"gw_hh{k}", (G, H), dt))
            if self.has_bias:
                gb_ih = None
                if self.needs(3):
                    gb_ih = self.sum_rows(f"gb_ih{k}", d_in2, f"ones{k}")
                if self.needs(4):
                    if gb_ih is not None and d_rec is d_in:      # the LSTM's: the same sum
                        np.copyto(self.buffer(f"gb_hh{k}", (G,), dt), gb_ih)
                    else:
                        self.sum_rows(f"gb_hh{k}", d_rec2, f"ones{k}")

        split_batch(run, N, self.parts)
        grads = [None if gx is None else gx.reshape(N, T, F)]
        names = ["gw_ih", "gw_hh"] + (["gb_ih", "gb_hh"] if self.has_bias else [])
        for i, name in enumerate(names, start=1):
            grads.append(self._sum_parts(name) if self.needs(i) else None)
        if self.attrs.get("initial", False):
            grads += [s if self._needs_state(i) else None for i, s in enumerate(self.state_grads)]
        return tuple(grads)

    def _needs_state(self, i):
        """Does initial state #i (an input after the weights and biases) need a gradient?"""
        return (self.attrs.get("initial", False)
                and self.needs(3 + 2 * self.attrs.get("bias", True) + i))

    def _sum_parts(self, name):
        """The slices' partial sums of one weight gradient, added into slice 0's buffer."""
        total = self._buffers[f"{name}0"]
        for k in range(1, self.parts):
            total += self._buffers[f"{name}{k}"]
        return total


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

    def _allocate(self, N, T, H, dt):
        self.out = self.buffer("out", (N, T, 2 * H), dt)
        self.gates_seq = self.buffer("gates", (N, T, 4 * H), dt)
        self.tanh_c = self.buffer("tanh_c", (N, T, H), dt)
        self._loop_buffers(T, H, dt)

    def _steps(self, k, r, xw, b_hh, init):
        # With BLAS reachable from Numba (pynn.kernels.blas), one kernel runs the whole time
        # loop without the GIL; else the same step kernel after NumPy's product, step by step.
        # Nothing is allocated per step.
        out, gates, tanh_c = self.out[r], self.gates_seq[r], self.tanh_c[r]
        m, T, H, dt = xw.shape[0], self.shape[1], self.shape[3], xw.dtype
        hw = self.buffer(f"hw{k}", (m, 4 * H), dt)
        c = self.buffer(f"c_t{k}", (m, H), dt)
        h0 = self.contiguous(f"h0_c{k}", init[0])
        np.copyto(c, init[1])
        gemm = gemm_for(dt)
        if gemm is not None:
            lstm_sequence(gemm, xw, self.w_hh_t, h0, c, self.order, hw, gates, out, tanh_c)
            return out[:, :, :H]
        h_prev = h0
        for t in self._order(T):
            np.matmul(h_prev, self.w_hh_t, out=hw)
            lstm_step(xw, t, hw, gates, c, out, tanh_c)          # c = f c + i g, h = o tanh(c)
            h_prev = out[:, t, :H]
        return out[:, :, :H]

    def _allocate_grads(self, N, T, H, dt):
        self.dA = self.buffer("dA", (N, T, 4 * H), dt)
        self.state_grads = [self.buffer("dh", (N, H), dt), self.buffer("dc", (N, H), dt)]
        return self.dA, self.dA

    def _through_time(self, k, r, g):
        N, T, F, H = self.shape
        dh, dc = (s[r] for s in self.state_grads)
        dh.fill(0)
        dc.fill(0)
        g, dA, out, gates, tanh_c = g[r], self.dA[r], self.out[r], self.gates_seq[r], self.tanh_c[r]
        c0 = self.contiguous(f"c0_c{k}", self.init[1][r]).reshape(-1, 1, H)
        gemm = gemm_for(dh.dtype)
        if gemm is not None:      # (the first step's product for dh only if h0 needs it)
            lstm_sequence_backward(gemm, g, dh, dc, gates, tanh_c, out, c0, self.order, dA,
                                   self.w_hh_c, self._needs_state(0))
            return
        for t, t_prev, carry in self._steps_back(T):
            if t_prev is None:   # c_{t-1} is the initial state, read as (rows, 1, H)
                lstm_step_backward(g, t, dh, dc, gates, tanh_c, c0, 0, 0, dA)
            else:                # c_{t-1} is the forward output out[:, t_prev, H:]
                lstm_step_backward(g, t, dh, dc, gates, tanh_c, out, t_prev, H, dA)
            if carry:
                np.matmul(dA[:, t], self.w_hh, out=dh)


class GRUSequence(_Recurrent):
    """One direction of one GRU layer over a whole batch-first sequence (torch.nn.GRU's math:
    r = s(xr + hr), z = s(xz + hz), n = tanh(xn + r * hn), h = (1 - z) n + z h_{t-1}, where
    x* = x W_i*^T + b_i* and h* = h_{t-1} W_h*^T + b_h*). Output (N, T, H).

    Derivative: backpropagation through time: per step dn = dh (1-z)(1-n^2),
    dr = dn * hn * r(1-r), dz = dh (h_{t-1} - n) z(1-z); d(x-projection) = (dr, dz, dn),
    d(h-projection) = (dr, dz, dn * r); dh_{t-1} = dh * z + d(h-projection) @ W_hh; then
    dW_ih = dX^T x, db_ih = sum dX, dW_hh = dH^T h_prev, db_hh = sum dH, dx = dX @ W_ih."""
    gates = 3
    fold_hidden_bias = False        # r multiplies h W_hn^T + b_hn: b_hh goes in every step

    def _allocate(self, N, T, H, dt):
        self.out = self.buffer("out", (N, T, H), dt)
        self.gates_seq = self.buffer("gates", (N, T, 4 * H), dt)
        self._loop_buffers(T, H, dt)

    def _steps(self, k, r, xw, b_hh, init):
        # one kernel per step (or one call for the whole loop, with BLAS reachable from
        # Numba); nothing allocated per step
        out, gates = self.out[r], self.gates_seq[r]
        m, H, dt = xw.shape[0], self.shape[3], xw.dtype
        hw = self.buffer(f"hw{k}", (m, 3 * H), dt)
        h = self.buffer(f"h_t{k}", (m, H), dt)          # h_{t-1}, then h_t: see gru_step
        np.copyto(h, init[0])
        b = self.buffer("no_bias", (0,), dt) if b_hh is None else b_hh
        gemm = gemm_for(dt)
        if gemm is not None:
            gru_sequence(gemm, xw, self.w_hh_t, b, h, self.order, hw, gates, out)
            return out
        for t in self._order(self.shape[1]):
            np.matmul(h, self.w_hh_t, out=hw)
            gru_step(xw, t, hw, b, gates, h, out)
        return out

    def _allocate_grads(self, N, T, H, dt):
        self.dX = self.buffer("dX", (N, T, 3 * H), dt)
        self.dH = self.buffer("dH", (N, T, 3 * H), dt)
        self.state_grads = [self.buffer("dh", (N, H), dt)]
        return self.dX, self.dH

    def _through_time(self, k, r, g):
        N, T, F, H = self.shape
        dh = self.state_grads[0][r]
        dh.fill(0)
        g, dX, dH, gates = g[r], self.dX[r], self.dH[r], self.gates_seq[r]
        dhz = self.buffer(f"dhz{k}", dh.shape, dh.dtype)
        hprev = self.hprev2.reshape(N, T, H)[r]
        gemm = gemm_for(dh.dtype)
        if gemm is not None:
            gru_sequence_backward(gemm, g, dh, gates, hprev, self.order, dX, dH, dhz,
                                  self.w_hh_c, self._needs_state(0))
            return
        for t, _, carry in self._steps_back(T):
            gru_step_backward(g, t, dh, gates, hprev, dX, dH, dhz)
            if carry:
                np.matmul(dH[:, t], self.w_hh_c, out=dh)
                dh += dhz


class RNNSequence(_Recurrent):
    """One direction of one Elman RNN layer over a whole batch-first sequence:
    h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh), act = tanh or relu (attr
    ``nonlinearity``). Output (N, T, H).

    Derivative: backpropagation through time: dA_t = dh_t * act'(h_t) (1 - h^2 or h > 0),
    dh_{t-1} += dA_t @ W_hh; dW_ih = dA^T x, dW_hh = dA^T h_prev, db_ih = db_hh = sum dA,
    dx = dA @ W_ih, dh0 = the carried dh."""

    def _relu(self):
        return self.attrs.get("nonlinearity", "tanh") == "relu"

    def _allocate(self, N, T, H, dt):
        self.out = self.buffer("out", (N, T, H), dt)
        self._loop_buffers(T, H, dt)

    def _steps(self, k, r, xw, b_hh, init):
        out = self.out[r]
        m, H, dt = xw.shape[0], self.shape[3], xw.dtype
        hw = self.buffer(f"hw{k}", (m, H), dt)
        h = self.buffer(f"h_t{k}", (m, H), dt)          # h_{t-1}, then h_t: see rnn_step
        np.copyto(h, init[0])
        relu = self._relu()
        gemm = gemm_for(dt)
        if gemm is not None:
            rnn_sequence(gemm, xw, self.w_hh_t, h, self.order, hw, out, relu)
            return out
        for t in self._order(self.shape[1]):
            np.matmul(h, self.w_hh_t, out=hw)
            rnn_step(xw, t, hw, h, out, relu)
        return out

    def _allocate_grads(self, N, T, H, dt):
        self.dA = self.buffer("dA", (N, T, H), dt)
        self.state_grads = [self.buffer("dh", (N, H), dt)]
        return self.dA, self.dA

    def _through_time(self, k, r, g):
        T = self.shape[1]
        dh = self.state_grads[0][r]
        dh.fill(0)
        g, dA, out = g[r], self.dA[r], self.out[r]
        relu = self._relu()
        gemm = gemm_for(dh.dtype)
        if gemm is not None:
            rnn_sequence_backward(gemm, g, dh, out, self.order, dA, self.w_hh_c, relu,
                                  self._needs_state(0))
            return
        for t, _, carry in self._steps_back(T):
            rnn_step_backward(g, t, dh, out, relu, dA)
            if carry:
                np.matmul(dA[:, t], self.w_hh_c, out=dh)


class Narrow(Op):
    """x[index] for a basic index (ints and slices), copied into a reused buffer so that the
    result is contiguous; the gradient is written into a reused buffer, zeroed once. attrs: index.

    attr ``fused`` (set by the plan for multi-head attention's q/k/v thirds, see
    ScaledDotProductAttention.fuse_packed): the attention reads its third of x itself, and this
    op passes x and the gradient through.

    Derivative: d/dx = zeros of x's shape with g placed at x[index]."""
    fused = False

    def forward(self, x):
        if self.fused:
            return x
        view = x[self.index]
        y = self.buffer("y", view.shape, x.dtype)
        np.copyto(y, view)
        self.in_shape = x.shape
        return y

    def backward(self, g):
        if self.fused:
            return (g,)
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
