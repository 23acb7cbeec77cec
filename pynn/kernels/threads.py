"""Splitting a batch across the cores: each thread runs its own slice of images, kernels and
matrix products alike, with one BLAS thread each.

Why not Numba's ``parallel=True``? Its thread pool and OpenBLAS's spin against each other on
the same cores (see pynn/kernels/__init__.py). Here the threads are ours: while a batch is
split, every thread asks OpenBLAS for one thread (``openblas_set_num_threads_local``, OpenBLAS
0.3.27+: per thread in OpenMP builds, for the whole process in the pthreads build NumPy ships,
so the caller restores the count only once every slice is done), so there are never more busy
threads than cores, and the memory-bound kernels (im2col, col2im, pooling, bias + activation), which
run on one core otherwise, use them all. The kernels are compiled with ``nogil=True`` so the
threads really run at once.

Where that BLAS call is missing (a NumPy built on another BLAS), or with one thread, work runs
on the calling thread as before. ``set_num_threads(n)`` chooses the count; the default is the
number of cores this process may use, or ``PYNN_NUM_THREADS`` / ``OMP_NUM_THREADS`` if set.
"""
import ctypes
import os
import threading
import time

import numpy as np

from .blas import openblas_libraries
from .spin import post_and_wait

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


def _first_symbol(lib, *names):
    """The first of `names` that the shared library `lib` exports, or None."""
    for name in names:
        fn = getattr(lib, name, None)
        if fn is not None:
            return fn
    return None


def _find_blas_local_setter():
    """OpenBLAS's per-thread thread count setter from the BLAS NumPy loaded, and its getter of
    the process-wide count, or (None, None). (NumPy's scipy-openblas exports the setter under
    its plain name and the getter under a prefixed one.)"""
    for lib in openblas_libraries():
        fn = _first_symbol(lib, "openblas_set_num_threads_local",
                           "scipy_openblas_set_num_threads_local64_")
        get = _first_symbol(lib, "openblas_get_num_threads", "scipy_openblas_get_num_threads64_")
        if fn is not None and get is not None:
            fn.restype, fn.argtypes = ctypes.c_int, [ctypes.c_int]
            get.restype, get.argtypes = ctypes.c_int, []
            return fn, get
    return None, None


_threads = _default_threads()
_pool = None
_setter = None
_getter = None
_setter_looked_up = False
_in_worker = threading.local()     # .active: this thread is running a slice
_split_lock = threading.Lock()     # held by the thread whose batch is split
_holding = False                   # inside a compiled pass (begin_pass): splits leave BLAS at 1
_split_done = False                # a batch was split since begin_pass()
_pass_splits = False               # the running pass's plan split a batch in an earlier pass
_eager_hold = 0                    # eager code split: BLAS held at 1; the count to give back
_last_split = 0.0                  # perf_counter() at the end of the last split
_default_blas = 0                  # the process's BLAS thread count before pynn set one


def _forget_pool_after_fork():
    global _pool, _split_lock
    _pool = None                   # a forked child has none of the parent's threads,
    _split_lock = threading.Lock()  # and no split of theirs is under way


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_after_fork)


def blas_local_threads_available():
    global _setter, _getter, _setter_looked_up
    if not _setter_looked_up:
        import numpy  # noqa: F401  (the BLAS is loaded with NumPy)
        (_setter, _getter), _setter_looked_up = _find_blas_local_setter(), True
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
    with _split_lock:
        release_hold()
        if n != _threads and _pool is not None:
            _pool.shutdown()
            _pool = None
        _threads = n


def _run_slice(fn, k, n0, n1):
    """A worker's slice: one BLAS thread for its products, no nested splitting."""
    _setter(1)
    _in_worker.active = True
    fn(k, n0, n1)


