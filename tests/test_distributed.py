"""Data-parallel training over MPI (pynn.distributed, SyncBatchNorm, DataLoader shards).

Two kinds of tests:

* Under MPI: tests/mpi_scripts/*.py launched with `mpiexec -n 2` and `-n 3` (subprocesses with a
  timeout, so a hang fails instead of blocking the suite). They need mpi4py and an MPI launcher
  (`pip install -r requirements-distributed.txt`). Locally they are skipped without them; under
  CI=true a missing MPI is a failure.
* In this process, without mpirun: the one-process world, and the collective logic against a
  fake communicator standing for a world of two ranks that hold the same data (its Allreduce
  doubles the buffer), which lets SyncBatchNorm's all-reduced statistics be checked against
  torch's BatchNorm on the two copies concatenated.

Equivalence tolerance (float32): N ranks at batch B/N and one process at batch B add the same
numbers in a different order (per-rank means, then the all-reduce, against one mean over B), so
their gradients differ by a few float32 ulps (eps = 1.2e-7) per step, and 20 steps of SGD with
momentum carry those differences forward. Measured: at most 4e-7 on weights of magnitude < 1.
atol 1e-5 leaves a margin of 25x, while a real error is far above it: plain BatchNorm at B/N per
rank already moves the weights by 0.3. The same runs in float64 agree to 1e-12 (measured 6e-16).
SGD with momentum rather than Adam: Adam's first step is about lr * sign(g), which turns a
rounding difference on a near-zero gradient into a full step of difference.
"""
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from test_gradcheck import gradcheck

import pynn
import pynn.distributed as dist
from pynn import Input, Model, Tensor
from pynn.data import DataLoader
from pynn.layers import LAYERS, BatchNorm2d, Dense, SyncBatchNorm
from pynn.ops.sync_batchnorm import SyncBatchNorm as SyncBatchNormOp
from pynn.optimizers import SGD, Adam, StepLR
from pynn.tensor import apply

TORCH_CHECKED_OPS = {"SyncBatchNorm"}
GRADCHECKED_OPS = {"SyncBatchNorm"}

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "tests" / "mpi_scripts"
TIMEOUT = 600           # seconds for one mpiexec run (numba may compile on a cold cache)
F32_ATOL = 1e-5
F64_ATOL = 1e-12
MODELS = ("mlp", "cnn", "cnn_syncbn")


# -- running scripts under mpiexec -----------------------------------------------------------------

def _mpiexec():
    here = os.path.dirname(sys.executable)
    return shutil.which("mpiexec", path=here) or shutil.which("mpiexec")


def require_mpi():
    missing = []
    if importlib.util.find_spec("mpi4py") is None:
        missing.append("mpi4py")
    if _mpiexec() is None:
        missing.append("an mpiexec launcher")
    if missing:
        msg = (f"{' and '.join(missing)} not installed: pip install -r "
               "requirements-distributed.txt")
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true, so the distributed tests must run: {msg}")
        pytest.skip(msg)


def _env():
    env = dict(os.environ, PYTHONPATH=str(REPO))
    # one thread per rank: the ranks are the parallelism (and the machine has few cores)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        env[var] = "1"
    return env


def run(script, args, n=None, timeout=TIMEOUT, check=True):
    """Run tests/mpi_scripts/<script> as one plain process (n=None) or under mpiexec -n n."""
    cmd = [sys.executable, str(SCRIPTS / script)] + [str(a) for a in args]
    if n is not None:
        cmd = [_mpiexec(), "-n", str(n)] + cmd
    try:
        proc = subprocess.run(cmd, env=_env(), cwd=REPO, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{' '.join(cmd)} did not finish in {timeout} s (a hang?)\n"
                    f"stdout: {e.stdout}\nstderr: {e.stderr}")
    if check and proc.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} failed with exit code {proc.returncode}\n"
                    f"stdout: {proc.stdout}\nstderr: {proc.stderr}")
    return proc


_trained = {}


def trained(tmp_path_factory, n, dtype):
    """Final weights (and rank checks) of tests/mpi_scripts/train.py; n=None: one process."""
    key = (n, dtype)
    if key not in _trained:
        require_mpi()
        out = tmp_path_factory.mktemp("dist") / f"w{n}_{dtype}.npz"
        args = ["--out", out, "--dtype", dtype]
        if n is not None:
            args.append("--different-init")     # so broadcast_parameters must make them equal
        run("train.py", args, n)
        with np.load(out) as f:
            _trained[key] = dict(f)
    return _trained[key]


