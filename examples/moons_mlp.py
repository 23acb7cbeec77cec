"""Two moons: a 2-16-16-1 MLP, hinge (max-margin) loss and SGD, as in micrograd's demo.

Reaches 100% training accuracy in a few seconds and draws the decision boundary to a PNG.

    python examples/moons_mlp.py --out moons.png
"""
import time

import numpy as np
from _common import parser
from tqdm import tqdm

import pynn
from pynn import Input, Model
from pynn.activations import relu
from pynn.data import DataLoader
from pynn.datasets import make_moons
from pynn.layers import Dense
from pynn.losses import hinge
from pynn.optimizers import SGD


def draw_decision_boundary(model, X, y, path):
    """Colour the plane by the model's class and put the training points on top."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install matplotlib): no picture drawn")
        return None
    xx, yy = np.meshgrid(np.linspace(X[:, 0].min() - 1, X[:, 0].max() + 1, 250),
                         np.linspace(X[:, 1].min() - 1, X[:, 1].max() + 1, 250))
    grid = np.stack([xx.ravel(), yy.ravel()], axis=1).astype(np.float32)
    score = model.predict(grid).reshape(xx.shape)
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.contourf(xx, yy, score > 0, cmap="Spectral", alpha=0.8)
    ax.scatter(X[:, 0], X[:, 1], c=y, cmap="Spectral", s=30, edgecolors="k")
    ax.set_title("pynn MLP 2-16-16-1 on two moons")
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    print(f"decision boundary drawn to {path}")
    return path


p = parser(__doc__, epochs=200, batch_size=100, lr=1.0, mnist=False)
p.add_argument("--samples", type=int, default=100, help="number of points (default: %(default)s)")
p.add_argument("--noise", type=float, default=0.1,
               help="std of the noise added to the points (default: %(default)s)")
p.add_argument("--out", default="moons_mlp.png",
               help="PNG to draw the decision boundary to (default: %(default)s)")
args = p.parse_args()

pynn.manual_seed(args.seed)
X, y = make_moons(args.samples, noise=args.noise, seed=args.seed)   # y is 0 or 1

x_in = Input((2,))
x = Dense(2, 16, relu)(x_in)
x = Dense(16, 16, relu)(x)
x = Dense(16, 1)(x)                  # one score per point: > 0 means class 1
model = Model(x_in, x)
model.summary()

# micrograd adds 1e-4 * sum(p**2) to the loss; weight_decay=2e-4 is the same gradient.
opt = SGD(args.lr, weight_decay=2e-4)
loader = DataLoader(X, y.reshape(-1, 1), batch_size=args.batch_size, shuffle=True, seed=args.seed)
bar = tqdm(range(args.epochs), desc="moons", mininterval=0.5)
start = time.perf_counter()
for epoch in bar:
    opt.lr = args.lr * (1 - 0.9 * epoch / args.epochs)    # linear decay, as micrograd does
    for xb, yb in loader:
        score = model(xb)
        loss = hinge(score, yb)      # mean(max(0, 1 - t * score)) with t = -1 or +1
        loss.zero_grad()
        loss.backward()
        opt.update(model.parameters)
    train_acc = float(np.mean((model.predict(X)[:, 0] > 0) == y))
    bar.set_postfix(loss=f"{loss.item():.4f}", acc=f"{train_acc:.3f}", refresh=False)
sec_per_epoch = (time.perf_counter() - start) / args.epochs

plot = draw_decision_boundary(model, X, y, args.out)
print(f"final: epochs={args.epochs} train_acc={train_acc:.4f} loss={loss.item():.4f} "
      f"sec_per_epoch={sec_per_epoch:.4f} plot={plot}")
