"""The benchmark workloads, each written twice: once in pynn, once in PyTorch.

Every workload is a function `make(framework, data)` returning `(run, model)`: `run()` is a
closure that does the timed work and returns the final loss (or a checksum of the outputs for
inference). Both frameworks start from the same weights (pynn's initialisation, copied into
torch) and see the same batches in the same order.

The models of the worked examples (examples/fashion_resnet.py (imported), seq_mnist_lstm.py,
words_transformer.py) are rebuilt here at the examples' default sizes; their torch twins are in
benchmarks/torch_twins.py (the words transformer's in benchmarks/words_transformer_torch.py)
and get pynn's weights through pynn.interop.torch_state_dict.
"""
import importlib
import sys
from pathlib import Path

import numpy as np

import pynn
from pynn import Input, Model
from pynn.layers import LSTM, Conv2d, Dense, Flatten, MaxPool2d
from pynn.losses import categorical_cross_entropy
from pynn.optimizers import Adam, AdamW

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

BATCH = 64
STEPS = 900
RESNET_WIDTH = 24          # examples/fashion_resnet.py --width
LSTM_HIDDEN = 128          # examples/seq_mnist_lstm.py --hidden
WORDS_SIZE = {"embed": 64, "heads": 4, "layers": 2}   # examples/words_transformer.py


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
    """A Sequential-style classifier from a pynn layer list; Adam(1e-3), batch 64."""
    pynn.manual_seed(0)
    layers = layers_fn()
    if framework == "pynn":
        model = pynn_model(layers, in_shape)
        return _pynn_classifier_loop(model, x, y, steps, batch, 1e-3), model
    return _torch_classifier_loop(torch_model(layers), x, y, steps, batch, 1e-3)


def twin_classifier_training(framework, build, torch_twin, x, y, steps, batch=BATCH, lr=1e-3):
    """A classifier given as a pynn Model builder and its torch twin's builder; Adam(lr).
    The twin receives the pynn model's initial weights (torch_twins.load_pynn_weights)."""
    pynn.manual_seed(0)
    model = build()
    if framework == "pynn":
        return _pynn_classifier_loop(model, x, y, steps, batch, lr), model
    from torch_twins import load_pynn_weights
    return _torch_classifier_loop(load_pynn_weights(torch_twin(), model), x, y, steps, batch, lr)


def _pynn_classifier_loop(model, x, y, steps, batch, lr):
    """The README's loop: softmax output, categorical cross-entropy, Adam."""
    xs, ys = _batches(x, y, steps, batch)
    opt = Adam(lr)
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
    return run


def _torch_classifier_loop(model, x, y, steps, batch, lr):
    """(run, model): logits, F.cross_entropy, torch.optim.Adam."""
    import torch
    import torch.nn.functional as F
    xs, ys = _batches(x, y, steps, batch)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
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


# -- the worked examples' models ---------------------------------------------------------------
def resnet_model(width=RESNET_WIDTH):
    """examples/fashion_resnet.py's resnet(width), imported from the example itself."""
    import fashion_resnet
    return fashion_resnet.resnet(width)


def lstm_model(hidden=LSTM_HIDDEN):
    """examples/seq_mnist_lstm.py's model (keep the two in step): LSTM(hidden) over 28 rows of
    28 pixels, the last step's h, Dense(hidden, 10, softmax)."""
    x_in = Input((28, 28))
    return Model(x_in, Dense(hidden, 10, "softmax")(LSTM(hidden)(x_in)))


def resnet_training(framework, x, y, steps=300, batch=BATCH, width=RESNET_WIDTH):
    """resnet-fmnist: the ResNet on Fashion-MNIST, Adam(3e-3) as the example (its cosine
    schedule is per epoch, so constant over these steps)."""
    from torch_twins import TorchResNet
    return twin_classifier_training(framework, lambda: resnet_model(width),
                                    lambda: TorchResNet(width), x, y, steps, batch, lr=3e-3)