def _arrays(results, model):
    return {k.split("/", 1)[1]: v for k, v in results.items()
            if k.startswith(model + "/") and "spread" not in k and not k.endswith("/steps")}


# -- under MPI: equivalence with one process -------------------------------------------------------

@pytest.mark.parametrize("dtype, atol", [("float32", F32_ATOL), ("float64", F64_ATOL)])
@pytest.mark.parametrize("n", [2, 3])
@pytest.mark.parametrize("model", MODELS)
def test_n_ranks_at_batch_b_over_n_equal_one_process_at_batch_b(tmp_path_factory, model, n,
                                                                dtype, atol):
    one, many = trained(tmp_path_factory, None, dtype), trained(tmp_path_factory, n, dtype)
    assert int(many["world_size"]) == n and int(one["world_size"]) == 1
    ref, got = _arrays(one, model), _arrays(many, model)
    assert set(ref) == set(got) and ref
    for name in ref:                       # weights, and SyncBatchNorm's running statistics
        np.testing.assert_allclose(got[name], ref[name], rtol=0, atol=atol,
                                   err_msg=f"{model}: {name}, {n} ranks against one process")
    initial = _initial(model, dtype)       # (and the runs did train: the weights moved)
    assert max(np.abs(ref[k] - initial[k]).max() for k in ref) > 1e-2
    # every rank ran the 20 steps and ends with rank 0's weights, bit for bit
    assert list(many[f"{model}/steps"]) == [20, 20]
    assert float(many[f"{model}/weight_spread"]) == 0.0
    assert float(many[f"{model}/buffer_spread"]) == 0.0


def _initial(model, dtype):
    """The weights before training (to be sure the runs trained at all)."""
    sys.path.insert(0, str(SCRIPTS))
    try:
        import train as script
    finally:
        sys.path.pop(0)
    pynn.manual_seed(1000)
    net = script.build(model)
    script.to_dtype(net, np.dtype(dtype))
    return net.state_dict()


@pytest.mark.parametrize("n", [2, 3])
def test_plain_batchnorm_ranks_identical_weights_and_synced_running_stats(tmp_path_factory, n):
    many = trained(tmp_path_factory, n, "float32")
    one = trained(tmp_path_factory, None, "float32")
    assert float(many["cnn_bn/weight_spread"]) == 0.0
    # per-rank batch statistics: the running statistics differ between ranks until synced...
    assert float(many["cnn_bn/buffer_spread"]) > 1e-3
    assert float(many["cnn_bn/buffer_spread_after_sync"]) == 0.0
    # ...and training differs from one process at the global batch (why SyncBatchNorm exists)
    ref, got = _arrays(one, "cnn_bn"), _arrays(many, "cnn_bn")
    assert max(np.abs(got[k] - ref[k]).max() for k in ref) > 1e-2


def test_a_failing_rank_aborts_the_world_with_its_message():
    require_mpi()
    proc = run("train.py", ["--out", os.devnull, "--models", "mlp", "--raise-at-step", "3",
                            "--raise-rank", "1"], n=3, timeout=300, check=False)
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    assert "pynn.distributed: rank 1 of 3" in text, text
    assert "deliberate failure on rank 1 at step 3" in text, text


@pytest.mark.parametrize("n, samples, batch, drop_last", [
    (2, 103, 8, False), (3, 103, 8, False), (3, 103, 8, True), (3, 7, 2, False)])
def test_shards_cover_the_data_once_per_epoch_with_equal_steps(tmp_path, n, samples, batch,
                                                               drop_last):
    require_mpi()
    out = tmp_path / "ids.npz"
    run("shard.py", ["--out", out, "--n", samples, "--batch", batch]
        + (["--drop-last"] if drop_last else []), n)
    with np.load(out) as f:
        ids, steps, per_epoch = f["ids"], f["steps"], int(f["len_loader"])
    assert steps[0] == steps[1] == 2 * per_epoch          # every rank ran the same steps
    for epoch in ids:                                      # (world, samples per rank)
        _check_epoch(epoch, samples, n, batch, drop_last)
    assert not np.array_equal(ids[0], ids[1])              # reshuffled between epochs


