"""ONNX building blocks for layers that other branches add: LSTM/GRU/RNN, LayerNorm, Embedding,
ConvTranspose (Conv1d is `pynn.onnx_ops.conv(..., nd=1)`).

Each takes the weights in PyTorch's layouts and is tested against torch in tests/test_onnx.py;
once the op is in the tree, its exporter is one registration, e.g.

    @exporter("LSTM")
    def _lstm(g, op, ins, out):
        recurrent(g, "LSTM", ins[0], *ins[1:], out=out)
"""
import numpy as np

from .onnx_ops import EXPORTERS, ExportError, as_tuple, exporter, fused_activation

#: ONNX's gate order, as positions in PyTorch's: LSTM torch (i, f, g, o) -> ONNX (i, o, f, c);
#: GRU torch (r, z, n) -> ONNX (z, r, h); a plain RNN has one gate
GATE_ORDER = {"LSTM": (0, 3, 1, 2), "GRU": (1, 0, 2), "RNN": (0,)}


def _gates(g, w, kind):
    """A torch-layout weight (gates * H, ...) reordered into ONNX's gate order, with ONNX's
    leading num_directions axis of 1."""
    order = GATE_ORDER[kind]
    shape = g.shape(w)
    blocks = g.node("Reshape", [w, g.ints((len(order), shape[0] // len(order)) + shape[1:])])
    picked = g.node("Gather", [blocks, g.ints(order)], axis=0)
    return g.node("Reshape", [picked, g.ints((1,) + shape)])


def recurrent(g, kind, x, w_ih, w_hh, b_ih=None, b_hh=None, h0=None, c0=None, out=None,
              batch_first=True, nonlinearity="tanh", reverse=False):
    """One layer, one direction of torch.nn.LSTM / GRU / RNN as ONNX's own op, from PyTorch's
    weights (w_ih (G*H, I), w_hh (G*H, H), b_ih, b_hh (G*H,)) and optional initial states (N, H)
    (torch's (1, N, H) squeezed). Writes the output sequence to `out` ((N, T, H) if batch_first,
    else (T, N, H)); returns the names of (Y, Y_h, Y_c) (Y_c only for LSTM)."""
    hidden = g.shape(w_hh)[1]
    xs = g.node("Transpose", [x], perm=[1, 0, 2]) if batch_first else x      # (T, N, I)
    bias = ""
    if b_ih is not None or b_hh is not None:
        parts = [_gates(g, b, kind) if b is not None else
                 g.const(np.zeros((1, g.shape(w_hh)[0]), g.dtype(w_hh))) for b in (b_ih, b_hh)]
        bias = g.node("Concat", parts, axis=1)
    states = [g.node("Unsqueeze", [s, g.ints([0])]) if s is not None else ""
              for s in ((h0,) if kind != "LSTM" else (h0, c0))]
    attrs = {"hidden_size": int(hidden)}
    if reverse:
        attrs["direction"] = "reverse"
    if kind == "GRU":
        attrs["linear_before_reset"] = 1          # torch applies r after the hidden product
    if kind == "RNN":
        attrs["activations"] = [{"tanh": "Tanh", "relu": "Relu"}[nonlinearity]]
    n_out = 3 if kind == "LSTM" else 2
    ys = g.node(kind, [xs, _gates(g, w_ih, kind), _gates(g, w_hh, kind), bias, ""] + states,
                n_out, **attrs)
    y = g.node("Squeeze", [ys[0], g.ints([1])])                                  # (T, N, H)
    if batch_first:
        y = g.node("Transpose", [y], [out] if out else 1, perm=[1, 0, 2])
    elif out:
        g.node("Identity", [y], [out])
    states_out = [g.node("Squeeze", [s, g.ints([0])]) for s in ys[1:]]          # (N, H)
    return [out or y] + states_out


def layer_norm(g, x, weight, bias, eps, normalized_ndim, out):
    """torch.nn.LayerNorm over the last `normalized_ndim` dims (weight / bias may be None):
    LayerNormalization from opset 17, else written out with reductions."""
    dtype = g.dtype(x)
    ndim = len(g.shape(x))
    if g.opset >= 17:
        scale = weight if weight is not None else g.const(
            np.ones(g.shape(x)[ndim - normalized_ndim:], dtype), "ones")
        ins = [x, scale] + ([bias] if bias is not None else [])
        g.node("LayerNormalization", ins, [out], axis=-normalized_ndim, epsilon=float(eps))
        return
    axes = list(range(ndim - normalized_ndim, ndim))
    d = g.node("Sub", [x, g.reduce("ReduceMean", x, axes, True)])
    var = g.reduce("ReduceMean", g.node("Mul", [d, d]), axes, True)
    y = g.node("Div", [d, g.node("Sqrt", [g.node("Add", [var, g.scalar(eps, dtype)])])])
    if weight is not None:
        y = g.node("Mul", [y, weight])
    g.node("Add" if bias is not None else "Identity", [y] + ([bias] if bias is not None else []),
           [out])


def embedding(g, weight, indices, out):
    """torch.nn.Embedding: rows of weight (num, dim) picked by integer indices of any shape."""
    g.node("Gather", [weight, g.cast(indices, np.int64)], [out], axis=0)


def conv_transpose(g, op, ins, out, nd):
    """ConvTranspose over nd spatial dims from torch's weight layout (in, out / groups, k...),
    the same as ONNX's: stride, padding, output_padding, dilation, groups from the op's attrs."""
    a = op.attrs
    pads = as_tuple(a.get("padding", 0), nd)
    act = a.get("activation")
    y = out if act is None else g.fresh("conv_transpose")
    g.node("ConvTranspose", list(ins), [y], kernel_shape=list(g.shape(ins[1])[2:]),
           strides=list(as_tuple(a.get("stride", 1), nd)), pads=list(pads + pads),
           output_padding=list(as_tuple(a.get("output_padding", 0), nd)),
           dilations=list(as_tuple(a.get("dilation", 1), nd)), group=int(a.get("groups", 1)))
    if act is not None:
        fused_activation(g, act, y, out)


# -- the exporters of the ops these blocks stand for ---------------------------------------------
@exporter("Embedding")
def _embedding(g, op, ins, out):
    """Inputs (idx, W): the ids may arrive as floats holding integers (cast to int64)."""
    embedding(g, ins[1], ins[0], out)


@exporter("LayerNorm")
def _layer_norm(g, op, ins, out):
    """Inputs x, then gamma and beta when the layer is elementwise-affine."""
    weight, bias = (ins[1], ins[2]) if len(ins) == 3 else (None, None)
    layer_norm(g, ins[0], weight, bias, op.eps, int(op.ndim), out)


@exporter("ConvTranspose2d")
def _conv_transpose2d(g, op, ins, out):
    conv_transpose(g, op, ins, out, 2)


@exporter("Narrow")
def _narrow(g, op, ins, out):
    """A slice of x; a part an exporter already made (an LSTM's final h, say) is reused."""
    made = g.parts.get((ins[0], repr(op.index)))
    if made is not None:
        g.node("Identity", [made], [out])
        return
    EXPORTERS["GetItem"](g, op, ins, out)


def _recurrent_inputs(op, ins):
    """(x, w_ih, w_hh, b_ih, b_hh, states) of a pynn recurrent op's inputs."""
    x, w_ih, w_hh, rest = ins[0], ins[1], ins[2], list(ins[3:])
    b_ih = b_hh = None
    if op.attrs.get("bias", True):
        b_ih, b_hh, rest = rest[0], rest[1], rest[2:]
    states = rest if op.attrs.get("initial", False) else []
    return x, w_ih, w_hh, b_ih, b_hh, states


@exporter("GRUSequence", "RNNSequence")
def _gru_rnn(g, op, ins, out):
    """ONNX's GRU / RNN op over the whole sequence; the output is the hidden sequence."""
    x, w_ih, w_hh, b_ih, b_hh, states = _recurrent_inputs(op, ins)
    kind = "GRU" if op.name == "GRUSequence" else "RNN"
    recurrent(g, kind, x, w_ih, w_hh, b_ih, b_hh, states[0] if states else None, out=out,
              nonlinearity=op.attrs.get("nonlinearity", "tanh"),
              reverse=bool(op.attrs.get("reverse", False)))


def _lstm_parts(g, op, out, hidden):
    """What each reader of the LSTM op's (N, T, 2H) output takes, when every reader is one of
    the Narrows the LSTM layer makes (the h sequence, the final h, the final c): a dict
    repr(index) -> "h_seq" / "h_n" / "c_n"; None when a reader wants anything else (the cell
    sequence) or the output leaves the model."""
    readers = g.readers.get(out)
    if not readers:
        return None
    H = hidden
    last = 0 if op.attrs.get("reverse", False) else -1
    known = [((Ellipsis, slice(0, H)), "h_seq"),             # (slices are not hashable)
             ((slice(None), last, slice(0, H)), "h_n"),
             ((slice(None), last, slice(H, 2 * H)), "c_n")]
    parts = {}
    for reader in readers:
        index = reader.attrs.get("index") if reader.name == "Narrow" else None
        part = next((p for k, p in known if k == index), None)
        if part is None:
            return None
        parts[repr(index)] = part
    return parts


@exporter("LSTMSequence")
def _lstm(g, op, ins, out):
    """The pynn op's output holds h_t and c_t of every step ((N, T, 2H)); ONNX's LSTM gives
    the h sequence and the last step's h and c. When the model reads only those (what the LSTM
    layer does), one ONNX LSTM node, whatever the sequence length at run time; its readers
    (Narrow) pick the ONNX outputs up from `g.parts`."""
    x, w_ih, w_hh, b_ih, b_hh, states = _recurrent_inputs(op, ins)
    h, c = states if states else (None, None)
    reverse = bool(op.attrs.get("reverse", False))
    parts = _lstm_parts(g, op, out, g.shape(w_hh)[1])
    if parts is not None:
        named = dict(zip(("h_seq", "h_n", "c_n"),
                         recurrent(g, "LSTM", x, w_ih, w_hh, b_ih, b_hh, h, c,
                                   reverse=reverse), strict=True))
        for key, part in parts.items():
            g.parts[(out, key)] = named[part]
        return
    _lstm_per_step(g, x, w_ih, w_hh, b_ih, b_hh, h, c, reverse, out)


def _lstm_per_step(g, x, w_ih, w_hh, b_ih, b_hh, h, c, reverse, out):
    """The fallback when the model reads the cell state of every step, which ONNX's LSTM does
    not give: one ONNX LSTM node per time step, each carrying (h, c) to the next, so the
    sequence length is fixed at export (only the batch stays free)."""
    if g.free_input_dims:
        raise ExportError("the model reads the LSTM's cell state at every step, which needs one "
                          "ONNX node per step and so a fixed sequence length, but an Input "
                          "leaves a dim besides the batch free; give the Input a fixed length "
                          "or read only the h sequence and the final (h, c)")
    steps = g.shape(x)[1]
    order = range(steps - 1, -1, -1) if reverse else range(steps)
    hs, cs = [None] * steps, [None] * steps
    for t in order:
        xt = g.node("Slice", [x, g.ints([t]), g.ints([t + 1]), g.ints([1])])      # (N, 1, F)
        y, h, c = recurrent(g, "LSTM", xt, w_ih, w_hh, b_ih, b_hh, h, c)
        hs[t], cs[t] = y, g.node("Unsqueeze", [c, g.ints([1])])
    g.node("Concat", hs + cs if steps == 1 else
           [g.node("Concat", hs, axis=1), g.node("Concat", cs, axis=1)], [out], axis=2)


@exporter("GroupNorm")
def _group_norm(g, op, ins, out):
    """x (N, C, *) as (N, G, -1) normalised over its last axis (biased variance, as torch), back
    to x's shape, then gamma and beta per channel (C, 1, ...) when affine."""
    x, dtype = ins[0], g.dtype(ins[0])
    ndim = len(g.shape(x))
    groups = g.node("Reshape", [x, g.ints([0, int(op.num_groups), -1])])
    d = g.node("Sub", [groups, g.reduce("ReduceMean", groups, [2], True)])
    var = g.reduce("ReduceMean", g.node("Mul", [d, d]), [2], True)
    xhat = g.node("Div", [d, g.node("Sqrt", [g.node("Add", [var, g.scalar(op.eps, dtype)])])])
    back = g.ints([0] + list(g.shape(x)[1:]))           # the batch stays free
    if len(ins) == 1:
        g.node("Reshape", [xhat, back], [out])
        return
    y = g.node("Reshape", [xhat, back])
    per_channel = g.ints([-1] + [1] * (ndim - 2))
    y = g.node("Mul", [y, g.node("Reshape", [ins[1], per_channel])])
    g.node("Add", [y, g.node("Reshape", [ins[2], per_channel])], [out])
