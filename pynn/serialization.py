"""save/load_model: architecture as JSON plus weights as NumPy arrays, in one .npz-style zip.

Loading never unpickles (np.load with allow_pickle=False, and object arrays are refused before
they are read) and checks a SHA-256 over every byte of the file (kept in the zip's comment, the
last bytes of the file), so a truncated or altered file is refused with a clear error. Saving
writes a temporary file beside the target and renames it into place, so a crash mid-save leaves
the old file intact.
"""
import hashlib
import io
import json
import os
import tempfile
import zipfile
import zlib

import numpy as np

FORMAT = "pynn-model"
VERSION = 1
#: the zip comment: this tag, then the hex SHA-256 of every byte of the file before the digest
_TAG = b"pynn-model sha256:"
_HEX = 64


def _op_classes():
    from .ops import elementwise, linalg, loss, nn, reduce, shape  # noqa: F401  (register them)
    from .ops.base import Op
    found, stack = {}, [Op]
    while stack:
        cls = stack.pop()
        for sub in cls.__subclasses__():
            found[sub.__name__] = sub
            stack.append(sub)
    return found


def _jsonable(value, where):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, np.dtype):
        return {"dtype": value.str}
    if isinstance(value, (tuple, list)):
        return [_jsonable(v, where) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v, f"{where}.{k}") for k, v in value.items()}
    raise ValueError(f"save: cannot store {where} = {value!r}; only layers and ops with plain "
                     f"settings can be saved")


def _unjson(value):
    if isinstance(value, list):
        return tuple(_unjson(v) for v in value)
    if isinstance(value, dict) and "dtype" in value:
        return np.dtype(value["dtype"])
    return value


def _digest(arch_bytes, arrays):
    h = hashlib.sha256(arch_bytes)
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        h.update(key.encode())
        h.update(a.dtype.str.encode())
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def architecture(model):
    """The model's graph as JSON-able data, plus the constant arrays it refers to."""
    ids = {id(t): {"input": i} for i, t in enumerate(model.inputs)}
    consts, nodes = {}, []
    params = {id(p): f"param_{i}" for i, p in enumerate(model.free_params)}

    def ref(t):
        if id(t) in ids:
            return ids[id(t)]
        if id(t) in params:
            return {"param": params[id(t)]}
        key = f"const_{len(consts)}"
        consts[key] = t.data
        ids[id(t)] = {"const": key}
        return ids[id(t)]

    for j, node in enumerate(model.nodes):
        inputs = [ref(t) for t in node["inputs"]]
        if node["kind"] == "layer":
            layer = node["layer"]
            nodes.append({"layer": model.layers.index(layer), "inputs": inputs})
        else:
            op = node["op"]
            attrs = {k: _jsonable(v, f"{op.name}.{k}") for k, v in op.attrs.items()}
            nodes.append({"op": op.name, "attrs": attrs, "inputs": inputs})
        ids[id(node["out"])] = {"node": j}
    arch = {
        "format": FORMAT, "version": VERSION,
        "inputs": [{"shape": list(s), "dtype": t.dtype.str}
                   for s, t in zip(model.input_shapes, model.inputs)],
        "layers": [{"class": type(l).__name__, "config": _jsonable(l.config(), type(l).__name__)}
                   for l in model.layers],
        "free_params": [params[id(p)] for p in model.free_params],
        "nodes": nodes,
        "outputs": [ref(t) for t in model.outputs],
        "multi_in": model._multi_in, "multi_out": model._multi_out,
    }
    return arch, consts


