"""The Tensor API and the semantics of backward: creation and dtypes, attributes, repr, error
messages, gradient accumulation, retain_graph, long chains, grad modes, zero_grad, seeding, and
the synapgrad program against PyTorch."""
import sys

import numpy as np
import pytest
import torch
from helpers import assert_close

import pynn
from pynn import Tensor


# -- creation and dtypes ----------------------------------------------------------------------
def test_float32_by_default():
    assert Tensor([1.0, 2.0]).dtype == np.float32
    assert Tensor(1.5).dtype == np.float32
    assert Tensor(np.arange(3.0)).dtype == np.float32          # float64 array -> float32
    assert Tensor([[1, 2.5]]).dtype == np.float32
    assert pynn.tensor([1.0]).dtype == np.float32
    assert Tensor.from_values([0.5, 1.0]).dtype == np.float32


def test_float64_on_request():
    assert Tensor([1.0], dtype="float64").dtype == np.float64
    assert Tensor([1.0], dtype=np.float64).dtype == np.float64
    assert Tensor([1.0], dtype=pynn.float64).dtype == np.float64
    assert pynn.tensor(np.arange(3.0), dtype="float64").dtype == np.float64
    assert Tensor(np.arange(3.0), dtype="float64").astype("float32").dtype == np.float32
    assert Tensor([1.0]).double().dtype == np.float64
    assert Tensor([1.0], dtype="float64").float().dtype == np.float32


def test_integer_and_bool_tensors():
    labels = Tensor([3, 1, 2])
    assert labels.dtype == np.int64
    assert Tensor(np.array([1, 2], dtype=np.int32)).dtype == np.int32
    assert Tensor([True, False]).dtype == np.bool_
    assert Tensor([1.7, 2.2]).long().dtype == np.int64
    w = Tensor([1.7, -2.2], requires_grad=True)
    for cast in (w.long(), w.astype("int64"), w.astype(bool), w > 0):
        assert not cast.requires_grad and cast.grad_fn is None
    assert Tensor.arange(5).dtype == np.int64
    assert Tensor.arange(0.0, 1.0, 0.25).dtype == np.float32
    with pytest.raises(RuntimeError, match="floating point"):
        Tensor([1, 2], requires_grad=True)
    with pytest.raises(TypeError, match="dtype"):
        Tensor(["a", "b"])


@pytest.mark.parametrize("expr", [
    lambda i, f, b: i + 1.5, lambda i, f, b: 1.5 - i, lambda i, f, b: i * f,
    lambda i, f, b: f * b, lambda i, f, b: b + f, lambda i, f, b: i / i, lambda i, f, b: i / 2,
    lambda i, f, b: i ** 0.5, lambda i, f, b: f ** i, lambda i, f, b: i + 1,
    lambda i, f, b: i.maximum(f), lambda i, f, b: f.minimum(i),
])
def test_integer_and_bool_operands_promote_like_pytorch(expr):
    """An integer or bool operand beside a float one takes the float's dtype (float32 stays
    float32), and integer true division gives float32, as in PyTorch."""
    i, f, b = np.array([1, 2, 3]), np.array([0.5, 1.5, -2.0], np.float32), np.array([1, 0, 1], bool)
    ours = expr(Tensor(i), Tensor(f), Tensor(b))
    theirs = expr(torch.from_numpy(i), torch.from_numpy(f), torch.from_numpy(b))
    assert str(ours.dtype) == str(theirs.dtype).removeprefix("torch."), (ours.dtype, theirs.dtype)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6)


def test_float_gradient_through_an_integer_operand_stays_float32():
    w = Tensor([0.5, 1.5, -2.0], requires_grad=True)
    (w * Tensor([1, 2, 3]) / Tensor([2, 2, 2])).sum().backward()
    assert w.grad.dtype == np.float32
    np.testing.assert_allclose(w.grad.numpy(), [0.5, 1.0, 1.5])


