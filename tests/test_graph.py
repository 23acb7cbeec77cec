"""Computation graph pictures: pynn.graph.draw on eager tensors and on Models, as DOT source, and
rendered by Graphviz when it is installed."""
import re
import shutil
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from pynn import Input, Model, Tensor
from pynn.activations import relu, softmax
from pynn.graph import draw
from pynn.graphviz import STYLES, quote
from pynn.layers import Conv2d, Dense, Flatten, MaxPool2d
from pynn.ops.base import Op
from pynn.tensor import apply

PARAM, INPUT, CONST, PLAIN = (STYLES[k][0] for k in ("param", "input", "const", "tensor"))
needs_dot = pytest.mark.skipif(shutil.which("dot") is None,
                               reason="Graphviz `dot` is not installed (apt-get install graphviz)")


# -- a tiny DOT reader for the checks ----------------------------------------------------------
def unquote(s):
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), s)


def parse(src):
    """nodes: id -> {label, fillcolor, penwidth, op}; edges: [(a, b)]; clusters: label -> ids."""
    nodes, edges, clusters, current = {}, [], {}, None
    for line in src.splitlines():
        line = line.strip()
        m = re.match(r'label="((?:[^"\\]|\\.)*)"; style="rounded,dashed"', line)
        if m:
            current = clusters.setdefault(unquote(m.group(1)), [])
            continue
        if line == "}":
            current = None
            continue
        m = re.match(r"(\w+) -> (\w+)", line)
        if m:
            edges.append(m.groups())
            continue
        m = re.match(r'(\w+) \[label="((?:[^"\\]|\\.)*)"(.*)\];$', line)
        if m:
            key, label, rest = m.groups()
            fill = re.search(r'fillcolor="([^"]+)"', rest)
            nodes[key] = {"label": unquote(label), "fillcolor": fill and fill.group(1),
                          "penwidth": "penwidth" in rest, "op": "shape=box" in rest}
            if current is not None:
                current.append(key)
    return nodes, edges, clusters


def by_label(nodes, label):
    return [k for k, n in nodes.items() if n["label"] == label]


def one(nodes, label):
    found = by_label(nodes, label)
    assert len(found) == 1, (label, found)
    return found[0]


def check_bipartite(nodes, edges):
    """Every edge runs tensor -> op or op -> tensor, and each op makes exactly one tensor."""
    for a, b in edges:
        assert nodes[a]["op"] != nodes[b]["op"], (a, b)
    for key, n in nodes.items():
        if n["op"]:
            assert sum(1 for a, _ in edges if a == key) == 1


# -- eager graphs ------------------------------------------------------------------------------
def test_eager_x_times_w_plus_b():
    x = Tensor.randn(3, 4)
    w = Tensor.randn(4, requires_grad=True)
    b = Tensor.randn(4, requires_grad=True)
    src = draw(x * w + b)
    assert isinstance(src, str) and src.startswith("digraph")
    nodes, edges, _ = parse(src)
    mul, add = one(nodes, "MulBackward"), one(nodes, "AddBackward")
    x_key, w_key, b_key = "t0", "t1", "t3"
    assert nodes[x_key] == {"label": "(3, 4)", "fillcolor": INPUT, "penwidth": False, "op": False}
    assert nodes[w_key]["fillcolor"] == nodes[b_key]["fillcolor"] == PARAM
    assert nodes[w_key]["label"] == nodes[b_key]["label"] == "(4,)"
    out = [k for k, n in nodes.items() if n["penwidth"]]
    assert len(out) == 1 and nodes[out[0]]["label"] == "(3, 4)"
    assert nodes[out[0]]["fillcolor"] == PLAIN
    xw = next(b for a, b in edges if a == mul)
    assert sorted(edges) == sorted([(x_key, mul), (w_key, mul), (mul, xw), (xw, add),
                                    (b_key, add), (add, out[0])])
    check_bipartite(nodes, edges)


def test_eager_sum_with_a_constant():
    x = Tensor.randn(2, 3)
    w = Tensor.randn(2, 3, requires_grad=True)
    src = draw((x * w * 2.0).sum())
    nodes, edges, _ = parse(src)
    const = one(nodes, "2\n()")
    assert nodes[const]["fillcolor"] == CONST
    assert len(by_label(nodes, "MulBackward")) == 2
    total = one(nodes, "SumBackward")
    (out,) = [b for a, b in edges if a == total]
    assert nodes[out]["label"] == "()" and nodes[out]["penwidth"]
    assert len(edges) == 2 * 3 + 2          # two binary ops, one unary op, one edge out of each
    fills = {n["fillcolor"] for n in nodes.values() if not n["op"]}
    assert fills == {INPUT, PARAM, CONST, PLAIN}
    check_bipartite(nodes, edges)


