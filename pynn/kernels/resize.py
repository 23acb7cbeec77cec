"""Numba kernels that resize NCHW planes: nearest and bilinear upsampling, adaptive average
pooling. Each reads its geometry from small per-axis tables (made by the ``*_table``
functions), so the loops over the N*C planes and the output pixels do no index arithmetic.

Layouts (all arrays C-contiguous): x, dx are (N, C, H, W); y, gy are (N, C, OH, OW).
Backward kernels overwrite dx (zero it, then add each output's gradient back to the input
elements it was made from).
"""
import math

import numpy as np
from numba import njit

__all__ = [
    "source_scale",
    "nearest_table",
    "linear_table",
    "adaptive_table",
    "upsample_nearest_forward",
    "upsample_nearest_backward",
    "upsample_bilinear_forward",
    "upsample_bilinear_backward",
    "adaptive_avgpool_forward",
    "adaptive_avgpool_backward",
]


def source_scale(in_size, out_size, scale_factor, align_corners):
    """How far apart in the input two output pixels are (PyTorch's rule): 1/scale_factor when
    a factor was given, else in/out; with align_corners, (in - 1)/(out - 1)."""
    if align_corners:
        return (in_size - 1) / (out_size - 1) if out_size > 1 else 0.0
    if scale_factor is not None:
        return 1.0 / scale_factor
    return in_size / out_size


def nearest_table(in_size, out_size, scale):
    """src[o] = min(floor(o * scale), in - 1), the input index output o copies (mode nearest)."""
    o = np.arange(out_size)
    return np.minimum(np.floor(o * scale).astype(np.int64), in_size - 1)


def linear_table(in_size, out_size, scale, align_corners):
    """(i0, i1, lam1): output o interpolates input i0 (weight 1 - lam1) and i1 (weight lam1)."""
    o = np.arange(out_size, dtype=np.float64)
    src = o * scale if align_corners else np.maximum(scale * (o + 0.5) - 0.5, 0.0)
    i0 = np.floor(src).astype(np.int64)
    i0 = np.minimum(i0, in_size - 1)
    i1 = np.minimum(i0 + 1, in_size - 1)
    return i0, i1, src - i0


