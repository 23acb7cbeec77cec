"""Tests of the Numba kernels in pynn.kernels against plain NumPy references and torch.

Every output buffer is pre-filled with NaN (or a junk index) before the kernel
runs, so the comparisons also check that the kernels write every element.
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pynn.kernels import (
    ACT_NONE,
    ACT_RELU,
    ACT_SIGMOID,
    ACT_TANH,
    ACTIVATION_CODES,
    avgpool2d_backward,
    avgpool2d_forward,
    bias_act_backward,
    bias_act_backward_cnp,
    bias_act_forward,
    bias_act_forward_cnp,
    col2im,
    conv_output_shape,
    im2col,
    maxpool2d_backward,
    maxpool2d_forward,
    weight_grad_small,
)

DTYPES = [np.float64, np.float32]
# (rtol, atol) for results that involve arithmetic; pure copies are compared exactly.
TOL = {np.float64: (1e-12, 1e-12), np.float32: (2e-5, 2e-5)}

# (N, C, H, W, kh, kw, sh, sw, ph, pw): square and non-square, stride > kernel,
# odd sizes, N = 1, C = 1, 1x1 kernels, kernel as large as the padded input,
# padding wider than half the kernel (allowed for convolutions).
CONV_CASES = [
    (1, 1, 5, 5, 3, 3, 1, 1, 0, 0),
    (2, 3, 7, 6, 3, 2, 2, 1, 1, 0),
    (3, 1, 9, 7, 2, 3, 3, 2, 1, 1),
    (2, 2, 10, 9, 2, 2, 3, 3, 0, 0),
    (1, 2, 8, 8, 1, 1, 1, 1, 0, 0),
    (2, 1, 3, 3, 1, 1, 1, 1, 1, 1),
    (2, 2, 6, 6, 3, 3, 1, 1, 2, 2),
    (1, 3, 5, 4, 5, 4, 1, 1, 0, 0),
    (2, 2, 4, 5, 3, 3, 2, 2, 2, 1),
    (4, 3, 11, 13, 5, 3, 2, 3, 2, 1),
]

# Pooling cases keep ph <= kh // 2 and pw <= kw // 2, as PyTorch requires.
POOL_CASES = [
    (1, 1, 4, 4, 2, 2, 2, 2, 0, 0),
    (2, 3, 7, 6, 3, 2, 2, 1, 1, 0),
    (3, 1, 9, 7, 3, 3, 1, 1, 1, 1),
    (2, 2, 10, 9, 2, 2, 3, 3, 1, 1),
    (1, 2, 8, 8, 1, 1, 1, 1, 0, 0),
    (2, 2, 6, 5, 3, 3, 2, 2, 1, 1),
    (1, 3, 5, 4, 5, 4, 1, 1, 2, 2),
    (4, 3, 11, 13, 4, 3, 3, 2, 2, 1),
    (2, 3, 7, 9, 2, 2, 2, 2, 0, 0),   # MaxPool2d(2) on odd sizes: the 2x2 loop of its own
]


def case_id(case):
    N, C, H, W, kh, kw, sh, sw, ph, pw = case
    return f"x{N}x{C}x{H}x{W}-k{kh}x{kw}-s{sh}x{sw}-p{ph}x{pw}"


def tol(dtype):
    rtol, atol = TOL[dtype]
    return dict(rtol=rtol, atol=atol)


# --------------------------------------------------------------------------- references


def window_indices(N, C, H, W, kh, kw, sh, sw, ph, pw):
    """Index arrays of shape (C, kh, kw, N, OH, OW): n, c, h, w read by cols[r, q], and validity."""
    OH = (H + 2 * ph - kh) // sh + 1
    OW = (W + 2 * pw - kw) // sw + 1
    c, i, j, n, oh, ow = np.meshgrid(
        np.arange(C), np.arange(kh), np.arange(kw), np.arange(N), np.arange(OH), np.arange(OW),
        indexing="ij",
    )
    h = oh * sh - ph + i
    w = ow * sw - pw + j
    valid = (h >= 0) & (h < H) & (w >= 0) & (w < W)
    return n, c, np.clip(h, 0, H - 1), np.clip(w, 0, W - 1), valid


def ref_im2col(x, kh, kw, sh, sw, ph, pw):
    """cols[r, q] = x[n, c, oh*sh - ph + i, ow*sw - pw + j] (0 outside), straight from the
    definition."""
    N, C, H, W = x.shape
    n, c, h, w, valid = window_indices(N, C, H, W, kh, kw, sh, sw, ph, pw)
    cols = np.where(valid, x[n, c, h, w], 0)  # (C, kh, kw, N, OH, OW)
    return cols.reshape(C * kh * kw, -1)


def ref_col2im(cols, x_shape, kh, kw, sh, sw, ph, pw):
    """The adjoint of ref_im2col: scatter-add every in-bounds entry of cols into dx."""
    N, C, H, W = x_shape
    n, c, h, w, valid = window_indices(N, C, H, W, kh, kw, sh, sw, ph, pw)
    dx = np.zeros(x_shape, cols.dtype)
    np.add.at(dx, (n[valid], c[valid], h[valid], w[valid]), cols.reshape(n.shape)[valid])
    return dx


def ref_maxpool(x, kh, kw, sh, sw, ph, pw):
    """Loop reference: padding is -inf, first maximum (row-major) wins, flat index h*W + w."""
    N, C, H, W = x.shape
    OH, OW = conv_output_shape(H, W, kh, kw, sh, sw, ph, pw)
    y = np.empty((N, C, OH, OW), x.dtype)
    idx = np.empty((N, C, OH, OW), np.int64)
    for n in range(N):
        for c in range(C):
            for oh in range(OH):
                for ow in range(OW):
                    best, best_k = -np.inf, None
                    for i in range(kh):
                        for j in range(kw):
                            h, w = oh * sh - ph + i, ow * sw - pw + j
                            if 0 <= h < H and 0 <= w < W:
                                if best_k is None or x[n, c, h, w] > best:
                                    best, best_k = x[n, c, h, w], h * W + w
                    y[n, c, oh, ow], idx[n, c, oh, ow] = best, best_k
    return y, idx


def ref_maxpool_backward(gy, idx, x_shape):
    dx = np.zeros(x_shape, gy.dtype)
    N, C = x_shape[:2]
    for n in range(N):
        for c in range(C):
            np.add.at(dx[n, c].reshape(-1), idx[n, c].reshape(-1), gy[n, c].reshape(-1))
    return dx


def ref_avgpool(x, kh, kw, sh, sw, ph, pw):
    """Mean over the zero-padded window (count_include_pad=True)."""
    cols = ref_im2col(x, kh, kw, sh, sw, ph, pw)
    N, C, H, W = x.shape
    OH, OW = conv_output_shape(H, W, kh, kw, sh, sw, ph, pw)
    y = cols.reshape(C, kh * kw, N, OH, OW).sum(axis=1) / (kh * kw)
    return y.transpose(1, 0, 2, 3)


def ref_avgpool_backward(gy, x_shape, kh, kw, sh, sw, ph, pw):
    N, C, OH, OW = gy.shape
    g = np.broadcast_to((gy / (kh * kw)).transpose(1, 0, 2, 3)[:, None], (C, kh * kw, N, OH, OW))
    return ref_col2im(g.reshape(C * kh * kw, -1), x_shape, kh, kw, sh, sw, ph, pw)


def ref_act(v, act):
    if act == ACT_RELU:
        return np.maximum(v, 0)
    if act == ACT_SIGMOID:
        return 1 / (1 + np.exp(-v))
    if act == ACT_TANH:
        return np.tanh(v)
    return v


def ref_act_grad(y, act):
    if act == ACT_RELU:
        return (y > 0).astype(y.dtype)
    if act == ACT_SIGMOID:
        return y * (1 - y)
    if act == ACT_TANH:
        return 1 - y * y
    return np.ones_like(y)


TORCH_ACT = {ACT_NONE: lambda t: t, ACT_RELU: torch.relu, ACT_SIGMOID: torch.sigmoid,
             ACT_TANH: torch.tanh}


def rand(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def nan_like(shape, dtype):
    return np.full(shape, np.nan, dtype)


# --------------------------------------------------------------------------- im2col / col2im


def test_conv_output_shape():
    assert conv_output_shape(28, 28, 3, 3, 1, 1, 1, 1) == (28, 28)
    assert conv_output_shape(28, 27, 3, 2, 2, 3, 0, 1) == (13, 10)
    with pytest.raises(ValueError):
        conv_output_shape(2, 2, 5, 5, 1, 1, 0, 0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES, ids=case_id)
def test_im2col_col2im(case, dtype):
    N, C, H, W, kh, kw, sh, sw, ph, pw = case
    rng = np.random.default_rng(sum(case))
    OH, OW = conv_output_shape(H, W, kh, kw, sh, sw, ph, pw)
    x = rand(rng, (N, C, H, W), dtype)

    cols = nan_like((C * kh * kw, N * OH * OW), dtype)
    im2col(x, kh, kw, sh, sw, ph, pw, cols)
    np.testing.assert_array_equal(cols, ref_im2col(x, kh, kw, sh, sw, ph, pw))

    # Same ordering as torch's unfold, which is (N, C*kh*kw, OH*OW).
    u = F.unfold(torch.from_numpy(x), (kh, kw), padding=(ph, pw), stride=(sh, sw))
    np.testing.assert_array_equal(cols, u.permute(1, 0, 2).reshape(C * kh * kw, -1).numpy())

    g = rand(rng, cols.shape, dtype)
    dx = nan_like(x.shape, dtype)
    col2im(g, kh, kw, sh, sw, ph, pw, dx)
    np.testing.assert_allclose(dx, ref_col2im(g, x.shape, kh, kw, sh, sw, ph, pw), **tol(dtype))

    # col2im is torch's fold of the same columns.
    gt = torch.from_numpy(g).reshape(C * kh * kw, N, OH * OW).permute(1, 0, 2)
    folded = F.fold(gt, (H, W), (kh, kw), padding=(ph, pw), stride=(sh, sw))
    np.testing.assert_allclose(dx, folded.numpy(), **tol(dtype))


@pytest.mark.parametrize("case", CONV_CASES, ids=case_id)
def test_col2im_is_adjoint_of_im2col(case):
    """<im2col(x), c> == <x, col2im(c)> for random x, c."""
    N, C, H, W, kh, kw, sh, sw, ph, pw = case
    rng = np.random.default_rng(1 + sum(case))
    OH, OW = conv_output_shape(H, W, kh, kw, sh, sw, ph, pw)
    x = rand(rng, (N, C, H, W), np.float64)
    c = rand(rng, (C * kh * kw, N * OH * OW), np.float64)
    cols = np.empty_like(c)
    dx = np.empty_like(x)
    im2col(x, kh, kw, sh, sw, ph, pw, cols)
    col2im(c, kh, kw, sh, sw, ph, pw, dx)
    assert np.vdot(cols, c) == pytest.approx(np.vdot(x, dx), rel=1e-12, abs=1e-12)


# Stride-1 geometries whose output is as wide as the input, where im2col and col2im copy shifted
# planes instead of gathering through the tap table:
# (N, C, H, W, kh, kw, ph, pw, dh, dw, ph_end, pw_end), -1 = as the start
SHIFT_CASES = [
    (2, 3, 7, 6, 3, 3, 1, 1, 1, 1, -1, -1),   # "same" 3x3
    (1, 2, 5, 8, 5, 3, 2, 1, 1, 1, -1, -1),   # taller kernel
    (2, 2, 6, 5, 1, 1, 0, 0, 1, 1, -1, -1),   # 1x1: no shift at all
    (3, 2, 4, 7, 3, 5, 0, 2, 1, 1, -1, -1),   # as wide but not as tall (OH = 2)
    (2, 2, 6, 7, 3, 3, 2, 2, 2, 2, -1, -1),   # dilation 2, "same"
    (2, 3, 5, 6, 2, 4, 0, 1, 1, 1, 1, 2),     # even kernels, "same": the extra padding at the end
    (1, 1, 3, 4, 5, 5, 2, 2, 1, 1, -1, -1),   # kernel larger than the image
    (1, 1, 2, 3, 1, 3, 4, 1, 1, 1, -1, -1),   # rows of some taps entirely in the padding
    (1, 2, 3, 2, 3, 5, 1, 2, 1, 1, -1, -1),   # columns of some taps entirely in the padding
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", SHIFT_CASES, ids=str)
def test_shifted_im2col_col2im(case, dtype):
    """The shifted path agrees exactly with the tap-table gather and with torch's unfold/fold
    of the padded input, dilation and uneven padding included."""
    from pynn.kernels.conv import _col2im, _im2col, shift_masks, tap_offsets
    N, C, H, W, kh, kw, ph, pw, dh, dw, ph_end, pw_end = case
    geom = (kh, kw, 1, 1, ph, pw)
    end = (dh, dw, ph_end, pw_end)
    assert shift_masks(H, W, *geom, *end) is not None       # this case takes the shifted path
    OH, OW = conv_output_shape(H, W, *geom, *end)
    assert OW == W
    rng = np.random.default_rng(sum(case) + 7)
    x = rand(rng, (N, C, H, W), dtype)
    cols = nan_like((C * kh * kw, N * OH * OW), dtype)
    im2col(x, *geom, cols, *end)
    src, padded = tap_offsets(H, W, *geom, *end)
    gathered = nan_like(cols.shape, dtype)
    _im2col(x.reshape(N * C, H * W), src, padded, gathered)
    np.testing.assert_array_equal(cols, gathered)

    bottom, right = (ph if ph_end < 0 else ph_end), (pw if pw_end < 0 else pw_end)
    xp = F.pad(torch.from_numpy(x), (pw, right, ph, bottom))
    u = F.unfold(xp, (kh, kw), dilation=(dh, dw))
    np.testing.assert_array_equal(cols, u.permute(1, 0, 2).reshape(C * kh * kw, -1).numpy())

    g = rand(rng, cols.shape, dtype)
    g[0, 0] = np.nan if ph > 0 and pw > 0 else g[0, 0]   # a padding entry of cols: dropped
    dx = nan_like(x.shape, dtype)
    col2im(g, *geom, dx, *end)
    want = nan_like(x.shape, dtype)
    _col2im(g, src, padded, want.reshape(N * C, H * W))
    np.testing.assert_array_equal(dx, want)                 # the same additions in the same order
    assert np.isfinite(dx).all()
    gt = torch.from_numpy(np.nan_to_num(g, nan=0.0)).reshape(C * kh * kw, N, OH * OW)
    folded = F.fold(gt.permute(1, 0, 2), xp.shape[2:], (kh, kw), dilation=(dh, dw))
    np.testing.assert_allclose(dx, folded[:, :, ph:ph + H, pw:pw + W].numpy(), **tol(dtype))


def test_shift_masks_only_for_stride_one_same_width():
    from pynn.kernels.conv import shift_masks
    assert shift_masks(8, 8, 3, 3, 2, 2, 1, 1) is None       # stride 2
    assert shift_masks(8, 8, 3, 3, 1, 1, 0, 0) is None       # "valid": OW = W - 2
    inside = shift_masks(8, 8, 3, 3, 1, 1, 1, 1)
    assert inside.shape == (3, 64) and not inside.flags.writeable
    assert inside[0].reshape(8, 8)[:, 0].tolist() == [False] * 8     # left tap, left column
    assert inside[2].reshape(8, 8)[:, 7].tolist() == [False] * 8     # right tap, right column
    assert inside[1].all()


def test_conv_kernels_check_shapes():
    x = np.zeros((2, 3, 5, 5))
    with pytest.raises(ValueError):
        im2col(x, 3, 3, 1, 1, 0, 0, np.zeros((27, 2 * 9 + 1)))
    with pytest.raises(ValueError):
        col2im(np.zeros((26, 2 * 9)), 3, 3, 1, 1, 0, 0, x)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("R, O, J, c0", [(9, 8, 21632, 0), (9, 7, 1300, 37), (4, 3, 5, 2),
                                         (27, 16, 1024, 512), (1, 1, 1, 0), (9, 32, 0, 3)])
def test_weight_grad_small_matches_numpy(R, O, J, c0, dtype):
    """cols[:, c0:c0+J] @ gz.T: filters in fours and a remainder, chunks of 512 and a tail, an
    offset into a wider cols, an empty inner axis (all zeros)."""
    rng = np.random.default_rng(R * 100 + O)
    cols = rand(rng, (R, c0 + J + 5), dtype)
    gz = rand(rng, (O, J), dtype)
    out = np.full((R, O), np.nan, dtype)
    weight_grad_small(cols, c0, c0 + J, gz, out)
    want = cols[:, c0:c0 + J].astype(np.float64) @ gz.T.astype(np.float64)
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(out, want, rtol=rtol, atol=rtol * max(1, np.sqrt(J)))


def test_weight_grad_small_propagates_nan_and_inf():
    cols = np.ones((2, 600), np.float32)
    gz = np.ones((5, 600), np.float32)
    gz[1, 599] = np.nan
    gz[3, 10] = np.inf
    out = np.empty((2, 5), np.float32)
    weight_grad_small(cols, 0, 600, gz, out)
    assert np.isnan(out[:, 1]).all() and np.isposinf(out[:, 3]).all()
    np.testing.assert_array_equal(out[:, [0, 2, 4]], 600)


# ---------------------------------------------------------------------- conv via kernels vs torch


def conv2d_forward(x, Wt, b, stride, pad, act):
    """Convolution built from the kernels: im2col -> matmul -> bias + activation."""
    N, C, H, W = x.shape
    O, _, kh, kw = Wt.shape
    (sh, sw), (ph, pw) = stride, pad
    OH, OW = conv_output_shape(H, W, kh, kw, sh, sw, ph, pw)
    cols = np.empty((C * kh * kw, N * OH * OW), x.dtype)
    im2col(x, kh, kw, sh, sw, ph, pw, cols)
    z = Wt.reshape(O, -1) @ cols
    y = np.empty((N, O, OH * OW), x.dtype)
    bias_act_forward_cnp(z, b, act, y)
    return y.reshape(N, O, OH, OW), cols


def conv2d_backward(gy, y, cols, x_shape, Wt, has_bias, stride, pad, act):
    N, O, OH, OW = gy.shape
    _, C, kh, kw = Wt.shape
    (sh, sw), (ph, pw) = stride, pad
    gz = np.empty((O, N * OH * OW), gy.dtype)
    gb = np.empty(O if has_bias else 0, gy.dtype)
    bias_act_backward_cnp(gy.reshape(N, O, -1), y.reshape(N, O, -1), act, gz, gb)
    gW = (gz @ cols.T).reshape(Wt.shape)
    dx = np.empty(x_shape, gy.dtype)
    col2im(Wt.reshape(O, -1).T @ gz, kh, kw, sh, sw, ph, pw, dx)
    return dx, gW, gb


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "N, C, O, H, W, kh, kw, stride, pad, act, bias",
    [
        (2, 3, 4, 7, 6, 3, 3, (1, 1), (1, 1), ACT_RELU, True),
        (1, 1, 2, 9, 8, 3, 2, (2, 1), (0, 1), ACT_NONE, True),
        (3, 2, 5, 8, 8, 2, 2, (3, 3), (0, 0), ACT_SIGMOID, False),
        (2, 4, 3, 6, 7, 5, 3, (1, 2), (2, 1), ACT_TANH, True),
    ],
)
def test_conv2d_matches_torch(N, C, O, H, W, kh, kw, stride, pad, act, bias, dtype):
    rng = np.random.default_rng(N * 100 + C * 10 + O)
    x = rand(rng, (N, C, H, W), dtype)
    Wt = rand(rng, (O, C, kh, kw), dtype)
    b = rand(rng, (O,) if bias else (0,), dtype)
    y, cols = conv2d_forward(x, Wt, b, stride, pad, act)
    gy = rand(rng, y.shape, dtype)
    dx, gW, gb = conv2d_backward(gy, y, cols, x.shape, Wt, bias, stride, pad, act)

    xt = torch.from_numpy(x).requires_grad_()
    Wtt = torch.from_numpy(Wt).requires_grad_()
    bt = torch.from_numpy(b).requires_grad_() if bias else None
    yt = TORCH_ACT[act](F.conv2d(xt, Wtt, bt, stride=stride, padding=pad))
    yt.backward(torch.from_numpy(gy))
    rtol, atol = (1e-11, 1e-11) if dtype == np.float64 else (1e-4, 1e-4)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=rtol, atol=atol)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=rtol, atol=atol)
    np.testing.assert_allclose(gW, Wtt.grad.numpy(), rtol=rtol, atol=atol)
    if bias:
        np.testing.assert_allclose(gb, bt.grad.numpy(), rtol=rtol, atol=atol)
    else:
        assert gb.shape == (0,)


# --------------------------------------------------------------------------- pooling


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", POOL_CASES, ids=case_id)
def test_maxpool(case, dtype):
    N, C, H, W, kh, kw, sh, sw, ph, pw = case
    rng = np.random.default_rng(2 + sum(case))
    OH, OW = conv_output_shape(H, W, kh, kw, sh, sw, ph, pw)
    x = rand(rng, (N, C, H, W), dtype)
    y = nan_like((N, C, OH, OW), dtype)
    idx = np.full(y.shape, -7, np.int32 if dtype == np.float32 else np.int64)   # both index types
    maxpool2d_forward(x, kh, kw, sh, sw, ph, pw, y, idx)
    y_ref, idx_ref = ref_maxpool(x, kh, kw, sh, sw, ph, pw)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(idx, idx_ref)

    gy = rand(rng, y.shape, dtype)
    dx = nan_like(x.shape, dtype)
    maxpool2d_backward(gy, idx, dx)
    np.testing.assert_allclose(dx, ref_maxpool_backward(gy, idx_ref, x.shape), **tol(dtype))

    xt = torch.from_numpy(x).requires_grad_()
    yt, it = F.max_pool2d(xt, (kh, kw), (sh, sw), (ph, pw), return_indices=True)
    yt.backward(torch.from_numpy(gy))
    np.testing.assert_array_equal(y, yt.detach().numpy())
    np.testing.assert_array_equal(idx, it.numpy())
    np.testing.assert_allclose(dx, xt.grad.numpy(), **tol(dtype))


@pytest.mark.parametrize("case", POOL_CASES, ids=case_id)
def test_maxpool_without_indices(case):
    """An empty idx (inference) gives the same y and writes no index."""
    N, C, H, W, kh, kw, sh, sw, ph, pw = case
    rng = np.random.default_rng(5 + sum(case))
    OH, OW = conv_output_shape(H, W, kh, kw, sh, sw, ph, pw)
    x = rand(rng, (N, C, H, W), np.float32)
    y = nan_like((N, C, OH, OW), np.float32)
    maxpool2d_forward(x, kh, kw, sh, sw, ph, pw, y, np.zeros((0, 0, 0, 0), np.int64))
    np.testing.assert_array_equal(y, ref_maxpool(x, kh, kw, sh, sw, ph, pw)[0])


@pytest.mark.parametrize("dtype", DTYPES)
def test_maxpool_ties_inf_nan_match_torch(dtype):
    """Ties pick the first maximum; all -inf windows and NaNs behave like PyTorch."""
    rng = np.random.default_rng(3)
    x = rng.integers(0, 3, size=(2, 3, 9, 8)).astype(dtype)  # many ties
    x[0, 0, :3, :3] = -np.inf
    x[1, 2, 4, 5] = np.nan
    x[1, 2, 5, 5] = np.nan
    x[0, 1, 2, 2] = np.inf
    for kh, kw, sh, sw, ph, pw in [(3, 3, 1, 1, 1, 1), (2, 3, 2, 1, 1, 0), (3, 3, 3, 3, 0, 0),
                                   (2, 2, 2, 2, 0, 0)]:
        OH, OW = conv_output_shape(9, 8, kh, kw, sh, sw, ph, pw)
        y = nan_like((2, 3, OH, OW), dtype)
        idx = np.full(y.shape, -7, np.int64)
        maxpool2d_forward(x, kh, kw, sh, sw, ph, pw, y, idx)
        yt, it = F.max_pool2d(torch.from_numpy(x), (kh, kw), (sh, sw), (ph, pw),
                              return_indices=True)
        np.testing.assert_array_equal(y, yt.numpy())
        np.testing.assert_array_equal(idx, it.numpy())


def test_maxpool_window_all_padding():
    """ph >= kh (rejected by PyTorch) gives windows with no input: y = -inf, idx = -1,
    no gradient."""
    x = np.arange(4.0).reshape(1, 1, 2, 2)
    OH, OW = conv_output_shape(2, 2, 1, 1, 1, 1, 1, 1)
    y = np.empty((1, 1, OH, OW))
    idx = np.empty(y.shape, np.int64)
    maxpool2d_forward(x, 1, 1, 1, 1, 1, 1, y, idx)
    expected = np.full((4, 4), -np.inf)
    expected[1:3, 1:3] = x[0, 0]
    np.testing.assert_array_equal(y[0, 0], expected)
    assert (idx[0, 0][np.isinf(expected)] == -1).all()
    dx = np.empty_like(x)
    maxpool2d_backward(np.ones_like(y), idx, dx)
    np.testing.assert_array_equal(dx, np.ones_like(x))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", POOL_CASES, ids=case_id)
def test_avgpool(case, dtype):
    N, C, H, W, kh, kw, sh, sw, ph, pw = case
    rng = np.random.default_rng(4 + sum(case))
    OH, OW = conv_output_shape(H, W, kh, kw, sh, sw, ph, pw)
    x = rand(rng, (N, C, H, W), dtype)
    y = nan_like((N, C, OH, OW), dtype)
    avgpool2d_forward(x, kh, kw, sh, sw, ph, pw, y)
    np.testing.assert_allclose(y, ref_avgpool(x, kh, kw, sh, sw, ph, pw), **tol(dtype))

    gy = rand(rng, y.shape, dtype)
    dx = nan_like(x.shape, dtype)
    avgpool2d_backward(gy, kh, kw, sh, sw, ph, pw, dx)
    np.testing.assert_allclose(dx, ref_avgpool_backward(gy, x.shape, kh, kw, sh, sw, ph, pw),
                               **tol(dtype))

    xt = torch.from_numpy(x).requires_grad_()
    yt = F.avg_pool2d(xt, (kh, kw), (sh, sw), (ph, pw))
    yt.backward(torch.from_numpy(gy))
    np.testing.assert_allclose(y, yt.detach().numpy(), **tol(dtype))
    np.testing.assert_allclose(dx, xt.grad.numpy(), **tol(dtype))


def test_pool_kernels_check_shapes():
    x = np.zeros((2, 3, 6, 6))
    y = np.zeros((2, 3, 3, 4))
    with pytest.raises(ValueError):
        maxpool2d_forward(x, 2, 2, 2, 2, 0, 0, y, np.zeros(y.shape, np.int64))
    with pytest.raises(ValueError):
        avgpool2d_forward(x, 2, 2, 2, 2, 0, 0, y)
    with pytest.raises(ValueError):
        avgpool2d_backward(y, 2, 2, 2, 2, 0, 0, x)


# --------------------------------------------------------------------------- bias + activation

ACTS = [ACT_NONE, ACT_RELU, ACT_SIGMOID, ACT_TANH]


def test_activation_codes():
    assert ACTIVATION_CODES == {None: ACT_NONE, "relu": ACT_RELU, "sigmoid": ACT_SIGMOID,
                                "tanh": ACT_TANH}
    assert (ACT_NONE, ACT_RELU, ACT_SIGMOID, ACT_TANH) == (0, 1, 2, 3)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("act", ACTS)
def test_bias_act_dense(act, bias, dtype):
    rng = np.random.default_rng(5 + act)
    N, Fdim = 7, 13
    z0 = 3 * rand(rng, (N, Fdim), dtype)
    b = rand(rng, (Fdim,) if bias else (0,), dtype)
    z = z0.copy()
    bias_act_forward(z, b, act)
    y_ref = ref_act(z0.astype(np.float64) + (b if bias else 0), act)
    np.testing.assert_allclose(z, y_ref, **tol(dtype))
    y = z

    gy = rand(rng, (N, Fdim), dtype)
    gz = nan_like((N, Fdim), dtype)
    gb = nan_like(b.shape, dtype)
    bias_act_backward(gy, y, act, gz, gb)
    gz_ref = gy * ref_act_grad(y.astype(np.float64), act)
    np.testing.assert_allclose(gz, gz_ref, **tol(dtype))
    if bias:
        np.testing.assert_allclose(gb, gz_ref.sum(axis=0), **tol(dtype))

    # In place: gz is gy.
    g = gy.copy()
    gb2 = nan_like(b.shape, dtype)
    bias_act_backward(g, y, act, g, gb2)
    np.testing.assert_array_equal(g, gz)
    np.testing.assert_array_equal(gb2, gb)

    # Against torch autograd on x @ W.T + b followed by the activation.
    zt = torch.from_numpy(z0).requires_grad_()
    bt = torch.from_numpy(b).requires_grad_()
    yt = TORCH_ACT[act](zt + bt if bias else zt)
    yt.backward(torch.from_numpy(gy))
    np.testing.assert_allclose(y, yt.detach().numpy(), **tol(dtype))
    np.testing.assert_allclose(gz, zt.grad.numpy(), **tol(dtype))
    if bias:
        np.testing.assert_allclose(gb, bt.grad.numpy(), **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("act", ACTS)
def test_bias_act_cnp(act, bias, dtype):
    rng = np.random.default_rng(6 + act)
    N, O, P = 3, 5, 11
    z = 3 * rand(rng, (O, N * P), dtype)
    b = rand(rng, (O,) if bias else (0,), dtype)
    y = nan_like((N, O, P), dtype)
    bias_act_forward_cnp(z, b, act, y)
    zb = z.astype(np.float64) + (b[:, None] if bias else 0)
    y_ref = ref_act(zb, act).reshape(O, N, P).transpose(1, 0, 2)
    np.testing.assert_allclose(y, y_ref, **tol(dtype))

    gy = rand(rng, (N, O, P), dtype)
    gz = nan_like((O, N * P), dtype)
    gb = nan_like(b.shape, dtype)
    bias_act_backward_cnp(gy, y, act, gz, gb)
    gz_ref = (gy * ref_act_grad(y.astype(np.float64), act)).transpose(1, 0, 2).reshape(O, N * P)
    np.testing.assert_allclose(gz, gz_ref, **tol(dtype))
    if bias:
        np.testing.assert_allclose(gb, gz_ref.sum(axis=1), **tol(dtype))


def test_activation_extremes():
    """Sigmoid is stable in both tails; NaN propagates through every activation; the relu
    gradient of a dead unit is 0 even for an infinite upstream gradient (as in PyTorch)."""
    z = np.array([[-1000.0, -50.0, 0.0, 50.0, 1000.0, np.nan]])
    for act in ACTS:
        y = z.copy()
        bias_act_forward(y, np.zeros(0), act)
        expected = TORCH_ACT[act](torch.from_numpy(z)).numpy()
        np.testing.assert_allclose(y, expected, rtol=1e-15, atol=0)
        for dtype in DTYPES:   # the conv layout, whose ReLU has a loop of its own
            y_cnp = nan_like((1, 1, z.shape[1]), dtype)
            bias_act_forward_cnp(z.astype(dtype), np.zeros(0, dtype), act, y_cnp)
            np.testing.assert_allclose(y_cnp[0], expected.astype(dtype), **tol(dtype))

    y = np.array([[0.0, 2.0, 0.0]])
    gy = np.array([[np.inf, np.inf, np.nan]])
    gz = np.empty_like(gy)
    bias_act_backward(gy, y, ACT_RELU, gz, np.zeros(0))
    np.testing.assert_array_equal(gz, [[0.0, np.inf, 0.0]])


def test_activation_kernels_check_shapes():
    with pytest.raises(ValueError):
        bias_act_forward(np.zeros((2, 3)), np.zeros(2), ACT_RELU)
    with pytest.raises(ValueError):
        bias_act_forward_cnp(np.zeros((3, 8)), np.zeros(0), ACT_RELU, np.zeros((2, 3, 5)))


def test_an_unknown_activation_code_names_the_kernel():
    """Each activation has a kernel of its own (PerActivation); a code without one is a
    ValueError naming the kernel, not a silent identity."""
    with pytest.raises(ValueError, match=r"bias_act_forward: no kernel for activation code 9"):
        bias_act_forward(np.zeros((2, 3)), np.zeros(0), 9)
    from pynn.kernels.conv_pool import bias_act_maxpool2x2_forward
    y, idx = np.zeros((1, 1, 1, 1)), np.zeros((1, 1, 1, 1), np.int64)
    with pytest.raises(ValueError, match=r"bias_act_maxpool2x2_forward: .* \(it has identity, "
                                         r"relu\)"):
        bias_act_maxpool2x2_forward(np.zeros((1, 4)), np.zeros(0), ACT_TANH, 2, 2, y, idx,
                                    np.zeros(4))


def test_each_activation_kernel_is_compiled_for_its_own_activation_only():
    """The relu kernel holds no other activation's code: Numba pruned those branches."""
    from pynn.kernels.activation import _BIAS_ACT_FORWARD
    z = np.array([[-1.0, 0.5]], np.float32)
    for act in (ACT_RELU, ACT_TANH):
        kernel = _BIAS_ACT_FORWARD[act]
        kernel(z.copy(), np.zeros(0, np.float32))
        llvm = kernel.inspect_llvm(kernel.signatures[0])
        assert ("tanh" in llvm) == (act == ACT_TANH)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("decoupled_decay", [0.0, 0.1])
