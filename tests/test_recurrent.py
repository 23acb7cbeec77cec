"""RNN / LSTM / GRU against torch.nn.RNN / LSTM / GRU in float64: outputs, final states and every
gradient (input, initial states, all weights), one- and two-layer, uni- and bidirectional,
eagerly and inside a compiled Model; the Keras form; finite differences on the ops; and the
compiled plan reusing its buffers across steps."""

import numpy as np
import pytest
import torch
from alloc_helpers import peak_bytes
from test_gradcheck import gradcheck
from torch_helpers import as_float64, close

import pynn
from pynn import Input, Model, Tensor
from pynn.layers import GRU, LSTM, RNN, Dense, SimpleRNN
from pynn.ops import recurrent as R
from pynn.tensor import apply

TORCH_CHECKED_OPS = {"LSTMSequence", "GRUSequence", "RNNSequence", "Narrow"}
GRADCHECKED_OPS = {"LSTMSequence", "GRUSequence", "RNNSequence", "Narrow"}

N, T, IN, H = 3, 5, 4, 6
KINDS = {"LSTM": (LSTM, torch.nn.LSTM, 2), "GRU": (GRU, torch.nn.GRU, 1),
         "RNN": (RNN, torch.nn.RNN, 1)}
CONFIGS = [  # num_layers, bidirectional, initial states, options
    (1, False, False, {}),
    (1, False, True, {}),
    (1, True, False, {}),
    (2, False, True, {}),
    (2, True, True, {}),
    (1, False, True, {"bias": False}),
]


def ours_state(s, k):
    """torch's (L*D, N, H) state -> ours: (N, H) when L*D == 1, else (N, L*D, H)."""
    s = np.swapaxes(s, 0, 1)
    return s[:, 0] if k == 1 else s


def make_pair(kind, layers, bidirectional, options, seed=0):
    cls, tcls, n_states = KINDS[kind]
    pynn.manual_seed(seed)
    layer = as_float64(cls(IN, H, num_layers=layers, bidirectional=bidirectional,
                           return_state=True, **options))
    module = tcls(IN, H, num_layers=layers, bidirectional=bidirectional, batch_first=True,
                  **options).double()
    with torch.no_grad():
        for name in layer.param_names:
            getattr(module, name).copy_(torch.from_numpy(getattr(layer, name).data.copy()))
    return layer, module, n_states


def torch_run(module, x, states, n_states, seeds):
    xt = torch.tensor(x, requires_grad=True)
    st = [torch.tensor(s, requires_grad=True) for s in states]
    if st:
        out, hs = module(xt, tuple(st) if n_states == 2 else st[0])
    else:
        out, hs = module(xt)
    hs = list(hs) if n_states == 2 else [hs]
    loss = sum((o * torch.from_numpy(s)).sum() for o, s in zip([out] + hs, seeds, strict=True))
    loss.backward()
    return xt, st, out, hs


@pytest.mark.parametrize("mode", ["eager", "model"])
@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"L{c[0]}-bi{int(c[1])}-h0{int(c[2])}"
                         f"{''.join(f'-{k}{v}' for k, v in c[3].items())}")