def test_a_tensor_used_twice_gives_two_edges():
    x = Tensor.randn(3, requires_grad=True)
    nodes, edges, _ = parse(draw(x * x))
    mul = one(nodes, "MulBackward")
    assert edges.count(("t0", mul)) == 2


def test_a_leaf_alone_is_one_node():
    nodes, edges, _ = parse(draw(Tensor.randn(2, 5, requires_grad=True)))
    assert edges == [] and list(nodes) == ["t0"]
    assert nodes["t0"]["fillcolor"] == PARAM and nodes["t0"]["penwidth"]


def test_eager_layer_calls_are_boxes_with_named_parameters():
    d1, d2 = Dense(4, 8, relu), Dense(8, 3)
    loss = (d2(d1(Tensor.randn(5, 4))) ** 2).mean()
    nodes, edges, clusters = parse(draw(loss))
    assert set(clusters) == {"dense_1 (Dense)", "dense_2 (Dense)"}
    w1 = one(nodes, "dense_1.weight\n(8, 4)")
    assert w1 in clusters["dense_1 (Dense)"] and nodes[w1]["fillcolor"] == PARAM
    assert one(nodes, "dense_2.bias\n(3,)") in clusters["dense_2 (Dense)"]
    assert len(by_label(nodes, "LinearBackward")) == 2
    check_bipartite(nodes, edges)


def test_ids_are_unique_stable_and_the_output_deterministic():
    def build():
        x = Tensor(np.ones((2, 3), np.float32))
        w = Tensor(np.ones((3, 3), np.float32), requires_grad=True)
        return ((x @ w).relu() * 0.5).sum()
    y = build()
    src = draw(y)
    assert draw(y) == src == draw(build())
    keys = re.findall(r"^\s*(\w+) \[label=", src, re.M)
    assert len(keys) == len(set(keys))
    assert all(re.fullmatch(r"t\d+|op\d+|legend", k) for k in keys)


def test_labels_are_escaped():
    class Weird(Op):
        name = 'My<"Op">\\'

        def forward(self, x):
            return x * 1

        def backward(self, g):
            return (g,)

    y = apply(Weird(), Tensor.randn(2, requires_grad=True))
    src = draw(y)
    assert 'label="My<\\"Op\\">\\\\Backward"' in src
    nodes, _, _ = parse(src)
    assert one(nodes, 'My<"Op">\\Backward')
    assert quote('a "b"\n<c>\\') == '"a \\"b\\"\\n<c>\\\\"'
    if shutil.which("dot"):     # Graphviz reads it back as the literal text
        import subprocess
        svg = subprocess.run(["dot", "-Tsvg"], input=src.encode(), capture_output=True,
                             check=True).stdout
        texts = [e.text for e in ET.fromstring(svg).iter() if e.tag.endswith("text")]
        assert 'My<"Op">\\Backward' in texts


# -- models ------------------------------------------------------------------------------------
def dense_model():
    x_in = Input((784,))
    h = Dense(784, 256, relu)(x_in)
    return Model(x_in, Dense(256, 10, softmax)(h))


def cnn_model():
    x_in = Input((1, 28, 28))
    x = Conv2d(1, 8, 3, padding=1, activation=relu)(x_in)
    x = MaxPool2d(2)(x)
    x = Flatten()(x)
    return Model(x_in, Dense(8 * 14 * 14, 10, softmax)(x))


def test_dense_model():
    model = dense_model()
    nodes, edges, clusters = parse(draw(model))
    assert len(by_label(nodes, "LinearBackward")) == 2
    assert one(nodes, "input_1\n(None, 784)") == "t0"
    assert nodes["t0"]["fillcolor"] == INPUT
    assert nodes[one(nodes, "(None, 256)")]["fillcolor"] == PLAIN
    w = one(nodes, "dense_1.weight\n(256, 784)")
    assert nodes[w]["fillcolor"] == PARAM and w in clusters["dense_1 (Dense)"]
    assert nodes[one(nodes, "dense_2.bias\n(10,)")]["fillcolor"] == PARAM
    softmax_op = one(nodes, "SoftmaxBackward")
    (out,) = [b for a, b in edges if a == softmax_op]
    assert nodes[out]["label"] == "(None, 10)" and nodes[out]["penwidth"]
    steps = model.graph.steps
    assert len(edges) == sum(len(s.ins) + 1 for s in steps)
    for i, step in enumerate(steps):        # edges follow the compiled steps: ins -> op -> out
        assert sorted(a for a, b in edges if b == f"op{i}") == sorted(f"t{s}" for s in step.ins)
        assert [b for a, b in edges if a == f"op{i}"] == [f"t{step.out}"]
    check_bipartite(nodes, edges)


