"""The example scripts run end to end (small sizes) and print a final line that shows learning.

Each script runs in a subprocess, as a user would run it, and its last line
("final: key=value ...") is parsed. The MNIST ones read the IDX files from ../shared/data next
to the repository; without them these tests are skipped with a reason.
"""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import pynn
from pynn.datasets import mnist

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
DATA_DIR = REPO.parent / "shared" / "data"

needs_mnist = pytest.mark.skipif(
    not all((DATA_DIR / "mnist" / f).is_file() for f in (
        "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")),
    reason=f"the MNIST IDX files are not in {DATA_DIR / 'mnist'}")


def run_example(script, *args, cwd, extra_path=(), timeout=300):
    """Run examples/<script> with `args`; return (stdout, the final line's fields as a dict)."""
    env = dict(os.environ, MPLBACKEND="Agg")
    paths = [str(p) for p in extra_path] + [str(REPO)] + [env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(paths).rstrip(os.pathsep)
    env.pop("PYNN_DATA_DIR", None)
    proc = subprocess.run([sys.executable, str(EXAMPLES / script), *map(str, args)], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{script} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    lines = proc.stdout.strip().splitlines()
    assert lines and lines[-1].startswith("final: "), f"no final line:\n{proc.stdout[-2000:]}"
    fields = dict(item.split("=", 1) for item in lines[-1][len("final: "):].split())
    return proc.stdout, fields


def check_saved_model(path, fields, flatten, limit):
    """The saved file loads with pynn.load_model and gives the test accuracy the script printed."""
    assert Path(path).is_file()
    model = pynn.load_model(path)
    (_, _), (test_x, test_y) = mnist(flatten=flatten, data_dir=DATA_DIR)
    probs = model.predict(test_x[:limit], batch_size=1000)
    assert probs.shape == (limit, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-4)
    acc = float(np.mean(probs.argmax(axis=1) == test_y[:limit]))
    assert acc == pytest.approx(float(fields["test_acc"]), abs=1.5 / limit)   # one digit at most


@pytest.mark.parametrize("script", ["moons_mlp.py", "mnist_mlp.py", "mnist_cnn.py"])
def test_help(script, tmp_path):
    proc = subprocess.run([sys.executable, str(EXAMPLES / script), "--help"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert proc.returncode == 0, proc.stderr
    for option in ("--epochs", "--batch-size", "--seed"):
        assert option in proc.stdout
    if script.startswith("mnist"):
        assert "--data-dir" in proc.stdout and "--limit" in proc.stdout and "--save" in proc.stdout


def test_moons_mlp_fits_the_training_set_and_draws(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "moons.png"
    _, fields = run_example("moons_mlp.py", "--out", out, cwd=tmp_path)
    assert float(fields["train_acc"]) == 1.0
    assert int(fields["epochs"]) == 200
    assert fields["plot"] == str(out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_moons_mlp_without_matplotlib_skips_the_picture(tmp_path):
    fake = tmp_path / "no_matplotlib" / "matplotlib"   # a package whose import fails
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('matplotlib hidden for this test')\n")
    out = tmp_path / "moons.png"
    stdout, fields = run_example("moons_mlp.py", "--epochs", 5, "--out", out, cwd=tmp_path,
                                 extra_path=[fake.parent])
    assert "matplotlib is not installed" in stdout
    assert fields["plot"] == "None" and not out.exists()


@needs_mnist
def test_mnist_mlp_learns_on_a_small_subset(tmp_path):
    limit = 2000
    save = tmp_path / "mlp.pynn"
    _, fields = run_example("mnist_mlp.py", "--data-dir", DATA_DIR, "--limit", limit,
                            "--epochs", 2, "--save", save, cwd=tmp_path)
    assert int(fields["epochs"]) == 2
    # measured: 0.71-0.74 over seeds 0-3 (64 steps); chance is 0.10
    assert 0.5 < float(fields["test_acc"]) <= 1.0
    assert 0.5 < float(fields["train_acc"]) <= 1.0
    assert float(fields["sec_per_epoch"]) > 0
    assert fields["model"] == str(save)
    check_saved_model(save, fields, flatten=True, limit=limit)


@needs_mnist
def test_mnist_cnn_learns_on_a_small_subset(tmp_path):
    limit = 512
    save = tmp_path / "cnn.pynn"
    stdout, fields = run_example("mnist_cnn.py", "--data-dir", DATA_DIR, "--limit", limit,
                                 "--epochs", 1, "--batch-size", 32, "--save", save, cwd=tmp_path)
    assert "Total params" in stdout          # model.summary() is printed at the start
    assert int(fields["epochs"]) == 1
    # measured: 0.40-0.52 over seeds 0-2 (16 steps); chance is 0.10
    assert 0.25 < float(fields["test_acc"]) <= 1.0
    assert fields["model"] == str(save)
    check_saved_model(save, fields, flatten=False, limit=limit)


def test_autograd_demo_help_and_fit(tmp_path):
    proc = subprocess.run([sys.executable, str(EXAMPLES / "autograd_demo.py"), "--help"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert proc.returncode == 0, proc.stderr
    assert "--steps" in proc.stdout and "--lr" in proc.stdout and "final" not in proc.stdout
    _, fields = run_example("autograd_demo.py", cwd=tmp_path)
    assert float(fields["w"]) == pytest.approx(3.0, abs=0.05)      # y = 3x - 1 + noise
    assert float(fields["b"]) == pytest.approx(-1.0, abs=0.05)


def test_missing_data_dir_is_reported_absolute_and_not_created(tmp_path):
    """A relative --data-dir is taken from the caller's working directory; when the files can't
    be had, the error names the absolute folder, and no empty folder is left behind."""
    env = dict(os.environ, PYTHONPATH=str(REPO), PYNN_MNIST_MIRROR="file:///nonexistent-mirror/")
    env.pop("PYNN_DATA_DIR", None)
    proc = subprocess.run([sys.executable, str(EXAMPLES / "mnist_mlp.py"), "--data-dir",
                           "rel/data", "--limit", "10"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert str(tmp_path / "rel" / "data" / "mnist") in proc.stderr, proc.stderr[-2000:]
    assert not (tmp_path / "rel").exists()


@needs_mnist
def test_relative_data_dir_is_read_from_the_callers_folder(tmp_path):
    (tmp_path / "here").symlink_to(DATA_DIR, target_is_directory=True)
    _, fields = run_example("mnist_mlp.py", "--data-dir", "here", "--limit", 200, "--epochs", 1,
                            cwd=tmp_path)
    assert int(fields["epochs"]) == 1
HAVE_WORDS = (DATA_DIR / "words" / "american-english").is_file()


@pytest.mark.parametrize("script", ["seq_mnist_lstm.py", "words_transformer.py"])
def test_sequence_examples_help(script, tmp_path):
    proc = subprocess.run([sys.executable, str(EXAMPLES / script), "--help"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert proc.returncode == 0, proc.stderr
    for option in ("--batch-size", "--seed", "--data-dir", "--limit"):
        assert option in proc.stdout


@needs_mnist
def test_seq_mnist_lstm_learns_on_a_small_subset(tmp_path):
    limit = 1000
    save = tmp_path / "lstm.pynn"
    stdout, fields = run_example("seq_mnist_lstm.py", "--data-dir", DATA_DIR, "--limit", limit,
                                 "--epochs", 3, "--hidden", 64, "--batch-size", 32,
                                 "--save", save, cwd=tmp_path)
    assert "Total params" in stdout
    assert int(fields["epochs"]) == 3
    # measured: 0.44-0.52 over seeds 0-2 (96 steps); chance is 0.10
    assert 0.3 < float(fields["test_acc"]) <= 1.0
    assert fields["model"] == str(save)
    model = pynn.load_model(save)
    (_, _), (test_x, test_y) = mnist(data_dir=DATA_DIR)
    probs = model.predict(test_x[:limit].reshape(-1, 28, 28), batch_size=256)
    acc = float(np.mean(probs.argmax(axis=1) == test_y[:limit]))
    assert acc == pytest.approx(float(fields["test_acc"]), abs=1.5 / limit)


@pytest.mark.skipif(not HAVE_WORDS, reason=f"the word list is not in {DATA_DIR / 'words'}")
def test_words_transformer_learns_and_samples(tmp_path):
    stdout, fields = run_example("words_transformer.py", "--data-dir", DATA_DIR, "--limit", 2000,
                                 "--steps", 60, "--eval-every", 30, "--embed", 32,
                                 "--samples", 5, cwd=tmp_path)
    assert "sampled words:" in stdout and "validation loss" in stdout
    assert int(fields["steps"]) == 60
    # a uniform guess over the 27 characters costs log(27) = 3.30 nats; measured: 2.64-2.71
    # over seeds 0-2
    assert float(fields["val_loss"]) < 2.9
    novel, total = map(int, fields["novel_samples"].split("/"))
    assert total == 5 and 0 <= novel <= 5


@needs_mnist
def test_transfer_fashion_freezes_then_fine_tunes(tmp_path):
    """Stage 1 (MNIST, fit), stage 2 (Fashion-MNIST head on the frozen encoder), stage 3 (the
    last block unfrozen): each learns, and freezing leaves the encoder's weights untouched."""
    if not (DATA_DIR / "fashion-mnist" / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"the Fashion-MNIST IDX files are not in {DATA_DIR / 'fashion-mnist'}")
    stdout, fields = run_example("transfer_fashion.py", "--data-dir", DATA_DIR, "--limit", 1000,
                                 "--epochs", 1, cwd=tmp_path)
    assert fields["encoder_frozen_unchanged"] == "True"
    assert "stage 2: 202,122 of 206,922 weights train" in stdout      # the encoder is frozen
    assert "stage 3: 206,762 weights train" in stdout                 # block2_conv trains again
    # measured with --limit 1000 --epochs 1, seeds 0 and 1: mnist 0.59/0.58, frozen 0.54/0.57,
    # tuned 0.59/0.59 (chance: 0.10)
    for key in ("mnist_acc", "frozen_acc", "tuned_acc"):
        assert 0.3 < float(fields[key]) <= 1.0, fields
needs_fashion_mnist = pytest.mark.skipif(
    not all((DATA_DIR / "fashion-mnist" / f).is_file() for f in (
        "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")),
    reason=f"the Fashion-MNIST IDX files are not in {DATA_DIR / 'fashion-mnist'}")


def test_fashion_resnet_help(tmp_path):
    proc = subprocess.run([sys.executable, str(EXAMPLES / "fashion_resnet.py"), "--help"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert proc.returncode == 0, proc.stderr
    for option in ("--epochs", "--batch-size", "--seed", "--data-dir", "--limit", "--save",
                   "--width"):
        assert option in proc.stdout


@needs_fashion_mnist
def test_fashion_resnet_learns_on_a_small_subset(tmp_path):
    from pynn.datasets import fashion_mnist
    limit = 512
    save = tmp_path / "resnet.pynn"
    stdout, fields = run_example("fashion_resnet.py", "--data-dir", DATA_DIR, "--limit", limit,
                                 "--epochs", 1, "--batch-size", 32, "--save", save, cwd=tmp_path,
                                 timeout=900)
    assert "Total params" in stdout and "GlobalAveragePooling2D" in stdout
    assert int(fields["epochs"]) == 1
    # measured: 0.49, 0.52, 0.63 for seeds 0-2 (16 steps); chance is 0.10
    assert 0.3 < float(fields["test_acc"]) <= 1.0
    model = pynn.load_model(save)            # BatchNorm running statistics included
    (_, _), (test_x, test_y) = fashion_mnist(data_dir=DATA_DIR)
    acc = float(np.mean(model.predict(test_x[:limit]).argmax(axis=1) == test_y[:limit]))
    assert acc == pytest.approx(float(fields["test_acc"]), abs=1.5 / limit)


@needs_mnist
def test_progress_bar_redraws_at_its_own_pace_not_every_step(tmp_path):
    """800 steps of mnist_mlp: tqdm draws the bar a few times a second (mininterval, and the
    postfix updated without forcing a redraw), not once per step."""
    proc = subprocess.run([sys.executable, str(EXAMPLES / "mnist_mlp.py"), "--data-dir",
                           str(DATA_DIR), "--limit", "6400", "--batch-size", "8", "--epochs", "1"],
                          cwd=tmp_path, capture_output=True, timeout=300,     # bytes: keep \r
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert b"800/800" in proc.stderr
    # measured: 4 carriage returns (363 bytes) here; a redraw forced per step gave 804 (70 kB)
    assert proc.stderr.count(b"\r") < 100, proc.stderr.count(b"\r")
