"""pynn.kernels.threads: a batch split across threads covers every image once, gives the
one-thread results, passes errors on, never nests, and survives a fork."""
import multiprocessing
import os

import numpy as np
import pytest

from pynn.kernels import threads
from pynn.ops import nn as N

needs_split = pytest.mark.skipif(not threads.blas_local_threads_available(),
                                 reason="NumPy's BLAS has no per-thread thread count")


@pytest.fixture
def two_threads(monkeypatch):
    """Two threads, and every batch of these small tests big enough to split."""
    before = threads.get_num_threads()
    threads.set_num_threads(2)
    monkeypatch.setattr(threads, "MIN_WORK", 1000)
    yield
    threads.set_num_threads(before)


@needs_split
def test_slices_cover_the_batch_once_and_run_on_two_threads(two_threads):
    import threading
    seen, names = np.zeros(7, int), set()

    def fn(k, n0, n1):
        seen[n0:n1] += 1
        names.add(threading.current_thread().name)

    T = threads.slices(7)
    assert T == 2
    threads.split_batch(fn, 7, T)
    assert (seen == 1).all()
    assert len(names) == 2


def test_small_work_and_one_thread_run_inline(two_threads):
    assert threads.slices(64, work=10) == 1
    assert (threads.slices(64, work=10, min_work=5) == 2
            or not threads.blas_local_threads_available())
    assert threads.slices(1) == 1
    threads.set_num_threads(1)
    assert threads.slices(64) == 1
    calls = []
    threads.split_batch(lambda k, a, b: calls.append((k, a, b)), 64, 1)
    assert calls == [(0, 0, 64)]
    with pytest.raises(ValueError, match="at least 1"):
        threads.set_num_threads(0)


@needs_split
def test_an_error_in_a_slice_is_raised_after_every_slice_finished(two_threads):
    done = []

    def fn(k, n0, n1):
        if k == 1:
            raise RuntimeError("slice 1 failed")
        done.append(k)

    with pytest.raises(RuntimeError, match="slice 1 failed"):
        threads.split_batch(fn, 8, 2)
    assert done == [0]


@needs_split
def test_a_slice_does_not_split_again(two_threads):
    inner = []
    threads.split_batch(lambda k, a, b: inner.append(threads.slices(100)), 4, 2)
    assert inner == [1, 1]


def _conv_forward_backward(x, w, b, g):
    op = N.Conv2d(stride=(1, 1), padding=(1, 1), activation="relu")
    op.needs_input_grad = (True, True, True)
    y = op.forward(x, w, b).copy()
    return [y] + [a.copy() for a in op.backward(g)]


