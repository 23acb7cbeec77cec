"""Computation graph pictures as Graphviz DOT: `pynn.graph.draw(tensor_or_model, path=None)`.

    src = draw(loss)                      # the eager graph behind a tensor, as DOT source
    draw(model, "model.svg")              # a Model's compiled graph, rendered by Graphviz `dot`

Tensors are ovals labelled with their shapes, ops are white boxes labelled like PyTorch's
``grad_fn`` names (``MulBackward``); edges run forward, input -> op -> output. Fill colours tell
parameters (orange), data inputs (blue) and constants (grey) apart; outputs have a bold border.
Layer calls are drawn as dashed clusters named as in ``model.summary()`` (``dense_1``), and a
parameter is labelled with its name there (``dense_1.weight``).

Rendering only needs the ``dot`` program (no Python package): ``apt-get install graphviz`` or
``brew install graphviz``. Without it, ``draw`` still returns the DOT source.
"""
import os
import shutil
import subprocess

from .graph import layer_call, walk

#: fill colour (and legend text) of each kind of tensor
STYLES = {
    "param": ("#fdd0a2", "parameter"),
    "input": ("#c6dbef", "data input"),
    "const": ("#e0e0e0", "constant"),
    "tensor": ("#ffffff", "intermediate"),
}
OP_STYLE = 'shape=box, style="rounded,filled", fillcolor="#ffffff", color="#444444"'
OUTPUT_PENWIDTH = "2.5"
RENDER_FORMATS = {".svg": "svg", ".png": "png", ".pdf": "pdf"}
SOURCE_SUFFIXES = (".dot", ".gv")


def draw(tensor_or_model, path=None, rankdir="LR", plan=False):
    """The computation graph behind a tensor (or a list of tensors), or a Model's compiled graph,
    as Graphviz DOT source (a str, always returned).

    `path` ending in ``.dot``/``.gv`` writes the source; ``.svg``/``.png``/``.pdf`` renders it with
    Graphviz's ``dot`` program (RuntimeError if it is not installed; the ``.dot`` file is then
    written beside `path` so nothing is lost). `rankdir` is "LR" (left to right) or "TB" etc.

    In an eager graph, leaves that require grad are parameters, 0-d leaves (Python numbers) are
    constants and the other leaves are data inputs. In a Model, the batch dimension is shown as
    None: ``(None, 784)``.

    ``plan=True`` (a Model only) draws the compiled plan instead: its numbered steps in the order
    they run, each slot with the shape and dtype of the array it holds at the model's most
    recent input signature (a batch of 1 if it was never called), and the buffers each step
    owns."""
    if rankdir not in ("LR", "RL", "TB", "BT"):
        raise ValueError(f"draw(): rankdir must be 'LR', 'RL', 'TB' or 'BT', got {rankdir!r}")
    is_model = hasattr(tensor_or_model, "graph") and hasattr(tensor_or_model, "outputs")
    if plan and not is_model:
        raise TypeError("draw(plan=True): only a Model has a compiled plan")
    if plan:
        picture = _from_plan(tensor_or_model)
    elif is_model:
        picture = _from_model(tensor_or_model)
    else:
        roots = tensor_or_model if isinstance(tensor_or_model, (list, tuple)) else [tensor_or_model]
        for t in roots:
            if not hasattr(t, "grad_fn") or not hasattr(t, "shape"):
                raise TypeError(f"draw(): expected a Tensor, a list of Tensors or a Model, got "
                                f"{type(t).__name__}")
        picture = _from_tensors(list(roots))
    source = _to_dot(picture, rankdir)
    if path is not None:
        _save(source, os.fspath(path))
    return source


# -- what to draw: tensors, ops and clusters, each with a stable key -----------------------------
class _Picture:
    def __init__(self):
        self.tensors = {}     # key -> (kind, label, is_output), in insertion order
        self.ops = []         # (key, label, [input keys], output key)
        self.clusters = []    # (key, label, [node keys])

    def cluster_layer_calls(self, calls, key_of):
        """calls: (name, layer, inputs, out) per layer call, in call order; `key_of(tensor)` gives
        [op key or None, tensor key] for a tensor in this picture, or None. A box holds the
        layer's parameters and ops, its intermediate tensors and what it reads (not its output,
        which sits in the next box, nor the model's inputs)."""
        taken, count = set(), {}
        for name, layer, inputs, out in calls:
            count[name] = count.get(name, 0) + 1
            stop = {id(t) for t in inputs}
            members = []
            for t in inputs:           # its inputs too: keeps the main path straight
                keys = key_of(t)
                if keys is not None and keys[1] not in taken and keys[0] is not None:
                    taken.add(keys[1])
                    members.append(keys[1])
            for t in walk([out], stop=stop):
                keys = key_of(t)
                if id(t) in stop or keys is None:
                    continue
                if t is out:
                    keys = keys[:1]
                for key in keys:
                    if key is not None and key not in taken:
                        taken.add(key)
                        members.append(key)
            if members:
                label = f"{name} ({type(layer).__name__})"
                if count[name] > 1:
                    label += f" call {count[name]}"
                self.clusters.append((f"cluster_{len(self.clusters)}", label, members))


