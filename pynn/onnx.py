"""Export a Model to ONNX: its compiled graph, op by op, built with `onnx.helper`.

    import pynn.onnx
    pynn.onnx.export(model, "net.onnx")          # opset 17, dynamic batch dimension

    import onnxruntime as ort
    session = ort.InferenceSession("net.onnx")
    probs = session.run(None, {"input_0": x})[0]  # == model.predict(x)

The ONNX graph is the Model's plan: each step's op goes through its exporter in
`pynn.onnx_ops.EXPORTERS` (op class name -> function). Weights are initializers named like
`model.state_dict()` ("dense_1.weight"); inputs are named by the model's inputs (their `name`, or
"input_0", "input_1"...), outputs "output_0"...; the first dimension of every input is the
symbolic "batch". Layers that behave differently in training are exported in inference form
(Dropout is the identity, BatchNorm reads its running statistics). A model with an op that has no
exporter raises `ExportError` naming the layer or op before any file is written.

Needs the optional `onnx` package (pip install onnx; onnxruntime to run the result). `import
pynn` never imports it: this module imports it when a function is called.
"""
import numpy as np

from . import onnx_blocks  # noqa: F401  (registers the exporters written with its blocks)
from .onnx_ops import EXPORTERS, ExportError, exporter
from .onnx_tensor_ops import EAGER_ONLY

__all__ = ["export", "to_onnx", "ExportError", "exporter", "EXPORTERS", "MIN_OPSET"]

#: the oldest opset the exporters target (Squeeze/Unsqueeze/ReduceSum take axes as inputs)
MIN_OPSET = 13


def _onnx():
    try:
        import onnx  # the onnx package (absolute import), not this module
    except ImportError:
        raise ImportError("pynn.onnx needs the onnx package: pip install onnx "
                          "(and onnxruntime to run the exported model)") from None
    return onnx


