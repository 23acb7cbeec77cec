"""Layers: callables that own parameters. Call them on tensors (symbolic Inputs or real data)."""
from .activation import ELU, GELU, SELU, Hardsigmoid, Hardtanh, Mish, PReLU, SiLU, Softsign
from .attention import MultiHeadAttention, MultiheadAttention
from .base import (
    FUNCTIONS,
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
from .conv import Conv1d, Conv2d, ConvTranspose2d
from .core import Lambda
from .dense import Dense, Linear
from .embedding import Embedding
from .merge import Add, Average, Concatenate, Dot, Maximum, Minimum, Multiply, Subtract
from .normalization import GroupNorm, LayerNorm
from .pooling import (
    AdaptiveAvgPool2d,
    AvgPool1d,
    AvgPool2d,
    GlobalAveragePooling2D,
    GlobalMaxPooling2D,
    MaxPool1d,
    MaxPool2d,
)
from .recurrent import GRU, LSTM, RNN, SimpleRNN
from .regularization import BatchNorm1d, BatchNorm2d, Dropout
from .shape import Flatten, Identity, Reshape
from .sync_batchnorm import SyncBatchNorm
from .upsample import Upsample, UpSampling2D

#: Keras spellings
Swish = SiLU
Conv2D, Conv1D, Conv2DTranspose = Conv2d, Conv1d, ConvTranspose2d
MaxPooling2D, AveragePooling2D, MaxPooling1D, AveragePooling1D = (MaxPool2d, AvgPool2d,
                                                                  MaxPool1d, AvgPool1d)
GlobalAvgPool2D, GlobalMaxPool2D = GlobalAveragePooling2D, GlobalMaxPooling2D

#: every built-in layer class by name, for loading saved models (`register` adds a user's own)
LAYERS.update({cls.__name__: cls for cls in (
    Dense, Conv2d, MaxPool2d, AvgPool2d, Flatten, Reshape, Dropout, BatchNorm1d, BatchNorm2d,
    SyncBatchNorm, ReLU, Sigmoid, Tanh, GELU, Softmax, LogSoftmax, LeakyReLU,
    Lambda, Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate, Dot,
    LayerNorm, GroupNorm, Embedding, RNN, SimpleRNN, LSTM, GRU, MultiHeadAttention,
    Conv1d, ConvTranspose2d, MaxPool1d, AvgPool1d, GlobalAveragePooling2D, GlobalMaxPooling2D,
    AdaptiveAvgPool2d, Upsample, UpSampling2D, Identity,
    ELU, SELU, SiLU, Mish, Softsign, Hardtanh, Hardsigmoid, PReLU)})