def _check_epoch(table, samples, world, batch, drop_last):
    flat = table.ravel()
    uniq, counts = np.unique(flat, return_counts=True)
    if drop_last:       # the remainder of samples / world, then each rank's last partial batch
        assert len(flat) == world * (samples // world // batch * batch)
        assert len(flat) == 0 or counts.max() == 1                            # disjoint
    else:
        assert np.array_equal(uniq, np.arange(samples))    # every sample at least once
        assert len(flat) - samples == (-samples) % world   # only the padding is repeated


def test_mnist_cnn_example_under_mpirun_prints_and_saves_on_rank_0_only(tmp_path):
    require_mpi()
    data = REPO.parent / "shared" / "data"
    if not (data / "mnist" / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"the MNIST IDX files are not in {data / 'mnist'}")
    save = tmp_path / "cnn.pynn"
    cmd = [_mpiexec(), "-n", "2", sys.executable, str(REPO / "examples" / "mnist_cnn.py"),
           "--distributed", "--data-dir", str(data), "--limit", "512", "--epochs", "1",
           "--save", str(save)]
    proc = subprocess.run(cmd, env=_env(), cwd=tmp_path, capture_output=True, text=True,
                          timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert sum(line.startswith("final: ") for line in lines) == 1
    assert sum(line.startswith("MNIST: ") for line in lines) == 1
    assert sum("Total params" in line for line in lines) == 1
    # one bar (rank 0's), opened once, of 256 / 32 = 8 steps: half of the 512 samples
    assert proc.stderr.count("| 0/8 [00:00<?, ?it/s]") == 1, proc.stderr
    assert type(pynn.load_model(save)) is Model


# -- in this process: a one-process world ----------------------------------------------------------

@pytest.fixture
def world_state():
    """Restore pynn.distributed's module state (and sys.excepthook) after a test."""
    saved = dist._comm, dist._MPI, dist._initialized, sys.excepthook
    yield
    dist._comm, dist._MPI, dist._initialized, sys.excepthook = saved


def test_one_process_world_before_init(world_state):
    dist._comm, dist._MPI, dist._initialized = None, None, False
    assert (dist.rank(), dist.world_size(), dist.shard()) == (0, 1, (0, 1))
    assert dist.is_main() and not dist.is_initialized()
    a = np.arange(4.0)
    assert dist.allreduce(a, "mean") is a and np.array_equal(a, np.arange(4.0))
    t = Tensor(np.ones(3))
    assert dist.broadcast(t, root=0) is t
    assert dist.allreduce(2.5) == 2.5
    dist.barrier()
    with pytest.raises(ValueError, match="op must be one of"):
        dist.allreduce(a, "prod")
    with pytest.raises(TypeError, match="NumPy array or a Tensor"):
        dist.allreduce([1.0, 2.0])


def test_init_without_mpirun_is_a_world_of_one_and_idempotent():
    code = ("import pynn.distributed as d; a = d.init(); b = d.init(); "
            "print(a, b, d.is_initialized(), d.world_size(), d.is_main())")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=_env(), capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["(0,", "1)", "(0,", "1)", "True", "1", "True"]


def test_init_without_mpi4py(world_state, monkeypatch):
    dist._comm, dist._MPI, dist._initialized = None, None, False
    monkeypatch.setitem(sys.modules, "mpi4py", None)      # import mpi4py raises ImportError
    for var in dist._LAUNCHER_SIZE_VARS:
        monkeypatch.delenv(var, raising=False)
    assert dist.init() == (0, 1) and dist.is_initialized()
    # started by a launcher with several ranks: silently training N separate models is worse
    dist._initialized = False
    monkeypatch.setenv("PMI_SIZE", "4")
    with pytest.raises(RuntimeError, match="mpi4py is not installed"):
        dist.init()


def test_distributed_optimizer_in_one_process_is_the_wrapped_optimizer(world_state):
    dist._comm, dist._MPI, dist._initialized = None, None, True
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal((3, 4)).astype(np.float32)
    a, b = Tensor(w0.copy(), requires_grad=True), Tensor(w0.copy(), requires_grad=True)
    plain, wrapped = Adam(0.01), dist.DistributedOptimizer(Adam(0.01))
    for _ in range(3):
        g = rng.standard_normal((3, 4)).astype(np.float32)
        a.grad, b.grad = Tensor(g.copy()), Tensor(g.copy())
        plain.update([a])
        wrapped.update([b])
    assert np.array_equal(a.data, b.data)
    # everything else goes to the wrapped optimizer: lr, schedulers, state_dict
    wrapped.lr = 0.5
    assert wrapped.optimizer.lr == 0.5 and wrapped.lr == 0.5
    StepLR(wrapped, step_size=1, gamma=0.1).step()
    assert wrapped.optimizer.lr == pytest.approx(0.05)
    assert wrapped.state_dict()["optimizer"] == "Adam"
    with pytest.raises(TypeError, match="already distributed"):
        dist.DistributedOptimizer(wrapped)
    with pytest.raises(TypeError, match="expected a pynn optimizer"):
        dist.DistributedOptimizer(object())


# -- in this process: a fake world of two ranks holding the same data ------------------------------

class FakeMPI:
    IN_PLACE = object()
    SUM, MAX, MIN = "sum", "max", "min"


class TwinComm:
    """A world of two ranks where the other rank always holds exactly what this one holds."""

    def __init__(self):
        self.calls = []

    def Get_size(self):
        return 2

    def Get_rank(self):
        return 0

    def Allreduce(self, sendbuf, recvbuf, op):
        assert sendbuf is FakeMPI.IN_PLACE and isinstance(recvbuf, np.ndarray)
        self.calls.append(("Allreduce", recvbuf))
        if op == "sum":
            recvbuf *= 2

    def Bcast(self, buf, root=0):
        assert isinstance(buf, np.ndarray) and buf.flags.c_contiguous
        self.calls.append(("Bcast", buf))

    def Barrier(self):
        self.calls.append(("Barrier", None))


@pytest.fixture
def twin(world_state):
    comm = TwinComm()
    dist._comm, dist._MPI, dist._initialized = comm, FakeMPI, True
    return comm


def _mlp():
    pynn.manual_seed(0)
    x_in = Input((5,))
    return Model(x_in, Dense(3, 2)(Dense(5, 3, "relu")(x_in)))


def test_distributed_optimizer_one_allreduce_on_one_reused_flat_buffer(twin):
    model = _mlp()
    ref_model = _mlp()
    opt, ref = dist.DistributedOptimizer(SGD(0.1, momentum=0.9)), SGD(0.1, momentum=0.9)
    x = np.random.default_rng(1).standard_normal((4, 5)).astype(np.float32)
    buffers = []
    for _ in range(3):
        for m in (model, ref_model):
            loss = (m(x) ** 2).mean()
            loss.zero_grad()
            loss.backward()
        twin.calls.clear()
        opt.update(model.parameters)
        ref.update(ref_model.parameters)
        assert [c[0] for c in twin.calls] == ["Allreduce"]        # one message per step
        buf = twin.calls[0][1]
        assert buf.dtype == np.float32 and buf.size == sum(p.data.size for p in model.parameters) \
            + len(model.parameters)      # every gradient, and one has-a-gradient flag each
        buffers.append(buf)
    assert all(b is buffers[0] for b in buffers)                   # preallocated once
    # the twin's gradients are the same, so their average is too: the same training as one rank
    for p, q in zip(model.parameters, ref_model.parameters, strict=True):
        np.testing.assert_array_equal(p.data, q.data)
    assert opt.steps == 3 and opt.allreduce_seconds >= 0


def test_distributed_optimizer_pytorch_style_step(twin):
    w = Tensor(np.ones(3, np.float32), requires_grad=True)
    opt = dist.DistributedOptimizer(SGD([w], lr=0.5))
    w.grad = Tensor(np.array([1.0, 2.0, 3.0], np.float32))
    assert opt.step(lambda: "loss") == "loss"
    assert [c[0] for c in twin.calls] == ["Allreduce"]
    np.testing.assert_array_equal(w.data, 1 - 0.5 * np.array([1.0, 2.0, 3.0]))
    opt.zero_grad()
    assert w.grad is None


def test_distributed_optimizer_a_missing_gradient_counts_as_zero(twin):
    a = Tensor(np.ones(2, np.float32), requires_grad=True)
    b = Tensor(np.ones(3, np.float32), requires_grad=True)
    a.grad = Tensor(np.array([2.0, 4.0], np.float32))
    b.grad = None
    opt = dist.DistributedOptimizer(SGD(1.0))

    def half_sum(_, buf, op):       # the other rank had a gradient for b (ones), none for a
        n = 2
        buf[:n] += 0
        buf[n:n + 3] += 1
        buf[n + 3:] += [0, 1]

    twin.Allreduce = half_sum
    opt.update([a, b])
    np.testing.assert_array_equal(a.data, 1 - np.array([1.0, 2.0]))     # (g + 0) / 2
    np.testing.assert_array_equal(b.data, 1 - np.full(3, 0.5))          # (0 + 1) / 2
    c = Tensor(np.ones(2, np.float32), requires_grad=True)              # no gradient anywhere
    twin.Allreduce = lambda _, buf, op: None
    a.grad = b.grad = None
    opt.update([a, b, c])
    assert c.grad is None and np.array_equal(c.data, np.ones(2))


def test_broadcast_parameters_sends_weights_and_batchnorm_buffers(twin):
    x_in = Input((2, 3, 3))
    model = Model(x_in, BatchNorm2d(2)(x_in))
    dist.broadcast_parameters(model, root=0)
    sent = [c[1] for c in twin.calls if c[0] == "Bcast"]
    state = model.state_dict()
    assert len(sent) == len(state) == 4
    assert all(any(s is a for s in sent) for a in state.values())      # in place
    with pytest.raises(ValueError, match="root must be a rank"):
        dist.broadcast_parameters(model, root=2)


def test_sync_batchnorm_stats_averages_running_statistics(twin):
    x_in = Input((2, 3, 3))
    model = Model(x_in, BatchNorm2d(2)(x_in))
    bn = model.layers[0]
    bn.running_mean[...] = [1.0, 2.0]
    twin.Allreduce = lambda _, buf, op: np.add(2 * buf, 1.0, out=buf)   # other rank: stats + 1
    dist.sync_batchnorm_stats(model)
    np.testing.assert_allclose(bn.running_mean, [1.5, 2.5])
    np.testing.assert_allclose(bn.running_var, [1.5, 1.5])
    assert bn.running_mean.dtype == np.float32
    layer = BatchNorm2d(3)                                      # a list of layers
    dist.sync_batchnorm_stats([layer])
    np.testing.assert_allclose(layer.running_mean, [0.5, 0.5, 0.5])


def test_allreduce_and_broadcast_helpers_use_the_buffer_in_place(twin):
    a = np.arange(6, dtype=np.float32)
    assert dist.allreduce(a) is a and np.array_equal(a, 2 * np.arange(6))
    t = Tensor(np.arange(3.0))
    dist.allreduce(t, "mean")
    np.testing.assert_array_equal(t.data, np.arange(3.0))
    strided = np.arange(8.0)[::2]                       # not contiguous: through a copy
    dist.allreduce(strided, "sum")
    np.testing.assert_array_equal(strided, 2 * np.arange(8.0)[::2])
    assert dist.allreduce(1.5, "sum") == 3.0
    with pytest.raises(TypeError, match="needs a float array"):
        dist.allreduce(np.arange(3), "mean")


# -- SyncBatchNorm ---------------------------------------------------------------------------------

def _sbn(c, seed=0, dtype=np.float64):
    layer = SyncBatchNorm(c)
    rng = np.random.default_rng(seed)
    layer.weight.data = rng.uniform(0.5, 1.5, c).astype(dtype)
    layer.bias.data = rng.uniform(-0.5, 0.5, c).astype(dtype)
    layer.running_mean = rng.uniform(-1, 1, c).astype(dtype)
    layer.running_var = rng.uniform(0.5, 2, c).astype(dtype)
    return layer


def _torch_bn(layer, ndim):
    cls = torch.nn.BatchNorm1d if ndim in (2, 3) else torch.nn.BatchNorm2d
    t = cls(layer.num_features, eps=layer.eps, momentum=layer.momentum).double()
    with torch.no_grad():
        t.weight.copy_(torch.from_numpy(layer.weight.data))
        t.bias.copy_(torch.from_numpy(layer.bias.data))
        t.running_mean.copy_(torch.from_numpy(layer.running_mean))
        t.running_var.copy_(torch.from_numpy(layer.running_var))
    return t


def _run(layer, x, g, mode):
    xt = Tensor(x, requires_grad=True, dtype=np.float64)
    if mode == "eager":
        y = layer(xt)
    else:
        x_in = Input(x.shape[1:], dtype=np.float64)
        model = Model(x_in, layer(x_in))
        y = model(xt)
    layer.weight.grad = layer.bias.grad = None
    y.backward(g)
    return y.data, xt.grad.data, layer.weight.grad.data, layer.bias.grad.data


SHAPES = [(6, 4), (3, 2, 5), (4, 3, 5, 6)]


@pytest.mark.parametrize("mode", ["eager", "model"])
@pytest.mark.parametrize("shape", SHAPES)
def test_sync_batchnorm_one_process_is_batchnorm_against_torch(world_state, shape, mode):
    dist._comm, dist._MPI = None, None
    layer = _sbn(shape[1])
    tbn = _torch_bn(layer, len(shape))
    rng = np.random.default_rng(1)
    x, g = rng.normal(2.0, 3.0, shape), rng.standard_normal(shape)
    y, gx, gw, gb = _run(layer, x, g, mode)
    _compare_torch(tbn, x, g, y, gx, gw, gb, layer, copies=1)


@pytest.mark.parametrize("mode", ["eager", "model"])
@pytest.mark.parametrize("shape", SHAPES)
def test_sync_batchnorm_statistics_span_every_rank_against_torch(twin, shape, mode):
    """Two ranks with the same batch x: each must compute what torch's BatchNorm computes on
    the batch [x, x] (the global batch), in forward, backward and the running statistics."""
    layer = _sbn(shape[1])
    tbn = _torch_bn(layer, len(shape))
    rng = np.random.default_rng(2)
    x, g = rng.normal(-1.0, 2.0, shape), rng.standard_normal(shape)
    y, gx, gw, gb = _run(layer, x, g, mode)
    assert any(c[0] == "Allreduce" for c in twin.calls)
    _compare_torch(tbn, x, g, y, gx, gw, gb, layer, copies=2)
    # eval mode: running statistics, no communication
    twin.calls.clear()
    layer.eval()
    tbn.eval()
    y_eval = layer(Tensor(x, dtype=np.float64)).data
    np.testing.assert_allclose(y_eval, tbn(torch.from_numpy(x)).detach().numpy(), rtol=1e-6,
                               atol=1e-12)
    assert not twin.calls


def _compare_torch(tbn, x, g, y, gx, gw, gb, layer, copies):
    tbn.train()
    for p in tbn.parameters():
        p.grad = None
    xt = torch.tensor(np.concatenate([x] * copies), requires_grad=True)
    yt = tbn(xt)
    yt.backward(torch.from_numpy(np.concatenate([g] * copies)))
    n = len(x)
    kw = dict(rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(y, yt.detach().numpy()[:n], err_msg="output", **kw)
    np.testing.assert_allclose(gx, xt.grad.numpy()[:n], err_msg="input grad", **kw)
    # parameter gradients are this rank's share; DistributedOptimizer adds up the ranks
    np.testing.assert_allclose(copies * gw, tbn.weight.grad.numpy(), err_msg="weight grad", **kw)
    np.testing.assert_allclose(copies * gb, tbn.bias.grad.numpy(), err_msg="bias grad", **kw)
    np.testing.assert_allclose(layer.running_mean, tbn.running_mean.numpy(), **kw)
    np.testing.assert_allclose(layer.running_var, tbn.running_var.numpy(), **kw)


@pytest.mark.parametrize("world", ["one", "twin"])
def test_sync_batchnorm_gradcheck(world_state, world):
    dist._comm, dist._MPI = (TwinComm(), FakeMPI) if world == "twin" else (None, None)
    layer = _sbn(3)
    rng = np.random.default_rng(3)

    def f(x, gamma, beta):
        return apply(SyncBatchNormOp(module=layer), x, gamma, beta)

    gradcheck(f, rng.normal(0.5, 2.0, (4, 3, 2, 2)), layer.weight.data, layer.bias.data)


def test_sync_batchnorm_float32_layer_protocol_and_save_load(world_state, tmp_path):
    dist._comm, dist._MPI = TwinComm(), FakeMPI
    assert LAYERS["SyncBatchNorm"] is SyncBatchNorm
    x_in = Input((3, 4, 4))
    model = Model(x_in, SyncBatchNorm(3, momentum=0.2)(x_in))
    y = model(np.random.default_rng(0).standard_normal((2, 3, 4, 4)).astype(np.float32))
    assert y.dtype == np.float32 and model.layers[0].running_var.dtype == np.float32
    with pytest.raises(ValueError, match=r"SyncBatchNorm\(3\).*\(2, 4\)"):
        SyncBatchNorm(3)(Tensor(np.zeros((2, 4), np.float32)))
    model.save(tmp_path / "m.pynn")
    loaded = pynn.load_model(tmp_path / "m.pynn")
    assert type(loaded.layers[0]) is SyncBatchNorm and loaded.layers[0].momentum == 0.2
    np.testing.assert_array_equal(loaded.layers[0].running_mean, model.layers[0].running_mean)


# -- DataLoader shards, simulated ranks in this process --------------------------------------------

def _shards(n, batch, world, drop_last, seed=5):
    x = np.arange(n)
    return [DataLoader(x, batch_size=batch, shuffle=True, seed=seed, shard=(r, world),
                       drop_last=drop_last) for r in range(world)]


@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("n", [1, 2, 5, 7, 10, 31, 100, 101])
@pytest.mark.parametrize("world", [1, 2, 3, 4, 7])
@pytest.mark.parametrize("batch", [1, 3, 8])
def test_shards_equal_steps_and_cover_the_data_for_awkward_sizes(n, world, batch, drop_last):
    loaders = _shards(n, batch, world, drop_last)
    for _ in range(2):
        epochs = [[xb.data for xb in loader] for loader in loaders]
        steps = {len(e) for e in epochs}
        assert steps == {len(loaders[0])}, f"ranks ran {steps} steps"     # never a deadlock
        sizes = [[len(b) for b in e] for e in epochs]
        assert all(s == sizes[0] for s in sizes)       # same batch sizes, step by step
        table = np.array([np.concatenate(e) if e else np.zeros(0, int) for e in epochs])
        _check_epoch(table, n, world, batch, drop_last)


def test_shards_of_a_batch_make_the_batch_of_one_process():
    """Rank r's batch i holds the samples r, r + N, ... of global batch i: together the ranks
    see exactly the batches of one loader with batch_size * N (what the equivalence needs)."""
    x = np.arange(60)
    one = [xb.data for xb in DataLoader(x, batch_size=12, shuffle=True, seed=9)]
    ranks = [[xb.data for xb in DataLoader(x, batch_size=4, shuffle=True, seed=9, shard=(r, 3))]
             for r in range(3)]
    for i, batch in enumerate(one):
        np.testing.assert_array_equal(np.sort(np.concatenate([r[i] for r in ranks])),
                                      np.sort(batch))


def test_shard_one_of_one_is_the_plain_loader():
    x, y = np.arange(23.0).reshape(23, 1), np.arange(23)
    a = DataLoader(x, y, batch_size=5, shuffle=True, seed=1)
    b = DataLoader(x, y, batch_size=5, shuffle=True, seed=1, shard=(0, 1))
    assert len(a) == len(b)
    for (xa, ya), (xb, yb) in zip(a, b, strict=True):
        np.testing.assert_array_equal(ya.data, yb.data)
        np.testing.assert_array_equal(xa.data, xb.data)


def test_shard_arguments_are_checked():
    x = np.arange(10)
    with pytest.raises(TypeError, match="pair"):
        DataLoader(x, shard=3)
    with pytest.raises(TypeError, match="two integers"):
        DataLoader(x, shard=(0.5, 2))
    with pytest.raises(ValueError, match="0 <= rank < world_size"):
        DataLoader(x, shard=(2, 2))
    with pytest.raises(ValueError, match="needs a seed"):
        DataLoader(x, shuffle=True, shard=(0, 2))
    assert "shard=(1, 2)" in repr(DataLoader(x, shard=(1, 2)))