@pytest.mark.parametrize("make", [
    lambda **kw: Tensor.randn(2, 3, **kw),
    lambda **kw: Tensor.randn((2, 3), **kw),
    lambda **kw: Tensor.rand(2, 3, **kw),
    lambda **kw: Tensor.zeros(2, 3, **kw),
    lambda **kw: Tensor.ones((2, 3), **kw),
    lambda **kw: Tensor.full((2, 3), 7.0, **kw),
    lambda **kw: Tensor.eye(2, 3, **kw),
])
def test_factories_shape_and_dtype(make):
    t = make()
    assert t.shape == (2, 3) and t.dtype == np.float32 and not t.requires_grad
    assert make(dtype="float64").dtype == np.float64
    assert make(dtype=np.float64).dtype == np.float64
    assert make(requires_grad=True).requires_grad


def test_factory_values():
    np.testing.assert_array_equal(Tensor.full((2,), 7.0).numpy(), [7.0, 7.0])
    np.testing.assert_array_equal(Tensor.full(3, 1.5).numpy(), [1.5, 1.5, 1.5])
    np.testing.assert_array_equal(Tensor.eye(3).numpy(), np.eye(3))
    np.testing.assert_array_equal(Tensor.arange(2, 8, 2).numpy(), [2, 4, 6])
    r = Tensor.rand(1000)
    assert 0 <= r.numpy().min() and r.numpy().max() < 1
    assert Tensor.randn(64, 784).shape == (64, 784)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_like_factories_keep_dtype_and_shape(dtype):
    t = Tensor(np.ones((2, 3)), dtype=dtype)
    for like in (Tensor.zeros_like(t), Tensor.ones_like(t), Tensor.full_like(t, 2.0),
                 Tensor.randn_like(t), Tensor.rand_like(t)):
        assert like.shape == (2, 3) and like.dtype == np.dtype(dtype)
    assert Tensor.zeros_like(t, dtype="float64").dtype == np.float64
    assert Tensor.ones_like(t).numpy().sum() == 6
    assert Tensor.full_like(t, 2.0).numpy().sum() == 12


def test_from_numpy_shares_memory_and_keeps_dtype():
    a = np.arange(4.0)
    t = Tensor.from_numpy(a)
    assert t.dtype == np.float64
    a[0] = 42.0
    assert t.numpy()[0] == 42.0


def test_tensor_function_copies():
    a = np.arange(4.0, dtype=np.float32)
    t = pynn.tensor(a, requires_grad=True)
    a[0] = 42.0
    assert t.numpy()[0] == 0.0 and t.requires_grad


def test_arithmetic_dtype_rules():
    f32, f64, i64 = Tensor([1.0, 2.0]), Tensor([1.0, 2.0], dtype="float64"), Tensor([1, 2])
    assert (f32 + 1.5).dtype == np.float32 and (1.5 * f32).dtype == np.float32
    assert (f32 * 2).dtype == np.float32 and (2 ** f32).dtype == np.float32
    assert (f32 / 3).dtype == np.float32 and (f32 ** 2).dtype == np.float32
    assert (f64 + 1.5).dtype == np.float64 and (3.0 / f64).dtype == np.float64
    assert (i64 + 1).dtype == np.int64 and (i64 * 3).dtype == np.int64
    assert (f32 + f64).dtype == np.float64               # as torch: the wider float wins
    assert (f32 + np.arange(2)).dtype == np.float32      # an int array joins a float tensor
    assert (i64 + 0.5).dtype.kind == "f"


def test_float64_array_operand_keeps_precision():
    x = Tensor([1.0], dtype="float64")
    assert (x * np.array([0.1])).numpy()[0] == 0.1
    assert (np.array([0.1]) + x * 0).numpy()[0] == 0.1


