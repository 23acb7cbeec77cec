"""Weights between pynn and PyTorch: torch state dicts into pynn (by order, by name, by an
explicit mapping, with errors that list what does not line up), and safetensors files in
PyTorch's names that torch modules load with strict=True.

torch is a test dependency; safetensors is an optional extra: its tests skip when it is not
installed, except under CI=true, where they must run.
"""
import os
from collections import OrderedDict

import numpy as np
import pytest
import torch
import torch.nn as tnn

import pynn
from pynn import Input, Model, fileutil
from pynn.activations import relu, softmax
from pynn.interop import (
    StateDictError,
    from_torch_state_dict,
    load_safetensors,
    save_safetensors,
    torch_state_dict,
)
from pynn.layers import BatchNorm2d, Conv2d, Dense, Flatten, MaxPool2d

if os.environ.get("CI") == "true":
    import safetensors.torch as st_torch
else:
    st_torch = pytest.importorskip("safetensors.torch")

TOL = 1e-5      # float32, pynn against torch


def _x(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _train(net, x_shape, n_classes, steps=5):
    """A few SGD steps on random data, so the weights (and BatchNorm's running statistics) are
    not the initial ones; returns the net in eval mode."""
    torch.manual_seed(0)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    net.train()
    for step in range(steps):
        x = torch.from_numpy(_x((16,) + x_shape, seed=step))
        y = torch.randint(0, n_classes, (16,))
        loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()


def _torch_out(net, x, probs=True):
    with torch.no_grad():
        out = net(torch.from_numpy(x))
        return (out.softmax(1) if probs else out).numpy()


# -- the same networks on both sides -------------------------------------------------------------
def _pynn_mlp():
    x_in = Input((6,))
    x = Dense(6, 16, relu)(x_in)
    x = Dense(16, 8, relu)(x)
    return Model(x_in, Dense(8, 3, softmax)(x))


def _torch_mlp():
    return tnn.Sequential(tnn.Linear(6, 16), tnn.ReLU(), tnn.Linear(16, 8), tnn.ReLU(),
                          tnn.Linear(8, 3))


def _pynn_cnn():
    x_in = Input((1, 12, 12))
    x = Conv2d(1, 4, 3, padding=1, activation=relu)(x_in)
    x = BatchNorm2d(4)(x)
    x = MaxPool2d(2)(x)
    x = Conv2d(4, 6, 3, activation=relu)(x)
    x = MaxPool2d(2)(x)
    x = Flatten()(x)
    x = Dense(6 * 2 * 2, 10, relu)(x)
    return Model(x_in, Dense(10, 5, softmax)(x))


def _torch_cnn_modules():
    return [("conv2d_1", tnn.Conv2d(1, 4, 3, padding=1)), ("relu_1", tnn.ReLU()),
            ("batchnorm2d_1", tnn.BatchNorm2d(4)), ("pool_1", tnn.MaxPool2d(2)),
            ("conv2d_2", tnn.Conv2d(4, 6, 3)), ("relu_2", tnn.ReLU()),
            ("pool_2", tnn.MaxPool2d(2)), ("flatten", tnn.Flatten()),
            ("dense_1", tnn.Linear(24, 10)), ("relu_3", tnn.ReLU()), ("dense_2", tnn.Linear(10, 5))]


def _torch_cnn(named=False):
    mods = _torch_cnn_modules()
    return tnn.Sequential(OrderedDict(mods)) if named else tnn.Sequential(*[m for _, m in mods])


# -- torch state dicts into pynn -----------------------------------------------------------------
def test_trained_torch_mlp_by_order():
    net = _train(_torch_mlp(), (6,), 3)
    model = _pynn_mlp()
    pairs = from_torch_state_dict(model, net.state_dict())
    assert pairs == {"dense_1.weight": "0.weight", "dense_1.bias": "0.bias",
                     "dense_2.weight": "2.weight", "dense_2.bias": "2.bias",
                     "dense_3.weight": "4.weight", "dense_3.bias": "4.bias"}
    for n in (1, 7):
        x = _x((n, 6), seed=10 + n)
        np.testing.assert_allclose(model.predict(x), _torch_out(net, x), rtol=TOL, atol=TOL)


@pytest.mark.parametrize("named", [False, True])
def test_trained_torch_cnn_with_batchnorm(named):
    net = _train(_torch_cnn(named), (1, 12, 12), 5)
    assert net[2].num_batches_tracked.item() == 5        # running stats moved
    model = _pynn_cnn()
    from_torch_state_dict(model, net.state_dict())
    np.testing.assert_array_equal(model.state_dict()["batchnorm2d_1.running_var"],
                                  net[2].running_var.numpy())
    for n in (2, 5):
        x = _x((n, 1, 12, 12), seed=n)
        np.testing.assert_allclose(model.predict(x), _torch_out(net, x), rtol=TOL, atol=TOL)


class _Reordered(tnn.Module):
    """Modules registered in another order than the forward pass runs them."""

    def __init__(self):
        super().__init__()
        self.head = tnn.Linear(8, 3)
        self.hidden = tnn.Linear(16, 8)
        self.first = tnn.Linear(6, 16)

    def forward(self, x):
        return self.head(torch.relu(self.hidden(torch.relu(self.first(x)))))


def test_explicit_mapping_by_layer_or_key():
    net = _train(_Reordered(), (6,), 3)
    model = _pynn_mlp()
    with pytest.raises(StateDictError, match="mis-shaped keys.*dense_1.weight"):
        from_torch_state_dict(model, net.state_dict())       # by order: the wrong pairs
    mapping = {"dense_1": "first", "dense_2": "hidden", "dense_3.weight": "head.weight",
               "dense_3.bias": "head.bias"}
    from_torch_state_dict(model, net.state_dict(), mapping=mapping)
    x = _x((4, 6))
    np.testing.assert_allclose(model.predict(x), _torch_out(net, x), rtol=TOL, atol=TOL)


def test_errors_list_missing_unexpected_and_misshaped_and_copy_nothing():
    model = _pynn_mlp()
    before = {k: v.copy() for k, v in model.state_dict().items()}
    state = {k: v.numpy() for k, v in _torch_mlp().state_dict().items()}
    # by name: one key renamed, one extra, one of the wrong shape
    named = {k.replace("0.", "dense_1.").replace("2.", "dense_2.").replace("4.", "dense_3."): v
             for k, v in state.items()}
    named["dense_3.b"] = named.pop("dense_3.bias")
    named["dense_2.weight"] = np.zeros((8, 17), np.float32)
    named["extra.weight"] = np.zeros(3, np.float32)
    with pytest.raises(StateDictError) as info:
        from_torch_state_dict(model, named)
    msg = str(info.value)
    assert "matched by name" in msg
    assert "missing keys ['dense_3.bias']" in msg
    assert "unexpected keys ['dense_3.b', 'extra.weight']" in msg
    assert "mis-shaped keys ['dense_2.weight (8, 16) <- dense_2.weight (8, 17)']" in msg
    # by order: a torch net with one Linear too few
    with pytest.raises(StateDictError, match=r"missing keys \['dense_3.weight', 'dense_3.bias'\]"):
        from_torch_state_dict(model, {k: v for k, v in state.items() if not k.startswith("4.")})
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    with pytest.raises(StateDictError, match="neither keys nor layer names"):
        from_torch_state_dict(model, state, mapping={"dense_9": "0"})


def test_values_may_be_numpy_or_array_likes():
    net = _torch_mlp()

    class ArrayLike:
        def __init__(self, a):
            self.a = a

        def __array__(self, dtype=None, copy=None):
            return self.a

    state = {k: ArrayLike(v.detach().numpy()) for k, v in net.state_dict().items()}
    model = _pynn_mlp()
    from_torch_state_dict(model, state)
    x = _x((3, 6))
    np.testing.assert_allclose(model.predict(x), _torch_out(net, x), rtol=TOL, atol=TOL)


def test_torch_state_dict_loads_strictly_into_torch():
    pynn.manual_seed(1)
    model = _pynn_cnn()
    model.state_dict()["batchnorm2d_1.running_mean"][...] = _x(4, seed=3)
    net = _torch_cnn(named=True)
    net.load_state_dict({k: torch.from_numpy(v) for k, v in torch_state_dict(model).items()},
                        strict=True)
    net.eval()
    x = _x((3, 1, 12, 12))
    np.testing.assert_allclose(model.predict(x), _torch_out(net, x), rtol=TOL, atol=TOL)


# -- safetensors ---------------------------------------------------------------------------------
def test_safetensors_file_loads_into_the_matching_torch_module(tmp_path):
    pynn.manual_seed(2)
    model = _pynn_cnn()
    model.state_dict()["batchnorm2d_1.running_var"][...] = np.linspace(0.5, 2, 4)
    path = tmp_path / "w.safetensors"
    save_safetensors(model, path)
    state = st_torch.load_file(str(path))
    assert state["batchnorm2d_1.num_batches_tracked"].dtype == torch.int64
    net = _torch_cnn(named=True)
    net.load_state_dict(state, strict=True)
    net.eval()
    x = _x((4, 1, 12, 12))
    np.testing.assert_allclose(model.predict(x), _torch_out(net, x), rtol=TOL, atol=TOL)


def test_safetensors_with_sequential_indices(tmp_path):
    pynn.manual_seed(3)
    model = _pynn_mlp()
    path = tmp_path / "w.safetensors"
    save_safetensors(model, path, mapping={"dense_1": "0", "dense_2": "2", "dense_3": "4"})
    net = _torch_mlp()
    net.load_state_dict(st_torch.load_file(str(path)), strict=True)
    x = _x((5, 6))
    np.testing.assert_allclose(model.predict(x), _torch_out(net, x), rtol=TOL, atol=TOL)


def test_safetensors_round_trip_and_file_written_by_torch(tmp_path):
    pynn.manual_seed(4)
    model = _pynn_cnn()
    path = tmp_path / "w.safetensors"
    save_safetensors(model, path)
    pynn.manual_seed(5)
    other = _pynn_cnn()
    load_safetensors(other, path)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(other.state_dict()[k], v)
    x = _x((3, 1, 12, 12))
    np.testing.assert_array_equal(other.predict(x), model.predict(x))

    net = _train(_torch_cnn(), (1, 12, 12), 5)
    st_torch.save_file(net.state_dict(), str(tmp_path / "torch.safetensors"))
    load_safetensors(other, tmp_path / "torch.safetensors")          # keys by order
    np.testing.assert_allclose(other.predict(x), _torch_out(net, x), rtol=TOL, atol=TOL)


@pytest.mark.parametrize("where", ["save", "write", "fsync", "replace"])
@pytest.mark.parametrize("error", [OSError, KeyboardInterrupt])
def test_failed_safetensors_write_leaves_the_old_file_intact(tmp_path, monkeypatch, where,
                                                             error):
    """The file is written beside the target and renamed onto it: a failure anywhere (making
    the bytes, half-way through writing them, fsync, the rename) leaves the old file as it was,
    no temporary file behind, and no file at all where there was none."""
    import safetensors.numpy
    pynn.manual_seed(6)
    old, new = _pynn_cnn(), _pynn_cnn()
    path = tmp_path / "w.safetensors"
    save_safetensors(old, path)
    old_bytes = path.read_bytes()

    def crash(*args, **kwargs):
        raise error("crash (simulated)")
    if where == "save":
        monkeypatch.setattr(safetensors.numpy, "save", crash)
    elif where == "write":               # some bytes are in the temporary file, then the crash
        monkeypatch.setattr(safetensors.numpy, "save", crash)
        real_write_atomic = fileutil.write_atomic

        def write_some_first(target, write, *args):
            def write_some(f):
                f.write(b"\0" * 100)
                write(f)
            return real_write_atomic(target, write_some, *args)
        monkeypatch.setattr(fileutil, "write_atomic", write_some_first)
    else:
        monkeypatch.setattr(os, where, crash)
    with pytest.raises(error, match="simulated"):
        save_safetensors(new, path)
    with pytest.raises(error, match="simulated"):
        save_safetensors(new, tmp_path / "fresh.safetensors")
    monkeypatch.undo()
    assert path.read_bytes() == old_bytes
    assert sorted(os.listdir(tmp_path)) == ["w.safetensors"]
    reloaded = _pynn_cnn()
    load_safetensors(reloaded, path)
    for k, v in old.state_dict().items():
        np.testing.assert_array_equal(reloaded.state_dict()[k], v)


def test_safetensors_write_goes_through_a_symbolic_link(tmp_path):
    """As model.save: the link's target is replaced, the link stays."""
    pynn.manual_seed(7)
    model = _pynn_mlp()
    target = tmp_path / "real.safetensors"
    target.write_bytes(b"old")
    link = tmp_path / "w.safetensors"
    link.symlink_to(target)
    save_safetensors(model, link)
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert st_torch.load_file(str(target)).keys() == torch_state_dict(model).keys()


class _TorchLSTMClassifier(tnn.Module):
    """MNIST rows through a 2-layer LSTM, the last step into a linear head (as
    examples/seq_mnist_lstm.py, smaller)."""

    def __init__(self):
        super().__init__()
        self.lstm = tnn.LSTM(7, 12, num_layers=2, batch_first=True)
        self.head = tnn.Linear(12, 4)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.head(out[:, -1])


def test_trained_torch_lstm_loads_into_pynn():
    from pynn.layers import LSTM
    net = _train(_TorchLSTMClassifier(), (5, 7), 4)
    x_in = Input((5, 7))
    seq = LSTM(7, 12, num_layers=2)(x_in)                 # torch form: the whole sequence
    model = Model(x_in, Dense(12, 4, softmax)(seq[:, -1]))
    pairs = from_torch_state_dict(model, net.state_dict())
    assert pairs["lstm_1.weight_ih_l1"] == "lstm.weight_ih_l1"
    assert pairs["dense_1.weight"] == "head.weight"
    for n in (1, 6):
        x = _x((n, 5, 7), seed=20 + n)
        np.testing.assert_allclose(model.predict(x), _torch_out(net, x), rtol=TOL, atol=TOL)
