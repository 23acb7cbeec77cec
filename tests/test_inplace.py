"""In-place updates as in PyTorch: x += y keeps the tensor and its buffer, bumps `_version`, and
backward() refuses to use a value that was changed after an op saved it."""
import numpy as np
import pytest
import torch

import pynn
from pynn import Input, Model, Tensor
from pynn.activations import relu
from pynn.layers import Dense
from pynn.optimizers import SGD

LEAF_ERROR = "a leaf Variable that requires grad is being used in an in-place operation."
MODIFIED = "modified by an inplace operation"


def _pair(values, requires_grad=False):
    values = np.asarray(values, dtype=np.float64)
    return (Tensor(values, requires_grad=requires_grad, dtype=np.float64),
            torch.tensor(values, requires_grad=requires_grad))


@pytest.mark.parametrize("op", ["+=", "-=", "*=", "/="])
def test_augmented_assignment_keeps_the_object_and_the_buffer(op):
    x, tx = _pair([1.0, -2.0, 3.0])
    y, ty = _pair([0.5, 4.0, -1.5])
    obj, buf = x, x.data
    ns = {"x": x, "y": y, "tx": tx, "ty": ty}
    exec(f"x {op} y\ntx {op} ty\nx {op} 2\ntx {op} 2", ns)
    assert ns["x"] is obj and ns["x"].data is buf and obj._version == 2
    np.testing.assert_allclose(obj.numpy(), ns["tx"].numpy(), rtol=1e-15)


def test_methods_match_torch():
    cases = [("add_", (Tensor([1.0, 2.0, 3.0]),), {"alpha": 2}),
             ("sub_", (Tensor([1.0, 2.0, 3.0]),), {"alpha": 0.5}),
             ("mul_", (3.0,), {}), ("div_", (Tensor([2.0, 4.0, 8.0]),), {}),
             ("clamp_", (), {"min": -1.0, "max": 1.5}), ("clip_", (), {"min": 0.0}),
             ("zero_", (), {}), ("fill_", (7.0,), {}), ("copy_", (Tensor([9.0, 8.0, 7.0]),), {})]
    for name, args, kwargs in cases:
        x, tx = _pair([0.5, -2.0, 3.0])
        buf, before = x.data, x._version
        out = getattr(x, name)(*args, **kwargs)
        targs = [torch.tensor(a.numpy(), dtype=torch.float64) if isinstance(a, Tensor) else a
                 for a in args]
        getattr(tx, name)(*targs, **kwargs)
        assert out is x and x.data is buf and x._version == before + 1, name
        np.testing.assert_allclose(x.numpy(), tx.numpy(), rtol=1e-15, err_msg=name)


def test_copy_broadcasts_and_casts_like_torch():
    x = Tensor.zeros(2, 3, dtype=np.int64)
    x.copy_(Tensor([1.7, -2.2, 3.9]))
    tx = torch.zeros(2, 3, dtype=torch.int64).copy_(torch.tensor([1.7, -2.2, 3.9]))
    np.testing.assert_array_equal(x.numpy(), tx.numpy())
    with pytest.raises(RuntimeError, match="copy_"):
        x.copy_(Tensor.ones(4))


def test_in_place_errors_follow_torch():
    w = Tensor.zeros(3, requires_grad=True)
    tw = torch.zeros(3, requires_grad=True)
    for fn in (lambda t: t.__iadd__(1.0), lambda t: t.mul_(2.0), lambda t: t.zero_(),
               lambda t: t.__setitem__(0, 1.0), lambda t: t.clamp_(0, 1)):
        with pytest.raises(RuntimeError) as e:
            fn(w)
        with pytest.raises(RuntimeError) as te:
            fn(tw)
        assert str(e.value) == LEAF_ERROR
        assert "leaf Variable that requires grad is being used in an in-place" in str(te.value)
    assert w._version == 0
    with pynn.no_grad():                    # allowed under no_grad, as in torch
        w += 1.0
        w[0] = 5.0
    np.testing.assert_array_equal(w.numpy(), [5.0, 1.0, 1.0])
    assert w._version == 2
    labels = Tensor([1, 2, 3])
    with pytest.raises(RuntimeError, match="result type float32 can't be cast to the desired "
                                           "output type int64"):
        labels += 0.5
    labels += 1                              # int + int stays in place
    np.testing.assert_array_equal(labels.numpy(), [2, 3, 4])
    with pytest.raises(RuntimeError, match=r"output with shape \(3,\) doesn't match the "
                                           r"broadcast shape \(2, 3\)"):
        Tensor.zeros(3).add_(Tensor.ones(2, 3))


