"""The allocation checks of test_allocation.py over every layer family: a small Model per family,
trained with a real loss and Adam, keeps the same buffers after its first step, does not grow
over 25 steps, and allocates less at a step's peak than its largest activation.

Each case states its largest activation (the biggest array a step of the plan writes), and the
test checks that statement against the plan before comparing the step's peak with it. Every
model puts the layer under test after a Dense or conv layer, so the layer's input gradient is
computed too (the backward a real model runs)."""
import tracemalloc

import numpy as np
import pytest
from alloc_helpers import peak_bytes

import pynn
from pynn import Input, Model
from pynn.layers import (
    ELU,
    GELU,
    GRU,
    LSTM,
    RNN,
    SELU,
    AdaptiveAvgPool2d,
    Add,
    Average,
    AvgPool1d,
    AvgPool2d,
    BatchNorm1d,
    BatchNorm2d,
    Concatenate,
    Conv1d,
    Conv2d,
    ConvTranspose2d,
    Dense,
    Dot,
    Dropout,
    Embedding,
    Flatten,
    GlobalAveragePooling2D,
    GlobalMaxPooling2D,
    GroupNorm,
    Hardsigmoid,
    Hardtanh,
    LayerNorm,
    LeakyReLU,
    Maximum,
    MaxPool1d,
    MaxPool2d,
    Minimum,
    Mish,
    MultiHeadAttention,
    Multiply,
    PReLU,
    SiLU,
    SimpleRNN,
    Softsign,
    Subtract,
    SyncBatchNorm,
    Upsample,
)
from pynn.losses import categorical_cross_entropy
from pynn.optimizers import Adam

N = 32                  # the batch of every case
F32 = 4                 # bytes per float32


def image(c=3, hw=16):
    return ("image", (c, hw, hw))


def seq(t, f):
    return ("seq", (t, f))


def ids(t, vocab):
    return ("ids", (t,), vocab)


def padding(t):
    return ("padding", (t,))


def head(x, features):
    return Dense(features, 10, "softmax")(Flatten()(x))


# name -> (inputs, build(*inputs) -> output, (shape of the largest activation without N))
CASES = {}


def case(name, inputs, largest):
    def register(build):
        CASES[name] = (inputs, build, largest)
        return build
    return register


def conv_then(layer, out_shape, c=8, hw=16):
    """Conv2d(3, c) then `layer` then the head: the cases of layers on images."""
    def build(x):
        y = layer()(Conv2d(3, c, 3, padding=1)(x))
        return head(y, int(np.prod(out_shape)))
    return build


# -- normalisation ------------------------------------------------------------------------------
case("LayerNorm", [seq(16, 16)], (16, 64))(
    lambda x: head(LayerNorm(64)(Dense(16, 64)(x)), 16 * 64))
case("LayerNorm over (T, F)", [seq(16, 16)], (16, 64))(
    lambda x: head(LayerNorm((16, 64))(Dense(16, 64)(x)), 16 * 64))
case("GroupNorm", [image()], (8, 16, 16))(conv_then(lambda: GroupNorm(2, 8), (8, 16, 16)))
case("BatchNorm2d", [image()], (8, 16, 16))(conv_then(lambda: BatchNorm2d(8), (8, 16, 16)))
case("BatchNorm1d over (N, C, L)", [seq(8, 64)], (16, 64))(
    lambda x: head(BatchNorm1d(16)(Conv1d(8, 16, 3, padding=1)(x)), 16 * 64))
case("BatchNorm2d without running stats", [image()], (8, 16, 16))(
    conv_then(lambda: BatchNorm2d(8, track_running_stats=False), (8, 16, 16)))
case("SyncBatchNorm (one process)", [image()], (8, 16, 16))(
    conv_then(lambda: SyncBatchNorm(8), (8, 16, 16)))

# -- convolutions -----------------------------------------------------------------------------
case("Conv1d", [seq(8, 64)], (16, 64))(
    lambda x: head(Conv1d(16, 16, 3, padding=1, activation="relu")(
        Conv1d(8, 16, 3, padding=1)(x)), 16 * 64))
case("Conv1d same, dilated", [seq(8, 64)], (16, 64))(
    lambda x: head(Conv1d(16, 16, 4, padding="same", dilation=2)(
        Conv1d(8, 16, 3, padding="same")(x)), 16 * 64))
case("Conv2d same, even kernel", [image()], (8, 16, 16))(
    lambda x: head(Conv2d(8, 8, 4, padding="same")(Conv2d(3, 8, 3, padding="same")(x)),
                   8 * 16 * 16))
