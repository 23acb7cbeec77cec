"""Neural-network ops: fused dense and convolution, pooling, dropout, batch norm.

These are the hot ops of a model. They write into buffers from ``self.buffer(...)``, so inside a
compiled Model (one op object per step, called again and again) nothing is allocated after the
first call at a given shape. Matrix products go to BLAS (np.matmul with out=); everything
elementwise or index-shuffling runs in the Numba kernels of pynn.kernels.
"""
import numpy as np

from .base import Op
from ..random import rng
from ..kernels.activation import (ACTIVATION_CODES, bias_act_forward, bias_act_backward,
                                  bias_act_forward_cnp, bias_act_backward_cnp)
from ..kernels.conv import im2col, col2im, conv_output_shape
from ..kernels.pool import (maxpool2d_forward, maxpool2d_backward, avgpool2d_forward,
                            avgpool2d_backward)

_NO_BIAS = {np.dtype(np.float32): np.zeros(0, np.float32), np.dtype(np.float64): np.zeros(0)}


def _contiguous(a):
    return a if a.flags.c_contiguous else np.ascontiguousarray(a)


class Linear(Op):
    """y = act(x @ W.T + b), bias and activation fused in one pass.

    Inputs x (..., in), W (out, in) and optionally b (out,). attrs: activation (None, "relu",
    "sigmoid" or "tanh"). Other activations are separate ops after this one."""

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
    """2-D convolution on NCHW input as im2col + one BLAS product, bias and activation fused.

    Inputs x (N, C, H, W), W (O, C, kh, kw), optionally b (O,). attrs: stride, padding (pairs),
    activation. Layouts: cols (C*kh*kw, N*OH*OW), z = W2d @ cols (O, N*OH*OW)."""

    #: Blocks of images are sized to about this many bytes of cols (+ z): in forward-only calls,
    #: which unfold and multiply block by block, and in backward's input gradient.
    BLOCK_BYTES = 1 << 20

    def forward(self, x, w, b=None):
        x = _contiguous(x)
        N, C, H, W = x.shape
        O, _, kh, kw = w.shape
        OH, OW = conv_output_shape(H, W, kh, kw, *self.stride, *self.padding)
        w2 = w.reshape(O, -1)
        b = _NO_BIAS[x.dtype] if b is None else b
        y = self.buffer("y", (N, O, OH, OW), x.dtype)
        if self.needs_input_grad and not any(self.needs_input_grad):
            # Nothing will call backward (inference): work through the batch a block of images
            # at a time so that cols and z stay in cache, and never hold all of cols.
            per_image = (w2.shape[1] + O) * OH * OW * x.itemsize
            block = max(1, min(N, self.BLOCK_BYTES // per_image))
            for n0 in range(0, N, block):
                n1 = min(N, n0 + block)
                self._unfold_multiply(x[n0:n1], w, b, y[n0:n1], f"block{n1 - n0}")
            return y
        self.cols = self._unfold_multiply(x, w, b, y, "batch")
        self.x_shape, self.w2, self.w_shape, self.y = x.shape, w2, w.shape, y
        self.has_bias = b.shape[0] != 0
        return y

    def _unfold_multiply(self, x, w, b, y, key):
        """y = act(W2d @ im2col(x) + b) for the images of x; returns cols. Buffers are per key."""
        N, O, OH, OW = y.shape
        kh, kw = w.shape[2:]
        w2 = w.reshape(O, -1)
        cols = self.buffer("cols_" + key, (w2.shape[1], N * OH * OW), x.dtype)
        im2col(x, kh, kw, *self.stride, *self.padding, cols)
        z = self.buffer("z_" + key, (O, N * OH * OW), x.dtype)
        np.matmul(w2, cols, out=z)
        bias_act_forward_cnp(z, b, ACTIVATION_CODES[self.activation], y.reshape(N, O, OH * OW))
        return cols

    def backward(self, g):
        N, O, OH, OW = self.y.shape
        g = _contiguous(g)
        # z (the pre-activation product) is dead once forward has written y: gz reuses its buffer.
        gz = self.buffer("z_batch", (O, N * OH * OW), g.dtype)
        gb = self.buffer("gb", (O,), g.dtype) if self.has_bias and self.needs(2) \
            else _NO_BIAS[g.dtype]
        bias_act_backward_cnp(g.reshape(N, O, OH * OW), self.y.reshape(N, O, OH * OW),
                              ACTIVATION_CODES[self.activation], gz, gb)
        gx = gw = None
        if self.needs(1):
            # gw = gz @ cols.T, computed transposed: BLAS reduces the long N*OH*OW axis faster
            # with cols as the row-major left operand (measured ~1.2-1.9x at MNIST sizes).
            gw_t = self.buffer("gw_t", self.w2.shape[::-1], g.dtype)
            np.matmul(self.cols, gz.T, out=gw_t)
            gw = self.buffer("gw", self.w2.shape, g.dtype)
            np.copyto(gw, gw_t.T)
            gw = gw.reshape(self.w_shape)
        if self.needs(0):
            # gx = col2im(W2d.T @ gz), a block of images at a time: the block's gcols stays in
            # cache between the product and col2im, and the whole batch's never exists.
            _, _, kh, kw = self.w_shape
            P = OH * OW
            rows = self.cols.shape[0]
            block = max(1, min(N, self.BLOCK_BYTES // (rows * P * g.itemsize)))
            gx = self.buffer("gx", self.x_shape, g.dtype)
            for n0 in range(0, N, block):
                n1 = min(N, n0 + block)
                gcols = self.buffer(f"gcols_block{n1 - n0}", (rows, (n1 - n0) * P), g.dtype)
                np.matmul(self.w2.T, gz[:, n0 * P:n1 * P], out=gcols)
                col2im(gcols, kh, kw, *self.stride, *self.padding, gx[n0:n1])
        return (gx, gw, gb) if self.has_bias else (gx, gw)


def _pool_out_shape(op, x):
    N, C, H, W = x.shape
    (kh, kw), (sh, sw), (ph, pw) = op.kernel_size, op.stride, op.padding
    return (N, C) + conv_output_shape(H, W, kh, kw, sh, sw, ph, pw)


class MaxPool2d(Op):
    """attrs: kernel_size, stride, padding (pairs). Remembers the argmax of each window."""

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
    `module.training` is true; the identity otherwise. attrs: p, module."""

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

    Inputs x, gamma, beta. attrs: module (holds .training, .eps, .momentum and the running_mean /
    running_var arrays it updates in training mode)."""

    def forward(self, x, gamma, beta):
        m = self.module
        axes = (0,) + tuple(range(2, x.ndim))
        shape = (1, -1) + (1,) * (x.ndim - 2)
        self.train_mode = m.training
        if m.training:
            mean = x.mean(axis=axes)
            var = x.var(axis=axes)
            n = x.size // x.shape[1]
            m.running_mean *= 1 - m.momentum
            m.running_mean += m.momentum * mean
            m.running_var *= 1 - m.momentum
            m.running_var += m.momentum * var * (n / max(n - 1, 1))
        else:
            mean, var = m.running_mean, m.running_var
        self.inv_std = (1.0 / np.sqrt(var + m.eps)).astype(x.dtype).reshape(shape)
        self.xhat = (x - mean.astype(x.dtype).reshape(shape)) * self.inv_std
        self.gamma, self.axes = gamma.reshape(shape), axes
        return self.xhat * self.gamma + beta.reshape(shape)

    def backward(self, g):
        axes = self.axes
        ggamma = (g * self.xhat).sum(axis=axes)
        gbeta = g.sum(axis=axes)
        gxhat = g * self.gamma
        if self.train_mode:
            n = g.size // g.shape[1]
            shape = self.inv_std.shape
            gx = self.inv_std / n * (n * gxhat - gxhat.sum(axis=axes).reshape(shape)
                                     - self.xhat * (gxhat * self.xhat).sum(axis=axes).reshape(shape))
        else:
            gx = gxhat * self.inv_std
        return gx, ggamma, gbeta
