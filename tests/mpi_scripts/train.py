"""Train small models for --steps steps, data-parallel over however many ranks run this script.

Run without mpiexec it is one process with the global batch; under `mpiexec -n N` each rank
takes batch/N samples of every global batch (DataLoader shard) and the gradients are averaged
(DistributedOptimizer). Rank 0 writes, for every model, the final state_dict and how far the
other ranks' arrays are from rank 0's (max |difference|, all-reduced with max), to --out (.npz).

    mpiexec -n 2 python tests/mpi_scripts/train.py --out w2.npz
(pynn importable: installed, or PYTHONPATH=. from the repository root)
"""
import argparse

import numpy as np

import pynn
import pynn.distributed as dist
from pynn import Input, Model
from pynn.data import DataLoader
from pynn.layers import BatchNorm2d, Conv2d, Dense, Flatten, MaxPool2d, ReLU, SyncBatchNorm
from pynn.losses import categorical_cross_entropy
from pynn.optimizers import SGD

MODELS = ("mlp", "cnn", "cnn_syncbn", "cnn_bn")
N_SAMPLES = 60          # 5 global batches of 12 per epoch: 20 steps are 4 shuffled epochs


def build(kind):
    if kind == "mlp":
        x_in = Input((8,))
        x = Dense(8, 16, "relu")(x_in)
        x = Dense(16, 3, "softmax")(x)
        return Model(x_in, x)
    x_in = Input((2, 6, 6))
    if kind == "cnn":
        x = Conv2d(2, 4, 3, padding=1, activation="relu")(x_in)
    else:
        x = Conv2d(2, 4, 3, padding=1)(x_in)
        x = (SyncBatchNorm(4) if kind == "cnn_syncbn" else BatchNorm2d(4))(x)
        x = ReLU()(x)
    x = MaxPool2d(2)(x)
    x = Flatten()(x)
    x = Dense(4 * 3 * 3, 3, "softmax")(x)
    return Model(x_in, x)


def data(kind, dtype):
    rng = np.random.default_rng(123)
    shape = (N_SAMPLES, 8) if kind == "mlp" else (N_SAMPLES, 2, 6, 6)
    x = rng.standard_normal(shape).astype(dtype)
    y = rng.integers(0, 3, N_SAMPLES)
    return x, y


def to_dtype(model, dtype):
    for layer in model.layers:
        for name in layer.param_names:
            p = getattr(layer, name)
            if p is not None:
                p.data = p.data.astype(dtype)
        for name in layer.buffer_names:
            setattr(layer, name, getattr(layer, name).astype(dtype))


def rank_spread(arrays):
    """max over ranks and elements of |array - rank 0's array| (0.0 on every rank if equal)."""
    worst = 0.0
    for a in arrays:
        ref = dist.broadcast(a.copy(), root=0)
        worst = max(worst, float(np.max(np.abs(a - ref))))
    return dist.allreduce(worst, "max")


def train(kind, args, dtype):
    pynn.manual_seed(1000 + rank_seed_offset(args))
    model = build(kind)
    to_dtype(model, dtype)
    dist.broadcast_parameters(model, root=0)
    opt = dist.DistributedOptimizer(SGD(args.lr, momentum=0.9))
    x, y = data(kind, dtype)
    world = dist.world_size()
    loader = DataLoader(x, y, batch_size=args.batch // world, shuffle=True, seed=7,
                        shard=dist.shard())
    step = 0
    out = {}
    while step < args.steps:
        for xb, yb in loader:
            if step == args.raise_at_step and dist.rank() == args.raise_rank:
                raise RuntimeError(f"deliberate failure on rank {dist.rank()} at step {step}")
            loss = categorical_cross_entropy(model(xb), yb)
            loss.zero_grad()
            loss.backward()
            opt.update(model.parameters)
            step += 1
            if step == args.steps:
                break
    state = model.state_dict()
    buffers = [k for k in state if k.endswith(("running_mean", "running_var"))]
    weights = [k for k in state if k not in buffers]
    out["weight_spread"] = rank_spread([state[k] for k in weights])
    out["buffer_spread"] = rank_spread([state[k] for k in buffers]) if buffers else 0.0
    if kind == "cnn_bn":
        dist.sync_batchnorm_stats(model)
        out["buffer_spread_after_sync"] = rank_spread([state[k] for k in buffers])
    out["steps"] = dist.allreduce(float(step), "min"), dist.allreduce(float(step), "max")
    for k, v in state.items():
        out[k] = v.copy()
    return out


def rank_seed_offset(args):
    # a different initialisation on every rank: broadcast_parameters must make them equal
    return dist.rank() if args.different_init else 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch", type=int, default=12, help="global batch (all ranks together)")
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--different-init", action="store_true")
    p.add_argument("--raise-at-step", type=int, default=-1)
    p.add_argument("--raise-rank", type=int, default=-1)
    args = p.parse_args()
    dist.init()
    results = {}
    for kind in args.models.split(","):
        for k, v in train(kind, args, np.dtype(args.dtype)).items():
            results[f"{kind}/{k}"] = v
    if dist.is_main():
        results["world_size"] = dist.world_size()
        np.savez(args.out, **results)


if __name__ == "__main__":
    main()
