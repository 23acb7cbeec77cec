"""pynn: a small deep learning library on NumPy and Numba.

Eager, PyTorch-like tensors with reverse-mode autograd, and Keras-style functional models whose
forward and backward passes are compiled once into a plan of steps on preallocated buffers.
"""
from .tensor import Tensor, tensor
from .autograd import no_grad, enable_grad, retain_grads, is_grad_enabled
from .random import manual_seed
from .anomaly import AnomalyError, detect_anomaly, is_anomaly_enabled
from .model import Input, Model, Sequential, load_model, model_from_json

stack = Tensor.stack
concat = cat = Tensor.concat
where = Tensor.where


def maximum(a, b):
    return (a if isinstance(a, Tensor) else Tensor(a)).maximum(b)


def minimum(a, b):
    return (a if isinstance(a, Tensor) else Tensor(a)).minimum(b)


float32 = "float32"
float64 = "float64"
int64 = "int64"

__version__ = "0.1.0"
