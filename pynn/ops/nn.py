"""Neural-network ops: fused dense and convolution, pooling, dropout, batch norm.

These are the hot ops of a model. They write into buffers from ``self.buffer(...)``, so inside a
compiled Model (one op object per step, called again and again) nothing is allocated after the
first call at a given shape. Matrix products go to BLAS (np.matmul with out=); everything
elementwise or index-shuffling runs in the Numba kernels of pynn.kernels.
"""
import contextlib
import threading

import numpy as np

from ..kernels import threads
from ..kernels.activation import (
    ACT_NONE,
    ACTIVATION_CODES,
    bias_act_backward,
    bias_act_backward_cnp,
    bias_act_forward,
    bias_act_forward_cnp,
)
from ..kernels.conv import (
    SMALL_WEIGHT_GRAD,
    col2im,
    conv_output_shape,
    im2col,
    weight_grad_small,
)
from ..kernels.conv_pool import (
    FUSABLE_ACTIVATIONS,
    bias_act_maxpool2x2_backward,
    bias_act_maxpool2x2_forward,
)
from ..kernels.norm import batchnorm_backward, batchnorm_forward
from ..kernels.pool import (
    avgpool2d_backward,
    avgpool2d_forward,
    maxpool2d_backward,
    maxpool2d_forward,
    pool_output_size,
)
from ..kernels.threads import slices, split_batch
from ..kernels.winograd import (
    WEIGHT_TRANSFORM,
    tile_bases,
    winograd_input,
    winograd_input_adjoint,
    winograd_maxpool_grad,
    winograd_output,
    winograd_output_grad,
    winograd_output_maxpool,
)
from ..random import rng
from .base import Op
from .elementwise import Relu

#: BatchNorm's kernels stream memory: a batch is split across threads (by channels) above
#: BN_MIN_WORK elements, or above BN_SPREAD_MIN_WORK inside a compiled pass that splits its
#: batches: each core then wrote half of the activations, which lie in both cores' caches, and
#: one core reading them all was two to three times slower than on data of its own (the
#: ResNet's batch norms, `python benchmarks/op_times.py resnet-fmnist --per-step`).
BN_MIN_WORK = 1 << 20
BN_SPREAD_MIN_WORK = 1 << 16


def _bn_min_work():
    return BN_SPREAD_MIN_WORK if threads.pass_splits() else BN_MIN_WORK


_NO_BIAS = {np.dtype(np.float32): np.zeros(0, np.float32), np.dtype(np.float64): np.zeros(0)}
_WEIGHT_TRANSFORM = {np.dtype(np.float32): WEIGHT_TRANSFORM.astype(np.float32)}


def _dense_rows(x, w_t, b, y, act):
    """y = act(x @ w_t + b) for rows of a batch, into y; w_t is the weight as (in, out) (the
    transposed view of W, or a copy of it in that layout); b is (F,) or (0,) for no bias."""
    np.matmul(x, w_t, out=y)
    if act != ACT_NONE:
        bias_act_forward(y, b, act)
    elif b.shape[0]:                # one NumPy pass, and no kernel to compile
        np.add(y, b, out=y)


_constant = threading.local()     # .block: the _Block of the active constant_weights()


class _Block:
    """A constant_weights block: its rows, and the (in, out) weight copies made in it."""

    def __init__(self, rows):
        self.rows, self.copies = rows, {}

    def transposed(self, w):
        """A contiguous copy of w.T, made at the block's first call for w (every plan of the
        block shares it: predict's kept plan and the one of its short last batch)."""
        entry = self.copies.get(id(w))
        if entry is None or entry[0] is not w:
            entry = self.copies[id(w)] = (w, np.ascontiguousarray(w.T))
        return entry[1]


@contextlib.contextmanager
def constant_weights(rows):
    """A block of forward passes (in this thread) during which no parameter changes, over
    `rows` samples in all: Model.predict runs its batches in one, and evaluate unless a callback
    runs between them. A compiled Linear whose weight is a parameter then multiplies by a
    contiguous (in, out) copy of W, made once per block. In OpenBLAS, x @ W_copy took 0.55-1.00
    of the time of x @ W.T (the transposed view) at every shape of 32 or more outputs timed, and
    0.61-1.66 of it at 10 outputs (two runs of `python benchmarks/linear_layouts.py`); the copy
    pays for itself over some hundreds of rows."""
    previous = getattr(_constant, "block", None)
    _constant.block = _Block(rows)
    try:
        yield
    finally:
        _constant.block = previous


