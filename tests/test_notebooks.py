"""The notebooks are what notebooks/build_notebooks.py writes, have no outputs, and run end to end.

Each notebook runs in a fresh python3 kernel (nbclient) with small parameters passed through
the environment (PYNN_NB_EPOCHS, PYNN_NB_LIMIT, PYNN_DATA_DIR); any cell error fails the test.
The MNIST notebooks read the IDX files from ../shared/data next to the repository; without them
they are skipped with a reason.
"""
import importlib.util
import os
import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
DATA_DIR = REPO.parent / "shared" / "data"
HAVE_MNIST = (DATA_DIR / "mnist" / "train-images-idx3-ubyte.gz").is_file()
HAVE_FASHION_MNIST = (DATA_DIR / "fashion-mnist" / "train-images-idx3-ubyte.gz").is_file()

# name: (PYNN_NB_EPOCHS, PYNN_NB_LIMIT, needs MNIST)
RUNS = {
    "moons_mlp.ipynb": (200, 0, False),
    "mnist_mlp.ipynb": (2, 512, True),
    "mnist_cnn.ipynb": (1, 256, True),
    "seq_mnist_lstm.ipynb": (1, 256, True),
    "words_transformer.ipynb": (1, 1500, False),      # reads words/, not MNIST
    "fashion_resnet.ipynb": (1, 256, True),
    "transfer_fashion.ipynb": (1, 256, True),
}


def load_builder():
    spec = importlib.util.spec_from_file_location("build_notebooks",
                                                  NOTEBOOKS / "build_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


#: notebooks that train nothing: run by a test of their own
TOURS = ["engine_tour.ipynb"]


def test_every_notebook_is_tested():
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == sorted(list(RUNS) + TOURS)


def _execute(name, tmp_path, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(REPO)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])))
    nb = nbformat.read(str(NOTEBOOKS / name), as_version=4)
    client = NotebookClient(nb, kernel_name="python3", timeout=300, startup_timeout=120,
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()      # raises CellExecutionError, naming the cell, on any error
    return nb


def test_engine_tour_runs(tmp_path, monkeypatch):
    """The tour's claims hold when it runs: backward by hand equals backward(), torch agrees,
    the plan reuses its buffers, and the pictures come from pynn's own draw()."""
    nb = _execute("engine_tour.ipynb", tmp_path, monkeypatch)
    text = "\n".join(out.get("text", "") for cell in nb.cells if cell.cell_type == "code"
                     for out in cell.outputs if out.get("output_type") == "stream")
    assert "by hand == backward(): True" in text
    assert "buffers reused: True" in text
    assert "step 0: Linear(activation='relu')" in text and "ms per step (batch 64)" in text
    diffs = [float(line.rsplit("=", 1)[1]) for line in text.splitlines()
             if "|pynn - torch|" in line]
    assert len(diffs) == 3 and max(diffs) < 1e-5, text
    svgs = sum("image/svg+xml" in out.get("data", {}) for cell in nb.cells
               if cell.cell_type == "code" for out in cell.outputs)
    assert svgs == (2 if shutil.which("dot") else 0)
    if not shutil.which("dot"):
        assert text.count("digraph") == 2


@pytest.mark.parametrize("name", sorted(list(RUNS) + TOURS))
def test_notebook_is_built_by_the_script_and_has_no_outputs(name):
    committed = nbformat.read(str(NOTEBOOKS / name), as_version=4)
    built = load_builder().build(name)
    assert [(c.cell_type, c.source) for c in committed.cells] == \
        [(c.cell_type, c.source) for c in built.cells], \
        f"{name} differs from what notebooks/build_notebooks.py writes: run that script"
    for cell in committed.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, \
                f"{name} was committed with outputs"


@pytest.mark.parametrize("name", sorted(RUNS))
def test_notebook_runs(name, tmp_path, monkeypatch):
    epochs, limit, needs_mnist = RUNS[name]
    if needs_mnist and not HAVE_MNIST:
        pytest.skip(f"the MNIST IDX files are not in {DATA_DIR / 'mnist'}")
    if "fashion" in name and not HAVE_FASHION_MNIST:
        pytest.skip(f"the Fashion-MNIST IDX files are not in {DATA_DIR / 'fashion-mnist'}")
    monkeypatch.setenv("PYNN_NB_EPOCHS", str(epochs))
    monkeypatch.setenv("PYNN_NB_LIMIT", str(limit))
    monkeypatch.setenv("PYNN_DATA_DIR", str(DATA_DIR))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(REPO)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])))

    nb = nbformat.read(str(NOTEBOOKS / name), as_version=4)
    client = NotebookClient(nb, kernel_name="python3", timeout=300, startup_timeout=120,
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()      # raises CellExecutionError, naming the cell, on any error

    text = "\n".join(out.get("text", "") for cell in nb.cells if cell.cell_type == "code"
                     for out in cell.outputs if out.get("output_type") == "stream")
    images = sum("image/png" in out.get("data", {}) for cell in nb.cells
                 if cell.cell_type == "code" for out in cell.outputs)
    assert images >= 2, f"{name}: expected plots, got {images} images"
    # no noise: no value echoed by a cell's last line (a Generator(PCG64) from manual_seed, the
    # summary table a second time as summary()'s return value)
    echoed = [out["data"].get("text/plain", "") for cell in nb.cells if cell.cell_type == "code"
              for out in cell.outputs if out.get("output_type") == "execute_result"]
    assert not [e for e in echoed if "Generator" in e or "Total params" in e], echoed
    assert text.count("Total params") == 1
    if name == "moons_mlp.ipynb":
        assert "training accuracy after 200 epochs: 100.00%" in text
    else:
        assert "Total params" in text
        assert "same predictions as the trained model: True" in text
        assert (tmp_path / name.replace(".ipynb", ".pynn")).is_file()
    if name == "mnist_cnn.ipynb":
        svgs = sum("image/svg+xml" in out.get("data", {}) for cell in nb.cells
                   if cell.cell_type == "code" for out in cell.outputs)
        assert "digraph" in text                      # pynn.graph.draw's DOT text
        assert svgs == (1 if shutil.which("dot") else 0)
