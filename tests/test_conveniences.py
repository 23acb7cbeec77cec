"""Everyday conveniences, checked against PyTorch where it has a number: Python scalars and
format(), abs, clone, to(), NumPy's axis=/keepdims=, float ops on integer tensors, gradients
at the edges (x**0, 0**y, std of a constant), squeeze of a 0-d tensor, PyTorch's order of dims
for indices mixing integers and arrays, manual_seed driving DataLoader shuffling, and the
original pynn's names."""
import numpy as np
import pytest
import torch
from test_gradcheck import gradcheck

import pynn
from pynn import Input, Model, Tensor
from pynn.data import DataLoader
from pynn.layers import Dense, Dropout
from pynn.losses import categorical_cross_entory, categorical_cross_entropy
from pynn.optimizers import Adam

TORCH_CHECKED_OPS = {"Pow", "Std", "Var", "Sigmoid", "Softplus", "Exp", "Log", "Sqrt", "Tanh",
                     "Gelu", "Softmax", "LogSoftmax", "Mean", "Cos", "Sin", "LogSumExp", "Cast",
                     "GetItem", "Squeeze", "Abs"}
GRADCHECKED_OPS = {"Std", "Pow"}


def test_python_scalars_and_format_like_torch():
    for values in ([2.75], [[-3.5]], 1.25):
        t, tt = Tensor(values), torch.tensor(values)
        assert float(t) == float(tt) and int(t) == int(tt) and bool(t) == bool(tt)
        # torch formats 0-d tensors only; pynn any one-element tensor, as its number
        assert format(t, ".4f") == format(float(tt), ".4f")
        assert f"{t:8.2e}" == f"{float(tt):8.2e}"
    assert format(Tensor(1.25), ".3f") == format(torch.tensor(1.25), ".3f") == "1.250"
    assert [10, 20, 30][Tensor(2)] == 30                 # an integer tensor is an index
    for bad in (float, int):
        with pytest.raises(TypeError, match="one-element"):
            bad(Tensor([1.0, 2.0]))
    with pytest.raises(TypeError, match="one-element"):
        format(Tensor([1.0, 2.0]), ".2f")
    assert format(Tensor([1.0, 2.0])) == str(Tensor([1.0, 2.0]))


def test_abs_operator():
    x = Tensor([-1.5, 2.0], requires_grad=True)
    tx = torch.tensor([-1.5, 2.0], requires_grad=True)
    abs(x).sum().backward()
    abs(tx).sum().backward()
    np.testing.assert_array_equal(abs(x).numpy(), abs(tx).detach().numpy())
    np.testing.assert_array_equal(x.grad.numpy(), tx.grad.numpy())


def test_clone_is_a_differentiable_copy():
    x = Tensor([1.0, -2.0, 3.0], requires_grad=True)
    tx = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
    c, tc = x.clone(), tx.clone()
    assert c.data is not x.data and not np.shares_memory(c.data, x.data)
    (c * c * 3).sum().backward()
    (tc * tc * 3).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), tx.grad.numpy())
    labels = Tensor([1, 2])
    copy = labels.clone()
    copy += 1
    np.testing.assert_array_equal(labels.numpy(), [1, 2])


def test_to_dtype_and_device():
    x = Tensor([1.0, 2.0], requires_grad=True)
    assert x.to("cpu") is x and x.to(device="cpu") is x and x.cpu() is x
    assert x.to(pynn.float32) is x
    y = x.to("cpu", pynn.float64)
    assert y.dtype == np.float64 and y.requires_grad
    (y * y).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 4.0])
    assert x.to(dtype="float64").dtype == np.float64
    assert x.to(Tensor([1], dtype="int64")).dtype == np.int64
    assert x.to(copy=True) is not x
    with pytest.raises(RuntimeError, match="CPU only"):
        x.to("cuda")


REDUCTIONS = ["sum", "mean", "amax", "amin", "var", "std", "logsumexp"]


