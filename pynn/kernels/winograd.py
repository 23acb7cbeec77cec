"""Numba kernels of a 3x3, stride-1 convolution, alone or fused with the 2x2 max-pool after it,
computed with Winograd's minimal filtering F(2x2, 3x3) (Lavin and Gray, "Fast Algorithms for
Convolutional Neural Networks", 2015).

The output is cut into 2x2 tiles (with a pool, each tile is one of its windows: the output
kernel writes the window's max and argmax; alone, winograd_output writes the tile). A tile is
computed from the 4x4 patch of input d under it and the 3x3 filter g as
``Y = A^T [(G g G^T) * (B^T d B)] A``: 16 products per tile and channel pair instead of the
direct method's 36. Summed over the input
channels, the 16 element-wise products become 16 matrix products (BLAS), each of the
transformed filters U[xi] (O, C) with the transformed patches V[xi] (C, T), T the number of
tiles; ``xi = 4*a + b`` runs over the 4x4 transformed positions. The transforms themselves
are the kernels below, with only additions and subtractions (G has halves: the filter
transform is a small product, WEIGHT_TRANSFORM, done once a step).

Layouts (C-contiguous):

* patches ``D`` (C*16, T): im2col's layout for a 4x4 window with stride 2 (pynn.kernels.conv),
  row ``c*16 + 4*r + s``, column ``t = n*TH*TW + ti*TW + tj``, the tile's top-left input pixel
  at (2*ti - ph, 2*tj - pw)
* ``V``, ``dV`` (16, C, T); ``U``, ``dU`` (16, O, C); ``M``, ``Mg`` (16, O, T)
* pooled ``y``, ``gy``, ``idx`` (N, O, TH, TW) as in pynn.kernels.conv_pool: idx the flat index
  h*OW + w of the window's max inside its conv-output plane (first max wins, NaN propagates);
  unpooled ``y``, ``g`` (N, O, 2*TH, 2*TW)

Backward is the same computation transposed: ``Mg[xi]`` is A gy A^T of each tile's gradient
(a single nonzero, at the argmax), ``dU[xi] = Mg[xi] V[xi]^T`` (then ``dg = G^T dU G``) and
``dV[xi] = U[xi]^T Mg[xi]`` (then ``dd = B dV B^T``, added back by col2im). The results are the
direct method's up to rounding (float32: a few units in the last place of the sums).

Every line of a transform is a loop of its own over the tiles, two (or three) rows in and one
out (``_add``, ``_sub``, ...): LLVM vectorizes those. With all 16 rows read and written in one
loop it cannot rule out that they overlap and emitted scalar code, about twice as slow.
Conv2d runs them a block of images at a time, each slice of the batch on a thread of its own.

Derivative: the kernels are linear maps; each one's adjoint is the kernel beside it
(winograd_input / winograd_input_adjoint, winograd_output / winograd_output_grad,
winograd_output_maxpool / winograd_maxpool_grad).
"""
import functools

import numpy as np
from numba import njit

from .activation import ACT_NONE, ACT_RELU
from .pool import _max_2x2

__all__ = ["WEIGHT_TRANSFORM", "tile_bases", "winograd_input", "winograd_input_adjoint",
           "winograd_output", "winograd_output_grad", "winograd_output_maxpool",
           "winograd_maxpool_grad"]

_G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])
#: (16, 9): U[4a + b] = sum over (i, j) of G[a, i] G[b, j] g[i, j], for g flattened as 3*i + j
WEIGHT_TRANSFORM = np.kron(_G, _G)


@functools.lru_cache(maxsize=64)
def tile_bases(TH, TW, OW):
    """(TH*TW,) int32, read-only: flat index 2*ti*OW + 2*tj of each tile's top-left output."""
    ti, tj = np.divmod(np.arange(TH * TW), TW)
    bases = (2 * ti * OW + 2 * tj).astype(np.int32)
    bases.flags.writeable = False
    return bases


# One loop each, a single operation: inlined many times into the kernels, so they are kept
# branch-free (helpers taking the signs as arguments compiled slower).
@njit(cache=True, nogil=True, inline="always")
def _add(a, b, out):
    """out = a + b"""
    for t in range(out.shape[0]):
        out[t] = a[t] + b[t]


@njit(cache=True, nogil=True, inline="always")
def _sub(a, b, out):
    """out = a - b"""
    for t in range(out.shape[0]):
        out[t] = a[t] - b[t]


@njit(cache=True, nogil=True, inline="always")
def _copy(a, out):
    """out = a"""
    for t in range(out.shape[0]):
        out[t] = a[t]


@njit(cache=True, nogil=True, inline="always")
def _neg(a, out):
    """out = -a"""
    for t in range(out.shape[0]):
        out[t] = -a[t]


