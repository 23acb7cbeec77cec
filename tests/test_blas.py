"""pynn.kernels.blas: BLAS's product called from a Numba kernel, on contiguous arrays and on
row-strided views, in float32 and float64, against NumPy's."""
import numpy as np
import pytest
from numba import njit

from pynn.kernels.blas import gemm_for, matmul_into


@njit
def _product(gemm, a, b, c):
    matmul_into(gemm, a, b, c)


@njit
def _product_of_step(gemm, seq, t, b, c):
    matmul_into(gemm, seq[:, t], b, c)        # a row-strided view made inside the kernel


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matmul_into_matches_numpy(dtype):
    gemm = gemm_for(dtype)
    if gemm is None:
        pytest.skip("NumPy's BLAS exports no cblas ?gemm here: the ops loop in Python instead")
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((5, 7)).astype(dtype), rng.standard_normal((7, 3)).astype(dtype)
    c = np.full((5, 3), np.nan, dtype)
    _product(gemm, a, b, c)
    np.testing.assert_allclose(c, a @ b, rtol=1e-5 if dtype == np.float32 else 1e-13)

    seq = rng.standard_normal((4, 6, 7)).astype(dtype)         # (N, T, F): rows T*F apart
    out = np.full((4, 9), np.nan, dtype)[:, 2:5]               # an output view with a row stride
    _product_of_step(gemm, seq, 2, b, out)
    np.testing.assert_allclose(out, seq[:, 2] @ b, rtol=1e-5 if dtype == np.float32 else 1e-13)


def test_other_dtypes_have_none():
    assert gemm_for(np.int32) is None and gemm_for(np.float16) is None