def _mlp_data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(32, 4))
    y = (x[:, :1] * x[:, 1:2] > 0).astype(np.float64)
    w1, b1 = rng.normal(size=(4, 16)) * 0.5, np.zeros(16)
    w2, b2 = rng.normal(size=(16, 1)) * 0.5, np.zeros(1)
    return x, y, [w1, b1, w2, b2]


def test_micrograd_loop_trains_like_torch():
    """`with no_grad(): for p in params: p -= lr * p.grad` updates the weights in place."""
    x, y, init = _mlp_data()
    params = [Tensor(a, requires_grad=True, dtype=np.float64) for a in init]
    tparams = [torch.tensor(a, requires_grad=True) for a in init]
    X, Y, tX, tY = Tensor(x, dtype=np.float64), Tensor(y, dtype=np.float64), *map(torch.tensor,
                                                                                  (x, y))
    losses, tlosses = [], []
    for _ in range(30):
        w1, b1, w2, b2 = params
        loss = (((X @ w1 + b1).relu() @ w2 + b2 - Y) ** 2).mean()
        for p in params:
            p.grad = None
        loss.backward()
        with pynn.no_grad():
            for p in params:
                p -= 0.1 * p.grad
        losses.append(loss.item())

        w1, b1, w2, b2 = tparams
        tloss = (((tX @ w1 + b1).relu() @ w2 + b2 - tY) ** 2).mean()
        for p in tparams:
            p.grad = None
        tloss.backward()
        with torch.no_grad():
            for p in tparams:
                p -= 0.1 * p.grad
        tlosses.append(tloss.item())
    np.testing.assert_allclose(losses, tlosses, rtol=1e-10)
    assert losses[-1] < 0.5 * losses[0]
    for p, tp in zip(params, tparams):
        np.testing.assert_allclose(p.numpy(), tp.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_compiled_model_follows_weights_updated_in_place():
    """The plan reads the parameters' arrays at every call: in-place updates under no_grad are
    what the next call computes with (same numbers as the eager loop in torch)."""
    x, y, init = _mlp_data(1)
    x_in = Input((4,), dtype=np.float64)
    d1, d2 = Dense(4, 16, relu), Dense(16, 1)
    model = Model(x_in, d2(d1(x_in)))
    for layer, (w, b) in ((d1, init[:2]), (d2, init[2:])):
        layer.weight.data = np.ascontiguousarray(w.T)     # float64, torch layout (out, in)
        layer.bias.data = b.copy()
    tparams = [torch.tensor(a, requires_grad=True) for a in init]
    tX, tY = torch.tensor(x), torch.tensor(y)
    for _ in range(20):
        loss = ((model(x) - Tensor(y, dtype=np.float64)) ** 2).mean()
        model.zero_grad()
        loss.backward()
        with pynn.no_grad():
            for p in model.parameters:
                p -= 0.2 * p.grad
        w1, b1, w2, b2 = tparams
        tloss = (((tX @ w1 + b1).relu() @ w2 + b2 - tY) ** 2).mean()
        for p in tparams:
            p.grad = None
        tloss.backward()
        with torch.no_grad():
            for p in tparams:
                p -= 0.2 * p.grad
        np.testing.assert_allclose(loss.item(), tloss.item(), rtol=1e-10)


def test_changed_saved_input_is_refused_at_backward():
    w, tw = _pair([1.0, 2.0, 3.0], requires_grad=True)
    y, ty = (w * w).sum(), (tw * tw).sum()
    with pynn.no_grad():
        w -= 1.0
    with torch.no_grad():
        tw -= 1.0
    with pytest.raises(RuntimeError, match=MODIFIED) as e:
        y.backward()
    with pytest.raises(RuntimeError, match=MODIFIED):
        ty.backward()
    assert "MulBackward" in str(e.value) and "version 1; expected version 0" in str(e.value)


def test_optimizer_step_between_forward_and_backward_is_refused():
    w = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    opt = SGD([w], lr=0.1)
    (w * w).sum().backward()
    loss = (w * w).sum()
    opt.step()                                  # changes w in place: loss's graph is stale
    with pytest.raises(RuntimeError, match=MODIFIED):
        loss.backward()


def test_changed_output_that_the_op_saved_is_refused():
    x, tx = _pair([0.1, 0.2], requires_grad=True)
    e, te = x.exp(), tx.exp()
    with pynn.no_grad():
        e += 1
    with torch.no_grad():
        te += 1
    with pytest.raises(RuntimeError, match="the output of ExpBackward"):
        e.sum().backward()
    with pytest.raises(RuntimeError, match=MODIFIED):
        te.sum().backward()


def test_conv_input_changed_before_a_backward_that_unfolds_it_again_is_refused(monkeypatch):
    """A Conv2d whose cols are too big to keep reads its input again in backward: changing the
    input in place first is refused, as torch refuses it; with the cols kept it is fine."""
    from pynn.layers import Conv2d
    conv = Conv2d(2, 3, 3, padding=1)
    for recompute, fails in ((1 << 40, False), (0, True)):
        monkeypatch.setattr(pynn.ops.nn.Conv2d, "RECOMPUTE_BYTES", recompute)
        x = Tensor(np.ones((2, 2, 5, 5), np.float32), requires_grad=True)
        h = x * 2
        y = conv(h).sum()
        with pynn.no_grad():
            h += 1
        if fails:
            with pytest.raises(RuntimeError, match=MODIFIED):
                y.backward()
        else:
            y.backward()
            assert conv.weight.grad is not None


def test_changed_input_that_the_op_did_not_save_is_fine():
    w, tw = _pair([1.0, 2.0, 3.0], requires_grad=True)
    y, ty = (w + 1).sum(), (tw + 1).sum()
    with pynn.no_grad():
        w *= 2
    with torch.no_grad():
        tw *= 2
    y.backward()
    ty.backward()
    np.testing.assert_array_equal(w.grad.numpy(), tw.grad.numpy())


def test_in_place_on_a_graph_tensor_is_recorded_like_torch():
    x, tx = _pair([0.5, -1.0, 2.0], requires_grad=True)
    c, tc = _pair([3.0, 1.0, -2.0], requires_grad=True)
    outs = []
    for a, b in ((x, c), (tx, tc)):
        h = a * 2
        h += b
        h *= a
        h -= 1
        h /= b
        h.clamp_(-5, 5)
        (h * h).sum().backward()
        outs.append(h)
    np.testing.assert_allclose(outs[0].numpy(), outs[1].detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(c.grad.numpy(), tc.grad.numpy(), rtol=1e-12)
    assert outs[0].grad_fn.name() == "ClipBackward" and outs[0]._version == 5


def test_in_place_accumulation_into_a_plain_tensor_joins_the_graph():
    w, tw = _pair([1.0, 2.0], requires_grad=True)
    acc, tacc = Tensor.zeros(2, dtype=np.float64), torch.zeros(2, dtype=torch.float64)
    for _ in range(3):
        acc += w * w
        tacc += tw * tw
    assert acc.requires_grad and tacc.requires_grad
    acc.sum().backward()
    tacc.sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), tw.grad.numpy())


