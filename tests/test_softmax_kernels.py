"""The row-softmax kernels of attention (pynn/kernels/softmax.py) against the NumPy expressions
they replace, and scaled_dot_product_attention with them against torch."""
import numpy as np
import pytest
import torch

import pynn
from pynn.kernels.softmax import (
    softmax_backward_rows,
    softmax_normalize_rows,
    softmax_shift_rows,
)


def numpy_softmax(s, L, causal):
    s = s.copy()
    if causal:
        i = np.arange(s.shape[0])[:, None] % L
        s[np.arange(s.shape[1])[None, :] > i] = -np.inf
    with np.errstate(invalid="ignore"):        # inf - inf in the NaN test, as in the kernels
        s -= np.max(s, axis=-1, keepdims=True)
        np.exp(s, out=s)
        return s / np.sum(s, axis=-1, keepdims=True)


def kernel_softmax(s, L, causal):
    s = s.copy()
    softmax_shift_rows(s, L, causal)
    np.exp(s, out=s)
    softmax_normalize_rows(s)
    return s


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("L, S", [(5, 5), (3, 7), (7, 3), (1, 1)])
@pytest.mark.parametrize("causal", [False, True])
def test_softmax_rows_match_numpy(dtype, L, S, causal):
    rng = np.random.default_rng(0)
    s = (rng.standard_normal((4 * L, S)) * 5).astype(dtype)
    got, want = kernel_softmax(s, L, causal), numpy_softmax(s, L, causal)
    rtol = 1e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(got, want, rtol=rtol, atol=0)
    assert got.dtype == dtype


def test_softmax_rows_nan_and_fully_masked_rows_as_numpy():
    s = np.array([[1.0, np.nan, 2.0], [-np.inf, -np.inf, -np.inf], [np.inf, 0.0, 1.0],
                  [0.0, 0.0, -np.inf]], np.float32)
    got, want = kernel_softmax(s, 4, False), numpy_softmax(s, 4, False)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got[~np.isnan(got)], want[~np.isnan(want)], rtol=1e-6)
    assert np.isnan(got[0]).all() and np.isnan(got[1]).all() and np.isnan(got[2]).all()
    np.testing.assert_allclose(got[3], [0.5, 0.5, 0.0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_backward_rows_match_numpy(dtype):
    rng = np.random.default_rng(1)
    p = kernel_softmax(rng.standard_normal((12, 9)).astype(dtype), 12, True)
    dp = rng.standard_normal((12, 9)).astype(dtype)
    want = p * (dp - np.sum(dp * p, axis=-1, keepdims=True))
    got = dp.copy()
    softmax_backward_rows(got, p)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, want, rtol=rtol, atol=1e-7 if dtype == np.float32 else 0)


@pytest.mark.parametrize("L, S", [(6, 6), (4, 9)])
def test_causal_attention_with_kernels_matches_torch(L, S):
    rng = np.random.default_rng(2)
    q, k, v = (rng.standard_normal(shape).astype(np.float32)
               for shape in [(2, 3, L, 8), (2, 3, S, 8), (2, 3, S, 5)])
    tq, tk, tv = (torch.tensor(a, requires_grad=True) for a in (q, k, v))
    pq, pk, pv = (pynn.Tensor(a, requires_grad=True) for a in (q, k, v))
    want = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, is_causal=True)
    got = pynn.functional.scaled_dot_product_attention(pq, pk, pv, is_causal=True)
    np.testing.assert_allclose(got.data, want.detach().numpy(), rtol=1e-5, atol=1e-6)
    g = rng.standard_normal(want.shape).astype(np.float32)
    want.backward(torch.from_numpy(g))
    got.backward(g)
    for p, t in [(pq, tq), (pk, tk), (pv, tv)]:
        np.testing.assert_allclose(p.grad.data, t.grad.numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("fn", ["softmax", "log_softmax"])
@pytest.mark.parametrize("dim", [-1, 1])
def test_softmax_ops_match_torch(dtype, fn, dim):
    """Softmax / LogSoftmax over the last axis (row kernels) and over another (NumPy), with
    extreme logits and -inf entries, forward and backward, against torch."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 5, 7)).astype(dtype) * 3
    x[0, 0, :3] = [1000.0, -1000.0, 999.0]
    x[1, 2, 4] = -np.inf
    g = rng.standard_normal(x.shape).astype(dtype)
    px, tx = pynn.Tensor(x, requires_grad=True, dtype=dtype), torch.tensor(x, requires_grad=True)
    got, want = getattr(px, fn)(dim), getattr(tx, fn)(dim)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got.data, want.detach().numpy(), rtol=rtol, atol=rtol)
    got.backward(g)
    want.backward(torch.from_numpy(g))
    np.testing.assert_allclose(px.grad.data, tx.grad.numpy(), rtol=rtol * 10, atol=rtol * 10)


def test_log_softmax_in_a_compiled_model_reuses_buffers_correctly():
    """Two calls of one plan on different data: each result is that call's, like torch's."""
    x_in = pynn.Input((6,))
    model = pynn.Model(x_in, x_in.log_softmax(-1))
    rng = np.random.default_rng(4)
    for _ in range(2):
        x = rng.standard_normal((3, 6)).astype(np.float32)
        want = torch.log_softmax(torch.from_numpy(x), -1).numpy()
        np.testing.assert_allclose(model(x).data, want, rtol=1e-6, atol=1e-6)
