"""Which samples each rank's sharded DataLoader gives, epoch by epoch, gathered on rank 0.

    mpiexec -n 3 python tests/mpi_scripts/shard.py --n 103 --batch 8 --out ids.npz

Rank 0 writes ids (epochs, world, samples per rank) and the fewest and most steps any rank ran.
(pynn importable: installed, or PYTHONPATH=. from the repository root)
"""
import argparse

import numpy as np

import pynn.distributed as dist
from pynn.data import DataLoader


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--n", type=int, default=103)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--drop-last", action="store_true")
    args = p.parse_args()
    rank, world = dist.init()
    loader = DataLoader(np.arange(args.n), batch_size=args.batch, shuffle=True, seed=3,
                        shard=dist.shard(), drop_last=args.drop_last)
    steps, epochs = 0, []
    for _ in range(args.epochs):
        ids = []
        for xb in loader:
            ids.append(xb.data)
            steps += 1
            dist.barrier()        # a rank with fewer steps than the others would hang here
        ids = np.concatenate(ids) if ids else np.zeros(0, np.int64)
        size = len(ids)
        if dist.allreduce(float(size), "min") != dist.allreduce(float(size), "max"):
            raise RuntimeError(f"rank {rank}: {size} samples, other ranks a different number")
        table = np.zeros((world, size), np.int64)       # gathered with a sum: rows are disjoint
        table[rank] = ids
        epochs.append(dist.allreduce(table, "sum"))
    fewest, most = dist.allreduce(float(steps), "min"), dist.allreduce(float(steps), "max")
    if dist.is_main():
        np.savez(args.out, ids=np.stack(epochs), steps=np.array([fewest, most]),
                 len_loader=len(loader), world=world)


if __name__ == "__main__":
    main()
