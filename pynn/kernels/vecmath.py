"""exp and tanh for Numba loops that LLVM can vectorise: the sigmoid and tanh of a recurrent
cell, computed inside the kernel that runs the whole time loop (pynn.kernels.recurrent).

Numba calls libm for ``math.exp`` and ``math.tanh``: one scalar call per element (~2 ns here,
NumPy's SIMD loops take ~0.35 ns), and a call in a loop keeps the loop scalar. For float32,
``exp_nonpositive`` and ``tanh`` below are branch-free arithmetic: Cody-Waite range reduction and
a degree-6 polynomial (the coefficients of Cephes' expf), 2^k made by writing k into a float's
exponent bits (``_float32_from_bits``), and for tanh an odd polynomial near 0 (Cephes' tanhf)
and (1 - e) / (1 + e) with e = exp(-2|x|) elsewhere. Measured against float64 references over
all of float32's range: exp within 1 ulp, tanh within 2 ulp, NaN and +-inf as libm
(``tests/test_vecmath.py``). float64 arguments go to libm, as before.

``wide_vectors()``, called first in a kernel, lets LLVM use 512-bit vectors in that kernel's
loops. On CPUs with AVX-512, LLVM's tuning prefers 256-bit vectors (older Skylake servers slowed
their clock for 512-bit code), and the loops of the kernels that call these functions are bound
by arithmetic, not memory: with 16 float32 lanes instead of 8 the LSTM's forward went from
3.11-3.15 to 2.82-2.86 ms a step (``benchmarks/op_times.py lstm-seqmnist``), with the same
results bit for bit (``tests/test_vecmath.py``). Those kernels run between BLAS products, whose
AVX-512 code sets the clock anyway. Where the CPU has no 512-bit registers the hint changes
nothing.
"""
import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

__all__ = ["exp_nonpositive", "tanh", "wide_vectors"]

_F = np.float32
_LOWEST = _F(-104.0)                # exp(-104) = 6.8e-46 rounds to 0 in float32
_LOG2E = _F(1.44269504088896341)
_LN2_HI, _LN2_LO = _F(0.693359375), _F(-2.12194440e-4)     # ln 2 = hi + lo
_EXP_POLY = (_F(1.9875691500e-4), _F(1.3981999507e-3), _F(8.3334519073e-3),
             _F(4.1665795894e-2), _F(1.6666665459e-1), _F(5.0000001201e-1))
_TANH_SMALL = _F(0.625)
_TANH_POLY = (_F(-5.70498872745e-3), _F(2.06390887954e-2), _F(-5.37397155531e-2),
              _F(1.33314422036e-1), _F(-3.33332819422e-1))


@intrinsic
def wide_vectors(typingctx):
    """Mark the kernel being compiled with LLVM's "prefer-vector-width"="512" (see above).
    llvmlite checks function attributes against a list of plain names, which has no room for
    a key and a value, so the attribute goes into its set directly; if that ever fails, the
    kernel is compiled without the hint."""
    def codegen(context, builder, signature, args):
        try:
            set.add(builder.function.attributes, '"prefer-vector-width"="512"')
        except Exception:          # a future llvmlite: no hint, same results
            pass
        return context.get_dummy_value()
    return types.none(), codegen


@intrinsic
def _float32_from_bits(typingctx, bits):
    """The float32 whose bit pattern is the int32 `bits` (a bitcast: no instruction)."""
    sig = types.float32(types.int32)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())
    return sig, codegen


@njit(cache=True, inline="always", error_model="numpy")
def _exp_nonpositive_f32(x):
    """exp(x) of a float32 x <= 0 (NaN for NaN, 0 for -inf); subnormal results included."""
    # below _LOWEST (and for NaN) the arithmetic runs on 0 and the result is replaced at the
    # end: running it on -104 would make subnormals, which x86 computes far more slowly (a
    # causal mask's -inf scores would all take that path)
    xc = x if x >= _LOWEST else _F(0)
    k = np.floor(xc * _LOG2E + _F(0.5))
    r = xc - k * _LN2_HI - k * _LN2_LO            # |r| <= ln(2) / 2
    p = _EXP_POLY[0]
    p = p * r + _EXP_POLY[1]
    p = p * r + _EXP_POLY[2]
    p = p * r + _EXP_POLY[3]
    p = p * r + _EXP_POLY[4]
    p = p * r + _EXP_POLY[5]
    y = p * (r * r) + r + _F(1)
    # 2^k in two factors, each a normal float32, so that results below 2^-126 come out
    # subnormal (correctly rounded by the last multiply) instead of wrong
    ki = np.int32(k)
    k1 = ki >> 1
    y = y * _float32_from_bits((k1 + 127) << 23) * _float32_from_bits((ki - k1 + 127) << 23)
    y = _F(0) if x < _LOWEST else y
    return x if x != x else y


@njit(cache=True, inline="always", error_model="numpy")
def _tanh_f32(x):
    """tanh of a float32 (odd: -0.0 stays -0.0; +-1 for +-inf; NaN for NaN)."""
    a = abs(x)
    z = x * x
    p = _TANH_POLY[0]
    p = p * z + _TANH_POLY[1]
    p = p * z + _TANH_POLY[2]
    p = p * z + _TANH_POLY[3]
    p = p * z + _TANH_POLY[4]
    small = p * z * x + x
    small = x if a == 0 else small                # -0.0 + 0.0 would be +0.0
    e = _exp_nonpositive_f32(_F(-2) * a)
    big = (_F(1) - e) / (_F(1) + e)
    big = -big if x < 0 else big
    return small if a < _TANH_SMALL else big


def exp_nonpositive(x):
    """exp(x) for x <= 0 (Numba: vectorisable for float32, libm's for float64)."""
    return math.exp(x)


def tanh(x):
    """tanh(x) (Numba: vectorisable for float32, libm's for float64)."""
    return math.tanh(x)


@overload(exp_nonpositive)
def _exp_nonpositive_impl(x):
    if x == types.float32:
        return lambda x: _exp_nonpositive_f32(x)
    return lambda x: math.exp(x)


@overload(tanh)
def _tanh_impl(x):
    if x == types.float32:
        return lambda x: _tanh_f32(x)
    return lambda x: math.tanh(x)
