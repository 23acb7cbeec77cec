"""Numba kernels that lower a 2-D convolution to a matrix product: im2col and col2im.

Layouts (all arrays C-contiguous, float32 or float64):

* ``x``, ``dx``: (N, C, H, W)
* ``cols``: (C*kh*kw, N*OH*OW), with row ``r = c*kh*kw + i*kw + j`` and column
  ``q = n*OH*OW + oh*OW + ow``::

      cols[r, q] = x[n, c, oh*sh - ph + i*dh, ow*sw - pw + j*dw]   (0 in the zero padding)

``ph``/``pw`` are the top/left padding and ``dh``/``dw`` the dilation (default 1). The
bottom/right padding ``ph_end``/``pw_end`` defaults to (-1 means) the same as top/left; it
differs only for ``padding="same"`` with an even effective kernel, where PyTorch puts the
extra row/column at the end.

With this layout a convolution is one matmul, ``W.reshape(O, C*kh*kw) @ cols`` with
shape (O, N*OH*OW); its input gradient is ``col2im(W2d.T @ gz)``.

Both kernels walk ``cols`` row by row, front to back, and reach into the image planes
through a table of tap offsets (``tap_offsets``): every inner loop runs over all OH*OW
output positions of one image instead of over one short output row. im2col's row loop is
a ``prange`` (rows are disjoint); col2im's is not (rows of different taps add into the
same ``dx`` entries). Both run on one thread: see pynn/kernels/__init__.py.
"""
import numpy as np
from numba import njit, prange

__all__ = ["conv_output_shape", "tap_offsets", "im2col", "col2im"]


def conv_output_shape(H, W, kh, kw, sh, sw, ph, pw, dh=1, dw=1, ph_end=-1, pw_end=-1):
    """Return (OH, OW) of a convolution/pooling window sweep (floor mode). Called from Python,
    so it runs the kernels' own _out_size as plain Python (no compile at first use)."""
    size = _out_size.py_func
    OH, OW = size(H, kh, sh, ph, dh, ph_end), size(W, kw, sw, pw, dw, pw_end)
    if OH <= 0 or OW <= 0:
        raise ValueError(
            f"window {kh}x{kw} (padding {ph},{pw}, dilation {dh},{dw}) does not fit in "
            f"input {H}x{W}"
        )
    return OH, OW


@njit(cache=True, nogil=True)
def _out_size(H, k, s, p, d, p_end):
    """Output length of a window of k taps, d apart, stepping s over H with padding p / p_end."""
    return (H + p + (p if p_end < 0 else p_end) - d * (k - 1) - 1) // s + 1


@njit(cache=True, nogil=True)
def tap_offsets(H, W, kh, kw, sh, sw, ph, pw, dh=1, dw=1, ph_end=-1, pw_end=-1):
    """Return src (kh*kw, OH*OW) int64: src[i*kw + j, oh*OW + ow] is the flat index h*W + w
    of the input element that output position (oh, ow) reads through kernel tap (i, j),
    or -1 where that element lies in the zero padding.

    One small table per call (kh*kw*OH*OW entries) turns the unfold into long, branch-light
    gather loops over the output positions, instead of short loops over output rows.
    """
    OH = _out_size(H, kh, sh, ph, dh, ph_end)
    OW = _out_size(W, kw, sw, pw, dw, pw_end)
    src = np.empty((kh * kw, OH * OW), np.int64)
    for i in range(kh):
        for j in range(kw):
            for oh in range(OH):
                h = oh * sh - ph + i * dh
                for ow in range(OW):
                    w = ow * sw - pw + j * dw
                    inside = h >= 0 and h < H and w >= 0 and w < W
                    src[i * kw + j, oh * OW + ow] = h * W + w if inside else -1
    return src


@njit(cache=True, nogil=True)
def im2col(x, kh, kw, sh, sw, ph, pw, cols, dh=1, dw=1, ph_end=-1, pw_end=-1):
    """Unfold x (N, C, H, W) into cols (C*kh*kw, N*OH*OW); every entry of cols is written."""
    N, C, H, W = x.shape
    OH = _out_size(H, kh, sh, ph, dh, ph_end)
    OW = _out_size(W, kw, sw, pw, dw, pw_end)
    P = OH * OW
    K = kh * kw
    if cols.shape[0] != C * K or cols.shape[1] != N * P:
        raise ValueError("im2col: cols must have shape (C*kh*kw, N*OH*OW)")
    src = tap_offsets(H, W, kh, kw, sh, sw, ph, pw, dh, dw, ph_end, pw_end)
    padded = ph > 0 or pw > 0 or ph_end > 0 or pw_end > 0
    xf = x.reshape(x.size)
    cf = cols.reshape(cols.size)
    # Row r = c*K + tap of cols is written front to back, one image after another.
    for r in prange(C * K):
        c = r // K
        tap = src[r % K]
        for n in range(N):
            d = (r * N + n) * P
            s = (n * C + c) * H * W
            if padded:
                for p in range(P):
                    k = tap[p]
                    cf[d + p] = xf[s + k] if k >= 0 else 0
            else:
                for p in range(P):
                    cf[d + p] = xf[s + tap[p]]


@njit(cache=True, nogil=True)
def col2im(cols, kh, kw, sh, sw, ph, pw, dx, dh=1, dw=1, ph_end=-1, pw_end=-1):
    """Adjoint of im2col: dx (N, C, H, W) = 0, then scatter-add every cols entry back.

    Entries of cols that correspond to padding are dropped.
    """
    N, C, H, W = dx.shape
    OH = _out_size(H, kh, sh, ph, dh, ph_end)
    OW = _out_size(W, kw, sw, pw, dw, pw_end)
    P = OH * OW
    K = kh * kw
    if cols.shape[0] != C * K or cols.shape[1] != N * P:
        raise ValueError("col2im: cols must have shape (C*kh*kw, N*OH*OW)")
    src = tap_offsets(H, W, kh, kw, sh, sw, ph, pw, dh, dw, ph_end, pw_end)
    padded = ph > 0 or pw > 0 or ph_end > 0 or pw_end > 0
    cf = cols.reshape(cols.size)
    dxf = dx.reshape(dx.size)
    for k in range(dx.size):
        dxf[k] = 0
    # Read cols front to back, row r = c*K + tap, one image after another, adding into dx.
    # (Serial on purpose: rows of different taps add into the same dx entries. A per-plane
    # loop would be race-free but measured ~25% slower on one thread at MNIST sizes.)
    for r in range(C * K):
        c = r // K
        tap = src[r % K]
        for n in range(N):
            d = (r * N + n) * P
            s = (n * C + c) * H * W
            if padded:
                for p in range(P):
                    k = tap[p]
                    if k >= 0:
                        dxf[s + k] += cf[d + p]
            else:
                for p in range(P):
                    dxf[s + tap[p]] += cf[d + p]