class GraphBuilder:
    """Collects ONNX nodes and initializers and knows each value's dtype and build-time shape
    (batch dim 1). The exporters in pynn.onnx_ops talk to ONNX only through it."""

    def __init__(self, opset, state_names):
        onnx = _onnx()
        self.helper, self.numpy_helper = onnx.helper, onnx.numpy_helper
        self.opset = opset
        self.nodes, self.initializers = [], []
        self.names = set()
        self.dtypes, self.shapes, self.values = {}, {}, {}
        self.state_names = state_names    # id(array) -> its state_dict key
        self.readers = {}                 # a step's output -> the ops reading it (None: outside)
        self.parts = {}                   # (value, index) -> a name already holding value[index]
        self.free_input_dims = False      # an Input left a dim besides the batch free
        self.prefix = ""                  # node-name prefix of the step being exported
        self._count = 0

    # -- names ----------------------------------------------------------------------------------
    def fresh(self, hint):
        """A value name used nowhere else."""
        name = hint
        while name in self.names:
            self._count += 1
            name = f"{hint}_{self._count}"
        self.names.add(name)
        return name

    def declare(self, name, dtype, shape, value=None):
        self.names.add(name)
        self.dtypes[name], self.shapes[name] = np.dtype(dtype), tuple(shape)
        if value is not None:
            self.values[name] = value

    def dtype(self, name):
        return self.dtypes[name]

    def shape(self, name):
        """The value's shape when the model was built (batch dim 1)."""
        return self.shapes[name]

    def value(self, name):
        """The array of a constant or weight, or None for values computed at run time."""
        return self.values.get(name)

    def elem_type(self, dtype):
        return self.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))

    # -- nodes and constants ----------------------------------------------------------------------
    def node(self, op_type, inputs, outputs=1, **attrs):
        """Add one node; `outputs` is a list of names or a count of fresh ones. Returns the output
        name (or the list of them when there are several)."""
        if isinstance(outputs, int):
            outputs = [self.fresh(f"{self.prefix}{op_type.lower()}") for _ in range(outputs)]
        self._count += 1
        self.nodes.append(self.helper.make_node(
            op_type, list(inputs), list(outputs), name=f"{self.prefix}{op_type}_{self._count}",
            **attrs))
        return outputs[0] if len(outputs) == 1 else outputs

    def const(self, array, hint="const", owner=None):
        """An initializer holding `array`; named by its state_dict key when `owner` (or the array
        itself) is a model weight or buffer."""
        array = np.asarray(array)
        key = self.state_names.get(id(array if owner is None else owner))
        if key is not None and key in self.values:
            if self.values[key].dtype == array.dtype:
                return key
            key = None
        name = self.fresh(key or f"{self.prefix}{hint}")
        self.declare(name, array.dtype, array.shape, array)
        self.initializers.append(self.numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def ints(self, values):
        """A 1-D int64 constant (shapes, axes, pads)."""
        return self.const(np.array([int(v) for v in values], dtype=np.int64), "ints")

    def scalar(self, value, dtype):
        return self.const(np.array(value, dtype=dtype), "scalar")

    def cast(self, name, dtype):
        """`name` as `dtype`, through a Cast node when it is not already."""
        dtype = np.dtype(dtype)
        if name in self.dtypes and self.dtypes[name] == dtype:
            return name
        out = self.node("Cast", [name], to=self.elem_type(dtype))
        self.dtypes[out] = dtype
        return out

    def to_model(self, inputs, outputs, name="pynn_model"):
        """The checked ModelProto of the nodes so far: `inputs` as ONNX value infos, `outputs` as
        (name, dtype) or (name, dtype, rank) whose shapes (with the symbolic batch) come from
        shape inference; where inference cannot tell (a Reshape to a run-time shape below opset
        15), an output gets `rank` dims of unknown size."""
        onnx, helper = _onnx(), self.helper
        outs = [helper.make_tensor_value_info(o[0], self.elem_type(o[1]), None)
                for o in outputs]
        graph = helper.make_graph(self.nodes, name, inputs, outs, initializer=self.initializers)
        opsets = [helper.make_opsetid("", self.opset)]
        proto = helper.make_model(graph, opset_imports=opsets, producer_name="pynn",
                                  producer_version=_version(),
                                  ir_version=helper.find_min_ir_version_for(opsets))
        try:
            proto = onnx.shape_inference.infer_shapes(proto, strict_mode=True)
        except Exception as e:         # a type or shape the exporters got wrong
            raise ExportError(f"ONNX export: shape inference failed on the graph: {e}") from None
        for value, o in zip(proto.graph.output, outputs, strict=True):
            tensor_type = value.type.tensor_type
            if len(o) > 2 and not tensor_type.HasField("shape"):
                tensor_type.shape.dim.extend(onnx.TensorShapeProto.Dimension()
                                             for _ in range(o[2]))
        onnx.checker.check_model(proto, full_check=True)
        return proto

    def reduce(self, op_type, x, axes, keepdims, out=None):
        """A Reduce* node over `axes`: given as an input from the opset where the op takes it so
        (ReduceSum from 13, the others from 18), as an attribute before."""
        outputs = [out] if out is not None else 1
        takes_input = op_type == "ReduceSum" or self.opset >= 18
        if takes_input:
            return self.node(op_type, [x, self.ints(axes)], outputs, keepdims=int(keepdims))
        return self.node(op_type, [x], outputs, axes=list(axes), keepdims=int(keepdims))


def _describe(model, step, owners):
    """Which layer (or loose op) a step belongs to, for error messages."""
    op = step.op
    layer = op.attrs.get("module")
    if layer is None:
        params = [s for s in step.ins if s in owners]
        layer = owners[params[0]] if params else None
    if layer is None:
        layer = model.step_layer(step)          # the layer call the step ran in, if any
    shape = tuple(step.tensor.shape[1:]) if step.tensor is not None else None
    where = f"the {op!r} op"
    if layer is not None:
        names = dict(zip(map(id, model.layers), model.layer_names))
        where += f" of layer {names.get(id(layer), type(layer).__name__)} ({layer!r})"
    return f"{where} (output shape {(None,) + shape if shape is not None else '?'})"


def _layer_owners(model):
    """Graph slot -> the layer that owns the parameter in it."""
    by_param = {id(p): layer for layer in model.layers for p in layer.parameters}
    return {s: by_param[id(p)] for s, p in zip(model.graph.param_slots,
                                                       model.graph.params, strict=True)
            if id(p) in by_param}


def _unique(names, what):
    seen = set()
    for n in names:
        if n in seen:
            raise ExportError(f"ONNX export: two {what} are named {n!r}")
        seen.add(n)
    return names


def to_onnx(model, opset=17, input_names=None, output_names=None):
    """The model as an `onnx.ModelProto` (checked with onnx.checker), without writing a file."""
    onnx = _onnx()
    helper = onnx.helper
    if not isinstance(opset, int) or opset < MIN_OPSET:
        raise ValueError(f"ONNX export: opset must be an int >= {MIN_OPSET}, got {opset!r}")
    graph = model.graph
    owners = _layer_owners(model)

    eager = [f"{_describe(model, step, owners)}: {EAGER_ONLY[step.op.name]}"
             for step in graph.steps if step.op.name in EAGER_ONLY]
    if eager:
        raise ExportError("ONNX export: cannot export " + "; ".join(eager))
    missing = [_describe(model, step, owners) for step in graph.steps
               if step.op.name not in EXPORTERS]
    if missing:
        raise ExportError("ONNX export: no exporter for " + "; ".join(missing) +
                          ". Register one with @pynn.onnx.exporter(\"OpName\").")

    state = model.state_dict()
    g = GraphBuilder(opset, {id(a): k for k, a in state.items()})
    in_names = input_names or [getattr(t, "name", None) if isinstance(getattr(t, "name", None),
                                                                       str) else f"input_{i}"
                               for i, t in enumerate(model.inputs)]
    out_names = output_names or [f"output_{i}" for i in range(len(model.outputs))]
    _unique(list(in_names) + list(out_names), "inputs/outputs")
    if len(in_names) != len(model.inputs) or len(out_names) != len(model.outputs):
        raise ValueError(f"ONNX export: the model has {len(model.inputs)} input(s) and "
                         f"{len(model.outputs)} output(s); got names {in_names}, {out_names}")

    g.names.update(out_names)              # reserved: no intermediate value takes these
    slot_name = {}
    graph_inputs = []
    for i, (s, t) in enumerate(zip(graph.input_slots, model.inputs, strict=True)):
        name = in_names[i]
        g.declare(name, t.dtype, t.shape)
        slot_name[s] = name
        free = model.specs[i].shape            # None where the Input left a dim free
        dims = ["batch"] + [n if n is not None else f"{name}_dim{k + 1}"
                            for k, n in enumerate(free)]
        g.free_input_dims |= None in free
        graph_inputs.append(helper.make_tensor_value_info(name, g.elem_type(t.dtype), dims))
    for s, p in zip(graph.param_slots, graph.params, strict=True):
        slot_name[s] = g.const(p.data, owner=p.data)
    for s, array in graph.consts:
        slot_name[s] = g.const(array, f"const_{s}")

    # which ops read each step's output (None: it is also a model output, read outside)
    readers = {step.out: [] for step in graph.steps}
    for step in graph.steps:
        for s in step.ins:
            if s in readers and readers[s] is not None:
                readers[s].append(step.op)
    for s in graph.output_slots:
        readers[s] = None

    # a step that makes an output (once, and not an input) writes the output's name directly
    produced = {step.out for step in graph.steps}
    direct = {s: out_names[k] for k, s in enumerate(graph.output_slots)
              if s in produced and graph.output_slots.count(s) == 1}
    for step in graph.steps:
        op, t = step.op, step.tensor
        where = _describe(model, step, owners)
        layer_key = next((k.rsplit(".", 1)[0] for s in step.ins if s in owners
                          for k in [slot_name[s]] if "." in k), None)
        g.prefix = f"{layer_key}/" if layer_key else ""
        out = direct.get(step.out) or g.fresh(f"{g.prefix}{op.name.lower()}")
        g.declare(out, t.dtype, t.shape)
        g.readers[out] = readers[step.out]
        slot_name[step.out] = out
        try:
            EXPORTERS[op.name](g, op, [slot_name[s] for s in step.ins], out)
        except ExportError as e:
            raise ExportError(f"ONNX export: {where}: {e}") from None
    g.prefix = ""
    for k, s in enumerate(graph.output_slots):
        if direct.get(s) != out_names[k]:
            g.node("Identity", [slot_name[s]], [out_names[k]])

    return g.to_model(graph_inputs, [(n, t.dtype, len(t.shape))
                                     for n, t in zip(out_names, model.outputs, strict=True)])


def _version():
    from . import __version__
    return __version__


def export(model, path, opset=17, input_names=None, output_names=None):
    """Write `model` to `path` as ONNX (see the module docstring); returns the path.

    Nothing is written unless every op exports and `onnx.checker` accepts the graph."""
    onnx = _onnx()
    proto = to_onnx(model, opset, input_names, output_names)
    onnx.save(proto, str(path))
    return path
