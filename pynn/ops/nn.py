"""Neural-network ops: fused dense and convolution, pooling, dropout, batch norm.

These are the hot ops of a model. They write into buffers from ``self.buffer(...)``, so inside a
compiled Model (one op object per step, called again and again) nothing is allocated after the
first call at a given shape. Matrix products go to BLAS (np.matmul with out=); everything
elementwise or index-shuffling runs in the Numba kernels of pynn.kernels.
"""
import numpy as np

from ..kernels.activation import (
    ACTIVATION_CODES,
    bias_act_backward,
    bias_act_backward_cnp,
    bias_act_forward,
    bias_act_forward_cnp,
)
from ..kernels.conv import col2im, conv_output_shape, im2col
from ..kernels.pool import (
    avgpool2d_backward,
    avgpool2d_forward,
    maxpool2d_backward,
    maxpool2d_forward,
)
from ..random import rng
from .base import Op

_NO_BIAS = {np.dtype(np.float32): np.zeros(0, np.float32), np.dtype(np.float64): np.zeros(0)}


def _contiguous(a):
    return a if a.flags.c_contiguous else np.ascontiguousarray(a)


class Linear(Op):
    """y = act(x @ W.T + b), bias and activation fused in one pass.

    Inputs x (..., in), W (out, in) and optionally b (out,). attrs: activation (None, "relu",
    "sigmoid" or "tanh"). Other activations are separate ops after this one.
    Derivative: with gz = g * act'(z), z = x W^T + b: d/dx = gz W, d/dW = gz^T x,
    d/db = sum of gz over rows
    """

    def forward(self, x, w, b=None):
        self.in_shape = x.shape
        x2 = _contiguous(x.reshape(-1, x.shape[-1]))
        y = self.buffer("y", (x2.shape[0], w.shape[0]), x2.dtype)
        np.matmul(x2, w.T, out=y)
        bias_act_forward(y, _NO_BIAS[y.dtype] if b is None else b,
                         ACTIVATION_CODES[self.activation])
        self.x2, self.w, self.y, self.has_bias = x2, w, y, b is not None
        return y.reshape(x.shape[:-1] + (w.shape[0],))

    def backward(self, g):
        g2 = _contiguous(g.reshape(self.y.shape))
        gz = self.buffer("gz", self.y.shape, g2.dtype)
        gb = self.buffer("gb", (self.y.shape[1],), g2.dtype) if self.has_bias and self.needs(2) \
            else _NO_BIAS[g2.dtype]
        bias_act_backward(g2, self.y, ACTIVATION_CODES[self.activation], gz, gb)
        gx = gw = None
        if self.needs(0):
            gx = self.buffer("gx", self.x2.shape, g2.dtype)
            np.matmul(gz, self.w, out=gx)
            gx = gx.reshape(self.in_shape)
        if self.needs(1):
            gw = self.buffer("gw", self.w.shape, g2.dtype)
            np.matmul(gz.T, self.x2, out=gw)
        return (gx, gw, gb) if self.has_bias else (gx, gw)


