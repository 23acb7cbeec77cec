from setuptools import setup, find_packages

with open("requirements.txt") as f:
    install_requires = [line.strip() for line in f if line.strip() and not line.startswith("#")]

setup(
    name="pynn",
    version="0.1.0",
    description="A small deep learning library on NumPy and Numba: eager autograd and compiled functional models",
    long_description=open("README.md").read() if __import__("os").path.exists("README.md") else "",
    long_description_content_type="text/markdown",
    packages=find_packages(include=["pynn", "pynn.*"]),
    python_requires=">=3.9",
    install_requires=install_requires,
    extras_require={
        "tfds": ["tensorflow-datasets"],
        "examples": ["matplotlib", "ipykernel", "nbformat", "nbclient"],
        "onnx": ["onnx>=1.15", "onnxruntime>=1.17"],
        "safetensors": ["safetensors>=0.4"],
    },
)
