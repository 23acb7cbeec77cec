import numpy as np
import pytest

from pynn.data import DataLoader
from pynn.tensor import Tensor


def _data(n=103, d=3):
    x = np.arange(n * d, dtype=np.float32).reshape(n, d)
    y = np.arange(n, dtype=np.int64)
    return x, y


def _epoch_ids(loader):
    """Sample ids (y values) of one epoch, batch by batch."""
    return [yb.data.copy() for _, yb in loader]


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("batch_size", [1, 10, 32, 103, 500])
def test_every_sample_exactly_once_per_epoch(shuffle, batch_size):
    x, y = _data()
    loader = DataLoader(x, y, batch_size=batch_size, shuffle=shuffle, seed=0)
    for _ in range(2):
        ids = np.concatenate(_epoch_ids(loader))
        assert np.array_equal(np.sort(ids), y)
        if not shuffle:
            assert np.array_equal(ids, y)


def test_batches_pair_x_with_its_own_y():
    x, y = _data()
    for xb, yb in DataLoader(x, y, batch_size=16, shuffle=True, seed=1):
        assert np.array_equal(xb.data, x[yb.data])


def test_shuffle_differs_between_epochs_and_from_identity():
    x, y = _data(200)
    loader = DataLoader(x, y, batch_size=50, shuffle=True, seed=3)
    e1 = np.concatenate(_epoch_ids(loader))
    e2 = np.concatenate(_epoch_ids(loader))
    assert not np.array_equal(e1, e2)
    assert not np.array_equal(e1, y)


def test_seed_reproducible_sequence_of_epochs():
    x, y = _data(100)
    a = DataLoader(x, y, batch_size=7, shuffle=True, seed=42)
    b = DataLoader(x, y, batch_size=7, shuffle=True, seed=42)
    for _ in range(3):
        ea, eb = _epoch_ids(a), _epoch_ids(b)
        assert all(np.array_equal(p, q) for p, q in zip(ea, eb))
    c = DataLoader(x, y, batch_size=7, shuffle=True, seed=43)
    assert not np.array_equal(np.concatenate(_epoch_ids(c)),
                              np.concatenate(_epoch_ids(DataLoader(x, y, 7, True, seed=42))))


def test_permutation_drawn_when_epoch_starts():
    x, y = _data(50)
    a = DataLoader(x, y, batch_size=50, shuffle=True, seed=5)
    b = DataLoader(x, y, batch_size=50, shuffle=True, seed=5)
    it1, it2 = iter(a), iter(a)          # epoch 1 then epoch 2, consumed in reverse order
    second = next(it2)[1].data
    first = next(it1)[1].data
    assert np.array_equal(first, next(iter(b))[1].data)
    assert np.array_equal(second, next(iter(b))[1].data)


@pytest.mark.parametrize("n,bs,drop_last,sizes", [
    (103, 10, False, [10] * 10 + [3]),
    (103, 10, True, [10] * 10),
    (100, 10, False, [10] * 10),
    (100, 10, True, [10] * 10),
    (5, 10, False, [5]),
    (5, 10, True, []),
    (0, 4, False, []),
])
def test_last_batch_and_len(n, bs, drop_last, sizes):
    x, y = _data(n)
    for shuffle in (False, True):
        loader = DataLoader(x, y, batch_size=bs, shuffle=shuffle, drop_last=drop_last, seed=0)
        assert len(loader) == len(sizes)
        got = [xb.shape[0] for xb, _ in loader]
        assert got == sizes
        if drop_last and shuffle and n:
            # the dropped samples are the tail of this epoch's permutation
            ids = np.concatenate(_epoch_ids(loader)) if sizes else np.array([], np.int64)
            assert len(np.unique(ids)) == sum(sizes)


def test_yields_tensors_with_dtypes_and_shapes():
    x = np.random.default_rng(0).random((20, 1, 4, 4), dtype=np.float32)
    y = np.arange(20, dtype=np.int64)
    for xb, yb in DataLoader(x, y, batch_size=8, shuffle=True, seed=0):
        assert isinstance(xb, Tensor) and isinstance(yb, Tensor)
        assert xb.data.dtype == np.float32 and yb.data.dtype == np.int64
        assert xb.shape[1:] == (1, 4, 4) and xb.shape[0] == yb.shape[0]
        assert xb.data.flags["C_CONTIGUOUS"]


def test_accepts_tensors_as_input():
    x, y = _data(30)
    loader = DataLoader(Tensor(x), Tensor(y), batch_size=8)
    xs, ys = zip(*[(xb.data, yb.data) for xb, yb in loader])
    assert np.array_equal(np.concatenate(xs), x)
    assert np.array_equal(np.concatenate(ys), y)


def test_y_none_yields_x_only():
    x, _ = _data(25)
    batches = list(DataLoader(x, batch_size=10, shuffle=True, seed=0))
    assert all(isinstance(b, Tensor) for b in batches)
    assert [b.shape[0] for b in batches] == [10, 10, 5]
    rows = np.concatenate([b.data for b in batches])
    assert np.array_equal(rows[np.argsort(rows[:, 0])], x)


def test_batches_stay_valid_and_do_not_alias_dataset():
    x, y = _data(40)
    x0 = x.copy()
    for shuffle in (False, True):
        batches = list(DataLoader(x, y, batch_size=8, shuffle=shuffle, seed=0))
        for xb, yb in batches:                      # earlier batches unchanged by later ones
            assert np.array_equal(xb.data, x0[yb.data])
        batches[0][0].data[...] = -1                # writing to a batch leaves the data alone
        assert np.array_equal(x, x0)


def test_never_copies_whole_dataset(monkeypatch):
    # np.take is only ever asked for one batch worth of rows
    x, y = _data(1000)
    calls = []
    real_take = np.take

    def spy(a, indices, *args, **kwargs):
        calls.append(len(indices))
        return real_take(a, indices, *args, **kwargs)

    monkeypatch.setattr(np, "take", spy)
    for _ in DataLoader(x, y, batch_size=64, shuffle=True, seed=0):
        pass
    assert calls and max(calls) <= 64


def test_errors():
    x, y = _data(10)
    with pytest.raises(ValueError, match="different lengths"):
        DataLoader(x, y[:9])
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(x, y, batch_size=0)
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(x, y, batch_size=-3)
    with pytest.raises(TypeError, match="batch_size"):
        DataLoader(x, y, batch_size=2.5)
    with pytest.raises(ValueError, match="dimension"):
        DataLoader(np.float32(1.0))


def test_len_and_repr():
    x, y = _data(10)
    loader = DataLoader(x, y, batch_size=3)
    assert len(loader) == 4
    assert "batch_size=3" in repr(loader)
    assert len(DataLoader(x, y, batch_size=3, drop_last=True)) == 3