def test_cnn_model():
    model = cnn_model()
    src = draw(model)
    nodes, edges, clusters = parse(src)
    for name in ("Conv2dBackward", "MaxPool2dBackward", "FlattenBackward", "LinearBackward",
                 "SoftmaxBackward"):
        assert nodes[one(nodes, name)]["op"]
    for shape in ("(None, 8, 28, 28)", "(None, 8, 14, 14)", "(None, 1568)"):
        one(nodes, shape)
    assert nodes[one(nodes, "input_1\n(None, 1, 28, 28)")]["fillcolor"] == INPUT
    assert nodes[one(nodes, "conv2d_1.weight\n(8, 1, 3, 3)")]["fillcolor"] == PARAM
    assert set(clusters) == {"conv2d_1 (Conv2d)", "maxpool2d_1 (MaxPool2d)",
                             "flatten_1 (Flatten)", "dense_1 (Dense)"}
    assert len(edges) == sum(len(s.ins) + 1 for s in model.graph.steps)
    assert sum(n["penwidth"] for n in nodes.values()) == 1
    assert "rankdir=TB" in draw(model, rankdir="TB") and "rankdir=LR" in src
    check_bipartite(nodes, edges)


def test_model_constants_are_grey():
    x_in = Input((4,))
    model = Model(x_in, Dense(4, 3)(x_in) * 2.0 + 1)
    nodes, edges, _ = parse(draw(model))
    assert nodes[one(nodes, "2\n()")]["fillcolor"] == CONST
    assert nodes[one(nodes, "1\n()")]["fillcolor"] == CONST
    assert nodes[one(nodes, "AddBackward")]["op"]
    check_bipartite(nodes, edges)


# -- files -------------------------------------------------------------------------------------
def test_dot_file_is_written_as_is(tmp_path):
    y = (Tensor.randn(3, requires_grad=True) * 2).sum()
    src = draw(y, tmp_path / "g.dot")
    assert (tmp_path / "g.dot").read_text() == src
    assert draw(y, str(tmp_path / "g.gv")) == src


@needs_dot
def test_svg_is_rendered(tmp_path):
    src = draw(cnn_model(), tmp_path / "cnn.svg")
    root = ET.parse(tmp_path / "cnn.svg").getroot()
    assert root.tag.endswith("svg")
    texts = {e.text for e in root.iter() if e.tag.endswith("text")}
    assert {"Conv2dBackward", "(None, 8, 14, 14)", "conv2d_1.weight"} <= texts
    assert src.startswith("digraph")


@needs_dot
def test_png_is_rendered(tmp_path):
    draw(dense_model(), tmp_path / "m.png")
    assert (tmp_path / "m.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_without_graphviz_a_clear_error_and_the_dot_file(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda *args, **kwargs: None)
    y = (Tensor.randn(3, requires_grad=True) * 2).sum()
    with pytest.raises(RuntimeError, match="apt-get install graphviz") as info:
        draw(y, tmp_path / "g.svg")
    message = str(info.value)
    assert "brew install graphviz" in message and "g.dot" in message
    assert (tmp_path / "g.dot").read_text() == draw(y) == info.value.dot_source
    assert not (tmp_path / "g.svg").exists()


def test_bad_arguments():
    y = Tensor.randn(2, requires_grad=True) * 2
    with pytest.raises(ValueError, match="suffix"):
        draw(y, "graph.jpeg2000")
    with pytest.raises(ValueError, match="rankdir"):
        draw(y, rankdir="sideways")
    with pytest.raises(TypeError, match="Tensor"):
        draw(np.ones(3))


def test_draw_plan_shows_steps_slots_and_buffers():
    import pynn
    from pynn import Input, Model
    from pynn.layers import Conv2d, Dense, Flatten, MaxPool2d
    x_in = Input((1, 8, 8))
    h = MaxPool2d(2)(Conv2d(1, 4, 3, padding=1, activation="relu")(x_in))
    model = Model(x_in, Dense(64, 3)(Flatten()(h)))
    before = pynn.graph.draw(model, plan=True)          # never called: a batch of one
    assert "step 0: Conv2d" in before and "step 3: Linear" in before
    assert "slot 0  input_1\\n(1, 1, 8, 8) float32" in before
    assert "conv2d_1.weight\\n(4, 1, 3, 3)" in before and "buffer cols" in before
    assert not model._plans                             # nothing kept, nothing changed
    model(np.zeros((5, 1, 8, 8), np.float32)).sum().backward()
    after = pynn.graph.draw(model, plan=True)           # the plan that ran: batch 5
    assert "(5, 4, 4, 4) float32" in after and "(5, 3) float32" in after
    # the conv computes the pool (Conv2d.fuse_pool): its full-size output is never stored
    assert "step 0: Conv2d + MaxPool2d, fused" in after
    assert "step 1: MaxPool2d (computed by the conv before it)" in after
    assert "not stored: the conv writes the pooled output" in after
    with pytest.raises(TypeError, match="only a Model"):
        pynn.graph.draw(model.outputs[0], plan=True)