def save_model(model, path):
    arch, consts = architecture(model)
    arrays = {f"w/{k}": v for k, v in model.state_dict().items()}
    arrays.update({f"c/{k}": v for k, v in consts.items()})
    arch_bytes = json.dumps(arch, sort_keys=True).encode()
    arrays["__architecture__"] = np.frombuffer(arch_bytes, dtype=np.uint8)
    arrays["__sha256__"] = np.frombuffer(_digest(arch_bytes, arrays).encode(), dtype=np.uint8)
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".pynn-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            _write(f, arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _write(f, arrays):
    """Write `arrays` to the open file `f` as an .npz zip whose comment holds the SHA-256 of
    every byte before the digest (an ordinary zip: np.load reads it)."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    with zipfile.ZipFile(buf, "a") as z:
        z.comment = _TAG + b"0" * _HEX
    data = buf.getbuffer()
    body = data[:len(data) - _HEX]
    f.write(body)
    f.write(hashlib.sha256(body).hexdigest().encode())


def _unpack(path):
    """The arrays of a file written by _write, after checking its digest; never unpickles."""
    with open(path, "rb") as f:
        data = f.read()
    body, digest = data[:-_HEX], data[-_HEX:]
    if not data.startswith(b"PK") or not body.endswith(_TAG):
        raise ValueError(f"load_model: {path} is not a pynn model file, or it was truncated (it "
                         f"does not end with a pynn checksum)")
    if hashlib.sha256(body).hexdigest().encode() != digest:
        raise ValueError(f"load_model: {path} was altered or damaged after it was saved "
                         f"(checksum mismatch)")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            for name in z.namelist():
                with z.open(name) as member:
                    version = np.lib.format.read_magic(member)
                    header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                              else np.lib.format.read_array_header_2_0)
                    _, _, dtype = header(member)
                if dtype.hasobject:
                    raise ValueError(f"load_model: {path} holds Python objects ({name}); loading "
                                     f"them would mean unpickling, which pynn never does")
        with np.load(io.BytesIO(data), allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except ValueError as e:
        if str(e).startswith("load_model:"):
            raise
        raise ValueError(f"load_model: {path} is not a readable pynn model file: {e}") from None
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, KeyError, RuntimeError,
            NotImplementedError) as e:   # what a malformed zip makes zipfile/numpy raise
        raise ValueError(f"load_model: {path} is not a readable pynn model file: "
                         f"{type(e).__name__}: {e}") from None


def _read(path):
    arrays = _unpack(path)
    if "__architecture__" not in arrays or "__sha256__" not in arrays:
        raise ValueError(f"load_model: {path} is not a pynn model file (no architecture inside)")
    arch_bytes = arrays.pop("__architecture__").tobytes()
    digest = arrays.pop("__sha256__").tobytes().decode(errors="replace")
    arrays["__architecture__"] = np.frombuffer(arch_bytes, dtype=np.uint8)
    if _digest(arch_bytes, arrays) != digest:
        raise ValueError(f"load_model: {path} was altered or damaged after it was saved "
                         f"(checksum mismatch)")
    del arrays["__architecture__"]
    arch = json.loads(arch_bytes)
    if arch.get("format") != FORMAT or arch.get("version") != VERSION:
        raise ValueError(f"load_model: {path} has format {arch.get('format')!r} version "
                         f"{arch.get('version')!r}; this pynn reads {FORMAT!r} version {VERSION}")
    return arch, arrays


def load_model(path):
    """Rebuild a Model saved with `model.save(path)`: same architecture, same weights."""
    from .layers import LAYERS
    from .model import Input, Model
    from .tensor import Tensor, apply
    arch, arrays = _read(path)
    ops = _op_classes()
    inputs = [Input(tuple(i["shape"]), dtype=np.dtype(i["dtype"])) for i in arch["inputs"]]
    layers = [LAYERS[l["class"]](**{k: _unjson(v) for k, v in l["config"].items()})
              for l in arch["layers"]]
    free = {k: Tensor(arrays[f"w/{k}"], requires_grad=True, dtype=arrays[f"w/{k}"].dtype)
            for k in arch["free_params"]}
    outs = []

    def deref(r):
        if "input" in r:
            return inputs[r["input"]]
        if "node" in r:
            return outs[r["node"]]
        if "param" in r:
            return free[r["param"]]
        array = arrays[f"c/{r['const']}"]
        return Tensor(array, dtype=array.dtype)

    for node in arch["nodes"]:
        args = [deref(r) for r in node["inputs"]]
        if "layer" in node:
            outs.append(layers[node["layer"]](*args))
        else:
            op = ops[node["op"]](**{k: _unjson(v) for k, v in node["attrs"].items()})
            outs.append(apply(op, *args))
    outputs = [deref(r) for r in arch["outputs"]]
    model = Model(inputs if arch["multi_in"] else inputs[0],
                  outputs if arch["multi_out"] else outputs[0])
    _load_exact(model, {k[2:]: v for k, v in arrays.items() if k.startswith("w/")})
    return model


def _load_exact(model, weights):
    """Copy weights in, taking the saved dtypes so predictions are bit-identical."""
    for layer, name in zip(model.layers, model.layer_names):
        for pname, p in layer.named_parameters():
            p.data = np.array(weights[f"{name}.{pname}"], copy=True)
        for bname in layer.buffer_names:
            setattr(layer, bname, np.array(weights[f"{name}.{bname}"], copy=True))
    model.load_state_dict(weights)
