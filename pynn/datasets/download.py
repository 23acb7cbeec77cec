"""Cache folder, checksum verification and atomic, mirror-falling-back downloads.

Only the standard library (urllib) does the transfer; tqdm shows progress.

Guarantees of :func:`download`:

* the data goes to a temporary file in the destination folder
  (``.<name>.<random>.part``) and is moved to the final name with
  :func:`os.replace` only after its length and checksum have been checked,
  so an interrupted, truncated or corrupt transfer never leaves a file with
  the final name (and the temporary file is removed on failure);
* on any failure the next mirror is tried; when all fail a
  :class:`DownloadError` lists every attempt and its error;
* a transfer is bounded in time and in size: ``timeout`` seconds without
  progress on the socket, ``deadline`` seconds for the whole file (checked
  between chunks, so at most ``timeout`` more), and never more bytes than the
  known ``size`` (a server sending more is cut off at once, not after the fact);
* temporary files orphaned by a killed download (``.<name>.*.part``) in the
  destination folder are removed by the next download there (only those whose
  writer process is gone, or untouched for 15 minutes: see ``pynn.fileutil``).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import time
import urllib.error
import urllib.request
from pathlib import Path

from .. import fileutil

__all__ = [
    "DATA_DIR_ENV",
    "DownloadError",
    "ChecksumError",
    "cache_root",
    "file_hash",
    "verify_file",
    "download",
]

#: Environment variable naming the root of the dataset cache.
DATA_DIR_ENV = "PYNN_DATA_DIR"

_CHUNK = 1 << 20
_USER_AGENT = "pynn-datasets/0.1 (+urllib)"
_TIMEOUT = 30.0  # seconds without progress on the socket
_DEADLINE = 1800.0  # seconds for one whole file


class DownloadError(RuntimeError):
    """A dataset file could not be obtained (all mirrors failed, or offline)."""


class ChecksumError(DownloadError):
    """A file's size or checksum does not match the known value."""


def cache_root(data_dir=None) -> Path:
    """The dataset cache root: ``data_dir``, else ``$PYNN_DATA_DIR``, else ``~/.cache/pynn``,
    as an absolute path (a relative one is taken from the current working directory, so that
    messages name the folder unambiguously)."""
    if data_dir is None:
        data_dir = os.environ.get(DATA_DIR_ENV) or None
    if data_dir is None:
        return (Path.home() / ".cache" / "pynn").absolute()
    return Path(os.path.expanduser(os.fspath(data_dir))).absolute()


def file_hash(path, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


# Files already verified in this process: (path, size, mtime_ns, inode) -> digest.
# A file that is replaced or modified gets a new key and is verified again.
_verified: dict = {}


def _stat_key(path: Path):
    st = path.stat()
    return (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)


def verify_file(path, sha256: str | None = None, md5: str | None = None,
                size: int | None = None) -> None:
    """Raise :class:`ChecksumError` unless ``path`` has the given size and digests.

    The result is remembered for the rest of the process (keyed by path, size,
    mtime and inode), so loading a dataset twice hashes its files only once.
    """
    path = Path(path)
    key = _stat_key(path)
    want = (sha256, md5, size)
    if _verified.get(key) == want:
        return
    actual_size = key[1]
    if size is not None and actual_size != size:
        raise ChecksumError(
            f"{path}: size {actual_size} bytes, expected {size} bytes "
            "(truncated or corrupt file)"
        )
    for algorithm, expected in (("sha256", sha256), ("md5", md5)):
        if expected is not None:
            got = file_hash(path, algorithm)
            if got != expected.lower():
                raise ChecksumError(
                    f"{path}: {algorithm} {got} does not match the expected {expected}"
                )
    _verified[key] = want


def _fetch_to(url: str, fobj, hashers, desc: str, progress: bool, timeout: float,
              deadline: float | None = None, max_bytes: int | None = None) -> int:
    """Stream ``url`` into ``fobj``; return the byte count. Raises on a short read, on more
    than ``max_bytes`` bytes and once ``deadline`` (a time.monotonic() value) has passed."""
    from tqdm import tqdm

    def check_time():
        if deadline is not None and time.monotonic() > deadline:
            raise DownloadError(f"gave up after {n} bytes: the deadline for this file passed "
                                f"(slow or stalled server)")

    n = 0
    if deadline is not None:
        timeout = max(min(timeout, deadline - time.monotonic()), 0.01)
    req = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        status = getattr(resp, "status", None)
        if status is not None and not 200 <= status < 300:
            raise DownloadError(f"HTTP status {status}")
        length = resp.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        if total is not None and max_bytes is not None and total > max_bytes:
            raise ChecksumError(f"the server announces {total} bytes, expected {max_bytes}")
        read = getattr(resp, "read1", resp.read)     # read1: whatever has arrived, no waiting
        with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                  desc=desc, disable=not progress, leave=False) as bar:
            while True:
                check_time()
                chunk = read(_CHUNK)
                if not chunk:
                    break
                n += len(chunk)
                if max_bytes is not None and n > max_bytes:
                    raise ChecksumError(f"the server sent more than the {max_bytes} bytes "
                                        f"expected; stopped at {n}")
                fobj.write(chunk)
                for h in hashers:
                    h.update(chunk)
                bar.update(len(chunk))
    if total is not None and n != total:
        raise DownloadError(
            f"connection closed after {n} of {total} bytes (interrupted transfer)"
        )
    return n


