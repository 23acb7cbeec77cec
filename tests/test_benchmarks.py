"""The twins of benchmarks/workloads.py compute the same thing in pynn and in PyTorch.

Each workload runs for 2 steps at a small size (batch 8, narrow models) in both frameworks from
the same initial weights: the second step's loss, which follows one optimizer update, must agree
to float32 rounding, as must a first step's loss. Inference workloads compare the predictions.
Also: the FLOP counts of benchmarks/flops.py against hand counts, and a short end-to-end run of
benchmarks/run.py and benchmarks/profile_steps.py (slow).
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
DATA_DIR = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(BENCH))

import flops  # noqa: E402
import run as R  # noqa: E402
import workloads as W  # noqa: E402

torch = pytest.importorskip("torch")

RTOL, ATOL = 1e-5, 1e-6         # float32 rounding of a loss near 2, through one update


@pytest.fixture(scope="module")
def data():
    torch.set_num_threads(1)
    return R.load_data(str(DATA_DIR))


def tiny(name, framework, data, steps):
    """(run, model) of workload `name` at batch 8 and, for the examples' models, a small width."""
    if name == "resnet-fmnist":
        x, y = data.fashion
        return W.resnet_training(framework, x, y, steps=steps, batch=8, width=4)
    if name == "lstm-seqmnist":
        x, y = data.mnist[:2]
        return W.lstm_training(framework, x.reshape(-1, 28, 28), y, steps=steps, batch=8,
                               hidden=16)
    if name == "transformer-words":
        return W.words_training(framework, data.words, steps=steps, batch=8, embed=16, heads=2,
                                layers=1)
    if name == "moons":
        return W.moons_training(framework, steps=steps)
    return R.make(name, framework, data, steps, batch=8)


TRAINING = [n for n in R.WORKLOADS if n not in R.INFERENCE]


