"""Where a cold start goes: Numba's compile time per kernel for the first training step of W2
(mnist-mlp) and W3 (mnist-cnn), in a fresh process on an empty Numba cache.

    python benchmarks/compile_times.py [--data-dir DIR] [--workloads NAME ...]

(--workloads: other run.py workloads instead of W2 and W3, e.g. readme-cnn, whose second conv
compiles the Winograd kernels.)

Spawns one child on a new temporary cache directory (cold) and a second on the same directory
(warm); each child times `import pynn` (NumPy's and Numba's imports included, as in
`python -c "import pynn"`, and shown on their own) and the first step of both workloads (model
building included, as run.py's cold-start figure) and records every `numba:compile` event with
its duration (numba.core.event). The table lists the kernels by compile seconds. Numba's
one-time set-up, which the first compile or cache load of a process runs (it imports and
registers Numba's typing and lowering modules), is made on its own just before the steps and
shown as part of them: on a warm cache it is about half of the first steps.

    python benchmarks/compile_times.py --wheel

also builds the wheel (`python -m build --wheel` on a copy of the repository's files, which
compiles the kernels into it: see pynn/precompile.py), installs it with `pip install --no-deps
--target` into a temporary folder, and times the same first steps twice from that install, with
no NUMBA_CACHE_DIR: the first run after `pip install` of a wheel built on this machine.

    python benchmarks/compile_times.py --editable

does the same for an editable install: it copies the repository's files into a temporary
clone, runs `pip install --no-deps -e` on it in a fresh virtual environment that sees this
interpreter's packages (the install compiles the kernels into the clone: setup.py), and times
the same first steps twice with that environment's Python.

The first line printed says whether Python writes bytecode: where PYTHONDONTWRITEBYTECODE is
set (as in some sandboxes), every import compiles pynn's sources again, about 0.1 s more per
`import pynn`; `--bytecode` unsets it for the timed runs.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


W2_W3 = ("mnist-mlp", "mnist-cnn")


def child(data_dir, workloads=W2_W3):
    # the import figure is `import pynn` in a fresh interpreter: NumPy's and Numba's imports
    # included (Numba's event module, needed before pynn's import, is timed with it), and
    # reported on their own too
    start = time.perf_counter()
    import numpy  # noqa: F401
    t_numpy = time.perf_counter() - start
    from numba.core import event
    t_numba = time.perf_counter() - start - t_numpy

    compiles = {}

    class Timer(event.Listener):
        def on_start(self, ev):
            self.start = time.perf_counter()

        def on_end(self, ev):
            fn = ev.data["dispatcher"].py_func
            key = f"{fn.__module__}.{fn.__qualname__}"
            compiles[key] = compiles.get(key, 0.0) + time.perf_counter() - self.start

    event.register("numba:compile", Timer())
    import pynn  # noqa: F401
    t_import = time.perf_counter() - start
    sys.path.insert(0, str(HERE))
    import run as R
    data = R.load_data(data_dir)
    _ = data.mnist
    start = time.perf_counter()
    # Numba's one-time set-up, which its first compile or cache load of the process runs
    # (importing and registering its typing and lowering modules), made here on its own to be
    # timed: the steps after it would otherwise pay it at their first kernel
    from numba.core.registry import cpu_target
    cpu_target.target_context.refresh()
    t_setup = time.perf_counter() - start
    for name in workloads:
        step, _ = R.make(name, "pynn", data, 1)
        step()
    t_steps = time.perf_counter() - start
    print(f"TOTAL {t_import:.3f} {t_numpy:.3f} {t_numba:.3f} {t_steps:.3f} {t_setup:.3f} "
          f"{pynn.__file__}")
    for key, sec in sorted(compiles.items(), key=lambda kv: -kv[1]):
        print(f"KERNEL {sec:.3f} {key}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", default=os.environ.get(
        "PYNN_DATA_DIR", str(HERE.parents[1] / "shared" / "data")))
    p.add_argument("--wheel", action="store_true",
                   help="also build and install the wheel and time the first run from it")
    p.add_argument("--editable", action="store_true",
                   help="also pip install -e a copy of the repository into a fresh virtual "
                        "environment and time the first run from it")
    p.add_argument("--bytecode", action="store_true",
                   help="unset PYTHONDONTWRITEBYTECODE for the timed runs, so that Python "
                        "writes and reuses pynn's .pyc files as a usual install does")
    p.add_argument("--workloads", nargs="+", default=list(W2_W3),
                   help="run.py workloads whose first step is timed (default: W2 and W3)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(args.data_dir, args.workloads)
    if args.bytecode:
        os.environ.pop("PYTHONDONTWRITEBYTECODE", None)      # the children inherit this
    print("python bytecode: " + ("not written (PYTHONDONTWRITEBYTECODE is set), so every import "
                                 "compiles pynn's sources" if os.environ.get(
                                     "PYTHONDONTWRITEBYTECODE") else "written and reused"))
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        for label in ("cold", "warm"):
            report(f"{label} cache", measure(args.data_dir, env, workloads=args.workloads),
                   args.workloads)
    if args.wheel:
        from_wheel(args.data_dir, args.workloads)
    if args.editable:
        from_editable(args.data_dir, args.workloads)


def measure(data_dir, env, cwd=None, workloads=W2_W3, python=sys.executable):
    """((import s, NumPy's, Numba's), (first steps s, Numba's set-up s), pynn's path,
    [(compile s, kernel)]) from a fresh child."""
    out = subprocess.run([str(python), str(Path(__file__).resolve()), "--child",
                          "--data-dir", data_dir, "--workloads", *workloads], env=env, cwd=cwd,
                         capture_output=True, text=True, check=True).stdout.splitlines()
    _, t_import, t_numpy, t_numba, t_steps, t_setup, path = out[0].split(maxsplit=6)
    kernels = [(float(sec), name) for sec, name in (line.split(maxsplit=2)[1:] for line in out[1:])]
    return ((float(t_import), float(t_numpy), float(t_numba)), (float(t_steps), float(t_setup)),
            path, kernels)


def report(label, measured, workloads=W2_W3):
    (t_import, t_numpy, t_numba), (t_steps, t_setup), _, kernels = measured
    total = sum(sec for sec, _ in kernels)
    steps = "W2 + W3" if tuple(workloads) == W2_W3 else " + ".join(workloads)
    print(f"{label}: import {t_import:.2f} s (NumPy {t_numpy:.2f} s, Numba {t_numba:.2f} s of "
          f"it), first {steps} steps {t_steps:.2f} s (Numba's one-time set-up {t_setup:.2f} s "
          f"and compiling {total:.2f} s of it, {len(kernels)} functions)")
    if kernels:
        print("\n| kernel | compile s |\n|---|---:|")
        for sec, name in kernels:
            print(f"| `{name}` | {sec:.2f} |")
        print()


def copy_sources(dest):
    """The repository's tracked files (git ls-files), copied into `dest`."""
    repo = HERE.parent
    files = subprocess.run(["git", "ls-files"], cwd=repo, capture_output=True, text=True,
                           check=True).stdout.splitlines()
    for name in files:
        if (repo / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(repo / name, dest / name)


def install_env():
    """This process's environment without NUMBA_CACHE_DIR and PYTHONPATH: an install's own
    cache and packages are what its runs use."""
    return {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "PYTHONPATH")}


def first_runs(data_dir, env, tmp, installed, what, workloads, python=sys.executable):
    """Time the first steps twice in fresh children from `tmp`, checking that they imported
    the pynn under `installed`."""
    for label in ("first run after install", "second run"):
        measured = measure(data_dir, env, cwd=tmp, workloads=workloads, python=python)
        if not measured[2].startswith(str(installed)):
            raise RuntimeError(f"the child imported pynn from {measured[2]}, not the {what}")
        report(f"{what}, {label}", measured, workloads)


def from_wheel(data_dir, workloads=W2_W3):
    """Build the wheel from a copy of the repository's files, install it into a temporary
    folder and time the first steps from there (twice)."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        copy_sources(tmp / "src")
        start = time.perf_counter()
        built = subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir",
                                str(tmp / "dist"), str(tmp / "src")], capture_output=True,
                               text=True, check=True)
        build_s = time.perf_counter() - start
        for line in (built.stdout + built.stderr).splitlines():
            if "not precompiled" in line or "pynn.precompile:" in line:
                print(line.strip())
        (wheel,) = (tmp / "dist").glob("pynn-*.whl")
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                        "--disable-pip-version-check", "--target", str(tmp / "site"), str(wheel)],
                       capture_output=True, check=True)
        print(f"\nwheel: `python -m build --wheel` {build_s:.0f} s (the kernels compiled into "
              f"it), installed with `pip install --no-deps --target`")
        env = install_env()
        env["PYTHONPATH"] = str(tmp / "site")
        first_runs(data_dir, env, tmp, tmp / "site", "wheel install", workloads)


def from_editable(data_dir, workloads=W2_W3):
    """Copy the repository's files into a temporary clone, `pip install -e` it into a fresh
    virtual environment (with this interpreter's packages: numpy, numba), and time the first
    steps from that environment (twice)."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        copy_sources(tmp / "clone")
        subprocess.run([sys.executable, "-m", "venv", "--system-site-packages",
                        str(tmp / "venv")], check=True)
        python = tmp / "venv" / ("Scripts" if os.name == "nt" else "bin") / "python"
        env = install_env()
        start = time.perf_counter()
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps",
                        "--disable-pip-version-check", "-e", str(tmp / "clone")], env=env,
                       capture_output=True, check=True)
        install_s = time.perf_counter() - start
        cached = len(list((tmp / "clone" / "pynn" / "kernels" / "__pycache__").glob("*.nbi")))
        print(f"\neditable: `pip install --no-deps -e` {install_s:.0f} s (build environment "
              f"and kernels compiled into the clone: {cached} Numba index files)")
        first_runs(data_dir, env, tmp, tmp / "clone", "editable install", workloads,
                   python=python)


if __name__ == "__main__":
    main()
