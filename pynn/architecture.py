"""A Model's architecture as JSON-able data, and back: what `get_config`, `to_json`, `save` and
`load_model` use.

The config is read off the graph record (`Model.entries`: layer calls and loose ops, in order):

    {"name": ..., "inputs": [{"shape": [None, 28], "dtype": "<f4", "name": ...}],
     "layers": [{"class": "Dense", "name": "dense_1", "config": {...}}, ...],  # each layer once
     "nodes": [{"layer": 0, "inputs": [ref, ...]}, {"op": "GetItem", "attrs": {...},
               "inputs": [...]}, ...],
     "outputs": [ref, ...], "free_params": [{"name": "param_0", "shape": [...], "dtype": ...}],
     "multi_in": false, "multi_out": false}

A ref is {"input": i}, {"node": j} (with "index": k for the k-th output of a call that returned
several), {"param": name} or {"const": {"value": ..., "dtype": ...}}. A shared layer is one entry
of "layers" called by several nodes; a nested model is a layer whose config is its own
architecture. Nothing in a config is ever executed: classes are looked up by name among the
registered layers (`pynn.layers.register`) and ops.
"""
import numpy as np

from . import config_check
from .layers.base import FUNCTIONS, LAYERS, placeholder_weights  # noqa: F401  (FUNCTIONS: Lambda)
from .ops.base import FreeDim, Op
from .tensor import Tensor, apply


def op_classes():
    """Every Op subclass by class name (the ops a saved graph may name)."""
    import importlib
    import pkgutil

    from . import ops as _ops  # noqa: F401
    for info in pkgutil.iter_modules(_ops.__path__):
        importlib.import_module(f"{_ops.__name__}.{info.name}")
    found, stack = {}, [Op]
    while stack:
        cls = stack.pop()
        for sub in cls.__subclasses__():
            found.setdefault(sub.__name__, sub)
            stack.append(sub)
    return found


# -- values to JSON and back -------------------------------------------------------------------
def jsonable(value, where):
    """A setting (layer config value, op attribute) as JSON-able data; tagged dicts keep what
    JSON has no type for (dtypes, slices, ..., arrays, the free batch size)."""
    if isinstance(value, FreeDim):
        return {"free": "batch"}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if isinstance(value, np.dtype):
        return {"dtype": value.str}
    if isinstance(value, type) and issubclass(value, np.generic):
        return {"dtype": np.dtype(value).str}
    if isinstance(value, slice):
        return {"slice": [jsonable(v, where) for v in (value.start, value.stop, value.step)]}
    if value is Ellipsis:
        return {"ellipsis": True}
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise ValueError(f"save: cannot store {where}: an array of dtype {value.dtype}")
        return {"array": value.tolist(), "dtype": value.dtype.str}
    if isinstance(value, (tuple, list)):
        return [jsonable(v, where) for v in value]
    if isinstance(value, dict):
        return {"dict": {str(k): jsonable(v, f"{where}.{k}") for k, v in value.items()}}
    raise ValueError(f"save: cannot store {where} = {value!r}; only layers and ops with plain "
                     f"settings can be saved (register functions used by Lambda with "
                     f"@pynn.layers.register)")


def unjson(value):
    if isinstance(value, list):
        return tuple(unjson(v) for v in value)
    if isinstance(value, dict):
        if "free" in value:
            return FreeDim(1)
        if "dtype" in value and "array" in value:
            return np.array(value["array"], dtype=np.dtype(value["dtype"]))
        if "dtype" in value:
            return np.dtype(value["dtype"])
        if "slice" in value:
            return slice(*(unjson(v) for v in value["slice"]))
        if "ellipsis" in value:
            return Ellipsis
        if "dict" in value:
            return {k: unjson(v) for k, v in value["dict"].items()}
    return value


# -- Model -> config ---------------------------------------------------------------------------
def layer_config(layer, name):
    if layer.is_model:
        return {"class": "Model", "name": name, "config": model_config(layer)}
    cls = type(layer).__name__
    if LAYERS.get(cls) is not type(layer):
        raise ValueError(f"save: {layer!r} is of class {cls}, which is not registered; decorate "
                         f"it with @pynn.layers.register so that it can be loaded")
    config = {k: jsonable(v, f"{name}.{k}") for k, v in layer.config().items()}
    return {"class": cls, "name": name, "config": config}


