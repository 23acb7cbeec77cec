"""pynn as a user installs it: build the sdist and the wheel, install the wheel in a fresh
virtual environment, import pynn from an unrelated folder and train a small model.

This is the check that catches a package missing from the wheel (as `pynn.ops` once was) or
a file missing from the sdist (as `requirements.txt` once was). The wheel is built from the
sdist (what `python -m build` does), so an incomplete sdist fails the build. The venv has no
access to the source tree and no site-packages of this interpreter: pip fetches numpy, numba and
tqdm from the package index (about 10 s here). The sources are copied first, so that the build
leaves no build/ or *.egg-info behind in the repository.
"""
import glob
import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
import zipfile
from pathlib import Path

import pytest
from compile_events import RECORD_COMPILES, RECORD_COMPILES_REPORT, compiled_count

REPO = Path(__file__).resolve().parents[1]

TRAIN = RECORD_COMPILES + textwrap.dedent('''
    import sys
    import numpy as np
    import pynn
    from pynn import Input, Model
    from pynn.layers import Conv2d, Dense, Flatten, MaxPool2d
    from pynn.losses import categorical_cross_entropy
    from pynn.optimizers import Adam

    print("pynn", pynn.__version__, "from", pynn.__file__)
    pynn.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 1, 8, 8)).astype(np.float32)
    y = (x[:, 0, :4].sum(axis=(1, 2)) > x[:, 0, 4:].sum(axis=(1, 2))).astype(np.int64)
    x_in = Input((1, 8, 8))
    h = MaxPool2d(2)(Conv2d(1, 4, 3, padding=1, activation="relu")(x_in))
    model = Model(x_in, Dense(4 * 4 * 4, 2, "softmax")(Flatten()(h)))
    opt = Adam(1e-2)
    losses = []
    for step in range(30):
        loss = categorical_cross_entropy(model(x), y)
        loss.zero_grad()
        loss.backward()
        opt.update(model.parameters)
        losses.append(loss.item())
    print(f"loss {losses[0]:.4f} -> {losses[-1]:.4f}")
    assert losses[-1] < 0.8 * losses[0], losses
    print("trained")
''') + RECORD_COMPILES_REPORT


def _run(cmd, **kwargs):
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1200, **kwargs)
    assert proc.returncode == 0, (f"{' '.join(map(str, cmd))} failed:\n"
                                  f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def _copy_sources(dest):
    """The repository's files without its build products and caches, copied to `dest`, so
    that a build or an editable install leaves nothing behind in the repository."""
    shutil.copytree(REPO, dest, ignore=shutil.ignore_patterns(
        ".git", "__pycache__", "*.pyc", "*.nbi", "*.nbc", "build", "dist", "*.egg-info",
        ".pytest_cache", ".hypothesis", ".ruff_cache", ".benchmarks", "*.pynn", "*.png"))


def _fresh_venv(path, system_site_packages=False):
    """(python, env) of a new virtual environment at `path`: its interpreter, and this
    process's environment without what would point it elsewhere or skip the kernels' build."""
    _run([sys.executable, "-m", "venv", *(["--system-site-packages"] if system_site_packages
                                          else []), str(path)])
    python = path / ("Scripts" if os.name == "nt" else "bin") / "python"
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "NUMBA_CACHE_DIR",
                        "PYNN_PRECOMPILE")}
    return python, env