def adaptive_table(in_size, out_size):
    """(start, end): output o averages input [start[o], end[o]) (PyTorch's AdaptiveAvgPool)."""
    start = np.array([(o * in_size) // out_size for o in range(out_size)], np.int64)
    end = np.array([math.ceil((o + 1) * in_size / out_size) for o in range(out_size)], np.int64)
    return start, end


@njit(cache=True)
def upsample_nearest_forward(x, ih, iw, y):
    """y[n, c, oh, ow] = x[n, c, ih[oh], iw[ow]]."""
    N, C, H, W = x.shape
    OH, OW = y.shape[2], y.shape[3]
    if y.shape[0] != N or y.shape[1] != C or ih.size != OH or iw.size != OW:
        raise ValueError("upsample_nearest_forward: y must be (N, C, len(ih), len(iw))")
    for n in range(N):
        for c in range(C):
            for oh in range(OH):
                xr = x[n, c, ih[oh]]
                yr = y[n, c, oh]
                for ow in range(OW):
                    yr[ow] = xr[iw[ow]]


@njit(cache=True)
def upsample_nearest_backward(gy, ih, iw, dx):
    """dx = 0, then dx[n, c, ih[oh], iw[ow]] += gy[n, c, oh, ow]."""
    N, C, H, W = dx.shape
    OH, OW = gy.shape[2], gy.shape[3]
    if gy.shape[0] != N or gy.shape[1] != C or ih.size != OH or iw.size != OW:
        raise ValueError("upsample_nearest_backward: gy must be (N, C, len(ih), len(iw))")
    for n in range(N):
        for c in range(C):
            for h in range(H):
                for w in range(W):
                    dx[n, c, h, w] = 0
            for oh in range(OH):
                dr = dx[n, c, ih[oh]]
                gr = gy[n, c, oh]
                for ow in range(OW):
                    dr[iw[ow]] += gr[ow]


@njit(cache=True)
def upsample_bilinear_forward(x, h0, h1, lh, w0, w1, lw, y):
    """y = (1-lh) * ((1-lw) x[h0, w0] + lw x[h0, w1]) + lh * ((1-lw) x[h1, w0] + lw x[h1, w1])."""
    N, C, H, W = x.shape
    OH, OW = y.shape[2], y.shape[3]
    if y.shape[0] != N or y.shape[1] != C or h0.size != OH or w0.size != OW:
        raise ValueError("upsample_bilinear_forward: y must be (N, C, len(h0), len(w0))")
    for n in range(N):
        for c in range(C):
            for oh in range(OH):
                a = h0[oh]
                b = h1[oh]
                l1 = lh[oh]
                l0 = 1.0 - l1
                for ow in range(OW):
                    p = w0[ow]
                    q = w1[ow]
                    m1 = lw[ow]
                    m0 = 1.0 - m1
                    y[n, c, oh, ow] = (l0 * (m0 * x[n, c, a, p] + m1 * x[n, c, a, q])
                                       + l1 * (m0 * x[n, c, b, p] + m1 * x[n, c, b, q]))


@njit(cache=True)
def upsample_bilinear_backward(gy, h0, h1, lh, w0, w1, lw, dx):
    """dx = 0, then each gy[oh, ow] is added to its four source pixels with their weights."""
    N, C, H, W = dx.shape
    OH, OW = gy.shape[2], gy.shape[3]
    if gy.shape[0] != N or gy.shape[1] != C or h0.size != OH or w0.size != OW:
        raise ValueError("upsample_bilinear_backward: gy must be (N, C, len(h0), len(w0))")
    for n in range(N):
        for c in range(C):
            for h in range(H):
                for w in range(W):
                    dx[n, c, h, w] = 0
            for oh in range(OH):
                a = h0[oh]
                b = h1[oh]
                l1 = lh[oh]
                l0 = 1.0 - l1
                for ow in range(OW):
                    p = w0[ow]
                    q = w1[ow]
                    m1 = lw[ow]
                    m0 = 1.0 - m1
                    g = gy[n, c, oh, ow]
                    dx[n, c, a, p] += l0 * m0 * g
                    dx[n, c, a, q] += l0 * m1 * g
                    dx[n, c, b, p] += l1 * m0 * g
                    dx[n, c, b, q] += l1 * m1 * g


@njit(cache=True)
def adaptive_avgpool_forward(x, hs, he, ws, we, y):
    """y[n, c, oh, ow] = mean of x[n, c, hs[oh]:he[oh], ws[ow]:we[ow]] (float64 sums)."""
    N, C, H, W = x.shape
    OH, OW = y.shape[2], y.shape[3]
    if y.shape[0] != N or y.shape[1] != C or hs.size != OH or ws.size != OW:
        raise ValueError("adaptive_avgpool_forward: y must be (N, C, len(hs), len(ws))")
    for n in range(N):
        for c in range(C):
            for oh in range(OH):
                for ow in range(OW):
                    s = 0.0
                    for h in range(hs[oh], he[oh]):
                        for w in range(ws[ow], we[ow]):
                            s += x[n, c, h, w]
                    y[n, c, oh, ow] = s / ((he[oh] - hs[oh]) * (we[ow] - ws[ow]))


@njit(cache=True)
def adaptive_avgpool_backward(gy, hs, he, ws, we, dx):
    """dx = 0, then each element of window (oh, ow) gets += gy[n, c, oh, ow] / window size."""
    N, C, H, W = dx.shape
    OH, OW = gy.shape[2], gy.shape[3]
    if gy.shape[0] != N or gy.shape[1] != C or hs.size != OH or ws.size != OW:
        raise ValueError("adaptive_avgpool_backward: gy must be (N, C, len(hs), len(ws))")
    for n in range(N):
        for c in range(C):
            for h in range(H):
                for w in range(W):
                    dx[n, c, h, w] = 0
            for oh in range(OH):
                for ow in range(OW):
                    g = gy[n, c, oh, ow] / ((he[oh] - hs[oh]) * (we[ow] - ws[ow]))
                    for h in range(hs[oh], he[oh]):
                        for w in range(ws[ow], we[ow]):
                            dx[n, c, h, w] += g
