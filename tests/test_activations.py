"""Activation functions, names and layers against PyTorch in float64 (values and gradients,
eagerly and inside a compiled Model, also at +-inf, NaN, 0 and the kinks), their
finite-difference gradients, and one definition of relu/sigmoid/tanh: the elementwise ops and
the bias + activation fused into Dense/Conv2d give bit-identical values and gradients."""
import numpy as np
import pytest
import torch
import torch.nn as tnn
import torch.nn.functional as F
from test_gradcheck import away_from_zero, gradcheck
from torch_helpers import check_layer

import pynn
from pynn import Tensor
from pynn import activations as A
from pynn.layers import (
    ELU,
    GELU,
    SELU,
    Conv2d,
    Dense,
    Hardsigmoid,
    Hardtanh,
    Mish,
    PReLU,
    SiLU,
    Softsign,
    Swish,
)

TORCH_CHECKED_OPS = {"Elu", "Selu", "Silu", "Mish", "Softsign", "Hardtanh", "Hardsigmoid",
                     "GeluTanh", "Prelu", "Relu", "Sigmoid", "Tanh"}
GRADCHECKED_OPS = {"Elu", "Selu", "Silu", "Mish", "Softsign", "Hardtanh", "Hardsigmoid",
                   "GeluTanh", "Prelu", "Relu", "Sigmoid", "Tanh"}

# name: (pynn function, torch function)
FUNCTIONS = {
    "elu": (A.elu, F.elu),
    "elu_alpha": (lambda x: A.elu(x, 0.3), lambda x: F.elu(x, 0.3)),
    "selu": (A.selu, F.selu),
    "silu": (A.silu, F.silu),
    "swish": (A.swish, F.silu),
    "mish": (A.mish, F.mish),
    "softsign": (A.softsign, F.softsign),
    "hardtanh": (A.hardtanh, F.hardtanh),
    "hardtanh_range": (lambda x: A.hardtanh(x, -0.5, 2.0), lambda x: F.hardtanh(x, -0.5, 2.0)),
    "hardsigmoid": (A.hardsigmoid, F.hardsigmoid),
    "gelu_tanh": (lambda x: A.gelu(x, approximate="tanh"),
                  lambda x: F.gelu(x, approximate="tanh")),
    "gelu": (A.gelu, F.gelu),
    "relu": (A.relu, torch.relu),
    "sigmoid": (A.sigmoid, torch.sigmoid),
    "tanh": (A.tanh, torch.tanh),
}

# values on both sides of every kink (0, +-1, -0.5, 2, +-3), the kinks themselves, large ones
KINKS = np.array([-40.0, -5.0, -3.0, -2.9, -1.0, -0.5, -0.3, 0.0, 0.3, 1.0, 2.0, 2.9, 3.0, 5.0,
                  40.0, 700.0, -700.0])
SPECIAL = np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, 1e300, -1e300, 1e-300])
# torch's hardsigmoid backward multiplies by 1/6 rounded to float32 (0.16666667163...), also in
# float64; pynn divides by 6. So its gradient agrees to float32 precision, not 1e-12.
GRAD_RTOL = {"hardsigmoid": 1e-7}
# torch's softsign is a composite (x / (1 + |x|)) whose autograd gives g/d - g*x*sign(x)/d^2:
# an infinite g makes that inf - inf = NaN at every x. pynn computes g / d^2 (inf for an
# infinite g at finite x), so those entries are left out of the comparison.
FINITE_G_ONLY = {"softsign"}


def _torch_value_and_grad(fn, x, g):
    xt = torch.tensor(x, requires_grad=True)
    y = fn(xt)
    y.backward(torch.from_numpy(g))
    return y.detach().numpy(), xt.grad.numpy()