def _shape(shape, batch_free=False):
    shape = tuple(int(n) for n in shape)
    return str((None,) + shape[1:]) if batch_free and shape else str(shape)


def _const_label(array):
    shape = _shape(array.shape)
    if array.size == 1:
        return f"{array.reshape(-1)[0].item():g}\n{shape}"
    return f"const\n{shape}"


def _param_names(calls):
    """id(parameter) -> "dense_1.weight" for the parameters of the layers called."""
    names = {}
    for name, layer, _, _ in calls:
        for pname, p in getattr(layer, "named_parameters", lambda: [])():
            names.setdefault(id(p), f"{name}.{pname}")
    return names


def _from_tensors(roots):
    order = walk(roots)
    root_ids = {id(t) for t in roots}
    pic, keys = _Picture(), {}
    calls, count = [], {}
    seen_calls = set()
    for t in order:                          # eager layer calls, named as a Model would name them
        call = layer_call(t)
        if call is not None and id(call) not in seen_calls:
            seen_calls.add(id(call))
            layer = call.layer
            base = type(layer).__name__.lower()
            known = layer.name or next((c[0] for c in calls if c[1] is layer), None)
            if known is None:
                count[base] = count.get(base, 0) + 1
                known = f"{base}_{count[base]}"
            for out in call.outputs:
                calls.append((known, layer, call.inputs, out))
    names = _param_names(calls)
    for i, t in enumerate(order):
        key = f"t{i}"
        keys[id(t)] = [None, key]            # (op key, tensor key): an op before its output
        batch_free = t._symbolic
        shape = _shape(t.shape, batch_free)
        if t.grad_fn is not None:
            kind, label = "tensor", shape
        elif batch_free:
            kind, label = "input", shape
        elif t.requires_grad:
            kind = "param"
            label = f"{names[id(t)]}\n{shape}" if id(t) in names else shape
        elif t.ndim == 0:
            kind, label = "const", _const_label(t.data)
        else:
            kind, label = "input", shape
        pic.tensors[key] = (kind, label, id(t) in root_ids)
        if t.grad_fn is not None:
            op_key = f"op{len(pic.ops)}"
            keys[id(t)][0] = op_key
            ins = [keys[id(p)][1] for p in t.grad_fn.inputs]
            pic.ops.append((op_key, t.grad_fn.name(), ins, key))
    pic.cluster_layer_calls(calls, lambda t: keys.get(id(t)))
    return pic


def _from_model(model):
    graph = model.graph
    slot_tensor = {}                         # slot -> the tensor captured there
    for step in graph.steps:
        t = step.tensor
        if t is not None:
            slot_tensor[step.out] = t
            if t.grad_fn is not None:
                slot_tensor.update(zip(step.ins, t.grad_fn.inputs))
    for s, t in zip(graph.input_slots, model.inputs):
        slot_tensor[s] = t
    for s, t in zip(graph.param_slots, graph.params):
        slot_tensor[s] = t
    slot_of = {id(t): s for s, t in slot_tensor.items()}

    calls = [(c.layer.name, c.layer, c.inputs, out) for c in model.calls for out in c.outputs]
    names = _param_names(calls)
    consts = dict(graph.consts)
    outputs = set(graph.output_slots)
    batched = {}                             # slot -> whether its first dim is the batch
    kinds = {}
    for i, s in enumerate(graph.input_slots):
        spec = model.specs[i]
        kinds[s] = ("input", f"{spec.name or f'input_{i + 1}'}\n{(None,) + spec.shape}")
        batched[s] = True
    for s, p in zip(graph.param_slots, graph.params):
        label = _shape(p.shape)
        kinds[s] = ("param", f"{names[id(p)]}\n{label}" if id(p) in names else label)
    for s, array in consts.items():
        kinds[s] = ("const", _const_label(array))

    pic, op_of = _Picture(), {}
    for s in sorted(kinds):                  # leaves first, in slot order
        pic.tensors[f"t{s}"] = kinds[s] + (s in outputs,)
    for i, step in enumerate(graph.steps):
        shape = step.tensor.shape if step.tensor is not None else ()
        # the first dim is the batch when the step reads a batched slot and keeps a dim of 1
        # there (the capture ran on a batch of one)
        batched[step.out] = bool(len(shape) and shape[0] == 1
                                 and any(batched.get(s, False) for s in step.ins))
        label = _shape(shape, batched[step.out])
        if step.out in outputs and len(graph.output_slots) > 1:
            label = f"output_{graph.output_slots.index(step.out) + 1}\n{label}"
        pic.tensors[f"t{step.out}"] = ("tensor", label, step.out in outputs)
        op_of[step.out] = f"op{i}"
        pic.ops.append((f"op{i}", step.op.name + "Backward",
                        [f"t{s}" for s in step.ins], f"t{step.out}"))

    def key_of(t):
        s = slot_of.get(id(t))
        return None if s is None else [op_of.get(s), f"t{s}"]
    pic.cluster_layer_calls(calls, key_of)
    return pic


