"""pynn.kernels._numba_startup: Numba's first kernel no longer imports scipy.linalg (which pynn
does not use), Numba still learns that BLAS is there, and np.dot in a user's jitted code still
works (importing scipy.linalg then)."""
import importlib.util
import subprocess
import sys
from pathlib import Path

from pynn.kernels import _numba_startup

HAS_SCIPY = importlib.util.find_spec("scipy") is not None

CODE = """
import sys
import numpy as np
import pynn
from pynn import Input, Model
from pynn.layers import Dense
x_in = Input((4,))
model = Model(x_in, Dense(4, 3, "relu")(x_in))
model(np.ones((2, 4), np.float32))
import numba.np.arraymath as arraymath
print("scipy.linalg" in sys.modules, arraymath._HAVE_BLAS)
from numba import njit

@njit
def dot(a, b):
    return np.dot(a, b)

a = np.arange(5.0)
print(dot(a, a), "scipy.linalg" in sys.modules)
"""


def test_the_first_kernel_leaves_scipy_linalg_alone_and_jitted_dot_still_works():
    proc = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True,
                          timeout=300, cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 0, proc.stderr
    first, second = proc.stdout.split("\n")[:2]
    # after a compiled Model's first call: no scipy.linalg, and BLAS known to be there
    assert first == f"False {HAS_SCIPY}"
    # a user's np.dot: Numba's own check, which imports scipy.linalg when SciPy is installed
    assert second == f"30.0 {HAS_SCIPY}"


def test_installing_twice_or_late_does_nothing():
    # pynn's import installed it in this process (and Numba may have imported arraymath since)
    assert _numba_startup.defer_scipy_linalg() is False
    from numba.np import linalg
    assert linalg.ensure_blas.pynn_deferred and linalg.ensure_blas.__wrapped__ is not None
