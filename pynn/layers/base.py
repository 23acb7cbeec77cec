"""Layer: a callable that owns parameters and applies ops to its inputs.

Calling a layer on tensors runs it eagerly (so it also works outside a Model) and records the
call in the graph: the node of each output carries a `LayerCall` (layer, call index, inputs),
which is what `Model` reads for its layer view (summary, saving, nesting, freezing, draw).
"""
import contextlib
import functools
import inspect
import math
import threading

import numpy as np

from ..anomaly import AnomalyError
from ..graph import LayerCall
from ..ops.shape import Identity
from ..random import rng
from ..tensor import Tensor, apply


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


_local = threading.local()


def uniform_(shape, bound, dtype=np.float32):
    """U(-bound, bound), PyTorch's default init for Linear/Conv weights and biases.

    Inside `placeholder_weights()` it draws nothing: zeros, whose pages the OS does not even
    commit until they are written (what `load_model` builds layers with before it has checked
    the file's weights against them, and then replaces)."""
    if getattr(_local, "placeholders", False):
        return np.zeros(tuple(int(n) for n in shape), dtype)
    return rng().uniform(-bound, bound, size=shape).astype(dtype)


@contextlib.contextmanager
def placeholder_weights():
    """In this thread, layers made inside get placeholder weights, not random ones (uniform_)."""
    prev = getattr(_local, "placeholders", False)
    _local.placeholders = True
    try:
        yield
    finally:
        _local.placeholders = prev


@contextlib.contextmanager
def forced_mode(training):
    """In this thread, every layer reads `training` as given (None: its own flag), without
    changing any layer: how `predict` and `model(x, training=...)` run a shared model in eval or
    train mode while other threads use it."""
    prev = getattr(_local, "training", None)
    _local.training = training
    try:
        yield
    finally:
        _local.training = prev


def kaiming_uniform_bound(fan_in):
    """kaiming_uniform_(a=sqrt(5)) as torch.nn.Linear/Conv2d use it: bound = 1/sqrt(fan_in)."""
    return 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0


def shape_str(t):
    """A tensor's shape as a user wrote it: (None, ...) when the batch dim is free."""
    shape = tuple(t.shape)
    if t._symbolic and shape:
        shape = (None,) + shape[1:]
    return str(shape)


#: every Layer subclass by name (what loading a saved model looks classes up in); see `register`
LAYERS = {}
#: functions a `Lambda` layer may be saved with, by name
FUNCTIONS = {}


def register(obj=None, *, name=None):
    """Make a Layer subclass (or a function used in `Lambda`) known to `load_model` by name.

        @pynn.layers.register
        class Scale(Layer): ...

    Built-in layers are registered already. A name that is taken by another object is refused."""
    def add(o):
        key = name or o.__name__
        table = LAYERS if isinstance(o, type) and issubclass(o, Layer) else FUNCTIONS
        if not callable(o):
            raise TypeError(f"register: expected a Layer subclass or a function, got {o!r}")
        old = table.get(key, o)
        redefined = (getattr(old, "__module__", None), getattr(old, "__qualname__", None)) == \
            (getattr(o, "__module__", None), getattr(o, "__qualname__", None))
        if old is not o and not redefined:   # a re-run notebook cell may define it again
            raise ValueError(f"register: the name {key!r} is taken by {old!r}")
        table[key] = o
        return o
    return add if obj is None else add(obj)


class ParameterList(list):
    """A list of parameters that can also be called, so `layer.parameters()` works as in PyTorch
    while `opt.update(layer.parameters)` keeps working."""

    def __call__(self):
        return self


def _accept_name(init):
    """Wrap a subclass's __init__ that has no `name=` argument so it takes one anyway."""
    if "name" in inspect.signature(init).parameters:
        return init

    @functools.wraps(init)
    def wrapper(self, *args, name=None, **kwargs):
        init(self, *args, **kwargs)
        self.name = name
    return wrapper


