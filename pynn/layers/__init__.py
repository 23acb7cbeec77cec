"""Layers: callables that own parameters. Call them on tensors (symbolic Inputs or real data)."""
from .base import LAYERS, FUNCTIONS, register, Layer, ReLU, Sigmoid, Tanh, GELU, Softmax, \
    LogSoftmax, LeakyReLU
from .core import Lambda
from .merge import Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate, Dot
from .dense import Dense, Linear
from .conv import Conv2d
from .pooling import MaxPool2d, AvgPool2d
from .shape import Flatten, Reshape
from .regularization import Dropout, BatchNorm1d, BatchNorm2d

#: every layer class by name, for loading saved models (subclasses of Layer register themselves
#: when they are defined; `register` adds a user's class under another name)
LAYERS.update({cls.__name__: cls for cls in (
    Dense, Conv2d, MaxPool2d, AvgPool2d, Flatten, Reshape, Dropout, BatchNorm1d, BatchNorm2d,
    ReLU, Sigmoid, Tanh, GELU, Softmax, LogSoftmax, LeakyReLU,
    Lambda, Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate, Dot)})