def model_config(model):
    ids = {id(t): {"input": i} for i, t in enumerate(model.inputs)}
    free = {id(p): f"param_{i}" for i, p in enumerate(model.free_params)}

    def ref(t):
        if id(t) in ids:
            return ids[id(t)]
        if id(t) in free:
            return {"param": free[id(t)]}
        if t.grad_fn is None:
            return {"const": {"value": t.data.tolist(), "dtype": t.data.dtype.str}}
        raise ValueError(f"save: the model reads a tensor of shape {t.shape} that none of its "
                         f"inputs, layers or ops produced")

    nodes = []
    for j, (kind, entry) in enumerate(model.entries):
        if kind == "layer":
            nodes.append({"layer": model.layers.index(entry.layer),
                          "inputs": [ref(t) for t in entry.inputs]})
            many = len(entry.outputs) > 1
            for k, o in enumerate(entry.outputs):
                ids[id(o)] = {"node": j, "index": k} if many else {"node": j}
        else:
            op = entry.grad_fn.op
            attrs = {k: jsonable(v, f"{op.name}.{k}") for k, v in op.attrs.items()}
            nodes.append({"op": op.name, "attrs": attrs,
                          "inputs": [ref(t) for t in entry.grad_fn.inputs]})
            ids[id(entry)] = {"node": j}
    return {
        "name": model.name,
        "inputs": [{"shape": list(spec.shape), "dtype": spec.dtype.str, "name": spec.name}
                   for spec in model.specs],
        "layers": [layer_config(layer, name)
                   for layer, name in zip(model.layers, model.layer_names)],
        "free_params": [{"name": free[id(p)], "shape": list(p.shape), "dtype": p.dtype.str}
                        for p in model.free_params],
        "nodes": nodes,
        "outputs": [ref(t) for t in model.outputs],
        "multi_in": model._multi_in, "multi_out": model._multi_out,
    }


# -- config -> Model ---------------------------------------------------------------------------
def build_model(config, input_fn, model_cls, arrays=None, where="from_config", weights=None):
    """A new model of the architecture `config`, checked first (`pynn.config_check`). `arrays`
    (a loaded file's arrays) give pynn 0.1 files their constants and free parameters.

    With `weights` (name -> array, as in a state dict: what `load_model` passes), the sizes the
    layers claim must be in proportion to those arrays, each layer is made with placeholder
    weights (zeros: no random draws, pages left untouched), and each weight's shape and dtype
    is checked against
    the file's array before that array takes its place: nothing is allocated for a weight the
    file does not hold."""
    arrays = arrays or {}
    file_elements = None
    if weights is not None:
        file_elements = sum(int(a.size) for a in weights.values())
    config_check.check_config(config, where, LAYERS, lambda: op_classes(),
                              file_elements=file_elements)
    try:
        return _build(config, input_fn, model_cls, arrays, where, weights)
    except (KeyError, IndexError, TypeError, AttributeError, RecursionError, ArithmeticError,
            MemoryError) as e:
        raise ValueError(f"{where}: the architecture is malformed ({type(e).__name__}: {e})") \
            from None
    except ValueError as e:
        if str(e).startswith(where):
            raise
        # a layer refusing its input: the layers and calls of the config do not fit together
        raise ValueError(f"{where}: the architecture does not fit together: {e}") from None


def _build(config, input_fn, model_cls, arrays, where, weights=None):
    inputs = [input_fn(tuple(i["shape"]), dtype=np.dtype(i["dtype"]), name=i.get("name"))
              for i in config["inputs"]]
    names = _default_names(config["layers"]) if weights is not None else None
    layers = [_make_layer(entry, input_fn, model_cls, where, weights,
                          names[i] if names else None)
              for i, entry in enumerate(config["layers"])]
    free = {}
    for p in config.get("free_params", []):
        if isinstance(p, str):         # pynn 0.1: the name alone, the array in the file
            a = arrays[f"{p}"]
            free[p] = Tensor(np.array(a), requires_grad=True, dtype=a.dtype)
        else:
            if weights is not None:
                _check_array(f"free parameter {p['name']!r}", "", weights, p["name"],
                             tuple(p["shape"]), where)
            free[p["name"]] = Tensor(np.zeros(p["shape"], np.dtype(p["dtype"])),
                                     requires_grad=True, dtype=np.dtype(p["dtype"]))
    outs = []
    ops = None

    def deref(r):
        if "input" in r:
            return inputs[r["input"]]
        if "node" in r:
            out = outs[r["node"]]
            return out[r["index"]] if "index" in r else out
        if "param" in r:
            return free[r["param"]]
        c = r["const"]
        if isinstance(c, str):         # pynn 0.1: the array in the file
            a = arrays[f"c/{c}"]
        else:
            a = np.array(c["value"], dtype=np.dtype(c["dtype"]))
        return Tensor(a, dtype=a.dtype)

    for node in config["nodes"]:
        args = [deref(r) for r in node["inputs"]]
        if "layer" in node:
            layer = layers[node["layer"]]
            if weights is not None and not layer.built:
                # a layer whose sizes come from its input (Dense(units)): build it here, with
                # placeholders, so that its weights are checked before any is allocated
                with placeholder_weights():
                    layer.build(*args)
                layer.built = True
                _take_weights(layer, layer.name, weights, where)
            outs.append(layer(*args))
        else:
            if ops is None:
                ops = op_classes()
            if node["op"] not in ops:
                raise ValueError(f"{where}: unknown op {node['op']!r}")
            op = ops[node["op"]](**{k: unjson(v) for k, v in node["attrs"].items()})
            outs.append(apply(op, *args))
    outputs = [deref(r) for r in config["outputs"]]
    return model_cls(inputs if config["multi_in"] else inputs[0],
                     outputs if config["multi_out"] else outputs[0], name=config.get("name"))


