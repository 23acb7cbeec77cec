"""Numba kernels for 2-D max and average pooling (PyTorch semantics, no dilation).

Layouts (all arrays C-contiguous): x, dx are (N, C, H, W); y, gy, idx are
(N, C, OH, OW) with OH = (H + 2*ph - kh)//sh + 1 and OW likewise (floor mode), or with
``ceil_mode`` (see ``pool_output_size``) one more window where the last one would start
inside the input or its left padding; such a window may reach past the padding.

* Max pooling: padding counts as -inf; ``idx`` (int32 or int64) holds the flat index
  ``h*W + w`` of the maximum inside the plane x[n, c]; on ties the first
  maximum in row-major window order wins; a NaN in the window propagates.
* Average pooling: with ``count_include_pad`` (the default) every window sum is divided by
  the size of the window clipped to the padded input (kh*kw unless a ceil-mode window reaches
  past the padding), without it by the number of input elements in the window.

Every kernel loops over the independent N*C planes and runs on one thread (see
pynn/kernels/__init__.py for why). A planes loop can become ``prange`` +
``parallel=True`` without races: planes share no output.
"""
import numpy as np
from numba import njit, prange

__all__ = [
    "maxpool2d_forward",
    "maxpool2d_backward",
    "avgpool2d_forward",
    "avgpool2d_backward",
    "pool_output_size",
]


@njit(cache=True, nogil=True)
def pool_output_size(H, k, s, p, ceil_mode=False):
    """Number of windows of size k, stride s over H with padding p on both sides (as PyTorch:
    in ceil mode the last window must start inside the input or its left padding)."""
    span = H + 2 * p - k
    if span < 0:
        return 0
    if not ceil_mode:
        return span // s + 1
    out = (span + s - 1) // s + 1
    if (out - 1) * s >= H + p:
        out -= 1
    return out


@njit(cache=True, nogil=True)
def _pool_shapes_ok(N, C, H, W, kh, kw, sh, sw, ph, pw, out_shape, ceil_mode=False):
    """True if out_shape == (N, C, OH, OW) for this window sweep over (N, C, H, W)."""
    OH = pool_output_size(H, kh, sh, ph, ceil_mode)
    OW = pool_output_size(W, kw, sw, pw, ceil_mode)
    return (out_shape[0] == N and out_shape[1] == C
            and out_shape[2] == OH and out_shape[3] == OW)


# inlined into their callers at Numba's IR level: not compiled on their own as well (less to
# compile at a cold first step of a CNN, same speed)
@njit(cache=True, nogil=True, inline="always")
def _take_if_greater(v, k, best, best_k):
    """One step of the window scan, written as selects rather than branches (the data decides
    them at random, so branches would mispredict): a strictly greater value (the first max
    wins ties) or a NaN (which propagates) replaces the current best."""
    c = (v > best) | (v != v)
    return (v if c else best), (k if c else best_k)


@njit(cache=True, nogil=True, inline="always")
def _max_2x2(a, b, c, d, k, W):
    """Max of the 2x2 window (a b / c d) whose top-left element has flat index k in a plane of
    width W, and the flat index of that max (first max wins ties, NaN propagates)."""
    best, best_k = _take_if_greater(b, k + 1, a, k)
    best, best_k = _take_if_greater(c, k + W, best, best_k)
    return _take_if_greater(d, k + W + 1, best, best_k)