# every op on float32 inputs: float32 forward values and float32 gradients at every step
FLOAT32_OPS = {
    "add": lambda x, y: x + y, "sub": lambda x, y: 1.5 - x, "mul": lambda x, y: x * y,
    "div": lambda x, y: x / (y.abs() + 1), "pow": lambda x, y: x.abs() ** 1.5,
    "rpow": lambda x, y: 2 ** x, "neg": lambda x, y: -x, "matmul": lambda x, y: x @ y.T,
    "exp": lambda x, y: x.exp(), "log": lambda x, y: (x.abs() + 1).log(),
    "sqrt": lambda x, y: (x.abs() + 1).sqrt(), "abs": lambda x, y: x.abs(),
    "sin": lambda x, y: x.sin(), "cos": lambda x, y: x.cos(), "tanh": lambda x, y: x.tanh(),
    "sigmoid": lambda x, y: x.sigmoid(), "relu": lambda x, y: x.relu(),
    "leaky_relu": lambda x, y: x.leaky_relu(0.1), "gelu": lambda x, y: x.gelu(),
    "softplus": lambda x, y: x.softplus(), "clip": lambda x, y: x.clip(-0.5, 0.5),
    "maximum": lambda x, y: x.maximum(y), "minimum": lambda x, y: x.minimum(0.2),
    "where": lambda x, y: pynn.where(x.numpy() > 0, x, y),
    "sum": lambda x, y: x.sum(1), "mean": lambda x, y: x.mean(), "amax": lambda x, y: x.amax(0),
    "amin": lambda x, y: x.amin(1), "var": lambda x, y: x.var(1), "std": lambda x, y: x.std(),
    "logsumexp": lambda x, y: x.logsumexp(1), "softmax": lambda x, y: x.softmax(1),
    "log_softmax": lambda x, y: x.log_softmax(0), "reshape": lambda x, y: x.reshape(-1),
    "permute": lambda x, y: x.T, "unsqueeze": lambda x, y: x.unsqueeze(1),
    "expand": lambda x, y: x[:1].expand(4, 5), "repeat": lambda x, y: x.repeat(2, 1),
    "pad": lambda x, y: x.pad((1, 1)), "stack": lambda x, y: Tensor.stack([x, y]),
    "concat": lambda x, y: Tensor.concat([x, y], 1), "getitem": lambda x, y: x[[0, 0, 2]],
    "mask": lambda x, y: x[x.numpy() > 0],
}


@pytest.mark.parametrize("name", list(FLOAT32_OPS))
def test_float32_stays_float32(name):
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((4, 5)), requires_grad=True)
    y = Tensor(rng.standard_normal((4, 5)), requires_grad=True)
    out = FLOAT32_OPS[name](x, y)
    assert out.dtype == np.float32, f"{name} forward gave {out.dtype}"
    # the op's own backward must hand float32 gradients on (no float64 creeping into the graph)
    g = np.ones(out.shape, np.float32)
    for gi in out.grad_fn.op.backward(g):
        assert gi is None or gi.dtype == np.float32, f"{name} backward gave {gi.dtype}"
    out.backward(g)
    assert x.grad.dtype == np.float32


# -- attributes and conversions -------------------------------------------------------------
def test_attributes():
    t = Tensor(np.arange(6.0).reshape(2, 3))
    assert isinstance(t.data, np.ndarray) and t.numpy() is t.data
    assert np.asarray(t) is t.data or np.shares_memory(np.asarray(t), t.data)
    assert np.asarray(t, dtype=np.float64).dtype == np.float64
    copy = np.array(t)                          # np.array copies, as for any array
    copy[0, 0] = 42.0
    assert t.numpy()[0, 0] == 0.0
    assert t.shape == (2, 3) and t.ndim == 2 and t.size() == (2, 3) and t.size(1) == 3
    assert t.numel() == 6 and len(t) == 2 and t.dim() == 2
    assert t.T.shape == (3, 2)
    assert Tensor([[2.5]]).item() == 2.5 and isinstance(Tensor(3).item(), int)
    assert t.tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    assert t.grad is None and t.grad_fn is None and t.is_leaf and not t.requires_grad
    w = Tensor([1.0, 2.0], requires_grad=True)
    (w * w).sum().backward()
    assert isinstance(w.grad, Tensor) and w.grad.shape == w.shape and w.grad.grad_fn is None


