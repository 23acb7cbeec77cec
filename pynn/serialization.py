"""The file format of saved models and weights: arrays in one .npz-style zip, with a JSON header
(format, version) and, for a model, its architecture as JSON (see `pynn.architecture`).

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

#: what a file holds -> the format name in its header
FORMATS = {"model": "pynn-model", "weights": "pynn-weights"}
#: 2: a header line before the architecture, nested models, layer names; 1 (pynn 0.1) still reads
VERSION = 2
#: the zip comment: this tag, then the hex SHA-256 of every byte of the file before the digest
_TAG = b"pynn-model sha256:"
_HEX = 64


def _digest(arch_bytes, arrays):
    h = hashlib.sha256(arch_bytes)
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        h.update(key.encode())
        h.update(a.dtype.str.encode())
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def save_arrays(path, weights, kind, architecture=None):
    """Write `weights` (name -> array) and, for a model, its `architecture` (a JSON string)
    to `path` atomically: a temporary file beside it, renamed into place once complete."""
    header = json.dumps({"format": FORMATS[kind], "version": VERSION})
    arrays = {f"w/{k}": np.asarray(v) for k, v in weights.items()}
    for key, a in arrays.items():
        if a.dtype.hasobject:
            raise ValueError(f"save: {key[2:]} holds Python objects; only number arrays are saved")
    arch_bytes = (header + "\n" + (architecture or "")).encode()
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


def load_arrays(path, kind):
    """(architecture JSON string or None, arrays) of a file written by `save_arrays`, after
    checking its digest and format. Weights may be read from a model file too. Arrays are
    keyed by weight name; constants of files saved by pynn 0.1 (format version 1) keep their
    "c/" prefix."""
    where = "load_model" if kind == "model" else "load_weights"
    arrays = _unpack(path)
    if "__architecture__" not in arrays or "__sha256__" not in arrays:
        raise ValueError(f"{where}: {path} is not a pynn file (no architecture inside)")
    arch_bytes = arrays.pop("__architecture__").tobytes()
    digest = arrays.pop("__sha256__").tobytes().decode(errors="replace")
    arrays["__architecture__"] = np.frombuffer(arch_bytes, dtype=np.uint8)
    if _digest(arch_bytes, arrays) != digest:
        raise ValueError(f"{where}: {path} was altered or damaged after it was saved "
                         f"(checksum mismatch)")
    del arrays["__architecture__"]
    text = arch_bytes.decode(errors="replace")
    first, _, rest = text.partition("\n")
    try:
        header = json.loads(first)
    except ValueError:
        header = None
    if not isinstance(header, dict) or "format" not in header:
        # pynn 0.1 files: the architecture JSON alone, format and version inside it
        try:
            old = json.loads(text)
        except ValueError:
            old = {}
        header = {"format": old.get("format"), "version": old.get("version")}
        rest = text
    fmt, version = header.get("format"), header.get("version")
    if fmt not in FORMATS.values():
        raise ValueError(f"{where}: {path} is not a pynn file (format {fmt!r})")
    if not isinstance(version, int) or version > VERSION:
        raise ValueError(f"{where}: {path} was saved by a newer pynn (format version "
                         f"{version!r}); this pynn reads versions up to {VERSION}")
    if kind == "model" and fmt != FORMATS["model"]:
        raise ValueError(f"{where}: {path} holds weights, not a model (no architecture): "
                         f"build the model, then model.load_weights({str(path)!r})")
    out = {}
    for key, a in arrays.items():
        out[key[2:] if key.startswith("w/") else key] = a
    return (rest if kind == "model" else None), out