class Conv2d(Op):
    """2-D convolution on NCHW input as im2col + BLAS products, bias and activation fused.

    Inputs x (N, C, H, W), W (O, C, kh, kw), optionally b (O,). attrs: stride, padding (pairs),
    activation. Layouts: cols (C*kh*kw, N*OH*OW), z = W2d @ cols (O, N*OH*OW).

    The products run a block of images at a time, sized so that the block's slice of cols and
    its z (or gz, gcols) stay in cache: z and gz never exist for the whole batch. Training keeps
    the whole batch's cols for the weight gradient; forward-only calls (inference) unfold each
    block on its own and keep nothing.
    Derivative: with gz = g * act'(z): d/dx = col2im(W^T gz), d/dW = gz cols^T,
    d/db = sum of gz over N, H, W
    """

    #: Blocks of images are sized to about this many bytes of cols + z.
    BLOCK_BYTES = 1 << 20

    def _blocks(self, N, rows, O, P, itemsize):
        """(n0, n1) image ranges covering the batch, each about BLOCK_BYTES of cols + z."""
        block = max(1, min(N, self.BLOCK_BYTES // ((rows + O) * P * itemsize)))
        return [(n0, min(N, n0 + block)) for n0 in range(0, N, block)]

    def forward(self, x, w, b=None):
        x = _contiguous(x)
        N, C, H, W = x.shape
        O, _, kh, kw = w.shape
        OH, OW = conv_output_shape(H, W, kh, kw, *self.stride, *self.padding)
        P = OH * OW
        w2 = w.reshape(O, -1)
        rows = w2.shape[1]
        b = _NO_BIAS[x.dtype] if b is None else b
        act = ACTIVATION_CODES[self.activation]
        y = self.buffer("y", (N, O, OH, OW), x.dtype)
        # Forward-only calls (inference: nothing will call backward) keep no cols.
        forward_only = self.needs_input_grad and not any(self.needs_input_grad)
        keep_cols = not forward_only
        if keep_cols:
            cols = self.buffer("cols_batch", (rows, N * P), x.dtype)
            im2col(x, kh, kw, *self.stride, *self.padding, cols)
        for n0, n1 in self._blocks(N, rows, O, P, x.itemsize):
            m = n1 - n0
            if keep_cols:
                cols_b = cols[:, n0 * P:n1 * P]    # a strided view: BLAS reads it in place
            else:
                cols_b = self.buffer(f"cols_block{m}", (rows, m * P), x.dtype)
                im2col(x[n0:n1], kh, kw, *self.stride, *self.padding, cols_b)
            z = self.buffer(f"z_block{m}", (O, m * P), x.dtype)
            np.matmul(w2, cols_b, out=z)
            bias_act_forward_cnp(z, b, act, y[n0:n1].reshape(m, O, P))
        if keep_cols:
            self.cols, self.x_shape, self.w2, self.w_shape, self.y = cols, x.shape, w2, w.shape, y
            self.has_bias = b.shape[0] != 0
        return y

    def backward(self, g):
        N, O, OH, OW = self.y.shape
        P = OH * OW
        g = _contiguous(g)
        rows = self.cols.shape[0]
        _, _, kh, kw = self.w_shape
        act = ACTIVATION_CODES[self.activation]
        # The first block writes gb and gw_t, later blocks write *_b and are added in.
        gb = gb_b = _NO_BIAS[g.dtype]           # (0,): the kernel skips the bias gradient
        gw_t = gw_t_b = gx = gw = None
        if self.has_bias and self.needs(2):
            gb = self.buffer("gb", (O,), g.dtype)
            gb_b = self.buffer("gb_block", (O,), g.dtype)
        if self.needs(1):
            # gw = gz @ cols.T, computed transposed (cols @ gz.T) and summed over the blocks:
            # BLAS reduces the long N*OH*OW axis faster with cols as the row-major left operand.
            gw_t = self.buffer("gw_t", (rows, O), g.dtype)
            gw_t_b = self.buffer("gw_t_block", (rows, O), g.dtype)
        if self.needs(0):
            gx = self.buffer("gx", self.x_shape, g.dtype)
        for i, (n0, n1) in enumerate(self._blocks(N, rows, O, P, g.itemsize)):
            m = n1 - n0
            # z of this block size is dead once forward has written y: gz reuses its buffer.
            gz = self.buffer(f"z_block{m}", (O, m * P), g.dtype)
            bias_act_backward_cnp(g[n0:n1].reshape(m, O, P), self.y[n0:n1].reshape(m, O, P),
                                  act, gz, gb_b if i else gb)
            if i and gb.size:
                gb += gb_b
            if gw_t is not None:
                np.matmul(self.cols[:, n0 * P:n1 * P], gz.T, out=gw_t_b if i else gw_t)
                if i:
                    gw_t += gw_t_b
            if gx is not None:
                gcols = self.buffer(f"gcols_block{m}", (rows, m * P), g.dtype)
                np.matmul(self.w2.T, gz, out=gcols)
                col2im(gcols, kh, kw, *self.stride, *self.padding, gx[n0:n1])
        if gw_t is not None:
            gw = self.buffer("gw", self.w2.shape, g.dtype)
            np.copyto(gw, gw_t.T)
            gw = gw.reshape(self.w_shape)
        if not gb.size:
            gb = None
        return (gx, gw, gb) if self.has_bias else (gx, gw)


def _pool_out_shape(op, x):
    N, C, H, W = x.shape
    (kh, kw), (sh, sw), (ph, pw) = op.kernel_size, op.stride, op.padding
    return (N, C) + conv_output_shape(H, W, kh, kw, sh, sw, ph, pw)


class MaxPool2d(Op):
    """attrs: kernel_size, stride, padding (pairs). Remembers the argmax of each window.
    Derivative: d/dx = g routed to the argmax of each window (added where windows overlap)"""

    def forward(self, x):
        x = _contiguous(x)
        out_shape = _pool_out_shape(self, x)
        y = self.buffer("y", out_shape, x.dtype)
        # Forward-only (inference) calls keep no argmax: an empty idx tells the kernel so.
        forward_only = self.needs_input_grad and not any(self.needs_input_grad)
        # int32 indices (positions inside one plane) halve the index traffic of int64.
        self.idx = self.buffer("idx", (0, 0, 0, 0) if forward_only else out_shape, np.int32)
        maxpool2d_forward(x, *self.kernel_size, *self.stride, *self.padding, y, self.idx)
        self.x_shape = x.shape
        return y

    def backward(self, g):
        gx = self.buffer("gx", self.x_shape, g.dtype)
        maxpool2d_backward(_contiguous(g), self.idx, gx)
        return (gx,)


class AvgPool2d(Op):
    """Derivative: d/dx = g / window size, spread over each window"""

    def forward(self, x):
        x = _contiguous(x)
        y = self.buffer("y", _pool_out_shape(self, x), x.dtype)
        avgpool2d_forward(x, *self.kernel_size, *self.stride, *self.padding, y)
        self.x_shape = x.shape
        return y

    def backward(self, g):
        gx = self.buffer("gx", self.x_shape, g.dtype)
        avgpool2d_backward(_contiguous(g), *self.kernel_size, *self.stride, *self.padding, gx)
        return (gx,)


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

    def forward(self, x, gamma=None, beta=None):
        m = self.module
        axes = (0,) + tuple(range(2, x.ndim))
        shape = (1, -1) + (1,) * (x.ndim - 2)
        C = x.shape[1]
        track = m.running_mean is not None
        self.train_mode = m.training or not track
        xhat = self.buffer("xhat", x.shape, x.dtype)
        y = self.buffer("y", x.shape, x.dtype)
        if self.train_mode:
            mean = np.mean(x, axis=axes, out=self.buffer("mean", (C,), x.dtype))
            np.subtract(x, mean.reshape(shape), out=xhat)
            # the biased variance as np.var computes it: the mean of squared deviations
            var = np.mean(np.square(xhat, out=y), axis=axes, out=self.buffer("var", (C,), x.dtype))
            n = x.size // C
            if track and m.training:
                m.running_mean *= 1 - m.momentum
                m.running_mean += m.momentum * mean
                m.running_var *= 1 - m.momentum
                m.running_var += m.momentum * var * (n / max(n - 1, 1))
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

    def backward(self, g):
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
