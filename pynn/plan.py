"""The compiled executor: a Model's graph as a flat list of steps over numbered slots.

`Graph` is captured once from the tensors between a Model's inputs and outputs. A `Plan` is that
graph made ready for one input signature (shapes, dtypes, grad mode): it holds its own copy of
every op, so each op's buffers are allocated on the first call and reused on every call after it.
Forward runs the steps in order; backward runs them in reverse, adding up gradients per slot.
"""
import numpy as np

from . import anomaly
from .graph import walk
from .kernels import threads
from .ops.attention import MergeHeads, ScaledDotProductAttention, SplitHeads
from .ops.base import Op, unbroadcast
from .ops.elementwise import Relu
from .ops.nn import BatchNorm, Conv2d, Linear, MaxPool2d
from .ops.recurrent import Narrow


class Step:
    __slots__ = ("op", "ins", "out", "tensor")

    def __init__(self, op, ins, out, tensor=None):
        self.op, self.ins, self.out, self.tensor = op, ins, out, tensor


class Graph:
    """The static structure: which op reads which slots and writes which slot.

    Leaves are parameters when they are a layer's weights (`weights`: their ids), trainable or
    not, or when they require grad; other leaves are constants. Which parameters are trained is
    read at every call (``requires_grad``), never fixed here."""

    def __init__(self, inputs, outputs, weights=frozenset()):
        input_ids = {id(t): i for i, t in enumerate(inputs)}
        tensors = walk(outputs, stop=set(input_ids))
        slot = {id(t): i for i, t in enumerate(tensors)}
        self.n_slots = len(tensors)
        self.input_slots = [slot.get(id(t)) for t in inputs]
        for i, s in enumerate(self.input_slots):
            if s is None:
                raise ValueError(f"Model: the outputs do not depend on input #{i} "
                                 f"(shape {inputs[i].shape}); pass the tensor the layers were "
                                 f"called on")
        self.output_slots = [slot[id(t)] for t in outputs]
        self.outputs = list(outputs)       # the record the steps came from (names layers)
        self.params, self.param_slots, self.consts, self.steps = [], [], [], []
        for t in tensors:
            s = slot[id(t)]
            if id(t) in input_ids:
                continue
            if t.grad_fn is None:
                if t.requires_grad or id(t) in weights:
                    self.params.append(t)
                    self.param_slots.append(s)
                else:
                    self.consts.append((s, t.data))
                continue
            op = t.grad_fn.op
            self.steps.append(Step(op.clone(), tuple(slot[id(p)] for p in t.grad_fn.inputs), s, t))

    def step_producing(self, slot):
        for i, step in enumerate(self.steps):
            if step.out == slot:
                return i, step
        return None, None