def compiled_plan(model):
    """The model's most recently used plan; without one, a training plan for a batch of one run
    once on zeros (`Model.trial_plan`: nothing in the model changes), not kept."""
    if model._plans:
        return next(reversed(model._plans.values()))
    return model.trial_plan(1, record=True)


#: how a plan step that another step computes is labelled (pynn.plan's fusions)
FUSED_BY = {
    "MaxPool2d": " (computed by the conv before it)",
    "Relu": " (computed by the BatchNorm before it)",
    "Narrow": " (passed through: the attention reads its third of the projection)",
    "SplitHeads": " (passed through: the attention reads the heads itself)",
    "MergeHeads": " (passed through: the attention writes the merged layout)",
}


def _from_plan(model):
    plan = compiled_plan(model)
    graph = model.graph
    names = {id(p): n for n, p in model.named_weights()}
    kinds = {s: "input" for s in graph.input_slots}
    kinds.update({s: "param" for s in graph.param_slots})
    kinds.update({s: "const" for s, _ in graph.consts})
    outputs = set(graph.output_slots)
    pic = _Picture()
    # a conv that computes the max-pool after it (Conv2d.fuse_pool) never stores its own output
    fused_slots = {step.out for step, op in zip(graph.steps, plan.ops)
                   if getattr(op, "pool", None) is not None}

    def label(s):
        value = plan.values[s]
        text = f"slot {s}"
        if s in fused_slots:
            return text + "\n(not stored: the conv writes the pooled output)"
        if s in graph.param_slots:
            p = graph.params[graph.param_slots.index(s)]
            text += f"  {names.get(id(p), 'param')}"
        if s in graph.input_slots:
            text += f"  input_{graph.input_slots.index(s) + 1}"
        if value is not None:
            text += f"\n{tuple(value.shape)} {value.dtype}"
        return text

    for s in sorted(kinds):
        pic.tensors[f"t{s}"] = (kinds[s], label(s), s in outputs)
    for i, (step, op) in enumerate(zip(graph.steps, plan.ops)):
        pic.tensors[f"t{step.out}"] = ("tensor", label(step.out), step.out in outputs)
        text = f"step {i}: {op.name}"
        if getattr(op, "pool", None) is not None:
            text += " + MaxPool2d, fused"
        elif getattr(op, "relu", False) is True:
            text += " + ReLU, fused"
        elif getattr(op, "packed_heads", 0):
            text += " + head split and merge, fused (reads q, k, v from the projection)"
        elif getattr(op, "fused", False):
            text += FUSED_BY.get(op.name, " (passed through: fused into its neighbour)")
        settings = ", ".join(f"{k}={v}" for k, v in op.attrs.items()
                             if not hasattr(v, "__dict__") and len(repr(v)) < 30)
        if settings:
            text += f"\n({settings})"
        for key, buf in op._buffers.items():
            text += f"\nbuffer {key}: {tuple(buf.shape)}"
        pic.ops.append((f"op{i}", text, [f"t{s}" for s in step.ins], f"t{step.out}"))
    return pic


# -- DOT text ------------------------------------------------------------------------------------
def quote(text):
    """`text` as a DOT double-quoted string: backslashes and quotes escaped, newlines as \\n
    (so "<MulBackward>" or a name with quotes is taken literally, never as an HTML label)."""
    text = str(text).replace("\\", "\\\\").replace('"', '\\"')
    return '"' + text.replace("\r", "").replace("\n", "\\n") + '"'