@pytest.mark.parametrize("name", REDUCTIONS)
def test_numpy_axis_and_keepdims_names(name):
    a = np.random.default_rng(0).normal(size=(3, 4, 5))
    x = Tensor(a, dtype=np.float64)
    for dim in (1, (0, 2), -1):
        for keep in (False, True):
            want = getattr(x, name)(dim=dim, keepdim=keep).numpy()
            np.testing.assert_array_equal(getattr(x, name)(axis=dim, keepdims=keep).numpy(), want)
            np.testing.assert_array_equal(getattr(x, name)(dim, keepdims=keep).numpy(), want)
            tdim = dim
            tw = getattr(torch, name)(torch.tensor(a), dim=tdim, keepdim=keep).numpy()
            np.testing.assert_allclose(want, tw, rtol=1e-12)
    with pytest.raises(TypeError, match="both dim"):
        getattr(x, name)(dim=0, axis=1)


def test_axis_names_on_max_min_argmax_and_softmax():
    a = np.random.default_rng(1).normal(size=(3, 4))
    x, tx = Tensor(a, dtype=np.float64), torch.tensor(a)
    values, indices = x.max(axis=1, keepdims=True)
    tv, ti = tx.max(dim=1, keepdim=True)
    np.testing.assert_array_equal(values.numpy(), tv.numpy())
    np.testing.assert_array_equal(indices.numpy(), ti.numpy())
    np.testing.assert_array_equal(x.min(axis=0).values.numpy(), tx.min(dim=0).values.numpy())
    np.testing.assert_array_equal(x.argmax(axis=1).numpy(), tx.argmax(dim=1).numpy())
    np.testing.assert_array_equal(x.argmin(axis=0, keepdims=True).numpy(),
                                  tx.argmin(dim=0, keepdim=True).numpy())
    np.testing.assert_array_equal(pynn.argmax(x, 1).numpy(), torch.argmax(tx, 1).numpy())
    np.testing.assert_array_equal(pynn.argmax(a, axis=0).numpy(), torch.argmax(tx, 0).numpy())
    np.testing.assert_allclose(x.softmax(axis=0).numpy(), tx.softmax(dim=0).numpy(), rtol=1e-12)
    np.testing.assert_allclose(x.log_softmax(axis=0).numpy(), tx.log_softmax(dim=0).numpy(),
                               rtol=1e-12)
    np.testing.assert_array_equal(pynn.concat([x, x], dim=1).numpy(),
                                  torch.cat([tx, tx], dim=1).numpy())


FLOAT_OPS = ["sigmoid", "softplus", "exp", "log", "sqrt", "tanh", "cos", "sin", "softmax",
             "log_softmax"]


@pytest.mark.parametrize("name", FLOAT_OPS)
@pytest.mark.parametrize("values", [[1, 2, -3], [True, False, True]])
def test_float_ops_on_integer_and_bool_tensors_give_float32(name, values):
    t = getattr(Tensor(values), name)()
    tt = torch.tensor(values)
    if name in ("softmax", "log_softmax"):        # torch has no integer kernels for these
        tt = getattr(tt.float(), name)(-1)
    elif name == "softplus":
        tt = torch.nn.functional.softplus(tt.float())
    else:                                         # torch itself computes these in float32
        tt = getattr(tt, name)()
    assert t.dtype == np.float32 and tt.dtype == torch.float32
    np.testing.assert_allclose(t.numpy(), tt.numpy(), rtol=1e-6, equal_nan=True)


def test_gelu_mean_std_of_integers_give_float32():
    t, tt = Tensor([1, 2, -3]), torch.tensor([1, 2, -3])
    np.testing.assert_allclose(t.gelu().numpy(), torch.nn.functional.gelu(tt.float()).numpy(),
                               rtol=1e-6, atol=1e-6)
    assert t.gelu().dtype == np.float32
    # torch refuses mean/std of integers; pynn follows its float ops and gives float32
    for name in ("mean", "std", "var", "logsumexp"):
        out = getattr(t, name)()
        assert out.dtype == np.float32
        args = (0,) if name == "logsumexp" else ()
        np.testing.assert_allclose(out.numpy(), getattr(tt.float(), name)(*args).numpy(),
                                   rtol=1e-6)
    assert Tensor([1, 2, -3]).sigmoid().numpy() == pytest.approx([0.7311, 0.8808, 0.0474],
                                                                 abs=1e-4)


