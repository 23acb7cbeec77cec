"""Input and Model: Keras-style functional models, compiled once, trained PyTorch-style.

    x_in = Input((784,))
    x = Dense(784, 10, softmax)(x_in)
    model = Model(x_in, x)          # the graph between x_in and x is captured and compiled here
    pred = model(xb)                # runs the compiled plan; pred.backward() runs it in reverse
"""
import numpy as np

from . import autograd
from .tensor import Tensor
from .plan import Graph, Plan, ModelOp


def Input(shape, dtype=np.float32):
    """A symbolic input: a placeholder for a batch of samples of `shape` (batch dim left free)."""
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    t = Tensor(np.zeros((1,) + shape, dtype=dtype), requires_grad=True, dtype=dtype)
    t._symbolic = True
    return t


class ParameterList(list):
    """A list of parameters that can also be called, so `model.parameters()` works as in PyTorch."""

    def __call__(self):
        return self


class Model:
    """`Model(inputs, outputs)`: a tensor or a list of tensors for each."""

    def __init__(self, inputs, outputs):
        self._multi_in = isinstance(inputs, (list, tuple))
        self._multi_out = isinstance(outputs, (list, tuple))
        self.inputs = list(inputs) if self._multi_in else [inputs]
        self.outputs = list(outputs) if self._multi_out else [outputs]
        for t in self.inputs + self.outputs:
            if not isinstance(t, Tensor):
                raise TypeError(f"Model: inputs and outputs must be Tensors, got {type(t).__name__}")
        self.input_shapes = [tuple(t.shape[1:]) for t in self.inputs]
        self.graph = Graph(self.inputs, self.outputs)
        self.nodes = self._layer_graph()
        self.layers = list({id(n["layer"]): n["layer"] for n in self.nodes
                            if n["kind"] == "layer"}.values())
        self.layer_names = _unique_names(self.layers)
        self.free_params = [t for t in self.graph.params if not any(
            t is p for layer in self.layers for p in layer.parameters)]
        self._plans = {}
        self.training = True

    # -- the layer-level view (summary, save) ----------------------------------------------------
    def _layer_graph(self):
        """Layer calls and loose ops between the inputs and outputs, in execution order."""
        input_ids = {id(t) for t in self.inputs}
        order, seen, stack = [], set(), [(t, False) for t in reversed(self.outputs)]
        while stack:
            t, expanded = stack.pop()
            if expanded:
                order.append(t)
                continue
            if id(t) in seen or id(t) in input_ids:
                continue
            seen.add(id(t))
            history = getattr(t, "_history", None)
            parents = history[1] if history else (t.grad_fn.inputs if t.grad_fn else ())
            if history or t.grad_fn:
                stack.append((t, True))
                stack.extend((p, False) for p in reversed(parents))
        nodes = []
        for t in order:
            history = getattr(t, "_history", None)
            if history:
                nodes.append({"kind": "layer", "layer": history[0], "inputs": history[1], "out": t})
            else:
                nodes.append({"kind": "op", "op": t.grad_fn.op, "inputs": t.grad_fn.inputs, "out": t})
        return nodes

    @property
    def parameters(self):
        """Every trainable tensor, layer by layer in call order (a stable order)."""
        params = [p for layer in self.layers for p in layer.parameters] + self.free_params
        unique, seen = ParameterList(), set()
        for p in params:
            if id(p) not in seen:
                seen.add(id(p))
                unique.append(p)
        return unique

    def zero_grad(self):
        for p in self.parameters:
            if p.grad is not None:
                p.grad.data.fill(0)

    def train(self, mode=True):
        self.training = mode
        for layer in self.layers:
            layer.train(mode)
        return self

    def eval(self):
        return self.train(False)

    @property
    def dtype(self):
        params = self.graph.params
        # no parameters (pooling, activations only): compute in the dtype the Input declared
        return params[0].dtype if params else self.inputs[0].dtype

    # -- running ---------------------------------------------------------------------------------
    def _prepare(self, i, x):
        data = x.data if isinstance(x, Tensor) else x
        try:
            data = np.asarray(data)
        except (ValueError, TypeError) as e:
            raise TypeError(f"Model input #{i}: could not turn it into an array ({e})") from None
        if data.dtype.kind not in "fiub":
            raise TypeError(f"Model input #{i}: expected numbers, got an array of dtype {data.dtype}")
        expected = self.input_shapes[i]
        if data.ndim != len(expected) + 1 or tuple(data.shape[1:]) != expected:
            raise ValueError(f"Model input #{i}: expected shape {(None,) + expected}, got "
                             f"{data.shape}")
        dtype = self.dtype
        if data.dtype != dtype:
            data = data.astype(dtype)
        return np.ascontiguousarray(data)

    def __call__(self, *xs):
        if len(xs) == 1 and isinstance(xs[0], (list, tuple)) and self._multi_in:
            xs = tuple(xs[0])
        if len(xs) != len(self.inputs):
            raise TypeError(f"Model takes {len(self.inputs)} input(s), got {len(xs)}")
        arrays = [self._prepare(i, x) for i, x in enumerate(xs)]
        record = autograd.is_grad_enabled()
        in_rg = tuple(record and isinstance(x, Tensor) and x.requires_grad for x in xs)
        key = (tuple((a.shape, a.dtype.str) for a in arrays), record, in_rg)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = Plan(self.graph, in_rg, record)
        outs = plan.forward(arrays)
        results = [self._output(plan, s, a, xs, record) for s, a in zip(self.graph.output_slots, outs)]
        return results if self._multi_out else results[0]

    def _output(self, plan, slot, array, xs, record):
        """Wrap an output buffer as a Tensor whose backward runs the plan from `slot`."""
        out = self._node_tensor(plan, slot, array, xs, record)
        index, step = self.graph.step_producing(slot)
        if step is not None and type(step.op).__name__ == "Softmax" and array.ndim == 2 \
                and step.op.dim == 1:
            logits_slot = step.ins[0]
            out._softmax_of = self._node_tensor(plan, logits_slot, plan.values[logits_slot], xs,
                                                record)
        return out

    def _node_tensor(self, plan, slot, array, xs, record):
        requires = record and plan.needs[slot]
        t = Tensor._wrap(array.copy(), requires)
        if requires:
            inputs = [x if isinstance(x, Tensor) else Tensor._wrap(np.empty(0)) for x in xs]
            op = ModelOp(plan=plan, seed_slot=slot, generation=plan.generation)
            t.grad_fn = autograd.Node(op, tuple(inputs) + tuple(self.graph.params))
        return t

    forward = __call__

    def predict(self, x, batch_size=None):
        """Outputs as NumPy arrays, in eval mode and without recording a graph."""
        was_training = self.training
        self.eval()
        try:
            with autograd.no_grad():
                xs = list(x) if self._multi_in else [x]
                n = len(xs[0])
                size = batch_size or n
                chunks = [self(*[xi[i:i + size] for xi in xs]) for i in range(0, n, size)]
        finally:
            self.train(was_training)
        if self._multi_out:
            return [np.concatenate([c[k].data for c in chunks]) for k in range(len(self.outputs))]
        return np.concatenate([c.data for c in chunks])

    # -- weights -----------------------------------------------------------------------------------
    def state_dict(self):
        """Parameter and buffer arrays by name ("dense_1.weight", "batchnorm1d_1.running_mean")."""
        state = {}
        for layer, name in zip(self.layers, self.layer_names):
            for pname, p in layer.named_parameters():
                state[f"{name}.{pname}"] = p.data
            for bname in layer.buffer_names:
                state[f"{name}.{bname}"] = getattr(layer, bname)
        for i, p in enumerate(self.free_params):
            state[f"param_{i}"] = p.data
        return state

    def load_state_dict(self, state):
        own = self.state_dict()
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        if missing or unexpected:
            raise KeyError(f"load_state_dict: missing keys {missing}, unexpected keys {unexpected}")
        for key, target in own.items():
            value = np.asarray(state[key])
            if value.shape != target.shape:
                raise ValueError(f"load_state_dict: {key} has shape {target.shape} in the model but "
                                 f"{value.shape} in the state dict")
            target[...] = value

    def save(self, path):
        from .serialization import save_model
        save_model(self, path)

    # -- looking at it -----------------------------------------------------------------------------
    def summary(self, print_fn=print):
        """A Keras-like table: layer, output shape, number of parameters, and the totals."""
        rows = [("Layer (type)", "Output Shape", "Param #")]
        for i, t in enumerate(self.inputs):
            rows.append((f"input_{i + 1} (Input)", str((None,) + self.input_shapes[i]), "0"))
        for node in self.nodes:
            shape = str((None,) + tuple(node["out"].shape[1:]))
            if node["kind"] == "layer":
                layer = node["layer"]
                name = self.layer_names[self.layers.index(layer)]
                count = sum(p.data.size for p in layer.parameters)
                rows.append((f"{name} ({type(layer).__name__})", shape, f"{count:,}"))
            else:
                rows.append((f"({node['op'].name})", shape, "0"))
        widths = [max(len(r[i]) for r in rows) + 2 for i in range(3)]
        line = "=" * sum(widths)
        out = [line, "".join(c.ljust(w) for c, w in zip(rows[0], widths)), line]
        out += ["".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows[1:]]
        total = sum(p.data.size for p in self.parameters)
        out += [line, f"Total params: {total:,}", f"Trainable params: {total:,}",
                "Non-trainable params: 0", line]
        text = "\n".join(out)
        if print_fn is not None:
            print_fn(text)
        return text

    def __repr__(self):
        return f"Model({len(self.layers)} layers, {sum(p.data.size for p in self.parameters):,} params)"

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


def _unique_names(layers):
    counts, names = {}, []
    for layer in layers:
        base = type(layer).__name__.lower()
        counts[base] = counts.get(base, 0) + 1
        names.append(f"{base}_{counts[base]}")
    return names