class Linear(Op):
    """y = act(x @ W.T + b), bias and activation fused in one pass.

    Inputs x (..., in), W (out, in) and optionally b (out,). attrs: activation (None, "relu",
    "sigmoid" or "tanh"). Other activations are separate ops after this one.
    Derivative: with gz = g * act'(z), z = x W^T + b: d/dx = gz W, d/dW = gz^T x,
    d/db = sum of gz over rows
    """

    #: Inside a compiled pass that splits its batches (BLAS then runs on one thread: see
    #: threads.begin_pass), products of at least this many multiply-adds are split across the
    #: threads too, by rows of their outputs; elsewhere BLAS uses every thread itself.
    SPLIT_MIN_WORK = 1 << 22

    #: Inside constant_weights(rows) with at least this many rows, a compiled Linear whose
    #: weight is a parameter with at least CONSTANT_MIN_OUT rows (output features) multiplies
    #: by a contiguous (in, out) copy of it (see constant_weights). At 10 outputs the copy
    #: ran as often slower as faster (`python benchmarks/linear_layouts.py`).
    CONSTANT_MIN_ROWS = 2048
    CONSTANT_MIN_OUT = 16

    #: Set by the compiled plan when input 1 (W) is a parameter of the model.
    weight_is_param = False

    def _slices(self, rows, work):
        return threads.slices(rows, work, self.SPLIT_MIN_WORK) if threads.pass_splits() else 1

    def _weight_t(self, w):
        """W (a parameter) as (in, out): the transposed view, or inside a constant_weights block
        of enough rows the block's contiguous copy of it."""
        block = getattr(_constant, "block", None)
        if (block is None or block.rows < self.CONSTANT_MIN_ROWS
                or w.shape[0] < self.CONSTANT_MIN_OUT):
            return w.T
        return block.transposed(w)

    def forward(self, x, w, b=None):
        self.in_shape = x.shape
        x2 = self.contiguous("x_c", x).reshape(-1, x.shape[-1])
        y = self.buffer("y", (x2.shape[0], w.shape[0]), x2.dtype)
        self.has_bias = b is not None
        b = _NO_BIAS[y.dtype] if b is None else b
        act = ACTIVATION_CODES[self.activation]
        w_t = self._weight_t(w) if self.weight_is_param else w.T

        def rows(k, n0, n1):
            _dense_rows(x2[n0:n1], w_t, b, y[n0:n1], act)

        M, K = x2.shape
        T = self._slices(M, M * K * w.shape[0])
        if T == 1:                  # (the small products of an eager MLP: no slicing)
            _dense_rows(x2, w_t, b, y, act)
        else:
            split_batch(rows, M, T)
        self.x2, self.w, self.y = x2, w, y
        return y.reshape(x.shape[:-1] + (w.shape[0],))

    def backward(self, g):
        g2 = self.contiguous("g_c", g).reshape(self.y.shape)
        act = ACTIVATION_CODES[self.activation]
        if act == ACT_NONE:         # gz is g itself: no copy
            gz = g2
        else:
            gz = self.buffer("gz", self.y.shape, g2.dtype)
            bias_act_backward(g2, self.y, act, gz, _NO_BIAS[g2.dtype])
        gb = self.sum_rows("gb", gz) if self.has_bias and self.needs(2) else _NO_BIAS[g2.dtype]
        x2, w = self.x2, self.w
        gx = self.buffer("gx", x2.shape, g2.dtype) if self.needs(0) else None
        gw = self.buffer("gw", w.shape, g2.dtype) if self.needs(1) else None
        (M, K), O = x2.shape, w.shape[0]
        T = self._slices(min(M, O), M * K * O)

        def products(k, n0, n1):
            """Slice k of both products: rows [m0, m1) of gx, rows [o0, o1) of gw."""
            if gx is not None:
                m0, m1 = M * n0 // T, M * n1 // T
                np.matmul(gz[m0:m1], w, out=gx[m0:m1])
            if gw is not None:
                o0, o1 = O * n0 // T, O * n1 // T
                np.matmul(gz[:, o0:o1].T, x2, out=gw[o0:o1])   # a strided view BLAS reads

        if T == 1:                  # (the small products of an eager MLP: no slicing)
            if gx is not None:
                np.matmul(gz, w, out=gx)
            if gw is not None:
                np.matmul(gz.T, x2, out=gw)
        else:
            split_batch(products, T, T)
        if gx is not None:
            gx = gx.reshape(self.in_shape)
        return (gx, gw, gb) if self.has_bias else (gx, gw)