@pytest.mark.parametrize("kind", list(KINDS))
def test_against_torch(kind, config, mode):
    layers, bidirectional, initial, options = config
    layer, module, n_states = make_pair(kind, layers, bidirectional, options)
    k = layers * (2 if bidirectional else 1)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((N, T, IN))
    states = [rng.standard_normal((k, N, H)) for _ in range(n_states)] if initial else []
    out_shape = (N, T, H * (2 if bidirectional else 1))
    seeds = [rng.standard_normal(out_shape)] + [rng.standard_normal((k, N, H))
                                                for _ in range(n_states)]
    xt, st, out_t, hs_t = torch_run(module, x, states, n_states, seeds)

    xp = Tensor(x, requires_grad=True, dtype=np.float64)
    sp = [Tensor(ours_state(s, k), requires_grad=True, dtype=np.float64) for s in states]
    if mode == "eager":
        res = layer(xp, *sp)
    else:
        ins = [Input((T, IN), dtype=np.float64)] + [Input(s.shape[1:], dtype=np.float64)
                                                   for s in sp]
        model = Model(ins, list(layer(*ins)))
        res = model(xp, *sp)
    out, hs = res[0], res[1:]
    loss = (out * Tensor(seeds[0], dtype=np.float64)).sum()
    for h, s in zip(hs, seeds[1:], strict=True):
        loss = loss + (h * Tensor(ours_state(s, k), dtype=np.float64)).sum()
    loss.backward()
    close("output", out, out_t)
    for i, (h, ht) in enumerate(zip(hs, hs_t, strict=True)):
        close(f"state {i}", h, ours_state(ht.detach().numpy(), k))
    close("input grad", xp.grad, xt.grad)
    for i, (s, t) in enumerate(zip(sp, st, strict=True)):
        close(f"initial state {i} grad", s.grad, ours_state(t.grad.numpy(), k))
    for name in layer.param_names:
        close(f"grad of {name}", getattr(layer, name).grad, getattr(module, name).grad)


@pytest.mark.parametrize("kind,options", [("LSTM", {}), ("GRU", {}), ("RNN", {}),
                                          ("RNN", {"nonlinearity": "relu"})])
@pytest.mark.parametrize("time_loop", ["one kernel (BLAS from Numba)", "python (NumPy's product)"])
def test_float32_split_batch_against_torch(kind, options, time_loop, monkeypatch):
    """float32, a batch big enough to be split across the threads, reversed and initial states:
    the float32 exp and tanh (pynn.kernels.vecmath) and both time loops (the whole loop in one
    kernel calling BLAS, and the Python loop used where that BLAS is not found) give torch's
    outputs and gradients to float32 rounding, for each recurrent layer."""
    if time_loop.startswith("python"):
        monkeypatch.setattr(R, "gemm_for", lambda dtype: None)
    gates = {"LSTM": 4, "GRU": 3, "RNN": 1}[kind]
    n, t, f, h = 64, 36 // gates, 5, 32          # (as much work per step and row each)
    threads = pynn.get_num_threads()
    pynn.set_num_threads(2)
    try:
        _float32_against_torch(kind, options, n, t, f, h)
    finally:
        pynn.set_num_threads(threads)


