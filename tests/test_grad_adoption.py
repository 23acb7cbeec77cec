"""A leaf's first gradient may be the op's own buffer, adopted without a copy
(autograd._adoptable): it must then alias nothing else, and every gradient must still equal
torch's, through shared inputs, retained graphs, accumulation and compiled Models."""
import numpy as np
import torch

import pynn
from pynn import Input, Model, Tensor
from pynn.layers import Dense


def _pair(shape, seed):
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    return Tensor(x.copy(), requires_grad=True), torch.tensor(x, requires_grad=True)


def _shares(a, arrays):
    return any(np.may_share_memory(a, b) for b in arrays)


def test_matmul_grads_are_adopted_and_alias_nothing():
    (w, tw), (b, tb) = _pair((5, 3), 0), _pair((3,), 1)
    x = np.random.default_rng(2).standard_normal((4, 5)).astype(np.float32)
    y = Tensor(x) @ w + b
    (y * y).sum().backward()
    ty = torch.from_numpy(x) @ tw + tb
    (ty * ty).sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), tw.grad.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b.grad.numpy(), tb.grad.numpy(), rtol=1e-5, atol=1e-6)
    assert not _shares(w.grad.data, [b.grad.data, w.data, b.data, y.data, x])


def test_one_gradient_for_two_leaves_is_not_shared():
    """a + b hands the same array to both inputs: neither may keep it."""
    (a, _), (b, _) = _pair((3, 4), 3), _pair((3, 4), 4)
    ((a + b) * 2).sum().backward()
    assert not np.may_share_memory(a.grad.data, b.grad.data)
    a.grad.data += 1                                   # must not change b's
    np.testing.assert_array_equal(b.grad.numpy(), np.full((3, 4), 2, np.float32))


def test_a_leaf_used_twice_and_grads_accumulated_over_backwards_match_torch():
    (a, ta) = _pair((6,), 5)
    for _ in range(3):                                 # no zero_grad: the gradients add up
        (a * a * a).sum().backward()
        (ta * ta * ta).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), ta.grad.numpy(), rtol=1e-5)


def test_retain_graph_keeps_copies():
    """With retain_graph the ops keep their buffers for the next backward: the leaf's
    gradient must not be one of them (the second backward would overwrite it)."""
    (w, tw) = _pair((4, 4), 6)
    x = np.random.default_rng(7).standard_normal((2, 4)).astype(np.float32)
    loss = (Tensor(x) @ w).relu().sum()
    loss.backward(retain_graph=True)
    first = w.grad.numpy().copy()
    loss.backward()
    np.testing.assert_allclose(w.grad.numpy(), 2 * first, rtol=1e-6)


def test_compiled_model_parameters_get_their_own_gradient_arrays():
    """The plan reuses its buffers every step: a parameter's .grad must be a copy."""
    pynn.manual_seed(0)
    x_in = Input((3,))
    model = Model(x_in, Dense(3, 2)(x_in))
    x = np.ones((4, 3), np.float32)
    model(x).sum().backward()
    grads = [p.grad.numpy().copy() for p in model.parameters]
    model(2 * x).sum().backward()                      # adds a second, different gradient
    for p, g in zip(model.parameters, grads):
        assert not np.array_equal(p.grad.numpy(), g)
    model2_grads = [p.grad for p in model.parameters]
    model(x)                                           # a forward pass writes plan buffers
    for p, g in zip(model.parameters, model2_grads):
        assert p.grad is g
    np.testing.assert_allclose(model.parameters[0].grad.numpy(), 3 * grads[0], rtol=1e-6)


def test_a_square_hands_one_product_to_both_inputs_and_the_leaf_gets_their_sum():
    """x * x gives the same array (g * x) as both input gradients: the leaf's .grad is their
    sum, 2 g x, in an array of its own, eager and in a compiled Model (a loose op on an
    Input), and a second backward adds to it."""
    x, tx = _pair((3, 4), 5)
    for _ in range(2):
        y = x * x
        (y * 3).sum().backward()
        ty = tx * tx
        (ty * 3).sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-6)
        assert not _shares(x.grad.data, [x.data, y.data])
    x_in = Input((4,))
    model = Model(x_in, Dense(4, 2)(x_in * x_in))
    w = model.parameters[0]
    data = np.random.default_rng(6).standard_normal((3, 4)).astype(np.float32)
    xt = Tensor(data, requires_grad=True)
    model(xt).sum().backward()
    tw = torch.tensor(w.data.copy(), requires_grad=True)
    tb = torch.tensor(model.parameters[1].data.copy())
    txt = torch.tensor(data, requires_grad=True)
    torch.nn.functional.linear(txt * txt, tw, tb).sum().backward()
    np.testing.assert_allclose(xt.grad.numpy(), txt.grad.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(w.grad.numpy(), tw.grad.numpy(), rtol=1e-5, atol=1e-6)