@njit(cache=True, nogil=True, inline="always")
def _add3(a, b, c, out):
    """out = a + b + c"""
    for t in range(out.shape[0]):
        out[t] = a[t] + b[t] + c[t]


@njit(cache=True, nogil=True, inline="always")
def _sub3(a, b, c, out):
    """out = a - b - c"""
    for t in range(out.shape[0]):
        out[t] = a[t] - b[t] - c[t]


@njit(cache=True, nogil=True, inline="always")
def _bt_rows(d0, d1, d2, d3, o0, o1, o2, o3):
    """Rows o = B^T (d0, d1, d2, d3), B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0],
    [0, 1, 0, -1]]: o0 = d0 - d2, o1 = d1 + d2, o2 = d2 - d1, o3 = d1 - d3."""
    _sub(d0, d2, o0)
    _add(d1, d2, o1)
    _sub(d2, d1, o2)
    _sub(d1, d3, o3)


@njit(cache=True, nogil=True)
def winograd_input(D, V, E):
    """V[4a + b, c, t] = (B^T d B)[a, b] for the 4x4 patch d = D[c*16:(c + 1)*16, t]; E is
    scratch of (16, T) (the patches after B^T along s)."""
    C, T = V.shape[1], V.shape[2]
    if V.shape[0] != 16 or D.shape[0] != 16 * C or D.shape[1] != T or E.shape != (16, T):
        raise ValueError("winograd_input: D must be (C*16, T), V (16, C, T), E (16, T)")
    for c in range(C):
        d = D[16 * c:16 * (c + 1)]
        for r in range(4):           # row r of each patch, along s: E[4r + b]
            _bt_rows(d[4 * r], d[4 * r + 1], d[4 * r + 2], d[4 * r + 3],
                     E[4 * r], E[4 * r + 1], E[4 * r + 2], E[4 * r + 3])
        for b in range(4):           # then along r: V[4a + b]
            _bt_rows(E[b], E[4 + b], E[8 + b], E[12 + b],
                     V[b, c], V[4 + b, c], V[8 + b, c], V[12 + b, c])


@njit(cache=True, nogil=True, inline="always")
def _b_rows(v0, v1, v2, v3, o0, o1, o2, o3, s):
    """Rows o = B (v0, v1, v2, v3) (the adjoint of _bt_rows): o0 = v0, o1 = v1 - v2 + v3,
    o2 = v1 + v2 - v0, o3 = -v3; s is scratch of one row."""
    _copy(v0, o0)
    _sub(v1, v2, s)
    _add(s, v3, o1)
    _add(v1, v2, s)
    _sub(s, v0, o2)
    _neg(v3, o3)


@njit(cache=True, nogil=True)
def winograd_input_adjoint(dV, dD, E):
    """The adjoint of winograd_input: dD[c*16 + 4r + s, t] = (B dV[:, c, t] B^T)[r, s]; E is
    scratch of (17, T)."""
    C, T = dV.shape[1], dV.shape[2]
    if dV.shape[0] != 16 or dD.shape[0] != 16 * C or dD.shape[1] != T or E.shape != (17, T):
        raise ValueError("winograd_input_adjoint: dV must be (16, C, T), dD (C*16, T), E (17, T)")
    for c in range(C):
        d = dD[16 * c:16 * (c + 1)]
        for b in range(4):           # along a: E[4r + b]
            _b_rows(dV[b, c], dV[4 + b, c], dV[8 + b, c], dV[12 + b, c],
                    E[b], E[4 + b], E[8 + b], E[12 + b], E[16])
        for r in range(4):           # then along b: dD[c*16 + 4r + s]
            _b_rows(E[4 * r], E[4 * r + 1], E[4 * r + 2], E[4 * r + 3],
                    d[4 * r], d[4 * r + 1], d[4 * r + 2], d[4 * r + 3], E[16])


@njit(cache=True, nogil=True, inline="always")
def _output_tiles(m, F):
    """The output tiles A^T m A of the (16, L) products m, A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]:
    along b into F[2a + s], then along a into F[8 + 2r + s] (the tile's output (r, s))."""
    for a in range(4):
        _add3(m[4 * a], m[4 * a + 1], m[4 * a + 2], F[2 * a])
        _sub3(m[4 * a + 1], m[4 * a + 2], m[4 * a + 3], F[2 * a + 1])
    for s in range(2):
        _add3(F[s], F[2 + s], F[4 + s], F[8 + s])
        _sub3(F[2 + s], F[4 + s], F[6 + s], F[10 + s])


