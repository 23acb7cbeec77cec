"""The file format of saved models and weights: arrays in one .npz-style zip, with a JSON header
(format, version) and, for a model, its architecture as JSON (see `pynn.architecture`).

Loading never unpickles (np.load with allow_pickle=False, and object arrays are refused before
they are read) and checks a SHA-256 over every byte of the file (kept in the zip's comment, the
last bytes of the file), so a truncated or altered file is refused with a clear error. Saving
writes a temporary file beside the target and renames it into place, so a crash mid-save leaves
the old file intact (see `pynn.fileutil`: the saved file gets the permissions the file it
replaces had, else those of the umask; a symbolic link's target is replaced; orphaned temporary
files of killed saves in the folder are removed by the next save).

A file from an untrusted source is read defensively: only a regular file (never a FIFO or a
device), no more bytes than it has, members whose stated sizes add up to no more than
`MAX_EXPANSION` times the file (pynn stores arrays uncompressed: a larger claim is a zip bomb),
and every array's header must agree with its member's size before anything is allocated.
"""
import hashlib
import io
import json
import zipfile
import zlib

import numpy as np

from . import fileutil

#: what a file holds -> the format name in its header
FORMATS = {"model": "pynn-model", "weights": "pynn-weights"}
#: 2: a header line before the architecture, nested models, layer names; 1 (pynn 0.1) still reads
VERSION = 2
#: the zip comment: this tag, then the hex SHA-256 of every byte of the file before the digest
_TAG = b"pynn-model sha256:"
_HEX = 64
#: members may state at most this many times the file's size, plus 1 MB, once uncompressed
MAX_EXPANSION = 4
#: at most this many arrays in one file
MAX_MEMBERS = 100_000
#: names of a save's temporary files: _TMP_PREFIX + host-pid-random + _TMP_SUFFIX
_TMP_PREFIX, _TMP_SUFFIX = ".pynn-", ".tmp"


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
    # through a symbolic link: its target is replaced
    fileutil.write_atomic(path, lambda f: _write(f, arrays), _TMP_PREFIX, _TMP_SUFFIX)


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


def _unpack(path, where="load_model"):
    """The arrays of a file written by _write, after checking its digest; never unpickles."""
    data = fileutil.read_regular(path, where)
    body, digest = data[:-_HEX], data[-_HEX:]
    if not data.startswith(b"PK") or not body.endswith(_TAG):
        if data.startswith(b"PK") and _older_pynn_file(data):
            raise ValueError(f"{where}: {path} was saved by an older pynn (a format before "
                             f"version 1, without a checksum); this pynn reads format versions "
                             f"1 to {VERSION}: load it with the pynn that saved it and save it "
                             f"again")
        raise ValueError(f"{where}: {path} is not a pynn model file, or it was truncated (it "
                         f"does not end with a pynn checksum)")
    if hashlib.sha256(body).hexdigest().encode() != digest:
        raise ValueError(f"{where}: {path} was altered or damaged after it was saved "
                         f"(checksum mismatch)")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            infos = z.infolist()
            _check_sizes(infos, len(data), path, where)
            for info in infos:
                with z.open(info) as member:
                    version = np.lib.format.read_magic(member)
                    header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                              else np.lib.format.read_array_header_2_0)
                    shape, _, dtype = header(member)
                    offset = member.tell()
                if dtype.hasobject:
                    raise ValueError(f"{where}: {path} holds Python objects ({info.filename}); "
                                     f"loading them would mean unpickling, which pynn never "
                                     f"does")
                count = 1
                for n in shape:
                    count *= int(n)
                if count * dtype.itemsize != info.file_size - offset:
                    raise ValueError(f"{where}: {path}: the array {info.filename} claims shape "
                                     f"{shape} of {dtype} ({count * dtype.itemsize} bytes) but "
                                     f"its member holds {info.file_size - offset} bytes")
        with np.load(io.BytesIO(data), allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except ValueError as e:
        if str(e).startswith(f"{where}:"):
            raise
        raise ValueError(f"{where}: {path} is not a readable pynn model file: {e}") from None
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, KeyError, RuntimeError,
            NotImplementedError, MemoryError, OverflowError) as e:
        # what a malformed zip makes zipfile/numpy raise
        raise ValueError(f"{where}: {path} is not a readable pynn model file: "
                         f"{type(e).__name__}: {e}") from None


def _check_sizes(infos, file_bytes, path, where):
    """Refuse a zip whose members would expand far beyond the file (a zip bomb) before any
    member is decompressed; zipfile never yields more than a member's stated size."""
    if len(infos) > MAX_MEMBERS:
        raise ValueError(f"{where}: {path} holds {len(infos)} arrays, more than the "
                         f"{MAX_MEMBERS} a pynn file may hold")
    stated = sum(info.file_size for info in infos)
    limit = MAX_EXPANSION * file_bytes + (1 << 20)
    if stated > limit:
        raise ValueError(f"{where}: {path} claims {stated} bytes once uncompressed from a "
                         f"{file_bytes}-byte file (more than {MAX_EXPANSION}x: pynn stores "
                         f"arrays uncompressed); refusing to decompress it (zip bomb?)")


def _older_pynn_file(data):
    """True for a whole zip (it ends with an end record stating no comment: not a file cut
    short) holding a pynn architecture but no checksum (pynn before format version 1)."""
    end = data[-22:]
    if len(end) < 22 or not end.startswith(b"PK\x05\x06") or end[20:22] != b"\0\0":
        return False
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            return "__architecture__.npy" in z.namelist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return False


def load_arrays(path, kind):
    """(architecture JSON string or None, arrays) of a file written by `save_arrays`, after
    checking its digest and format. Weights may be read from a model file too. Arrays are
    keyed by weight name; constants of files saved by pynn 0.1 (format version 1) keep their
    "c/" prefix."""
    where = "load_model" if kind == "model" else "load_weights"
    arrays = _unpack(path, where)
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
    if not isinstance(header, dict) or "format" not in header or "layers" in header:
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
