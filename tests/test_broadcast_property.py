"""Property-based tests: arithmetic over random broadcastable shapes, values and gradients
against expectations written directly in NumPy.

For c = f(a, b) seeded with an upstream gradient g of c's shape, the gradient of each input is
the elementwise partial derivative times g, summed over every axis broadcasting added or
stretched. `sum_to` below does that summation independently of pynn's own code.
"""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from pynn import Tensor

SETTINGS = settings(max_examples=60, deadline=None)
RTOL, ATOL = 1e-10, 1e-12        # both sides are float64 NumPy arithmetic: rounding only

# (forward, d/da, d/db) in NumPy
OPS = {
    "add": (np.add, lambda a, b: np.ones_like(a * b), lambda a, b: np.ones_like(a * b)),
    "sub": (np.subtract, lambda a, b: np.ones_like(a * b), lambda a, b: -np.ones_like(a * b)),
    "mul": (np.multiply, lambda a, b: b * np.ones_like(a), lambda a, b: a * np.ones_like(b)),
    "div": (np.divide, lambda a, b: 1 / b * np.ones_like(a), lambda a, b: -a / b ** 2),
    "pow": (np.power, lambda a, b: b * a ** (b - 1), lambda a, b: a ** b * np.log(a)),
}
APPLY = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b, "pow": lambda a, b: a ** b,
}


def sum_to(g, shape):
    """Sum `g` down to `shape` the way broadcasting stretched `shape` up to g.shape."""
    g = g.sum(axis=tuple(range(g.ndim - len(shape)))) if g.ndim > len(shape) else g
    for axis, n in enumerate(shape):
        if n == 1 and g.shape[axis] != 1:
            g = g.sum(axis=axis, keepdims=True)
    return g.reshape(shape)


values = st.floats(-3.0, 3.0, allow_nan=False, allow_infinity=False)
# divisors and exponents' bases: away from zero (and positive for pow)
nonzero = st.one_of(st.floats(0.25, 3.0), st.floats(-3.0, -0.25))
positive = st.floats(0.25, 3.0)
exponents = st.floats(-2.0, 2.0)


def _operands(name):
    a_el = positive if name == "pow" else values
    b_el = {"div": nonzero, "pow": exponents}.get(name, values)
    return a_el, b_el


@st.composite
def broadcast_case(draw, name):
    shapes = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4,
                                                    min_side=1, max_side=4))
    a_el, b_el = _operands(name)
    a = draw(hnp.arrays(np.float64, shapes.input_shapes[0], elements=a_el))
    b = draw(hnp.arrays(np.float64, shapes.input_shapes[1], elements=b_el))
    g = draw(hnp.arrays(np.float64, shapes.result_shape, elements=values))
    return a, b, g


def _check(name, a, b, g):
    fwd, da, db = OPS[name]
    ta = Tensor(a, dtype="float64", requires_grad=True)
    tb = Tensor(b, dtype="float64", requires_grad=True)
    out = APPLY[name](ta, tb)
    want = fwd(a, b)
    assert out.shape == want.shape and out.dtype == np.float64
    np.testing.assert_allclose(out.numpy(), want, rtol=RTOL, atol=ATOL)
    out.backward(g)
    assert ta.grad.shape == a.shape and tb.grad.shape == b.shape
    np.testing.assert_allclose(ta.grad.numpy(), sum_to(g * da(a, b), a.shape), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(tb.grad.numpy(), sum_to(g * db(a, b), b.shape), rtol=RTOL, atol=ATOL)


@SETTINGS
@given(st.data())
def test_add(data):
    _check("add", *data.draw(broadcast_case("add")))


@SETTINGS
@given(st.data())
def test_sub(data):
    _check("sub", *data.draw(broadcast_case("sub")))


@SETTINGS
@given(st.data())
def test_mul(data):
    _check("mul", *data.draw(broadcast_case("mul")))


@SETTINGS
@given(st.data())
def test_div(data):
    _check("div", *data.draw(broadcast_case("div")))


@SETTINGS
@given(st.data())
def test_pow_positive_bases(data):
    _check("pow", *data.draw(broadcast_case("pow")))


@SETTINGS
@given(name=st.sampled_from(sorted(OPS)), scalar_first=st.booleans(), data=st.data())
def test_python_scalar_on_either_side(name, scalar_first, data):
    shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=1, max_side=4))
    a_el, b_el = _operands(name)
    if scalar_first:     # scalar `a`, tensor `b`
        a = data.draw(a_el)
        b = data.draw(hnp.arrays(np.float64, shape, elements=b_el))
    else:
        a = data.draw(hnp.arrays(np.float64, shape, elements=a_el))
        b = data.draw(b_el)
    g = data.draw(hnp.arrays(np.float64, shape, elements=values))
    fwd, da, db = OPS[name]
    x = Tensor(b if scalar_first else a, dtype="float64", requires_grad=True)
    out = APPLY[name](a, x) if scalar_first else APPLY[name](x, b)
    assert out.shape == shape and out.dtype == np.float64
    np.testing.assert_allclose(out.numpy(), fwd(np.float64(a), np.float64(b)) * np.ones(shape),
                               rtol=RTOL, atol=ATOL)
    out.backward(g)
    partial = db if scalar_first else da
    want = g * partial(np.float64(a), np.float64(b)) * np.ones(shape)
    np.testing.assert_allclose(x.grad.numpy(), want, rtol=RTOL, atol=ATOL)
