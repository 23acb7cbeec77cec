"""pynn's packaging metadata (the build system and tool settings are in pyproject.toml)."""
import os
import subprocess
import sys

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))


def read(name):
    with open(os.path.join(HERE, name), encoding="utf-8") as f:
        return f.read()


# The runtime dependencies, one per line in requirements.txt (shipped in the sdist by
# MANIFEST.in). A missing file is an error, not a package without dependencies.
install_requires = [line.strip() for line in read("requirements.txt").splitlines()
                    if line.strip() and not line.startswith("#")]


class build_py_and_kernels(build_py):
    """build_py, then compile the Numba kernels (by running ``python -m pynn.precompile``), so
    that a new install does not spend its first steps compiling:

    * for a wheel or ``pip install .``: on the built package, into the build's
      pynn/kernels/__pycache__, which the wheel then carries;
    * for an editable install (``pip install -e .``): on the source tree, into the clone's
      pynn/kernels/__pycache__, which is where that install's Numba looks.

    Numba uses that cache only on the same CPU model with the same Numba and Python versions
    (else it compiles, as without it), and an edited kernel file compiles again. Best effort: a
    failure (no numba in the build environment, say) leaves an install without the cache.
    Skipped when PYNN_PRECOMPILE=0."""

    def run(self):
        super().run()
        if os.environ.get("PYNN_PRECOMPILE") == "0":
            return
        # an editable build copies nothing: the clone itself is what gets imported
        editable = getattr(self, "editable_mode", False)
        root = HERE if editable else os.path.abspath(self.build_lib)
        env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "PYTHONPATH")}
        env["PYTHONPATH"] = root
        if not editable:
            env["PYTHONDONTWRITEBYTECODE"] = "1"      # no .pyc in the wheel (pip writes them)
        try:
            subprocess.run([sys.executable, "-m", "pynn.precompile"], cwd=root, env=env,
                           check=True, timeout=900)
        except (OSError, subprocess.SubprocessError) as e:
            print(f"warning: pynn's Numba kernels were not precompiled ({e}); they will compile "
                  f"on first use", file=sys.stderr)


setup(
    name="pynn",
    version="0.1.0",
    description="A small deep learning library on NumPy and Numba: eager autograd and compiled "
                "functional models",
    long_description=read("README.md"),
    long_description_content_type="text/markdown",
    license="MIT",
    packages=find_packages(include=["pynn", "pynn.*"]),
    python_requires=">=3.9",
    install_requires=install_requires,
    cmdclass={"build_py": build_py_and_kernels},
    extras_require={
        "tfds": ["tensorflow-datasets"],
        "examples": ["matplotlib", "ipykernel", "nbformat", "nbclient"],
        "onnx": ["onnx>=1.15", "onnxruntime>=1.17"],
        "safetensors": ["safetensors>=0.4"],
        "distributed": ["mpi4py>=4.0", "mpich>=4.2"],
    },
)
