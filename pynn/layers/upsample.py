"""Upsample (torch names) and UpSampling2D (Keras names): nearest or bilinear resizing of NCHW
input (Numba kernels)."""
from ..ops.resize import Upsample as _UpsampleOp
from ..tensor import apply
from .base import Layer


def _pair(v, what, cls, kind):
    t = tuple(v) if isinstance(v, (tuple, list)) else (v, v)
    if len(t) != 2 or not all(isinstance(i, kind) and i > 0 for i in t):
        raise ValueError(f"{cls}: {what} must be a positive number or two, got {v!r}")
    return t


class Upsample(Layer):
    """Resize each image, as torch.nn.Upsample.

    Args:
        size: the output (OH, OW) (or an int for both); or
        scale_factor: a number or (fh, fw) (output = floor(input * factor)); exactly one of the
            two.
        mode: "nearest" (copy the pixel at floor(o / factor)) or "bilinear".
        align_corners: bilinear only: map corner pixels onto corner pixels (default False, as
            in PyTorch: pixel centres at half-integers).

    Shape: input (N, C, H, W); output (N, C, OH, OW).

    Example:
        >>> Upsample(scale_factor=2, mode="bilinear")(Tensor.randn(1, 3, 4, 4)).shape
        (1, 3, 8, 8)
    """

    def __init__(self, size=None, scale_factor=None, mode="nearest", align_corners=None, *,
                 name=None):
        super().__init__(name=name)
        cls = type(self).__name__
        if (size is None) == (scale_factor is None):
            raise ValueError(f"{cls}: give exactly one of size and scale_factor")
        if mode not in ("nearest", "bilinear"):
            raise ValueError(f"{cls}: mode must be 'nearest' or 'bilinear', got {mode!r}")
        if align_corners is not None and mode != "bilinear":
            raise ValueError(f"{cls}: align_corners only applies to mode='bilinear'")
        self.size = None if size is None else _pair(size, "size", cls, int)
        self.scale_factor = None if scale_factor is None else tuple(
            float(f) for f in _pair(scale_factor, "scale_factor", cls, (int, float)))
        self.mode, self.align_corners = mode, bool(align_corners)

    def check_input(self, x):
        if x.ndim != 4:
            raise self.output_shape_error(x, "(batch, channels, height, width)")

    def forward(self, x):
        return apply(_UpsampleOp(size=self.size, scale_factor=self.scale_factor, mode=self.mode,
                                 align_corners=self.align_corners), x)

    def config(self):
        return {"size": None if self.size is None else list(self.size),
                "scale_factor": None if self.scale_factor is None else list(self.scale_factor),
                "mode": self.mode,
                "align_corners": self.align_corners if self.mode == "bilinear" else None}

    def __repr__(self):
        what = f"size={self.size}" if self.size else f"scale_factor={self.scale_factor}"
        return f"{type(self).__name__}({what}, mode={self.mode!r})"


class UpSampling2D(Upsample):
    """Keras' UpSampling2D: repeat rows and columns by integer factors.

    Args:
        size: the factor, an int or (fh, fw) (Keras' meaning of `size`).
        interpolation: "nearest" or "bilinear" (half-pixel centres, as Keras).

    Shape: input (N, C, H, W) (channels first, as everywhere in pynn); output
        (N, C, H*fh, W*fw).

    Example:
        >>> UpSampling2D(2)(Tensor.randn(1, 3, 4, 4)).shape
        (1, 3, 8, 8)
    """

    def __init__(self, size=(2, 2), interpolation="nearest", *, name=None):
        factors = _pair(size, "size", "UpSampling2D", int)
        super().__init__(scale_factor=factors, mode=interpolation, name=name)
        self.factors = factors

    def config(self):
        return {"size": list(self.factors), "interpolation": self.mode}
