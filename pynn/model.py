"""Input and Model: Keras-style functional models, compiled once, trained PyTorch-style.

    x_in = Input((784,))
    x = Dense(784, 10, softmax)(x_in)
    model = Model(x_in, x)          # the graph between x_in and x is captured and compiled here
    pred = model(xb)                # runs the compiled plan; pred.backward() runs it in reverse

A Model is a layer too: called on symbolic tensors it puts its own graph into the new one
(`Dense(10)(encoder(x))`), sharing its weights; called on data it runs its compiled plan.
"""
import collections
import json
import threading

import numpy as np

from . import architecture, autograd, serialization
from .graph import layer_walk, walk
from .layers.base import Layer, ParameterList, forced_mode
from .ops.nn import constant_weights
from .plan import Graph, ModelOp, Plan
from .tensor import Tensor, apply

#: what load_state_dict returns, as PyTorch's
IncompatibleKeys = collections.namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class InputSpec:
    """What an `Input` placeholder stands for: samples of `shape` (None: any size), `dtype`."""

    __slots__ = ("shape", "dtype", "name")

    def __init__(self, shape, dtype, name):
        self.shape, self.dtype, self.name = shape, dtype, name

    def matches(self, shape):
        return len(shape) == len(self.shape) and all(
            want is None or want == got for want, got in zip(self.shape, shape))

    def __repr__(self):
        return f"InputSpec(shape={(None,) + self.shape}, dtype={self.dtype}, name={self.name!r})"


def Input(shape=None, dtype=None, name=None):
    """A symbolic input: a placeholder for a batch of samples of `shape` (batch dim left free).

    Args:
        shape: the shape of one sample, e.g. ``(784,)``, ``(1, 28, 28)``; ``None`` in it leaves
            that dim free too (``(None, 28)``: sequences of any length).
        dtype: float32 (default) or float64 for data; an integer dtype for indices (token ids),
            which carry no gradient.
        name: the input's name (summary, saving, ONNX).

    Example:
        >>> x_in = Input(shape=(784,), name="pixels")
    """
    if shape is None:
        raise TypeError("Input: give the shape of one sample, e.g. Input((784,))")
    shape = (shape,) if isinstance(shape, (int, np.integer)) or shape is None else tuple(shape)
    for n in shape:
        if n is not None and (not isinstance(n, (int, np.integer)) or n < 0):
            raise ValueError(f"Input: shape entries must be sizes >= 0 or None, got {shape}")
    dtype = np.dtype(np.float32 if dtype is None else dtype)
    if dtype.kind not in "fiub":
        raise TypeError(f"Input: dtype must be a number type, got {dtype}")
    build_shape = (1,) + tuple(1 if n is None else int(n) for n in shape)
    t = Tensor(np.zeros(build_shape, dtype=dtype), requires_grad=dtype.kind == "f", dtype=dtype)
    t._symbolic = True
    t._spec = InputSpec(tuple(None if n is None else int(n) for n in shape), dtype, name)
    return t


