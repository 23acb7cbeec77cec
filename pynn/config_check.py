"""Checks of an architecture config (`pynn.architecture`) read from a file that may be hostile,
made before anything is built: every refusal is a ValueError starting with `where`, never a
KeyError, IndexError or RecursionError from deep inside the builder.

What is checked: the structure (types of every field, references to inputs, earlier nodes and
free parameters only, known layer classes and ops), counts (layers, nodes, nesting depth of
models and of values), input shapes and dtypes, integer settings and the geometry of windows
(kernel sizes, strides, dilations at least 1; paddings at least 0; all at most `MAX_WINDOW`), and,
when the weights come from a file, that the sizes a layer's settings claim are in proportion to
the weights the file holds (a Dense(10**6, 10**6) in a small file is refused before 4 TB are
asked for). The exact shape and dtype of each weight is checked by `architecture.build_model`
once a layer is made with placeholder weights (zeros, no random draws).
"""
import numpy as np

MAX_LAYERS = 10_000
MAX_NODES = 100_000
MAX_MODEL_DEPTH = 16        # models nested in models
MAX_VALUE_DEPTH = 16        # lists in lists in a layer's settings
MAX_RANK = 8                # dims of an input sample
MAX_SAMPLE_ELEMENTS = 1 << 24   # elements of one input sample
MAX_INT = 1 << 31
MAX_WINDOW = 1 << 12        # kernel size, stride, dilation, padding
MAX_CONST_ELEMENTS = 1 << 20
#: the sizes a file's layer settings claim (product of their positive integers, summed over the
#: layers) may be at most this many times the number of weight elements in the file, plus SLACK
CLAIM_RATIO = 64
CLAIM_SLACK = 1 << 24

_WINDOW_KEYS = {"kernel_size": 1, "stride": 1, "dilation": 1, "padding": 0,
                "output_padding": 0}


