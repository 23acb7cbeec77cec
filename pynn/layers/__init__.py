"""Layers: callables that own parameters. Call them on tensors (symbolic Inputs or real data)."""
from .base import GELU, Layer, LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh
from .conv import Conv2d
from .dense import Dense, Linear
from .pooling import AvgPool2d, MaxPool2d
from .regularization import BatchNorm1d, BatchNorm2d, Dropout
from .shape import Flatten, Reshape

#: every layer class by name, for loading saved models
LAYERS = {cls.__name__: cls for cls in (
    Dense, Conv2d, MaxPool2d, AvgPool2d, Flatten, Reshape, Dropout, BatchNorm1d, BatchNorm2d,
    ReLU, Sigmoid, Tanh, GELU, Softmax, LogSoftmax, LeakyReLU)}
