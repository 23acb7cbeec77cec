"""Draw the pictures of docs/how-pynn-works.md with pynn's own draw() (needs Graphviz's `dot`).

    python docs/build_pictures.py
"""
from pathlib import Path

import numpy as np

import pynn
from pynn import Input, Model, Tensor
from pynn.graph import draw
from pynn.layers import Conv2d, Dense, Flatten, MaxPool2d

HERE = Path(__file__).resolve().parent / "pictures"


def main():
    HERE.mkdir(exist_ok=True)
    pynn.manual_seed(0)
    x = Tensor.randn(4, 3, requires_grad=True)
    w = Tensor.randn(4, 3, requires_grad=True)
    b = Tensor.zeros(3, requires_grad=True)
    y = (x * w + b).relu().sum()
    draw(y, HERE / "expression.svg")

    x_in = Input((784,))
    mlp = Model(x_in, Dense(128, 10, "softmax")(Dense(784, 128, "relu")(x_in)))
    draw(mlp, HERE / "mlp_model.svg")

    image = Input((1, 8, 8))
    h = MaxPool2d(2)(Conv2d(1, 4, 3, padding=1, activation="relu")(image))
    cnn = Model(image, Dense(64, 10)(Flatten()(h)))
    cnn(np.zeros((16, 1, 8, 8), np.float32)).sum().backward()     # the plan at batch 16
    draw(cnn, HERE / "cnn_plan.svg", rankdir="TB", plan=True)
    for path in sorted(HERE.glob("*.svg")):
        print("wrote", path)


if __name__ == "__main__":
    main()