case("Conv2d grouped, strided", [image()], (16, 16, 16))(
    lambda x: head(Conv2d(16, 16, 3, stride=2, padding=1, groups=4)(
        Conv2d(3, 16, 3, padding=1)(x)), 16 * 8 * 8))
case("Conv2d + MaxPool2d by Winograd", [image()], (16, 16, 16))(
    lambda x: head(MaxPool2d(2)(Conv2d(16, 16, 3, padding=1, activation="relu")(
        Conv2d(3, 16, 3, padding=1)(x))), 16 * 8 * 8))
case("Conv2d by Winograd, no pool", [image()], (64, 16, 16))(
    lambda x: head(Conv2d(32, 64, 3, padding=1, activation="relu")(
        Conv2d(3, 32, 3, padding=1)(x)), 64 * 16 * 16))
case("ConvTranspose2d", [image()], (8, 32, 32))(
    lambda x: head(ConvTranspose2d(8, 8, 2, stride=2)(Conv2d(3, 8, 3, padding=1)(x)),
                   8 * 32 * 32))

# -- pooling and resizing ---------------------------------------------------------------------
case("AvgPool2d", [image()], (8, 16, 16))(conv_then(lambda: AvgPool2d(2), (8, 8, 8)))
case("AvgPool2d padded, ceil", [image()], (8, 16, 16))(
    conv_then(lambda: AvgPool2d(3, 2, padding=1, ceil_mode=True), (8, 9, 9)))
case("AdaptiveAvgPool2d", [image()], (8, 16, 16))(
    conv_then(lambda: AdaptiveAvgPool2d(5), (8, 5, 5)))
case("GlobalAveragePooling2D", [image()], (8, 16, 16))(
    conv_then(GlobalAveragePooling2D, (8,)))
case("GlobalMaxPooling2D", [image()], (8, 16, 16))(conv_then(GlobalMaxPooling2D, (8,)))
case("MaxPool1d, AvgPool1d", [seq(8, 64)], (16, 64))(
    lambda x: head(AvgPool1d(2)(MaxPool1d(2)(Conv1d(8, 16, 3, padding=1)(x))), 16 * 16))
case("Upsample nearest", [image()], (8, 32, 32))(
    conv_then(lambda: Upsample(scale_factor=2), (8, 32, 32)))
case("Upsample bilinear", [image()], (8, 32, 32))(
    conv_then(lambda: Upsample(size=(32, 32), mode="bilinear"), (8, 32, 32)))
case("Dropout", [image()], (8, 16, 16))(conv_then(lambda: Dropout(0.3), (8, 16, 16)))

# -- merge layers -----------------------------------------------------------------------------
MERGES = {"Add": Add, "Subtract": Subtract, "Multiply": Multiply, "Average": Average,
          "Maximum": Maximum, "Minimum": Minimum}
for _name, _merge in MERGES.items():
    case(_name, [seq(16, 16), seq(16, 16)], (16, 64))(
        lambda a, b, m=_merge: head(m()([Dense(16, 64)(a), Dense(16, 64)(b)]), 16 * 64))
case("Concatenate", [seq(16, 16), seq(16, 16)], (16, 128))(
    lambda a, b: head(Concatenate()([Dense(16, 64)(a), Dense(16, 64)(b)]), 16 * 128))
case("Dot", [seq(16, 16), seq(16, 16)], (16, 64))(
    lambda a, b: head(Dot(axes=2)([Dense(16, 64)(a), Dense(16, 64)(b)]), 16 * 16))
case("Add residual (one tensor twice)", [seq(16, 64)], (16, 64))(
    lambda x: head(Add()([x, Dense(64, 64)(x)]), 16 * 64))

# -- activations ------------------------------------------------------------------------------
ACTIVATIONS = {"GELU": GELU, "GELU tanh": lambda: GELU("tanh"), "SiLU": SiLU, "ELU": ELU,
               "SELU": SELU, "Mish": Mish, "Softsign": Softsign, "Hardtanh": Hardtanh,
               "Hardsigmoid": Hardsigmoid, "LeakyReLU": LeakyReLU, "PReLU": PReLU,
               "PReLU per channel": lambda: PReLU(8)}
for _name, _act in ACTIVATIONS.items():
    case(_name, [image()], (8, 16, 16))(conv_then(_act, (8, 16, 16)))
for _name in ("gelu", "silu", "elu", "softplus", "leaky_relu"):
    case(f"Dense(activation={_name!r})", [seq(16, 16)], (16, 64))(
        lambda x, a=_name: head(Dense(16, 64, a)(x), 16 * 64))

# -- embedding, recurrent, attention ------------------------------------------------------------
case("Embedding", [ids(16, 50)], (16, 32))(
    lambda x: head(Dense(32, 32)(Embedding(50, 32, padding_idx=0)(x)), 16 * 32))
