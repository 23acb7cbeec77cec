"""The words transformer of examples/words_transformer.py trained in pynn and in PyTorch, from the
same initial weights, on the same batches with the same schedule; prints both validation losses.

    python benchmarks/words_transformer_torch.py [--steps 3000] [--threads 1] [example options]

Every option of examples/words_transformer.py is accepted (--steps, --batch-size, --lr, --embed,
--heads, --layers, --limit, --data-dir, --seed ...). The torch model is built from torch.nn
modules (Embedding, LayerNorm, MultiheadAttention(batch_first=True) with a boolean causal mask,
Linear, GELU) and gets a copy of the pynn model's initial weights, so the two runs differ only
by floating-point rounding and the libraries' kernels. Both get `--threads` BLAS threads.
"""
import os
import sys
import time
from pathlib import Path


def _threads_from_argv(default=1):
    for i, arg in enumerate(sys.argv):
        if arg == "--threads" and i + 1 < len(sys.argv):
            return int(sys.argv[i + 1])
        if arg.startswith("--threads="):
            return int(arg.split("=", 1)[1])
    return default


# NumPy's BLAS reads its thread count when it is loaded: set it before the import (only when
# run as a script: benchmarks/torch_twins.py imports TorchWords and keeps its caller's threads)
THREADS = _threads_from_argv()
if __name__ == "__main__":
    os.environ["OPENBLAS_NUM_THREADS"] = os.environ["OMP_NUM_THREADS"] = str(THREADS)
ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "examples")]

import numpy as np  # noqa: E402
import torch  # noqa: E402
import words_transformer as W  # noqa: E402
from tqdm import tqdm  # noqa: E402

import pynn  # noqa: E402


class TorchWords(torch.nn.Module):
    """The same architecture as words_transformer.build_model, in torch.nn."""

    def __init__(self, block, embed, heads, layers):
        super().__init__()
        nn = torch.nn
        self.tok, self.pos = nn.Embedding(W.VOCAB, embed), nn.Embedding(block, embed)
        self.blocks = nn.ModuleList()
        for _ in range(layers):
            self.blocks.append(nn.ModuleDict({
                "ln1": nn.LayerNorm(embed),
                "attn": nn.MultiheadAttention(embed, heads, batch_first=True),
                "ln2": nn.LayerNorm(embed),
                "fc1": nn.Linear(embed, 4 * embed), "fc2": nn.Linear(4 * embed, embed)}))
        self.ln_f, self.head = nn.LayerNorm(embed), nn.Linear(embed, W.VOCAB)
        self.register_buffer("causal", torch.triu(torch.ones(block, block, dtype=torch.bool), 1),
                             persistent=False)     # a constant, not a weight

    def forward(self, ids):
        x = self.tok(ids) + self.pos.weight
        for b in self.blocks:
            h = b["ln1"](x)
            x = x + b["attn"](h, h, h, attn_mask=self.causal, need_weights=False)[0]
            x = x + b["fc2"](torch.nn.functional.gelu(b["fc1"](b["ln2"](x))))
        return self.head(self.ln_f(x))

    def modules_in_pynn_order(self):
        """Torch modules in the order of the pynn model's layers (its call order)."""
        out = [self.tok, self.pos]
        for b in self.blocks:
            out += [b["ln1"], b["attn"], b["ln2"], b["fc1"], b["fc2"]]
        return out + [self.ln_f, self.head]


def _without_threads(argv):
    out, skip = [], False
    for a in argv:
        if skip or a.startswith("--threads="):
            skip = False
        elif a == "--threads":
            skip = True
        else:
            out.append(a)
    return out


def copy_weights(model, net):
    names = {"in_proj_weight": "in_proj_weight", "in_proj_bias": "in_proj_bias",
             "out_proj_weight": "out_proj.weight", "out_proj_bias": "out_proj.bias"}
    with torch.no_grad():
        for layer, module in zip(model.layers, net.modules_in_pynn_order(), strict=True):
            for name, p in layer.named_parameters():
                target = module
                for part in names.get(name, name).split("."):
                    target = getattr(target, part)
                target.copy_(torch.from_numpy(p.data.copy()))


def masked_loss(logits, y, mask):
    nll = torch.nn.functional.cross_entropy(logits.reshape(-1, W.VOCAB), y.reshape(-1),
                                            reduction="none")
    return (nll * mask.reshape(-1)).sum() / mask.sum()


def train_torch(net, train_set, val_set, args):
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=0.01)
    x, y, mask = (torch.from_numpy(a) for a in train_set)
    start, loss = time.perf_counter(), None
    for step, idx in enumerate(tqdm(W.batches(len(x), args.batch_size, args.steps, args.seed),
                                    total=args.steps, desc="torch")):
        for group in opt.param_groups:
            group["lr"] = W.lr_at(step, args.steps, args.lr)
        idx = torch.from_numpy(idx)
        loss = masked_loss(net(x[idx]), y[idx], mask[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    seconds = time.perf_counter() - start
    net.eval()
    with torch.no_grad():
        vx, vy, vm = (torch.from_numpy(a) for a in val_set)
        val = float(masked_loss(net(vx), vy, vm))
    return loss.item(), val, seconds


def main():
    args = W.parse_args(_without_threads(sys.argv[1:]))
    torch.set_num_threads(THREADS)
    pynn.manual_seed(args.seed)
    torch.manual_seed(args.seed)
    _, train_set, val_set, block = W.prepare(args)
    model = W.build_model(block, args.embed, args.heads, args.layers)
    net = TorchWords(block, args.embed, args.heads, args.layers)
    copy_weights(model, net)
    probe = train_set[0][:8]
    with torch.no_grad():
        diff = np.abs(model(probe).data - net(torch.from_numpy(probe)).numpy()).max()
    print(f"same initial weights: max |pynn logits - torch logits| = {diff:.2e}")
    curve, pynn_seconds = W.train(model, train_set, val_set, args)
    torch_train, torch_val, torch_seconds = train_torch(net, train_set, val_set, args)
    print(f"pynn:  train loss {curve[-1][1]:.4f}, validation loss {curve[-1][2]:.4f} nats/char, "
          f"{pynn_seconds / args.steps * 1000:.1f} ms/step")
    print(f"torch: train loss {torch_train:.4f}, validation loss {torch_val:.4f} nats/char, "
          f"{torch_seconds / args.steps * 1000:.1f} ms/step")
    print(f"final: steps={args.steps} threads={THREADS} pynn_val_loss={curve[-1][2]:.4f} "
          f"torch_val_loss={torch_val:.4f} pynn_ms_per_step={pynn_seconds / args.steps * 1000:.1f} "
          f"torch_ms_per_step={torch_seconds / args.steps * 1000:.1f}")


if __name__ == "__main__":
    main()
