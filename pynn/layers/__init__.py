"""Layers: callables that own parameters. Call them on tensors (symbolic Inputs or real data)."""
from .base import Layer, ReLU, Sigmoid, Tanh, GELU, Softmax, LogSoftmax, LeakyReLU
from .dense import Dense, Linear
from .conv import Conv2d
from .pooling import MaxPool2d, AvgPool2d
from .shape import Flatten, Reshape
from .regularization import Dropout, BatchNorm1d, BatchNorm2d
from .normalization import LayerNorm, GroupNorm
from .embedding import Embedding
from .recurrent import RNN, SimpleRNN, LSTM, GRU
from .attention import MultiHeadAttention, MultiheadAttention

#: every layer class by name, for loading saved models
LAYERS = {cls.__name__: cls for cls in (
    Dense, Conv2d, MaxPool2d, AvgPool2d, Flatten, Reshape, Dropout, BatchNorm1d, BatchNorm2d,
    ReLU, Sigmoid, Tanh, GELU, Softmax, LogSoftmax, LeakyReLU,
    LayerNorm, GroupNorm, Embedding, RNN, SimpleRNN, LSTM, GRU, MultiHeadAttention)}
