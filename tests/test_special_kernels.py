"""The kernels of pynn/kernels/special.py: correctly rounded float32 erf, the exact GELU against
float64 references and PyTorch, special values, and coefficients that the fit script
reproduces."""
import math

import numpy as np
import torch

import pynn
from pynn.kernels import fit_special, special

_erf64 = np.vectorize(math.erf)


def test_float32_erf_is_correctly_rounded_on_a_dense_grid():
    x = np.linspace(-6, 6, 400_001, dtype=np.float32)
    expected = _erf64(x.astype(np.float64)).astype(np.float32)
    np.testing.assert_array_equal(special.erf(x), expected)


def test_float32_erf_special_values_and_layouts():
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-30, -1e-30, 3.999, 4.0, 40.0],
                 np.float32)
    y = special.erf(x)
    assert np.isnan(y[0]) and y[1] == 1 and y[2] == -1
    assert y[3] == 0 and not np.signbit(y[3]) and y[4] == 0 and np.signbit(y[4])
    # the correctly rounded values (torch's erf is 1 ulp off at +-1e-30 on some CPUs: it gave
    # the rounded value on the Intel Xeon host and the next float32 on the AMD EPYC one)
    np.testing.assert_array_equal(y[5:], _erf64(x[5:].astype(np.float64)).astype(np.float32))
    np.testing.assert_array_equal(y[7:], torch.erf(torch.from_numpy(x[7:])).numpy())   # 1.0
    strided = np.linspace(-3, 3, 40, dtype=np.float32).reshape(5, 8)[:, ::2]
    np.testing.assert_array_equal(special.erf(strided),
                                  _erf64(strided.astype(np.float64)).astype(np.float32))
    out = np.empty((5, 4), np.float32)
    assert special.erf(strided, out=out) is out


def test_float64_erf_keeps_libm_precision():
    x = np.linspace(-5, 5, 1001)
    np.testing.assert_array_equal(special.erf(x), _erf64(x))


def test_gelu_backward_kernel_against_float64_on_the_same_cdf():
    # the backward runs in float32: within 3 * 2^-24 |g| of the formula in float64 on the
    # forward's float32 cdf (~1.6 * 2^-24 from phi's term, half an ulp from the product with
    # g), and within 2 ulp where the derivative is above 1/4
    x = np.linspace(-12, 12, 1_000_001, dtype=np.float32)
    cdf, y, gx = np.empty_like(x), np.empty_like(x), np.empty_like(x)
    special.gelu_forward(x, cdf, y)
    g = np.random.default_rng(0).uniform(-4, 4, x.size).astype(np.float32)
    special.gelu_backward(x, cdf, g, gx)
    x64 = x.astype(np.float64)
    d64 = cdf.astype(np.float64) + x64 * np.exp(-0.5 * x64 * x64) / math.sqrt(2 * math.pi)
    ref = g * d64
    err = np.abs(gx - ref)
    assert np.all(err <= 3 * 2.0 ** -24 * np.abs(g))
    steep = np.abs(d64) > 0.25
    ulp = np.spacing(np.abs(ref[steep]).astype(np.float32)).astype(np.float64)
    assert np.all(err[steep] <= 2 * ulp)


def _gelu64(x):
    x = x.astype(np.float64)
    cdf = 0.5 * (1 + _erf64(x / math.sqrt(2)))
    return x * cdf, cdf + x * np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


def test_gelu_kernels_against_float64_and_torch():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.standard_normal(50_000) * 3, np.linspace(-12, 12, 2001)])
    x = x.astype(np.float32)
    g = rng.standard_normal(x.size).astype(np.float32)
    t = pynn.Tensor(x, requires_grad=True)
    y = t.gelu()
    y.backward(pynn.Tensor(g))
    y64, d64 = _gelu64(x)
    # half an ulp of float32 rounding, plus |x| times the error of Phi, which is at most
    # erfc(4) / 2 = 7.7e-9 (erf is +-1 beyond 4; PyTorch's float32 1 + erf loses more there)
    half_ulp = np.spacing(np.abs(y64).astype(np.float32)).astype(np.float64) / 2
    assert np.all(np.abs(y.numpy() - y64) <= half_ulp + np.abs(x) * 7.8e-9)
    np.testing.assert_allclose(t.grad.numpy(), g * d64, rtol=1e-6, atol=1e-7)
    tt = torch.from_numpy(x).requires_grad_()
    ty = torch.nn.functional.gelu(tt)
    ty.backward(torch.from_numpy(g))
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-6, atol=2e-6)
    np.testing.assert_allclose(t.grad.numpy(), tt.grad.numpy(), rtol=1e-5, atol=2e-6)


def test_gelu_nan_and_inf():
    # gelu(inf) = inf as in torch's float64 kernel (its float32 SIMD kernel returns NaN there);
    # gelu(-inf) = -inf * 0 and every gradient at +-inf are NaN, as in PyTorch
    x = np.array([np.nan, np.inf, -np.inf], np.float32)
    t = pynn.Tensor(x, requires_grad=True)
    y = t.gelu()
    y.sum().backward()
    tt = torch.from_numpy(x.astype(np.float64)).requires_grad_()
    ty = torch.nn.functional.gelu(tt)
    ty.sum().backward()
    np.testing.assert_array_equal(y.numpy(), [np.nan, np.inf, np.nan])
    np.testing.assert_array_equal(y.numpy(), ty.detach().numpy())
    np.testing.assert_array_equal(t.grad.numpy(), tt.grad.numpy())


def test_gelu_float64_path_unchanged():
    x = np.linspace(-6, 6, 301)
    t = pynn.Tensor(x, requires_grad=True, dtype=np.float64)
    t.gelu().sum().backward()
    y64, d64 = _gelu64(x)
    np.testing.assert_allclose(t.gelu().numpy(), y64, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(t.grad.numpy(), d64, rtol=1e-13, atol=1e-15)


def test_stored_coefficients_are_the_fit_scripts():
    np.testing.assert_allclose(special._ERF, fit_special.erf_coefficients(), rtol=1e-9,
                               atol=1e-15)