def test_grad_fn_names_and_leaves():
    x = Tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    assert not y.is_leaf and x.is_leaf and y.requires_grad
    assert y.grad_fn.name() == "MulBackward"
    assert "MulBackward" in repr(y.grad_fn)
    assert (x + 1).grad_fn.name() == "AddBackward"
    assert (x @ x).grad_fn.name() == "MatMulBackward"
    assert x.sum().grad_fn.name() == "SumBackward"
    assert x[0].grad_fn.name() == "GetItemBackward"
    assert y.grad_fn.next_functions[0][0] is None          # x is a leaf
    # ops on tensors that don't require grad record nothing
    z = Tensor([1.0]) * 2
    assert z.grad_fn is None and z.is_leaf and not z.requires_grad


def test_detach_and_astype():
    x = Tensor([1.0, 2.0], requires_grad=True)
    d = (x * 2).detach()
    assert d.grad_fn is None and not d.requires_grad
    (x * d).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 4.0])   # d counted as a constant
    y = x.astype("float64")
    assert y.dtype == np.float64 and y.requires_grad
    (y * 3).sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad.numpy(), [5.0, 7.0])


def test_repr_like_pytorch():
    assert repr(Tensor([1.0, 2.0, 3.0])) == "tensor([1., 2., 3.])"
    assert repr(Tensor([1, 2])) == "tensor([1, 2])"
    assert repr(Tensor(3.0)) == "tensor(3.)"
    assert repr(Tensor([1.0], requires_grad=True)) == "tensor([1.], requires_grad=True)"
    assert repr(Tensor([1.0], dtype="float64")) == "tensor([1.], dtype=float64)"
    x = Tensor([1.0, 2.0], requires_grad=True)
    assert repr(x * 2) == "tensor([2., 4.], grad_fn=<MulBackward>)"
    assert repr(Tensor([[1.0, 2.0], [3.0, 4.0]])) == "tensor([[1., 2.],\n        [3., 4.]])"


def test_ndarray_on_the_left():
    x = Tensor([1.0, 2.0], requires_grad=True)
    y = np.array([3.0, 4.0]) * x
    assert isinstance(y, Tensor) and y.requires_grad
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 4.0])


def test_comparisons_and_bool():
    x = Tensor([1.0, 2.0, 3.0])
    np.testing.assert_array_equal((x > 1.5).numpy(), [False, True, True])
    np.testing.assert_array_equal((x == 2).numpy(), [False, True, False])
    assert bool(Tensor([1.0]) > 0) and not bool(Tensor(0.0))
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(x > 1)


# -- error messages: name the op and the shapes ------------------------------------------------
def test_matmul_shape_error():
    a, b = Tensor.ones(2, 3), Tensor.ones(4, 5)
    with pytest.raises(ValueError) as e:
        a @ b
    msg = str(e.value)
    assert "matmul" in msg.lower() and "(2, 3)" in msg and "(4, 5)" in msg
    with pytest.raises(ValueError) as e:                 # batch dims that don't broadcast
        Tensor.ones(2, 3, 4) @ Tensor.ones(5, 4, 6)
    msg = str(e.value)
    assert "matmul" in msg.lower() and "(2, 3, 4)" in msg and "(5, 4, 6)" in msg
    with pytest.raises(ValueError, match="matmul"):
        Tensor.ones(3) @ Tensor(2.0)


def test_broadcast_error():
    for fn in (lambda a, b: a + b, lambda a, b: a * b, lambda a, b: b - a,
               lambda a, b: a.maximum(b)):
        with pytest.raises(ValueError) as e:
            fn(Tensor.ones(2, 3), Tensor.ones(4))
        msg = str(e.value)
        assert "(2, 3)" in msg and "(4,)" in msg
        assert any(name in msg for name in ("Add", "Mul", "Sub", "Maximum"))


