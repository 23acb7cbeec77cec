"""SyncBatchNorm: batch normalisation with statistics taken over every rank's batch."""
from ..ops.sync_batchnorm import SyncBatchNorm as SyncBatchNormOp
from ..tensor import apply
from .regularization import _BatchNorm


class SyncBatchNorm(_BatchNorm):
    r"""Batch normalisation whose batch statistics are all-reduced over the ranks (data-parallel).

    With plain BatchNorm each rank normalises by the statistics of its own B/N samples; this
    layer all-reduces the per-channel sums in training mode (forward and backward), so N ranks at
    batch B/N compute what one process computes at batch B, and the running statistics are the
    same on every rank. Eval mode uses the running statistics; in a one-process world (no
    ``pynn.distributed.init()``, or world size 1) it is exactly BatchNorm. Every rank must run
    each training step (the all-reduce is a collective).

    Args:
        num_features: C, the size of dimension 1 of the input.
        eps: added to the variance before the square root. Default: 1e-5.
        momentum: weight of the new batch statistics in the running ones. Default: 0.1.

    Shape:
        - Input: (N, C) or (N, C, *): any number of dimensions after the channels
        - Output: the same shape as the input

    Example::

        >>> import pynn.distributed as dist
        >>> dist.init()
        >>> bn = SyncBatchNorm(16)
        >>> y = bn(Tensor.randn((8, 16, 5, 5)))       # statistics over all ranks' 8 images
    """
    ndims = tuple(range(2, 9))
    expected = "(batch, num_features, *)"

    def forward(self, x):
        return apply(SyncBatchNormOp(module=self), x, self.weight, self.bias)
