"""Give Numba a writable cache folder when pynn is installed read-only.

Every kernel is ``@njit(cache=True)``: Numba writes the compiled code next to the source
(``pynn/kernels/__pycache__``) or, when that folder is read-only (a system-wide install), under
the user's cache folder (``~/.cache/numba``). When neither can be written (a read-only
site-packages and a read-only HOME, as in some containers and CI sandboxes), Numba refuses to
compile with "no locator available". Imported before any kernel, this module then points Numba
at a folder under the system's temporary directory instead. A ``NUMBA_CACHE_DIR`` set by the
user is always left alone.
"""
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def _writable(path):
    """Can Numba cache in `path`? (the test Numba itself makes: create it, write a file)"""
    try:
        os.makedirs(path, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
        return True
    except OSError:
        return False


def _user_cache():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "numba")


def fallback_cache_dir():
    """The folder to use, or None when Numba's own choices work (or the user chose one)."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return None
    if _writable(os.path.join(HERE, "__pycache__")) or _writable(_user_cache()):
        return None
    try:
        user = str(os.getuid())
    except AttributeError:          # Windows
        user = os.environ.get("USERNAME", "user")
    return os.path.join(tempfile.gettempdir(), f"pynn-numba-cache-{user}")


def configure():
    path = fallback_cache_dir()
    if path is None:
        return None
    os.environ["NUMBA_CACHE_DIR"] = path
    numba_config = sys.modules.get("numba.core.config")
    if numba_config is not None:    # numba was imported before pynn: it read its config already
        numba_config.CACHE_DIR = path
    return path


configure()
