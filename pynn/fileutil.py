"""Writing files the safe way, shared by saving models and downloading datasets.

A file is written to a temporary file beside its target and renamed onto it once complete, so
the target is either the old file or the whole new one. The temporary file:

* gets the permissions a file opened with ``open(path, "wb")`` would have: those of the file it
  replaces, else 0666 less the umask (the kernel applies the umask: no process-wide umask dance);
* is named ``<prefix><host>-<pid>-<random><suffix>``, so that a later writer in the same folder
  can tell an orphan of a killed process (its PID is gone on this host, or it was not touched for
  `STALE_SECONDS`) from a file another process is still writing, and remove only the orphans.

A target that is a symbolic link is resolved first: the link's target is replaced, the link
stays, as ``np.save`` through a link does.
"""
import errno
import os
import secrets
import socket
import stat
import time

#: a temporary file untouched for this long is an orphan whoever wrote it
STALE_SECONDS = 15 * 60


def _host():
    return socket.gethostname().replace("-", "_").replace(os.sep, "_") or "host"


def resolve(path):
    """The file to replace when writing `path`: a symbolic link's final target."""
    path = os.fspath(path)
    return os.path.realpath(path) if os.path.islink(path) else path


def create_temp(target, prefix, suffix):
    """(fd, tmp path) of a new empty file beside `target`, opened for writing, with the
    permissions described above. The caller renames it onto `target` with os.replace."""
    folder = os.path.dirname(os.path.abspath(target))
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        mode = None
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        name = f"{prefix}{_host()}-{os.getpid()}-{secrets.token_hex(4)}{suffix}"
        tmp = os.path.join(folder, name)
        try:
            fd = os.open(tmp, flags, 0o666)       # the kernel takes the umask off
        except FileExistsError:
            continue
        if mode is not None:
            try:
                os.fchmod(fd, mode)
            except OSError:
                pass
        return fd, tmp
    raise FileExistsError(errno.EEXIST, "no free temporary file name", folder)


def write_atomic(path, write, prefix=".pynn-", suffix=".tmp"):
    """Replace `path` (a link's target) with what `write(f)` writes to an open binary file:
    into a temporary file beside it (orphans of killed writers removed first), flushed and
    fsynced, then renamed onto it. If anything fails, even a KeyboardInterrupt, the temporary
    file is removed and `path` is left as it was. Returns the path written."""
    path = resolve(path)
    remove_stale(os.path.dirname(os.path.abspath(path)), prefix, suffix)
    fd, tmp = create_temp(path, prefix, suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def _writer_gone(name, prefix, suffix):
    """True if `name` was made by create_temp on this host by a process that has exited."""
    core = name[len(prefix):len(name) - len(suffix)]
    parts = core.rsplit("-", 2)
    host = _host()
    if len(parts) != 3 or not parts[1].isdigit() or \
            not (parts[0] == host or parts[0].endswith("." + host)):     # ".<name>.<host>"
        return False
    pid = int(parts[1])
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:          # e.g. EPERM: the process exists (someone else's)
        return False
    return False


def remove_stale(folder, prefix, suffix, stale_seconds=None):
    """Remove the orphaned temporary files `prefix*suffix` in `folder` (see the module doc);
    return their paths. Files another live process may still be writing are left alone, and
    errors (a file removed meanwhile, no permission) are ignored: this is housekeeping."""
    stale_seconds = STALE_SECONDS if stale_seconds is None else stale_seconds
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    now = time.time()
    for name in names:
        if not (name.startswith(prefix) and name.endswith(suffix)) or \
                len(name) <= len(prefix) + len(suffix):
            continue
        path = os.path.join(folder, name)
        try:
            st = os.lstat(path)
            if not stat.S_ISREG(st.st_mode):
                continue
            if now - st.st_mtime > stale_seconds or _writer_gone(name, prefix, suffix):
                os.unlink(path)
                removed.append(path)
        except OSError:
            continue
    return removed


def read_regular(path, where, max_bytes=None):
    """The bytes of `path`, refusing anything that is not a regular file (a FIFO would block,
    /dev/zero never ends, a directory is no file) with a ValueError starting with `where`;
    never reads more than the size the file had when opened (nor `max_bytes`)."""
    path = os.fspath(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)        # O_NONBLOCK: opening a FIFO does not wait for a writer
    except IsADirectoryError:
        raise ValueError(f"{where}: {path} is a directory, not a file") from None
    except (FileNotFoundError, PermissionError):
        raise
    except OSError as e:      # e.g. ENXIO: a unix socket; ENODEV: a device without a driver
        raise ValueError(f"{where}: {path} is not a regular file ({e.strerror}); pynn only "
                         f"reads regular files") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(st.st_mode) else
                    "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else
                    "a directory" if stat.S_ISDIR(st.st_mode) else
                    "a socket" if stat.S_ISSOCK(st.st_mode) else "not a regular file")
            raise ValueError(f"{where}: {path} is {kind}, not a regular file; pynn only reads "
                             f"regular files")
        size = st.st_size
        if max_bytes is not None and size > max_bytes:
            raise ValueError(f"{where}: {path} has {size} bytes, more than the {max_bytes} "
                             f"allowed")
        chunks, left = [], size
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 24))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)