class Conv2d(Op):
    """2-D convolution on NCHW input as im2col + BLAS products, bias and activation fused.

    Inputs x (N, C, H, W), W (O, C/groups, kh, kw), optionally b (O,); or, for a 1-D
    convolution, x (N, C, L) and W (O, C/groups, k), taken as H = kh = 1. attrs: stride, padding
    (top, left), activation; optional padding_end (bottom, right; default: as padding),
    dilation (default 1) and groups (default 1), all pairs but groups. Layouts: cols
    (C*kh*kw, N*OH*OW), z = W2d @ cols (O, N*OH*OW), one product per group of channels.

    The products run a block of images at a time, sized so that the block's slice of cols and
    its z (or gz, gcols) stay in cache: z and gz never exist for the whole batch. Training keeps
    the whole batch's cols for the weight gradient when they are small (at most RECOMPUTE_BYTES
    per thread's slice); bigger cols are not kept: backward unfolds each block of x again, into
    a buffer that stays in cache, which costs less than writing the whole batch's cols to memory
    and reading them back (and holds an activation less). Forward-only calls (inference)
    unfold each block on its own and keep nothing.

    In a compiled Model, a conv whose output feeds only a MaxPool2d(2) gets that pool op as
    attr ``pool`` (``fuse_pool``): it then writes the pooled output (and the argmax) straight
    from z, and its backward takes the pooled gradient (pynn.kernels.conv_pool).

    A weight with few entries (at most kernels.conv.SMALL_WEIGHT_GRAD, as a first layer on a
    gray image has) gets its gradient from the kernel weight_grad_small instead of BLAS.

    A 3x3, stride-1 float32 conv with at least WINOGRAD_MIN_CHANNELS input and output
    channels, identity or ReLU and an even output, fused with its pool (the README CNN's second
    conv) or with at least WINOGRAD_UNPOOLED_MIN_PAIRS channel pairs, runs Winograd's
    F(2x2, 3x3) instead (pynn.kernels.winograd: 16 products per 2x2 output tile and channel
    pair instead of 36; with a pool each tile is one window), a block of WINOGRAD_BLOCK_BYTES
    at a time. Its results equal im2col's up to float32 rounding, not bit for bit, and an inf
    in the input can come out as NaN where im2col gives +-inf (the transforms subtract: inf -
    inf); a NaN reaches the same pooled outputs. ``WINOGRAD = False`` on the class (or the op)
    turns it off.

    Derivative: with gz = g * act'(z): d/dx = col2im(W^T gz), d/dW = gz cols^T,
    d/db = sum of gz over N, H, W
    """

    #: Blocks of images are sized to about this many bytes of cols + z.
    BLOCK_BYTES = 1 << 20
    #: Training keeps a slice's cols up to this many bytes, and unfolds bigger ones again in
    #: backward (ResNet-fmnist's step 1.5 ms faster; at 512 KiB MNIST-CNN's is 15% slower)
    RECOMPUTE_BYTES = 2 << 20
    #: Winograd F(2x2, 3x3) for a conv that qualifies (see uses_winograd)
    WINOGRAD = True
    WINOGRAD_MIN_CHANNELS = 16
    #: without a fused pool, only convs with at least this many channel pairs C*O (the
    #: ResNet's 24 -> 24 at 14x14 were no faster: see the README)
    WINOGRAD_UNPOOLED_MIN_PAIRS = 2048
    #: Winograd's blocks: about this many bytes of patches, transformed patches, products and
    #: scratch (per image (32*C + 28*O) * OH*OW/4 elements)
    WINOGRAD_BLOCK_BYTES = 2 << 20
    winograd = False
    padding_end = None
    dilation = (1, 1)
    groups = 1
    pool = None

    def uses_winograd(self, x_shape, w_shape, dtype, OH, OW):
        """Does forward take the Winograd path for this input (see the class docstring)?"""
        end = self.padding_end
        C, O = x_shape[1], w_shape[0]
        return (self.WINOGRAD and len(x_shape) == 4
                and tuple(w_shape[2:]) == (3, 3) and tuple(self.stride) == (1, 1)
                and tuple(self.dilation) == (1, 1) and self.groups == 1
                and (end is None or tuple(end) == tuple(self.padding))
                and ACTIVATION_CODES[self.activation] in FUSABLE_ACTIVATIONS
                and OH % 2 == 0 and OW % 2 == 0 and np.dtype(dtype) in _WEIGHT_TRANSFORM
                and min(C, O) >= self.WINOGRAD_MIN_CHANNELS
                and (self.pool is not None or C * O >= self.WINOGRAD_UNPOOLED_MIN_PAIRS))

    def can_fuse_pool(self, pool, out_ndim):
        """Can this conv write `pool`'s output itself? (a 2-D conv with identity or ReLU, and
        a 2x2, stride-2, unpadded floor-mode max-pool)"""
        return (out_ndim == 4 and ACTIVATION_CODES[self.activation] in FUSABLE_ACTIVATIONS
                and type(pool) is MaxPool2d and tuple(pool.kernel_size) == (2, 2)
                and tuple(pool.stride) == (2, 2) and tuple(pool.padding) == (0, 0)
                and not pool.ceil_mode)

    def fuse_pool(self, pool):
        """From now on, compute `pool` of this conv's output too; `pool` passes it through."""
        self.pool, pool.fused = pool, True

    def _blocks(self, s0, s1, rows, O, P, itemsize):
        """(n0, n1) image ranges covering images [s0, s1), each about BLOCK_BYTES of cols + z."""
        block = max(1, min(s1 - s0, self.BLOCK_BYTES // ((rows + O) * P * itemsize)))
        return [(n0, min(s1, n0 + block)) for n0 in range(s0, s1, block)]

    def _geometry(self, kh, kw):
        """(kh, kw, sh, sw, ph, pw) and (dh, dw, ph_end, pw_end) for the kernels."""
        end = (-1, -1) if self.padding_end is None else tuple(self.padding_end)
        return (kh, kw, *self.stride, *self.padding), (*self.dilation, *end)

    _ONE_GROUP = ((slice(None), slice(None)),)

    def _group_slices(self, O, rows):
        """(output-channel rows of W2d and z, rows of cols) of each group."""
        G = self.groups
        if G == 1:
            return self._ONE_GROUP
        Og, Rg = O // G, rows // G
        return [(slice(g * Og, (g + 1) * Og), slice(g * Rg, (g + 1) * Rg)) for g in range(G)]

    def placeholder(self, x, w, b=None):
        # a conv whose pool the plan fuses never runs the unfused bias + activation kernel
        if self.groups * w.shape[1] != x.shape[1]:
            return self.forward(x, w, b)         # forward's own error
        one_d = x.ndim == 3
        if one_d:                                # (N, C, L) as (N, C, 1, L), as forward
            x, w = x[:, :, None, :], w[:, :, None, :]
        geom, geom_end = self._geometry(*w.shape[2:])
        OH, OW = conv_output_shape(*x.shape[2:], *geom, *geom_end)
        y = np.zeros((x.shape[0], w.shape[0], OH, OW), x.dtype)
        return y[:, :, 0, :] if one_d else y

    def forward(self, x, w, b=None):
        self.one_d = x.ndim == 3
        if self.one_d:                       # (N, C, L) as (N, C, 1, L)
            x, w = x[:, :, None, :], w[:, :, None, :]
        x = self.contiguous("x_c", x)
        N, C, H, W = x.shape
        O, _, kh, kw = w.shape
        geom, geom_end = self._geometry(kh, kw)
        OH, OW = conv_output_shape(H, W, *geom, *geom_end)
        P = OH * OW
        w2 = w.reshape(O, -1)
        rows = C * kh * kw
        groups = self._group_slices(O, rows)
        b = _NO_BIAS[x.dtype] if b is None else b
        act = ACTIVATION_CODES[self.activation]
        # Forward-only calls (inference: nothing will call backward) keep no cols; training
        # keeps them unless backward is to unfold x again (recompute).
        forward_only = self.needs_input_grad and not any(self.needs_input_grad)
        self.winograd = self.uses_winograd(x.shape, w.shape, x.dtype, OH, OW)
        if self.winograd:
            return self._winograd_forward(x, w, b, act, forward_only, OH, OW,
                                          geom[4:] + geom_end[2:])
        T = slices(N, N * (rows + O) * P)
        self.recompute = rows * N * P * x.itemsize > T * self.RECOMPUTE_BYTES
        keep_cols = not forward_only and not self.recompute
        pooled = self.pool is not None
        if pooled:
            y = self.buffer("pooled", (N, O, OH // 2, OW // 2), x.dtype)
            idx = self.buffer("pool_idx", (0, 0, 0, 0) if forward_only else y.shape, np.int32)
        else:
            y = self.buffer("y", (N, O, OH, OW), x.dtype)

        def run(k, s0, s1):
            """Images [s0, s1): slice k of the batch, on a thread of its own."""
            if keep_cols:
                cols = self.buffer(f"cols_batch{k}", (rows, (s1 - s0) * P), x.dtype)
                im2col(x[s0:s1], *geom, cols, *geom_end)
            for n0, n1 in self._blocks(s0, s1, rows, O, P, x.itemsize):
                m = n1 - n0
                if keep_cols:
                    # a strided view: BLAS reads it in place
                    cols_b = cols[:, (n0 - s0) * P:(n1 - s0) * P]
                else:
                    cols_b = self.buffer(f"cols{k}_block{m}", (rows, m * P), x.dtype)
                    im2col(x[n0:n1], *geom, cols_b, *geom_end)
                z = self.buffer(f"z{k}_block{m}", (O, m * P), x.dtype)
                for o, r in groups:
                    np.matmul(w2[o], cols_b[r], out=z[o])
                if pooled:
                    plane = self.buffer(f"plane{k}", (P,), x.dtype)
                    bias_act_maxpool2x2_forward(z, b, act, OH, OW, y[n0:n1], idx[n0:n1], plane)
                else:
                    bias_act_forward_cnp(z, b, act, y[n0:n1].reshape(m, O, P))

        split_batch(run, N, T)
        self.parts = T
        if not forward_only:
            self.x = x if self.recompute else None      # backward unfolds it again
            self.x_shape, self.w2, self.w_shape, self.y = x.shape, w2, w.shape, y
            self.has_bias = b.shape[0] != 0
            self.z_shape = (N, O, OH, OW)
            if pooled:
                self.idx = idx
        return y[:, :, 0, :] if self.one_d else y

    def _sum_slices(self, name, T):
        """The buffers name0 .. name{T-1} the T slices of a backward wrote, added into name0."""
        total = self._buffers[f"{name}0"]
        for k in range(1, T):
            total += self._buffers[f"{name}{k}"]
        return total

    def _winograd_blocks(self, s0, s1, C, O, TT, itemsize):
        """(n0, n1) image ranges covering [s0, s1), each about WINOGRAD_BLOCK_BYTES of D, V, M
        and F (C*16 + 16*C + 16*O + 12*O elements per tile)."""
        per_image = (32 * C + 28 * O) * TT * itemsize
        block = max(1, min(s1 - s0, self.WINOGRAD_BLOCK_BYTES // per_image))
        return [(n0, min(s1, n0 + block)) for n0 in range(s0, s1, block)]

    def _winograd_patches(self, k, x, fill=True):
        """Slice k's buffers D (C*16, T) (4x4 patches), V (16, C, T) and scratch E (17, T) for
        the images x; with fill, V holds the transformed patches of x (padded as
        self.pads: top, left, bottom, right)."""
        m, C = x.shape[:2]
        T = m * self.tiles
        D = self.buffer(f"wD{k}_block{m}", (C * 16, T), x.dtype)
        V = self.buffer(f"wV{k}_block{m}", (16, C, T), x.dtype)
        E = self.buffer(f"wE{k}_block{m}", (17, T), x.dtype)
        if fill:
            ph, pw, ph_end, pw_end = self.pads
            im2col(x, 4, 4, 2, 2, ph, pw, D, 1, 1, ph_end, pw_end)
            winograd_input(D, V, E[:16])
        return D, V, E

    def _winograd_forward(self, x, w, b, act, forward_only, OH, OW, pads):
        N, C = x.shape[:2]
        O = w.shape[0]
        TH, TW = OH // 2, OW // 2
        self.tiles, self.pads = TH * TW, pads
        U = self.buffer("wU", (16, O, C), x.dtype)
        np.matmul(_WEIGHT_TRANSFORM[x.dtype], w.reshape(O * C, 9).T, out=U.reshape(16, O * C))
        pooled = self.pool is not None
        if pooled:
            bases = tile_bases(TH, TW, OW)
            y = self.buffer("pooled", (N, O, TH, TW), x.dtype)
            idx = self.buffer("pool_idx", (0, 0, 0, 0) if forward_only else y.shape, np.int32)
        else:
            y, idx = self.buffer("y", (N, O, OH, OW), x.dtype), None

        def run(k, s0, s1):
            for n0, n1 in self._winograd_blocks(s0, s1, C, O, self.tiles, x.itemsize):
                _, V, _ = self._winograd_patches(k, x[n0:n1])
                M = self.buffer(f"wM{k}_block{n1 - n0}", (16, O, V.shape[2]), x.dtype)
                np.matmul(U, V, out=M)
                F = self.buffer(f"wF{k}_block{n1 - n0}", (12, M[0].size), x.dtype)
                if pooled:
                    winograd_output_maxpool(M, b, act, bases, OW, y[n0:n1], idx[n0:n1], F)
                else:
                    winograd_output(M, b, act, y[n0:n1], F)

        T = slices(N, N * (16 * C + 16 * O) * self.tiles)
        split_batch(run, N, T)
        self.parts = T
        if not forward_only:
            self.x, self.U, self.y, self.idx, self.out_width = x, U, y, idx, OW
            self.x_shape, self.w_shape = x.shape, w.shape
            self.has_bias = b.shape[0] != 0
        return y

    def _winograd_backward(self, g):
        N, C = self.x_shape[:2]
        O = self.w_shape[0]
        g = self.contiguous("g_c", g).reshape(self.y.shape)
        ph, pw, ph_end, pw_end = self.pads
        act = ACTIVATION_CODES[self.activation]
        pooled = self.pool is not None
        OW = self.out_width
        bases = tile_bases(self.y.shape[2], self.y.shape[3], OW) if pooled else None
        need_gb, need_gw = self.has_bias and self.needs(2), self.needs(1)
        gx = self.buffer("gx", self.x_shape, g.dtype) if self.needs(0) else None
        UT = self.U.transpose(0, 2, 1)
        T = self.parts

        def run(k, s0, s1):
            """Images [s0, s1): slice k. Its first block writes the slice's gb and dU, later
            blocks write *_block and are added in."""
            gb = gb_b = dU = dU_b = _NO_BIAS[g.dtype]
            if need_gb:
                gb = self.buffer(f"gb{k}", (O,), g.dtype)
                gb_b = self.buffer(f"gb{k}_block", (O,), g.dtype)
            if need_gw:
                dU = self.buffer(f"wdU{k}", (16, O, C), g.dtype)
                dU_b = self.buffer(f"wdU{k}_block", (16, O, C), g.dtype)
            for i, (n0, n1) in enumerate(self._winograd_blocks(s0, s1, C, O, self.tiles,
                                                                g.itemsize)):
                m = n1 - n0
                Tb = m * self.tiles
                # M of this block size is dead once forward has used it: Mg reuses it
                Mg = self.buffer(f"wM{k}_block{m}", (16, O, Tb), g.dtype)
                F = self.buffer(f"wF{k}_block{m}", (12, O * Tb), g.dtype)
                if pooled:
                    winograd_maxpool_grad(g[n0:n1], self.y[n0:n1], self.idx[n0:n1], act, bases,
                                          OW, Mg, gb_b if i else gb, F)
                else:
                    winograd_output_grad(g[n0:n1], self.y[n0:n1], act, Mg, gb_b if i else gb, F)
                if i and gb.size:
                    gb += gb_b
                D, V, E = self._winograd_patches(k, self.x[n0:n1], need_gw)
                if need_gw:
                    # dU = Mg @ V^T with V^T contiguous: BLAS is ~1.6x faster than on a
                    # transposed view at these shapes (long inner axis, small output)
                    VT = self.buffer(f"wVT{k}_block{m}", (16, Tb, C), g.dtype)
                    np.copyto(VT, V.transpose(0, 2, 1))
                    np.matmul(Mg, VT, out=dU_b if i else dU)
                    if i:
                        dU += dU_b
                if gx is not None:
                    np.matmul(UT, Mg, out=V)             # dV, into V's buffer
                    winograd_input_adjoint(V, D, E)      # dD, into D's
                    col2im(D, 4, 4, 2, 2, ph, pw, gx[n0:n1], 1, 1, ph_end, pw_end)

        split_batch(run, N, T)
        gw = gb = None
        if need_gw:
            dU = self._sum_slices("wdU", T)
            gw = self.buffer("gw", self.w_shape, g.dtype)
            np.matmul(dU.reshape(16, O * C).T, _WEIGHT_TRANSFORM[g.dtype],
                      out=gw.reshape(O * C, 9))
        if need_gb:
            gb = self._sum_slices("gb", T)
        return (gx, gw, gb) if self.has_bias else (gx, gw)

    def backward(self, g):
        if self.winograd:
            return self._winograd_backward(g)
        N, O, OH, OW = self.z_shape
        P = OH * OW
        g = self.contiguous("g_c", g).reshape(self.y.shape)
        pooled = self.pool is not None
        rows = self.w2.shape[1] * self.groups
        _, _, kh, kw = self.w_shape
        geom, geom_end = self._geometry(kh, kw)
        groups = self._group_slices(O, rows)
        G, Rg, Og = self.groups, rows // self.groups, O // self.groups
        act = ACTIVATION_CODES[self.activation]
        T = self.parts                         # the batch is cut as forward cut it
        need_gb, need_gw = self.has_bias and self.needs(2), self.needs(1)
        gx = self.buffer("gx", self.x_shape, g.dtype) if self.needs(0) else None
        # a small weight (a first layer's) has its gradient from pynn's kernel, not BLAS
        small_gw = Rg * Og <= SMALL_WEIGHT_GRAD

        def run(k, s0, s1):
            """Images [s0, s1): slice k. Its first block writes the slice's gb and gw_t, later
            blocks write *_block and are added in."""
            cols = None if self.recompute else self._buffers[f"cols_batch{k}"]
            c0 = c1 = 0
            gb = gb_b = _NO_BIAS[g.dtype]      # (0,): the kernel skips the bias gradient
            gw_t = gw_t_b = None
            if need_gb:
                gb = self.buffer(f"gb{k}", (O,), g.dtype)
                gb_b = self.buffer(f"gb{k}_block", (O,), g.dtype)
            if need_gw:
                # gw = gz @ cols.T, computed transposed (cols @ gz.T) and summed over blocks:
                # BLAS reduces the long N*OH*OW axis faster with cols as the left operand.
                gw_t = self.buffer(f"gw_t{k}", (G, Rg, Og), g.dtype)
                gw_t_b = self.buffer(f"gw_t{k}_block", (G, Rg, Og), g.dtype)
            for i, (n0, n1) in enumerate(self._blocks(s0, s1, rows, O, P, g.itemsize)):
                m = n1 - n0
                if gw_t is not None and self.recompute:       # this block's cols, again
                    cols = self.buffer(f"cols{k}_block{m}", (rows, m * P), g.dtype)
                    im2col(self.x[n0:n1], *geom, cols, *geom_end)
                    c0, c1 = 0, m * P
                elif gw_t is not None:                          # the block's part of cols
                    c0, c1 = (n0 - s0) * P, (n1 - s0) * P
                # z of this block size is dead once forward has written y: gz reuses it.
                gz = self.buffer(f"z{k}_block{m}", (O, m * P), g.dtype)
                if pooled:
                    bias_act_maxpool2x2_backward(g[n0:n1], self.y[n0:n1], self.idx[n0:n1],
                                                 act, OH, OW, gz, gb_b if i else gb)
                else:
                    bias_act_backward_cnp(g[n0:n1].reshape(m, O, P),
                                          self.y[n0:n1].reshape(m, O, P), act, gz,
                                          gb_b if i else gb)
                if i and gb.size:
                    gb += gb_b
                if gw_t is not None:
                    out = gw_t_b if i else gw_t
                    for q, (o, r) in enumerate(groups):
                        if small_gw:
                            weight_grad_small(cols[r], c0, c1, gz[o], out[q])
                        else:
                            np.matmul(cols[r, c0:c1], gz[o].T, out=out[q])
                    if i:
                        gw_t += gw_t_b
                if gx is not None:
                    gcols = self.buffer(f"gcols{k}_block{m}", (rows, m * P), g.dtype)
                    for o, r in groups:
                        np.matmul(self.w2[o].T, gz[o], out=gcols[r])
                    col2im(gcols, *geom, gx[n0:n1], *geom_end)

        split_batch(run, N, T)
        gw = gb = None
        if need_gw:
            gw_t = self._sum_slices("gw_t", T)
            gw = self.buffer("gw", self.w2.shape, g.dtype)
            np.copyto(gw.reshape(G, Og, Rg), gw_t.transpose(0, 2, 1))
            gw = gw.reshape(self.w_shape)
        if need_gb:
            gb = self._sum_slices("gb", T)
        if self.one_d:
            gx = None if gx is None else gx[:, :, 0, :]
            gw = None if gw is None else gw[:, :, 0, :]
        return (gx, gw, gb) if self.has_bias else (gx, gw)


class ConvTranspose2d(Op):
    """Transposed 2-D convolution (the adjoint of Conv2d with the same geometry), as in
    torch.nn.ConvTranspose2d: cols = W2d.T @ x per group, then col2im into the output.

    Inputs x (N, Cin, H, W), W (Cin, Cout/groups, kh, kw), optionally b (Cout,). attrs: stride,
    padding, output_padding, dilation (pairs), groups. OH = (H - 1)*sh - 2*ph + dh*(kh - 1) +
    output_padding_h + 1. Layouts: xT (Cin, N*H*W), cols (Cout*kh*kw, N*H*W).

    Derivative: d/dx = W2d @ im2col(g) per group, d/dW = xT @ im2col(g).T per group,
    d/db = g summed over N, OH, OW"""

    def forward(self, x, w, b=None):
        x = self.contiguous("x_c", x)
        N, Cin, H, W = x.shape
        _, Cout_g, kh, kw = w.shape
        G = self.groups
        Cout = Cout_g * G
        (sh, sw), (ph, pw), (dh, dw) = self.stride, self.padding, self.dilation
        oph, opw = self.output_padding
        OH = (H - 1) * sh - 2 * ph + dh * (kh - 1) + oph + 1
        OW = (W - 1) * sw - 2 * pw + dw * (kw - 1) + opw + 1
        if OH <= 0 or OW <= 0:
            raise ValueError(f"output size {OH}x{OW} is not positive")
        self.geom = (kh, kw, sh, sw, ph, pw)
        self.geom_end = (dh, dw, -1, -1)
        HW = H * W
        xT = self.buffer("xT", (Cin, N * HW), x.dtype)
        np.copyto(xT.reshape(Cin, N, HW), x.reshape(N, Cin, HW).transpose(1, 0, 2))
        w2 = w.reshape(Cin, Cout_g * kh * kw)
        self.groups_ = [(slice(g * (Cin // G), (g + 1) * (Cin // G)),
                         slice(g * Cout_g * kh * kw, (g + 1) * Cout_g * kh * kw))
                        for g in range(G)]
        cols = self.buffer("cols", (Cout * kh * kw, N * HW), x.dtype)
        for i, r in self.groups_:
            np.matmul(w2[i].T, xT[i], out=cols[r])
        y = self.buffer("y", (N, Cout, OH, OW), x.dtype)
        col2im(cols, *self.geom, y, *self.geom_end)
        if b is not None:
            y += b.reshape(1, -1, 1, 1)
        self.xT, self.w2, self.x_shape, self.w_shape = xT, w2, x.shape, w.shape
        self.has_bias = b is not None
        return y

    def backward(self, g):
        g = self.contiguous("g_c", g)
        N, Cin, H, W = self.x_shape
        HW = H * W
        cols = self.buffer("cols", (self.w2.shape[1] * self.groups, N * HW), g.dtype)
        im2col(g, *self.geom, cols, *self.geom_end)
        gx = gw = gb = None
        if self.needs(0):
            gxT = self.buffer("gxT", (Cin, N * HW), g.dtype)
            for i, r in self.groups_:
                np.matmul(self.w2[i], cols[r], out=gxT[i])
            gx = self.buffer("gx", self.x_shape, g.dtype)
            np.copyto(gx.reshape(N, Cin, HW), gxT.reshape(Cin, N, HW).transpose(1, 0, 2))
        if self.needs(1):
            gw2 = self.buffer("gw", self.w2.shape, g.dtype)
            for i, r in self.groups_:
                np.matmul(self.xT[i], cols[r].T, out=gw2[i])
            gw = gw2.reshape(self.w_shape)
        if self.has_bias and self.needs(2):
            gb = g.sum(axis=(0, 2, 3))
        return (gx, gw, gb) if self.has_bias else (gx, gw)


class _Pool2d(Op):
    """attrs: kernel_size, stride, padding (pairs), ceil_mode (default False). Input (N, C, H, W),
    or (N, C, L) for 1-D pooling (taken as H = 1, with kernel_size (1, k)).

    Derivative: d/dx = g sent back to the window elements each output was made from (see
    MaxPool2d and AvgPool2d)"""
    ceil_mode = False

    def _as_4d(self, x):
        self.one_d = x.ndim == 3
        return self.contiguous("x_c", x[:, :, None, :] if self.one_d else x)

    def _out_shape(self, x):
        N, C, H, W = x.shape
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        size = pool_output_size.py_func      # the kernels' own, run as Python (no compile)
        OH = size(H, kh, sh, ph, self.ceil_mode)
        OW = size(W, kw, sw, pw, self.ceil_mode)
        if OH <= 0 or OW <= 0:
            raise ValueError(f"window {kh}x{kw} (padding {ph},{pw}) does not fit in input "
                             f"{H}x{W}")
        return N, C, OH, OW

    def _out(self, y):
        return y[:, :, 0, :] if self.one_d else y

    def _grad_4d(self, g):
        return self.contiguous("g_c", g[:, :, None, :] if self.one_d else g)

    @staticmethod
    def _split(kernel, big):
        """kernel(n0, n1) over images [n0, n1), the batch cut across the threads (planes are
        independent); `big` is the larger of the arrays it touches."""
        N = big.shape[0]
        split_batch(lambda k, n0, n1: kernel(n0, n1), N, slices(N, big.size))


class MaxPool2d(_Pool2d):
    """Max over each window; remembers the argmax of each window. attr ``fused``: the conv
    before it computes the pool (Conv2d.fuse_pool), and this op passes values and gradients
    through.

    Derivative: d/dx = g added at the argmax of each window, 0 elsewhere"""
    fused = False

    def forward(self, x):
        if self.fused:
            return x
        x = self._as_4d(x)
        out_shape = self._out_shape(x)
        y = self.buffer("y", out_shape, x.dtype)
        # Forward-only (inference) calls keep no argmax: an empty idx tells the kernel so.
        forward_only = self.needs_input_grad and not any(self.needs_input_grad)
        # int32 indices (positions inside one plane) halve the index traffic of int64.
        self.idx = self.buffer("idx", (0, 0, 0, 0) if forward_only else out_shape, np.int32)
        idx = self.idx
        self._split(lambda n0, n1: maxpool2d_forward(
            x[n0:n1], *self.kernel_size, *self.stride, *self.padding, y[n0:n1], idx[n0:n1],
            self.ceil_mode), x)
        self.x_shape = x.shape
        return self._out(y)

    def placeholder(self, x):
        if self.fused:
            return x
        return self._out(np.zeros(self._out_shape(self._as_4d(x)), x.dtype))

    def backward(self, g):
        if self.fused:
            return (g,)
        gx = self.buffer("gx", self.x_shape, g.dtype)
        g = self._grad_4d(g)
        self._split(lambda n0, n1: maxpool2d_backward(g[n0:n1], self.idx[n0:n1], gx[n0:n1]), gx)
        return (self._out(gx),)


class AvgPool2d(_Pool2d):
    """Mean over each window; attrs also count_include_pad (default True).

    Derivative: d/dx = g / divisor added to every input element of each window"""
    count_include_pad = True

    def forward(self, x):
        x = self._as_4d(x)
        y = self.buffer("y", self._out_shape(x), x.dtype)
        self._split(lambda n0, n1: avgpool2d_forward(
            x[n0:n1], *self.kernel_size, *self.stride, *self.padding, y[n0:n1], self.ceil_mode,
            self.count_include_pad), x)
        self.x_shape = x.shape
        return self._out(y)

    def backward(self, g):
        gx = self.buffer("gx", self.x_shape, g.dtype)
        g = self._grad_4d(g)
        self._split(lambda n0, n1: avgpool2d_backward(
            g[n0:n1], *self.kernel_size, *self.stride, *self.padding, gx[n0:n1], self.ceil_mode,
            self.count_include_pad), gx)
        return (self._out(gx),)


class Dropout(Op):
    """Zero each element with probability p and scale the rest by 1/(1-p), while
    `module.training` is true; the identity otherwise. attrs: p, module.
    Derivative: d/dx = g * mask / (1 - p) in training, g in eval
    """

    def forward(self, x):
        self.active = self.module.training and self.p > 0
        if not self.active:
            return x
        u = self.buffer("u", x.shape, x.dtype if x.dtype.kind == "f" else np.float64)
        rng().random(out=u, dtype=u.dtype)
        self.mask = self.buffer("mask", x.shape, x.dtype)
        np.greater_equal(u, self.p, out=self.mask, casting="unsafe")
        self.mask *= 1.0 / (1.0 - self.p)
        out = self.buffer("out", x.shape, x.dtype)
        return np.multiply(x, self.mask, out=out)

    def backward(self, g):
        if not self.active:
            return (g,)
        return (np.multiply(g, self.mask, out=self.buffer("gx", g.shape, g.dtype)),)


class BatchNorm(Op):
    """Batch normalisation over every axis but 1 (features/channels), as BatchNorm1d/2d.

    Inputs x, and gamma, beta when the layer is affine. attrs: module (holds .training, .eps,
    .momentum and the running_mean / running_var arrays it updates in training mode; running_mean
    None means no running statistics: batch statistics in both modes). Full-size arrays live in
    buffers.

    Derivative: with batch statistics, gxhat = g * gamma and
    d/dx = inv_std / n * (n * gxhat - sum(gxhat) - xhat * sum(gxhat * xhat)); with running
    statistics d/dx = gxhat * inv_std; d/dgamma = sum(g * xhat), d/dbeta = sum(g)."""

    relu = False        # the plan fused the ReLU after it (fuse_relu): y = relu(bn(x))

    def can_fuse_relu(self, op):
        """Can this BatchNorm apply `op`, the ReLU that reads its output, itself?"""
        return type(op) is Relu and type(self) is BatchNorm

    def fuse_relu(self, op):
        """From now on, output relu(bn(x)) and take the ReLU's backward; `op` passes through."""
        self.relu, op.fused = True, True

    def forward(self, x, gamma=None, beta=None):
        y = self._forward(x, gamma, beta)
        if self.relu:
            if not self.kernel_path:          # the kernel applies it; here, in NumPy
                y = np.maximum(y, 0, out=self.buffer("y", x.shape, x.dtype))
            self.y_out = y
        return y

    def _forward(self, x, gamma, beta):
        m = self.module
        axes = (0,) + tuple(range(2, x.ndim))
        shape = (1, -1) + (1,) * (x.ndim - 2)
        C = x.shape[1]
        track = m.running_mean is not None
        self.train_mode = m.training or not track
        self.kernel_path = self._kernel_path(x)
        if self.kernel_path:
            return self._forward_kernel(x, gamma, beta, axes, shape, track)
        xhat = self.buffer("xhat", x.shape, x.dtype)
        y = self.buffer("y", x.shape, x.dtype)
        if self.train_mode:
            mean = np.mean(x, axis=axes, out=self.buffer("mean", (C,), x.dtype))
            np.subtract(x, mean.reshape(shape), out=xhat)
            # the biased variance as np.var computes it: the mean of squared deviations
            var = np.mean(np.square(xhat, out=y), axis=axes, out=self.buffer("var", (C,), x.dtype))
            if track and m.training:
                self._update_running(mean, var, x.size // C)
        else:
            mean, var = m.running_mean, m.running_var
            np.subtract(x, mean.astype(x.dtype).reshape(shape), out=xhat)
        self.inv_std = (1.0 / np.sqrt(var + m.eps)).astype(x.dtype).reshape(shape)
        xhat *= self.inv_std
        self.xhat, self.axes, self.affine = xhat, axes, gamma is not None
        if not self.affine:
            return xhat
        self.gamma = gamma.reshape(shape)
        np.multiply(xhat, self.gamma, out=y)
        y += beta.reshape(shape)
        return y

    def _update_running(self, mean, var, n):
        """The running statistics move towards this batch's (the variance unbiased, n values)."""
        m = self.module
        m.running_mean *= 1 - m.momentum
        m.running_mean += m.momentum * mean
        m.running_var *= 1 - m.momentum
        m.running_var += m.momentum * var * (n / max(n - 1, 1))

    def _forward_kernel(self, x, gamma, beta, axes, shape, track):
        """Training mode: statistics, xhat and y in two passes per channel (pynn.kernels.norm),
        the channels cut across the threads for big batches."""
        m = self.module
        N, C = x.shape[:2]
        x3 = self.contiguous("x_c", x).reshape(N, C, -1)
        mean = self.buffer("mean", (C,), np.float64)
        var = self.buffer("var", (C,), np.float64)
        inv_std = self.buffer("inv_std", (C,), x.dtype)
        y = self.buffer("y", x.shape, x.dtype)
        self.affine = gamma is not None
        empty = _NO_BIAS[x.dtype]
        gm, bt = (gamma, beta) if self.affine else (empty, empty)
        split_batch(lambda k, c0, c1: batchnorm_forward(
            x3, m.eps, gm, bt, c0, c1, mean, var, inv_std, y.reshape(x3.shape), self.relu),
            C, slices(C, x.size, _bn_min_work()))
        if track and m.training:
            self._update_running(mean, var, x.size // C)
        # backward recomputes xhat from x, mean and inv_std (no xhat buffer)
        self.x3, self.mean, self.inv_std, self.axes = x3, mean, inv_std.reshape(shape), axes
        if self.affine:
            self.gamma = gamma.reshape(shape)
        return y

    def _kernel_path(self, x):
        """Batch statistics of floats go through pynn.kernels.norm (forward and backward)."""
        return self.train_mode and x.dtype.kind == "f" and x.ndim >= 2

    def backward(self, g):
        if self.kernel_path:
            return self._backward_kernel(g)
        if self.relu:                           # the ReLU's backward: 0 where y <= 0
            dead = np.less_equal(self.y_out, 0, out=self.buffer("dead", g.shape, np.bool_))
            g_relu = self.buffer("g_relu", g.shape, g.dtype)
            np.copyto(g_relu, g)
            np.copyto(g_relu, 0, where=dead)
            g = g_relu
        axes, xhat, shape = self.axes, self.xhat, self.inv_std.shape
        C = g.shape[1]
        tmp = self.buffer("tmp", g.shape, g.dtype)
        if self.affine:
            ggamma = np.sum(np.multiply(g, xhat, out=tmp), axis=axes,
                            out=self.buffer("ggamma", (C,), g.dtype))
            gbeta = np.sum(g, axis=axes, out=self.buffer("gbeta", (C,), g.dtype))
            gxhat = np.multiply(g, self.gamma, out=tmp)
        else:
            np.copyto(tmp, g)
            gxhat = tmp
        gx = self.buffer("gx", g.shape, g.dtype)
        if self.train_mode:
            # gx = inv_std / n * (n * gxhat - sum(gxhat) - xhat * sum(gxhat * xhat))
            n = g.size // C
            s1 = np.sum(gxhat, axis=axes, out=self.buffer("s1", (C,), g.dtype)).reshape(shape)
            s2 = np.sum(np.multiply(gxhat, xhat, out=gx), axis=axes,
                        out=self.buffer("s2", (C,), g.dtype)).reshape(shape)
            gxhat *= n
            gxhat -= s1
            gxhat -= np.multiply(xhat, s2, out=gx)
            np.multiply(gxhat, self.inv_std / n, out=gx)
        else:
            np.multiply(gxhat, self.inv_std, out=gx)
        return (gx, ggamma, gbeta) if self.affine else (gx,)

    def _backward_kernel(self, g):
        N, C = g.shape[:2]
        g3 = self.contiguous("g_c", g).reshape(N, C, -1)
        gx = self.buffer("gx", g.shape, g.dtype)
        ggamma = self.buffer("ggamma", (C,), g.dtype)
        gbeta = self.buffer("gbeta", (C,), g.dtype)
        gm = self.gamma.reshape(C) if self.affine else _NO_BIAS[g.dtype]
        y3 = self.y_out.reshape(g3.shape) if self.relu else g3     # (read only with relu)
        split_batch(lambda k, c0, c1: batchnorm_backward(
            g3, self.x3, self.mean, self.inv_std.reshape(C), gm, c0, c1, ggamma, gbeta,
            gx.reshape(g3.shape), y3, self.relu), C, slices(C, g.size, _bn_min_work()))
        return (gx, ggamma, gbeta) if self.affine else (gx,)
