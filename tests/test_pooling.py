"""Pooling (Max/Avg 2-D and 1-D with ceil_mode and count_include_pad, global, adaptive),
Upsample/UpSampling2D and Identity against PyTorch in float64 (eagerly and inside a compiled
Model), their finite-difference gradients, and the layers' argument checks."""
import numpy as np
import pytest
import torch
import torch.nn as tnn
from test_gradcheck import distinct, gradcheck
from torch_helpers import check_layer

from pynn import Input, Model, Tensor
from pynn.layers import (
    AdaptiveAvgPool2d,
    AvgPool1d,
    AvgPool2d,
    GlobalAveragePooling2D,
    GlobalMaxPooling2D,
    Identity,
    MaxPool1d,
    MaxPool2d,
    Upsample,
    UpSampling2D,
)
from pynn.ops import nn as N
from pynn.ops import resize as RZ
from pynn.ops import shape as S
from pynn.tensor import apply

TORCH_CHECKED_OPS = {"MaxPool2d", "AvgPool2d", "Upsample", "AdaptiveAvgPool2d", "Identity"}
GRADCHECKED_OPS = {"MaxPool2d", "AvgPool2d", "Upsample", "AdaptiveAvgPool2d", "Identity"}


def _distinct_x(shape):
    """Distinct values (no ties for max pooling), shuffled."""
    return distinct(*shape) / np.prod(shape)


# (kernel, stride, padding, ceil_mode, x_shape)
POOL2D_CASES = [
    (2, 2, 0, False, (2, 3, 7, 9)),
    (2, 2, 0, True, (2, 3, 7, 9)),          # odd sizes: a last partial window in ceil mode
    (3, 2, 1, True, (1, 2, 8, 7)),
    (3, 2, 1, False, (1, 2, 8, 7)),
    ((3, 2), (2, 3), (1, 1), True, (2, 2, 10, 11)),
    (4, 3, 2, True, (2, 1, 9, 9)),          # ceil window that would start in the right padding
    (3, 3, 0, True, (1, 2, 7, 8)),
]


@pytest.mark.parametrize("k, s, p, ceil, x_shape", POOL2D_CASES)
def test_maxpool2d_against_torch(k, s, p, ceil, x_shape):
    check_layer(MaxPool2d(k, s, p, ceil_mode=ceil),
                lambda: tnn.MaxPool2d(k, s, p, ceil_mode=ceil), x_shape, x=_distinct_x(x_shape))


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("k, s, p, ceil, x_shape", POOL2D_CASES)
def test_avgpool2d_against_torch(k, s, p, ceil, x_shape, count_include_pad):
    check_layer(AvgPool2d(k, s, p, ceil_mode=ceil, count_include_pad=count_include_pad),
                lambda: tnn.AvgPool2d(k, s, p, ceil_mode=ceil,
                                      count_include_pad=count_include_pad), x_shape)


POOL1D_CASES = [(2, None, 0, False, (2, 3, 9)), (2, None, 0, True, (2, 3, 9)),
                (3, 2, 1, True, (2, 2, 10)), (4, 1, 2, False, (1, 2, 6))]


@pytest.mark.parametrize("k, s, p, ceil, x_shape", POOL1D_CASES)
def test_pool1d_against_torch(k, s, p, ceil, x_shape):
    check_layer(MaxPool1d(k, s, p, ceil_mode=ceil),
                lambda: tnn.MaxPool1d(k, s, p, ceil_mode=ceil), x_shape, x=_distinct_x(x_shape))
    for cip in (True, False):
        check_layer(AvgPool1d(k, s, p, ceil_mode=ceil, count_include_pad=cip),
                    lambda cip=cip: tnn.AvgPool1d(k, s, p, ceil_mode=ceil,
                                                  count_include_pad=cip),
                    x_shape)


class _TorchFn(tnn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


@pytest.mark.parametrize("keepdims", [False, True])
def test_global_pooling_against_torch(keepdims):
    x_shape = (3, 4, 5, 6)
    check_layer(GlobalAveragePooling2D(keepdims),
                lambda: _TorchFn(lambda x: x.mean(dim=(2, 3), keepdim=keepdims)), x_shape)
    check_layer(GlobalMaxPooling2D(keepdims),
                lambda: _TorchFn(lambda x: x.amax(dim=(2, 3), keepdim=keepdims)), x_shape,
                x=_distinct_x(x_shape))


@pytest.mark.parametrize("size, x_shape", [(1, (2, 3, 7, 5)), ((3, 2), (2, 3, 7, 5)),
                                           ((4, 4), (1, 2, 9, 6)), ((None, 2), (1, 2, 4, 7)),
                                           (5, (1, 1, 5, 5))])
def test_adaptive_avgpool_against_torch(size, x_shape):
    check_layer(AdaptiveAvgPool2d(size), lambda: tnn.AdaptiveAvgPool2d(size), x_shape)


UPSAMPLE_CASES = [
    (dict(scale_factor=2), (2, 3, 4, 5)),
    (dict(scale_factor=(2, 3)), (1, 2, 3, 4)),
    (dict(size=(7, 5)), (1, 2, 3, 4)),
    (dict(scale_factor=1.5), (1, 2, 4, 6)),
    (dict(size=(3, 2)), (1, 2, 5, 5)),        # downsampling
]


@pytest.mark.parametrize("mode, align", [("nearest", None), ("bilinear", False),
                                         ("bilinear", True)])
@pytest.mark.parametrize("kwargs, x_shape", UPSAMPLE_CASES)
def test_upsample_against_torch(kwargs, x_shape, mode, align):
    check_layer(Upsample(mode=mode, align_corners=align, **kwargs),
                lambda: tnn.Upsample(mode=mode, align_corners=align, **kwargs), x_shape)


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
def test_upsampling2d_keras_form(interpolation):
    check_layer(UpSampling2D((2, 3), interpolation),
                lambda: tnn.Upsample(scale_factor=(2, 3), mode=interpolation), (2, 3, 4, 4))
    assert UpSampling2D(2)(Tensor.randn(1, 2, 3, 4)).shape == (1, 2, 6, 8)


def test_identity_is_a_step_of_its_own():
    check_layer(Identity(54, unused="x"), lambda: tnn.Identity(), (3, 4))
    x_in = Input((3,))
    y = Identity()(x_in)
    assert y is not x_in
    model = Model(x_in, y * 2)
    np.testing.assert_array_equal(model(Tensor.ones(2, 3)).data, np.full((2, 3), 2.0))


# -- finite differences ------------------------------------------------------------------------
@pytest.mark.parametrize("attrs, x_shape", [
    (dict(kernel_size=(2, 2), stride=(2, 2), padding=(0, 0), ceil_mode=True), (2, 2, 5, 3)),
    (dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 1), ceil_mode=True), (1, 2, 6, 4)),
    (dict(kernel_size=(1, 3), stride=(1, 2), padding=(0, 1), ceil_mode=False), (2, 2, 7)),
])
def test_pool_ops_gradcheck(attrs, x_shape):
    x = _distinct_x(x_shape) * 10
    gradcheck(lambda x: apply(N.MaxPool2d(**attrs), x), x)
    for cip in (True, False):
        gradcheck(lambda x, cip=cip: apply(N.AvgPool2d(count_include_pad=cip, **attrs), x), x)


