"""Autograd demo: fit y = 3x - 1 with a tiny linear model, eager pynn only."""
from tqdm import tqdm

import pynn
from pynn import Tensor

pynn.manual_seed(0)
x = Tensor.randn((256, 1))
y = 3 * x - 1 + 0.05 * Tensor.randn((256, 1))
w = Tensor.zeros((1, 1), requires_grad=True)
b = Tensor.zeros((1,), requires_grad=True)
bar = tqdm(range(200), desc="fit")
for _ in bar:
    loss = ((x @ w + b - y) ** 2).mean()
    loss.zero_grad()
    loss.backward()
    with pynn.no_grad():
        w.data -= 0.1 * w.grad.data
        b.data -= 0.1 * b.grad.data
    bar.set_postfix(loss=f"{loss.item():.4f}")
print(f"w={w.item():.3f} b={b.item():.3f} loss={loss.item():.5f}")
