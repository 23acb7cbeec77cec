"""How each pynn op becomes ONNX nodes: one exporter function per op class, in `EXPORTERS`.

An exporter is `fn(g, op, ins, out)`: `g` is the graph builder of `pynn.onnx` (it makes nodes
and constants and knows every value's dtype and build-time shape, batch dim 1), `op` the pynn
op of the step (its settings in `op.attrs`), `ins` the ONNX names of the step's inputs and `out`
the name the exporter must produce. Adding an op is one function:

    @exporter("Relu")
    def _relu(g, op, ins, out):
        g.node("Relu", ins, [out])

An exporter raises `ExportError` for settings ONNX cannot express (the caller adds which layer
or op it was). This module needs no `onnx` import: the builder does the protobuf work.
"""
import math

import numpy as np

#: op class name -> exporter function
EXPORTERS = {}

INT64_MAX = np.iinfo(np.int64).max
INT64_MIN = np.iinfo(np.int64).min


class ExportError(ValueError):
    """A model (or one of its ops) that cannot be written as ONNX."""


def exporter(*op_names):
    """Register the decorated function as the exporter of the named op classes."""
    def register(fn):
        for name in op_names:
            EXPORTERS[name] = fn
        return fn
    return register


# -- dense and convolution -----------------------------------------------------------------------
def fused_activation(g, name, x, out):
    """The activation a Linear/Conv op applies in its own pass, as a node from x to out."""
    if name not in ACTIVATION_NODES:
        raise ExportError(f"fused activation {name!r} has no ONNX form here")
    g.node(ACTIVATION_NODES[name], [x], [out])


ACTIVATION_NODES = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh"}


@exporter("Linear")
def _linear(g, op, ins, out):
    """x @ W.T + b: Gemm (transB=1) for 2-D x, else MatMul with W transposed and Add."""
    x, w = ins[0], ins[1]
    b = ins[2:3]
    act = op.attrs.get("activation")
    y = out if act is None else g.fresh("linear")
    if len(g.shape(x)) == 2:
        g.node("Gemm", [x, w] + b, [y], transB=1)
    else:
        wt = g.node("Transpose", [w], perm=[1, 0])
        if b:
            g.node("Add", [g.node("MatMul", [x, wt]), b[0]], [y])
        else:
            g.node("MatMul", [x, wt], [y])
    if act is not None:
        fused_activation(g, act, y, out)


def as_tuple(v, n):
    return tuple(v) if isinstance(v, (tuple, list)) else (v,) * n


def conv(g, op, ins, out, nd):
    """Conv over nd spatial dims (Conv1d, Conv2d): stride, padding (padding_end when the op has
    one: "same" padding may put one more row/column at the end), dilation and groups from the
    op's attrs (dilation 1 and groups 1 when the op has none), then its fused activation. The
    Conv2d op runs a 1-D convolution as height 1: its pairs' last entries are the 1-D settings."""
    a = op.attrs
    kernel = g.shape(ins[1])[2:]

    def setting(key, default):
        return as_tuple(default if a.get(key) is None else a[key], nd)[-nd:]

    begins = setting("padding", 0)
    ends = setting("padding_end", begins)
    act = a.get("activation")
    y = out if act is None else g.fresh("conv")
    g.node("Conv", list(ins), [y], kernel_shape=list(kernel),
           strides=list(setting("stride", 1)), pads=list(begins + ends),
           dilations=list(setting("dilation", 1)), group=int(a.get("groups", 1)))
    if act is not None:
        fused_activation(g, act, y, out)


@exporter("Conv2d")
def _conv2d(g, op, ins, out):
    """Conv2d and Conv1d (the same op: a weight of 3 dims is a 1-D convolution)."""
    conv(g, op, ins, out, len(g.shape(ins[1])) - 2)


def pool(g, op_type, op, ins, out, nd, **extra):
    a = op.attrs
    pads = as_tuple(a.get("padding", 0), nd)
    g.node(op_type, ins, [out], kernel_shape=list(as_tuple(a["kernel_size"], nd)),
           strides=list(as_tuple(a["stride"], nd)), pads=list(pads + pads), **extra)