def _default_names(entries):
    """The names Model gives layers saved without one (pynn 0.1 files), in their saved order:
    "<class>_1", "<class>_2", ... skipping the names other layers have."""
    taken = {e.get("name") for e in entries if e.get("name") is not None}
    counts, out = {}, []
    for e in entries:
        name = e.get("name")
        if name is None:
            base = str(e["class"]).lower()
            while name is None or name in taken:
                counts[base] = counts.get(base, 0) + 1
                name = f"{base}_{counts[base]}"
            taken.add(name)
        out.append(name)
    return out


def _make_layer(entry, input_fn, model_cls, where, weights=None, name=None):
    cls_name = entry["class"]
    name = entry.get("name") if name is None else name
    if cls_name == "Model":
        inner = None
        if weights is not None:
            inner = {k[len(name) + 1:]: v for k, v in weights.items()
                     if isinstance(name, str) and k.startswith(name + ".")}
        layer = _build(entry["config"], input_fn, model_cls, {}, where, inner)
    else:
        cls = LAYERS.get(cls_name)
        if cls is None:
            raise ValueError(f"{where}: unknown layer class {cls_name!r}; if it is your own, "
                             f"decorate it with @pynn.layers.register before loading")
        kwargs = {k: unjson(v) for k, v in entry["config"].items()}
        try:
            if weights is None:
                layer = cls(**kwargs)
            else:
                with placeholder_weights():
                    layer = cls(**kwargs)
        except (ValueError, TypeError, MemoryError) as e:
            raise ValueError(f"{where}: layer {name!r} ({cls_name}) cannot be made from its "
                             f"saved settings: {type(e).__name__}: {e}") from None
        if weights is not None and getattr(layer, "built", True):
            _take_weights(layer, name, weights, where)
    if name is not None:
        layer.name = name
    return layer


def _take_weights(layer, name, weights, where):
    """Check each weight and buffer of a layer made with placeholders against the file's
    array of that name (shape, float dtype), and put the file's array in its place."""
    label = f"layer {name!r} ({layer!r})"
    for pname, p in layer.named_weights():
        p.data = _check_array(label, pname, weights, f"{name}.{pname}", p.data.shape, where)
    for bname in layer.buffer_names:
        setattr(layer, bname, _check_array(label, bname, weights, f"{name}.{bname}",
                                           getattr(layer, bname).shape, where))


def _check_array(label, what, weights, key, shape, where):
    if key not in weights:
        raise ValueError(f"{where}: {label} has {what or 'a value'} of shape {tuple(shape)}, "
                         f"which the file does not hold (no array {key!r})")
    a = weights[key]
    if a.dtype not in (np.float32, np.float64) or a.shape != tuple(shape):
        raise ValueError(f"{where}: {label}: {what or 'the array'} has shape {a.shape} and dtype "
                         f"{a.dtype} in the file, but the architecture implies shape "
                         f"{tuple(shape)} and float32 or float64")
    return a


def load_exact(model, arrays, where):
    """Copy saved arrays into the model's weights and buffers, keeping the saved dtypes so that
    predictions are bit-identical; every key must match."""
    weights = {k: v for k, v in arrays.items() if not k.startswith("c/")}
    own = model.state_dict()
    missing = sorted(set(own) - set(weights))
    unexpected = sorted(set(weights) - set(own))
    if missing or unexpected:
        raise ValueError(f"{where}: the weights do not match the architecture: missing "
                         f"{missing}, unexpected {unexpected}")
    for name, p in model.named_weights():
        if weights[name].shape != p.data.shape:
            raise ValueError(f"{where}: {name} has shape {weights[name].shape} in the file but "
                             f"{p.data.shape} in the architecture")
        p.data = np.array(weights[name], copy=True)
    _load_buffers(model, weights)


def _load_buffers(model, weights):
    for layer, name in zip(model.layers, model.layer_names):
        if layer.is_model:
            _load_buffers(layer, {k[len(name) + 1:]: v for k, v in weights.items()
                                  if k.startswith(name + ".")})
            continue
        for bname in layer.buffer_names:
            setattr(layer, bname, np.array(weights[f"{name}.{bname}"], copy=True))