class Model(Layer):
    """`Model(inputs, outputs, name=None)`: a tensor or a list of tensors for each.

    Example:
        >>> x_in = Input((784,))
        >>> model = Model(x_in, Dense(784, 10)(x_in))
        >>> model(Tensor.randn((64, 784))).shape
        (64, 10)
    """

    #: how many compiled plans a model keeps, least recently used dropped first. A plan is the
    #: graph compiled for one input signature (shapes, dtypes, grad mode) in one thread, with its
    #: own buffers (several MB for a CNN at batch 64): memory grows with max_plans, and a
    #: call whose plan was dropped compiles it again. Set it on a model or on the class.
    max_plans = 8
    is_model = True

    def __init__(self, inputs, outputs, name=None):
        Layer.__init__(self, name=name)
        self._multi_in = isinstance(inputs, (list, tuple))
        self._multi_out = isinstance(outputs, (list, tuple))
        self.inputs = list(inputs) if self._multi_in else [inputs]
        self.outputs = list(outputs) if self._multi_out else [outputs]
        for t in self.inputs + self.outputs:
            if not isinstance(t, Tensor):
                raise TypeError(f"Model: inputs and outputs must be Tensors, "
                                f"got {type(t).__name__}")
        if len({id(t) for t in self.inputs}) != len(self.inputs):
            raise ValueError("Model: the same tensor is given twice as an input")
        self.specs = [t._spec or InputSpec(tuple(t.data.shape[1:]), t.dtype, None)
                      for t in self.inputs]
        self.input_shapes = [tuple(t.data.shape[1:]) for t in self.inputs]
        # the layer view: layer calls and loose ops between the inputs and the outputs
        self.entries = layer_walk(self.outputs, stop={id(t) for t in self.inputs})
        self.calls = [c for kind, c in self.entries if kind == "layer"]
        self.layers = list({id(c.layer): c.layer for c in self.calls}.values())
        if any(layer is self for layer in self.layers):
            raise ValueError("Model: a model cannot contain itself")
        self.layer_names = _assign_names(self.layers)
        owned = {id(p) for layer in self.layers for p in layer.weights}
        # the op view: what the compiled plans replay
        self.graph = Graph(self.inputs, self.outputs, weights=owned)
        self.free_params = [t for t in self.graph.params if id(t) not in owned]
        self._plans = collections.OrderedDict()
        self._step_layers = None
        self._plans_lock = threading.Lock()
        self.training = True
        self.built = True
        self._check_free_batch()

    def _check_free_batch(self):
        """Run the graph once at batch 2 (the graph was built at batch 1) without recording,
        so that an op that kept the build-time batch size fails here, named, and not at the
        first real call."""
        try:
            self.trial_plan(2)
        except (ValueError, IndexError, TypeError) as e:
            raise ValueError(f"{self._where()}: the graph does not follow the batch size (built "
                             f"at batch 1, it fails at batch 2): {e}") from None

    def trial_plan(self, batch, record=False):
        """A plan compiled for `batch` rows and run once on zeros in eval mode, not kept: nothing
        in the model changes (no running statistics, no RNG). With `record` it is a training
        plan, its buffers as a training step would have them."""
        arrays = [np.zeros((batch,) + t.data.shape[1:],
                           self.dtype if t.dtype.kind == "f" else t.dtype) for t in self.inputs]
        trained = tuple(p._requires_grad for p in self.graph.params)
        plan = Plan(self.graph, (False,) * len(arrays), record, trained, batch=batch)
        with forced_mode(False):    # zeros: not data whose NaNs detect_anomaly() reports
            plan.forward(arrays, check_anomalies=False)
        return plan

    # -- weights ------------------------------------------------------------------------------
    def named_weights(self):
        """(name, tensor) for every parameter, trainable or frozen: "dense_1.weight", ...;
        a nested model's weights are named inside its own name ("encoder.dense_1.weight")."""
        out, seen = [], set()
        for layer, name in zip(self.layers, self.layer_names):
            for pname, p in layer.named_weights():
                if id(p) not in seen:
                    seen.add(id(p))
                    out.append((f"{name}.{pname}", p))
        out += [(f"param_{i}", p) for i, p in enumerate(self.free_params)]
        return out

    @property
    def parameters(self):
        """Every trainable tensor, layer by layer in call order (a stable order): what
        `opt.update(model.parameters)` gets. Frozen weights are left out."""
        return ParameterList(p for _, p in self.named_weights() if p.requires_grad)

    @property
    def trainable_weights(self):
        return list(self.parameters)

    @property
    def non_trainable_weights(self):
        return [p for p in self.weights if not p.requires_grad]

    def buffers(self):
        """(name, array) of the state saved beside the weights (BatchNorm running statistics)."""
        out = []
        for layer, name in zip(self.layers, self.layer_names):
            if isinstance(layer, Model):
                out += [(f"{name}.{b}", a) for b, a in layer.buffers()]
            else:
                out += [(f"{name}.{b}", getattr(layer, b)) for b in layer.buffer_names]
        return out

    def step_layer(self, step):
        """The layer (of `self.layers`) whose call ran a step of the compiled graph, or None
        for a loose op between layers (read off the graph record)."""
        if self._step_layers is None:
            found = {}
            for call in self.calls:
                stop = {id(t) for t in call.inputs}
                for t in walk(call.outputs, stop=stop):
                    if id(t) not in stop and t.grad_fn is not None:
                        found.setdefault(id(t), call.layer)
            self._step_layers = found
        return self._step_layers.get(id(step.tensor))

    def get_layer(self, name=None, index=None):
        """A layer by its name (as in summary()) or by its position in `model.layers`."""
        if index is not None:
            return self.layers[index]
        for layer, n in zip(self.layers, self.layer_names):
            if n == name:
                return layer
        raise ValueError(f"get_layer: no layer named {name!r}; the layers are {self.layer_names}")

    def zero_grad(self):
        for p in self.weights:
            if p.grad is not None:
                p.grad.data.fill(0)

    def train(self, mode=True):
        self.training = mode
        for layer in self.layers:
            layer.train(mode)
        return self

    @property
    def dtype(self):
        for p in self.graph.params:
            if p.data.dtype.kind == "f":
                return p.data.dtype
        # no parameters (pooling, activations only): compute in the dtype the Input declared
        return self.inputs[0].dtype

    # -- running ------------------------------------------------------------------------------
    def _prepare(self, i, x):
        data = x.data if isinstance(x, Tensor) else x
        try:
            data = np.asarray(data)
        except (ValueError, TypeError) as e:
            raise TypeError(f"{self._where()} input #{i}: could not turn it into an array "
                            f"({e})") from None
        if data.dtype.kind not in "fiub":
            raise TypeError(f"{self._where()} input #{i}: expected numbers, got an array of "
                            f"dtype {data.dtype}")
        spec = self.specs[i]
        if data.ndim != len(spec.shape) + 1 or not spec.matches(data.shape[1:]):
            raise ValueError(f"{self._where()} input #{i}: expected shape "
                             f"{(None,) + spec.shape}, got {data.shape}")
        dtype = self.dtype if spec.dtype.kind == "f" else spec.dtype
        if spec.dtype.kind in "iu" and data.dtype.kind not in "iub":
            raise TypeError(f"{self._where()} input #{i}: expected integers ({spec.dtype}), "
                            f"got {data.dtype}")
        if data.dtype != dtype:
            data = data.astype(dtype)
        return np.ascontiguousarray(data)

    def _where(self):
        return f"Model {self.name!r}" if self.name else "Model"

    def __call__(self, *xs, training=None):
        if len(xs) == 1 and isinstance(xs[0], (list, tuple)) and self._multi_in:
            xs = tuple(xs[0])
        if len(xs) != len(self.inputs):
            raise TypeError(f"{self._where()} takes {len(self.inputs)} input(s), got {len(xs)}")
        if any(isinstance(x, Tensor) and x._symbolic for x in xs):
            return self._call_symbolic(xs)
        if training is None or bool(training) == self.training:
            return self._run(xs)
        with forced_mode(bool(training)):    # this call only: other threads keep the model's mode
            return self._run(xs)

    def _run(self, xs, keep=True):
        """Run the plan for these inputs' signature, compiled at its first use. Plans are per
        thread (two threads never share buffers) and the `max_plans` most recently used are
        kept; with `keep=False` a plan not kept already is used for this call only."""
        arrays = [self._prepare(i, x) for i, x in enumerate(xs)]
        record = autograd.is_grad_enabled()
        # (lists into tuple(), not generators: this runs for every call of the model)
        in_rg = tuple([record and isinstance(x, Tensor) and x.requires_grad for x in xs])
        trained = tuple([p._requires_grad for p in self.graph.params])
        key = (tuple([(a.shape, a.dtype) for a in arrays]), record, in_rg, trained,
               threading.get_ident())
        with self._plans_lock:
            plan = self._plans.get(key)
            if plan is not None:
                self._plans.move_to_end(key)
        if plan is None:
            plan = Plan(self.graph, in_rg, record, trained, batch=arrays[0].shape[0])
            if keep:
                with self._plans_lock:
                    self._plans[key] = plan
                    while len(self._plans) > max(int(self.max_plans), 1):
                        self._plans.popitem(last=False)
        outs = plan.forward(arrays)
        results = [self._output(plan, s, a, xs, record)
                   for s, a in zip(self.graph.output_slots, outs)]
        return results if self._multi_out else results[0]

    def _output(self, plan, slot, array, xs, record):
        """Wrap an output buffer as a Tensor whose backward runs the plan from `slot`."""
        out = self._node_tensor(plan, slot, array, xs, record)
        if out.grad_fn is not None:
            src = self._logits_slot(slot)
            if src is not None:
                out.grad_fn.op.logits = self._node_tensor(plan, src, plan.values[src], xs, record)
        return out

    def _logits_slot(self, slot):
        """The slot of the logits when output `slot` is their softmax, else None (the graph
        is fixed, so each output is looked up once)."""
        cache = self.__dict__.setdefault("_logits_slots", {})
        if slot not in cache:
            _, step = self.graph.step_producing(slot)
            is_softmax = step is not None and \
                step.op.softmax_logits(step.tensor.grad_fn) is not None
            cache[slot] = step.ins[0] if is_softmax else None
        return cache[slot]

    def _node_tensor(self, plan, slot, array, xs, record):
        requires = record and plan.needs[slot]
        t = Tensor._wrap(array.copy(), requires)
        if requires:
            inputs = [x if isinstance(x, Tensor) else Tensor._wrap(np.empty(0)) for x in xs]
            op = ModelOp(plan=plan, seed_slot=slot, generation=plan.generation, logits=None)
            inputs = tuple(inputs) + tuple(self.graph.params)
            t.grad_fn = autograd.Node(op, inputs, tuple([x._version for x in inputs]))
        return t

    def _call_symbolic(self, xs):
        """Put this model's graph into the one being built: replay its layer calls and loose
        ops on `xs` (the same layer objects, so the same weights) and record the whole as one
        call of this model."""
        xs = [x if isinstance(x, Tensor) else Tensor(x) for x in xs]
        for i, (x, spec) in enumerate(zip(xs, self.specs)):
            if x.ndim != len(spec.shape) + 1 or not spec.matches(tuple(x.data.shape[1:])):
                raise ValueError(f"{self._where()} input #{i}: expected shape "
                                 f"{(None,) + spec.shape}, got {(None,) + tuple(x.shape[1:])}")
        new = {id(t): x for t, x in zip(self.inputs, xs)}

        def get(t):
            return new.get(id(t), t)          # weights and constants are shared as they are

        for kind, entry in self.entries:
            if kind == "layer":
                out = entry.layer(*[get(t) for t in entry.inputs])
                outs = out if isinstance(out, (tuple, list)) else (out,)
                new.update((id(t), o) for t, o in zip(entry.outputs, outs))
            else:
                op = entry.grad_fn.op.clone()
                new[id(entry)] = apply(op, *[get(t) for t in entry.grad_fn.inputs])
        outs = [get(t) for t in self.outputs]
        return self._record(tuple(xs), outs if self._multi_out else outs[0], retag=True)

    forward = __call__

    def predict(self, x, batch_size=None, verbose=0):
        """Outputs as NumPy arrays, in eval mode and without recording a graph, `batch_size`
        samples at a time (default: all at once); `verbose=1` shows a progress bar.

        The model's own train/eval flag is left alone (eval mode holds for this call, in this
        thread only), and a last batch shorter than `batch_size` runs on a plan that is not
        kept, so predicting on many sizes keeps at most one plan per batch size."""
        if not self.built:                  # a Sequential without an input shape yet
            self(x if isinstance(x, Tensor) else np.asarray(x)[:1])
        xs = list(x) if self._multi_in else [x]
        xs = [a.data if isinstance(a, Tensor) else np.asarray(a) for a in xs]
        if len(xs) != len(self.inputs):
            raise TypeError(f"{self._where()}.predict takes {len(self.inputs)} input(s), "
                            f"got {len(xs)}")
        n = len(xs[0]) if xs[0].ndim else 0
        if batch_size is not None and (isinstance(batch_size, bool) or
                                       not isinstance(batch_size, (int, np.integer)) or
                                       batch_size < 1):
            raise ValueError(f"{self._where()}.predict: batch_size must be an int >= 1, got "
                             f"{batch_size!r}")
        size = int(batch_size or max(n, 1))
        with forced_mode(False), autograd.no_grad(), constant_weights(n):
            if n == 0:       # shape of one sample's output, from a run on one row of zeros
                one = self._run([np.zeros((1,) + a.shape[1:], a.dtype) for a in xs], keep=False)
                one = one if self._multi_out else [one]
                outs = [np.empty((0,) + o.shape[1:], o.dtype) for o in one]
                return outs if self._multi_out else outs[0]
            starts = range(0, n, size)
            if verbose:
                from tqdm import tqdm
                starts = tqdm(starts, desc="predict", mininterval=0.5)
            chunks = [self._run([a[i:i + size] for a in xs], keep=i + size <= n)
                      for i in starts]
        if self._multi_out:
            return [np.concatenate([c[k].data for c in chunks]) for k in range(len(self.outputs))]
        return np.concatenate([c.data for c in chunks])

    def __getstate__(self):
        """copy.deepcopy / pickle: everything but the compiled plans (made again on use) and
        the lock guarding them."""
        state = self.__dict__.copy()
        state["_plans"] = collections.OrderedDict()
        state.pop("_plans_lock", None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._plans_lock = threading.Lock()

    def release_buffers(self):
        """Free every compiled plan and its buffers (they are rebuilt at the next call)."""
        with self._plans_lock:
            self._plans.clear()

    # -- weights in and out ---------------------------------------------------------------------
    def state_dict(self):
        """Parameter and buffer arrays by name ("dense_1.weight", "batchnorm1d_1.running_mean"),
        layer by layer: each layer's weights, then its buffers; a nested model's inside its
        name ("encoder.dense_1.weight")."""
        state, seen = {}, set()
        for layer, name in zip(self.layers, self.layer_names):
            if layer.is_model:
                items = layer.state_dict().items()
            else:
                items = [(n, p.data) for n, p in layer.named_weights()]
                items += [(b, getattr(layer, b)) for b in layer.buffer_names]
            for key, array in items:
                if id(array) not in seen:
                    seen.add(id(array))
                    state[f"{name}.{key}"] = array
        for i, p in enumerate(self.free_params):
            state[f"param_{i}"] = p.data
        return state

    def load_state_dict(self, state, strict=True):
        """Copy arrays into the weights and buffers, in place. With `strict` (default) every key
        must match; otherwise the matching ones are loaded. Returns (missing_keys,
        unexpected_keys) as PyTorch does; a shape that differs is always an error."""
        own = self.state_dict()
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        if strict and (missing or unexpected):
            raise KeyError(f"load_state_dict: missing keys {missing}, unexpected keys {unexpected}")
        for key, target in own.items():
            if key not in state:
                continue
            value = np.asarray(getattr(state[key], "data", state[key]))
            if value.dtype.kind not in "fiub":
                raise ValueError(f"load_state_dict: {key} holds {value.dtype} values; expected "
                                 f"numbers (the model's is {target.dtype})")
            if value.shape != target.shape:
                raise ValueError(f"load_state_dict: {key} has shape {target.shape} in the model "
                                 f"but {value.shape} in the state dict")
            target[...] = value
        return IncompatibleKeys(missing, unexpected)

    def save_weights(self, path, mapping=None):
        """Weights and buffers to `path`: pynn's checked format, or, for a path ending in
        .safetensors, the safetensors format with PyTorch's names (see pynn.interop)."""
        if str(path).endswith(".safetensors"):
            from .interop import save_safetensors
            return save_safetensors(self, path, mapping=mapping)
        serialization.save_arrays(path, self.state_dict(), kind="weights")

    def load_weights(self, path, strict=True, mapping=None):
        """Weights and buffers from a file of `save_weights` or `save` (or a .safetensors
        file, e.g. from PyTorch)."""
        if str(path).endswith(".safetensors"):
            from .interop import load_safetensors
            return load_safetensors(self, path, mapping=mapping)
        _, arrays = serialization.load_arrays(path, kind="weights")
        return self.load_state_dict(arrays, strict=strict)

    def load_torch_state_dict(self, state_dict, mapping=None):
        """Copy the weights of an equivalent PyTorch module in (see
        `pynn.from_torch_state_dict`)."""
        from .interop import from_torch_state_dict
        return from_torch_state_dict(self, state_dict, mapping)

    def export_onnx(self, path, opset=17, **kwargs):
        """Write the model as ONNX (see `pynn.onnx.export`)."""
        from .onnx import export
        return export(self, path, opset=opset, **kwargs)

    def save(self, path):
        """Architecture and weights in one file (`pynn.load_model(path)` rebuilds it)."""
        arch = json.dumps(self.get_config(), sort_keys=True)
        serialization.save_arrays(path, self.state_dict(), kind="model", architecture=arch)

    # -- the architecture ---------------------------------------------------------------------
    def get_config(self):
        """The architecture as JSON-able data (no weights): inputs, layers, calls, outputs."""
        return architecture.model_config(self)

    @classmethod
    def from_config(cls, config):
        """A new Model of the architecture `config` (fresh weights)."""
        return architecture.build_model(config, Input, Model)

    def to_json(self, **kwargs):
        return json.dumps(self.get_config(), **kwargs)

    def config(self):
        return self.get_config()

    # -- looking at it ------------------------------------------------------------------------
    def summary(self, print_fn=print):
        """A Keras-like table: layer (name and type), output shape, number of parameters, and
        the totals, trainable and not (BatchNorm running statistics are non-trainable)."""
        rows = [("Layer (type)", "Output Shape", "Param #")]
        for i, spec in enumerate(self.specs):
            rows.append((f"{spec.name or f'input_{i + 1}'} (Input)", str((None,) + spec.shape),
                         "0"))
        for kind, entry in self.entries:
            if kind == "layer":
                outs = entry.outputs
                shape = ", ".join(str((None,) + tuple(o.data.shape[1:])) for o in outs)
                layer = entry.layer
                name = self.layer_names[self.layers.index(layer)]
                count = sum(p.data.size for p in layer.weights) + _buffer_size(layer)
                rows.append((f"{name} ({type(layer).__name__})", shape, f"{count:,}"))
            else:
                shape = str((None,) + tuple(entry.data.shape[1:]))
                rows.append((f"({entry.grad_fn.op.name})", shape, "0"))
        widths = [max(len(r[i]) for r in rows) + 2 for i in range(3)]
        line = "=" * sum(widths)
        out = [line, "".join(c.ljust(w) for c, w in zip(rows[0], widths)), line]
        out += ["".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows[1:]]
        trainable = sum(p.data.size for p in self.parameters)
        frozen = sum(p.data.size for p in self.non_trainable_weights)
        frozen += sum(a.size for _, a in self.buffers())
        out += [line, f"Total params: {trainable + frozen:,}", f"Trainable params: {trainable:,}",
                f"Non-trainable params: {frozen:,}", line]
        text = "\n".join(out)
        if print_fn is not None:
            print_fn(text)
        return text

    def __repr__(self):
        label = f"{self.name!r}, " if self.name else ""
        count = sum(p.data.size for p in self.weights)
        return f"Model({label}{len(self.layers)} layers, {count:,} params)"

    # -- Keras training API (pynn/training.py) --------------------------------------------------
    stop_training = False       # set by a callback to end fit() after the current batch

    def compile(self, optimizer="rmsprop", loss=None, metrics=None, loss_weights=None):
        """Set the optimizer, loss and metrics for fit/evaluate (see pynn.training.compile)."""
        from . import training
        return training.compile(self, optimizer, loss, metrics, loss_weights)

    def fit(self, x=None, y=None, *args, **kwargs):
        """Train Keras-style; returns a History (see pynn.training.fit for the arguments)."""
        from . import training
        return training.fit(self, x, y, *args, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        """Loss and metrics on (x, y) in inference mode (see pynn.training.evaluate)."""
        from . import training
        return training.evaluate(self, x, y, *args, **kwargs)

    def train_on_batch(self, x, y, return_dict=False):
        """One training step on one batch; its loss and metrics."""
        from . import training
        return training.train_on_batch(self, x, y, return_dict)

    def test_on_batch(self, x, y, return_dict=False):
        """Loss and metrics of one batch in inference mode."""
        from . import training
        return training.test_on_batch(self, x, y, return_dict)
    # -- end of the Keras training API ----------------------------------------------------------


def _buffer_size(layer):
    if isinstance(layer, Model):
        return sum(a.size for _, a in layer.buffers())
    return sum(getattr(layer, b).size for b in layer.buffer_names)


def _assign_names(layers):
    """Each layer's name in this model: its own `name`, or a new one unique in the model
    ("dense_1", "dense_2", ...), kept on the layer from then on."""
    taken = {}
    for layer in layers:
        if layer.name is not None:
            if layer.name in taken:
                raise ValueError(f"Model: two layers are named {layer.name!r} "
                                 f"({taken[layer.name]!r} and {layer!r}); names must be unique")
            taken[layer.name] = layer
    counts = {}
    for layer in layers:
        if layer.name is None:
            base = type(layer).__name__.lower()
            while True:
                counts[base] = counts.get(base, 0) + 1
                candidate = f"{base}_{counts[base]}"
                if candidate not in taken:
                    break
            layer.name = candidate
            taken[candidate] = layer
    return [layer.name for layer in layers]


class Sequential(Model):
    """A stack of layers, each called on the output of the one before, as a functional Model.

    Args:
        layers: a list of layers; the first may be an `Input` tensor.
        input_shape: the shape of one sample; without it (and without an Input first), the
            model is built at its first call, from the data it gets.

    Example:
        >>> model = Sequential([Dense(784, 256, "relu"), Dense(256, 10)], input_shape=(784,))
    """

    def __init__(self, layers=None, input_shape=None, name=None, dtype=None):
        Layer.__init__(self, name=name)
        layers = list(layers or [])
        self._input = None
        if layers and isinstance(layers[0], Tensor):
            self._input, layers = layers[0], layers[1:]
        elif input_shape is not None:
            self._input = Input(input_shape, dtype=dtype)
        self._stack = layers
        self.built = False
        if self._input is not None:
            self._build()

    def add(self, layer):
        self._stack.append(layer)
        if self.built:
            self._build()

    def _build(self):
        x = self._input
        for layer in self._stack:
            x = layer(x)
        Model.__init__(self, self._input, x, name=self.name)

    def __getattr__(self, name):
        if name in ("graph", "layers", "inputs", "outputs", "entries") and \
                not self.__dict__.get("built", False):
            raise RuntimeError("Sequential: the model is not built yet; give input_shape= or "
                               "an Input first, or call it on data once")
        raise AttributeError(name)

    def __call__(self, *xs, training=None):
        if not self.built:
            x = xs[0]
            data = x.data if isinstance(x, Tensor) else np.asarray(x)
            self._input = Input(data.shape[1:], dtype=data.dtype if data.dtype.kind in "iu"
                                else None)
            self._build()
        return Model.__call__(self, *xs, training=training)

    @property
    def parameters(self):
        if not self.built:
            raise RuntimeError("Sequential: the model is not built yet, so it has no parameters; "
                               "give input_shape= or an Input first")
        return Model.parameters.fget(self)


def load_model(path):
    """Rebuild a Model saved with `model.save(path)`: same architecture, same weights."""
    arch, arrays = serialization.load_arrays(path, kind="model")
    where = f"load_model: {path}"
    try:
        config = json.loads(arch)
    except ValueError as e:
        raise ValueError(f"{where} holds an architecture that is not JSON: {e}") from None
    except RecursionError:
        raise ValueError(f"{where} holds an architecture nested too deeply to read") from None
    # the file's weights are checked against the architecture while it is built, before any
    # weight is allocated (see architecture.build_model)
    weights = {k: v for k, v in arrays.items() if not k.startswith("c/")}
    model = architecture.build_model(config, Input, Model, arrays=arrays, where=where,
                                     weights=weights)
    architecture.load_exact(model, arrays, where=where)
    return model


def model_from_json(text):
    """A new Model (fresh weights) from `model.to_json()`."""
    return Model.from_config(json.loads(text))