def _tensor_attrs(kind, label, is_output):
    fill = STYLES[kind][0]
    attrs = f'label={quote(label)}, fillcolor="{fill}"'
    if is_output:
        attrs += f", penwidth={OUTPUT_PENWIDTH}"
    return attrs


def _legend():
    rows = "".join(
        f'<TR><TD BGCOLOR="{fill}" BORDER="1" WIDTH="18"> </TD><TD ALIGN="LEFT">{text}</TD></TR>'
        for kind, (fill, text) in STYLES.items() if kind != "tensor")
    rows += ('<TR><TD BORDER="1" STYLE="ROUNDED" WIDTH="18"> </TD><TD ALIGN="LEFT">op</TD></TR>'
             '<TR><TD BORDER="3" WIDTH="18"> </TD><TD ALIGN="LEFT">output</TD></TR>')
    return (f'  legend [shape=plaintext, style=solid, fontsize=9, label=<<TABLE BORDER="1" '
            f'COLOR="#aaaaaa" CELLBORDER="0" CELLSPACING="3" CELLPADDING="1">{rows}</TABLE>>];')


def _to_dot(pic, rankdir):
    lines = [
        "digraph pynn {",
        f"  graph [rankdir={rankdir}, fontname=\"Helvetica\", fontsize=10, nodesep=0.25, "
        "ranksep=0.3, newrank=true];",
        '  node [fontname="Helvetica", fontsize=10, shape=ellipse, style=filled, '
        'color="#444444", margin="0.08,0.03", height=0.3];',
        '  edge [color="#555555", arrowsize=0.6];',
        _legend(),
    ]
    ops = {key: label for key, label, _, _ in pic.ops}

    def node(key, indent):
        if key in ops:
            return f"{indent}{key} [label={quote(ops[key])}, {OP_STYLE}];"
        return f"{indent}{key} [{_tensor_attrs(*pic.tensors[key])}];"

    placed = set()
    for ckey, label, members in pic.clusters:
        lines.append(f"  subgraph {ckey} {{")
        lines.append(f'    label={quote(label)}; style="rounded,dashed"; color="#888888"; '
                     f'fontcolor="#333333";')
        lines += [node(k, "    ") for k in members]
        lines.append("  }")
        placed.update(members)
    order = list(pic.tensors)
    for key, _, _, out in pic.ops:          # each op just before the tensor it makes
        order.insert(order.index(out), key)
    lines += [node(k, "  ") for k in order if k not in placed]
    for key, _, ins, out in pic.ops:
        # edges carrying data (not parameters or constants) pull harder: the main path runs straight
        lines += [f"  {i} -> {key};" if pic.tensors[i][0] in ("param", "const")
                  else f"  {i} -> {key} [weight=4];" for i in ins]
        lines.append(f"  {key} -> {out} [weight=4];")
    lines.append("}")
    return "\n".join(lines) + "\n"


# -- files ---------------------------------------------------------------------------------------
def _save(source, path):
    base, suffix = os.path.splitext(path)
    suffix = suffix.lower()
    if suffix in SOURCE_SUFFIXES:
        with open(path, "w", encoding="utf-8") as f:
            f.write(source)
        return
    if suffix not in RENDER_FORMATS:
        raise ValueError(f"draw(): cannot tell the format of {path!r} from its suffix; use .dot, "
                         f".gv, .svg, .png or .pdf")
    dot = shutil.which("dot")
    if dot is None:
        dot_path = base + ".dot"
        with open(dot_path, "w", encoding="utf-8") as f:
            f.write(source)
        error = RuntimeError(
            f"draw(): rendering {path!r} needs Graphviz's `dot` program, which is not installed "
            f"(not found on PATH). The DOT source was written to {dot_path!r} (and draw() without "
            f"a path returns it as a string). Install Graphviz (`apt-get install graphviz`, "
            f"`brew install graphviz` or `conda install graphviz`), then run: "
            f"dot -T{RENDER_FORMATS[suffix]} {dot_path} -o {path}")
        error.dot_source = source
        raise error
    result = subprocess.run([dot, f"-T{RENDER_FORMATS[suffix]}", "-o", path],
                            input=source.encode("utf-8"), capture_output=True)
    if result.returncode != 0:
        raise RuntimeError(f"draw(): Graphviz `dot` failed to render {path!r}: "
                           f"{result.stderr.decode(errors='replace').strip()}")
