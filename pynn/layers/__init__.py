"""Layers: callables that own parameters. Call them on tensors (symbolic Inputs or real data)."""
from .base import Layer, ReLU, Sigmoid, Tanh, Softmax, LogSoftmax, LeakyReLU
from .activation import ELU, SELU, SiLU, Mish, Softsign, Hardtanh, Hardsigmoid, GELU, PReLU
from .dense import Dense, Linear
from .conv import Conv2d, Conv1d, ConvTranspose2d
from .pooling import (MaxPool2d, AvgPool2d, MaxPool1d, AvgPool1d, GlobalAveragePooling2D,
                      GlobalMaxPooling2D, AdaptiveAvgPool2d)
from .upsample import Upsample, UpSampling2D
from .shape import Flatten, Reshape, Identity
from .regularization import Dropout, BatchNorm1d, BatchNorm2d

#: Keras spellings
Swish = SiLU
Conv2D, Conv1D, Conv2DTranspose = Conv2d, Conv1d, ConvTranspose2d
MaxPooling2D, AveragePooling2D, MaxPooling1D, AveragePooling1D = (MaxPool2d, AvgPool2d,
                                                                  MaxPool1d, AvgPool1d)
GlobalAvgPool2D, GlobalMaxPool2D = GlobalAveragePooling2D, GlobalMaxPooling2D

#: every layer class by name, for loading saved models
LAYERS = {cls.__name__: cls for cls in (
    Dense, Conv2d, MaxPool2d, AvgPool2d, Flatten, Reshape, Dropout, BatchNorm1d, BatchNorm2d,
    ReLU, Sigmoid, Tanh, GELU, Softmax, LogSoftmax, LeakyReLU,
    Conv1d, ConvTranspose2d, MaxPool1d, AvgPool1d, GlobalAveragePooling2D, GlobalMaxPooling2D,
    AdaptiveAvgPool2d, Upsample, UpSampling2D, Identity,
    ELU, SELU, SiLU, Mish, Softsign, Hardtanh, Hardsigmoid, PReLU)}