@needs_split
@pytest.mark.parametrize("block_bytes", [1 << 12, 1 << 20])
def test_conv_on_two_threads_equals_one_thread(two_threads, block_bytes, monkeypatch):
    monkeypatch.setattr(N.Conv2d, "BLOCK_BYTES", block_bytes)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((9, 3, 20, 20)).astype(np.float32)
    w = rng.standard_normal((5, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    g = rng.standard_normal((9, 5, 20, 20)).astype(np.float32)
    assert threads.slices(9, 9 * (27 + 5) * 400) == 2
    two = _conv_forward_backward(x, w, b, g)
    threads.set_num_threads(1)
    one = _conv_forward_backward(x, w, b, g)
    for name, a, c in zip(["y", "gx", "gw", "gb"], two, one):
        # y and gx are per image; gw and gb add the two slices' sums (another order)
        np.testing.assert_allclose(a, c, rtol=1e-5, atol=1e-5 * np.abs(c).max(), err_msg=name)


def test_a_small_cnn_trains_alike_on_one_and_on_two_threads(two_threads):
    import pynn
    from pynn import Input, Model
    from pynn.layers import Conv2d, Dense, Flatten, MaxPool2d
    from pynn.losses import categorical_cross_entropy
    from pynn.optimizers import Adam

    def train(n_threads):
        threads.set_num_threads(n_threads)
        pynn.manual_seed(0)
        x_in = Input((1, 12, 12))
        h = MaxPool2d(2)(Conv2d(1, 4, 3, padding=1, activation="relu")(x_in))
        h = MaxPool2d(2)(Conv2d(4, 6, 3, padding=1)(h))          # fused, no activation
        h = MaxPool2d(3, stride=1)(h)                            # unfused pool, split
        model = Model(x_in, Dense(6 * 1 * 1, 5, "softmax")(Flatten()(h)))
        opt, rng, losses = Adam(1e-2), np.random.default_rng(1), []
        for _ in range(5):
            x = rng.standard_normal((10, 1, 12, 12)).astype(np.float32)
            loss = categorical_cross_entropy(model(x), rng.integers(0, 5, 10))
            loss.zero_grad()
            loss.backward()
            opt.update(model.parameters)
            losses.append(loss.item())
        return losses, [p.data.copy() for p in model.parameters]

    (l1, p1), (l2, p2) = train(1), train(2)
    np.testing.assert_allclose(l2, l1, rtol=1e-5)
    for a, b in zip(p2, p1):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def _child(queue):
    x = np.ones((64, 4, 16, 16), np.float32)
    op = N.MaxPool2d(kernel_size=(2, 2), stride=(2, 2), padding=(0, 0))
    op.needs_input_grad = (False,)
    queue.put(float(op.forward(x).sum()))


@needs_split
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_splits_with_threads_of_its_own(two_threads):
    assert threads.slices(64, 64 * 4 * 16 * 16) == 2
    op = N.MaxPool2d(kernel_size=(2, 2), stride=(2, 2), padding=(0, 0))
    op.needs_input_grad = (False,)
    op.forward(np.ones((64, 4, 16, 16), np.float32))      # the parent's pool exists
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    p = ctx.Process(target=_child, args=(queue,))
    p.start()
    p.join(60)
    assert p.exitcode == 0
    assert queue.get(timeout=5) == 64 * 4 * 8 * 8


@needs_split
def test_the_callers_blas_thread_count_is_back_once_eager_splits_stop(two_threads, monkeypatch):
    # in NumPy's OpenBLAS the "local" thread count is process-wide. Outside a compiled pass a
    # split holds BLAS at one thread (the next split would otherwise wait for the core
    # OpenBLAS's worker spins on); once no split has come for HOLD_SECONDS, the next eager op
    # (eager_tick) gives the caller's count back -- also when a slice raised, and on the first
    # split, while the pool's thread is still starting
    import time

    import pynn
    threads.set_num_threads(1)
    threads.set_num_threads(2)          # a fresh pool
    before = threads._getter()
    threads.split_batch(lambda k, n0, n1: None, 8, 2)
    assert threads._getter() == 1 and threads.pass_splits()      # held: Linear splits itself
    threads.eager_tick()
    assert threads._getter() == 1                                 # splits came just now
    monkeypatch.setattr(threads, "HOLD_SECONDS", 0.01)
    time.sleep(0.02)
    pynn.tensor([1.0, 2.0]) + 1                                   # an eager op: the tick
    assert threads._getter() == before and not threads.pass_splits()

    def fail(k, n0, n1):
        if k == 1:
            raise RuntimeError("slice 1")
    with pytest.raises(RuntimeError, match="slice 1"):
        threads.split_batch(fail, 8, 2)
    assert threads._getter() == 1
    threads.release_hold()
    assert threads._getter() == before
    threads.split_batch(lambda k, n0, n1: None, 8, 2)
    threads.set_num_threads(1)                                    # also gives them back
    assert threads._getter() == before
    threads.set_num_threads(2)
    threads.split_batch(lambda k, n0, n1: None, 8, 2)
    threads.begin_pass(False)           # a compiled pass sets the count itself
    assert not threads._eager_hold
    threads.end_pass()


@needs_split
def test_a_compiled_pass_that_splits_keeps_blas_on_one_thread(two_threads):
    threads.begin_pass(False)
    default = threads._default_blas             # the count before pynn set any
    assert default >= 1 and threads._getter() == default
    threads.split_batch(lambda k, n0, n1: None, 8, 2)
    assert threads._getter() == 1               # not given back inside the pass
    assert threads.end_pass() is True
    threads.begin_pass(True)                    # a plan that split: one thread from the start
    assert threads._getter() == 1
    assert threads.end_pass() is False
    threads.begin_pass(False)                   # a plan that never split: every thread
    assert threads._getter() == default
    assert threads.end_pass() is False


def _recurrent_forward_backward(op_name, reverse, initial, x, w, states, g):
    from pynn.ops import recurrent as R
    op = getattr(R, op_name)(reverse=reverse, bias=True, initial=initial)
    op.needs_input_grad = (True,) * (5 + len(states))
    y = op.forward(x, *w, *states).copy()
    return op.parts, [y] + [a.copy() for a in op.backward(g)]


@needs_split
@pytest.mark.parametrize("op_name", ["LSTMSequence", "GRUSequence", "RNNSequence"])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("initial", [False, True])
def test_a_recurrent_op_on_two_threads_equals_one_thread(two_threads, op_name, reverse, initial):
    """Each thread runs the whole time loop for its own rows (an odd batch: slices of 4 and 5);
    the weight gradients add the two slices' partial sums."""
    gates = {"LSTMSequence": 4, "GRUSequence": 3, "RNNSequence": 1}[op_name]
    n, t, f, h = 9, 6, 5, 7
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, t, f)).astype(np.float32)
    w = [(rng.standard_normal(s) * 0.5).astype(np.float32)
         for s in ((gates * h, f), (gates * h, h), (gates * h,), (gates * h,))]
    states = [rng.standard_normal((n, h)).astype(np.float32)
              for _ in range(2 if op_name == "LSTMSequence" else 1)] if initial else []
    width = 2 * h if op_name == "LSTMSequence" else h
    g = rng.standard_normal((n, t, width)).astype(np.float32)
    parts_two, two = _recurrent_forward_backward(op_name, reverse, initial, x, w, states, g)
    threads.set_num_threads(1)
    parts_one, one = _recurrent_forward_backward(op_name, reverse, initial, x, w, states, g)
    assert (parts_two, parts_one) == (2, 1)
    names = ["y", "gx", "gw_ih", "gw_hh", "gb_ih", "gb_hh", "gh0", "gc0"]
    assert len(two) == len(one) == 6 + len(states)
    for name, a, c in zip(names, two, one):
        np.testing.assert_allclose(a, c, rtol=1e-5, atol=1e-6 * np.abs(c).max(), err_msg=name)


