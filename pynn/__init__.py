"""pynn: a small deep learning library on NumPy and Numba.

Eager, PyTorch-like tensors with reverse-mode autograd, and Keras-style functional models whose
forward and backward passes are compiled once into a plan of steps on preallocated buffers.
"""
from .anomaly import AnomalyError, detect_anomaly, is_anomaly_enabled
from .autograd import enable_grad, is_grad_enabled, no_grad, retain_grads
from .interop import from_torch_state_dict
from .kernels.threads import get_num_threads, set_num_threads
from .model import Input, Model, Sequential, load_model, model_from_json
from .random import manual_seed
from .tensor import Tensor, tensor

stack = Tensor.stack
concat = cat = Tensor.concat
where = Tensor.where


def argmax(t, dim=None, keepdim=False, **numpy_names):
    """`pynn.argmax(t, dim)`, as torch.argmax (also axis=/keepdims=)."""
    return (t if isinstance(t, Tensor) else Tensor(t)).argmax(dim, keepdim, **numpy_names)


def argmin(t, dim=None, keepdim=False, **numpy_names):
    return (t if isinstance(t, Tensor) else Tensor(t)).argmin(dim, keepdim, **numpy_names)


def maximum(a, b):
    return (a if isinstance(a, Tensor) else Tensor(a)).maximum(b)


def minimum(a, b):
    return (a if isinstance(a, Tensor) else Tensor(a)).minimum(b)


float32 = "float32"
float64 = "float64"
int64 = "int64"

__version__ = "0.1.0"

# issue 13: ops as functions, as in torch
einsum = Tensor.einsum
randint = Tensor.randint
normal = Tensor.normal
empty = Tensor.empty
from . import functional, init  # noqa: E402  (pynn.init.xavier_uniform_ ...)
