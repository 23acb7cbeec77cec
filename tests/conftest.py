"""Fixtures shared by test files (pytest finds this file itself)."""
import pytest


@pytest.fixture
def weights_multiplied(monkeypatch):
    """[W as each Dense product got it], in the order the products ran (the operand
    pynn.ops.nn._dense_rows receives: W.T, or a constant_weights copy of it)."""
    import pynn.ops.nn as nn_ops
    seen, inner = [], nn_ops._dense_rows

    def recording(x, w_t, b, y, act):
        seen.append(w_t)
        inner(x, w_t, b, y, act)

    monkeypatch.setattr(nn_ops, "_dense_rows", recording)
    return seen