class Plan:
    """The graph ready to run for one input signature (shapes, dtypes, grad mode, which
    parameters train), with its own ops and buffers. `batch` is put where the graph's ops
    recorded the free batch size."""

    def __init__(self, graph, input_requires_grad, record, trained=None, batch=None):
        self.graph = graph
        self.ops = [step.op.clone(batch=batch) for step in graph.steps]
        self.values = [None] * graph.n_slots
        for s, array in graph.consts:
            self.values[s] = array
        # which slots carry a gradient: parameters, inputs that require grad, and what they feed
        needs = [False] * graph.n_slots
        trained = trained if trained is not None else (True,) * len(graph.param_slots)
        for s, t in zip(graph.param_slots, trained):
            needs[s] = record and t
        for s, r in zip(graph.input_slots, input_requires_grad):
            needs[s] = record and r
        for step, op in zip(graph.steps, self.ops):
            op.needs_input_grad = tuple(needs[i] for i in step.ins)
            needs[step.out] = op.differentiable and any(op.needs_input_grad)
        self.needs = needs
        _fuse_pairs(graph, self.ops)
        params = set(graph.param_slots)
        for step, op in zip(graph.steps, self.ops):
            if type(op) is Linear and step.ins[1] in params:
                op.weight_is_param = True       # (see ops.nn.constant_weights)
        self.grads = [None] * graph.n_slots
        self.sums = {}          # slot -> buffer where several gradient contributions are added
        self.generation = 0     # bumped by every forward: outputs of an older call can't backprop
        self.splits = False     # a pass split a batch across the cores (threads.begin_pass)

    def forward(self, inputs, check_anomalies=True):
        values, graph = self.values, self.graph
        for s, array in zip(graph.input_slots, inputs):
            values[s] = array
        for s, p in zip(graph.param_slots, graph.params):
            values[s] = p.data
        check = anomaly.enabled and check_anomalies
        threads.begin_pass(self.splits)
        try:
            for step, op in zip(graph.steps, self.ops):
                args = [values[i] for i in step.ins]
                try:
                    values[step.out] = op.forward(*args)
                except (ValueError, IndexError, TypeError) as e:
                    raise type(e)(_step_error(step, op, args, e)) from None
                if check:
                    anomaly.check_forward(op, values[step.out], args, self._layer_finder(step))
        finally:
            self.splits = threads.end_pass() or self.splits
        self.generation += 1
        return [values[s] for s in graph.output_slots]

    def backward(self, seed_slot, grad):
        """Run the steps in reverse from d(output)/d(slot) = grad; return the gradients of the
        inputs and of the parameters (None where not needed)."""
        grads, needs, values = self.grads, self.needs, self.values
        for i in range(len(grads)):
            grads[i] = None
        grads[seed_slot] = grad
        check = anomaly.enabled
        threads.begin_pass(self.splits)
        try:
            for step, op in zip(reversed(self.graph.steps), reversed(self.ops)):
                g = grads[step.out]
                if g is None:
                    continue
                grads[step.out] = None
                step_grads = op.backward(g)
                if check:
                    anomaly.check_backward(op, step_grads, self._layer_finder(step))
                for s, gi in zip(step.ins, step_grads):
                    if gi is None or not needs[s]:
                        continue
                    if gi.shape != values[s].shape:
                        gi = unbroadcast(gi, values[s].shape)
                    self._add(s, gi)
        finally:
            self.splits = threads.end_pass() or self.splits
        graph = self.graph
        return ([grads[s] for s in graph.input_slots], [grads[s] for s in graph.param_slots])

    def _layer_finder(self, step):
        return lambda: anomaly.layer_of(step.tensor, self.graph.outputs)

    def _add(self, s, g):
        current = self.grads[s]
        if current is None:
            self.grads[s] = g
            return
        total = self.sums.get(s)
        if total is None or total.shape != g.shape or total.dtype != g.dtype:
            total = self.sums[s] = np.empty(g.shape, g.dtype)
        if current is total:
            total += g
        else:
            np.add(current, g, out=total)
        self.grads[s] = total

    def buffers(self):
        """Every buffer the plan's ops own (for tests that check nothing is reallocated)."""
        return [b for op in self.ops for b in op._buffers.values()] + list(self.sums.values())


def _fuse_pairs(graph, ops):
    """Let each Conv2d whose output feeds nothing but a 2x2 MaxPool2d compute that pool itself
    (Conv2d.fuse_pool): the full-size conv output and its gradient are then never written. And
    let each BatchNorm whose output feeds nothing but a ReLU apply it (BatchNorm.fuse_relu): one
    pass less over the activation each way. Then fuse multi-head self-attention's chains
    (_fuse_attention), with the same map of who reads and who writes each slot."""
    readers, producer = {}, {}
    for i, step in enumerate(graph.steps):
        producer[step.out] = i
        for s in step.ins:
            readers.setdefault(s, []).append(i)
    outputs = set(graph.output_slots)
    for j, (step, op) in enumerate(zip(graph.steps, ops)):
        if type(op) not in (MaxPool2d, Relu):
            continue
        s = step.ins[0]
        i = producer.get(s)
        if i is None or s in outputs or readers[s] != [j]:
            continue
        if type(op) is MaxPool2d and type(ops[i]) is Conv2d:
            if ops[i].can_fuse_pool(op, len(graph.steps[i].tensor.shape)):
                ops[i].fuse_pool(op)
        elif type(ops[i]) is BatchNorm and ops[i].can_fuse_relu(op):
            ops[i].fuse_relu(op)
    for j, op in enumerate(ops):
        if type(op) is ScaledDotProductAttention:
            _fuse_attention(graph, ops, j, readers, producer, outputs)


