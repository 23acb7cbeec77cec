"""Autograd demo: fit y = 3x - 1 with a tiny linear model, eager pynn only.

Two parameters, a mean squared error, loss.backward(), and the update written by hand as in
micrograd and PyTorch: under pynn.no_grad(), `w -= lr * w.grad` changes w in place.
"""
import argparse

from tqdm import tqdm

import pynn
from pynn import Tensor

p = argparse.ArgumentParser(description=__doc__.strip().split("\n\n")[0])
p.add_argument("--steps", type=int, default=200, help="gradient steps (default: %(default)s)")
p.add_argument("--lr", type=float, default=0.1, help="learning rate (default: %(default)s)")
p.add_argument("--seed", type=int, default=0, help="seed of the data (default: %(default)s)")
args = p.parse_args()

pynn.manual_seed(args.seed)
x = Tensor.randn((256, 1))
y = 3 * x - 1 + 0.05 * Tensor.randn((256, 1))
w = Tensor.zeros((1, 1), requires_grad=True)
b = Tensor.zeros((1,), requires_grad=True)
bar = tqdm(range(args.steps), desc="fit", mininterval=0.5)
for _ in bar:
    loss = ((x @ w + b - y) ** 2).mean()
    w.grad = b.grad = None
    loss.backward()
    with pynn.no_grad():
        w -= args.lr * w.grad
        b -= args.lr * b.grad
    bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
print(f"final: w={float(w):.3f} b={float(b):.3f} loss={float(loss):.5f}")
