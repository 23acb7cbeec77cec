"""Numba kernels that lower a 2-D convolution to a matrix product: im2col and col2im.

Layouts (all arrays C-contiguous, float32 or float64):

* ``x``, ``dx``: (N, C, H, W)
* ``cols``: (C*kh*kw, N*OH*OW), with row ``r = c*kh*kw + i*kw + j`` and column
  ``q = n*OH*OW + oh*OW + ow``::

      cols[r, q] = x[n, c, oh*sh - ph + i, ow*sw - pw + j]   (0 in the zero padding)

With this layout a convolution is one matmul, ``W.reshape(O, C*kh*kw) @ cols`` with
shape (O, N*OH*OW); its input gradient is ``col2im(W2d.T @ gz)``.

Both kernels loop (``prange``) over the N*C (image, channel) planes: every plane owns
a disjoint set of ``cols`` entries (im2col) or of ``dx`` entries (col2im), so the
loops are race-free if compiled with ``parallel=True`` (they run serially: see
pynn/kernels/__init__.py).
"""
from numba import njit, prange

__all__ = ["conv_output_shape", "im2col", "col2im"]


def conv_output_shape(H, W, kh, kw, sh, sw, ph, pw):
    """Return (OH, OW) of a convolution/pooling window sweep (no dilation, floor mode)."""
    OH = (H + 2 * ph - kh) // sh + 1
    OW = (W + 2 * pw - kw) // sw + 1
    if OH <= 0 or OW <= 0:
        raise ValueError(
            f"window {kh}x{kw} (padding {ph},{pw}) does not fit in input {H}x{W}"
        )
    return OH, OW


@njit(cache=True)
def _valid_range(n_out, stride, offset, size):
    """Return [lo, hi): the output positions o in [0, n_out) with 0 <= o*stride + offset < size.

    Uses ceil(a / s) == -((-a) // s) for s > 0 (Numba's // floors like Python's,
    also for negative operands).
    """
    lo = max(0, -(offset // stride))
    hi = min(n_out, -((offset - size) // stride))
    if hi < lo:
        hi = lo
    return lo, hi


@njit(cache=True)
def im2col(x, kh, kw, sh, sw, ph, pw, cols):
    """Unfold x (N, C, H, W) into cols (C*kh*kw, N*OH*OW); every entry of cols is written."""
    N, C, H, W = x.shape
    OH = (H + 2 * ph - kh) // sh + 1
    OW = (W + 2 * pw - kw) // sw + 1
    P = OH * OW
    if cols.shape[0] != C * kh * kw or cols.shape[1] != N * P:
        raise ValueError("im2col: cols must have shape (C*kh*kw, N*OH*OW)")
    for t in prange(N * C):
        n = t // C
        c = t % C
        for i in range(kh):
            # Rows h of x are valid for oh in [oh_lo, oh_hi); the others are padding.
            oh_lo, oh_hi = _valid_range(OH, sh, i - ph, H)
            for j in range(kw):
                r = (c * kh + i) * kw + j
                ow_lo, ow_hi = _valid_range(OW, sw, j - pw, W)
                for oh in range(OH):
                    q0 = n * P + oh * OW
                    if oh < oh_lo or oh >= oh_hi:
                        for ow in range(OW):
                            cols[r, q0 + ow] = 0
                    else:
                        h = oh * sh - ph + i
                        for ow in range(ow_lo):
                            cols[r, q0 + ow] = 0
                        for ow in range(ow_lo, ow_hi):
                            cols[r, q0 + ow] = x[n, c, h, ow * sw - pw + j]
                        for ow in range(ow_hi, OW):
                            cols[r, q0 + ow] = 0


@njit(cache=True)
def col2im(cols, kh, kw, sh, sw, ph, pw, dx):
    """Adjoint of im2col: dx (N, C, H, W) = 0, then scatter-add every cols entry back.

    Entries of cols that correspond to padding are dropped.
    """
    N, C, H, W = dx.shape
    OH = (H + 2 * ph - kh) // sh + 1
    OW = (W + 2 * pw - kw) // sw + 1
    P = OH * OW
    if cols.shape[0] != C * kh * kw or cols.shape[1] != N * P:
        raise ValueError("col2im: cols must have shape (C*kh*kw, N*OH*OW)")
    for t in prange(N * C):
        n = t // C
        c = t % C
        for h in range(H):
            for w in range(W):
                dx[n, c, h, w] = 0
        for i in range(kh):
            oh_lo, oh_hi = _valid_range(OH, sh, i - ph, H)
            for j in range(kw):
                r = (c * kh + i) * kw + j
                ow_lo, ow_hi = _valid_range(OW, sw, j - pw, W)
                for oh in range(oh_lo, oh_hi):
                    h = oh * sh - ph + i
                    q0 = n * P + oh * OW
                    for ow in range(ow_lo, ow_hi):
                        dx[n, c, h, ow * sw - pw + j] += cols[r, q0 + ow]