class _Workers:
    """`n` threads of our own; run() gives thread w the slice (fn, k, n0, n1) and wait() returns
    the first exception any raised, or None.

    A hand-over goes through shared memory (pynn.kernels.spin): thread w polls its slot of
    `ctl` for SPIN_SECONDS after each slice, with the GIL released, and only then sleeps on a
    semaphore, which run() releases if it finds the thread asleep. The caller polls for the
    slices' ends the same way. `python benchmarks/handover.py` times a split of empty slices:
    about 90 us when the thread has to be woken, 30 us when it polls (what is left is the
    thread waiting for the GIL while the caller runs its own slice's Python)."""

    _GAP = 16                  # int64 slots per thread: each thread's words in a cache line

    def __init__(self, n):
        self.ctl = np.zeros(2 * self._GAP * n, np.int64)
        self.polls = _polls_for(SPIN_SECONDS, self.ctl)
        self.posted = [0] * n                    # the last slice number given to each thread
        self.tasks = [None] * n
        self.errors = [None] * n
        self.asleep = [False] * n
        self.wake = [threading.Semaphore(0) for _ in range(n)]
        self.threads = [threading.Thread(target=self._loop, args=(w,), daemon=True,
                                         name=f"pynn_{w}") for w in range(n)]
        for t in self.threads:
            t.start()

    def _slots(self, w):
        """Where run() posts thread w's slice number, and where w stores the last one done."""
        return 2 * self._GAP * w, 2 * self._GAP * w + self._GAP

    def _loop(self, w):
        ctl, (post, done) = self.ctl, self._slots(w)
        seen, report = 0, -1
        while True:
            # report the last slice done (if any), then poll for the next one
            got = post_and_wait(ctl, report, seen, post, seen, self.polls)
            report = -1
            if got == seen:                      # nothing came: sleep until run() wakes us
                self.asleep[w] = True
                if ctl[post] == seen:            # (run() stores, then reads asleep: one of us
                    self.wake[w].acquire()       #  sees the other's write under the GIL)
                self.asleep[w] = False
                continue
            seen, task = got, self.tasks[w]
            self.tasks[w] = None
            if task is _STOP:
                return
            try:
                _run_slice(*task)
                self.errors[w] = None
            except BaseException as e:           # handed to the caller, raised there
                self.errors[w] = e
            del task
            report = done

    def run(self, tasks):
        """Start slice w of `tasks` on thread w; return a function that waits for all of them
        and returns the first exception raised, or None."""
        posted = []
        for w, task in enumerate(tasks):
            number = self.posted[w] = self.posted[w] + 1
            self.tasks[w] = task
            self.ctl[self._slots(w)[0]] = number
            if self.asleep[w]:
                self.wake[w].release()
            posted.append(number)

        def wait():
            for w, number in enumerate(posted):
                done = self._slots(w)[1]
                if post_and_wait(self.ctl, -1, 0, done, number - 1, self.polls) != number:
                    while self.ctl[done] != number:      # a long slice: poll more gently
                        time.sleep(5e-5)
            return next((self.errors[w] for w in range(len(posted))
                         if self.errors[w] is not None), None)
        return wait

    def shutdown(self):
        self.run([_STOP] * len(self.threads))
        for t in self.threads:
            t.join()


#: How long a thread polls for the next hand-over before it sleeps: long enough to span the
#: gaps between the splits of a training step (the loss, the optimizer), short enough that an
#: idle pool is asleep at once.
SPIN_SECONDS = 1e-3
_STOP = object()


def _polls_for(seconds, ctl):
    """How many polls of post_and_wait take about `seconds` on this machine (measured once)."""
    post_and_wait(ctl, -1, 0, 0, 1, 1)           # compile (or load from the cache) first
    n = 200_000
    start = time.perf_counter()
    post_and_wait(ctl, -1, 0, 0, ctl[0], n)    # slot 0 does not change: n polls
    per_poll = max(time.perf_counter() - start, 1e-6) / n
    return max(1000, min(int(seconds / per_poll), 1 << 40))


