"""Numba kernels fusing a bias add with an elementwise activation, forward and backward.

Activations are passed as integer codes (see ``ACTIVATION_CODES``); each public function
calls the Numba kernel of that activation (``PerActivation``: one kernel per activation, so
that a cold start compiles only the ones a model uses). Backward kernels express the
derivative through the activation's OUTPUT y:
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
from numba import njit

__all__ = [
    "ACT_NONE",
    "ACT_RELU",
    "ACT_SIGMOID",
    "ACT_TANH",
    "ACTIVATION_CODES",
    "ACTIVATION_NAMES",
    "PerActivation",
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
ACTIVATION_NAMES = {ACT_NONE: "identity", ACT_RELU: "relu", ACT_SIGMOID: "sigmoid",
                    ACT_TANH: "tanh"}

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


class PerActivation(dict):
    """{activation code: Numba kernel}: one kernel per activation, each compiled only when used.

    ``make(act)`` returns the kernel's Python function with the code ``act`` a constant of its
    closure. Numba drops the other activations' branches before it types the function, so a
    cold first step compiles only the activations its model uses, each about half the code of
    one kernel taking the code as an argument (bias_act_forward[relu] 0.14 s against 0.23 s for
    all four: ``python benchmarks/compile_times.py``). Numba caches each kernel on its own
    (named e.g. ``bias_act_forward[relu]``). ``codes`` limits the table to some activations;
    any other code is a ValueError naming the kernel. ``jit``: Numba options besides pynn's
    usual ``cache=True, nogil=True``.
    """

    def __init__(self, make, codes=None, **jit):
        super().__init__()
        self.name = make.__name__.lstrip("_")
        for act in ACTIVATION_NAMES if codes is None else codes:
            fn = make(act)
            fn.__qualname__ = f"{fn.__name__}[{ACTIVATION_NAMES[act]}]"
            self[act] = njit(cache=True, nogil=True, **jit)(fn)

    def __missing__(self, act):
        raise ValueError(f"{self.name}: no kernel for activation code {act!r} "
                         f"(it has {', '.join(ACTIVATION_NAMES[a] for a in self)})")


def _act_forward(act):
    def act_forward(x, y):
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
    return act_forward


def _act_backward(act):
    def act_backward(gy, y, gx):
        if gy.shape != y.shape or gx.shape != y.shape:
            raise ValueError("act_backward: gy, y and gx must have the same shape")
        gf = gy.reshape(gy.size)
        yf = y.reshape(y.size)
        gxf = gx.reshape(gx.size)
        for k in range(gf.size):
            gxf[k] = _backprop(gf[k], yf[k], act)
    return act_backward


def _bias_act_forward(act):
    def bias_act_forward(z, b):
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
    return bias_act_forward


def _bias_act_backward(act):
    def bias_act_backward(gy, y, gz, gb):
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
    return bias_act_backward


def _bias_act_forward_cnp(act):
    def bias_act_forward_cnp(z, b, y):
        N, O, P = y.shape
        has_bias = b.shape[0] != 0
        if z.shape[0] != O or z.shape[1] != N * P:
            raise ValueError("bias_act_forward_cnp: z must have shape (O, N*P)")
        if has_bias and b.shape[0] != O:
            raise ValueError("bias_act_forward_cnp: b must have shape (O,) or (0,)")
        zero = y.dtype.type(0)    # a scalar of the array's dtype (no allocation)
        for t in range(N * O):
            n = t // O
            o = t % O
            bo = b[o] if has_bias else zero
            zr = z[o, n * P:(n + 1) * P]
            yr = y[n, o]
            if act == ACT_RELU:
                # ReLU inline, in the array's own precision: LLVM vectorises this loop (~6x
                # faster than going through _activate). `not v < 0` keeps NaN, like _activate.
                for p in range(P):
                    v = zr[p] + bo
                    yr[p] = v if not v < 0 else zero
            else:
                for p in range(P):
                    yr[p] = _activate(zr[p] + bo, act)
    return bias_act_forward_cnp


def _bias_act_backward_cnp(act):
    def bias_act_backward_cnp(gy, y, gz, gb):
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
    return bias_act_backward_cnp


_ACT_FORWARD = PerActivation(_act_forward)
_ACT_BACKWARD = PerActivation(_act_backward)
_BIAS_ACT_FORWARD = PerActivation(_bias_act_forward)
_BIAS_ACT_BACKWARD = PerActivation(_bias_act_backward)
_BIAS_ACT_FORWARD_CNP = PerActivation(_bias_act_forward_cnp)
# Serial: memory-bound and ~0.3-1 ms at MNIST-CNN sizes, too short for threads to pay.
# fastmath "reassoc" only lets LLVM vectorise the float64 bias-sum reduction (reordering the
# additions: a rounding-level change); no flag touches NaN/inf handling.
_BIAS_ACT_BACKWARD_CNP = PerActivation(_bias_act_backward_cnp, fastmath={"reassoc"})


def act_forward(x, act, y):
    """y = act(x) elementwise; x and y C-contiguous of the same shape (y may be x)."""
    _ACT_FORWARD[act](x, y)


def act_backward(gy, y, act, gx):
    """gx = gy * act'(x), written through the output y = act(x); all of one shape (gx may be gy)."""
    _ACT_BACKWARD[act](gy, y, gx)


def bias_act_forward(z, b, act):
    """In place on z (N, F): z[n, f] = act(z[n, f] + b[f]); b is (F,) or (0,) for no bias."""
    _BIAS_ACT_FORWARD[act](z, b)


def bias_act_backward(gy, y, act, gz, gb):
    """gz (N, F) = gy * act'(y); gb (F,) = gz summed over n (overwritten), or skipped if gb is (0,).

    gz may be the same array as gy: each element is read before it is written.
    """
    _BIAS_ACT_BACKWARD[act](gy, y, gz, gb)


def bias_act_forward_cnp(z, b, act, y):
    """y[n, o, p] = act(z[o, n*P + p] + b[o]); z is (O, N*P), y is (N, O, P), b is (O,) or (0,).

    Serial: sigmoid/tanh are scalar libm calls (~10-30 ms at N=64, O=16, 28x28), which the
    ops halve by giving each core its own slice of the batch."""
    _BIAS_ACT_FORWARD_CNP[act](z, b, y)


def bias_act_backward_cnp(gy, y, act, gz, gb):
    """gz[o, n*P + p] = gy[n, o, p] * act'(y[n, o, p]); gb[o] = sum of row o of gz, or skipped
    if gb is (0,).

    gy, y are (N, O, P); gz is (O, N*P). The bias sum is accumulated in float64.
    """
    _BIAS_ACT_BACKWARD_CNP[act](gy, y, gz, gb)