def _fuse_attention(graph, ops, j, readers, producer, outputs):
    """Multi-head self-attention's chain: one (N, L, 3E) projection, cut into q, k and v thirds
    (three Narrows), each split into heads (SplitHeads), attended (step j), merged back
    (MergeHeads). When every link is read by the next one only, the attention reads the heads
    of q, k and v as strided views of the projection and writes the merged layout itself
    (ScaledDotProductAttention.fuse_packed); the other seven ops pass values and gradients
    through. Forward saves seven copies, backward seven copies and two full-size gradient adds.
    (The projection may have other readers: its gradient from the attention is whole.)"""

    def only_reader(slot, i):
        """Is step i the one reader of `slot`, which is no output of the model?"""
        return slot not in outputs and readers.get(slot) == [i]

    step = graph.steps[j]
    if len(set(step.ins[:3])) != 3:
        return
    heads, narrows, source = [], [], None
    for part, s in enumerate(step.ins[:3]):
        i = producer.get(s)
        if i is None or type(ops[i]) is not SplitHeads or not only_reader(s, j):
            return
        n = producer.get(graph.steps[i].ins[0])
        if n is None or type(ops[n]) is not Narrow or not only_reader(graph.steps[i].ins[0], i):
            return
        heads.append(i)
        narrows.append(n)
        index = ops[n].attrs.get("index")
        x = graph.steps[n].ins[0]
        if source is None:
            source, E = x, graph.steps[n].tensor.shape[-1]
            p = producer.get(source)        # the projection: a step's (N, L, 3E) output
            if not isinstance(E, int) or p is None \
                    or tuple(graph.steps[p].tensor.shape[-1:]) != (3 * E,):
                return
        if x != source or not _is_third(index, part, E):
            return
    h = ops[heads[0]].attrs.get("num_heads")
    if any(ops[i].attrs.get("num_heads") != h for i in heads) or E % h:
        return
    merge = [i for i in readers.get(step.out, []) if type(ops[i]) is MergeHeads]
    if step.out in outputs or len(merge) != 1 or readers[step.out] != merge \
            or ops[merge[0]].attrs.get("num_heads") != h:
        return
    ops[j].fuse_packed(h, E)
    for i in heads + narrows + merge:
        ops[i].fused = True


def _is_third(index, part, E):
    """Is `index` x[..., part*E:(part+1)*E], the q (0), k (1) or v (2) third of the last axis?"""
    return (isinstance(index, tuple) and len(index) == 2 and index[0] is Ellipsis
            and isinstance(index[1], slice) and index[1].step in (None, 1)
            and index[1].start == part * E and index[1].stop == (part + 1) * E)


def _step_error(step, op, args, error):
    """A run-time failure of one step, named by the layer (or op) and the shapes involved."""
    call = step.tensor.grad_fn.call if step.tensor is not None else None
    where = repr(call.layer) if call is not None else f"the {op.name} op"
    built = tuple(step.tensor.shape) if step.tensor is not None else None
    shapes = ", ".join(str(a.shape) for a in args)
    return (f"Model: {where} failed on inputs of shape {shapes} (its output had shape {built} "
            f"when the model was built): {error} (if a shape was fixed while building, e.g. "
            f"reshape(x.shape[0], -1) on an Input whose batch dim is 1 then, use -1 or Flatten() "
            f"so that it follows the batch size)")


class ModelOp(Op):
    """The whole compiled plan seen from the eager tape: one node whose backward runs the plan
    in reverse. attrs: plan, seed_slot (the slot whose gradient arrives), generation, logits
    (the tensor of the logits when the output is their softmax, else None).

    Derivative: the plan's steps in reverse, from d(output) to the inputs and parameters"""

    def softmax_logits(self, node):
        return self.logits

    def saves(self, array):
        """The plan keeps its values for the backward pass: an in-place change of one of them
        (a weight updated between the forward and the backward) is caught at backward()."""
        return any(v is not None and np.may_share_memory(v, array) for v in self.plan.values)

    def forward(self, *xs):
        raise RuntimeError("ModelOp is created by Model.__call__, not applied")

    def backward(self, g):
        plan = self.plan
        if plan.generation != self.generation:
            raise RuntimeError(
                "backward(): the model was called again at the same input shape after this "
                "output was computed, which overwrote the values its backward needs; call "
                "backward() before the next forward pass (or use distinct batch shapes)")
        g = np.ascontiguousarray(g, dtype=plan.values[self.seed_slot].dtype)
        input_grads, param_grads = plan.backward(self.seed_slot, g)
        # the tape may hold an input's gradient (a non-leaf input) while another output of the
        # same call runs the plan backward again into the same buffers: hand it a copy.
        # Parameters are leaves, whose gradients the tape adds into .grad at once.
        input_grads = [None if gi is None else gi.copy() for gi in input_grads]
        return tuple(input_grads) + tuple(param_grads)

    def release(self):
        pass

    @property
    def name(self):
        return "Model"
