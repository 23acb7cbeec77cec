"""Weights in PyTorch's names and layouts: safetensors files, and state dicts from torch modules.

pynn layers keep PyTorch's layouts (Dense weight (out, in) as nn.Linear, Conv2d (out, in, kh,
kw), BatchNorm weight / bias / running_mean / running_var), so moving weights is a matter of
names. A pynn key is `<layer name>.<parameter>` as in `model.state_dict()` ("dense_1.weight");
a torch key is `<module path>.<parameter>` ("0.weight", "features.3.bias", "lstm.weight_ih_l0").
The parameter part is the same on both sides, so keys are matched layer by layer:

* by name, when the torch module's submodules are named like the pynn layers (e.g. a
  `torch.nn.Sequential(OrderedDict(dense_1=nn.Linear(...), relu=nn.ReLU(), ...))`);
* otherwise by order: the i-th pynn layer that has weights takes the i-th torch module that has
  weights, in state-dict order, which is the order of a `torch.nn.Sequential` (layers without
  weights, such as ReLU, MaxPool2d or Flatten, hold no keys on either side; a safetensors file
  keeps its keys sorted, so there the order is the natural one of the paths, "2." before "10.");
* or as told: `mapping={pynn_name: torch_name}`, where a name is a whole key
  ("dense_1.weight": "fc.weight") or a layer's prefix ("dense_1": "fc"); the keys not in the
  mapping are then matched by name.

torch's BatchNorm also keeps `num_batches_tracked`, which pynn does not: it is ignored when
loading and written as 0 when saving, so `load_state_dict(strict=True)` accepts the file.

    pynn.interop.save_safetensors(model, "w.safetensors")
    pynn.interop.load_safetensors(model, "w.safetensors")
    pynn.interop.from_torch_state_dict(model, torch_module.state_dict())

pynn never imports torch: a state dict's values may be torch tensors (read through
`.detach().cpu().numpy()`) or anything NumPy can turn into an array. safetensors files are read
and written with the optional `safetensors` package (pip install safetensors), numpy API.
"""
import numpy as np

from . import fileutil

__all__ = ["from_torch_state_dict", "torch_state_dict", "save_safetensors", "load_safetensors",
           "StateDictError"]

#: torch buffers with no pynn counterpart: ignored when loading, written as 0 when saving
TORCH_ONLY = ("num_batches_tracked",)


class StateDictError(ValueError):
    """Keys that do not line up between a pynn model and a state dict."""


def _split(key):
    prefix, _, suffix = key.rpartition(".")
    return prefix, suffix


def _join(prefix, suffix):
    return f"{prefix}.{suffix}" if prefix else suffix


def _groups(keys):
    """Keys grouped by their prefix (the layer or module), in first-seen order."""
    groups = {}
    for key in keys:
        prefix, suffix = _split(key)
        groups.setdefault(prefix, []).append(suffix)
    return groups


def _as_numpy(value, key):
    if hasattr(value, "detach"):              # a torch tensor (without importing torch)
        value = value.detach().cpu().numpy()
    try:
        return np.asarray(value)
    except (TypeError, ValueError) as e:
        raise TypeError(f"state dict entry {key!r}: cannot read it as an array ({e})") from None


def _map_names(own_keys, mapping):
    """pynn key -> torch key for the keys `mapping` names (a whole key or a layer prefix)."""
    out = {}
    for key in own_keys:
        prefix, suffix = _split(key)
        if key in mapping:
            out[key] = mapping[key]
        elif prefix in mapping:
            out[key] = _join(mapping[prefix], suffix)
    unknown = sorted(set(mapping) - set(own_keys) - {_split(k)[0] for k in own_keys})
    if unknown:
        raise StateDictError(f"mapping names {unknown}, which are neither keys nor layer names "
                             f"of the model (its keys: {sorted(own_keys)})")
    return out


def match_keys(own_keys, torch_keys, mapping=None):
    """pynn key -> the torch key it should come from (None: no torch module left), by the rules
    of the module docstring, and how they were matched ("mapping", "name" or "order")."""
    torch_keys = [k for k in torch_keys if _split(k)[1] not in TORCH_ONLY]
    if mapping:
        pairs = _map_names(own_keys, mapping)
        for key in own_keys:
            pairs.setdefault(key, key)
        return pairs, "mapping"
    own_groups, torch_groups = _groups(own_keys), _groups(torch_keys)
    if set(own_groups) & set(torch_groups):
        return {k: k for k in own_keys}, "name"
    pairs = {}
    torch_prefixes = list(torch_groups)
    for i, (prefix, suffixes) in enumerate(own_groups.items()):
        target = torch_prefixes[i] if i < len(torch_prefixes) else None
        for suffix in suffixes:
            pairs[_join(prefix, suffix)] = _join(target, suffix) if target is not None else None
    return pairs, "order"


