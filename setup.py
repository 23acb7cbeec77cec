"""pynn's packaging metadata (the build system and tool settings are in pyproject.toml)."""
import os

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def read(name):
    with open(os.path.join(HERE, name), encoding="utf-8") as f:
        return f.read()


# The runtime dependencies, one per line in requirements.txt (shipped in the sdist by
# MANIFEST.in). A missing file is an error, not a package without dependencies.
install_requires = [line.strip() for line in read("requirements.txt").splitlines()
                    if line.strip() and not line.startswith("#")]

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
    extras_require={
        "tfds": ["tensorflow-datasets"],
        "examples": ["matplotlib", "ipykernel", "nbformat", "nbclient"],
        "onnx": ["onnx>=1.15", "onnxruntime>=1.17"],
        "safetensors": ["safetensors>=0.4"],
        "distributed": ["mpi4py>=4.0", "mpich>=4.2"],
    },
)