def _batchnorm_forward_backward(x, g, relu):
    from pynn.layers import BatchNorm2d
    layer = BatchNorm2d(x.shape[1])
    layer.weight.data[:] = np.linspace(0.5, 1.5, x.shape[1])
    layer.bias.data[:] = np.linspace(-0.2, 0.3, x.shape[1])
    op = N.BatchNorm(module=layer)
    op.relu = relu
    op.needs_input_grad = (True, True, True)
    y = op.forward(x, layer.weight.data, layer.bias.data).copy()
    return [y] + [a.copy() for a in op.backward(g)] + [layer.running_mean, layer.running_var]


@needs_split
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("spread", [False, True])
def test_batchnorm_split_by_channels_equals_one_thread(two_threads, monkeypatch, relu, spread):
    """Channels cut across the threads above BN_MIN_WORK elements, or above the smaller
    BN_SPREAD_MIN_WORK inside a pass whose plan splits its batches (threads.pass_splits)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 5, 7, 7)).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    monkeypatch.setattr(N, "BN_MIN_WORK", 10**9 if spread else 100)
    monkeypatch.setattr(N, "BN_SPREAD_MIN_WORK", 100 if spread else 10**9)
    split_calls = []
    real = N.split_batch
    monkeypatch.setattr(N, "split_batch", lambda fn, n, t: (split_calls.append(t), real(fn, n, t)))
    if spread:
        threads.begin_pass(True)
    else:           # not the eager hold either: forward's split would make backward's spread
        monkeypatch.setattr(threads, "pass_splits", lambda: False)
    try:
        two = _batchnorm_forward_backward(x, g, relu)
    finally:
        if spread:
            threads.end_pass()
            threads.begin_pass(False)            # BLAS back to the threads it had
            threads.end_pass()
    assert split_calls == [2, 2]
    threads.set_num_threads(1)
    one = _batchnorm_forward_backward(x, g, relu)
    for name, a, c in zip(["y", "gx", "ggamma", "gbeta", "running_mean", "running_var"], two, one):
        np.testing.assert_array_equal(a, c, err_msg=name)      # per channel: the same sums


def _linear_forward_backward(x, w, b, g, activation):
    op = N.Linear(activation=activation)
    op.needs_input_grad = (True, True, True)
    y = op.forward(x, w, b).copy()
    return [y] + [a.copy() for a in op.backward(g)]


def _linear_by_slices(x, w, b, g, activation, T):
    """What Linear computes when its products are cut into T slices of rows, each slice one
    BLAS product (as each thread makes it): y's rows, gx's rows and gw's rows by slices; the
    bias, the activation and gb as the op does them, elementwise or over the whole batch."""
    from pynn.kernels.activation import ACTIVATION_CODES, bias_act_backward, bias_act_forward
    act = ACTIVATION_CODES[activation]
    (M, _), O = x.shape, w.shape[0]

    def cuts(n):
        return [(n * k // T, n * (k + 1) // T) for k in range(T)]

    y, gx, gw = np.empty((M, O), x.dtype), np.empty_like(x), np.empty_like(w)
    for m0, m1 in cuts(M):
        np.matmul(x[m0:m1], w.T, out=y[m0:m1])
    if act:
        bias_act_forward(y, b, act)
        gz = np.empty_like(g)
        bias_act_backward(g, y, act, gz, np.zeros(0, g.dtype))
    else:
        np.add(y, b, out=y)
        gz = g
    for m0, m1 in cuts(M):
        np.matmul(gz[m0:m1], w, out=gx[m0:m1])
    for o0, o1 in cuts(O):
        np.matmul(gz[:, o0:o1].T, x, out=gw[o0:o1])
    return [y, gx, gw, np.matmul(np.ones(M, g.dtype), gz)]


@needs_split
@pytest.mark.parametrize("activation", [None, "relu"])
@pytest.mark.parametrize("in_pass", [False, True])
def test_linear_splits_its_products_only_in_a_splitting_pass(two_threads, monkeypatch,
                                                            activation, in_pass):
    """Inside a pass whose plan splits its batches (BLAS on one thread), a big enough Linear
    cuts its products across the threads by rows, each thread's slice one BLAS product: the
    results are exactly those products (and equal to one thread's to rounding: BLAS need not
    round an entry the same way for another number of rows; OpenBLAS's Haswell kernels, its
    choice on a Zen 5, do not); outside such a pass it leaves the threads to BLAS and makes
    each product in one call, without split_batch."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((9, 13)).astype(np.float32)
    w = rng.standard_normal((7, 13)).astype(np.float32)
    b = rng.standard_normal(7).astype(np.float32)
    g = rng.standard_normal((9, 7)).astype(np.float32)
    monkeypatch.setattr(N.Linear, "SPLIT_MIN_WORK", 100)
    split_calls = []
    real = N.split_batch
    monkeypatch.setattr(N, "split_batch", lambda fn, n, t: (split_calls.append(t), real(fn, n, t)))
    if in_pass:
        threads.begin_pass(True)
    try:
        two = _linear_forward_backward(x, w, b, g, activation)
    finally:
        if in_pass:
            threads.end_pass()
            threads.begin_pass(False)            # BLAS back to the threads it had
            threads.end_pass()
    assert split_calls == ([2, 2] if in_pass else [])     # outside: one product each, unsplit
    threads.set_num_threads(1)
    one = _linear_forward_backward(x, w, b, g, activation)
    by_slices = _linear_by_slices(x, w, b, g, activation, 2 if in_pass else 1)
    whole = _linear_by_slices(x, w, b, g, activation, 1)
    for name, a, e, c, f in zip(["y", "gx", "gw", "gb"], two, by_slices, one, whole):
        np.testing.assert_array_equal(a, e, err_msg=name)     # each slice: its own product
        np.testing.assert_array_equal(c, f, err_msg=name)     # one thread: the whole product
        np.testing.assert_allclose(a, c, rtol=1e-5, atol=1e-6 * np.abs(c).max(), err_msg=name)
    z = x.astype(np.float64) @ w.T.astype(np.float64) + b
    np.testing.assert_allclose(two[0], z if activation is None else np.maximum(z, 0),
                               rtol=1e-5, atol=1e-5)


