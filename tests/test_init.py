"""pynn.init against torch.nn.init: the gains exactly, the distributions' parameters (bounds
and standard deviations from the same fan computations) on large samples, orthogonality, in-place
filling in the tensor's dtype, seeding, the name lookup, and Dense's kernel_/bias_initializer."""
import math

import numpy as np
import pytest
import torch

import pynn
from pynn import Tensor, init
from pynn.layers import Dense


@pytest.fixture(autouse=True)
def _seeded():
    """Statistical checks run on fixed draws (the tolerances are 5 standard errors anyway)."""
    pynn.manual_seed(0)
    torch.manual_seed(0)


@pytest.mark.parametrize("name,param", [
    ("linear", None), ("conv1d", None), ("conv2d", None), ("conv_transpose2d", None),
    ("sigmoid", None), ("tanh", None), ("relu", None), ("leaky_relu", None),
    ("leaky_relu", 0.2), ("leaky_relu", 0), ("selu", None)])
def test_calculate_gain_matches_torch(name, param):
    assert init.calculate_gain(name, param) == torch.nn.init.calculate_gain(name, param)


def test_calculate_gain_errors():
    with pytest.raises(ValueError, match="Unsupported nonlinearity"):
        init.calculate_gain("swishy")
    with pytest.raises(ValueError, match="negative_slope"):
        init.calculate_gain("leaky_relu", "big")


SHAPE = (400, 300)          # 120000 samples: sample moments within ~0.5% of the truth
CONV = (64, 32, 3, 3)       # fan_in 288, fan_out 576


def _theory(fn_name, shape, **kw):
    """(kind, bound or std) from torch's own formula, read off torch's fill of a tensor: for a
    uniform fill the bound is its max |value| (to within the sample), for a normal its std."""
    t = torch.empty(shape, dtype=torch.float64)
    getattr(torch.nn.init, fn_name)(t, **kw)
    return t.numpy()


def _std_tol(n):
    return 5 / math.sqrt(2 * n)          # 5 standard errors of a sample std, relative


@pytest.mark.parametrize("shape", [SHAPE, CONV])
@pytest.mark.parametrize("fn_name,kw,bound", [
    ("xavier_uniform_", {}, lambda fi, fo: math.sqrt(6 / (fi + fo))),
    ("xavier_uniform_", {"gain": 2.0}, lambda fi, fo: 2 * math.sqrt(6 / (fi + fo))),
    ("kaiming_uniform_", {}, lambda fi, fo: math.sqrt(6 / fi)),
    ("kaiming_uniform_", {"a": math.sqrt(5)}, lambda fi, fo: 1 / math.sqrt(fi)),
    ("kaiming_uniform_", {"mode": "fan_out", "nonlinearity": "relu"},
     lambda fi, fo: math.sqrt(6 / fo)),
])
def test_uniform_initializers_match_torch(shape, fn_name, kw, bound):
    fan_in = shape[1] * int(np.prod(shape[2:]))
    fan_out = shape[0] * int(np.prod(shape[2:]))
    b = bound(fan_in, fan_out)
    ours = getattr(init, fn_name)(Tensor(np.zeros(shape), dtype="float64"), **kw).numpy()
    theirs = _theory(fn_name, shape, **kw)
    for name, x in (("pynn", ours), ("torch", theirs)):
        assert np.abs(x).max() <= b, name
        assert np.abs(x).max() > 0.999 * b, name           # the whole range is used
        np.testing.assert_allclose(x.std(), b / math.sqrt(3), rtol=_std_tol(x.size), err_msg=name)
        assert abs(x.mean()) < 5 * b / math.sqrt(3 * x.size), name


@pytest.mark.parametrize("shape", [SHAPE, CONV])
@pytest.mark.parametrize("fn_name,kw,std", [
    ("xavier_normal_", {}, lambda fi, fo: math.sqrt(2 / (fi + fo))),
    ("xavier_normal_", {"gain": 0.5}, lambda fi, fo: 0.5 * math.sqrt(2 / (fi + fo))),
    ("kaiming_normal_", {}, lambda fi, fo: math.sqrt(2 / fi)),
    ("kaiming_normal_", {"mode": "fan_out", "nonlinearity": "tanh"},
     lambda fi, fo: 5 / 3 / math.sqrt(fo)),
])
def test_normal_initializers_match_torch(shape, fn_name, kw, std):
    fan_in = shape[1] * int(np.prod(shape[2:]))
    fan_out = shape[0] * int(np.prod(shape[2:]))
    s = std(fan_in, fan_out)
    ours = getattr(init, fn_name)(Tensor(np.zeros(shape), dtype="float64"), **kw).numpy()
    theirs = _theory(fn_name, shape, **kw)
    for name, x in (("pynn", ours), ("torch", theirs)):
        np.testing.assert_allclose(x.std(), s, rtol=_std_tol(x.size), err_msg=name)
        assert abs(x.mean()) < 5 * s / math.sqrt(x.size), name


