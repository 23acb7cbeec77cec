"""Layers: callables that own parameters. Call them on tensors (symbolic Inputs or real data)."""
from .attention import MultiHeadAttention, MultiheadAttention
from .base import (
    FUNCTIONS,
    GELU,
    LAYERS,
    Layer,
    LeakyReLU,
    LogSoftmax,
    ReLU,
    Sigmoid,
    Softmax,
    Tanh,
    register,
)
from .conv import Conv2d
from .core import Lambda
from .dense import Dense, Linear
from .embedding import Embedding
from .merge import Add, Average, Concatenate, Dot, Maximum, Minimum, Multiply, Subtract
from .normalization import GroupNorm, LayerNorm
from .pooling import AvgPool2d, MaxPool2d
from .recurrent import GRU, LSTM, RNN, SimpleRNN
from .regularization import BatchNorm1d, BatchNorm2d, Dropout
from .shape import Flatten, Reshape
from .sync_batchnorm import SyncBatchNorm

#: every built-in layer class by name, for loading saved models (`register` adds a user's own)
LAYERS.update({cls.__name__: cls for cls in (
    Dense, Conv2d, MaxPool2d, AvgPool2d, Flatten, Reshape, Dropout, BatchNorm1d, BatchNorm2d,
    SyncBatchNorm, ReLU, Sigmoid, Tanh, GELU, Softmax, LogSoftmax, LeakyReLU,
    Lambda, Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate, Dot,
    LayerNorm, GroupNorm, Embedding, RNN, SimpleRNN, LSTM, GRU, MultiHeadAttention)})