@exporter("MaxPool2d")
def _maxpool2d(g, op, ins, out):
    pool(g, "MaxPool", op, ins, out, 2)


@exporter("AvgPool2d")
def _avgpool2d(g, op, ins, out):
    # pynn divides by the whole window, padding included
    pool(g, "AveragePool", op, ins, out, 2, count_include_pad=1)


@exporter("BatchNorm", "SyncBatchNorm")
def _batchnorm(g, op, ins, out):
    """Inference form: the layer's running mean and variance as initializers (SyncBatchNorm
    too: at inference it reads the same running statistics)."""
    m = op.module
    dtype = g.dtype(ins[0])
    mean = g.const(np.asarray(m.running_mean, dtype), owner=m.running_mean)
    var = g.const(np.asarray(m.running_var, dtype), owner=m.running_var)
    g.node("BatchNormalization", [ins[0], ins[1], ins[2], mean, var], [out],
           epsilon=float(m.eps))


@exporter("Dropout", "Detach")
def _identity(g, op, ins, out):
    g.node("Identity", ins, [out])


# -- elementwise ---------------------------------------------------------------------------------
UNARY = {"Neg": "Neg", "Exp": "Exp", "Log": "Log", "Sqrt": "Sqrt", "Abs": "Abs", "Sin": "Sin",
         "Cos": "Cos", "Tanh": "Tanh", "Sigmoid": "Sigmoid", "Relu": "Relu"}


def _unary(g, op, ins, out):
    g.node(UNARY[op.name], ins, [out])


for _name in UNARY:
    EXPORTERS[_name] = _unary

BINARY = {"Add": "Add", "Sub": "Sub", "Mul": "Mul", "Div": "Div", "Pow": "Pow",
          "Maximum": "Max", "Minimum": "Min", "MatMul": "MatMul"}


def _binary(g, op, ins, out):
    """Both operands in the output's dtype (pynn promotes an integer operand to the float's)."""
    dtype = g.dtype(out)
    g.node(BINARY[op.name], [g.cast(x, dtype) for x in ins], [out])


for _name in BINARY:
    EXPORTERS[_name] = _binary


@exporter("LeakyRelu")
def _leaky_relu(g, op, ins, out):
    g.node("LeakyRelu", ins, [out], alpha=float(op.negative_slope))


@exporter("Gelu")
def _gelu(g, op, ins, out):
    """Exact GELU: the Gelu op from opset 20, else x * 0.5 * (1 + erf(x / sqrt(2)))."""
    x = ins[0]
    if g.opset >= 20:
        g.node("Gelu", [x], [out])
        return
    dtype = g.dtype(x)
    erf = g.node("Erf", [g.node("Mul", [x, g.scalar(math.sqrt(0.5), dtype)])])
    half = g.node("Mul", [x, g.scalar(0.5, dtype)])
    g.node("Mul", [half, g.node("Add", [erf, g.scalar(1.0, dtype)])], [out])


@exporter("Softplus")
def _softplus(g, op, ins, out):
    """log(1 + exp(beta x)) / beta, and x itself where beta x > threshold (as PyTorch)."""
    x, dtype = ins[0], g.dtype(ins[0])
    bx = g.node("Mul", [x, g.scalar(op.beta, dtype)])
    soft = g.node("Div", [g.node("Softplus", [bx]), g.scalar(op.beta, dtype)])
    g.node("Where", [g.node("Greater", [bx, g.scalar(op.threshold, dtype)]), x, soft], [out])


@exporter("Clip")
def _clip(g, op, ins, out):
    dtype = g.dtype(ins[0])
    lo = "" if op.min is None else g.scalar(op.min, dtype)
    hi = "" if op.max is None else g.scalar(op.max, dtype)
    g.node("Clip", [ins[0], lo, hi], [out])