def test_adam_step_usual_equals_the_general_kernel(dtype, decoupled_decay):
    """The optimizer's branch-free kernel for the usual options gives the general kernel's
    values bit for bit, subnormal flushing and a NaN gradient included."""
    from pynn.kernels.optim import adam_is_usual, adam_step, adam_step_usual
    rng = np.random.default_rng(3)
    p = rng.standard_normal(257).astype(dtype)
    g = rng.standard_normal(257).astype(dtype)
    g[5], g[6] = 0.0, np.nan
    m, v = rng.standard_normal(257).astype(dtype) * 1e-3, rng.random(257).astype(dtype)
    m[5], v[5] = np.finfo(dtype).tiny / 4, np.finfo(dtype).tiny / 4      # flushed to zero
    hp = np.array([1e-3, 0.9, 0.999, 1e-8, decoupled_decay, 0.0, float(decoupled_decay > 0)])
    assert adam_is_usual(0.9, decoupled_decay, False, decoupled_decay > 0)
    states = [(p.copy(), m.copy(), v.copy()) for _ in range(2)]
    for step in (1, 2, 3):
        adam_step_usual(states[0][0], g, states[0][1], states[0][2], step, hp)
        adam_step(states[1][0], g, states[1][1], states[1][2], np.zeros(0, dtype), step, hp)
    for usual, general in zip(states[0], states[1]):
        np.testing.assert_array_equal(usual, general)
    assert states[0][1][5] == 0.0 and states[0][2][5] == 0.0


def test_adam_is_usual_only_for_the_options_its_kernel_has():
    from pynn.kernels.optim import adam_is_usual
    assert adam_is_usual(0.9, 0.0, False, False)
    assert adam_is_usual(0.9, 0.01, False, True)          # AdamW's decoupled decay
    assert not adam_is_usual(0.9, 0.01, False, False)     # L2 decay: the general kernel
    assert not adam_is_usual(0.9, 0.0, True, False)       # AMSGrad
    assert not adam_is_usual(0.3, 0.0, False, False)      # the lerp's other branch


def test_im2col_and_col2im_refuse_a_non_contiguous_array():
    """They index the image planes of a view of x: a strided x would be copied and col2im's
    writes lost, so it is an error naming the kernel."""
    x = np.zeros((2, 1, 4, 8), np.float32)[..., ::2]
    cols = np.zeros((9, 2 * 4 * 4), np.float32)
    with pytest.raises(ValueError, match="im2col: x must be C-contiguous"):
        im2col(x, 3, 3, 1, 1, 1, 1, cols)
    with pytest.raises(ValueError, match="col2im: dx must be C-contiguous"):
        col2im(cols, 3, 3, 1, 1, 1, 1, x)
