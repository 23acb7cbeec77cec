"""Numba kernels used by pynn's ops (conv lowering, pooling, fused bias + activation).

All kernels are ``@njit(cache=True)``, take C-contiguous float32/float64 arrays, write
into caller-preallocated outputs and return None. See each module for the layouts.

Each kernel call runs on one thread: Numba's own thread pool (``parallel=True``) beside
BLAS's makes CNN steps several times slower on 2 cores (the two pools spin against each other;
``python benchmarks/parallel_kernels.py`` measures it). Instead the ops cut a big batch into
one slice per core and run each slice -- its kernels and its matrix products, with one BLAS
thread each -- on a thread of pynn's own (``threads.py``, ``pynn.set_num_threads``); the
kernels are compiled with ``nogil=True`` for that.

A read-only install still works: ``_numba_cache`` (imported first) gives Numba a writable cache
folder when neither the package folder nor the user's cache folder can be written. And
``_numba_startup`` keeps Numba from importing ``scipy.linalg`` at the first kernel, which pynn
does not use (0.36 -> 0.22 s of a warm start's first steps).
"""
from . import _numba_cache  # noqa: F401, I001  (before any kernel: sets NUMBA_CACHE_DIR)
from . import _numba_startup  # noqa: F401, I001  (before any kernel: defers scipy.linalg)
from .activation import (
    ACT_NONE,
    ACT_RELU,
    ACT_SIGMOID,
    ACT_TANH,
    ACTIVATION_CODES,
    act_backward,
    act_forward,
    bias_act_backward,
    bias_act_backward_cnp,
    bias_act_forward,
    bias_act_forward_cnp,
)
from .conv import (
    SMALL_WEIGHT_GRAD,
    col2im,
    conv_output_shape,
    im2col,
    tap_offsets,
    weight_grad_small,
)
from .pool import (
    avgpool2d_backward,
    avgpool2d_forward,
    maxpool2d_backward,
    maxpool2d_forward,
    pool_output_size,
)

__all__ = [
    "ACT_NONE",
    "ACT_RELU",
    "ACT_SIGMOID",
    "ACT_TANH",
    "ACTIVATION_CODES",
    "bias_act_forward",
    "bias_act_backward",
    "bias_act_forward_cnp",
    "bias_act_backward_cnp",
    "act_forward",
    "act_backward",
    "conv_output_shape",
    "im2col",
    "tap_offsets",
    "weight_grad_small",
    "SMALL_WEIGHT_GRAD",
    "col2im",
    "maxpool2d_forward",
    "maxpool2d_backward",
    "avgpool2d_forward",
    "avgpool2d_backward",
    "pool_output_size",
]
