"""Parsing of the IDX file format used by MNIST and Fashion-MNIST.

An IDX file is a big-endian header followed by the raw array:

    bytes 0-1   zero
    byte  2     element type code (0x08 uint8, 0x09 int8, 0x0B int16,
                0x0C int32, 0x0D float32, 0x0E float64)
    byte  3     number of dimensions
    then        one unsigned 32-bit big-endian size per dimension
    then        the data, C order, big-endian elements

The distributed files are gzip compressed; ``read_idx`` handles both.
"""

from __future__ import annotations

import gzip
import os
import zlib

import numpy as np

__all__ = ["IDXError", "parse_idx", "read_idx"]

# type code -> big-endian dtype as stored in the file
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


class IDXError(ValueError):
    """A file is not a well-formed IDX file (bad magic, dims or size)."""


def parse_idx(buf, source: str = "<bytes>") -> np.ndarray:
    """Parse the (already decompressed) bytes of an IDX file.

    Returns a NumPy array of native byte order with the shape given in the
    header. For uint8 data (all of MNIST) the result is a read-only view on
    ``buf`` (no copy). ``source`` is only used in error messages.
    """
    mv = memoryview(buf)
    if len(mv) < 4:
        raise IDXError(f"{source}: too short to be an IDX file ({len(mv)} bytes)")
    zero0, zero1, code, ndim = mv[0], mv[1], mv[2], mv[3]
    if zero0 != 0 or zero1 != 0 or code not in _IDX_DTYPES:
        magic = bytes(mv[:4]).hex()
        raise IDXError(
            f"{source}: bad IDX magic number 0x{magic} (expected 0x0000TTNN with a "
            f"type code TT in {sorted(hex(c) for c in _IDX_DTYPES)}); "
            "is this a gzip file that was not decompressed, or not an IDX file?"
        )
    if ndim == 0:
        raise IDXError(f"{source}: IDX header declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(mv) < header:
        raise IDXError(
            f"{source}: truncated IDX header ({len(mv)} bytes, {ndim} dims need {header})"
        )
    shape = tuple(int(d) for d in np.frombuffer(mv, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[code]
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(mv) != expected:
        raise IDXError(
            f"{source}: IDX size mismatch: header says shape {shape} of {dtype.name} "
            f"({expected} bytes with the header) but the data is {len(mv)} bytes"
            + (" (truncated file?)" if len(mv) < expected else " (trailing bytes)")
        )
    arr = np.frombuffer(mv, dtype=dtype, offset=header).reshape(shape)
    if dtype.itemsize > 1:
        arr = arr.astype(dtype.newbyteorder("="))
    return arr


def read_idx(path) -> np.ndarray:
    """Read an IDX file from ``path``, gunzipping it if it is gzip compressed."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise IDXError(f"{path}: corrupt or truncated gzip data ({e})") from e
    return parse_idx(raw, source=path)