@pytest.mark.parametrize("attrs", [
    dict(size=None, scale_factor=(2.0, 3.0), mode="nearest", align_corners=False),
    dict(size=(5, 3), scale_factor=None, mode="nearest", align_corners=False),
    dict(size=(5, 7), scale_factor=None, mode="bilinear", align_corners=False),
    dict(size=None, scale_factor=(1.5, 2.0), mode="bilinear", align_corners=True),
])
def test_upsample_op_gradcheck(attrs):
    x = np.random.default_rng(0).standard_normal((2, 2, 3, 4))
    gradcheck(lambda x: apply(RZ.Upsample(**attrs), x), x)


def test_adaptive_avgpool_and_identity_gradcheck():
    x = np.random.default_rng(1).standard_normal((2, 2, 5, 7))
    gradcheck(lambda x: apply(RZ.AdaptiveAvgPool2d(output_size=(3, 4)), x), x)
    gradcheck(lambda x: apply(S.Identity(), x) * 3, x)


# -- argument checks ---------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [MaxPool2d, AvgPool2d, MaxPool1d, AvgPool1d])
def test_pool_argument_errors_name_the_layer(cls):
    name = cls.__name__
    with pytest.raises(ValueError, match=f"{name}: kernel_size must be positive"):
        cls(0)
    with pytest.raises(ValueError, match=f"{name}: stride must be positive"):
        cls(2, -1)
    with pytest.raises(ValueError, match=f"{name}: padding must be >= 0"):
        cls(2, 2, -1)
    with pytest.raises(ValueError, match=f"{name}: padding .* at most half"):
        cls(3, 1, 2)


def test_pool_shape_errors_name_layer_and_shapes():
    with pytest.raises(ValueError, match=r"MaxPool1d.*\(2, 3, 4, 4\)"):
        MaxPool1d(2)(Tensor.randn(2, 3, 4, 4))
    with pytest.raises(ValueError, match=r"AvgPool2d.*\(2, 3, 2, 2\)"):
        AvgPool2d(3)(Tensor.randn(2, 3, 2, 2))
    with pytest.raises(ValueError, match="GlobalAveragePooling2D"):
        GlobalAveragePooling2D()(Tensor.randn(2, 3))
    with pytest.raises(ValueError, match="AdaptiveAvgPool2d"):
        AdaptiveAvgPool2d(0)


def test_upsample_argument_errors():
    with pytest.raises(ValueError, match="Upsample: give exactly one"):
        Upsample()
    with pytest.raises(ValueError, match="Upsample: give exactly one"):
        Upsample(size=4, scale_factor=2)
    with pytest.raises(ValueError, match="Upsample: mode"):
        Upsample(scale_factor=2, mode="bicubic")
    with pytest.raises(ValueError, match="Upsample: align_corners"):
        Upsample(scale_factor=2, align_corners=True)
    with pytest.raises(ValueError, match="UpSampling2D: size"):
        UpSampling2D(0)


def test_ceil_mode_output_shapes_match_torch_inside_a_model():
    x = np.random.default_rng(3).standard_normal((2, 3, 13, 11))
    for layer, tl in ((MaxPool2d(3, 2, 1, ceil_mode=True), tnn.MaxPool2d(3, 2, 1, ceil_mode=True)),
                      (AvgPool2d(2, ceil_mode=True), tnn.AvgPool2d(2, ceil_mode=True))):
        x_in = Input((3, 13, 11), dtype=np.float64)
        model = Model(x_in, layer(x_in))
        assert model(Tensor(x, dtype=np.float64)).shape == tuple(tl(torch.from_numpy(x)).shape)


def test_pool_config_round_trip():
    for layer in (MaxPool2d(3, 2, 1, ceil_mode=True), AvgPool1d(3, 2, 1, True, False),
                  AdaptiveAvgPool2d((2, None)), GlobalMaxPooling2D(True),
                  Upsample(size=(4, 5), mode="bilinear", align_corners=True), UpSampling2D(3)):
        assert type(layer)(**layer.config()).config() == layer.config()
