"""Data-parallel training over MPI (mpi4py), Horovod style.

Every process (rank) holds the whole model, trains on its own shard of each batch, and averages
the gradients with the other ranks before every optimizer step, so all ranks take the same step
and keep identical weights::

    import pynn.distributed as dist
    dist.init()                                    # MPI.COMM_WORLD
    dist.broadcast_parameters(model, root=0)       # every rank starts from rank 0's weights
    opt = dist.DistributedOptimizer(Adam(1e-3))
    loader = DataLoader(x, y, batch_size=64, shuffle=True, seed=0, shard=dist.shard())
    for xb, yb in loader:
        loss = cross_entropy(model(xb), yb); loss.zero_grad(); loss.backward()
        opt.update(model.parameters)               # one Allreduce of all gradients, then the step

launched with ``mpirun -n 4 python train.py``. The same script runs as one process without
mpirun: the world then has one rank and nothing is communicated. mpi4py is imported by
``init()`` only, so pynn works without it.

Arrays travel through the buffer interface (mpi4py's upper-case ``Allreduce``/``Bcast``), never
pickled. Under MPI, ``init()`` installs an exception hook: an uncaught error on any rank prints
that rank's traceback and aborts the whole world (instead of leaving the others waiting forever
in their next collective).
"""
import os
import sys
import time

import numpy as np

__all__ = ["init", "is_initialized", "rank", "world_size", "is_main", "shard", "allreduce",
           "broadcast", "barrier", "broadcast_parameters", "sync_batchnorm_stats",
           "DistributedOptimizer"]

_comm = None            # MPI.COMM_WORLD once init() found MPI; None for a one-process world
_MPI = None             # the mpi4py.MPI module
_initialized = False

# variables a launcher (MPICH/Intel hydra, Open MPI, Slurm) sets for every process it starts
_LAUNCHER_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS", "PMIX_SIZE")


def _launched_with_several_ranks():
    for var in _LAUNCHER_SIZE_VARS:
        try:
            if int(os.environ.get(var, "1")) > 1:
                return True
        except ValueError:
            pass
    return False


def init():
    """Join the MPI world (``MPI.COMM_WORLD``); a one-process world without mpirun or mpi4py.

    Idempotent: later calls return at once. Returns ``(rank, world_size)``."""
    global _comm, _MPI, _initialized
    if _initialized:
        return rank(), world_size()
    try:
        from mpi4py import MPI
    except ImportError:
        if _launched_with_several_ranks():
            raise RuntimeError(
                "pynn.distributed.init(): this process was started by an MPI launcher with "
                "several ranks, but mpi4py is not installed, so the ranks cannot talk to each "
                "other. Install it: pip install -r requirements-distributed.txt "
                "(or pip install 'pynn[distributed]')") from None
        MPI = None
    if MPI is not None:
        _MPI, _comm = MPI, MPI.COMM_WORLD
        if _comm.Get_size() > 1:
            _install_abort_hook()
    _initialized = True
    return rank(), world_size()


def is_initialized():
    """True once ``init()`` ran (even when the world has one process)."""
    return _initialized


def rank():
    """This process's index in the world, 0 .. world_size() - 1 (0 before init())."""
    return _comm.Get_rank() if _comm is not None else 0


def world_size():
    """Number of processes training together (1 before init() or without MPI)."""
    return _comm.Get_size() if _comm is not None else 1


def is_main():
    """True on rank 0: the rank that prints, logs and writes checkpoints."""
    return rank() == 0


def shard():
    """``(rank, world_size)``: the ``shard=`` argument of ``DataLoader``."""
    return rank(), world_size()


def _distributed():
    return _comm is not None and _comm.Get_size() > 1


# -- failures: one rank's error ends the world -----------------------------------------------------

def _install_abort_hook():
    previous = sys.excepthook

    def abort_world(exc_type, exc, tb):
        r, w = rank(), world_size()
        # The error's message comes first: MPI's launcher may drop what a rank writes just
        # before the abort tears the world down (seen under load), so the traceback is the part
        # that can go missing, not the message.
        sys.stderr.write(f"\npynn.distributed: rank {r} of {w} failed with an uncaught "
                         f"{exc_type.__name__}: {exc}; aborting all {w} ranks (MPI Abort).\n")
        sys.stderr.flush()
        previous(exc_type, exc, tb)
        sys.stderr.write(f"pynn.distributed: rank {r} of {w}: {exc_type.__name__}: {exc}\n")
        sys.stderr.flush()
        sys.stdout.flush()
        time.sleep(0.5)            # give the launcher's output forwarding a moment
        _comm.Abort(1)

    sys.excepthook = abort_world


# -- collectives on arrays (torch.distributed style) -----------------------------------------------

_OPS = ("sum", "mean", "max", "min")


def _mpi_op(op):
    if op not in _OPS:
        raise ValueError(f"pynn.distributed: op must be one of {_OPS}, got {op!r}")
    return {"sum": _MPI.SUM, "mean": _MPI.SUM, "max": _MPI.MAX, "min": _MPI.MIN}[op]