def test_in_place_after_another_op_used_the_old_value_is_refused():
    """A limitation: pynn's graph links tensors, so once `y += 1` gave y a new history, an op
    recorded earlier on y cannot backprop (torch can when that op saved nothing). It raises
    instead of returning a wrong gradient."""
    x = Tensor([1.0, 2.0], requires_grad=True)
    y = x * 3
    z = y * y                              # saved y
    s = y.sum()                            # saved nothing
    y += 1
    with pytest.raises(RuntimeError, match="input #0 of MulBackward"):
        z.sum().backward()
    with pytest.raises(RuntimeError, match="input #0 of SumBackward"):
        s.backward()
    y.sum().backward()                     # the new history itself is fine
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 3.0])


def test_in_place_on_symbolic_tensors_is_refused():
    x_in = Input((3,))
    h = Dense(3, 3)(x_in)
    with pytest.raises(RuntimeError, match="symbolic"):
        h += 1


def test_in_place_drops_the_softmax_shortcut():
    """categorical_cross_entropy reads the logits behind a softmax output: after an in-place
    change the probabilities are not that softmax any more."""
    from pynn.losses import categorical_cross_entropy
    z = Tensor([[1.0, 2.0, 0.5]], dtype=np.float64)
    p = z.softmax(1)
    with pynn.no_grad():
        p *= 0.5
    loss = categorical_cross_entropy(p, np.array([1]))
    np.testing.assert_allclose(loss.item(), -np.log(0.5 * np.exp(2) / np.exp([1, 2, 0.5]).sum()))
