"""pynn's one random number generator, seeded by `pynn.manual_seed`."""
import numpy as np

_rng = np.random.default_rng()


def manual_seed(seed):
    """Seed every random draw pynn makes (initialisation, dropout, randn, and the shuffling of
    a DataLoader created without its own seed=): after the same manual_seed, the same program
    draws the same numbers."""
    global _rng
    _rng = np.random.default_rng(seed)


def rng():
    return _rng
