"""Ops that change the height and width of NCHW input: upsampling and adaptive pooling.

Each call makes small per-axis index/weight tables (OH + OW entries) for the Numba kernels.
"""
import numpy as np

from ..kernels.resize import (
    adaptive_avgpool_backward,
    adaptive_avgpool_forward,
    adaptive_table,
    linear_table,
    nearest_table,
    source_scale,
    upsample_bilinear_backward,
    upsample_bilinear_forward,
    upsample_nearest_backward,
    upsample_nearest_forward,
)
from .base import Op


class Upsample(Op):
    """Resize (N, C, H, W) to (N, C, OH, OW) as torch.nn.functional.interpolate.

    attrs: size (pair or None), scale_factor (pair or None; exactly one of the two), mode
    ("nearest" or "bilinear"), align_corners (bilinear only; False as in torch).

    Derivative: d/dx = g added back to the input pixels each output was read from (nearest),
    times the interpolation weights (bilinear)"""

    def _tables(self, H, W):
        if self.size is not None:
            OH, OW = self.size
            fh = fw = None
        else:
            fh, fw = self.scale_factor
            OH, OW = int(np.floor(H * fh)), int(np.floor(W * fw))
        if OH <= 0 or OW <= 0:
            raise ValueError(f"output size {OH}x{OW} is not positive")
        corners = self.mode == "bilinear" and self.align_corners
        sh = source_scale(H, OH, fh, corners)
        sw = source_scale(W, OW, fw, corners)
        if self.mode == "nearest":
            table = (nearest_table(H, OH, sh), nearest_table(W, OW, sw))
        else:
            table = linear_table(H, OH, sh, corners) + linear_table(W, OW, sw, corners)
        self._table, self._out_hw = table, (OH, OW)
        return table

    def forward(self, x):
        x = self.contiguous("x_c", x)
        N, C, H, W = x.shape
        table = self._tables(H, W)
        y = self.buffer("y", (N, C) + self._out_hw, x.dtype)
        if self.mode == "nearest":
            upsample_nearest_forward(x, *table, y)
        else:
            upsample_bilinear_forward(x, *table, y)
        self.x_shape = x.shape
        return y

    def backward(self, g):
        g = self.contiguous("g_c", g)
        gx = self.buffer("gx", self.x_shape, g.dtype)
        if self.mode == "nearest":
            upsample_nearest_backward(g, *self._table, gx)
        else:
            upsample_bilinear_backward(g, *self._table, gx)
        return (gx,)


class AdaptiveAvgPool2d(Op):
    """Average (N, C, H, W) over the windows that split it into output_size (OH, OW), as
    torch.nn.AdaptiveAvgPool2d: window o spans [floor(o*H/OH), ceil((o+1)*H/OH)).
    attrs: output_size (pair).

    Derivative: d/dx = g / window size added to every element of each window"""

    def forward(self, x):
        x = self.contiguous("x_c", x)
        N, C, H, W = x.shape
        OH, OW = self.output_size
        self._table = adaptive_table(H, OH) + adaptive_table(W, OW)
        y = self.buffer("y", (N, C, OH, OW), x.dtype)
        hs, he, ws, we = self._table
        adaptive_avgpool_forward(x, hs, he, ws, we, y)
        self.x_shape = x.shape
        return y

    def backward(self, g):
        gx = self.buffer("gx", self.x_shape, g.dtype)
        adaptive_avgpool_backward(self.contiguous("g_c", g), *self._table, gx)
        return (gx,)
