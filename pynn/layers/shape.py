"""Flatten and Reshape: change the shape of each sample, keep the batch dimension."""
from .base import Layer


class Flatten(Layer):
    """Flatten every dim from `start_dim` (default 1: all but the batch)."""

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x):
        return x.flatten(self.start_dim, self.end_dim)

    def config(self):
        return {"start_dim": self.start_dim, "end_dim": self.end_dim}


class Reshape(Layer):
    """Reshape each sample to `shape` (the batch dim is kept as it comes)."""

    def __init__(self, shape):
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x):
        return x.reshape((-1,) + self.shape)

    def config(self):
        return {"shape": list(self.shape)}
