"""Keep SciPy's linear algebra out of pynn's start-up.

The first time Numba compiles a kernel or loads one from its cache, it imports
``numba.np.arraymath``, and that module's import asks ``numba.np.linalg.ensure_blas()`` whether
``np.dot`` inside jitted code may call BLAS. Where SciPy is installed the answer is found by
importing ``scipy.linalg`` (0.1-0.2 s here), which none of pynn's kernels uses: the first W2 +
W3 steps of a warm start took 0.36 s with it, 0.22 s without (``python
benchmarks/compile_times.py``).

While ``numba.np.arraymath`` is being imported, the question is answered here from whether
SciPy is installed at all (``importlib.util.find_spec``, which imports nothing); every other call
of ``ensure_blas`` (Numba compiling a user's ``np.dot`` or ``np.linalg`` call) is Numba's own
check, which imports ``scipy.linalg`` then, when it is needed. Imported by ``pynn.kernels``
before any kernel; it does nothing if Numba has loaded ``numba.np.arraymath`` already.
"""
import functools
import importlib.util
import sys


def defer_scipy_linalg():
    """Install the answer above in ``numba.np.linalg.ensure_blas``; False if too late (Numba
    asked already) or Numba has no such function, else True."""
    if "numba.np.arraymath" in sys.modules:
        return False
    from numba.np import linalg
    numba_check = getattr(linalg, "ensure_blas", None)
    if numba_check is None or getattr(numba_check, "pynn_deferred", False):
        return False

    @functools.wraps(numba_check)
    def ensure_blas():
        if sys._getframe(1).f_globals.get("__name__") == "numba.np.arraymath":
            if importlib.util.find_spec("scipy") is None:
                raise ImportError("scipy 0.16+ is required for linear algebra")
            return None
        return numba_check()

    ensure_blas.pynn_deferred = True
    linalg.ensure_blas = ensure_blas
    return True


defer_scipy_linalg()