def test_dim_out_of_range_error():
    x = Tensor.ones(2, 3)
    for name, call in [("sum", lambda: x.sum(2)), ("mean", lambda: x.mean(dim=(0, -3))),
                       ("softmax", lambda: x.softmax(5)), ("amax", lambda: x.amax(2)),
                       ("argmax", lambda: x.argmax(3)), ("transpose", lambda: x.transpose(0, 2)),
                       ("squeeze", lambda: x.squeeze(4)), ("unsqueeze", lambda: x.unsqueeze(4)),
                       ("var", lambda: x.var(2)), ("logsumexp", lambda: x.logsumexp(-3))]:
        with pytest.raises(IndexError) as e:
            call()
        msg = str(e.value)
        assert name in msg and "out of range" in msg and "(2, 3)" in msg, msg


def test_shape_op_errors():
    x = Tensor.ones(2, 3)
    with pytest.raises(ValueError, match=r"reshape.*\(2, 3\).*\(4, 2\)"):
        x.reshape(4, 2)
    with pytest.raises(ValueError, match=r"broadcast_to.*\(2, 3\).*\(4, 3\)"):
        x.broadcast_to(4, 3)
    with pytest.raises(ValueError, match=r"stack.*\(2, 3\).*\(3, 2\)"):
        Tensor.stack([x, Tensor.ones(3, 2)])
    with pytest.raises(ValueError, match=r"concat.*\(2, 3\).*\(3, 2\)"):
        Tensor.concat([x, Tensor.ones(3, 2)], dim=1)
    with pytest.raises(ValueError, match="permute"):
        x.permute(0, 0)
    with pytest.raises(IndexError, match=r"\(2, 3\)"):
        x[5]
    with pytest.raises(ValueError, match="split"):
        x.split([1, 1], dim=1)


def test_backward_errors():
    with pytest.raises(RuntimeError, match="does not require grad"):
        Tensor([1.0, 2.0]).sum().backward()
    x = Tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=r"scalar.*\(2,\)"):
        (x * 2).backward()
    with pytest.raises(RuntimeError, match=r"\(3,\).*\(2,\)"):
        (x * 2).backward(np.ones(3))
    with pytest.raises(RuntimeError, match="does not require grad"):
        Tensor([1.0]).retain_grad()


# -- backward semantics -------------------------------------------------------------------------
def test_gradients_accumulate_until_zeroed():
    x = Tensor([1.0, 2.0], requires_grad=True)
    (x * x).sum().backward()
    (x * 3).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [5.0, 7.0])
    loss = (x * x).sum()
    loss.zero_grad()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0])
    loss.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 4.0])


def test_backward_with_explicit_grad_and_on_a_leaf():
    x = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    (x * 2).backward(Tensor([1.0, 0.0, -1.0]))
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 0.0, -2.0])
    x.backward(np.ones(3))                       # a leaf: its gradient is the seed
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 1.0, -1.0])
    s = Tensor(2.0, requires_grad=True)
    s.backward()
    assert s.grad.item() == 1.0


def test_no_grad_flows_to_constants():
    x, c = Tensor([1.0, 2.0], requires_grad=True), Tensor([3.0, 4.0])
    (x * c).sum().backward()
    assert c.grad is None
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 4.0])


def test_diamond_graph():
    # `a` reaches the output directly and through `b`: both contributions must arrive before
    # `a` passes its gradient on (a topological order, not just any DFS order)
    x = Tensor([1.0, 2.0], requires_grad=True)
    a = x * 2
    b = a * 3
    (a + b).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [8.0, 8.0])
    x.grad = None
    a = x * 2                                    # the first backward freed the old graph
    b = a * 3
    (b + a).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [8.0, 8.0])


