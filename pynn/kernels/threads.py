"""Splitting a batch across the cores: each thread runs its own slice of images, kernels and
matrix products alike, with one BLAS thread each.

Why not Numba's ``parallel=True``? Its thread pool and OpenBLAS's spin against each other on
the same cores (see pynn/kernels/__init__.py). Here the threads are ours: while a batch is
split, every thread asks OpenBLAS for one thread *for its own calls*
(``openblas_set_num_threads_local``, OpenBLAS 0.3.27+), so there are never more busy threads
than cores, and the memory-bound kernels (im2col, col2im, pooling, bias + activation), which
run on one core otherwise, use them all. The kernels are compiled with ``nogil=True`` so the
threads really run at once.

Where that BLAS call is missing (a NumPy built on another BLAS), or with one thread, work runs
on the calling thread as before. ``set_num_threads(n)`` chooses the count; the default is the
number of cores this process may use, or ``PYNN_NUM_THREADS`` / ``OMP_NUM_THREADS`` if set.
"""
import ctypes
import os
import threading
from concurrent.futures import ThreadPoolExecutor

__all__ = ["get_num_threads", "set_num_threads", "slices", "split_batch",
           "blas_local_threads_available"]


def _default_threads():
    for var in ("PYNN_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(var, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:        # not Linux
        return os.cpu_count() or 1


def _find_blas_local_setter():
    """OpenBLAS's per-thread thread count setter from the BLAS NumPy loaded, or None."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.lower()}
    except OSError:
        return None
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in ("openblas_set_num_threads_local", "scipy_openblas_set_num_threads_local64_"):
            fn = getattr(lib, name, None)
            if fn is not None:
                fn.restype, fn.argtypes = ctypes.c_int, [ctypes.c_int]
                return fn
    return None


_threads = _default_threads()
_pool = None
_setter = None
_setter_looked_up = False
_in_worker = threading.local()     # .active: this thread is running a slice


def _forget_pool_after_fork():
    global _pool
    _pool = None                   # a forked child has none of the parent's threads


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_after_fork)


def blas_local_threads_available():
    global _setter, _setter_looked_up
    if not _setter_looked_up:
        import numpy  # noqa: F401  (the BLAS is loaded with NumPy)
        _setter, _setter_looked_up = _find_blas_local_setter(), True
    return _setter is not None


def get_num_threads():
    """How many threads a split batch runs on (1: everything on the calling thread)."""
    return _threads


def set_num_threads(n):
    """Run split batches on `n` threads (1 turns the splitting off)."""
    global _threads, _pool
    n = int(n)
    if n < 1:
        raise ValueError(f"set_num_threads: need at least 1 thread, got {n}")
    if n != _threads and _pool is not None:
        _pool.shutdown(wait=True)
        _pool = None
    _threads = n


def _one_blas_thread():
    _setter(1)
    _in_worker.active = True


#: Work (elements a kernel touches) below which a batch is not split: waking a thread costs
#: ~0.1 ms on the project's 2-core VM, what one core spends on about a million elements.
MIN_WORK = 1 << 20


def slices(N, work=None, min_work=None):
    """How many slices to cut a batch of N into: one per thread, or 1 when `work` (e.g. the
    elements touched) is below `min_work` (default MIN_WORK)."""
    min_work = MIN_WORK if min_work is None else min_work
    T = min(_threads, N)
    if (T < 2 or (work is not None and work < min_work) or getattr(_in_worker, "active", False)
            or not blas_local_threads_available()):
        return 1          # (a slice that splits again would wait on the busy pool forever)
    return T


def split_batch(fn, N, T):
    """Call fn(k, n0, n1) for slices k = 0 .. T-1 of range(N), [n0, n1), one per thread, and
    wait. T comes from slices(); T = 1 is one call fn(0, 0, N) on this thread.

    fn must write only its own slice's outputs, or buffers of its own slice k; the first
    exception raised by any slice is raised here."""
    if T == 1 or not blas_local_threads_available():
        fn(0, 0, N)
        return
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(_threads - 1, thread_name_prefix="pynn",
                                   initializer=_one_blas_thread)
    bounds = [N * k // T for k in range(T + 1)]
    futures = [_pool.submit(fn, k, bounds[k], bounds[k + 1]) for k in range(1, T)]
    previous = _setter(1)
    _in_worker.active = True
    try:
        fn(0, bounds[0], bounds[1])
    finally:
        _in_worker.active = False
        _setter(previous)
        for f in futures:
            f.exception()            # wait for every slice before anything is raised
    for f in futures:
        f.result()