case("SimpleRNN", [seq(16, 16)], (16, 32))(
    lambda x: Dense(32, 10, "softmax")(SimpleRNN(32)(Dense(16, 32)(x))))
case("RNN relu, sequences", [seq(16, 16)], (16, 32))(
    lambda x: head(RNN(32, 32, nonlinearity="relu")(Dense(16, 32)(x)), 16 * 32))
case("GRU", [seq(16, 16)], (16, 32))(
    lambda x: head(GRU(32, 32)(Dense(16, 32)(x)), 16 * 32))
case("LSTM", [seq(16, 16)], (16, 64))(
    lambda x: head(LSTM(32, 32)(Dense(16, 32)(x)), 16 * 32))
case("LSTM stacked, bidirectional", [seq(16, 16)], (16, 64))(
    lambda x: Dense(64, 10, "softmax")(LSTM(32, 32, num_layers=2, bidirectional=True,
                                            return_sequences=False)(Dense(16, 32)(x))))
case("MultiHeadAttention", [seq(16, 32)], (16, 96))(
    lambda x: head(MultiHeadAttention(32, 4)(Dense(32, 32)(x)), 16 * 32))
case("MultiHeadAttention causal", [seq(16, 32)], (16, 96))(
    lambda x: head(MultiHeadAttention(32, 4, causal=True)(Dense(32, 32)(x)), 16 * 32))
case("MultiHeadAttention padding mask", [seq(16, 32), padding(16)], (16, 96))(
    lambda x, m: head(MultiHeadAttention(32, 4)(Dense(32, 32)(x), key_padding_mask=m), 16 * 32))
case("MultiHeadAttention cross, causal + padding", [seq(16, 32), seq(16, 32), padding(16)],
     (16, 32))(
    lambda q, kv, m: head(MultiHeadAttention(32, 4)(Dense(32, 32)(q), Dense(32, 32)(kv),
                                                     key_padding_mask=m, is_causal=True),
                          16 * 32))


@case("transformer block", [ids(16, 50), padding(16)], (16, 128))
def transformer_block(tokens, pad):
    """Embedding, causal self-attention with a padding mask, LayerNorms, a GELU MLP."""
    x = Embedding(50, 32)(tokens)
    x = LayerNorm(32)(Add()([x, MultiHeadAttention(32, 4, causal=True)(x, key_padding_mask=pad)]))
    x = LayerNorm(32)(Add()([x, Dense(128, 32)(Dense(32, 128, "gelu")(x))]))
    return head(x, 16 * 32)


def make(name):
    inputs, build, largest = CASES[name]
    pynn.manual_seed(0)
    ins = [Input(spec[1]) for spec in inputs]
    return Model(ins if len(ins) > 1 else ins[0], build(*ins)), inputs, largest