#: Work (elements a kernel touches) below which a batch is not split: a split costs 30-90 us
#: on the project's 2-core VM (`python benchmarks/handover.py`). Half a million: mnist-cnn's
#: convolutions (0.7M) then split, and its step went from 2.8 to 2.5 ms (`python
#: benchmarks/op_times.py mnist-cnn --steps 300`, at 1M and at 0.5M); the ResNet's and
#: readme-cnn's steps did not change. With the polled hand-over, 2^17 changed no workload's
#: step (mnist-cnn, resnet-fmnist, transformer-words, lstm-seqmnist).
MIN_WORK = 1 << 19


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
    with _split_lock:                # one split at a time: the pool's threads are shared
        _split(fn, N, T)


def _split(fn, N, T):
    global _pool, _split_done
    if _pool is None:
        _pool = _Workers(_threads - 1)
    bounds = [N * k // T for k in range(T + 1)]
    # BLAS stays at one thread after the split: inside a compiled pass until the next
    # begin_pass, in eager code until release_hold gives back `restore`, the count this thread
    # used before the first split (in NumPy's OpenBLAS the "local" setting is process-wide, so
    # it can be given back only once no slice is running).
    global _eager_hold, _last_split
    restore = _getter()
    _split_done = True
    _setter(1)
    wait = _pool.run([(fn, k, bounds[k], bounds[k + 1]) for k in range(1, T)])
    _in_worker.active = True
    try:
        fn(0, bounds[0], bounds[1])
    finally:
        _in_worker.active = False
        error = wait()               # wait for every slice before anything is raised
        _last_split = time.perf_counter()
        if not _holding and not _eager_hold:
            _eager_hold = max(1, restore)       # eager code: held too (see eager_tick)
    if error is not None:
        raise error


#: Outside a compiled pass, BLAS stays on one thread after a split until this long has gone by
#: without one (checked by eager_tick at the next op).
HOLD_SECONDS = 0.05


def eager_tick():
    """Called before every eager op (pynn.tensor.apply): give BLAS its threads back once no
    batch has been split for HOLD_SECONDS.

    Eager code has no pass to hold BLAS on one thread as a compiled Model does (begin_pass):
    a split used to give BLAS its threads back at once, and the next split, right after a
    two-thread product, waited some 1.7 ms for the core OpenBLAS's worker was busy-waiting on
    (``python benchmarks/eager_cnn.py``). So a split outside a pass leaves BLAS on one thread,
    and the big products of Linear split themselves instead (pass_splits), until the splits
    stop."""
    if _eager_hold and not _holding and time.perf_counter() - _last_split > HOLD_SECONDS:
        release_hold()


def release_hold():
    """Give BLAS back the threads it had before an eager split held it at one."""
    global _eager_hold
    if _eager_hold:
        restore, _eager_hold = _eager_hold, 0
        _setter(restore)


def begin_pass(splits):
    """A compiled pass starts: BLAS gets one thread if this plan split a batch before (`splits`),
    else the count the process had before pynn changed it; until end_pass(), a split leaves BLAS
    at one thread instead of giving it back. OpenBLAS's workers busy-wait for a while after
    every product, so a two-thread product next to a split kept a core spinning while the split
    wanted both: readme-cnn took 32 ms a step when each pass gave BLAS its threads back, 20 ms
    with BLAS on one thread once the model splits; a model that never splits keeps them all."""
    global _holding, _split_done, _default_blas, _pass_splits
    release_hold()                   # a pass sets the count itself
    _holding, _split_done, _pass_splits = True, False, bool(splits)
    if blas_local_threads_available():
        if not _default_blas:
            _default_blas = _getter()
        _setter(1 if splits else _default_blas)


def pass_splits():
    """Is a compiled pass running whose plan split a batch before, or eager code that split
    one in the last HOLD_SECONDS (eager_tick)? BLAS is then on one thread, and the activations
    lie in both cores' caches (each wrote its own slice): a memory-bound op gains from
    splitting much smaller work than it would on data one core holds (BatchNorm), and a big
    product splits itself (Linear)."""
    return (_holding and _pass_splits) or (bool(_eager_hold) and not _holding)


def end_pass():
    """The pass is over; True if it split a batch (the plan remembers, for its next passes)."""
    global _holding
    _holding = False
    return _split_done