@njit(cache=True, nogil=True)
def maxpool2d_forward(x, kh, kw, sh, sw, ph, pw, y, idx, ceil_mode=False):
    """y[n, c, oh, ow] = max over the window; idx = flat index h*W + w of that max in x[n, c].

    A window lying entirely in the padding (only possible when ph >= kh or
    pw >= kw, which PyTorch rejects) gets y = -inf and idx = -1.
    An empty idx (size 0) means "no backward will follow": only y is written.
    A 2x2 window with stride 2 and no padding has a loop of its own; otherwise windows inside
    the input take a fast path (the 2x2 window unrolled, other sizes through a table of tap
    offsets) and windows reaching into the padding a bounds-checked one.
    """
    N, C, H, W = x.shape
    OH = y.shape[2]
    OW = y.shape[3]
    keep_idx = idx.size != 0
    if not _pool_shapes_ok(N, C, H, W, kh, kw, sh, sw, ph, pw, y.shape, ceil_mode) or (
            keep_idx and idx.shape != y.shape):
        raise ValueError("maxpool2d_forward: y and idx must have shape (N, C, OH, OW)")
    if (kh == 2 and kw == 2 and sh == 2 and sw == 2 and ph == 0 and pw == 0
            and 2 * OH <= H and 2 * OW <= W):
        # The common case (MaxPool2d(2)), with its own loop: rows of the plane, the four taps
        # unrolled, no bounds tests. ~2-4x faster than the general loop below.
        for t in prange(N * C):
            xp = x[t // C, t % C]
            yp = y[t // C, t % C]
            for oh in range(OH):
                r0 = xp[2 * oh]
                r1 = xp[2 * oh + 1]
                k0 = 2 * oh * W
                for ow in range(OW):
                    best, best_k = _max_2x2(r0[2 * ow], r0[2 * ow + 1], r1[2 * ow],
                                            r1[2 * ow + 1], k0 + 2 * ow, W)
                    yp[oh, ow] = best
                    if keep_idx:
                        idx[t // C, t % C, oh, ow] = best_k
        return
    K = kh * kw
    offs = np.empty(K, np.int64)
    for i in range(kh):
        for j in range(kw):
            offs[i * kw + j] = i * W + j
    xf = x.reshape(x.size)
    yf = y.reshape(y.size)
    idxf = idx.reshape(idx.size)
    for t in prange(N * C):
        xb = t * H * W
        for oh in range(OH):
            h0 = oh * sh - ph
            yb = (t * OH + oh) * OW
            for ow in range(OW):
                w0 = ow * sw - pw
                if h0 >= 0 and w0 >= 0 and h0 + kh <= H and w0 + kw <= W:
                    k0 = h0 * W + w0
                    if K == 4 and kw == 2:
                        best, best_k = _max_2x2(xf[xb + k0], xf[xb + k0 + 1], xf[xb + k0 + W],
                                                xf[xb + k0 + W + 1], k0, W)
                    else:
                        best, best_k = xf[xb + k0], k0
                        for q in range(1, K):
                            k = k0 + offs[q]
                            best, best_k = _take_if_greater(xf[xb + k], k, best, best_k)
                else:
                    h_lo = max(h0, 0)
                    h_hi = min(h0 + kh, H)
                    w_lo = max(w0, 0)
                    w_hi = min(w0 + kw, W)
                    best = -np.inf
                    # Like PyTorch, start from the first in-bounds position so that a
                    # window of all -inf still points at a real input element.
                    best_k = h_lo * W + w_lo if (h_lo < h_hi and w_lo < w_hi) else -1
                    for h in range(h_lo, h_hi):
                        for w in range(w_lo, w_hi):
                            best, best_k = _take_if_greater(xf[xb + h * W + w], h * W + w,
                                                            best, best_k)
                yf[yb + ow] = best
                if keep_idx:
                    idxf[yb + ow] = best_k


@njit(cache=True, nogil=True)
def maxpool2d_backward(gy, idx, dx):
    """dx = 0, then dx[n, c].flat[idx[n, c]] += gy[n, c] (overlapping windows accumulate).

    Entries with idx < 0 (windows entirely in the padding) are skipped.
    """
    N, C, H, W = dx.shape
    OH = gy.shape[2]
    OW = gy.shape[3]
    if idx.shape != gy.shape or gy.shape[0] != N or gy.shape[1] != C:
        raise ValueError("maxpool2d_backward: gy and idx must have shape (N, C, OH, OW)")
    # Flat (plane, position) views of the C-contiguous arrays; no data is copied.
    dxf = dx.reshape((N * C, H * W))
    gyf = gy.reshape((N * C, OH * OW))
    idxf = idx.reshape((N * C, OH * OW))
    for t in range(N * C):
        for k in range(H * W):
            dxf[t, k] = 0
        for p in range(OH * OW):
            k = idxf[t, p]
            if k >= 0:
                dxf[t, k] += gyf[t, p]


@njit(cache=True, nogil=True)
def _avg_divisor(h0, w0, h_lo, h_hi, w_lo, w_hi, kh, kw, H, W, ph, pw, count_include_pad):
    """What AvgPool divides a window's sum by (PyTorch's rule)."""
    if count_include_pad:
        return (min(h0 + kh, H + ph) - h0) * (min(w0 + kw, W + pw) - w0)
    return (h_hi - h_lo) * (w_hi - w_lo)


@njit(cache=True, nogil=True)
def avgpool2d_forward(x, kh, kw, sh, sw, ph, pw, y, ceil_mode=False, count_include_pad=True):
    """y[n, c, oh, ow] = (sum of the in-bounds window elements) / divisor (kh*kw in floor mode
    with count_include_pad; see the module docstring)."""
    N, C, H, W = x.shape
    OH = y.shape[2]
    OW = y.shape[3]
    if not _pool_shapes_ok(N, C, H, W, kh, kw, sh, sw, ph, pw, y.shape, ceil_mode):
        raise ValueError("avgpool2d_forward: y must have shape (N, C, OH, OW)")
    # In floor mode with the padding counted, every window is kh*kw: no per-window divisor.
    fixed_area = count_include_pad and not ceil_mode
    area = kh * kw
    for t in range(N * C):
        n = t // C
        c = t % C
        for oh in range(OH):
            h0 = oh * sh - ph
            h_lo = max(h0, 0)
            h_hi = min(h0 + kh, H)
            for ow in range(OW):
                w0 = ow * sw - pw
                w_lo = max(w0, 0)
                w_hi = min(w0 + kw, W)
                s = 0.0  # float64 accumulator, also for float32 input
                for h in range(h_lo, h_hi):
                    for w in range(w_lo, w_hi):
                        s += x[n, c, h, w]
                y[n, c, oh, ow] = s / (area if fixed_area else _avg_divisor(
                    h0, w0, h_lo, h_hi, w_lo, w_hi, kh, kw, H, W, ph, pw, count_include_pad))


@njit(cache=True, nogil=True)
def avgpool2d_backward(gy, kh, kw, sh, sw, ph, pw, dx, ceil_mode=False, count_include_pad=True):
    """dx = 0, then every in-bounds element of window (oh, ow) gets += gy[n, c, oh, ow] / divisor
    (the forward's divisor)."""
    N, C, H, W = dx.shape
    OH = gy.shape[2]
    OW = gy.shape[3]
    if not _pool_shapes_ok(N, C, H, W, kh, kw, sh, sw, ph, pw, gy.shape, ceil_mode):
        raise ValueError("avgpool2d_backward: gy must have shape (N, C, OH, OW)")
    fixed_area = count_include_pad and not ceil_mode
    area = kh * kw
    for t in range(N * C):
        n = t // C
        c = t % C
        for h in range(H):
            for w in range(W):
                dx[n, c, h, w] = 0
        for oh in range(OH):
            h0 = oh * sh - ph
            h_lo = max(h0, 0)
            h_hi = min(h0 + kh, H)
            for ow in range(OW):
                w0 = ow * sw - pw
                w_lo = max(w0, 0)
                w_hi = min(w0 + kw, W)
                g = gy[n, c, oh, ow] / (area if fixed_area else _avg_divisor(
                    h0, w0, h_lo, h_hi, w_lo, w_hi, kh, kw, H, W, ph, pw, count_include_pad))
                for h in range(h_lo, h_hi):
                    for w in range(w_lo, w_hi):
                        dx[n, c, h, w] += g