def from_torch_state_dict(model, state_dict, mapping=None):
    """Copy the weights of an equivalent PyTorch module into `model`, in place.

    `state_dict`: a mapping from torch names to torch tensors or arrays (`module.state_dict()`,
    `safetensors.torch.load_file(...)`). Keys are matched as the module docstring says; if any
    pynn key finds no torch key, a torch key is left over, or shapes differ, a StateDictError
    lists them all and nothing is copied. Returns {pynn key: torch key} as matched."""
    own = model.state_dict()
    pairs, how = match_keys(list(own), list(state_dict), mapping)
    used = {t for t in pairs.values() if t is not None}
    missing = [k if t in (None, k) else f"{k} (looked for {t!r})" for k, t in pairs.items()
               if t is None or t not in state_dict]
    unexpected = [k for k in state_dict if k not in used and _split(k)[1] not in TORCH_ONLY]
    arrays, misshaped = {}, []
    for key, target in pairs.items():
        if target is None or target not in state_dict:
            continue
        value = _as_numpy(state_dict[target], target)
        if value.shape != own[key].shape:
            misshaped.append(f"{key} {own[key].shape} <- {target} {value.shape}")
        arrays[key] = value
    if missing or unexpected or misshaped:
        raise StateDictError(
            f"from_torch_state_dict (keys matched by {how}): missing keys {missing}, unexpected "
            f"keys {unexpected}, mis-shaped keys {misshaped}. The model's keys, layer by layer: "
            f"{list(own)}. Pass mapping={{pynn_name: torch_name}} to pair them explicitly.")
    model.load_state_dict(arrays)       # every key present, every shape checked above
    return pairs


def torch_state_dict(model, mapping=None):
    """The model's weights as {torch name: NumPy array}, for `torch_module.load_state_dict`.

    Names are the pynn keys ("dense_1.weight") renamed by `mapping` ({pynn_name: torch_name},
    a whole key or a layer prefix). Layers with running statistics also get a 0-d int64
    `num_batches_tracked`, as torch's BatchNorm has."""
    own = model.state_dict()
    renamed = _map_names(list(own), mapping or {})
    out = {}
    for key, array in own.items():
        name = renamed.get(key, key)
        if name in out:
            raise StateDictError(f"torch_state_dict: two weights would be named {name!r}")
        out[name] = np.ascontiguousarray(array)
        prefix, suffix = _split(name)
        if suffix == "running_var":
            out[_join(prefix, "num_batches_tracked")] = np.array(0, dtype=np.int64)
    return out


def _safetensors_numpy():
    try:
        import safetensors.numpy
    except ImportError:
        raise ImportError("safetensors files need the safetensors package: "
                          "pip install safetensors") from None
    return safetensors.numpy


def save_safetensors(model, path, mapping=None, metadata=None):
    """Write the model's weights to a .safetensors file in PyTorch's names (see
    `torch_state_dict`), so `safetensors.torch.load_file(path)` gives a state dict the
    matching torch module loads with `load_state_dict(strict=True)`. Written atomically, as
    `model.save` writes (`pynn.fileutil.write_atomic`): a failed write leaves an existing file
    as it was."""
    st = _safetensors_numpy()
    meta = {"format": "pt", "producer": "pynn"}
    meta.update(metadata or {})
    tensors = torch_state_dict(model, mapping)
    fileutil.write_atomic(path, lambda f: f.write(st.save(tensors, metadata=meta)))
    return path


def _natural(key):
    """Sort key for module paths: "2.weight" before "10.weight", as a Sequential runs them."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in key.split(".")]


def load_safetensors(model, path, mapping=None):
    """Load weights from a .safetensors file (written by pynn or by torch) into `model`, keys
    matched as `from_torch_state_dict` does. A safetensors file keeps its keys sorted, not in
    the module's order, so matching by order goes by the natural order of the module paths
    ("2." before "10."), which is a Sequential's. Returns {pynn key: file key}."""
    st = _safetensors_numpy()
    state = st.load_file(str(path))
    state = {k: state[k] for k in sorted(state, key=_natural)}
    return from_torch_state_dict(model, state, mapping)