def _array_of(x, fname):
    """The ndarray behind x (a Tensor's .data or an ndarray) that a collective works on in place."""
    data = getattr(x, "data", None)
    arr = data if isinstance(data, np.ndarray) and not isinstance(x, np.ndarray) else x
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"pynn.distributed.{fname}: expected a NumPy array or a Tensor, got "
                        f"{type(x).__name__}")
    if not arr.flags.writeable:
        raise ValueError(f"pynn.distributed.{fname}: the array of shape {arr.shape} is read-only")
    return arr


def _inplace(arr, fn):
    """Run the collective fn(buffer) on arr, through a contiguous copy if arr is strided."""
    if arr.flags.c_contiguous:
        fn(arr)
    else:
        tmp = np.ascontiguousarray(arr)
        fn(tmp)
        arr[...] = tmp


def allreduce(x, op="sum"):
    """Reduce ``x`` (ndarray or Tensor) over all ranks, in place, and return it.

    ``op``: "sum", "mean", "max" or "min". Every rank must call it with an array of the same
    shape and dtype. A Python number gives back a number. One process: ``x`` unchanged."""
    if isinstance(x, (int, float, np.number)) and not isinstance(x, bool):
        return allreduce(np.array([x], dtype=np.float64), op)[0].item()
    arr = _array_of(x, "allreduce")
    if not _distributed():
        if op not in _OPS:
            raise ValueError(f"pynn.distributed: op must be one of {_OPS}, got {op!r}")
        return x
    mpi_op = _mpi_op(op)
    _inplace(arr, lambda buf: _comm.Allreduce(_MPI.IN_PLACE, buf, op=mpi_op))
    if op == "mean":
        if arr.dtype.kind != "f":
            raise TypeError(f"pynn.distributed.allreduce: op='mean' needs a float array, got "
                            f"{arr.dtype}")
        arr /= world_size()
    return x


def broadcast(x, root=0):
    """Overwrite ``x`` (ndarray or Tensor) on every rank with root's, in place; return it."""
    arr = _array_of(x, "broadcast")
    if _distributed():
        _check_root(root)
        _inplace(arr, lambda buf: _comm.Bcast(buf, root=root))
    return x


def barrier():
    """Wait until every rank got here."""
    if _distributed():
        _comm.Barrier()


def _check_root(root):
    if not 0 <= root < world_size():
        raise ValueError(f"pynn.distributed: root must be a rank in [0, {world_size() - 1}], "
                         f"got {root}")


# -- models ----------------------------------------------------------------------------------------

def _state_arrays(model):
    """The arrays a model (or layer, dict or list of tensors/arrays) trains and keeps, in order."""
    if isinstance(model, dict):
        return list(model.values())
    if hasattr(model, "state_dict"):
        return list(model.state_dict().values())
    if hasattr(model, "parameters") and hasattr(model, "buffer_names"):     # a single Layer
        return ([p.data for p in model.parameters]
                + [getattr(model, n) for n in model.buffer_names if getattr(model, n) is not None])
    if isinstance(model, (list, tuple)):
        return list(model)
    raise TypeError(f"pynn.distributed: expected a Model, a Layer, a state dict or a list of "
                    f"tensors, got {type(model).__name__}")


def broadcast_parameters(model, root=0):
    """Copy root's weights and buffers (e.g. BatchNorm running statistics) to every rank, in place.

    ``model``: a Model (its ``state_dict()`` arrays), a Layer, a dict or a list of tensors/arrays.
    Call it once after building the model, so all ranks start from the same weights."""
    for a in _state_arrays(model):
        broadcast(a, root)
    return model


def _batchnorm_layers(model):
    """Layers with running statistics in a model, a layer or a list, nested models included."""
    found, seen, stack = [], set(), [model]
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if hasattr(obj, "running_mean") and hasattr(obj, "running_var"):
            found.append(obj)
        inner = obj if isinstance(obj, (list, tuple)) else getattr(obj, "layers", None)
        if inner is not None:
            stack.extend(reversed(list(inner)))
    return found


def sync_batchnorm_stats(model):
    """Average every BatchNorm layer's running mean and variance over the ranks, in place.

    Plain BatchNorm normalises by each rank's own batch statistics, so ranks drift apart in their
    running statistics (the weights stay identical: their gradients are averaged). Call this at
    the end of each epoch (and before evaluating or saving) to give all ranks the same running
    statistics. SyncBatchNorm layers need no call: their statistics are global already."""
    arrays = [getattr(layer, name) for layer in _batchnorm_layers(model)
              for name in ("running_mean", "running_var") if getattr(layer, name) is not None]
    if not arrays or not _distributed():
        return model
    flat = np.concatenate([a.reshape(-1).astype(np.float64) for a in arrays])
    allreduce(flat, "mean")
    offset = 0
    for a in arrays:
        a[...] = flat[offset:offset + a.size].reshape(a.shape)
        offset += a.size
    return model


# -- the optimizer wrapper -------------------------------------------------------------------------