class Layer:
    """The base of every layer: owns parameters, is called on tensors, records each call.

    A subclass sets `param_names` (attributes holding trainable tensors), `buffer_names`
    (state arrays saved with the weights, e.g. running means), and defines `forward`; `build`
    creates weights whose sizes come from the first input; `config` gives the constructor
    arguments for saving. Every layer takes `name=`.

    Freezing: `layer.trainable = False` (Keras) sets ``requires_grad`` of all its weights to
    False, as `p.requires_grad_(False)` (PyTorch) does for one; both take effect at the next call
    and can be undone. `parameters` lists the trainable weights, `weights` all of them."""
    #: names of the attributes holding parameters, in a stable order
    param_names = ()
    #: names of non-trainable state arrays saved with the weights (e.g. running means)
    buffer_names = ()
    #: True for layers that are whole graphs (Model): saved as a nested architecture
    is_model = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "__init__" in cls.__dict__:
            cls.__init__ = _accept_name(cls.__dict__["__init__"])

    def __init__(self, name=None):
        self._training = True
        self.name = name
        self.built = False
        self._calls = 0

    # -- weights ----------------------------------------------------------------------------
    def named_weights(self):
        """(name, tensor) for every parameter, trainable or frozen."""
        return [(n, getattr(self, n)) for n in self.param_names if getattr(self, n) is not None]

    @property
    def weights(self):
        return [p for _, p in self.named_weights()]

    @property
    def parameters(self):
        """The trainable parameters (``requires_grad``), callable like PyTorch's."""
        return ParameterList(p for p in self.weights if p.requires_grad)

    def named_parameters(self):
        return [(n, p) for n, p in self.named_weights() if p.requires_grad]

    @property
    def trainable(self):
        """False when every weight is frozen (a layer without weights is trainable)."""
        weights = self.weights
        return not weights or any(p.requires_grad for p in weights)

    @trainable.setter
    def trainable(self, value):
        for p in self.weights:
            p.requires_grad = bool(value)

    @property
    def training(self):
        """Train (True) or eval mode; `forced_mode` overrides it for one thread's calls."""
        forced = getattr(_local, "training", None)
        return self.__dict__.get("_training", True) if forced is None else forced

    @training.setter
    def training(self, mode):
        self._training = mode

    def train(self, mode=True):
        self.training = mode
        return self

    def eval(self):
        return self.train(False)

    def config(self):
        """Constructor arguments, as JSON-able values (what save() writes)."""
        return {}

    def build(self, *inputs):
        """Create the weights whose sizes come from the first inputs (Keras-style layers such as
        `Dense(256)`); called once, by the first call, before `check_input` and `forward`."""

    def check_input(self, *inputs):
        """Raise a ValueError naming the layer and the shapes if the inputs cannot go in."""

    def forward(self, *inputs, **kwargs):
        raise NotImplementedError

    def __call__(self, *inputs, **kwargs):
        if len(inputs) == 1 and isinstance(inputs[0], (list, tuple)):
            inputs = tuple(inputs[0])          # merge layers: layer([a, b])
        xs = []
        for x in inputs:
            if isinstance(x, np.ndarray):
                x = Tensor(x)
            if not isinstance(x, Tensor):
                raise TypeError(f"{self!r} expects Tensors or NumPy arrays, got "
                                f"{type(x).__name__}")
            xs.append(x)
        if not getattr(self, "built", True):
            self.build(*xs)
            self.built = True
        self.check_input(*xs)
        symbolic = any(x._symbolic for x in xs)
        if symbolic:   # building a model: run in eval mode so no running stats or RNG are touched
            with forced_mode(False):
                out = self.forward(*xs, **kwargs)
        else:
            try:
                out = self.forward(*xs, **kwargs)
            except AnomalyError as e:      # pynn.detect_anomaly(): name the innermost layer
                e.name_layer(self)
                raise
        return self._record(xs, out)

    def _record(self, xs, out, retag=False):
        """Put this call in the graph record: the node of each output carries it. An output
        that is one of the inputs, or (unless `retag`: a nested model's outputs) that another
        call produced, first gets a node of its own."""
        many = isinstance(out, (tuple, list))
        outs = list(out) if many else [out]
        for i, o in enumerate(outs):
            if not isinstance(o, Tensor):
                raise TypeError(f"{self!r}: forward returned {type(o).__name__}, not a Tensor")
            taken = o.grad_fn is not None and o.grad_fn.call is not None and not retag
            if taken or any(o is x for x in xs) or any(o is p for p in outs[:i]):
                outs[i] = apply(Identity(), o)
        if not any(o.grad_fn is not None for o in outs):
            return out          # eager call on plain data: nothing was recorded, nothing to add
        call = LayerCall(self, getattr(self, "_calls", 0), tuple(xs), tuple(outs))
        self._calls = call.index + 1
        for o in outs:
            if o.grad_fn is not None:
                o.grad_fn.call = call
        return type(out)(outs) if many else outs[0]

    def output_shape_error(self, x, expected):
        return ValueError(f"{self!r} got input of shape {shape_str(x)}; expected {expected}")

    def __repr__(self):
        return type(self).__name__ + "()"


class ActivationLayer(Layer):
    """A layer that applies one activation function (ReLU(), Softmax(dim)...)."""
    activation = None

    def forward(self, x):
        from .. import activations
        return activations.ACTIVATIONS[self.activation](x)


class ReLU(ActivationLayer):
    activation = "relu"


class Sigmoid(ActivationLayer):
    activation = "sigmoid"


class Tanh(ActivationLayer):
    activation = "tanh"


class GELU(ActivationLayer):
    activation = "gelu"


class Softmax(Layer):
    def __init__(self, dim=-1):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return x.softmax(self.dim)

    def config(self):
        return {"dim": self.dim}


class LogSoftmax(Softmax):
    def forward(self, x):
        return x.log_softmax(self.dim)


class LeakyReLU(Layer):
    def __init__(self, negative_slope=0.01):
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x):
        return x.leaky_relu(self.negative_slope)

    def config(self):
        return {"negative_slope": self.negative_slope}