def _pynn_value_and_grad(fn, x, g):
    xt = Tensor(x, requires_grad=True, dtype=np.float64)
    y = fn(xt)
    y.backward(g)
    return y.data, xt.grad.data


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_function_against_torch_including_kinks(name):
    ours, theirs = FUNCTIONS[name]
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.standard_normal(30) * 3, KINKS])
    g = rng.standard_normal(x.shape)
    y, gx = _pynn_value_and_grad(ours, x, g)
    y_t, gx_t = _torch_value_and_grad(theirs, x, g)
    # atol: tails such as 1 - tanh(40)^2, which is 0 or a few 1e-16 depending on the rounding
    np.testing.assert_allclose(y, y_t, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(gx, gx_t, rtol=GRAD_RTOL.get(name, 1e-12), atol=1e-15)


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_function_at_inf_and_nan_like_torch(name):
    """+-inf, NaN, signed zeros and huge values, with finite, zero, infinite and NaN upstream
    gradients: the same values, infinities and NaNs as PyTorch."""
    ours, theirs = FUNCTIONS[name]
    x = np.repeat(SPECIAL, 4)
    g = np.tile([1.0, 0.0, np.inf, np.nan], SPECIAL.size)
    with np.errstate(all="ignore"):
        y, gx = _pynn_value_and_grad(ours, x, g)
    y_t, gx_t = _torch_value_and_grad(theirs, x, g)
    if name in FINITE_G_ONLY:
        keep = ~np.isinf(g)
        gx, gx_t = gx[keep], gx_t[keep]
    np.testing.assert_allclose(y, y_t, rtol=1e-12, atol=1e-15, equal_nan=True)
    np.testing.assert_allclose(gx, gx_t, rtol=GRAD_RTOL.get(name, 1e-12), atol=1e-15,
                               equal_nan=True)


def test_hardsigmoid_gradient_is_exactly_g_over_6():
    x = np.array([-2.0, 0.0, 1.5])
    g = np.array([1.0, 3.0, -6.0])
    np.testing.assert_array_equal(_pynn_value_and_grad(A.hardsigmoid, x, g)[1], g / 6)


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_float32_stays_float32(name):
    y = FUNCTIONS[name][0](Tensor.randn(3, 4))
    assert y.dtype == np.float32


@pytest.mark.parametrize("name", ["elu", "selu", "silu", "mish", "softsign", "hardtanh",
                                  "hardsigmoid", "gelu_tanh", "relu", "sigmoid", "tanh"])
def test_gradcheck(name):
    ours = FUNCTIONS[name][0]
    x = away_from_zero(3, 5) * 2                  # +-[0.4, 4]: off the kinks at 0, +-1, +-3
    x = x[np.abs(np.abs(x) - 1) > 0.05].reshape(-1)
    x = x[np.abs(np.abs(x) - 3) > 0.05]
    gradcheck(ours, x)


def test_prelu_function_against_torch_and_gradcheck():
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((3, 4, 5)), rng.uniform(0.1, 0.5, 4)
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    g = rng.standard_normal(x.shape)
    F.prelu(xt, wt).backward(torch.from_numpy(g))
    xp, wp = Tensor(x, requires_grad=True), Tensor(w, requires_grad=True)
    xp, wp = Tensor(x, requires_grad=True, dtype=np.float64), Tensor(w, requires_grad=True,
                                                                     dtype=np.float64)
    y = A.prelu(xp, wp)
    y.backward(g)
    np.testing.assert_allclose(y.data, F.prelu(torch.tensor(x), torch.tensor(w)).numpy(),
                               rtol=1e-12)
    np.testing.assert_allclose(xp.grad.data, xt.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(wp.grad.data, wt.grad.numpy(), rtol=1e-12)
    x = away_from_zero(2, 4, 3)
    gradcheck(A.prelu, x, rng.uniform(0.1, 0.5, 4))
    gradcheck(A.prelu, x, np.array([0.3]))


# -- layers (eager and in a compiled Model) --------------------------------------------------
LAYERS = [
    (ELU, lambda: tnn.ELU(), {}),
    (ELU, lambda: tnn.ELU(0.5), {"alpha": 0.5}),
    (SELU, lambda: tnn.SELU(), {}),
    (SiLU, lambda: tnn.SiLU(), {}),
    (Swish, lambda: tnn.SiLU(), {}),
    (Mish, lambda: tnn.Mish(), {}),
    (Softsign, lambda: tnn.Softsign(), {}),
    (Hardtanh, lambda: tnn.Hardtanh(), {}),
    (Hardtanh, lambda: tnn.Hardtanh(-2.0, 0.5), {"min_val": -2.0, "max_val": 0.5}),
    (Hardsigmoid, lambda: tnn.Hardsigmoid(), {}),
    (GELU, lambda: tnn.GELU(), {}),
    (GELU, lambda: tnn.GELU("tanh"), {"approximate": "tanh"}),
]


@pytest.mark.parametrize("x_shape", [(4, 5), (2, 3, 4, 4)])
@pytest.mark.parametrize("cls, make_torch, kwargs", LAYERS,
                         ids=[f"{c.__name__}{k}" for c, _, k in LAYERS])
def test_activation_layers(cls, make_torch, kwargs, x_shape):
    x = np.random.default_rng(2).standard_normal(x_shape) * 3
    check_layer(cls(**kwargs), make_torch, x_shape, x=x)
    assert cls(**cls(**kwargs).config()).config() == cls(**kwargs).config()


@pytest.mark.parametrize("num, x_shape", [(1, (4, 5)), (3, (2, 3, 4, 4)), (5, (4, 5)),
                                          (1, (2, 3, 6))])
def test_prelu_layer(num, x_shape):
    pynn.manual_seed(0)
    layer = PReLU(num, init=0.2)
    layer.weight.data[...] = np.random.default_rng(3).uniform(0.05, 0.5, num)
    check_layer(layer, lambda: tnn.PReLU(num), x_shape, ["weight"])


def test_prelu_layer_defaults_and_errors():
    layer = PReLU()
    assert layer.weight.shape == (1,) and layer.weight.data[0] == np.float32(0.25)
    with pytest.raises(ValueError, match=r"PReLU\(4\) got input of shape \(2, 3\)"):
        PReLU(4)(Tensor.randn(2, 3))
    with pytest.raises(ValueError, match="PReLU: num_parameters"):
        PReLU(0)
    with pytest.raises(ValueError, match="Hardtanh: min_val"):
        Hardtanh(1, 0)
    with pytest.raises(ValueError, match="GELU: approximate"):
        GELU("erf")


class _Then(tnn.Module):
    def __init__(self, inner, fn):
        super().__init__()
        self.inner, self.fn = inner, fn

    def forward(self, x):
        return self.fn(self.inner(x))


NAMES = {"elu": F.elu, "selu": F.selu, "silu": F.silu, "swish": F.silu, "mish": F.mish,
         "softsign": F.softsign, "hardtanh": F.hardtanh, "hardsigmoid": F.hardsigmoid,
         "gelu_tanh": lambda y: F.gelu(y, approximate="tanh")}
INNER = {"weight": "inner.weight", "bias": "inner.bias"}


@pytest.mark.parametrize("name", list(NAMES))
def test_names_as_layer_activation(name):
    pynn.manual_seed(0)
    check_layer(Dense(6, 5, name), lambda: _Then(tnn.Linear(6, 5), NAMES[name]), (4, 6), INNER)
    check_layer(Conv2d(2, 3, 3, padding="same", activation=getattr(A, name)),
                lambda: _Then(tnn.Conv2d(2, 3, 3, padding="same"), NAMES[name]), (2, 2, 5, 5),
                INNER)


def test_tensor_methods():
    x = Tensor([-2.0, 0.5, 4.0])
    np.testing.assert_allclose(x.elu(0.5).data, F.elu(torch.tensor(x.data), 0.5).numpy())
    np.testing.assert_array_equal(x.swish().data, x.silu().data)
    np.testing.assert_allclose(x.hardtanh(-1, 2).data, [-1.0, 0.5, 2.0])
    with pytest.raises(ValueError, match="gelu: approximate"):
        x.gelu("erf")


# -- one definition of relu / sigmoid / tanh --------------------------------------------------
FUSED = ["relu", "sigmoid", "tanh"]
VALUES = np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, 1e300, -1e300, 1e-300, 30.0, -30.0,
                   800.0, -800.0, 0.5, -0.5, 2.0])