def _float32_against_torch(kind, options, n, t, f, h):
    cls, tcls, n_states = KINDS[kind]
    pynn.manual_seed(3)
    layer = cls(f, h, bidirectional=True, **options)
    module = tcls(f, h, batch_first=True, bidirectional=True, **options)
    with torch.no_grad():
        for name in layer.param_names:
            getattr(module, name).copy_(torch.from_numpy(getattr(layer, name).data.copy()))
    rng = np.random.default_rng(4)
    x = (2 * rng.standard_normal((n, t, f))).astype(np.float32)
    states = [rng.standard_normal((n, 2, h)).astype(np.float32) for _ in range(n_states)]
    seed = rng.standard_normal((n, t, 2 * h)).astype(np.float32)
    xp = Tensor(x, requires_grad=True)
    out = layer(xp, *states)
    (out * Tensor(seed)).sum().backward()
    xt = torch.tensor(x, requires_grad=True)
    tstates = tuple(torch.from_numpy(s.transpose(1, 0, 2).copy()) for s in states)
    out_t, _ = module(xt, tstates if n_states == 2 else tstates[0])
    (out_t * torch.from_numpy(seed)).sum().backward()
    assert out.data.dtype == np.float32
    from pynn.kernels.threads import blas_local_threads_available
    gates = {"LSTM": 4, "GRU": 3, "RNN": 1}[kind]
    assert R.slices(n, R.STEP_TOUCHES * n * t * gates * h) > 1 or not blas_local_threads_available()
    np.testing.assert_allclose(out.data, out_t.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(xp.grad.data, xt.grad.numpy(), rtol=1e-4, atol=1e-5)
    for name in layer.param_names:
        np.testing.assert_allclose(getattr(layer, name).grad.data,
                                   getattr(module, name).grad.numpy(), rtol=1e-4, atol=1e-4)


def test_rnn_relu_against_torch():
    layer, module, _ = make_pair("RNN", 2, True, {"nonlinearity": "relu"})
    rng = np.random.default_rng(2)
    x = rng.standard_normal((N, T, IN))
    g = [rng.standard_normal((N, T, 2 * H)), rng.standard_normal((4, N, H))]
    xt, _, out_t, hs_t = torch_run(module, x, [], 1, g)
    xp = Tensor(x, requires_grad=True, dtype=np.float64)
    out, h = layer(xp)
    ((out * Tensor(g[0], dtype=np.float64)).sum() +
     (h * Tensor(ours_state(g[1], 4), dtype=np.float64)).sum()).backward()
    close("output", out, out_t)
    close("h_n", h, ours_state(hs_t[0].detach().numpy(), 4))
    close("input grad", xp.grad, xt.grad)
    for name in layer.param_names:
        close(f"grad of {name}", getattr(layer, name).grad, getattr(module, name).grad)


@pytest.mark.parametrize("kind", list(KINDS))
def test_keras_form_infers_the_input_size_and_returns_the_last_step(kind):
    cls, tcls, _ = KINDS[kind]
    pynn.manual_seed(0)
    keras = cls(H)
    assert keras.param_names == () and keras.return_sequences is False
    x = np.random.default_rng(0).standard_normal((N, T, IN))
    x_in = Input((T, IN), dtype=np.float64)
    model = Model(x_in, keras(x_in))
    as_float64(keras)
    assert keras.input_size == IN and keras.weight_ih_l0.shape == (KINDS[kind][0].gates
                                                                              * H, IN)
    module = tcls(IN, H, batch_first=True).double()
    with torch.no_grad():
        for name in keras.param_names:
            getattr(module, name).copy_(torch.from_numpy(getattr(keras, name).data))
    close("last output", model(x), module(torch.tensor(x))[0][:, -1])
    torch_form = cls(IN, H)
    assert torch_form.return_sequences is True


def test_the_two_forms_and_their_errors():
    assert LSTM(8).hidden_size == 8 and LSTM(8).input_size is None
    assert LSTM(units=8).hidden_size == 8
    assert LSTM(4, 8).input_size == 4 and LSTM(input_size=4, hidden_size=8).hidden_size == 8
    assert SimpleRNN(5, activation="relu").op_options == {"nonlinearity": "relu"}
    with pytest.raises(ValueError, match="batch-first"):
        LSTM(4, 8, batch_first=False)
    with pytest.raises(ValueError, match="not both"):
        LSTM(4, 8, units=8)
    with pytest.raises(ValueError, match="nonlinearity"):
        RNN(4, 8, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match=r"LSTM\(4->8\).*\(2, 5, 3\)"):
        LSTM(4, 8)(Tensor.randn(2, 5, 3))
    with pytest.raises(ValueError, match="initial state of shape"):
        LSTM(4, 8)(Tensor.randn(2, 5, 4), Tensor.randn(2, 7), Tensor.randn(2, 8))


@pytest.mark.parametrize("kind", list(KINDS))
def test_an_unknown_keyword_is_refused(kind):
    """A misspelt or foreign option (Keras's go_backwards) is an error, not silently ignored."""
    with pytest.raises(TypeError, match="got an unexpected keyword argument 'go_backwards'"):
        KINDS[kind][0](4, 8, go_backwards=True)
    with pytest.raises(TypeError, match="nonlinearity"):
        LSTM(4, 8, nonlinearity="relu")


def test_initial_state_spellings_agree():
    pynn.manual_seed(0)
    lstm = LSTM(4, 3)
    x, h0, c0 = Tensor.randn(2, 5, 4), Tensor.randn(2, 3), Tensor.randn(2, 3)
    a = lstm(x, h0, c0).data
    np.testing.assert_array_equal(lstm(x, (h0, c0)).data, a)
    np.testing.assert_array_equal(lstm(x, initial_state=[h0, c0]).data, a)
    np.testing.assert_array_equal(lstm([x, h0, c0]).data, a)


def test_float32_by_default_and_dropout_between_layers():
    lstm = LSTM(4, 3, num_layers=2, dropout=0.5)
    x = Tensor.randn(2, 5, 4)
    y = lstm(x)
    assert y.dtype == np.float32 and y.shape == (2, 5, 3)
    lstm.eval()
    np.testing.assert_array_equal(lstm(x).data, lstm(x).data)   # no dropout in eval mode


def test_save_and_load_a_model_with_an_lstm(tmp_path):
    pynn.manual_seed(0)
    x_in = Input((6, 3))
    y = Dense(5, 2)(GRU(5, bidirectional=False)(LSTM(3, 4, bidirectional=True)(x_in)))
    model = Model(x_in, y)
    model.save(tmp_path / "m.pynn")
    loaded = pynn.load_model(tmp_path / "m.pynn")
    x = np.random.default_rng(0).standard_normal((2, 6, 3)).astype(np.float32)
    np.testing.assert_allclose(loaded.predict(x), model.predict(x), rtol=1e-6)


# -- finite differences on the ops ------------------------------------------------------------
def _op(cls, reverse, initial, **attrs):
    def fn(*xs):
        return apply(cls(reverse=reverse, bias=True, initial=initial, **attrs), *xs)
    return fn


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("name", ["LSTMSequence", "GRUSequence", "RNNSequence"])
def test_gradcheck_recurrent_ops(name, reverse):
    rng = np.random.default_rng(3)
    n, t, i, h = 2, 3, 2, 2
    cls = getattr(R, name)
    g = cls.gates * h
    arrays = [rng.standard_normal((n, t, i)), rng.uniform(-0.8, 0.8, (g, i)),
              rng.uniform(-0.8, 0.8, (g, h)), rng.uniform(-0.5, 0.5, g),
              rng.uniform(-0.5, 0.5, g)] + [rng.standard_normal((n, h))
                                            for _ in range(cls.n_states)]
    gradcheck(_op(cls, reverse, True), *arrays)
    gradcheck(_op(cls, reverse, False), *arrays[:5])


@pytest.mark.parametrize("time_loop", ["one kernel", "python"])
@pytest.mark.parametrize("name", ["LSTMSequence", "GRUSequence", "RNNSequence"])
def test_an_initial_state_without_grad_gets_none_and_the_rest_is_unchanged(name, time_loop,
                                                                              monkeypatch):
    """The first step's product for dL/dh0 is skipped when h0 needs no gradient: every other
    gradient (c0's included) is the one of a run where h0 needs it, and h0's slot is None."""
    if time_loop == "python":
        monkeypatch.setattr(R, "gemm_for", lambda dtype: None)
    rng = np.random.default_rng(7)
    cls = getattr(R, name)
    n, t, i, h = 3, 4, 2, 5
    arrays = [rng.standard_normal((n, t, i)), rng.uniform(-0.8, 0.8, (cls.gates * h, i)),
              rng.uniform(-0.8, 0.8, (cls.gates * h, h)), rng.uniform(-0.5, 0.5, cls.gates * h),
              rng.uniform(-0.5, 0.5, cls.gates * h)] + [rng.standard_normal((n, h))
                                                        for _ in range(cls.n_states)]
    arrays = [a.astype(np.float32) for a in arrays]
    seed = rng.standard_normal((n, t, h * (2 if name == "LSTMSequence" else 1)))

    def grads(h0_grad):
        xs = [Tensor(a, requires_grad=(k != 5 or h0_grad)) for k, a in enumerate(arrays)]
        y = apply(cls(bias=True, initial=True), *xs)
        (y * Tensor(seed.astype(np.float32))).sum().backward()
        return [x.grad for x in xs]

    with_h0, without_h0 = grads(True), grads(False)
    assert with_h0[5] is not None and without_h0[5] is None
    op = cls(bias=True, initial=True)          # the op itself returns no gradient for h0
    op.needs_input_grad = (True,) * 5 + (False,) + (True,) * (cls.n_states - 1)
    op.forward(*arrays)
    back = op.backward(seed.astype(np.float32))
    assert back[5] is None and all(b is not None for k, b in enumerate(back) if k != 5)
    for k in (0, 1, 2, 3, 4, *range(6, len(arrays))):
        np.testing.assert_array_equal(without_h0[k].data, with_h0[k].data)


def test_gradcheck_narrow():
    rng = np.random.default_rng(4)
    gradcheck(lambda x: apply(R.Narrow(index=(slice(None), -1, slice(1, 3))), x),
              rng.standard_normal((2, 3, 4)))


def test_narrow_against_torch():
    x = np.random.default_rng(5).standard_normal((2, 3, 4))
    xt = torch.tensor(x, requires_grad=True)
    yt = xt[:, -1, 1:3]
    g = np.random.default_rng(6).standard_normal(yt.shape)
    yt.backward(torch.from_numpy(g))
    xp = Tensor(x, requires_grad=True, dtype=np.float64)
    y = apply(R.Narrow(index=(slice(None), -1, slice(1, 3))), xp)
    y.backward(g)
    close("narrow", y, yt)
    close("narrow grad", xp.grad, xt.grad)


# -- the compiled plan reuses its buffers -----------------------------------------------------
def _train_step(model, opt, xb, yb):
    from pynn.losses import categorical_cross_entropy
    loss = categorical_cross_entropy(model(xb), yb)
    loss.zero_grad()
    loss.backward()
    opt.update(model.parameters)


def test_an_lstm_step_allocates_less_than_one_sequence_activation():
    from pynn.optimizers import Adam
    pynn.manual_seed(0)
    n, t, i, h = 64, 28, 28, 32
    x_in = Input((t, i))
    model = Model(x_in, Dense(h, 10, "softmax")(LSTM(h)(x_in)))
    opt = Adam(1e-3)
    rng = np.random.default_rng(0)
    data = [(rng.random((n, t, i), dtype=np.float32), rng.integers(0, 10, n)) for _ in range(6)]
    for xb, yb in data[:2]:
        _train_step(model, opt, xb, yb)
    (plan,) = model._plans.values()
    first = [(id(b), b.shape) for b in plan.buffers()]
    peak = peak_bytes(lambda: [_train_step(model, opt, xb, yb) for xb, yb in data[2:]])
    assert [(id(b), b.shape) for b in plan.buffers()] == first
    one_sequence = n * t * h * 4          # the (N, T, H) hidden sequence in float32
    assert peak < one_sequence, (peak, one_sequence)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_add_rows_adds_one_or_two_biases_in_one_pass_as_numpy_rounds_two(dtype):
    from pynn.kernels.recurrent import add_rows
    rng = np.random.default_rng(0)
    a = rng.standard_normal((7, 12)).astype(dtype)
    b, b2 = (rng.standard_normal(12).astype(dtype) for _ in range(2))
    both, one = a.copy(), a.copy()
    add_rows(both, b, b2)
    add_rows(one, b, np.empty(0, dtype))
    np.testing.assert_array_equal(both, (a + b) + b2)      # bit for bit, as the two passes
    np.testing.assert_array_equal(one, a + b)
    with pytest.raises(ValueError, match="add_rows"):
        add_rows(a, b[:5], b2)
    with pytest.raises(ValueError, match="add_rows"):
        add_rows(a, b, b2[:5])
