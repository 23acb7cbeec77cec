"""Anomaly mode: stop at the first op whose forward or backward makes NaN or Inf.

    with pynn.detect_anomaly():
        loss = model(x)...
        loss.backward()        # AnomalyError: the backward of Log (in layer 'dense_1') ...

When it is on, the eager tape (`tensor.apply`, `autograd.backward`) and a compiled Model's plan
check every float array an op returns; the first one holding a NaN or an Inf raises
`AnomalyError`, naming the op and, when the op ran inside a layer call, the layer (read from the
graph record once the error is found: nothing is recorded for it beforehand). When it is off the
executors test one flag, per op in the eager tape and per pass in a plan.

The switch is process-wide, as torch.autograd's anomaly mode: it applies to every thread.
"""
import threading

import numpy as np

#: how many `detect_anomaly()` blocks are open (any thread); the executors test it
enabled = 0
_lock = threading.Lock()


class AnomalyError(RuntimeError):
    """An op made NaN or Inf values while `pynn.detect_anomaly()` was on. Attributes: `op` (the
    op's name), `phase` ("forward" or "backward"), `layer` (the layer whose call ran it, or
    None)."""

    def __init__(self, op, phase, detail, layer=None):
        self.op, self.phase, self.detail, self.layer = op, phase, detail, layer
        super().__init__(self._message())

    def _message(self):
        where = f" in layer {_layer_name(self.layer)}" if self.layer is not None else ""
        return f"detect_anomaly: the {self.phase} of {self.op}{where} {self.detail}"

    def name_layer(self, layer):
        """Set the layer once (the innermost layer call that ran the op wins)."""
        if self.layer is None:
            self.layer = layer
            self.args = (self._message(),)


class detect_anomaly:
    """Context manager (and decorator) raising `AnomalyError` at the first op whose forward
    output or backward gradient holds a NaN or an Inf, as `torch.autograd.detect_anomaly`.
    `detect_anomaly(False)` is a block that changes nothing."""

    def __init__(self, check_nan=True):
        self.check = bool(check_nan)

    def __enter__(self):
        global enabled
        if self.check:
            with _lock:
                enabled += 1
        return self

    def __exit__(self, *exc):
        global enabled
        if self.check:
            with _lock:
                enabled -= 1

    def __call__(self, fn):
        import functools

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with detect_anomaly(self.check):
                return fn(*args, **kwargs)
        return wrapper


def is_anomaly_enabled():
    return enabled > 0


def _bad(array):
    """'nan', 'inf' or None for an output array (non-float arrays are never anomalous)."""
    if isinstance(array, np.generic):
        array = np.asarray(array)
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "fc":
        return None
    if np.isfinite(array).all():
        return None
    return "nan" if np.isnan(array).any() else "inf"


def _shapes(arrays):
    return ", ".join(str(getattr(a, "shape", ())) for a in arrays)


def check_forward(op, out, inputs, find_layer=None):
    """Raise AnomalyError if `out` (the forward result of `op` on `inputs`) is not finite;
    `find_layer()` names the layer (called only then)."""
    outs = out if isinstance(out, (tuple, list)) else (out,)
    for o in outs:
        kind = _bad(o)
        if kind is not None:
            already = any(_bad(a) for a in inputs)
            note = ("; its inputs already held NaN/Inf" if already
                    else "; its inputs were finite")
            raise AnomalyError(op.name, "forward",
                               f"produced {kind} values in its output (input shapes "
                               f"{_shapes(inputs)}, output shape {o.shape}){note}",
                               find_layer() if find_layer else None)


def check_backward(op, grads, find_layer=None):
    """Raise AnomalyError if a gradient `op.backward` returned holds NaN or Inf."""
    for i, g in enumerate(grads):
        kind = _bad(g)
        if kind is not None:
            raise AnomalyError(op.name, "backward",
                               f"returned {kind} values in its gradient for input #{i} "
                               f"(shape {g.shape})", find_layer() if find_layer else None)


def layer_of(tensor, roots):
    """The layer of the innermost layer call behind `roots` whose ops made `tensor`, or None:
    read from the graph record (a call's ops are the tensors between its inputs and outputs)."""
    from .graph import walk
    calls = {}
    for t in walk(roots):
        call = t.grad_fn.call if t.grad_fn is not None else None
        if call is not None:
            calls[id(call)] = call
    best = None
    for call in calls.values():
        stop = {id(x) for x in call.inputs}
        inside = [t for t in walk(call.outputs, stop=stop) if id(t) not in stop]
        if any(t is tensor for t in inside) and (best is None or len(inside) < best[0]):
            best = (len(inside), call.layer)
    return None if best is None else best[1]


def _layer_name(layer):
    name = getattr(layer, "name", None)
    return f"{layer!r} {name!r}" if name else repr(layer)