def test_pow_gradient_at_zero_like_torch():
    a, b = [0.0, 2.0, -1.0, 0.0, 0.0, 3.0], [0.0, 0.0, 2.0, -1.0, 2.5, 1.5]
    x, y = Tensor(a, dtype=np.float64, requires_grad=True), Tensor(b, dtype=np.float64,
                                                                   requires_grad=True)
    tx = torch.tensor(a, dtype=torch.float64, requires_grad=True)
    ty = torch.tensor(b, dtype=torch.float64, requires_grad=True)
    (x ** y).sum().backward()
    (tx ** ty).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(y.grad.numpy(), ty.grad.numpy(), rtol=1e-12, equal_nan=True)
    for make in (lambda t: t ** 0, lambda t: 0 ** t, lambda t: t ** t):
        x = Tensor([0.0], dtype=np.float64, requires_grad=True)
        tx = torch.tensor([0.0], dtype=torch.float64, requires_grad=True)
        make(x).sum().backward()
        make(tx).sum().backward()
        assert x.grad.numpy().tolist() == tx.grad.numpy().tolist() == [0.0]


def test_std_and_var_of_a_constant_have_zero_gradient_like_torch():
    for dim in (None, 1):
        for name in ("std", "var"):
            x = Tensor(np.full((2, 3), 1.5), dtype=np.float64, requires_grad=True)
            tx = torch.full((2, 3), 1.5, dtype=torch.float64, requires_grad=True)
            getattr(x, name)(dim).sum().backward()
            getattr(tx, name)(dim).sum().backward()
            np.testing.assert_array_equal(x.grad.numpy(), tx.grad.numpy())
            assert not np.isnan(x.grad.numpy()).any()


def test_std_matches_torch_and_finite_differences():
    a = np.random.default_rng(3).normal(size=(3, 4))
    for dim, keep, corr in ((None, False, 1), (1, True, 0), ((0, 1), False, 1), (0, False, 1)):
        x = Tensor(a, dtype=np.float64, requires_grad=True)
        tx = torch.tensor(a, requires_grad=True)
        out = x.std(dim, keepdim=keep, correction=corr)
        tout = torch.std(tx, dim=dim, keepdim=keep, correction=corr)
        np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=1e-12)
        out.sum().backward()
        tout.sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-10)
        gradcheck(lambda t, d=dim, k=keep, c=corr: t.std(d, keepdim=k, correction=c), a)
    gradcheck(lambda x, y: x ** y, np.random.default_rng(4).uniform(0.5, 2, (3,)),
              np.random.default_rng(5).uniform(-2, 2, (3,)))


def test_std_in_a_compiled_model():
    a = np.random.default_rng(6).normal(size=(5, 4))
    x_in = Input((4,), dtype=np.float64)
    model = Model(x_in, x_in.std(1, keepdim=True) * x_in)
    x = Tensor(a, dtype=np.float64, requires_grad=True)
    tx = torch.tensor(a, requires_grad=True)
    out, tout = model(x), tx.std(1, keepdim=True) * tx
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=1e-12)
    g = np.random.default_rng(7).normal(size=a.shape)
    out.backward(g)
    tout.backward(torch.tensor(g))
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-10)
    flat = Tensor(np.ones((2, 4)), dtype=np.float64, requires_grad=True)
    model(flat).sum().backward()                    # a constant row: 0, not NaN
    tflat = torch.ones(2, 4, dtype=torch.float64, requires_grad=True)
    (tflat.std(1, keepdim=True) * tflat).sum().backward()
    np.testing.assert_array_equal(flat.grad.numpy(), tflat.grad.numpy())


def test_squeeze_of_a_0d_tensor():
    for dim in (0, -1, None):
        t = Tensor(1.0, requires_grad=True)
        tt = torch.tensor(1.0, requires_grad=True)
        s, ts = (t.squeeze(), tt.squeeze()) if dim is None else (t.squeeze(dim), tt.squeeze(dim))
        assert s.shape == tuple(ts.shape) == ()
        (s * 2).backward()
        (ts * 2).backward()
        assert t.grad.item() == tt.grad.item() == 2.0
    with pytest.raises(IndexError):
        Tensor(1.0).squeeze(1)


