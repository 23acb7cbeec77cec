"""Embedding: a lookup table of learned vectors, indexed by integer ids."""
import numpy as np

from ..ops import recurrent as R
from ..random import rng
from ..tensor import Tensor, apply
from .base import Layer


class Embedding(Layer):
    """A table of `num_embeddings` vectors of size `embedding_dim`, as torch.nn.Embedding.

    Args:
        num_embeddings: rows of the table (ids 0 .. num_embeddings - 1).
        embedding_dim: size of each vector.
        padding_idx: a row that is set to zeros and gets no gradient (None: no such row;
            negative counts from the end, as torch).

    Shape:
        input: integer ids of any shape (*); output (*, embedding_dim). Inside a compiled Model
        the ids arrive as the model's float dtype (exact for ids below 2**24 in float32) and are
        turned back to integers.

    The weight is (num_embeddings, embedding_dim), initialised N(0, 1) as torch.

    Example:
        >>> emb = Embedding(27, 16, padding_idx=0)
        >>> emb(Tensor(np.array([[1, 2, 0]]))).shape
        (1, 3, 16)
    """
    param_names = ("weight",)

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, name=None):
        super().__init__(name=name)
        num_embeddings, embedding_dim = int(num_embeddings), int(embedding_dim)
        if num_embeddings <= 0 or embedding_dim <= 0:
            raise ValueError(f"Embedding: num_embeddings and embedding_dim must be positive, got "
                             f"{num_embeddings}, {embedding_dim}")
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(f"Embedding: padding_idx {padding_idx} is out of range for "
                                 f"{num_embeddings} embeddings")
            padding_idx = int(padding_idx) % num_embeddings
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.padding_idx = padding_idx
        w = rng().standard_normal((num_embeddings, embedding_dim)).astype(np.float32)
        if padding_idx is not None:
            w[padding_idx] = 0
        self.weight = Tensor(w, requires_grad=True)

    def check_input(self, x):
        if x.dtype.kind not in "iuf":
            raise ValueError(f"{self!r} expects integer ids, got dtype {x.dtype}")

    def forward(self, x):
        return apply(R.Embedding(padding_idx=self.padding_idx), x, self.weight)

    def config(self):
        return {"num_embeddings": self.num_embeddings, "embedding_dim": self.embedding_dim,
                "padding_idx": self.padding_idx}

    def __repr__(self):
        return f"Embedding({self.num_embeddings}, {self.embedding_dim})"