@pytest.mark.parametrize("shape", [(3, 5), (5, 3), (4, 4), (4, 2, 3)])
@pytest.mark.parametrize("gain", [1.0, 2.5])
def test_orthogonal(shape, gain):
    w = init.orthogonal_(Tensor(np.zeros(shape), dtype="float64"), gain=gain).numpy()
    t = torch.nn.init.orthogonal_(torch.empty(shape, dtype=torch.float64), gain=gain).numpy()
    for x in (w, t):
        m = x.reshape(shape[0], -1)
        small = m @ m.T if m.shape[0] <= m.shape[1] else m.T @ m
        np.testing.assert_allclose(small, gain ** 2 * np.eye(min(m.shape)), atol=1e-12)


def test_simple_fills_in_place_keep_the_dtype():
    for dtype in (np.float32, np.float64):
        t = Tensor(np.full((50, 40), 7.0), dtype=dtype, requires_grad=True)
        data = t.data
        assert init.zeros_(t) is t and t.data is data and t.dtype == dtype
        assert (t.numpy() == 0).all()
        assert (init.ones_(t).numpy() == 1).all()
        assert (init.constant_(t, 0.25).numpy() == 0.25).all()
        u = init.uniform_(t, -2.0, 3.0).numpy()
        assert u.min() >= -2.0 and u.max() < 3.0 and u.max() - u.min() > 4.9
        n = init.normal_(t, 1.0, 0.1).numpy()
        assert abs(n.mean() - 1.0) < 0.01 and abs(n.std() - 0.1) < 0.01
        assert t.dtype == dtype and t.data is data and t.requires_grad
        torch_u = torch.nn.init.uniform_(torch.empty(2000))
        assert 0.0 <= torch_u.min() and torch_u.max() < 1.0       # same default range as ours
        ours_u = init.uniform_(Tensor(np.zeros(2000))).numpy()
        assert 0.0 <= ours_u.min() and ours_u.max() < 1.0


def test_seeded():
    pynn.manual_seed(11)
    a = init.kaiming_uniform_(Tensor.empty(5, 4)).numpy().copy()
    pynn.manual_seed(11)
    np.testing.assert_array_equal(a, init.kaiming_uniform_(Tensor.empty(5, 4)).numpy())


def test_fan_errors_name_the_initializer():
    with pytest.raises(ValueError, match="xavier_uniform_.*at least 2 dims"):
        init.xavier_uniform_(Tensor.zeros(5))
    with pytest.raises(ValueError, match="mode"):
        init.kaiming_normal_(Tensor.zeros(5, 3), mode="fan_avg")


def test_get_by_name():
    assert init.get("glorot_uniform") is init.xavier_uniform_
    assert init.get("xavier_uniform_") is init.xavier_uniform_
    assert init.get("Glorot_Normal") is init.xavier_normal_
    assert init.get("zeros") is init.zeros_
    assert init.get("kaiming_normal") is init.kaiming_normal_
    fn = lambda t: init.constant_(t, 3.0)            # noqa: E731
    assert init.get(fn) is fn
    w = Tensor.zeros(300, 200)
    init.get("he_normal")(w)
    np.testing.assert_allclose(w.numpy().std(), math.sqrt(2 / 200), rtol=_std_tol(w.numel()))
    init.get("he_uniform")(w)
    assert np.abs(w.numpy()).max() <= math.sqrt(6 / 200)
    init.get("lecun_normal")(w)
    np.testing.assert_allclose(w.numpy().std(), math.sqrt(1 / 200), rtol=_std_tol(w.numel()))
    init.get("lecun_uniform")(w)
    assert np.abs(w.numpy()).max() <= math.sqrt(3 / 200)
    init.get("random_uniform")(w)
    assert np.abs(w.numpy()).max() <= 0.05
    with pytest.raises(ValueError, match="unknown initializer 'glorot'"):
        init.get("glorot")
    with pytest.raises(TypeError):
        init.get(3)


def test_dense_initializers_by_name_and_function():
    layer = Dense(200, 300, kernel_initializer="zeros", bias_initializer="ones")
    assert (layer.weight.numpy() == 0).all() and (layer.bias.numpy() == 1).all()
    layer = Dense(200, 300, kernel_initializer="he_normal", bias_initializer="zeros")
    np.testing.assert_allclose(layer.weight.numpy().std(), math.sqrt(2 / 200),
                               rtol=_std_tol(layer.weight.numel()))
    assert (layer.bias.numpy() == 0).all() and layer.weight.dtype == np.float32
    layer = Dense(4, 3, kernel_initializer=lambda t: init.constant_(t, 0.5), bias=False)
    assert (layer.weight.numpy() == 0.5).all() and layer.bias is None
    x = Tensor(np.ones((2, 4)))
    np.testing.assert_allclose(layer(x).numpy(), np.full((2, 3), 2.0))
    with pytest.raises(ValueError, match="unknown initializer"):
        Dense(4, 3, kernel_initializer="nope")
    # the default stays torch's initialisation (and a given None changes nothing)
    pynn.manual_seed(3)
    a = Dense(6, 5).weight.numpy().copy()
    pynn.manual_seed(3)
    np.testing.assert_array_equal(a, Dense(6, 5, kernel_initializer=None).weight.numpy())
