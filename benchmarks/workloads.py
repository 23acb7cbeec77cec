"""The benchmark workloads, each written twice: once in pynn, once in PyTorch.

Every workload is a function `make(framework, data)` returning `run()`, a closure that does the
timed work and returns the final loss (or a checksum of the outputs for inference). Both
frameworks start from the same weights (pynn's initialisation, copied into torch) and see the
same batches in the same order.
"""
import numpy as np

import pynn
from pynn import Input, Model, Tensor
from pynn.layers import Conv2d, Dense, Flatten, MaxPool2d
from pynn.losses import categorical_cross_entropy
from pynn.optimizers import SGD, Adam

BATCH = 64
STEPS = 900


# -- architectures (pynn side); the torch side is built from the same layer list ---------------
def mlp_layers():
    return [Dense(784, 256, "relu"), Dense(256, 128, "relu"), Dense(128, 32, "relu"),
            Dense(32, 10, "softmax")]


def small_cnn_layers():
    """W3: Conv2d(1,8,3)-ReLU-MaxPool2 - Conv2d(8,16,3)-ReLU-MaxPool2 - Flatten - Dense(400,10)."""
    return [Conv2d(1, 8, 3, activation="relu"), MaxPool2d(2), Conv2d(8, 16, 3, activation="relu"),
            MaxPool2d(2), Flatten(), Dense(400, 10, "softmax")]


def readme_cnn_layers():
    """The README's main example, examples/mnist_cnn.py (keep the two in step)."""
    return [Conv2d(1, 32, 3, padding=1, activation="relu"), MaxPool2d(2),
            Conv2d(32, 64, 3, padding=1, activation="relu"), MaxPool2d(2), Flatten(),
            Dense(64 * 7 * 7, 128, "relu"), Dense(128, 10, "softmax")]


def pynn_model(layers, in_shape):
    x_in = Input(in_shape)
    x = x_in
    for layer in layers:
        x = layer(x)
    return Model(x_in, x)


def torch_model(layers):
    """The same network in torch, with pynn's weights copied in. Softmax at the end is left
    out: torch trains on logits with F.cross_entropy, which is the same math as pynn's fused
    softmax + categorical cross-entropy."""
    import torch
    from torch import nn
    mods = []
    for layer in layers:
        name = type(layer).__name__
        if name == "Dense":
            m = nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None)
        elif name == "Conv2d":
            m = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride,
                          layer.padding, bias=layer.bias is not None)
        elif name == "MaxPool2d":
            m = nn.MaxPool2d(layer.kernel_size, layer.stride, layer.padding)
        elif name == "Flatten":
            m = nn.Flatten()
        else:
            raise ValueError(f"no torch twin for {name}")
        if hasattr(m, "weight"):
            with torch.no_grad():
                m.weight.copy_(torch.from_numpy(layer.weight.data))
                if layer.bias is not None:
                    m.bias.copy_(torch.from_numpy(layer.bias.data))
        mods.append(m)
        act = getattr(layer, "activation", None)
        if act == "relu":
            mods.append(nn.ReLU())
        elif act not in (None, "softmax"):
            raise ValueError(f"no torch twin for activation {act}")
    return nn.Sequential(*mods)


# -- training loops ------------------------------------------------------------------------------
def _batches(x, y, steps, batch, seed=0):
    """A fixed order: one permutation, then contiguous batches (views, no copies in the loop)."""
    perm = np.random.default_rng(seed).permutation(len(x))[: steps * batch]
    return np.ascontiguousarray(x[perm]), np.ascontiguousarray(y[perm])


def classifier_training(framework, layers_fn, x, y, in_shape, steps=STEPS, batch=BATCH):
    xs, ys = _batches(x, y, steps, batch)
    pynn.manual_seed(0)
    layers = layers_fn()
    if framework == "pynn":
        model = pynn_model(layers, in_shape)
        opt = Adam(1e-3)
        params = model.parameters

        def run():
            for i in range(steps):
                xb, yb = xs[i * batch:(i + 1) * batch], ys[i * batch:(i + 1) * batch]
                pred = model(xb)
                loss = categorical_cross_entropy(pred, yb)
                loss.zero_grad()
                loss.backward()
                opt.update(params)
            return loss.item()
        return run, model

    import torch
    import torch.nn.functional as F
    model = torch_model(layers)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    txs, tys = torch.from_numpy(xs), torch.from_numpy(ys)

    def run():
        for i in range(steps):
            xb, yb = txs[i * batch:(i + 1) * batch], tys[i * batch:(i + 1) * batch]
            opt.zero_grad()
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
        return loss.item()
    return run, model


def moons_training(framework, steps=100):
    """W1, micrograd's demo: MLP 2-16-16-1, 100 samples, max-margin loss + 1e-4 L2, SGD with
    micrograd's decaying learning rate, full batch."""
    from pynn.datasets import make_moons
    X, y = make_moons(100, noise=0.1, seed=1)
    Y = (2 * y - 1).astype(np.float32).reshape(-1, 1)
    pynn.manual_seed(0)
    layers = [Dense(2, 16, "relu"), Dense(16, 16, "relu"), Dense(16, 1)]
    if framework == "pynn":
        model = pynn_model(layers, (2,))
        params = model.parameters
        opt = SGD(1.0)
        Yt = Tensor(Y)

        def run():
            for k in range(steps):
                scores = model(X)
                data_loss = (1 - Yt * scores).relu().mean()
                reg = 1e-4 * sum((p * p).sum() for p in params)
                loss = data_loss + reg
                loss.zero_grad()
                loss.backward()
                opt.lr = 1.0 - 0.9 * k / steps
                opt.update(params)
            return loss.item()
        return run, model

    import torch
    model = torch_model(layers)
    params = list(model.parameters())
    opt = torch.optim.SGD(params, lr=1.0)
    tX, tY = torch.from_numpy(X), torch.from_numpy(Y)

    def run():
        for k in range(steps):
            scores = model(tX)
            data_loss = (1 - tY * scores).relu().mean()
            reg = 1e-4 * sum((p * p).sum() for p in params)
            loss = data_loss + reg
            opt.zero_grad()
            loss.backward()
            for group in opt.param_groups:
                group["lr"] = 1.0 - 0.9 * k / steps
            opt.step()
        return loss.item()
    return run, model


def inference(framework, layers_fn, x, in_shape, batch=1024):
    """W4: forward only, batch 1024, over x (10,000 samples)."""
    pynn.manual_seed(0)
    layers = layers_fn()
    if framework == "pynn":
        model = pynn_model(layers, in_shape)

        def run():
            return float(model.predict(x, batch_size=batch).sum())
        return run, model

    import torch
    model = torch_model(layers)
    model.eval()
    tx = torch.from_numpy(x)

    def run():
        with torch.no_grad():
            outs = [torch.softmax(model(tx[i:i + batch]), dim=1) for i in range(0, len(tx), batch)]
        return float(torch.cat(outs).sum())
    return run, model
