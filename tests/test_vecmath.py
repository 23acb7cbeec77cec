"""pynn.kernels.vecmath: the float32 exp and tanh the recurrent kernels vectorise, against float64
references over all of float32's range, and their special values; the wide-vector hint."""
import numpy as np
import pytest
from numba import njit

from pynn.kernels.vecmath import exp_nonpositive, tanh, wide_vectors


@njit
def _exp_all(x, out):
    for i in range(x.size):
        out[i] = exp_nonpositive(x[i])


@njit
def _tanh_all(x, out):
    for i in range(x.size):
        out[i] = tanh(x[i])


def _ulps(got, want):
    """|got - want| in units of the last place of want rounded to float32 (subnormals: of the
    smallest subnormal)."""
    want32 = want.astype(np.float32)
    unit = np.spacing(np.maximum(np.abs(want32), np.finfo(np.float32).tiny)).astype(np.float64)
    return np.abs(got.astype(np.float64) - want) / unit


def _float32_grid(lo, hi):
    rng = np.random.default_rng(0)
    return np.concatenate([np.linspace(lo, hi, 1_000_001, dtype=np.float32),
                           rng.uniform(lo, hi, 200_000).astype(np.float32),
                           -np.abs(rng.standard_normal(10_000)).astype(np.float32) * 1e-6,
                           np.float32([lo, hi, 0.0, -0.0, -1e-30, -1e-45])])


def test_exp_nonpositive_float32_within_one_ulp():
    x = _float32_grid(-110.0, 0.0)
    got = np.empty_like(x)
    _exp_all(x, got)
    assert got.dtype == np.float32
    want = np.exp(x.astype(np.float64))
    normal = want >= np.finfo(np.float32).tiny
    assert _ulps(got[normal], want[normal]).max() <= 1.0
    # subnormal results: off by at most one smallest subnormal
    assert (np.abs(got[~normal] - want[~normal]) <= 1.5e-45).all()
    assert got[x < -104].max() == 0


def test_tanh_float32_within_two_ulps():
    x = np.concatenate([_float32_grid(-12.0, 12.0), _float32_grid(-0.7, 0.7)])
    got = np.empty_like(x)
    _tanh_all(x, got)
    want = np.tanh(x.astype(np.float64))
    assert _ulps(got, want).max() <= 2.0
    np.testing.assert_array_equal(got, -_tanh_all_of(-x))      # odd


def _tanh_all_of(x):
    out = np.empty_like(x)
    _tanh_all(x, out)
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_special_values(dtype):
    x = np.array([np.nan, -np.inf, -0.0, 0.0, np.inf, -1e-40 if dtype == np.float32 else -1e-320],
                 dtype)
    t = _tanh_all_of(x)
    assert np.isnan(t[0]) and t[1] == -1 and t[4] == 1 and t[5] == x[5]
    assert np.signbit(t[2]) and not np.signbit(t[3]) and t[2] == 0 and t[3] == 0
    e = np.empty_like(x[:4])
    _exp_all(x[:4], e)
    assert np.isnan(e[0]) and e[1] == 0 and e[2] == 1 and e[3] == 1


def test_float64_is_libm():
    x = np.linspace(-30, 0, 1001)
    e, t = np.empty_like(x), np.empty_like(x)
    _exp_all(x, e)
    _tanh_all(x, t)
    np.testing.assert_allclose(e, np.exp(x), rtol=1e-15, atol=0)
    np.testing.assert_allclose(t, np.tanh(x), rtol=1e-15, atol=0)


@njit
def _tanh_exp_wide(x, out):
    wide_vectors()
    for i in range(x.size):
        out[i] = tanh(x[i]) + exp_nonpositive(-abs(x[i]))


@njit
def _tanh_exp_plain(x, out):
    for i in range(x.size):
        out[i] = tanh(x[i]) + exp_nonpositive(-abs(x[i]))


def test_wide_vectors_marks_the_kernel_and_changes_no_result():
    x = np.concatenate([np.linspace(-30, 30, 100_003, dtype=np.float32),
                        np.array([np.nan, np.inf, -np.inf, 0.0, -0.0], np.float32)])
    wide, plain = np.empty_like(x), np.empty_like(x)
    _tanh_exp_wide(x, wide)
    _tanh_exp_plain(x, plain)
    np.testing.assert_array_equal(wide, plain)
    ir = next(iter(_tanh_exp_wide.inspect_llvm().values()))
    assert '"prefer-vector-width"="512"' in ir
    assert '"prefer-vector-width"' not in next(iter(_tanh_exp_plain.inspect_llvm().values()))