# -- the hand-over: pynn.kernels.spin and the pool's sleeping threads --------------------------
def test_post_and_wait_stores_then_polls_until_the_slot_changes():
    from pynn.kernels.spin import post_and_wait
    ctl = np.zeros(32, np.int64)
    ctl[16] = 5
    assert post_and_wait(ctl, 3, 7, 16, 4, 10) == 5       # already different: seen at once
    assert ctl[3] == 7                                    # and the store happened first
    assert post_and_wait(ctl, -1, 99, 16, 5, 1000) == 5   # unchanged: old, after the polls
    assert ctl[3] == 7 and ctl.sum() == 12                # post_at < 0 stores nothing
    for post_at, watch_at in ((32, 0), (0, 32), (0, -1)):
        with pytest.raises(IndexError, match="outside ctl"):
            post_and_wait(ctl, post_at, 1, watch_at, 0, 1)


def test_post_and_wait_sees_a_store_from_another_thread():
    import threading
    import time

    from pynn.kernels.spin import post_and_wait
    ctl = np.zeros(32, np.int64)

    def later():
        time.sleep(0.02)
        ctl[16] = 42
    t = threading.Thread(target=later)
    t.start()
    got = post_and_wait(ctl, -1, 0, 16, 0, 1 << 40)      # would poll for minutes otherwise
    t.join()
    assert got == 42