def lstm_training(framework, x, y, steps=300, batch=BATCH, hidden=LSTM_HIDDEN):
    """lstm-seqmnist: MNIST row by row (x of shape (n, 28, 28)), Adam(2e-3) as the example."""
    from torch_twins import TorchLSTMClassifier
    return twin_classifier_training(framework, lambda: lstm_model(hidden),
                                    lambda: TorchLSTMClassifier(hidden), x, y, steps, batch,
                                    lr=2e-3)


def load_words(data_dir, limit=None):
    """The example's data: (x, y, mask, block) of its training words (seed 0 split)."""
    import words_transformer as WT
    train_words, val_words = WT.load_words(data_dir, limit, seed=0)
    block = max(len(w) for w in train_words + val_words) + 1
    return (*WT.encode(train_words, block), block)


def words_training(framework, words, steps=300, batch=BATCH, embed=64, heads=4, layers=2,
                   lr=2e-3):
    """transformer-words: examples/words_transformer.py's causal transformer, AdamW(lr,
    weight_decay=0.01) with its warm-up + cosine schedule over `steps`, its masked
    cross-entropy, its batch order (seed 0), the batches gathered before the timed loop."""
    import words_transformer as WT
    x, y, mask, block = words
    order = np.concatenate(list(WT.batches(len(x), batch, steps, seed=0)))
    xs, ys, ms = (np.ascontiguousarray(a[order]) for a in (x, y, mask))
    pynn.manual_seed(0)
    model = WT.build_model(block, embed, heads, layers)
    if framework == "pynn":
        opt = AdamW(lr, weight_decay=0.01)

        def run():
            for i in range(steps):
                sl = slice(i * batch, (i + 1) * batch)
                opt.lr = WT.lr_at(i, steps, lr)
                loss = WT.masked_cross_entropy(model(xs[sl]), ys[sl], ms[sl])
                loss.zero_grad()
                loss.backward()
                opt.update(model.parameters)
            return loss.item()
        return run, model

    import torch
    from torch_twins import TorchWords, load_pynn_weights
    from words_transformer_torch import masked_loss
    net = load_pynn_weights(TorchWords(block, embed, heads, layers), model)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=0.01)
    txs, tys, tms = (torch.from_numpy(a) for a in (xs, ys, ms))

    def run():
        for i in range(steps):
            sl = slice(i * batch, (i + 1) * batch)
            for group in opt.param_groups:
                group["lr"] = WT.lr_at(i, steps, lr)
            loss = masked_loss(net(txs[sl]), tys[sl], tms[sl])
            opt.zero_grad()
            loss.backward()
            opt.step()
        return loss.item()
    return run, net


def moons_training(framework, steps=100):
    """W1, micrograd's demo: MLP 2-16-16-1, 100 samples, max-margin loss + 1e-4 L2, SGD with
    micrograd's decaying learning rate, full batch."""
    if framework == "pynn":
        run, model = moons_pynn(pynn, steps)
        return run, model
    X, Y = _moons_data()
    layers = _moons_layers(pynn)
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


def _moons_data():
    from pynn.datasets import make_moons
    X, y = make_moons(100, noise=0.1, seed=1)
    return X, (2 * y - 1).astype(np.float32).reshape(-1, 1)


def _moons_layers(P):
    P.manual_seed(0)
    return [P.layers.Dense(2, 16, "relu"), P.layers.Dense(16, 16, "relu"),
            P.layers.Dense(16, 1)]


def moons_pynn(P, steps=100):
    """(run, model): W1's loop on the pynn package P (this checkout's, or another checkout's
    imported under another name by benchmarks/eager_ab.py)."""
    importlib.import_module(P.__name__ + ".optim")
    X, Y = _moons_data()
    x_in = P.Input((2,))
    x = x_in
    for layer in _moons_layers(P):
        x = layer(x)
    model = P.Model(x_in, x)
    params = model.parameters
    opt = P.optim.SGD(1.0)
    Yt = P.Tensor(Y)

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
