"""Numba kernels fusing a bias add with an elementwise activation, forward and backward.

Activations are passed as integer codes (see ``ACTIVATION_CODES``). Backward
kernels express the derivative through the activation's OUTPUT y:
relu' = (y > 0), sigmoid' = y*(1 - y), tanh' = 1 - y*y, identity' = 1.

Three layouts:

* elementwise (``act_forward`` / ``act_backward``, used by the Relu, Sigmoid and Tanh ops of
  pynn.ops.elementwise): any shape, read and written flat;
* dense: z, gz, gy, y are (N, F); bias b / gb is (F,).
* conv ("cnp"): the matmul result z / gz is (O, N*P) (P = OH*OW, column
  n*P + p), the layer output y / gy is (N, O, P); bias b / gb is (O,).

A bias of shape (0,) means "no bias" (for gb: do not compute it). The scalar
helpers return float64 (the ``1.0 * v`` below gives every branch that type);
for float32 arrays exp/tanh run in single precision and results are rounded
to the array dtype on store. exp/tanh are scalar libm calls here (Numba has no
SVML in this environment), so sigmoid/tanh cost ~5-25 ns per element, ReLU ~1.
"""
import numpy as np
from numba import njit, prange

__all__ = [
    "ACT_NONE",
    "ACT_RELU",
    "ACT_SIGMOID",
    "ACT_TANH",
    "ACTIVATION_CODES",
    "bias_act_forward",
    "bias_act_backward",
    "bias_act_forward_cnp",
    "bias_act_backward_cnp",
    "act_forward",
    "act_backward",
]

ACT_NONE = 0
ACT_RELU = 1
ACT_SIGMOID = 2
ACT_TANH = 3

ACTIVATION_CODES = {None: ACT_NONE, "relu": ACT_RELU, "sigmoid": ACT_SIGMOID, "tanh": ACT_TANH}

# The scalar helpers are inlined into their callers at Numba's IR level (inline="always"), so
# they are not compiled on their own as well (less to compile at a cold first step, same speed).

@njit(cache=True, nogil=True, inline="always")
def _activate(v, act):
    """act(v) for one scalar (float64 result)."""
    if act == ACT_RELU:
        if v < 0:  # written so that NaN propagates, as in PyTorch
            return 0.0
        return 1.0 * v
    if act == ACT_SIGMOID:
        # Stable in both tails: exp is only ever taken of a non-positive number.
        if v >= 0:
            return 1.0 / (1.0 + np.exp(-v))
        e = np.exp(v)
        return e / (1.0 + e)
    if act == ACT_TANH:
        return 1.0 * np.tanh(v)
    return 1.0 * v


@njit(cache=True, nogil=True, inline="always")
def _backprop(g, y, act):
    """g * act'(x) for one scalar, with act'(x) written through the output y = act(x)
    (float64 result)."""
    if act == ACT_RELU:
        # A select, not g * (y > 0): like PyTorch, an inf/NaN gradient of a dead unit gives 0,
        # and a NaN unit (y = NaN is not <= 0) passes the gradient on.
        return 0.0 if y <= 0 else 1.0 * g
    if act == ACT_SIGMOID:
        return g * (y * (1.0 - y))
    if act == ACT_TANH:
        return g * (1.0 - y * y)
    return 1.0 * g


@njit(cache=True, nogil=True)
def act_forward(x, act, y):
    """y = act(x) elementwise; x and y C-contiguous of the same shape (y may be x)."""
    if x.shape != y.shape:
        raise ValueError("act_forward: x and y must have the same shape")
    xf = x.reshape(x.size)
    yf = y.reshape(y.size)
    if act == ACT_RELU:
        zero = y.dtype.type(0)
        for k in range(xf.size):    # inline, in the array's precision: vectorised, as below
            v = xf[k]
            yf[k] = v if not v < 0 else zero
    else:
        for k in range(xf.size):
            yf[k] = _activate(xf[k], act)


@njit(cache=True, nogil=True)
def act_backward(gy, y, act, gx):
    """gx = gy * act'(x), written through the output y = act(x); all of one shape (gx may be gy)."""
    if gy.shape != y.shape or gx.shape != y.shape:
        raise ValueError("act_backward: gy, y and gx must have the same shape")
    gf = gy.reshape(gy.size)
    yf = y.reshape(y.size)
    gxf = gx.reshape(gx.size)
    for k in range(gf.size):
        gxf[k] = _backprop(gf[k], yf[k], act)