class DistributedOptimizer:
    """Wrap a pynn optimizer so every step uses the gradients averaged over all ranks.

    ``update(params)`` copies every parameter's gradient into one flat preallocated buffer (the
    parameters' dtype, float32 by default), averages it over the ranks with a single in-place
    ``Allreduce``, copies the averages back into the ``.grad`` arrays and then runs the wrapped
    optimizer's update. The wrapped optimizer's state stays on each rank; as every rank sees the
    same gradients it stays identical everywhere.

    A parameter whose ``grad`` is None on a rank counts as a zero gradient there; it is skipped
    only if it has no gradient on any rank (a frozen parameter), as the wrapped optimizer does.
    Everything else (``lr``, ``zero_grad``, ``state_dict``, schedulers) goes to the wrapped
    optimizer. In a one-process world ``update`` is the wrapped optimizer's update.

    Attributes ``allreduce_seconds`` and ``steps`` add up the time spent in the Allreduce (waiting
    for slower ranks included) and the number of updates.
    """

    _OWN = frozenset({"optimizer", "op", "_key", "_params", "_buf", "_slices", "_flags",
                      "allreduce_seconds", "steps"})

    def __init__(self, optimizer, op="mean"):
        if not hasattr(optimizer, "update"):
            raise TypeError(f"DistributedOptimizer: expected a pynn optimizer, got "
                            f"{type(optimizer).__name__}")
        if isinstance(optimizer, DistributedOptimizer):
            raise TypeError("DistributedOptimizer: the optimizer is already distributed")
        if op not in ("mean", "sum"):
            raise ValueError(f"DistributedOptimizer: op must be 'mean' or 'sum', got {op!r}")
        d = self.__dict__
        d["optimizer"], d["op"] = optimizer, op
        d["_key"] = d["_params"] = d["_buf"] = d["_slices"] = d["_flags"] = None
        d["allreduce_seconds"], d["steps"] = 0.0, 0

    def __getattr__(self, name):
        return getattr(self.__dict__["optimizer"], name)

    def __setattr__(self, name, value):
        if name in self._OWN:
            self.__dict__[name] = value
        else:
            setattr(self.optimizer, name, value)

    def _layout(self, params):
        """The flat buffer and each parameter's slice of it, rebuilt only when params change."""
        key = tuple((id(p), p.data.size, p.data.dtype.str) for p in params)
        if key != self._key:
            dtype = np.result_type(*[p.data.dtype for p in params]) if params else np.float32
            sizes = [p.data.size for p in params]
            total = sum(sizes)
            # gradients, then one has-a-gradient flag per parameter (a count after the Allreduce)
            buf = np.zeros(total + len(params), dtype=dtype)
            offsets = np.cumsum([0] + sizes)
            self._slices = [buf[a:b] for a, b in zip(offsets[:-1], offsets[1:], strict=True)]
            self._flags = buf[total:]
            self._buf, self._key, self._params = buf, key, list(params)
        return self._buf

    def _average_gradients(self, params):
        from .tensor import Tensor

        buf = self._layout(params)
        slices, flags = self._slices, self._flags
        for i, p in enumerate(params):
            g = p.grad
            if g is None:
                slices[i].fill(0)
                flags[i] = 0
            else:
                g = g if isinstance(g, np.ndarray) else g.data
                if g.size != slices[i].size:
                    raise ValueError(f"DistributedOptimizer: grad of shape {g.shape} does not "
                                     f"match parameter of shape {p.data.shape}")
                np.copyto(slices[i], g.reshape(-1))
                flags[i] = 1
        start = time.perf_counter()
        _comm.Allreduce(_MPI.IN_PLACE, buf, op=_MPI.SUM)
        self.allreduce_seconds += time.perf_counter() - start
        grads = buf[:len(buf) - len(params)]
        if self.op == "mean":
            grads /= world_size()
        for i, p in enumerate(params):
            if flags[i] == 0:          # no rank has a gradient: leave it None (skipped)
                continue
            avg = slices[i].reshape(p.data.shape)
            g = p.grad
            if g is None:
                p.grad = Tensor._wrap(avg.astype(p.data.dtype, copy=True))
            else:
                np.copyto(g if isinstance(g, np.ndarray) else g.data, avg)

    def update(self, params=None):
        """Average the gradients of ``params`` over the ranks, then step the wrapped optimizer."""
        if _distributed():
            if params is None:
                params = getattr(self.optimizer, "_params", None)
                if params is None:
                    raise TypeError("DistributedOptimizer.update(): pass the parameters "
                                    "(or give them to the wrapped optimizer at construction)")
            elif not isinstance(params, (list, tuple)):
                params = list(params() if callable(params) else params)
            self._average_gradients(params)
        self.steps += 1
        return self.optimizer.update(params)

    def step(self, closure=None):
        """PyTorch style: average and update the parameters given to the wrapped optimizer."""
        loss = closure() if closure is not None else None
        self.update(None)
        return loss

    def __repr__(self):
        return f"DistributedOptimizer({self.optimizer!r}, world_size={world_size()})"


def allreduce_into(buf, op="sum"):
    """In-place Allreduce of a contiguous ndarray, for ops (SyncBatchNorm); no-op in one process."""
    if _distributed():
        _comm.Allreduce(_MPI.IN_PLACE, buf, op=_mpi_op(op))
    return buf