def test_many_paths_to_one_leaf():
    x = Tensor([0.5], dtype="float64", requires_grad=True)
    tx = torch.tensor([0.5], dtype=torch.float64, requires_grad=True)
    for v in (x, tx):
        h = [v]
        for _ in range(1, 8):                    # h_i depends on every earlier h_j
            h.append(sum(hj * (0.3 + 0.1 * j) for j, hj in enumerate(h)).sin())
        h[-1].sum().backward()
    assert_close("grad", x.grad, tx.grad, rtol=1e-12)


def test_retain_graph():
    x = Tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).exp().sum()
    y.backward(retain_graph=True)
    first = x.grad.numpy().copy()
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * first)
    with pytest.raises(RuntimeError, match="retain_graph") as e:
        y.backward()
    assert "Backward" in str(e.value)


def test_buffers_released_after_backward():
    x = Tensor(np.ones((100, 100)), requires_grad=True)
    y = x * x
    op = y.grad_fn.op
    assert hasattr(op, "a")
    y.sum().backward()
    assert not hasattr(op, "a") and not hasattr(op, "b")


def test_long_chain_does_not_recurse():
    limit = sys.getrecursionlimit()
    x = Tensor([1.0], dtype="float64", requires_grad=True)
    y = x
    for _ in range(20_000):
        y = y * 1.0001
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0001 ** 20_000], rtol=1e-9)
    y.zero_grad()
    assert x.grad.item() == 0.0
    del y                                        # freeing the chain must not recurse either
    assert sys.getrecursionlimit() == limit


def test_retain_grad_on_non_leaves():
    x = Tensor([1.0, 2.0], requires_grad=True)
    a = x * 3
    b = a * a
    a.retain_grad()
    b.sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [6.0, 12.0])
    assert b.grad is None and a.retains_grad and not b.retains_grad


def test_retain_grads_context():
    x = Tensor([1.0, 2.0], requires_grad=True)
    with pynn.retain_grads():
        a = x * 3
        b = a.exp()
    c = b.sum()
    c.backward()
    np.testing.assert_allclose(a.grad.numpy(), np.exp([3.0, 6.0]), rtol=1e-6)
    np.testing.assert_array_equal(b.grad.numpy(), [1.0, 1.0])
    assert c.grad is None                       # made outside the context


def test_no_grad_context_and_decorator():
    x = Tensor([1.0], requires_grad=True)
    with pynn.no_grad():
        y = x * 2
        assert not pynn.is_grad_enabled()
        with pynn.enable_grad():
            assert (x * 2).requires_grad
    assert not y.requires_grad and y.grad_fn is None and pynn.is_grad_enabled()

    @pynn.no_grad()
    def f(t):
        return t * 2

    assert not f(x).requires_grad and f.__name__ == "f"
    assert (x * 2).requires_grad

    @pynn.no_grad
    def g(t):
        return t * 2
    assert not g(x).requires_grad

    with pytest.raises(ZeroDivisionError):      # the mode comes back after an exception
        with pynn.no_grad():
            _ = 1 / 0
    assert pynn.is_grad_enabled()


def test_zero_grad_zeroes_the_whole_graph():
    w1 = Tensor([1.0, 2.0], requires_grad=True)
    w2 = Tensor([3.0], requires_grad=True)
    other = Tensor([5.0], requires_grad=True)
    h = (w1 * 2).retain_grad()
    loss = (h.sum() * w2).sum()
    (other * 2).sum().backward()
    loss.backward()
    assert w1.grad.numpy().any() and w2.grad.numpy().any() and h.grad.numpy().any()
    loss.zero_grad()
    for t in (w1, w2, h):
        np.testing.assert_array_equal(t.grad.numpy(), 0)
    assert other.grad.item() == 2.0              # not in loss's graph


