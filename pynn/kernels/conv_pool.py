"""Numba kernels for a convolution's epilogue fused with the 2x2 max-pool that follows it.

In a CNN block ``Conv2d(..., activation="relu")`` then ``MaxPool2d(2)``, the unfused steps
write the conv output y (N, O, H, W), read it again to pool it, and in backward write the
pool's gradient gy (N, O, H, W) only to read it again with y to make gz. These kernels go from
the matrix product's z straight to the pooled output, and from the pooled gradient straight to
gz, so the full-size y and gy never exist. A compiled Model uses them when a conv's output feeds
nothing but such a pool (see ``Plan``); the results equal the unfused ops' exactly.

Layouts, as in pynn.kernels.activation ("cnp") and pynn.kernels.pool: z, gz (O, N*H*W) with
column n*H*W + h*W + w; b, gb (O,) or (0,) for no bias; y, gy, idx (N, O, H//2, W//2), idx the
flat index h*W + w of each window's max inside its plane (first max wins, NaN propagates).
Only identity and ReLU are fused: max commutes with them, so act(max(z + b)) = max(act(z + b)),
and computing act first, then the max, gives the unfused ops' values and indices bit for bit.
"""
from .activation import ACT_NONE, ACT_RELU, PerActivation
from .pool import _max_2x2

__all__ = ["FUSABLE_ACTIVATIONS", "bias_act_maxpool2x2_forward", "bias_act_maxpool2x2_backward"]

FUSABLE_ACTIVATIONS = (ACT_NONE, ACT_RELU)


def _bias_act_maxpool2x2_forward(act):
    relu = act == ACT_RELU

    def bias_act_maxpool2x2_forward(z, b, H, W, y, idx, plane):
        N, O, OH, OW = y.shape
        P = H * W
        has_bias = b.shape[0] != 0
        keep_idx = idx.size != 0
        if z.shape[0] != O or z.shape[1] != N * P or OH != H // 2 or OW != W // 2:
            raise ValueError("bias_act_maxpool2x2_forward: z must be (O, N*H*W), "
                             "y (N, O, H//2, W//2)")
        if (keep_idx and idx.shape != y.shape) or (has_bias and b.shape[0] != O) \
                or plane.size < P:
            raise ValueError("bias_act_maxpool2x2_forward: idx must match y, b must be (O,) or "
                             "(0,), plane must hold H*W elements")
        zero = y.dtype.type(0)
        for n in range(N):
            for o in range(O):
                bo = b[o] if has_bias else zero
                zr = z[o, n * P:(n + 1) * P]
                if relu:           # as bias_act_forward_cnp: `not v < 0` keeps NaN
                    for p in range(P):
                        v = zr[p] + bo
                        plane[p] = v if not v < 0 else zero
                else:
                    for p in range(P):
                        plane[p] = zr[p] + bo
                yp = y[n, o]
                for i in range(OH):
                    k0 = 2 * i * W
                    r0 = plane[k0:k0 + W]
                    r1 = plane[k0 + W:k0 + 2 * W]
                    for j in range(OW):
                        best, best_k = _max_2x2(r0[2 * j], r0[2 * j + 1], r1[2 * j],
                                                r1[2 * j + 1], k0 + 2 * j, W)
                        yp[i, j] = best
                        if keep_idx:
                            idx[n, o, i, j] = best_k
    return bias_act_maxpool2x2_forward


def _bias_act_maxpool2x2_backward(act):
    relu = act == ACT_RELU

    def bias_act_maxpool2x2_backward(gy, y, idx, H, W, gz, gb):
        N, O, OH, OW = gy.shape
        P = H * W
        has_bias = gb.shape[0] != 0
        if gz.shape[0] != O or gz.shape[1] != N * P or idx.shape != gy.shape \
                or y.shape != gy.shape:
            raise ValueError("bias_act_maxpool2x2_backward: gz must be (O, N*H*W), "
                             "y and idx as gy")
        if has_bias and gb.shape[0] != O:
            raise ValueError("bias_act_maxpool2x2_backward: gb must have shape (O,) or (0,)")
        zero = gz.dtype.type(0)
        for o in range(O):
            acc = 0.0
            for n in range(N):
                row = gz[o, n * P:(n + 1) * P]
                for p in range(P):
                    row[p] = zero
                for i in range(OH):
                    for j in range(OW):
                        g = gy[n, o, i, j]
                        if relu and y[n, o, i, j] <= 0:   # as _backprop: 0, even for inf/NaN g
                            g = zero
                        k = idx[n, o, i, j]
                        if k >= 0:
                            row[k] = g
                            acc += g
            if has_bias:
                gb[o] = acc
    return bias_act_maxpool2x2_backward


_FORWARD = PerActivation(_bias_act_maxpool2x2_forward, FUSABLE_ACTIVATIONS)
_BACKWARD = PerActivation(_bias_act_maxpool2x2_backward, FUSABLE_ACTIVATIONS,
                          fastmath={"reassoc"})


def bias_act_maxpool2x2_forward(z, b, act, H, W, y, idx, plane):
    """y[n, o, i, j] = max of act(z[o, n*H*W + h*W + w] + b[o]) over the window h in {2i, 2i+1},
    w in {2j, 2j+1}; idx its flat index h*W + w. An empty idx (size 0): only y is written.

    act is ACT_NONE or ACT_RELU (any other is a ValueError); plane is scratch of H*W elements
    (one activated plane at a time, in cache: the pooling loop then runs as fast as the unfused
    one)."""
    _FORWARD[act](z, b, H, W, y, idx, plane)


def bias_act_maxpool2x2_backward(gy, y, idx, act, H, W, gz, gb):
    """gz = 0, then gz[o, n*H*W + idx[n, o, i, j]] = gy[n, o, i, j] * act'(y[n, o, i, j]);
    gb[o] = the sum of row o of gz (float64 accumulation), or skipped if gb is (0,)."""
    _BACKWARD[act](gy, y, idx, H, W, gz, gb)