@njit(cache=True, nogil=True, inline="always")
def _tile_gradients(F, mg):
    """The adjoint of _output_tiles: from the tile gradients gz in F[2r + s], mg (16, L) =
    A gz A^T, A = [[1, 0], [1, 1], [1, -1], [0, -1]] (along s into F[4 + 4r + b], then along r
    into mg[4a + b])."""
    for r in range(2):
        q = F[4 + 4 * r:8 + 4 * r]
        g0, g1 = F[2 * r], F[2 * r + 1]
        _copy(g0, q[0])
        _add(g0, g1, q[1])
        _sub(g0, g1, q[2])
        _neg(g1, q[3])
    for b in range(4):
        q0, q1 = F[4 + b], F[8 + b]
        _copy(q0, mg[b])
        _add(q0, q1, mg[4 + b])
        _sub(q0, q1, mg[8 + b])
        _neg(q1, mg[12 + b])


@njit(cache=True, nogil=True)
def winograd_output(M, b, act, y, F):
    """The conv output y (N, O, OH, OW) (OH, OW even) = A^T M[:, o, t] A of each tile, plus
    b[o], through act (identity or ReLU). M is (16, O, N*TH*TW), F scratch of (12, L)."""
    N, O, OH, OW = y.shape
    TH, TW = OH // 2, OW // 2
    TT = TH * TW
    L = O * N * TT
    has_bias = b.shape[0] != 0
    if M.shape[0] != 16 or M.shape[1] != O or M.shape[2] != N * TT or F.shape != (12, L) \
            or OH % 2 or OW % 2:
        raise ValueError("winograd_output: M must be (16, O, N*TH*TW) for y (N, O, 2*TH, 2*TW), "
                         "F (12, L)")
    if (has_bias and b.shape[0] != O) or (act != ACT_NONE and act != ACT_RELU):
        raise ValueError("winograd_output: b must be (O,) or (0,); identity or ReLU only")
    _output_tiles(M.reshape(16, L), F)
    relu = act == ACT_RELU
    zero = y.dtype.type(0)
    for o in range(O):
        bo = b[o] if has_bias else zero
        for n in range(N):
            for ti in range(TH):
                j = (o * N + n) * TT + ti * TW
                for r in range(2):
                    t0, t1 = F[8 + 2 * r, j:j + TW], F[9 + 2 * r, j:j + TW]
                    row = y[n, o, 2 * ti + r]
                    for tj in range(TW):
                        v0, v1 = t0[tj] + bo, t1[tj] + bo
                        if relu:    # as bias_act_forward_cnp: `not v < 0` keeps NaN
                            v0 = v0 if not v0 < 0 else zero
                            v1 = v1 if not v1 < 0 else zero
                        row[2 * tj] = v0
                        row[2 * tj + 1] = v1


@njit(cache=True, nogil=True)
def winograd_output_grad(g, y, act, Mg, gb, F):
    """The adjoint of winograd_output: with gz = g * act'(y) (N, O, OH, OW) cut into its tiles,
    Mg[:, o, n*TH*TW + t] = A gz A^T of each; gb[o] = the sum of gz over n and the plane
    (float64 accumulation), skipped if gb is (0,). F is scratch of (12, L)."""
    N, O, OH, OW = g.shape
    TH, TW = OH // 2, OW // 2
    TT = TH * TW
    L = O * N * TT
    has_bias = gb.shape[0] != 0
    if Mg.shape[0] != 16 or Mg.shape[1] != O or Mg.shape[2] != N * TT or F.shape != (12, L):
        raise ValueError("winograd_output_grad: Mg must be (16, O, N*TH*TW), F (12, L)")
    if y.shape != g.shape or (has_bias and gb.shape[0] != O):
        raise ValueError("winograd_output_grad: y must match g, gb be (O,) or (0,)")
    relu = act == ACT_RELU
    zero = Mg.dtype.type(0)
    for o in range(O):             # the tile gradients gz: F[2r + s]
        acc = 0.0
        for n in range(N):
            for ti in range(TH):
                j = (o * N + n) * TT + ti * TW
                for r in range(2):
                    t0, t1 = F[2 * r, j:j + TW], F[2 * r + 1, j:j + TW]
                    grow, yrow = g[n, o, 2 * ti + r], y[n, o, 2 * ti + r]
                    for tj in range(TW):
                        v0, v1 = grow[2 * tj], grow[2 * tj + 1]
                        if relu:          # as _backprop: 0 where y <= 0, even for inf/NaN g
                            v0 = v0 if yrow[2 * tj] > 0 else zero
                            v1 = v1 if yrow[2 * tj + 1] > 0 else zero
                        t0[tj] = v0
                        t1[tj] = v1
                        acc += v0
                        acc += v1
        if has_bias:
            gb[o] = acc
    _tile_gradients(F, Mg.reshape(16, L))


