"""Numba kernels used by pynn's ops (conv lowering, pooling, fused bias + activation).

All kernels are ``@njit(cache=True)``, take C-contiguous float32/float64 arrays, write
into caller-preallocated outputs and return None. See each module for the layouts.

Thread-parallel (``parallel=True``, over independent planes/rows): im2col, col2im,
maxpool2d_forward, bias_act_forward_cnp. ``numba.set_num_threads(1)`` runs them on
one thread, e.g. on a machine shared with other busy processes.
"""
from .activation import (
    ACT_NONE,
    ACT_RELU,
    ACT_SIGMOID,
    ACT_TANH,
    ACTIVATION_CODES,
    bias_act_backward,
    bias_act_backward_cnp,
    bias_act_forward,
    bias_act_forward_cnp,
)
from .conv import col2im, conv_output_shape, im2col
from .pool import (
    avgpool2d_backward,
    avgpool2d_forward,
    maxpool2d_backward,
    maxpool2d_forward,
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
    "conv_output_shape",
    "im2col",
    "col2im",
    "maxpool2d_forward",
    "maxpool2d_backward",
    "avgpool2d_forward",
    "avgpool2d_backward",
]