def batches(inputs, n, size=N, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        xs = []
        for spec in inputs:
            kind, shape = spec[0], (size,) + spec[1]
            if kind == "ids":                   # ids go in as the model's float dtype
                xs.append(rng.integers(0, spec[2], shape).astype(np.float32))
            elif kind == "padding":             # the last keys of each row are padding: -inf
                lengths = rng.integers(shape[1] // 2, shape[1] + 1, size)
                xs.append(np.where(np.arange(shape[1]) >= lengths[:, None], -np.inf,
                                   0.0).astype(np.float32))
            else:
                xs.append(rng.standard_normal(shape, dtype=np.float32))
        out.append((xs, rng.integers(0, 10, size)))
    return out


def step(model, opt, xs, yb):
    pred = model(*xs)
    loss = categorical_cross_entropy(pred, yb)
    loss.zero_grad()
    loss.backward()
    opt.update(model.parameters)
    return loss.item()


def ids_of(plan, model):
    return ([(id(b), b.shape) for b in plan.buffers()],
            [id(p.grad.data) for p in model.parameters])


def largest_activation(plan):
    """The bytes and shape of the biggest array a step of the plan wrote."""
    outs = [plan.values[s.out] for s in plan.graph.steps]
    big = max(outs, key=lambda a: a.nbytes)
    return big.nbytes, big.shape


NAMES = list(CASES)


@pytest.mark.parametrize("name", NAMES)
def test_buffers_are_the_same_arrays_after_the_first_step(name):
    model, inputs, _ = make(name)
    opt = Adam(1e-3)
    data = batches(inputs, 6)
    step(model, opt, *data[0])
    (plan,) = model._plans.values()
    first = ids_of(plan, model)
    assert first[0], "the plan should own buffers"
    for xs, yb in data[1:]:
        step(model, opt, xs, yb)
    assert ids_of(plan, model) == first
    assert len(model._plans) == 1


@pytest.mark.parametrize("name", NAMES)
def test_memory_does_not_grow_across_steps(name):
    model, inputs, _ = make(name)
    opt = Adam(1e-3)
    data = batches(inputs, 8)
    for xs, yb in data[:5]:
        step(model, opt, xs, yb)
    tracemalloc.start()
    try:
        for i in range(10):
            step(model, opt, *data[i % 8])
        after_10, _ = tracemalloc.get_traced_memory()
        for i in range(25):
            step(model, opt, *data[i % 8])
        after_35, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # 25 more steps may not keep anything: no graph, no per-step buffer survives a step
    assert after_35 - after_10 < 64 * 1024, (after_10, after_35)


@pytest.mark.parametrize("name", NAMES)
def test_a_step_allocates_less_than_the_largest_activation(name):
    """After the first steps, a whole training step (forward, backward, loss, Adam) peaks below
    the model's largest activation: every full-size array is a reused buffer."""
    model, inputs, largest = make(name)
    opt = Adam(1e-3)
    data = batches(inputs, 8)
    for xs, yb in data[:3]:
        step(model, opt, xs, yb)
    (plan,) = model._plans.values()
    activation_bytes = N * int(np.prod(largest)) * F32
    assert largest_activation(plan) == (activation_bytes, (N,) + largest)
    peak = peak_bytes(lambda: [step(model, opt, xs, yb) for xs, yb in data[3:]])
    assert peak < activation_bytes, (peak, activation_bytes)


RECURRENT = {"LSTM": lambda: LSTM(32), "GRU": lambda: GRU(32), "SimpleRNN": lambda: SimpleRNN(32),
             "LSTM bidirectional, 2 layers": lambda: LSTM(32, 16, num_layers=2,
                                                          bidirectional=True,
                                                          return_sequences=False)}


def recurrent_step_peak(layer, t):
    """The peak bytes a training step allocates, for `layer` on sequences of length t."""
    pynn.manual_seed(0)
    x_in = Input((t, 16))
    y = RECURRENT[layer]()(Dense(16, 32)(x_in))
    model, opt = Model(x_in, Dense(32, 10, "softmax")(y)), Adam(1e-3)
    data = batches([seq(t, 16)], 6)
    for xs, yb in data[:3]:
        step(model, opt, xs, yb)
    return peak_bytes(lambda: [step(model, opt, xs, yb) for xs, yb in data[3:]])


@pytest.mark.parametrize("layer", list(RECURRENT))
def test_a_recurrent_step_allocates_nothing_per_time_step(layer):
    """The loop over time steps inside a recurrent op (forward and backward through time)
    writes into the op's buffers only: a step at 4T steps peaks no higher than at T, within
    less than one time step's hidden state (N, H); both stay below one (N, T, H) sequence."""
    t = 16
    short, long = recurrent_step_peak(layer, t), recurrent_step_peak(layer, 4 * t)
    one_time_step = N * 32 * F32
    assert long - short < one_time_step, (short, long, one_time_step)
    assert long < N * t * 32 * F32, (long, N * t * 32 * F32)


@pytest.mark.parametrize("op", ["LSTMSequence", "GRUSequence", "RNNSequence"])
@pytest.mark.parametrize("reverse", [False, True])
def test_the_time_loop_of_a_recurrent_op_allocates_less_than_one_hidden_state(op, reverse):
    """The op alone, forward and backward through time at T and 4T steps: the peak is below one
    time step's hidden state (N, H), so no time step allocates even a temporary of its size
    (the rest is NumPy's bounded buffer for the broadcast bias add, np.getbufsize() elements)."""
    from pynn.ops import recurrent as R
    n, f, h = 256, 16, 64
    gates = {"LSTMSequence": 4, "GRUSequence": 3, "RNNSequence": 1}[op]
    rng = np.random.default_rng(0)
    w = [rng.standard_normal(s, dtype=np.float32) * 0.1
         for s in ((gates * h, f), (gates * h, h), (gates * h,), (gates * h,))]
    one_hidden_state = n * h * F32
    for t in (8, 32):
        x = rng.standard_normal((n, t, f), dtype=np.float32)
        seq_op = getattr(R, op)(reverse=reverse, bias=True, initial=False)
        seq_op.needs_input_grad = (True,) * 5
        y = seq_op.forward(x, *w)
        g = np.ones_like(y)
        seq_op.backward(g)
        peak = peak_bytes(lambda op=seq_op, x=x, g=g: (op.forward(x, *w), op.backward(g)))
        assert peak < one_hidden_state, (t, peak, one_hidden_state)