@njit(cache=True, nogil=True)
def winograd_output_maxpool(M, b, act, bases, OW, y, idx, F):
    """The conv output tile A^T M[:, o, t] A (2x2), plus b[o], through act (identity or ReLU),
    max-pooled: y[n, o, ti, tj] its max, idx its flat index in the (OH, OW) plane (an empty idx:
    only y is written). M is (16, O, N*TH*TW), bases tile_bases(TH, TW, OW), F scratch of
    (12, O*N*TH*TW). A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]: the transforms run as loops over
    whole (O, T) planes, the pooling over each (o, n) run of tiles."""
    N, O, TH, TW = y.shape
    TT = TH * TW
    L = O * N * TT
    has_bias = b.shape[0] != 0
    keep_idx = idx.size != 0
    if M.shape[0] != 16 or M.shape[1] != O or M.shape[2] != N * TT or bases.shape[0] != TT:
        raise ValueError("winograd_output_maxpool: M must be (16, O, N*TH*TW) for y (N, O, TH, TW)")
    if (keep_idx and idx.shape != y.shape) or (has_bias and b.shape[0] != O):
        raise ValueError("winograd_output_maxpool: idx must match y, b must be (O,) or (0,)")
    if act != ACT_NONE and act != ACT_RELU or F.shape[0] != 12 or F.shape[1] != L:
        raise ValueError("winograd_output_maxpool: only identity and ReLU are fused; F is (12, L)")
    _output_tiles(M.reshape(16, L), F)
    relu = act == ACT_RELU
    zero = y.dtype.type(0)
    for o in range(O):
        bo = b[o] if has_bias else zero
        for n in range(N):
            j = (o * N + n) * TT
            y00, y01 = F[8, j:j + TT], F[9, j:j + TT]
            y10, y11 = F[10, j:j + TT], F[11, j:j + TT]
            yo = y[n, o].reshape(TT)
            io = idx[n, o].reshape(TT) if keep_idx else idx.reshape(0)
            for t in range(TT):
                v00, v01, v10, v11 = y00[t] + bo, y01[t] + bo, y10[t] + bo, y11[t] + bo
                if relu:        # as bias_act_forward_cnp: `not v < 0` keeps NaN
                    v00 = v00 if not v00 < 0 else zero
                    v01 = v01 if not v01 < 0 else zero
                    v10 = v10 if not v10 < 0 else zero
                    v11 = v11 if not v11 < 0 else zero
                best, best_k = _max_2x2(v00, v01, v10, v11, bases[t], OW)
                yo[t] = best
                if keep_idx:
                    io[t] = best_k


@njit(cache=True, nogil=True)
def winograd_maxpool_grad(gy, y, idx, act, bases, OW, Mg, gb, F):
    """The adjoint of winograd_output_maxpool: with g = gy[n, o, t] * act'(y[n, o, t]) at its
    window's argmax (r, s) (the tile's gradient gz, 0 elsewhere), Mg[:, o, n*TH*TW + t] =
    A gz A^T; gb[o] = the sum of g over n and t (float64 accumulation), skipped if gb is (0,).
    F is scratch of (12, O*N*TH*TW)."""
    N, O, TH, TW = gy.shape
    TT = TH * TW
    L = O * N * TT
    has_bias = gb.shape[0] != 0
    if Mg.shape[0] != 16 or Mg.shape[1] != O or Mg.shape[2] != N * TT or idx.shape != gy.shape:
        raise ValueError("winograd_maxpool_grad: Mg must be (16, O, N*TH*TW), idx as gy")
    if y.shape != gy.shape or (has_bias and gb.shape[0] != O) or F.shape != (12, L):
        raise ValueError("winograd_maxpool_grad: y must match gy, gb must be (O,) or (0,), "
                         "F (12, L)")
    relu = act == ACT_RELU
    zero = Mg.dtype.type(0)
    for o in range(O):             # the tile gradient gz: F[2r + s]
        acc = 0.0
        for n in range(N):
            j = (o * N + n) * TT
            g00, g01 = F[0, j:j + TT], F[1, j:j + TT]
            g10, g11 = F[2, j:j + TT], F[3, j:j + TT]
            go, yo, io = gy[n, o].reshape(TT), y[n, o].reshape(TT), idx[n, o].reshape(TT)
            for t in range(TT):
                g = go[t]
                if relu and yo[t] <= 0:      # as _backprop: 0, even for an inf/NaN g
                    g = zero
                pos = io[t] - bases[t]      # 0, 1, OW or OW + 1; idx < 0: no max, no gradient
                if io[t] < 0:
                    g = zero
                acc += g
                g00[t] = g if pos == 0 else zero
                g01[t] = g if pos == 1 else zero
                g10[t] = g if pos == OW else zero
                g11[t] = g if pos == OW + 1 else zero
        if has_bias:
            gb[o] = acc
    _tile_gradients(F, Mg.reshape(16, L))
