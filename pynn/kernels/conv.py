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

Both kernels walk ``cols`` row by row, front to back, one image plane at a time, so that every
inner loop runs over all OH*OW output positions of one image instead of over one short output
row. Two ways in, chosen per geometry:

* stride 1 with the output as wide as the input (OW == W: "same" padding, the ResNet and
  README convs): tap (i, j) reads the plane shifted by one constant flat offset,
  ``(i*dh - ph)*W + j*dw - pw``, so a cols row is one contiguous copy of the plane with the
  columns that fall in the left/right padding masked to 0 (``shift_masks``) and the rows
  that fall in the top/bottom padding set to 0: vector loads and stores, no gather. col2im
  adds the same masked span back.
* any other geometry: a gather through a table of tap offsets (``tap_offsets``).

Both tables are made by NumPy once per geometry (cached, read-only) and passed in, so they are
neither compiled nor rebuilt per call. The inner loops index views with their own loop
counter, never ``start + p`` into a flat array: Numba must then check each index for
negative wraparound, which stops LLVM from vectorizing the loop (``python
benchmarks/kernels_micro.py`` times the kernels). col2im's row loop is serial (rows of
different taps add into the same ``dx`` entries). Both run on one thread: see
pynn/kernels/__init__.py.

``weight_grad_small`` is the weight gradient ``cols @ gz.T`` for a layer whose weight has few
entries (a first layer on a gray image: 9 rows, 8 to 32 filters): a product with a tiny output
and a very long inner axis, where OpenBLAS reaches a small fraction of its speed on big products.
``python benchmarks/weight_grad.py`` times the two.
"""
import functools

import numpy as np
from numba import njit

__all__ = ["conv_output_shape", "tap_offsets", "shift_masks", "im2col", "col2im",
           "weight_grad_small", "SMALL_WEIGHT_GRAD"]

#: weight_grad_small serves products whose output (rows x filters) has at most this many
#: entries; above it, BLAS's blocked product is faster
SMALL_WEIGHT_GRAD = 288


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


@functools.lru_cache(maxsize=256)
def tap_offsets(H, W, kh, kw, sh, sw, ph, pw, dh=1, dw=1, ph_end=-1, pw_end=-1):
    """Return (src, padded): src (kh*kw, OH*OW) int64, where src[i*kw + j, oh*OW + ow] is the
    flat index h*W + w of the input element that output position (oh, ow) reads through
    kernel tap (i, j), or -1 where that element lies in the zero padding; padded says whether
    any entry is -1.

    One small table per geometry (kh*kw*OH*OW entries, made by NumPy once and cached,
    read-only) turns the unfold into long, branch-light gather loops over the output
    positions, instead of short loops over output rows.
    """
    size = _out_size.py_func
    OH, OW = size(H, kh, sh, ph, dh, ph_end), size(W, kw, sw, pw, dw, pw_end)
    h = np.arange(OH)[None, :, None] * sh - ph + np.arange(kh)[:, None, None] * dh   # (kh,OH,1)
    w = np.arange(OW)[None, None, :] * sw - pw + np.arange(kw)[:, None, None] * dw   # (kw,1,OW)
    h, w = h[:, None], w[None, :]                                 # (kh,1,OH,1), (1,kw,1,OW)
    inside = (h >= 0) & (h < H) & (w >= 0) & (w < W)
    src = np.where(inside, h * W + w, -1).astype(np.int64).reshape(kh * kw, OH * OW)
    src.flags.writeable = False
    return src, bool((src < 0).any())


@functools.lru_cache(maxsize=256)
def shift_masks(H, W, kh, kw, sh, sw, ph, pw, dh=1, dw=1, ph_end=-1, pw_end=-1):
    """Return inside (kw, OH*W) bool for a stride-1 geometry whose output is as wide as its
    input (OW == W), else None: inside[j, oh*W + ow] says whether kernel column j of output
    column ow reads inside the image (0 <= ow - pw + j*dw < W). Made once, cached, read-only."""
    size = _out_size.py_func
    OH, OW = size(H, kh, sh, ph, dh, ph_end), size(W, kw, sw, pw, dw, pw_end)
    if sh != 1 or sw != 1 or OW != W:
        return None
    w = np.arange(W)[None, :] - pw + np.arange(kw)[:, None] * dw             # (kw, W)
    inside = np.tile((w >= 0) & (w < W), (1, OH))
    inside.flags.writeable = False
    return inside


def _checked_taps(name, x_shape, cols, kh, kw, sh, sw, ph, pw, dh, dw, ph_end, pw_end):
    N, C, H, W = x_shape
    src, padded = tap_offsets(H, W, kh, kw, sh, sw, ph, pw, dh, dw, ph_end, pw_end)
    K, P = src.shape
    if cols.shape[0] != C * K or cols.shape[1] != N * P:
        raise ValueError(f"{name}: cols must have shape (C*kh*kw, N*OH*OW) = "
                         f"({C * K}, {N * P}), got {cols.shape}")
    return src, padded


def im2col(x, kh, kw, sh, sw, ph, pw, cols, dh=1, dw=1, ph_end=-1, pw_end=-1):
    """Unfold x (N, C, H, W) into cols (C*kh*kw, N*OH*OW); every entry of cols is written."""
    src, padded = _checked_taps("im2col", x.shape, cols, kh, kw, sh, sw, ph, pw, dh, dw,
                                ph_end, pw_end)
    planes = _planes(x, "im2col", "x")
    inside = shift_masks(*x.shape[2:], kh, kw, sh, sw, ph, pw, dh, dw, ph_end, pw_end)
    if inside is None:
        _im2col(planes, src, padded, cols)
    else:
        _im2col_shifted(x, kh, ph, dh, pw, dw, inside, cols)


def col2im(cols, kh, kw, sh, sw, ph, pw, dx, dh=1, dw=1, ph_end=-1, pw_end=-1):
    """Adjoint of im2col: dx (N, C, H, W) = 0, then scatter-add every cols entry back.

    Entries of cols that correspond to padding are dropped.
    """
    src, padded = _checked_taps("col2im", dx.shape, cols, kh, kw, sh, sw, ph, pw, dh, dw,
                                ph_end, pw_end)
    planes = _planes(dx, "col2im", "dx")
    inside = shift_masks(*dx.shape[2:], kh, kw, sh, sw, ph, pw, dh, dw, ph_end, pw_end)
    if inside is None:
        _col2im(cols, src, padded, planes)
    else:
        _col2im_shifted(cols, kh, ph, dh, pw, dw, inside, dx)


def _planes(x, name, what):
    """x (N, C, H, W) as a (N*C, H*W) view, one image plane per row: the kernels index planes
    without a reshape of their own (Numba's reshape compiles a helper at a cold start)."""
    if not x.flags.c_contiguous:
        raise ValueError(f"{name}: {what} must be C-contiguous")
    N, C, H, W = x.shape
    return x.reshape(N * C, H * W)


@njit(cache=True, nogil=True)
def _im2col(x, src, padded, cols):
    """x: the planes (N*C, H*W), src and padded from tap_offsets, cols (C*K, N*P)."""
    K, P = src.shape
    C = cols.shape[0] // K
    N = x.shape[0] // C
    # Row r = c*K + tap of cols is written front to back, one image after another.
    for r in range(C * K):
        c = r // K
        tap = src[r % K]
        row = cols[r]
        for n in range(N):
            out = row[n * P:(n + 1) * P]
            plane = x[n * C + c]
            if padded:
                for p in range(P):
                    k = tap[p]
                    out[p] = plane[k] if k >= 0 else 0
            else:
                for p in range(P):
                    out[p] = plane[tap[p]]


@njit(cache=True, nogil=True)
def _col2im(cols, src, padded, dx):
    """dx: the planes (N*C, H*W) it overwrites; the rest as _im2col."""
    K, P = src.shape
    C = cols.shape[0] // K
    N = dx.shape[0] // C
    for i in range(dx.shape[0]):
        for k in range(dx.shape[1]):
            dx[i, k] = 0
    # Read cols front to back, row r = c*K + tap, one image after another, adding into dx.
    # (Serial on purpose: rows of different taps add into the same dx entries. A per-plane
    # loop would be race-free but measured ~25% slower on one thread at MNIST sizes.)
    for r in range(C * K):
        c = r // K
        tap = src[r % K]
        row = cols[r]
        for n in range(N):
            g = row[n * P:(n + 1) * P]
            plane = dx[n * C + c]
            if padded:
                for p in range(P):
                    k = tap[p]
                    if k >= 0:
                        plane[k] += g[p]
            else:
                for p in range(P):
                    plane[tap[p]] += g[p]


@njit(cache=True, nogil=True)
def _shifted_tap(inside, H, W, r, kh, ph, dh, pw, dw):
    """Row r = c*kh*kw + i*kw + j of cols in a stride-1, OW == W geometry: its channel c, the
    flat shift from output position to input position, the span [q0, q1) of output positions
    whose input row lies inside the image (first valid row's first valid column to the last
    valid row's last valid column, so every input index of the span is inside), and the
    column mask of that span (inside[j, q0:q1])."""
    kw, P = inside.shape
    t = r % (kh * kw)
    i, j = t // kw, t % kw
    hs, ws = i * dh - ph, j * dw - pw
    # max(0, -hs), min(P // W, H - hs), max(0, -ws), min(W, W - ws), written out: Numba's
    # min and max are helpers of their own to compile at a cold start
    o0, o1 = (-hs if hs < 0 else 0), (H - hs if H - hs < P // W else P // W)
    a, b = (-ws if ws < 0 else 0), (W - ws if ws > 0 else W)
    shift, q0, q1 = hs * W + ws, o0 * W + a, (o1 - 1) * W + b
    if o1 <= o0 or b <= a:
        shift, q0, q1 = 0, 0, 0
    return r // (kh * kw), shift, q0, q1, inside[j, q0:q1]


@njit(cache=True, nogil=True)
def _im2col_shifted(x, kh, ph, dh, pw, dw, inside, cols):
    N, C, H, W = x.shape
    P = inside.shape[1]
    xf = x.reshape(x.size)
    for r in range(C * kh * inside.shape[0]):
        c, shift, q0, q1, mask = _shifted_tap(inside, H, W, r, kh, ph, dh, pw, dw)
        row = cols[r]
        for n in range(N):
            out = row[n * P:(n + 1) * P]
            start = (n * C + c) * H * W + shift + q0        # >= 0: q0 is inside the plane
            src = xf[start:start + (q1 - q0)]
            mid = out[q0:q1]
            for q in range(q0):
                out[q] = 0
            for q in range(q1 - q0):
                mid[q] = src[q] if mask[q] else 0
            for q in range(q1, P):
                out[q] = 0


@njit(cache=True, nogil=True)
def _col2im_shifted(cols, kh, ph, dh, pw, dw, inside, dx):
    N, C, H, W = dx.shape
    P = inside.shape[1]
    dxf = dx.reshape(dx.size)
    for k in range(dx.size):
        dxf[k] = 0
    # the same order of additions as _col2im: rows of cols in turn, images in turn
    for r in range(C * kh * inside.shape[0]):
        c, shift, q0, q1, mask = _shifted_tap(inside, H, W, r, kh, ph, dh, pw, dw)
        row = cols[r]
        for n in range(N):
            g = row[n * P + q0:n * P + q1]
            start = (n * C + c) * H * W + shift + q0
            out = dxf[start:start + (q1 - q0)]
            for q in range(q1 - q0):
                out[q] += g[q] if mask[q] else 0


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"reassoc"})
def weight_grad_small(cols, c0, c1, gz, out):
    """out (R, O) = cols[:, c0:c1] @ gz.T, for cols (R, J), gz (O, c1 - c0) and a small R x O.

    The inner axis is cut into chunks that stay in the L1 cache; within a chunk four filters
    share each load of a cols row, and each dot product is summed in vector lanes (fastmath's
    `reassoc` alone: NaN and inf propagate as in an ordinary sum)."""
    R, O, J = cols.shape[0], gz.shape[0], c1 - c0
    zero = out.dtype.type(0)
    for r in range(R):
        for o in range(O):
            out[r, o] = zero
    for j0 in range(0, J, 512):
        j1 = j0 + 512 if j0 + 512 < J else J     # not min(): a helper of its own to compile
        for r in range(R):
            a = cols[r, c0 + j0:c0 + j1]
            o = 0
            while o + 4 <= O:
                b0, b1 = gz[o, j0:j1], gz[o + 1, j0:j1]
                b2, b3 = gz[o + 2, j0:j1], gz[o + 3, j0:j1]
                s0, s1, s2, s3 = zero, zero, zero, zero
                for j in range(a.size):
                    v = a[j]
                    s0 += v * b0[j]
                    s1 += v * b1[j]
                    s2 += v * b2[j]
                    s3 += v * b3[j]
                out[r, o] += s0
                out[r, o + 1] += s1
                out[r, o + 2] += s2
                out[r, o + 3] += s3
                o += 4
            while o < O:
                b0 = gz[o, j0:j1]
                s0 = zero
                for j in range(a.size):
                    s0 += a[j] * b0[j]
                out[r, o] += s0
                o += 1