@exporter("Where")
def _where(g, op, ins, out):
    dtype = g.dtype(out)
    cond = g.cast(ins[0], np.bool_)
    g.node("Where", [cond, g.cast(ins[1], dtype), g.cast(ins[2], dtype)], [out])


COMPARE = {"equal": "Equal", "less": "Less", "less_equal": "LessOrEqual", "greater": "Greater",
           "greater_equal": "GreaterOrEqual"}


@exporter("Compare")
def _compare(g, op, ins, out):
    dtype = np.result_type(g.dtype(ins[0]), g.dtype(ins[1]))
    a, b = (g.cast(x, dtype) for x in ins)
    if op.fn == "not_equal":
        g.node("Not", [g.node("Equal", [a, b])], [out])
    elif op.fn in COMPARE:
        g.node(COMPARE[op.fn], [a, b], [out])
    else:
        raise ExportError(f"comparison {op.fn!r} has no ONNX form here")


@exporter("Cast")
def _cast(g, op, ins, out):
    g.node("Cast", ins, [out], to=g.elem_type(op.dtype))


# -- reductions and softmax ----------------------------------------------------------------------
def _axes(op, x, g):
    return list(range(len(g.shape(x)))) if op.dim is None else list(op.dim)


@exporter("Sum", "Mean", "Max", "Min", "LogSumExp")
def _reduce(g, op, ins, out):
    kind = {"Sum": "ReduceSum", "Mean": "ReduceMean", "Max": "ReduceMax", "Min": "ReduceMin",
            "LogSumExp": "ReduceLogSumExp"}[op.name]
    if op.dim == ():                          # no axis to reduce: NumPy returns x as it is
        g.node("Identity", ins, [out])
        return
    g.reduce(kind, ins[0], _axes(op, ins[0], g), op.keepdim, out)


@exporter("Var", "Std")
def _var(g, op, ins, out):
    """sum((x - mean)^2) / (n - correction), n = elements per reduction (counted at run time,
    so a reduction over the batch axis follows the batch size); Std is its square root."""
    x, dtype = ins[0], g.dtype(ins[0])
    axes = _axes(op, x, g)
    mu = g.reduce("ReduceMean", x, axes, True)
    d = g.node("Sub", [x, mu])
    total = g.reduce("ReduceSum", g.node("Mul", [d, d]), axes, op.keepdim)
    n = g.node("Div", [g.cast(g.node("Size", [x]), dtype), g.cast(g.node("Size", [mu]), dtype)])
    denom = g.node("Relu", [g.node("Sub", [n, g.scalar(op.correction, dtype)])])
    if op.name == "Std":
        g.node("Sqrt", [g.node("Div", [total, denom])], [out])
    else:
        g.node("Div", [total, denom], [out])


@exporter("ArgReduce")
def _argreduce(g, op, ins, out):
    kind = {"argmax": "ArgMax", "argmin": "ArgMin"}[op.fn]
    if op.dim is None:                        # over the flattened tensor: a 0-d index
        flat = g.node("Reshape", [ins[0], g.ints([-1])])
        g.node(kind, [flat], [out], axis=0, keepdims=0)
    else:
        g.node(kind, ins, [out], axis=int(op.dim), keepdims=int(op.keepdim))


@exporter("Softmax", "LogSoftmax")
def _softmax(g, op, ins, out):
    g.node(op.name, ins, [out], axis=int(op.dim))


# -- shape ---------------------------------------------------------------------------------------
@exporter("Reshape")
def _reshape(g, op, ins, out):
    shape = [int(n) for n in op.shape]
    if 0 in shape:
        raise ExportError(f"reshape to {tuple(shape)}: a dim of size 0 has no ONNX Reshape form")
    g.node("Reshape", [ins[0], g.ints(shape)], [out])


@exporter("Flatten")
def _flatten(g, op, ins, out):
    """Dims before start_dim copied (0, so the batch stays free), the flattened range -1, the
    dims after end_dim read from the input's shape at run time."""
    x = ins[0]
    ndim = len(g.shape(x))
    s, e = op.start_dim, op.end_dim
    head = g.ints([0] * s + [-1])
    if e == ndim - 1:
        g.node("Reshape", [x, head], [out])
        return
    tail = g.node("Shape", [x], start=e + 1)
    g.node("Reshape", [x, g.node("Concat", [head, tail], axis=0)], [out])