@njit(cache=True, nogil=True)
def bias_act_forward(z, b, act):
    """In place on z (N, F): z[n, f] = act(z[n, f] + b[f]); b is (F,) or (0,) for no bias."""
    N, F = z.shape
    has_bias = b.shape[0] != 0
    if has_bias and b.shape[0] != F:
        raise ValueError("bias_act_forward: b must have shape (F,) or (0,)")
    for n in range(N):
        for f in range(F):
            v = z[n, f]
            if has_bias:
                v = v + b[f]
            z[n, f] = _activate(v, act)


@njit(cache=True, nogil=True)
def bias_act_backward(gy, y, act, gz, gb):
    """gz (N, F) = gy * act'(y); gb (F,) = gz summed over n (overwritten), or skipped if gb is (0,).

    gz may be the same array as gy: each element is read before it is written.
    """
    N, F = gy.shape
    has_bias = gb.shape[0] != 0
    if has_bias and gb.shape[0] != F:
        raise ValueError("bias_act_backward: gb must have shape (F,) or (0,)")
    if has_bias:
        for f in range(F):
            gb[f] = 0
    for n in range(N):
        for f in range(F):
            g = _backprop(gy[n, f], y[n, f], act)
            gz[n, f] = g
            if has_bias:
                gb[f] += g


# Parallel: ReLU is cheap, but sigmoid/tanh are scalar libm calls (~10-30 ms serial at
# N=64, O=16, 28x28), which two threads halve.
@njit(cache=True, nogil=True)
def bias_act_forward_cnp(z, b, act, y):
    """y[n, o, p] = act(z[o, n*P + p] + b[o]); z is (O, N*P), y is (N, O, P), b is (O,) or (0,)."""
    N, O, P = y.shape
    has_bias = b.shape[0] != 0
    if z.shape[0] != O or z.shape[1] != N * P:
        raise ValueError("bias_act_forward_cnp: z must have shape (O, N*P)")
    if has_bias and b.shape[0] != O:
        raise ValueError("bias_act_forward_cnp: b must have shape (O,) or (0,)")
    zero = y.dtype.type(0)    # a scalar of the array's dtype (no allocation)
    for t in prange(N * O):
        n = t // O
        o = t % O
        bo = b[o] if has_bias else zero
        zr = z[o, n * P:(n + 1) * P]
        yr = y[n, o]
        if act == ACT_RELU:
            # ReLU inline, in the array's own precision: LLVM vectorises this loop (~6x faster
            # than going through _activate). `not v < 0` keeps NaN, like _activate.
            for p in range(P):
                v = zr[p] + bo
                yr[p] = v if not v < 0 else zero
        else:
            for p in range(P):
                yr[p] = _activate(zr[p] + bo, act)


# Serial: memory-bound and ~0.3-1 ms at MNIST-CNN sizes, too short for threads to pay.
# fastmath "reassoc" only lets LLVM vectorise the float64 bias-sum reduction (reordering the
# additions: a rounding-level change); no flag touches NaN/inf handling.
@njit(cache=True, nogil=True, fastmath={"reassoc"})
def bias_act_backward_cnp(gy, y, act, gz, gb):
    """gz[o, n*P + p] = gy[n, o, p] * act'(y[n, o, p]); gb[o] = sum of row o of gz, or skipped
    if gb is (0,).

    gy, y are (N, O, P); gz is (O, N*P). The bias sum is accumulated in float64.
    """
    N, O, P = gy.shape
    has_bias = gb.shape[0] != 0
    if gz.shape[0] != O or gz.shape[1] != N * P:
        raise ValueError("bias_act_backward_cnp: gz must have shape (O, N*P)")
    if has_bias and gb.shape[0] != O:
        raise ValueError("bias_act_backward_cnp: gb must have shape (O,) or (0,)")
    for o in range(O):
        acc = 0.0
        for n in range(N):
            for p in range(P):
                g = _backprop(gy[n, o, p], y[n, o, p], act)
                gz[o, n * P + p] = g
                acc += g
        if has_bias:
            gb[o] = acc