def test_backward_after_zero_grad_walks_the_graph_as_it_is_then():
    # zero_grad() keeps its walk of the graph for the backward that follows; an in-place op
    # in between (here on the root itself: torch allows it) changes the graph, and backward
    # must then walk it again, or the gradient through the old root would be lost
    def grads(edit):
        w = Tensor([1.0, -2.0, 3.0], requires_grad=True)
        tw = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
        a, b = w * w, w * 3                  # a DAG: w reaches the loss along two paths
        loss = (a + b).sum() + a.sum()
        ta, tb = tw * tw, tw * 3
        tloss = (ta + tb).sum() + ta.sum()
        loss.zero_grad()
        if edit:
            loss *= 2
            tloss *= 2
        loss.backward()
        tloss.backward()
        return w.grad.numpy(), tw.grad.numpy()
    for edit in (False, True):
        ours, theirs = grads(edit)
        np.testing.assert_allclose(ours, theirs, rtol=1e-6)
    assert not np.allclose(grads(False)[0], grads(True)[0])

def test_manual_seed_reproducible():
    pynn.manual_seed(123)
    a, b = Tensor.randn(3, 4), Tensor.rand(5)
    pynn.manual_seed(123)
    np.testing.assert_array_equal(a.numpy(), Tensor.randn(3, 4).numpy())
    np.testing.assert_array_equal(b.numpy(), Tensor.rand(5).numpy())
    pynn.manual_seed(124)
    assert not np.array_equal(a.numpy(), Tensor.randn(3, 4).numpy())


def test_setitem():
    x = Tensor.zeros(3)
    x[1] = 2.0
    np.testing.assert_array_equal(x.numpy(), [0.0, 2.0, 0.0])
    w = Tensor.zeros(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="in-place"):
        w[0] = 1.0
    with pynn.no_grad():
        w[0] = 1.0
    assert w.numpy()[0] == 1.0


# -- the synapgrad program ------------------------------------------------------------------------
def _synapgrad(T, stack, concat, l1, l2, retain):
    a = T(l1, requires_grad=True).unsqueeze(0) ** 2
    retain(a)
    b = 2 ** T(l2, requires_grad=True).unsqueeze(0)
    c = T(4.0, requires_grad=True)
    out1 = stack((a.squeeze(), b.squeeze()))[0]
    out2 = concat((a * c, b), dim=1).transpose(0, 1)[0, :]
    out = out1 @ out2.view(3).unsqueeze(1)
    out.sum().backward()
    return a, c, out


L1 = [[-4.0, 0, 5.0], [6.3, 3.2, 1.3]]
L2 = [[2.0, 2, 3.0], [2.4, 1.7, 0.5]]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_synapgrad_program_retain_grad(dtype):
    tdt = getattr(torch, dtype)
    ta, tc, tout = _synapgrad(lambda v, requires_grad: torch.tensor(v, dtype=tdt,
                                                                    requires_grad=requires_grad),
                              torch.stack, torch.concat, L1, L2, lambda t: t.retain_grad())
    pa, pc, pout = _synapgrad(lambda v, requires_grad: Tensor(v, dtype=dtype,
                                                              requires_grad=requires_grad),
                              Tensor.stack, Tensor.concat, L1, L2, lambda t: t.retain_grad())
    rtol = 1e-6 if dtype == "float32" else 1e-12
    assert_close("out", pout, tout, rtol=rtol)
    assert_close("a.grad", pa.grad, ta.grad, rtol=rtol)
    assert_close("c.grad", pc.grad, tc.grad, rtol=rtol)


def test_synapgrad_program_retain_grads_context():
    ta, tc, _ = _synapgrad(lambda v, requires_grad: torch.tensor(v, requires_grad=requires_grad),
                           torch.stack, torch.concat, L1, L2, lambda t: t.retain_grad())
    with pynn.retain_grads():
        pa, pc, _ = _synapgrad(Tensor, Tensor.stack, Tensor.concat, L1, L2, lambda t: None)
    assert_close("a.grad", pa.grad, ta.grad, rtol=1e-6)
    assert_close("c.grad", pc.grad, tc.grad, rtol=1e-6)