INDICES = [
    (1, slice(None), [0, 1]),
    ([0, 2], 1, [0, 1]),
    (Ellipsis, 1, [0, 3]),
    (1, None, slice(None), [0, 1]),
    (slice(None), 1, [0, 1]),
    (2, [1, 1, 4], slice(1, 3)),
    (1, slice(None), np.array([[0], [2]])),
    (-1, np.array([True, False, True, False, True]), 0),
    (1, [0, 2], [1, 3]),
]


@pytest.mark.parametrize("index", INDICES, ids=[str(i) for i in range(len(INDICES))])
def test_index_mixing_ints_and_arrays_follows_torch(index):
    a = np.arange(60, dtype=np.float64).reshape(3, 5, 4)
    x, tx = Tensor(a, dtype=np.float64, requires_grad=True), torch.tensor(a, requires_grad=True)
    tindex = tuple(torch.tensor(i) if isinstance(i, (list, np.ndarray)) else i for i in index)
    out, tout = x[index], tx[tindex]
    assert out.shape == tuple(tout.shape)
    np.testing.assert_array_equal(out.numpy(), tout.detach().numpy())
    g = np.random.default_rng(0).normal(size=out.shape)
    out.backward(g)
    tout.backward(torch.tensor(g))
    np.testing.assert_array_equal(x.grad.numpy(), tx.grad.numpy())


def test_index_mixing_ints_and_arrays_in_a_compiled_model():
    x_in = Input((5, 4), dtype=np.float64)
    model = Model(x_in, x_in[:, 1, [0, 3]])
    a = np.arange(40, dtype=np.float64).reshape(2, 5, 4)
    np.testing.assert_array_equal(model(a).numpy(), torch.tensor(a)[:, 1, [0, 3]].numpy())


def _train_run():
    """A small training run whose randomness all comes from pynn's generator: initial
    weights, dropout masks, and the shuffling of a DataLoader made without seed=."""
    x = np.random.default_rng(0).normal(size=(96, 6)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    x_in = Input((6,))
    h = Dropout(0.3)(Dense(6, 16, "relu")(x_in))
    model = Model(x_in, Dense(16, 2, "softmax")(h))
    opt = Adam(1e-2)
    losses = []
    for _ in range(2):
        for xb, yb in DataLoader(x, y, batch_size=16, shuffle=True):
            loss = categorical_cross_entropy(model(xb), yb)
            loss.zero_grad()
            loss.backward()
            opt.update(model.parameters)
            losses.append(loss.item())
    return losses, [p.numpy().copy() for p in model.parameters]


def test_manual_seed_makes_two_training_runs_bit_identical():
    pynn.manual_seed(7)
    losses_a, weights_a = _train_run()
    pynn.manual_seed(7)
    losses_b, weights_b = _train_run()
    assert losses_a == losses_b
    for a, b in zip(weights_a, weights_b):
        np.testing.assert_array_equal(a, b)
    pynn.manual_seed(8)
    losses_c, _ = _train_run()
    assert losses_c != losses_a


def test_manual_seed_drives_dataloader_shuffling():
    x = np.arange(50)

    def orders():
        loader = DataLoader(x, batch_size=50, shuffle=True)
        return [next(iter(loader)).numpy().tolist() for _ in range(3)]

    pynn.manual_seed(3)
    first = orders()
    pynn.manual_seed(3)
    assert orders() == first
    assert first[0] != first[1]                # a new permutation every epoch
    # a loader's own seed= still wins over manual_seed
    a = [b.numpy().tolist() for b in DataLoader(x, batch_size=10, shuffle=True, seed=1)]
    pynn.manual_seed(99)
    b = [b.numpy().tolist() for b in DataLoader(x, batch_size=10, shuffle=True, seed=1)]
    assert a == b


def test_original_pynn_names():
    p = Tensor([[0.7, 0.2, 0.1]])
    assert categorical_cross_entory is categorical_cross_entropy
    loss = categorical_cross_entory(p, np.array([0]))
    assert loss.values is loss.data and loss.values == pytest.approx(-np.log(0.7))