@pytest.mark.parametrize("name", TRAINING)
@pytest.mark.parametrize("steps", [1, 2])
def test_training_twins_give_the_same_loss(name, steps, data):
    losses = {fw: tiny(name, fw, data, steps)[0]() for fw in ("pynn", "torch")}
    np.testing.assert_allclose(losses["pynn"], losses["torch"], rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("name", R.INFERENCE)
def test_inference_twins_give_the_same_predictions(name, data):
    _, model = tiny(name, "pynn", data, 1)
    _, net = tiny(name, "torch", data, 1)
    x = data.mnist[2][:16]
    x = x.reshape(len(x), -1) if name == "inference-mlp" else x
    with torch.no_grad():
        expected = torch.softmax(net(torch.from_numpy(x)), dim=1).numpy()
    np.testing.assert_allclose(model.predict(x), expected, rtol=1e-5, atol=1e-6)


def test_every_example_twin_starts_from_the_same_outputs(data):
    """Forward outputs (BatchNorm in training mode) equal before any step, at full size."""
    from torch_twins import TorchLSTMClassifier, TorchResNet, TorchWords, load_pynn_weights
    x = data.fashion[0][:4]
    model = W.resnet_model(8)
    net = load_pynn_weights(TorchResNet(8), model)
    np.testing.assert_allclose(model(x).numpy(), torch.softmax(net(torch.from_numpy(x)), 1)
                               .detach().numpy(), rtol=1e-5, atol=1e-6)
    rows = data.mnist[0][:4].reshape(-1, 28, 28)
    model = W.lstm_model(32)
    net = load_pynn_weights(TorchLSTMClassifier(32), model)
    np.testing.assert_allclose(model(rows).numpy(), torch.softmax(net(torch.from_numpy(rows)), 1)
                               .detach().numpy(), rtol=1e-5, atol=1e-6)
    import words_transformer as WT
    ids = data.words[0][:4]
    block = data.words[3]
    model = WT.build_model(block, 16, 2, 1)
    net = load_pynn_weights(TorchWords(block, 16, 2, 1), model)
    np.testing.assert_allclose(model(ids).numpy(), net(torch.from_numpy(ids)).detach().numpy(),
                               rtol=1e-5, atol=1e-5)


def test_load_pynn_weights_rejects_a_twin_of_another_shape():
    from torch_twins import TorchLSTMClassifier, load_pynn_weights
    with pytest.raises(RuntimeError, match="size mismatch"):
        load_pynn_weights(TorchLSTMClassifier(16), W.lstm_model(32))


def test_flops_of_the_readme_cnn_and_the_lstm_by_hand():
    # readme CNN, multiply-adds per image: conv1 28*28*32 * 1*9, conv2 14*14*64 * 32*9,
    # dense 3136*128, dense 128*10; the first conv needs no input gradient
    conv1, conv2, d1, d2 = 784 * 32 * 9, 196 * 64 * 288, 3136 * 128, 128 * 10
    model = W.pynn_model(W.readme_cnn_layers(), (1, 28, 28))
    assert flops.forward_flops(model) == 2 * (conv1 + conv2 + d1 + d2)
    assert flops.training_flops(model) == 2 * (3 * (conv1 + conv2 + d1 + d2) - conv1)
    # LSTM(128) over 28 steps of 28 features: 28 * 512 * (28 + 128); its input projection
    # (28 * 512 * 28) needs no input gradient; Dense(128, 10)
    lstm, proj, dense = 28 * 512 * 156, 28 * 512 * 28, 1280
    model = W.lstm_model(128)
    assert flops.forward_flops(model) == 2 * (lstm + dense)
    assert flops.training_flops(model) == 2 * (3 * (lstm + dense) - proj)


def test_flops_of_the_words_transformer_by_hand(data):
    import words_transformer as WT
    T, E = data.words[3], 64
    block = 3 * T * E * E + T * E * E + 2 * T * T * E + 2 * T * E * 4 * E   # qkv, out, attn, MLP
    head = T * E * 27
    model = WT.build_model(T, E, 4, 2)
    assert flops.forward_flops(model) == 2 * (2 * block + head)
    assert flops.training_flops(model) == 6 * (2 * block + head)    # the embedding comes first


def test_ratio_range_pairs_each_pynn_run_with_the_torch_run_beside_it():
    lo, hi = R.ratio_range({"pynn": [1.0, 3.0, 2.0], "torch": [2.0, 2.0, 1.0]})
    assert (lo, hi) == (0.5, 2.0)
    with pytest.raises(ValueError):
        R.ratio_range({"pynn": [1.0], "torch": [1.0, 2.0]})


def test_sgemm_peak_is_a_rate():
    assert flops.sgemm_peak(128, repeats=2) > 0


def test_blas_kernels_names_openblas_core_and_the_environment_settings(monkeypatch):
    for var in [v for v in os.environ if v.startswith("OPENBLAS_")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")                 # a thread count: left out
    assert flops.blas_kernels().endswith(" kernels (its own choice for this CPU)")
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    assert flops.blas_kernels().endswith(" (OPENBLAS_CORETYPE=Haswell set in the environment)")
    name = flops.blas_kernels().split(" kernels")[0]
    assert name.startswith("OpenBLAS ") and name != "OpenBLAS ?"     # NumPy's wheels ship it


@pytest.mark.slow
def test_run_and_profile_scripts_end_to_end():
    names = ["moons", "lstm-seqmnist", "inference-mlp"]
    out = subprocess.run([sys.executable, str(BENCH / "run.py"), "--repeats", "1", "--passes",
                          "1", "--steps", "2", "--no-memory", "--no-cold-start", "--peak-size",
                          "256", "--profile", "--pause", "0", "--only", *names],
                         capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert "command: python benchmarks/run.py --repeats 1" in out
    assert "0 s idle before each timed run" in out
    for name in names:
        rows = [line for line in out.splitlines() if line.startswith(f"| {name} |")]
        assert len(rows) == 3, out          # main table, GFLOP/s table, profile table
        lo, hi = map(float, rows[0].split(" | ")[5].split("-"))     # the side-by-side range
        assert 0 < lo <= hi, rows[0]
    assert "SGEMM peak" in out
    assert "NumPy's BLAS: OpenBLAS " in out


def test_op_times_lists_the_plan_ops_within_the_step():
    out = subprocess.run([sys.executable, str(BENCH / "op_times.py"), "mnist-cnn", "--steps", "3",
                          "--per-step"], capture_output=True, text=True, check=True,
                         cwd=ROOT).stdout
    head = out.splitlines()[0]
    total, ops = (float(head.split(": ")[1].split(" ms per step")[0]),
                  float(head.split(", ")[1].split(" ms in")[0]))
    assert 0 < ops <= total, head
    assert "| Conv2d + MaxPool2d | forward |" in out      # the fused conv + pool of W3
    assert "| Linear | backward |" in out


@pytest.mark.parametrize("flag, winograd", [([], 1), (["--no-winograd"], 0)])
def test_op_times_counts_the_winograd_convs(flag, winograd):
    """readme-cnn's second conv runs Winograd unless --no-winograd says otherwise."""
    out = subprocess.run([sys.executable, str(BENCH / "op_times.py"), "readme-cnn", "--steps",
                          "2", *flag], capture_output=True, text=True, check=True,
                         cwd=ROOT).stdout
    assert f"convs: 2, by Winograd: {winograd}" in out, out


def test_torch_op_times_lists_the_aten_ops_per_step():
    pytest.importorskip("torch")
    out = subprocess.run([sys.executable, str(BENCH / "torch_op_times.py"), "mnist-cnn",
                          "--steps", "3", "--shapes"], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout
    rows = [line for line in out.splitlines() if line.startswith("| aten::")]
    assert rows, out
    conv = [r for r in rows if r.startswith("| aten::mkldnn_convolution | [64, 1, 28, 28]")]
    assert conv, out                                       # W3's first conv, with its shapes
    assert all(float(r.rsplit("|", 2)[1]) >= 0 for r in rows)


@pytest.mark.slow
def test_compile_times_reports_a_cold_and_a_warm_start_and_an_editable_install():
    out = subprocess.run([sys.executable, str(BENCH / "compile_times.py"), "--data-dir",
                          str(DATA_DIR), "--editable"], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout
    lines = out.splitlines()
    assert lines[0].startswith("python bytecode: "), out
    cold = [line for line in lines if line.startswith("cold cache: ")]
    warm = [line for line in lines if line.startswith("warm cache: ")]
    assert len(cold) == 1 and len(warm) == 1, out
    assert not cold[0].endswith(" 0 functions)"), cold      # an empty cache compiles
    assert warm[0].endswith(" 0 functions)"), warm           # the second process loads them
    # Numba's one-time set-up is timed on its own, as part of the first steps
    steps, setup = (float(v) for v in re.search(
        r"steps ([0-9.]+) s \(Numba's one-time set-up ([0-9.]+) s", warm[0]).groups())
    assert 0 < setup <= steps, warm
    assert "| `pynn.kernels." in out, out                     # the table of what compiled
    # `pip install -e` compiled the kernels into the clone: its first run compiles nothing
    editable = [line for line in lines if line.startswith("editable install, ")]
    assert [line.split(":")[0] for line in editable] == [
        "editable install, first run after install", "editable install, second run"], out
    assert all(line.endswith(" 0 functions)") for line in editable), editable


@pytest.mark.slow
def test_compile_times_of_another_workload():
    """--workloads readme-cnn: the README CNN's first step, whose second conv runs Winograd."""
    out = subprocess.run([sys.executable, str(BENCH / "compile_times.py"), "--data-dir",
                          str(DATA_DIR), "--workloads", "readme-cnn"], capture_output=True,
                         text=True, check=True, cwd=ROOT).stdout
    assert "cold cache: import " in out and "first readme-cnn steps" in out, out
    assert "| `pynn.kernels.winograd.winograd_input` |" in out, out


def test_eager_cnn_times_pynn_split_one_thread_and_torch():
    out = subprocess.run([sys.executable, str(BENCH / "eager_cnn.py"), "--steps", "1",
                          "--repeats", "1"], capture_output=True, text=True, check=True,
                         cwd=ROOT).stdout
    rows = {line.split(" | ")[0][2:]: line for line in out.splitlines() if line.startswith("| ")
            and not line.startswith("| run") and not line.startswith("|---")}
    assert set(rows) == {"pynn eager, batch split", "pynn eager, one thread", "torch eager"}, out
    assert rows["torch eager"].endswith("| 1.00 |"), rows
    assert all(float(r.split(" | ")[1]) > 0 for r in rows.values()), rows


def test_cross_core_times_adam_alone_and_after_each_read():
    out = subprocess.run([sys.executable, str(BENCH / "cross_core.py"), "--rounds", "2",
                          "--reps", "5", "--pause", "0"], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout
    rows = [line for line in out.splitlines() if line[:3] in ("| 1", "| 2")]
    assert len(rows) == 2, out
    for row in rows:
        cells = row.strip("| ").split(" | ")[1:]
        assert len(cells) == 4 and all(float(c) > 0 for c in cells), row
    assert "after a 2-thread read / alone: median " in out, out


def test_cross_core_gives_blas_its_threads_back():
    import cross_core

    from pynn.kernels import threads
    if not threads.blas_local_threads_available():
        pytest.skip("no OpenBLAS thread setter")
    before = threads._getter()
    alone, two, one = cross_core.pynn_case(3)
    assert threads._getter() == before
    assert min(alone, two, one) > 0


def test_recurrent_kernels_times_each_step_kernel_and_the_products():
    out = subprocess.run([sys.executable, str(BENCH / "recurrent_kernels.py"), "--repeats", "3",
                          "--rows", "4", "--hidden", "16", "--steps", "2"], capture_output=True,
                         text=True, check=True, cwd=ROOT).stdout
    rows = {line.split(" | ")[0][2:]: [float(c) for c in line.strip("| ").split(" | ")[1:]]
            for line in out.splitlines() if line.startswith("| ") and not line.startswith("|---")
            and not line.startswith(("| kernel", "| layer"))}
    assert len(rows) == 6 + 3 and all(v > 0 for r in rows.values() for v in r), out
    assert "BLAS h @ W_hh.T (4x16 by 16x64)" in rows, out
    for layer in ("LSTM", "GRU", "RNN"):        # pynn ms, torch ms and their ratio
        ours, theirs, ratio = rows[layer]
        assert abs(ratio - ours / theirs) < 0.01 + 0.01 * ratio, rows


def test_eager_ab_times_two_copies_of_pynn_side_by_side():
    out = subprocess.run([sys.executable, str(BENCH / "eager_ab.py"), str(ROOT / "pynn"),
                          "--runs", "2"], capture_output=True, text=True, check=True,
                         cwd=ROOT).stdout
    losses = out.split("; loss ")[1].split(" (this) vs ")
    assert losses[0] == losses[1].split(" (other)")[0], out     # the same code, the same loss
    assert float(out.split("median of the pairs ")[1]) > 0, out


def test_inference_layers_times_each_dense_product_in_both_frameworks():
    out = subprocess.run([sys.executable, str(BENCH / "inference_layers.py"), "--passes", "2",
                          "--pause", "0", "--images", "300", "--batch", "128", "--peak-size",
                          "256", "--data-dir", str(DATA_DIR)], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout
    cells = [[c.strip() for c in line.split("|")[1:-1]] for line in out.splitlines()
             if line.startswith("| ")]
    rows = {c[0]: c[1:] for c in cells}
    layers = ["Dense 784->256", "Dense 256->128", "Dense 128->32", "Dense 32->10"]
    assert [k for k in rows if k.startswith("Dense")] == layers, out   # biggest product first
    for name, (n_in, n_out) in zip(layers, [(784, 256), (256, 128), (128, 32), (32, 10)]):
        gflop = 2 * 300 * n_in * n_out / 1e9
        assert float(rows[name][0]) == round(gflop, 3), out
        for ms, rate in (rows[name][1:3], rows[name][4:6]):    # pynn's, then torch's
            # the rate is the layer's work over its time (both printed rounded)
            ms, rate = float(ms), float(rate)
            assert ms > 0.0005, out
            assert gflop / (ms + 0.0005) * 1e3 - 0.05 <= rate <= gflop / (ms - 0.0005) * 1e3 \
                + 0.05, (name, out)
    whole, rest = float(rows["whole pass"][1]), float(rows["rest of the pass"][1])
    assert 0 < rest < whole, out
    assert float(out.split("whole pass (medians): ")[1].split()[0]) > 0, out
    without = out.split("without the weight copies (pynn, x @ W.T): whole pass ")[1]
    assert float(without.split(" ms")[0]) > 0, out
    assert float(without.split("rounds' ratios: ")[1]) > 0, out


def test_linear_layouts_compares_both_layouts_of_each_model_shape():
    out = subprocess.run([sys.executable, str(BENCH / "linear_layouts.py"), "--repeats", "1",
                          "--rows", "8", "64", "--shapes", "models"], capture_output=True,
                         text=True, check=True, cwd=ROOT).stdout
    cells = [[c.strip() for c in line.split("|")[1:-1]] for line in out.splitlines()
             if line.startswith("| ") and "->" in line and "rows:" not in line]
    sys.path.insert(0, str(BENCH))
    try:
        from linear_layouts import MODEL_SHAPES
    finally:
        sys.path.remove(str(BENCH))
    assert [c[0] for c in cells] == [f"{k} -> {n}" for k, n in MODEL_SHAPES], out
    for row in cells:
        assert len(row) == 4, out                     # the shape, two row counts, the copy
        for cell in row[1:3]:
            ratio, view = cell.split(" (")
            assert float(ratio) > 0 and float(view.rstrip(")")) > 0, out
        assert float(row[3]) > 0, out
