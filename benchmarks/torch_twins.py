"""PyTorch twins of the pynn models in benchmarks/workloads.py, built from torch.nn modules, and
`load_pynn_weights`, which gives a twin the pynn model's weights through pynn's torch-named
state dict (`pynn.interop.torch_state_dict`) and `load_state_dict(strict=True)`.

Each twin lists its weighted modules in the order of the pynn model's weighted layers
(`modules_in_pynn_order`); that pairing is the only thing the weight copy relies on. The
twins return logits: torch trains on them with F.cross_entropy, the same math as pynn's
softmax output + categorical cross-entropy.
"""
import sys
from pathlib import Path

import torch
from torch import nn

from pynn.interop import torch_state_dict

sys.path.insert(0, str(Path(__file__).resolve().parent))
from words_transformer_torch import TorchWords  # noqa: E402, F401  (the words twin lives there)


def load_pynn_weights(net, model):
    """Copy `model`'s weights (and BatchNorm running statistics) into `net`, whose
    `modules_in_pynn_order()` pairs one torch module with each weighted pynn layer.

    pynn's MultiHeadAttention names its output projection `out_proj_weight`, torch's
    `out_proj.weight`: those two keys are renamed explicitly, every other key keeps its
    parameter name under the torch module's path."""
    own = model.state_dict()
    layer_names = list(dict.fromkeys(key.rpartition(".")[0] for key in own))
    paths = {id(m): path for path, m in net.named_modules()}
    modules = net.modules_in_pynn_order()
    if len(modules) != len(layer_names):
        raise ValueError(f"{type(net).__name__}: {len(modules)} torch modules for "
                         f"{len(layer_names)} weighted pynn layers {layer_names}")
    mapping = {}
    for name, module in zip(layer_names, modules):
        path = paths[id(module)]
        mapping[name] = path
        for part in ("weight", "bias"):
            if f"{name}.out_proj_{part}" in own:
                mapping[f"{name}.out_proj_{part}"] = f"{path}.out_proj.{part}"
    state = {k: torch.from_numpy(v.copy()) for k, v in torch_state_dict(model, mapping).items()}
    net.load_state_dict(state, strict=True)
    return net


class TorchResNet(nn.Module):
    """examples/fashion_resnet.py's ResNet: stem conv-BN-ReLU, MaxPool2d(2), a block at `width`
    channels, a strided block to 2*width (1x1 projection shortcut), a block, global average
    pooling, Linear(2*width, 10)."""

    def __init__(self, width):
        super().__init__()
        self.stem = nn.Conv2d(1, width, 3, padding=1, bias=False)
        self.stem_bn = nn.BatchNorm2d(width)
        self.blocks = nn.ModuleList([_Block(width, width, 1), _Block(width, 2 * width, 2),
                                     _Block(2 * width, 2 * width, 1)])
        self.fc = nn.Linear(2 * width, 10)

    def forward(self, x):
        x = torch.max_pool2d(torch.relu(self.stem_bn(self.stem(x))), 2)
        for block in self.blocks:
            x = block(x)
        return self.fc(x.mean(dim=(2, 3)))

    def modules_in_pynn_order(self):
        out = [self.stem, self.stem_bn]
        for b in self.blocks:
            out += [b.conv1, b.bn1, b.conv2, b.bn2]
            if b.proj is not None:
                out += [b.proj, b.proj_bn]
        return out + [self.fc]


class _Block(nn.Module):
    """relu(shortcut(x) + bn2(conv2(relu(bn1(conv1(x)))))), as residual_block in the example."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.proj = self.proj_bn = None
        if stride != 1 or cin != cout:
            self.proj = nn.Conv2d(cin, cout, 1, stride=stride, bias=False)
            self.proj_bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        h = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        if self.proj is not None:
            x = self.proj_bn(self.proj(x))
        return torch.relu(h + x)


class TorchLSTMClassifier(nn.Module):
    """examples/seq_mnist_lstm.py's model: LSTM(28 -> hidden) over the 28 rows, the last step's
    h, Linear(hidden, 10)."""

    def __init__(self, hidden, features=28):
        super().__init__()
        self.lstm = nn.LSTM(features, hidden, batch_first=True)
        self.fc = nn.Linear(hidden, 10)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.fc(out[:, -1])

    def modules_in_pynn_order(self):
        return [self.lstm, self.fc]
