"""pynn's one random number generator, seeded by `pynn.manual_seed`."""
import numpy as np

_rng = np.random.default_rng()


def manual_seed(seed):
    """Seed every random draw pynn makes (initialisation, dropout, randn, shuffling)."""
    global _rng
    _rng = np.random.default_rng(seed)
    return _rng


def rng():
    return _rng