class _Checker:
    def __init__(self, where, layer_classes, op_names):
        self.where, self.layer_classes, self.op_names = where, layer_classes, op_names
        self.claim = 0

    def fail(self, what):
        raise ValueError(f"{self.where}: the architecture is malformed: {what}")

    def expect(self, value, types, what):
        if isinstance(value, bool) and bool not in types:
            self.fail(f"{what} must be {_names(types)}, got {value!r}")
        if not isinstance(value, types):
            self.fail(f"{what} must be {_names(types)}, got {type(value).__name__}")
        return value

    def model(self, config, depth, what="the model"):
        if depth > MAX_MODEL_DEPTH:
            self.fail(f"models nested more than {MAX_MODEL_DEPTH} deep")
        self.expect(config, (dict,), what)
        for key in ("inputs", "layers", "nodes", "outputs"):
            if key not in config:
                self.fail(f"{what} has no {key!r}")
            self.expect(config[key], (list,), f"{what}'s {key!r}")
        inputs, layers, nodes = config["inputs"], config["layers"], config["nodes"]
        if not inputs:
            self.fail(f"{what} has no inputs")
        if len(layers) > MAX_LAYERS or len(nodes) > MAX_NODES:
            self.fail(f"{what} has {len(layers)} layers and {len(nodes)} nodes (at most "
                      f"{MAX_LAYERS} and {MAX_NODES})")
        for key in ("multi_in", "multi_out"):
            self.expect(config.get(key, False), (bool,), f"{what}'s {key!r}")
        if not config.get("multi_in", False) and len(inputs) != 1:
            self.fail(f"{what} has {len(inputs)} inputs but multi_in is false")
        if not config.get("multi_out", False) and len(config["outputs"]) != 1:
            self.fail(f"{what} has {len(config['outputs'])} outputs but multi_out is false")
        if config.get("name") is not None:
            self.expect(config["name"], (str,), f"{what}'s name")
        for i, spec in enumerate(inputs):
            self.input(spec, f"{what}'s input #{i}")
        for i, entry in enumerate(layers):
            self.layer(entry, depth, f"{what}'s layer #{i}")
        params = set()
        for i, p in enumerate(self.expect(config.get("free_params", []), (list,),
                                          f"{what}'s 'free_params'")):
            if isinstance(p, str):      # pynn 0.1: the name alone
                params.add(p)
                continue
            self.expect(p, (dict,), f"free parameter #{i}")
            params.add(self.expect(p.get("name"), (str,), f"free parameter #{i}'s name"))
            self.shape(p.get("shape"), f"free parameter #{i}'s shape", allow_none=False)
            self.dtype(p.get("dtype"), f"free parameter #{i}'s dtype", "f")
        for j, node in enumerate(nodes):
            w = f"{what}'s node #{j}"
            self.expect(node, (dict,), w)
            if "layer" in node:
                k = self.expect(node["layer"], (int,), f"{w}'s layer")
                if not 0 <= k < len(layers):
                    self.fail(f"{w} calls layer #{k}; there are {len(layers)}")
            elif "op" in node:
                op = self.expect(node["op"], (str,), f"{w}'s op")
                if op not in self.op_names():
                    self.fail(f"{w} runs an unknown op {op!r}")
                attrs = self.expect(node.get("attrs", {}), (dict,), f"{w}'s attrs")
                for key, value in attrs.items():
                    self.value(value, f"{w}'s {key}", 0)
            else:
                self.fail(f"{w} names neither a layer nor an op")
            for r in self.expect(node.get("inputs"), (list,), f"{w}'s inputs"):
                self.ref(r, len(inputs), j, params, w)
        if not config["outputs"]:
            self.fail(f"{what} has no outputs")
        for r in config["outputs"]:
            self.ref(r, len(inputs), len(nodes), params, f"{what}'s outputs")

    def input(self, spec, what):
        self.expect(spec, (dict,), what)
        shape = self.shape(spec.get("shape"), f"{what}'s shape", allow_none=True)
        elements = 1
        for n in shape:
            elements *= 1 if n is None else n
        if elements > MAX_SAMPLE_ELEMENTS:
            self.fail(f"{what} has {elements} elements per sample (at most "
                      f"{MAX_SAMPLE_ELEMENTS})")
        self.dtype(spec.get("dtype"), f"{what}'s dtype", "fiub")
        if spec.get("name") is not None:
            self.expect(spec["name"], (str,), f"{what}'s name")

    def shape(self, shape, what, allow_none):
        self.expect(shape, (list,), what)
        if len(shape) > MAX_RANK:
            self.fail(f"{what} has {len(shape)} dims (at most {MAX_RANK})")
        for n in shape:
            if n is None and allow_none:
                continue
            self.expect(n, (int,), f"{what} entries")
            if not 0 <= n <= MAX_SAMPLE_ELEMENTS:
                self.fail(f"{what} has a size {n} (sizes are 0..{MAX_SAMPLE_ELEMENTS})")
        return shape

    def dtype(self, value, what, kinds):
        self.expect(value, (str,), what)
        try:
            dtype = np.dtype(value)
        except (TypeError, ValueError):
            self.fail(f"{what} {value!r} is not a dtype")
        if dtype.kind not in kinds or dtype.itemsize > 8:
            self.fail(f"{what} {value!r} is not a number type pynn computes in")
        return dtype

    def layer(self, entry, depth, what):
        self.expect(entry, (dict,), what)
        cls = self.expect(entry.get("class"), (str,), f"{what}'s class")
        if entry.get("name") is not None:
            self.expect(entry["name"], (str,), f"{what}'s name")
        if cls == "Model":
            self.model(entry.get("config"), depth + 1, f"the nested model {entry.get('name')!r}")
            return
        if cls not in self.layer_classes:
            raise ValueError(f"{self.where}: unknown layer class {cls!r}; if it is your own, "
                             f"decorate it with @pynn.layers.register before loading")
        config = self.expect(entry.get("config", {}), (dict,), f"{what}'s config")
        what = f"layer {entry.get('name')!r} ({cls})"
        claim = 1
        for key, value in config.items():
            self.expect(key, (str,), f"{what}'s setting names")
            self.value(value, f"{what}'s {key}", 0)
            if key in _WINDOW_KEYS:
                low = _WINDOW_KEYS[key]
                for v in _ints(value):
                    if not low <= v <= MAX_WINDOW:
                        self.fail(f"{what} has {key}={_plain(value)}; each entry must be in "
                                  f"{low}..{MAX_WINDOW}")
            for v in _ints(value):
                if v > 1:
                    claim = min(claim * v, 1 << 62)
        self.claim = min(self.claim + claim, 1 << 62)

    def value(self, value, what, depth):
        if depth > MAX_VALUE_DEPTH:
            self.fail(f"{what} is nested more than {MAX_VALUE_DEPTH} deep")
        if value is None or isinstance(value, (bool, str, float)):
            return
        if isinstance(value, int):
            if abs(value) > MAX_INT:
                self.fail(f"{what} holds the integer {value} (at most {MAX_INT} in size)")
            return
        if isinstance(value, list):
            if len(value) > MAX_CONST_ELEMENTS:
                self.fail(f"{what} holds a list of {len(value)} values")
            for v in value:
                self.value(v, what, depth + 1)
            return
        if isinstance(value, dict):
            if "dtype" in value:
                self.dtype(value["dtype"], f"{what}'s dtype", "fiub")
            for v in value.values():
                self.value(v, what, depth + 1)
            return
        self.fail(f"{what} holds a {type(value).__name__}")

    def ref(self, r, n_inputs, n_nodes, params, what):
        self.expect(r, (dict,), f"a reference in {what}")
        if "input" in r:
            i = self.expect(r["input"], (int,), f"an input reference in {what}")
            if not 0 <= i < n_inputs:
                self.fail(f"{what} reads input #{i}; there are {n_inputs}")
        elif "node" in r:
            j = self.expect(r["node"], (int,), f"a node reference in {what}")
            if not 0 <= j < n_nodes:
                self.fail(f"{what} reads node #{j}, which is not an earlier node")
            if "index" in r:
                k = self.expect(r["index"], (int,), f"an output index in {what}")
                if not 0 <= k < 1024:
                    self.fail(f"{what} reads output #{k} of node #{j}")
        elif "param" in r:
            if r["param"] not in params:
                self.fail(f"{what} reads an unknown parameter {r['param']!r}")
        elif "const" in r:
            c = r["const"]
            if not isinstance(c, str):      # pynn 0.1: a name of an array in the file
                self.expect(c, (dict,), f"a constant in {what}")
                self.dtype(c.get("dtype"), f"a constant's dtype in {what}", "fiub")
                self.value(c.get("value"), f"a constant in {what}", 0)
        else:
            self.fail(f"{what} holds a reference to nothing: {_plain(r)}")