@needs_split
def test_a_thread_that_went_to_sleep_still_gets_its_slice(two_threads, monkeypatch):
    import time
    monkeypatch.setattr(threads, "SPIN_SECONDS", 1e-5)
    threads.set_num_threads(1)
    threads.set_num_threads(2)                  # a fresh pool that polls only briefly
    for pause in (0, 0.01, 0, 0.03):
        time.sleep(pause)                       # long enough for the worker to sleep
        seen = np.zeros(6, int)
        threads.split_batch(lambda k, n0, n1, s=seen: s.__setitem__(slice(n0, n1), k + 1),
                            6, 2)
        assert seen.tolist() == [1, 1, 1, 2, 2, 2]
        if pause:
            time.sleep(0.01)
            assert threads._pool.asleep == [True]   # it did stop polling


@needs_split
def test_many_splits_in_a_row_each_see_their_own_slices(two_threads):
    out = np.zeros((3000, 2), int)
    for i in range(len(out)):
        threads.split_batch(lambda k, n0, n1, i=i: out[i].__setitem__(k, i * 10 + k + n1 - n0),
                            4, 2)
    assert (out == np.arange(len(out))[:, None] * 10 + [2, 3]).all()


@needs_split
def test_two_callers_splitting_at_once_take_turns(two_threads):
    import threading
    errors, results = [], {}

    def caller(name):
        try:
            for i in range(300):
                seen = np.zeros(10, int)
                threads.split_batch(
                    lambda k, n0, n1, s=seen: s.__setitem__(slice(n0, n1), k + 1), 10, 2)
                assert seen.tolist() == [1] * 5 + [2] * 5, (name, i, seen)
            results[name] = True
        except BaseException as e:
            errors.append(e)
    callers = [threading.Thread(target=caller, args=(n,)) for n in "ab"]
    for t in callers:
        t.start()
    for t in callers:
        t.join(60)
    assert not errors and results == {"a": True, "b": True}


@needs_split
def test_an_error_on_the_calling_thread_waits_for_the_other_slice(two_threads):
    import time
    done = []

    def fn(k, n0, n1):
        if k == 0:
            raise RuntimeError("slice 0 failed")
        time.sleep(0.05)                        # longer than the caller polls
        done.append(k)

    with pytest.raises(RuntimeError, match="slice 0 failed"):
        threads.split_batch(fn, 8, 2)
    assert done == [1]
    seen = np.zeros(8, int)                     # and the pool still works
    threads.split_batch(lambda k, n0, n1: seen.__setitem__(slice(n0, n1), 1), 8, 2)
    assert (seen == 1).all()