GRADS = np.array([1.0, 0.0, np.inf, -np.inf, np.nan, 1e300, -2.5])


def _grid(dtype):
    with np.errstate(over="ignore"):             # 1e300 becomes inf in float32
        x = np.repeat(VALUES, GRADS.size).astype(dtype)
        g = np.tile(GRADS, VALUES.size).astype(dtype)
    return x, g


def _unfused(act, x, g):
    xt = Tensor(x, requires_grad=True, dtype=x.dtype)
    y = getattr(xt, act)()
    y.backward(g)
    return y.data, xt.grad.data


def _fused_dense(act, x, g):
    """Dense(1, 1) with weight 1 and bias 0: z = x * 1 + 0 = x exactly, gx = gz * 1."""
    layer = Dense(1, 1, act)
    layer.weight.data = np.ones((1, 1), x.dtype)
    layer.bias.data = np.zeros(1, x.dtype)
    xt = Tensor(x.reshape(-1, 1), requires_grad=True, dtype=x.dtype)
    y = layer(xt)
    y.backward(g.reshape(-1, 1))
    return y.data.reshape(-1), xt.grad.data.reshape(-1)


def _fused_conv(act, x, g):
    """Conv2d(1, 1, 1) with weight 1 and bias 0 on an image of one row: the conv kernels."""
    layer = Conv2d(1, 1, 1, activation=act)
    layer.weight.data = np.ones((1, 1, 1, 1), x.dtype)
    layer.bias.data = np.zeros(1, x.dtype)
    xt = Tensor(x.reshape(1, 1, 1, -1), requires_grad=True, dtype=x.dtype)
    y = layer(xt)
    y.backward(g.reshape(1, 1, 1, -1))
    return y.data.reshape(-1), xt.grad.data.reshape(-1)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("act", FUSED)
def test_fused_and_elementwise_activations_agree_exactly(act, dtype):
    x, g = _grid(dtype)
    with np.errstate(all="ignore"):
        y, gx = _unfused(act, x, g)
        for fused in (_fused_dense, _fused_conv):
            y_f, gx_f = fused(act, x, g)
            np.testing.assert_array_equal(y_f, y, err_msg=f"{fused.__name__} value")
            np.testing.assert_array_equal(gx_f, gx, err_msg=f"{fused.__name__} gradient")
    y_t, gx_t = _torch_value_and_grad(getattr(torch, act), x, g)     # torch in the same dtype
    rtol = 1e-6 if dtype == np.float32 else 1e-15      # exp/tanh may round differently
    np.testing.assert_allclose(y, y_t, rtol=rtol, atol=0, equal_nan=True)
    np.testing.assert_allclose(gx, gx_t, rtol=rtol, atol=0, equal_nan=True)