def download(urls, dest, sha256: str | None = None, md5: str | None = None,
             size: int | None = None, progress: bool = True,
             timeout: float = _TIMEOUT, deadline: float | None = _DEADLINE,
             max_bytes: int | None = None) -> Path:
    """Download the first of ``urls`` that yields a file with the right checksum.

    The file is written to a temporary file beside ``dest`` and atomically
    renamed to ``dest`` once its size and checksums are verified. Each URL is
    tried in turn; on failure of all of them :class:`DownloadError` is raised
    listing each URL and its error (a :class:`ChecksumError` if every failure
    was a checksum mismatch). ``dest`` is never left half-written.

    ``timeout``: seconds without progress on the socket; ``deadline``: seconds for one file
    from one mirror (None: no limit); at most ``size`` bytes (else ``max_bytes``, if given) are
    accepted.
    """
    if isinstance(urls, str):
        urls = [urls]
    dest = Path(fileutil.resolve(dest))
    created = [d for d in (dest.parent, *dest.parent.parents) if not d.exists()]
    dest.parent.mkdir(parents=True, exist_ok=True)
    fileutil.remove_stale(dest.parent, ".", ".part")
    limit = size if size is not None else max_bytes
    try:
        return _download_first(urls, dest, sha256, md5, size, progress, timeout, deadline, limit)
    except BaseException:
        for d in created:               # leave no empty folders behind (deepest first)
            try:
                d.rmdir()
            except OSError:
                break
        raise


def _download_first(urls, dest, sha256, md5, size, progress, timeout, deadline, limit):
    errors = []
    for url in urls:
        hashers = {}
        if sha256:
            hashers["sha256"] = hashlib.sha256()
        if md5:
            hashers["md5"] = hashlib.md5()
        fd, tmp = fileutil.create_temp(dest, f".{dest.name}.", ".part")
        try:
            with os.fdopen(fd, "wb") as f:
                stop = None if deadline is None else time.monotonic() + deadline
                n = _fetch_to(url, f, list(hashers.values()), dest.name, progress, timeout,
                              deadline=stop, max_bytes=limit)
                f.flush()
                os.fsync(f.fileno())
            if size is not None and n != size:
                raise ChecksumError(f"got {n} bytes, expected {size}")
            for algorithm, expected in (("sha256", sha256), ("md5", md5)):
                if expected is not None:
                    got = hashers[algorithm].hexdigest()
                    if got != expected.lower():
                        raise ChecksumError(
                            f"{algorithm} mismatch: got {got}, expected {expected} "
                            "(corrupt download or wrong file on the mirror)"
                        )
            os.replace(tmp, dest)
            tmp = None
            key = _stat_key(dest)
            _verified[key] = (sha256, md5, size)
            return dest
        except (urllib.error.URLError, http.client.HTTPException, OSError,
                ValueError, DownloadError) as e:
            errors.append((url, e))
        finally:
            if tmp is not None:
                try:
                    os.unlink(tmp)
                except FileNotFoundError:
                    pass
    detail = "; ".join(f"{u}: {type(e).__name__}: {e}" for u, e in errors) or "no URL given"
    cls = ChecksumError if errors and all(isinstance(e, ChecksumError) for _, e in errors) \
        else DownloadError
    raise cls(f"could not download {dest.name} ({detail})")