def _trains_elsewhere_compiling_nothing(python, env, tmp_path):
    """Run TRAIN with `python` from a folder that is not the repository (no ./pynn to import),
    check that it trained and that Numba compiled nothing; the folder pynn came from."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "train.py").write_text(TRAIN)
    proc = _run([str(python), "train.py"], cwd=elsewhere, env=env)
    first = proc.stdout.splitlines()[0]
    assert "\ntrained\n" in proc.stdout, proc.stdout
    count, line = compiled_count(proc.stdout)
    assert count == 0, line
    return Path(first.split(" from ", 1)[1]).resolve()


@pytest.fixture(scope="module")
def dists(tmp_path_factory):
    """(sdist, wheel) built from a copy of the sources."""
    pytest.importorskip("build", reason="python -m build needs the 'build' package "
                                        "(requirements-dev.txt)")
    root = tmp_path_factory.mktemp("dist")
    src = root / "src"
    _copy_sources(src)
    out = root / "out"
    # no --sdist/--wheel: build the sdist, then the wheel from the unpacked sdist
    _run([sys.executable, "-m", "build", "--outdir", str(out), str(src)])
    (sdist,) = out.glob("pynn-*.tar.gz")
    (wheel,) = out.glob("pynn-*.whl")
    return sdist, wheel


@pytest.mark.slow
def test_sdist_has_what_setup_py_reads(dists):
    sdist, _ = dists
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    for needed in ("setup.py", "pyproject.toml", "requirements.txt", "README.md", "LICENSE",
                   "pynn/__init__.py", "pynn/ops/__init__.py", "pynn/kernels/__init__.py"):
        assert needed in names, f"{needed} is missing from {sdist.name}"


@pytest.mark.slow
def test_wheel_has_every_package(dists):
    _, wheel = dists
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
    packages = sorted(str(p.parent.relative_to(REPO)) for p in (REPO / "pynn").rglob("*.py")
                      if p.name == "__init__.py")
    for package in packages:
        assert f"{package}/__init__.py" in names, f"{package} is missing from {wheel.name}"
    modules = {str(p.relative_to(REPO)) for p in (REPO / "pynn").rglob("*.py")}
    assert modules <= names, sorted(modules - names)
    assert not [n for n in names if n.startswith("tests/")]
    assert not [n for n in names if n.endswith(".pyc")], "bytecode in the wheel"
    (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
    with zipfile.ZipFile(wheel) as z:
        text = z.read(metadata).decode()
    requirements = [line.strip() for line in (REPO / "requirements.txt").read_text().splitlines()
                    if line.strip() and not line.startswith("#")]
    for requirement in requirements:              # the runtime dependencies came along
        assert f"Requires-Dist: {requirement}" in text, (requirement, text[:2000])


@pytest.mark.slow
def test_wheel_installs_in_a_fresh_venv_and_trains(dists, tmp_path):
    _, wheel = dists
    venv = tmp_path / "venv"
    python, env = _fresh_venv(venv)
    _run([str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q", str(wheel)],
         env=env)
    # the same CPU, Numba and Python built the wheel: its cached kernels load, none compiles
    installed = _trains_elsewhere_compiling_nothing(python, env, tmp_path)
    assert installed.is_relative_to(venv.resolve()), installed
    assert not installed.is_relative_to(REPO), installed


@pytest.mark.slow
def test_wheel_carries_the_compiled_kernels(dists):
    """setup.py's build ran pynn.precompile: Numba's cache of the usual kernels is in the wheel."""
    _, wheel = dists
    with zipfile.ZipFile(wheel) as z:
        cached = {n for n in z.namelist() if n.startswith("pynn/kernels/__pycache__/")}
    for module, kernel in (("conv_pool", "bias_act_maxpool2x2_forward[relu]"),
                           ("optim", "adam_step_usual"), ("conv", "_im2col"),
                           ("winograd", "winograd_output_maxpool")):
        index = [n for n in cached if n.split("/")[-1].startswith(f"{module}.{kernel}-")
                 and n.endswith(".nbi")]
        assert index, f"no cached {module}.{kernel} in {wheel.name}: {sorted(cached)[:20]}"
        assert [n for n in cached if n.endswith(".nbc")
                and n.split("/")[-1].startswith(f"{module}.{kernel}-")], (module, kernel)


@pytest.mark.slow
def test_editable_install_compiles_the_kernels_into_the_clone(tmp_path):
    """`pip install -e .` (the README's commands) runs pynn.precompile on the clone itself
    (setup.py), so the first training step after it compiles nothing either."""
    clone = tmp_path / "clone"
    _copy_sources(clone)
    # the install sees this interpreter's numpy and numba; pip builds it as the README's
    # `pip install -e .` does, in an isolated build environment (pyproject.toml's requires)
    python, env = _fresh_venv(tmp_path / "venv", system_site_packages=True)
    _run([str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q", "--no-deps",
          "-e", str(clone)], env=env)
    cache = clone / "pynn" / "kernels" / "__pycache__"
    for kernel in ("conv_pool.bias_act_maxpool2x2_forward[relu]", "optim.adam_step_usual",
                   "conv._im2col"):
        assert list(cache.glob(f"{glob.escape(kernel)}-*.nbi")), f"no cached {kernel} in {cache}"
    installed = _trains_elsewhere_compiling_nothing(python, env, tmp_path)
    assert installed.is_relative_to(clone.resolve()), installed