def check_config(config, where, layer_classes, op_names, file_elements=None):
    """Raise a ValueError starting with `where` if `config` is not a sound architecture; with
    `file_elements` (the weight elements a file holds), also if its layers claim sizes out of
    proportion to them."""
    checker = _Checker(where, layer_classes, op_names)
    try:
        checker.model(config, 0)
    except (TypeError, KeyError, IndexError, AttributeError) as e:   # a case not foreseen above
        checker.fail(f"{type(e).__name__}: {e}")
    if file_elements is not None:
        limit = CLAIM_RATIO * file_elements + CLAIM_SLACK
        if checker.claim > limit:
            raise ValueError(f"{where}: the architecture claims layers of about "
                             f"{checker.claim:,} elements (the product of their sizes) but the "
                             f"file holds {file_elements:,} weight elements; refusing to build "
                             f"it (a file whose architecture and weights disagree)")


def _ints(value):
    if isinstance(value, bool):
        return
    if isinstance(value, int):
        yield value
    elif isinstance(value, list):
        for v in value:
            yield from _ints(v)


def _plain(value):
    text = repr(value)
    return text if len(text) < 80 else text[:77] + "..."


def _names(types):
    return " or ".join({"dict": "an object", "list": "a list", "int": "an integer",
                        "str": "a string", "bool": "true or false"}.get(t.__name__, t.__name__)
                       for t in types)
