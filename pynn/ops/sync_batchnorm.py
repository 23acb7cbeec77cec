"""Synchronised batch normalisation: BatchNorm whose batch is the union of every rank's batch."""
import numpy as np

from .. import distributed
from .nn import BatchNorm


class SyncBatchNorm(BatchNorm):
    """BatchNorm over the whole distributed batch: N ranks at batch B/N equal one process at B.

    Inputs x, gamma, beta; attrs: module (as BatchNorm). In training mode with several ranks the
    per-channel statistics are all-reduced: the sum of x with the sample count (giving the global
    mean), then the sum of squared deviations from it (giving the global biased variance): two
    passes, like np.var, rather than E[x^2] - mean^2, which cancels badly in float32. The local
    sums are taken in float64. Running statistics are updated from the global values, so they
    stay identical on all ranks. In eval mode, or in a one-process world, it is BatchNorm.

    Derivative: d/dx = inv_std/n * (n*gxhat - S(gxhat) - xhat*S(gxhat*xhat)), gxhat = g*gamma
    (n and the sums S over every rank's batch and pixels, all-reduced); d/dgamma = sum(g * xhat),
    d/dbeta = sum(g) over this rank's batch (DistributedOptimizer averages them over ranks)."""

    def forward(self, x, gamma, beta):
        m = self.module
        self.synced = m.training and distributed.world_size() > 1
        if not self.synced:
            return super().forward(x, gamma, beta)
        axes = (0,) + tuple(range(2, x.ndim))
        shape = (1, -1) + (1,) * (x.ndim - 2)
        C = x.shape[1]
        self.train_mode = True
        xhat = self.buffer("xhat", x.shape, x.dtype)
        y = self.buffer("y", x.shape, x.dtype)
        # pass 1: global sum and count -> mean
        total = self.buffer("sum_count", (C + 1,), np.float64)
        np.sum(x, axis=axes, dtype=np.float64, out=total[:C])
        total[C] = x.size // C
        distributed.allreduce_into(total, "sum")
        n = int(round(total[C]))
        mean = np.divide(total[:C], n, out=self.buffer("mean", (C,), np.float64))
        np.subtract(x, mean.astype(x.dtype).reshape(shape), out=xhat)
        # pass 2: global sum of squared deviations -> biased variance
        var = np.sum(np.square(xhat, out=y), axis=axes, dtype=np.float64,
                     out=self.buffer("var", (C,), np.float64))
        distributed.allreduce_into(var, "sum")
        var /= n
        m.running_mean *= 1 - m.momentum
        m.running_mean += (m.momentum * mean).astype(m.running_mean.dtype)
        m.running_var *= 1 - m.momentum
        m.running_var += (m.momentum * var * (n / max(n - 1, 1))).astype(m.running_var.dtype)
        self.inv_std = (1.0 / np.sqrt(var + m.eps)).astype(x.dtype).reshape(shape)
        xhat *= self.inv_std
        self.xhat, self.gamma, self.axes, self.n = xhat, gamma.reshape(shape), axes, n
        np.multiply(xhat, self.gamma, out=y)
        y += beta.reshape(shape)
        return y

    def backward(self, g):
        if not self.synced:
            return super().backward(g)
        axes, xhat, shape, n = self.axes, self.xhat, self.inv_std.shape, self.n
        C = g.shape[1]
        tmp = self.buffer("tmp", g.shape, g.dtype)
        ggamma = np.sum(np.multiply(g, xhat, out=tmp), axis=axes,
                        out=self.buffer("ggamma", (C,), g.dtype))
        gbeta = np.sum(g, axis=axes, out=self.buffer("gbeta", (C,), g.dtype))
        gxhat = np.multiply(g, self.gamma, out=tmp)
        gx = self.buffer("gx", g.shape, g.dtype)
        # one Allreduce of both sums (2C numbers)
        sums = self.buffer("sums", (2 * C,), np.float64)
        np.sum(gxhat, axis=axes, dtype=np.float64, out=sums[:C])
        np.sum(np.multiply(gxhat, xhat, out=gx), axis=axes, dtype=np.float64, out=sums[C:])
        distributed.allreduce_into(sums, "sum")
        s1 = sums[:C].astype(g.dtype).reshape(shape)
        s2 = sums[C:].astype(g.dtype).reshape(shape)
        gxhat *= n
        gxhat -= s1
        gxhat -= np.multiply(xhat, s2, out=gx)
        np.multiply(gxhat, self.inv_std / n, out=gx)
        return gx, ggamma, gbeta
