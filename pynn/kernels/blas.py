"""BLAS's matrix product for Numba kernels: cblas_sgemm / cblas_dgemm of the OpenBLAS that NumPy
loaded, called from compiled code without the GIL.

Why: a recurrent layer's time loop makes one small product per step (the hidden state times
W_hh) between elementwise kernels. Called from Python, every step is a Python call that takes
and releases the GIL around each product, in both threads of a split batch at once. A kernel
that runs the whole loop and calls BLAS itself takes the GIL once per sequence.

``gemm_for(dtype)`` gives the ctypes function (or None: no OpenBLAS with a cblas interface
found, or a dtype other than float32/float64; the ops then loop in Python as before). Kernels
take it as an argument, not as a global, so Numba can cache them; ``matmul_into(gemm, a, b, c)``
inside a kernel computes c = a @ b for 2-D arrays whose last axis has unit stride (views with a
row stride, such as ``x[:, t]`` of an (N, T, F) array, are read in place).
"""
import ctypes

import numpy as np
from numba import njit

__all__ = ["gemm_for", "matmul_into", "openblas_libraries"]

_ROW_MAJOR, _NO_TRANS = 101, 111

# (symbol, integer type): NumPy's wheels ship scipy-openblas with 64-bit integers and prefixed
# names; a system OpenBLAS exports the plain names with 32-bit integers.
_GEMM_SYMBOLS = {
    np.float32: (("scipy_cblas_sgemm64_", ctypes.c_int64), ("cblas_sgemm64_", ctypes.c_int64),
                 ("cblas_sgemm", ctypes.c_int)),
    np.float64: (("scipy_cblas_dgemm64_", ctypes.c_int64), ("cblas_dgemm64_", ctypes.c_int64),
                 ("cblas_dgemm", ctypes.c_int)),
}
_SCALAR = {np.float32: ctypes.c_float, np.float64: ctypes.c_double}
_found = {}


def openblas_libraries():
    """The OpenBLAS shared libraries loaded into this process (after NumPy), as ctypes CDLLs."""
    import numpy  # noqa: F401  (the BLAS is loaded with NumPy)
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.lower()}
    except OSError:
        return []
    libs = []
    for path in sorted(paths):
        try:
            libs.append(ctypes.CDLL(path))
        except OSError:
            continue
    return libs


def _lookup(dtype):
    for lib in openblas_libraries():
        for name, integer in _GEMM_SYMBOLS[dtype]:
            if getattr(lib, name, None) is None:
                continue
            real, ptr = _SCALAR[dtype], ctypes.c_void_p
            proto = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                                     integer, integer, integer, real, ptr, integer, ptr,
                                     integer, real, ptr, integer)
            return proto((name, lib))
    return None


def gemm_for(dtype):
    """The cblas ?gemm for arrays of `dtype` (float32 or float64), or None."""
    dtype = np.dtype(dtype).type
    if dtype not in _GEMM_SYMBOLS:
        return None
    if dtype not in _found:
        _found[dtype] = _lookup(dtype)
    return _found[dtype]


@njit(cache=True, nogil=True, inline="always")
def _ld(a):
    """The leading dimension BLAS is given for a 2-D row-major array (its row stride)."""
    return max(a.strides[0] // a.itemsize, a.shape[1], 1)


@njit(cache=True, nogil=True, inline="always")
def matmul_into(gemm, a, b, c):
    """c = a @ b by BLAS, for a (M, K), b (K, N), c (M, N) with unit stride along their last
    axis (row strides of any size)."""
    M, K = a.shape
    gemm(_ROW_MAJOR, _NO_TRANS, _NO_TRANS, M, c.shape[1], K, 1.0, a.ctypes.data, _ld(a),
         b.ctypes.data, _ld(b), 0.0, c.ctypes.data, _ld(c))