@exporter("Permute")
def _permute(g, op, ins, out):
    g.node("Transpose", ins, [out], perm=[int(d) for d in op.dims])


@exporter("Squeeze")
def _squeeze(g, op, ins, out):
    if op.dim is None:
        g.node("Squeeze", ins, [out])
    elif len(op.dim) == 0:
        g.node("Identity", ins, [out])
    else:
        g.node("Squeeze", [ins[0], g.ints(op.dim)], [out])


@exporter("Unsqueeze")
def _unsqueeze(g, op, ins, out):
    g.node("Unsqueeze", [ins[0], g.ints([op.dim])], [out])


@exporter("BroadcastTo")
def _broadcast_to(g, op, ins, out):
    # ONNX Expand broadcasts both ways, so a size-1 dim of the target follows the input
    g.node("Expand", [ins[0], g.ints(op.shape)], [out])


@exporter("Repeat")
def _repeat(g, op, ins, out):
    x = ins[0]
    lead = len(op.repeats) - len(g.shape(x))
    if lead:
        x = g.node("Unsqueeze", [x, g.ints(range(lead))])
    g.node("Tile", [x, g.ints(op.repeats)], [out])


@exporter("Pad")
def _pad(g, op, ins, out):
    ndim = len(g.shape(ins[0]))
    begins, ends = [0] * ndim, [0] * ndim
    for i in range(len(op.pad) // 2):
        begins[ndim - 1 - i], ends[ndim - 1 - i] = op.pad[2 * i], op.pad[2 * i + 1]
    value = g.scalar(op.value, g.dtype(ins[0]))
    g.node("Pad", [ins[0], g.ints(begins + ends), value], [out], mode="constant")


@exporter("Concat")
def _concat(g, op, ins, out):
    dtype = g.dtype(out)
    g.node("Concat", [g.cast(x, dtype) for x in ins], [out], axis=int(op.dim))


@exporter("Stack")
def _stack(g, op, ins, out):
    axes = g.ints([op.dim])
    g.node("Concat", [g.node("Unsqueeze", [x, axes]) for x in ins], [out], axis=int(op.dim))


@exporter("TakeAlongDim")
def _take_along_dim(g, op, ins, out):
    g.node("GatherElements", [ins[0], g.cast(ins[1], np.int64)], [out], axis=int(op.dim))


def _is_array(item):
    return isinstance(item, (np.ndarray, list))


@exporter("GetItem")
def _getitem(g, op, ins, out):
    """x[index] as Slice (slices and ints), Squeeze (the ints' axes), Unsqueeze (None) and, for
    one integer array or 1-D boolean mask, Gather along its axis (the mask's positions are
    constants of the index, so they are found at export)."""
    x = ins[0]
    ndim = len(g.shape(x))
    items = list(op.index) if isinstance(op.index, tuple) else [op.index]
    arrays = [i for i, item in enumerate(items) if _is_array(item)]
    if len(arrays) > 1 or arrays and any(
            item is None or isinstance(item, (int, np.integer)) for item in items):
        raise ExportError(f"index {op.index!r}: only one integer array or boolean mask, with "
                          f"slices beside it, has an ONNX form here")
    if any(item is Ellipsis for item in items):
        at = next(i for i, item in enumerate(items) if item is Ellipsis)
        used = sum(1 for item in items if item is not None and item is not Ellipsis)
        items[at:at + 1] = [slice(None)] * (ndim - used)
    items += [slice(None)] * (ndim - sum(1 for item in items if item is not None))
    starts, ends, axes, steps, squeeze, unsqueeze = [], [], [], [], [], []
    gather = None
    axis = out_axis = 0
    for item in items:
        if item is None:
            unsqueeze.append(out_axis)
            out_axis += 1
            continue
        if isinstance(item, slice):
            step = 1 if item.step is None else int(item.step)
            if item != slice(None):
                start = item.start if item.start is not None else (0 if step > 0 else INT64_MAX)
                end = item.stop if item.stop is not None else (INT64_MAX if step > 0
                                                               else INT64_MIN)
                starts.append(int(start))
                ends.append(int(end))
                axes.append(axis)
                steps.append(step)
            out_axis += 1
        elif _is_array(item):
            index = np.asarray(item)
            if index.dtype == bool:
                if index.ndim != 1:
                    raise ExportError(f"index {op.index!r}: a boolean mask of {index.ndim} dims "
                                      f"has no ONNX form here")
                index = np.flatnonzero(index)
            gather = (axis, index.astype(np.int64))
            out_axis += index.ndim
        else:                                   # an int: keep a length-1 slice, then squeeze
            i = int(item)
            starts.append(i)
            ends.append(i + 1 if i != -1 else INT64_MAX)
            axes.append(axis)
            steps.append(1)
            squeeze.append(axis)
        axis += 1
    steps_out = []                              # (op_type, extra inputs, attrs)
    if axes:
        steps_out.append(("Slice", [g.ints(starts), g.ints(ends), g.ints(axes), g.ints(steps)],
                          {}))
    if gather is not None:
        steps_out.append(("Gather", [g.const(gather[1], "index")], {"axis": gather[0]}))
    if squeeze:
        steps_out.append(("Squeeze", [g.ints(squeeze)], {}))
    if unsqueeze:
        steps_out.append(("Unsqueeze", [g.ints(unsqueeze)], {}))
    if not steps_out:
        steps_out.append(("Identity", [], {}))
    y = x
    for i, (op_type, extra, attrs) in enumerate(steps_out):
        last = i == len(steps_out) - 1
        y = g.node(op_type, [y] + extra, [out] if last else 1, **attrs)



# -- activations of pynn.ops.activation ----------------------------------------------------------
@exporter("Elu")
def _elu(g, op, ins, out):
    g.node("Elu", ins, [out], alpha=float(op.alpha))


@exporter("Selu")
def _selu(g, op, ins, out):
    # torch's constants (ONNX's defaults are the same numbers rounded to float32)
    g.node("Selu", ins, [out], alpha=1.6732632423543772, gamma=1.0507009873554805)


@exporter("Silu")
def _silu(g, op, ins, out):
    g.node("Mul", [ins[0], g.node("Sigmoid", ins)], [out])


@exporter("Mish")
def _mish(g, op, ins, out):
    """x * tanh(softplus(x)) (ONNX's Mish op exists only from opset 18)."""
    g.node("Mul", [ins[0], g.node("Tanh", [g.node("Softplus", ins)])], [out])


@exporter("Softsign")
def _softsign(g, op, ins, out):
    g.node("Softsign", ins, [out])


@exporter("Hardtanh")
def _hardtanh(g, op, ins, out):
    dtype = g.dtype(ins[0])
    g.node("Clip", [ins[0], g.scalar(op.min_val, dtype), g.scalar(op.max_val, dtype)], [out])


@exporter("Hardsigmoid")
def _hardsigmoid(g, op, ins, out):
    """clip(x + 3, 0, 6) / 6 = max(0, min(1, x / 6 + 1 / 2))."""
    g.node("HardSigmoid", ins, [out], alpha=1.0 / 6.0, beta=0.5)


@exporter("GeluTanh")
def _gelu_tanh(g, op, ins, out):
    """0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))): Gelu(approximate="tanh") from opset 20."""
    x = ins[0]
    if g.opset >= 20:
        g.node("Gelu", [x], [out], approximate="tanh")
        return
    dtype = g.dtype(x)
    x3 = g.node("Mul", [x, g.node("Mul", [x, x])])
    inner = g.node("Add", [x, g.node("Mul", [x3, g.scalar(0.044715, dtype)])])
    t = g.node("Tanh", [g.node("Mul", [inner, g.scalar(math.sqrt(2.0 / math.pi), dtype)])])
    half = g.node("Mul", [x, g.scalar(0.5, dtype)])
    g.node("Mul", [half, g.node("Add", [t, g.scalar(1.0, dtype)])], [out])


@exporter("Prelu")
def _prelu(g, op, ins, out):
    """One slope per channel (axis 1) as a (C, 1, ...) slope that broadcasts, or one for all."""
    x, w = ins
    ndim, size = len(g.shape(x)), int(np.prod(g.shape(w)))
    if size > 1 and ndim > 2:
        w = g.node("Reshape", [w, g.ints([size] + [1] * (ndim - 2))])
    g.node("PRelu", [x, w], [out])


@exporter("Identity")
def _identity_op(g, op, ins, out):
    g.node("Identity", ins, [out])


@exporter("Take")
def _take(g, op, ins, out):
    """x[idx] with integer indices as data: rows of x (axis 0) gathered."""
    g.node("Gather", [ins[0], g.cast(ins[1], np.int64)], [out], axis=0)


# -- resize (pynn.ops.resize) --------------------------------------------------------------------
def _adaptive_windows(size, out_size):
    """torch.nn.AdaptiveAvgPool2d's windows along one axis: [floor(o*n/m), ceil((o+1)*n/m))."""
    return [(o * size // out_size, -(-(o + 1) * size // out_size)) for o in range(out_size)]


@exporter("AdaptiveAvgPool2d")
def _adaptive_avgpool2d(g, op, ins, out):
    """The mean over a window is the mean over its rows of the mean over its columns: per axis,
    one AveragePool when the windows tile it evenly, else a ReduceMean per window (sizes are
    known at export: only the batch is free), concatenated."""
    x = ins[0]
    shape = g.shape(x)
    for axis, m in ((2, op.output_size[0]), (3, op.output_size[1])):
        n = shape[axis]
        last = axis == 3
        if n % m == 0:
            k = [n // m if a == axis else 1 for a in (2, 3)]
            x = g.node("AveragePool", [x], [out] if last else 1, kernel_shape=k, strides=k)
            continue
        parts = [g.reduce("ReduceMean", g.node("Slice", [x, g.ints([s]), g.ints([e]),
                                                         g.ints([axis])]), [axis], True)
                 for s, e in _adaptive_windows(n, m)]
        x = g.node("Concat", parts, [out] if last else 1, axis=axis)


@exporter("Upsample")
def _upsample(g, op, ins, out):
    """Resize: nearest as PyTorch (floor of out_index * in/out: "asymmetric", "floor"),
    bilinear with "pytorch_half_pixel" or "align_corners". A scale_factor is given as ONNX's
    scales (both read the input at out_index / factor); a size as sizes, with the batch and
    channels taken from the input at run time."""
    x = ins[0]
    if op.mode == "nearest":
        modes = dict(mode="nearest", coordinate_transformation_mode="asymmetric",
                     nearest_mode="floor")
    else:
        coords = "align_corners" if op.align_corners else "pytorch_half_pixel"
        modes = dict(mode="linear", coordinate_transformation_mode=coords)
    if op.size is not None:
        batch_channels = g.node("Slice", [g.node("Shape", [x]), g.ints([0]), g.ints([2])])
        sizes = g.node("Concat", [batch_channels, g.ints(op.size)], axis=0)
        g.node("Resize", [x, "", "", sizes], [out], **modes)
    else:
        scales = g.const(np.array([1.0, 1.0] + [float(f) for f in op.scale_factor], np.float32),
                         "scales")
        g.node("Resize", [x, "", scales], [out], **modes)


# -- masks and attention (pynn.ops.index, pynn.ops.attention) ------------------------------------
@exporter("MaskedFill")
def _masked_fill(g, op, ins, out):
    x, mask = ins
    value = g.scalar(op.value, g.dtype(x))
    g.node("Where", [g.cast(mask, np.bool_), value, x], [out])


@exporter("SplitHeads")
def _split_heads(g, op, ins, out):
    """(N, L, h*d) -> (N, h, L, d)."""
    y = g.node("Reshape", [ins[0], g.ints([0, 0, int(op.num_heads), -1])])
    g.node("Transpose", [y], [out], perm=[0, 2, 1, 3])


@exporter("MergeHeads")
def _merge_heads(g, op, ins, out):
    """(N, h, L, d) -> (N, L, h*d)."""
    y = g.node("Transpose", ins, perm=[0, 2, 1, 3])
    g.node("Reshape", [y, g.ints([0, 0, -1])], [out])


def _attention_mask(g, m, layout, nd, scores):
    """A mask input read the way the op reads it (see ScaledDotProductAttention's layouts)."""
    if layout == "padding":                              # (N, S) -> (N, 1, ..., 1, S)
        return g.node("Unsqueeze", [m, g.ints(range(1, nd - 1))])
    if layout == "heads" and len(g.shape(m)) == 3 and nd == 4:
        # (N*h, L, S) -> (N, h, L, S), N read from the scores at run time (as the op does)
        n = g.node("Slice", [g.node("Shape", [scores]), g.ints([0]), g.ints([1])])
        rest = g.node("Slice", [g.node("Shape", [m]), g.ints([1]), g.ints([3])])
        return g.node("Reshape", [m, g.node("Concat", [n, g.ints([-1]), rest], axis=0)])
    return m


@exporter("ScaledDotProductAttention")
def _attention(g, op, ins, out):
    """softmax(q @ k^T * scale + masks) @ v; a boolean mask (or the causal one, built from the
    run-time lengths) sets the dropped scores to -inf. Inference form: the dropout of a layer is
    off; the functional form with dropout_p > 0 drops always and has no ONNX form here."""
    a = op.attrs
    if a.get("dropout_p", 0.0) > 0 and a.get("module") is None:
        raise ExportError(f"dropout_p={a['dropout_p']} without a layer drops at inference too; "
                          f"pass dropout_p=0.0 to export")
    q, k, v, masks = ins[0], ins[1], ins[2], ins[3:]
    dtype = g.dtype(q)
    nd = max(len(g.shape(x)) for x in (q, k, v))
    E = g.shape(q)[-1]
    scale = 1.0 / math.sqrt(E) if a.get("scale") is None else float(a["scale"])
    kt = g.node("Transpose", [k], perm=list(range(len(g.shape(k)) - 2))
                + [len(g.shape(k)) - 1, len(g.shape(k)) - 2])
    s = g.node("Mul", [g.node("MatMul", [q, kt]), g.scalar(scale, dtype)])
    ninf = g.scalar(-np.inf, dtype)
    layouts = a.get("mask_layouts") or ("attn",) * len(masks)
    for m, layout in zip(masks, layouts, strict=True):
        is_bool = g.dtype(m) == np.bool_
        m = _attention_mask(g, m, layout, nd, s)
        if is_bool:
            drop = m if a.get("bool_masks_drop", False) else g.node("Not", [m])
            s = g.node("Where", [drop, ninf, s])
        else:
            s = g.node("Add", [s, g.cast(m, dtype)])
    if a.get("causal", False):                           # key j > query i, at run time
        shape = g.node("Shape", [s])
        L = g.node("Squeeze", [g.node("Slice", [shape, g.ints([-2]), g.ints([-1])])])
        S = g.node("Squeeze", [g.node("Slice", [shape, g.ints([-1]), g.ints([INT64_MAX])])])
        one, zero = g.const(np.array(1, np.int64), "one"), g.const(np.array(0, np.int64), "zero")
        rows = g.node("Unsqueeze", [g.node("Range", [zero, L, one]), g.ints([1])])
        cols = g.node("Unsqueeze", [g.node("Range", [zero, S, one]), g.ints([0])])
        s = g.node("Where", [g.node("Greater", [cols, rows]), ninf, s])
    p = g.node("Softmax", [s], axis=-1)
    g.node("MatMul", [p, v], [out])
