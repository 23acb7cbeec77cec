"""What pynn promises under load and misuse (README "What pynn promises"): memory that stays
bounded, one model shared by threads, predict's edge cases, argument checks, and
pynn.detect_anomaly(). Files and downloads: test_untrusted_files.py, test_download_limits.py."""
import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import pynn
from pynn import Input, Model, Tensor
from pynn.layers import Conv2d, Dense, Dropout, Flatten, Lambda, MaxPool2d, Reshape

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _readme_cnn(seed=0):
    pynn.manual_seed(seed)
    x_in = Input((1, 28, 28))
    x = Conv2d(1, 16, 3, padding=1, activation="relu")(x_in)
    x = MaxPool2d(2)(x)
    x = Flatten()(x)
    x = Dense(3136, 10, "softmax")(x)
    return Model(x_in, x)


# -- memory ------------------------------------------------------------------------------------
_MEMORY_SCRIPT = r"""
import json, os, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
import pynn
from pynn import Input, Model
from pynn.layers import Conv2d, Dense, Flatten, MaxPool2d

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

x_in = Input((1, 28, 28))
x = Conv2d(1, 16, 3, padding=1, activation="relu")(x_in)
x = MaxPool2d(2)(x)
x = Flatten()(x)
model = Model(x_in, Dense(3136, 10, "softmax")(x))
data = np.random.default_rng(0).random((300, 1, 28, 28), dtype=np.float32)
results = {}
for mode in sys.argv[2:]:
    batch_size = None if mode == "none" else int(mode)
    model.release_buffers()
    # one plan at the largest size this run uses: how much memory one plan holds
    model.predict(data[:batch_size or 300])
    plan = next(iter(model._plans.values()))
    plan_bytes = sum(b.nbytes for b in plan.buffers()) + sum(
        v.nbytes for v in plan.values if isinstance(v, np.ndarray) and v.base is None)
    base = peak = rss()
    most_plans = 0
    for n in range(1, 301):
        out = model.predict(data[:n], batch_size=batch_size)
        assert out.shape == (n, 10)
        peak = max(peak, rss())
        most_plans = max(most_plans, len(model._plans))
    kept = len(model._plans)
    model.release_buffers()
    results[mode] = {"base": base, "peak": peak, "plan_bytes": plan_bytes, "kept": kept,
                     "most_plans": most_plans, "after_release": len(model._plans),
                     "max_plans": model.max_plans}
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def memory_runs():
    """One subprocess (a clean process: its RSS is this work's) runs both scenarios."""
    proc = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT, ROOT, "none", "32"],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_predict_on_every_size_keeps_memory_bounded(memory_runs):
    """predict on each of 1..300 rows (a new input shape each time): at most max_plans plans
    are kept, so RSS grows by at most that many plans of the largest size (plus allocator
    slack), not by the ~150 plans' worth (gigabytes) of one plan per size."""
    r = memory_runs["none"]
    assert r["most_plans"] <= r["max_plans"] and r["kept"] <= r["max_plans"]
    assert r["after_release"] == 0
    bound = (r["max_plans"] + 2) * r["plan_bytes"] + 64 * 2**20
    assert r["peak"] - r["base"] <= bound, r


def test_predict_short_last_batches_keep_no_plan(memory_runs):
    """With batch_size=32, the short last batch of each call (1..31 rows) runs on a plan that is
    dropped afterwards: one plan (the 32-row one) is kept whatever the sizes."""
    r = memory_runs["32"]
    assert r["most_plans"] == 1 and r["kept"] == 1
    bound = 3 * r["plan_bytes"] + 64 * 2**20
    assert r["peak"] - r["base"] <= bound, r


def test_plan_cache_is_an_lru_of_max_plans():
    model = _readme_cnn()
    model.max_plans = 2
    x = np.zeros((5, 1, 28, 28), np.float32)
    for n in (1, 2, 3, 1):
        model(x[:n])
    shapes = [key[0][0][0][0] for key in model._plans]
    assert shapes == [3, 1]          # 2 was the least recently used
    model.release_buffers()
    assert len(model._plans) == 0
    assert model(x[:2]).shape == (2, 10)


def test_a_model_can_be_deep_copied_and_its_copy_compiles_its_own_plans():
    import copy
    model = _readme_cnn()
    x = np.random.default_rng(7).random((3, 1, 28, 28), dtype=np.float32)
    want = model(x).data.copy()
    twin = copy.deepcopy(model)
    assert len(twin._plans) == 0
    np.testing.assert_array_equal(twin(x).data, want)
    assert twin.layers[0].weight is not model.layers[0].weight


# -- predict's edge cases ----------------------------------------------------------------------
def test_predict_zero_rows_and_bad_batch_sizes():
    model = _readme_cnn()
    out = model.predict(np.zeros((0, 1, 28, 28), np.float32))
    assert out.shape == (0, 10) and out.dtype == np.float32
    out = model.predict(np.zeros((0, 1, 28, 28), np.float32), batch_size=7)
    assert out.shape == (0, 10)
    for bad in (0, -1, 1.5, True, "8"):
        with pytest.raises(ValueError, match="predict: batch_size must be an int >= 1"):
            model.predict(np.zeros((3, 1, 28, 28), np.float32), batch_size=bad)


def test_predict_in_chunks_equals_one_call_and_keeps_the_mode():
    model = _readme_cnn()
    x = np.random.default_rng(1).random((70, 1, 28, 28), dtype=np.float32)
    whole = model.predict(x)
    np.testing.assert_allclose(model.predict(x, batch_size=32), whole, rtol=1e-6, atol=1e-7)
    assert model.training            # predict ran in eval mode without changing the flag


# -- threads -----------------------------------------------------------------------------------
def _dropout_mlp(seed=0, dtype=np.float64):
    pynn.manual_seed(seed)
    x_in = Input((6,), dtype=dtype)
    x = Dense(6, 32, "tanh")(x_in)
    x = Dropout(0.5)(x)
    x = Dense(32, 3)(x)
    model = Model(x_in, x)
    for p in model.weights:
        p.data = p.data.astype(dtype)
    return model


@pytest.fixture
def fast_switching():
    """Switch threads as often as the interpreter can, so that interleavings happen."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(old)


def _run_threads(target, n):
    errors = []

    def wrapped(i):
        try:
            target(i)
        except BaseException as e:      # reported below, with the thread
            errors.append((i, e))

    start = threading.Barrier(n)

    def started(i):
        start.wait()
        wrapped(i)

    threads = [threading.Thread(target=started, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a thread did not finish"
    assert not errors, errors


def test_threads_sharing_a_model_predict_correctly(fast_switching):
    model = _readme_cnn()
    rng = np.random.default_rng(2)
    batches = [rng.random((16, 1, 28, 28), dtype=np.float32) for i in range(4)]
    expected = [model.predict(b) for b in batches]
    wrong = []

    def work(i):
        for k in range(30):
            j = (i + k) % 4
            out = model(batches[j]).data if k % 2 else model.predict(batches[j])
            if not np.array_equal(out, expected[j]):
                wrong.append((i, k))

    _run_threads(work, 4)
    assert not wrong, f"{len(wrong)} wrong predictions under concurrency"


def test_threads_sharing_a_model_get_correct_gradients(fast_switching):
    """Each thread: forward, a loss, backward, on its own batch; the input gradients are each
    thread's own and the parameter gradients add up over all the calls, as if run one after
    the other."""
    model = _dropout_mlp()
    model.eval()                    # dropout off: the gradients are deterministic
    rng = np.random.default_rng(3)
    xs = [rng.normal(size=(5, 6)) for _ in range(4)]
    ws = [rng.normal(size=(5, 3)) for _ in range(4)]
    reps = 10

    def one(i):
        x = Tensor(xs[i], requires_grad=True, dtype=np.float64)
        loss = (model(x) * Tensor(ws[i], dtype=np.float64)).sum()
        loss.backward()
        return x.grad.data.copy()

    model.zero_grad()
    want_x = [one(i) for i in range(4)]
    want_p = [p.grad.data * reps for p in model.weights]
    model.zero_grad()
    wrong = []

    def work(i):
        for _ in range(reps):
            if not np.allclose(one(i), want_x[i], rtol=1e-12, atol=1e-12):
                wrong.append(i)

    _run_threads(work, 4)
    assert not wrong
    for p, want in zip(model.weights, want_p, strict=True):
        # the same 40 contributions added in another order: float64 rounding only
        np.testing.assert_allclose(p.grad.data, want, rtol=1e-10, atol=1e-12)


def test_eval_in_one_thread_does_not_change_training_in_another(fast_switching):
    """predict (eval mode) in one thread while another thread trains: dropout stays on for the
    training calls and off for predict; the model's own flag is unchanged."""
    model = _dropout_mlp()
    x = np.random.default_rng(4).normal(size=(64, 6))
    eval_out = model.predict(x)
    assert model.training
    wrong_eval, no_dropout = [], []

    def work(i):
        for _ in range(200):
            if i == 0:
                if not np.array_equal(model.predict(x), eval_out):
                    wrong_eval.append(1)
            else:
                if np.array_equal(model(x).data, eval_out):
                    no_dropout.append(1)

    _run_threads(work, 2)
    assert not wrong_eval and not no_dropout
    assert model.training


def test_training_keyword_is_per_call():
    model = _dropout_mlp()
    model.eval()
    x = np.random.default_rng(5).normal(size=(64, 6))
    eval_out = model(x).data.copy()
    assert not np.array_equal(model(x, training=True).data, eval_out)
    assert not model.training and not model.layers[1].training
    np.testing.assert_array_equal(model(x).data, eval_out)


# -- detect_anomaly ----------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_detect_anomaly_is_exported_and_off_by_default():
    assert pynn.detect_anomaly is pynn.anomaly.detect_anomaly
    assert not pynn.is_anomaly_enabled()
    x = Tensor([-1.0, 4.0], requires_grad=True)
    y = x.sqrt()                      # nan, silently, as numpy and torch do outside the mode
    assert np.isnan(y.data[0])
    with pytest.raises(KeyError):
        with pynn.detect_anomaly():
            assert pynn.is_anomaly_enabled()
            raise KeyError("left by an exception")
    assert not pynn.is_anomaly_enabled()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_detect_anomaly_eager_forward_names_the_op():
    x = Tensor([[1.0, -1.0]], requires_grad=True)
    with pynn.detect_anomaly():
        with pytest.raises(pynn.AnomalyError, match=r"the forward of Log produced nan.*"
                                                    r"inputs were finite") as info:
            x.log()
    assert info.value.op == "Log" and info.value.phase == "forward" and info.value.layer is None


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_detect_anomaly_eager_forward_inside_a_layer_names_the_layer():
    layer = Dense(2, 3, name="hidden")
    layer.weight.data[0, 0] = np.inf
    x = Tensor(np.array([[1.0, -1.0]], np.float32))
    with pynn.detect_anomaly():
        with pytest.raises(pynn.AnomalyError, match=r"Linear in layer Dense\(2->3\) 'hidden'"):
            layer(x)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_detect_anomaly_eager_backward_names_the_op_and_layer():
    y = Tensor([[0.0, 1.0]], requires_grad=True)
    with pynn.detect_anomaly():
        with pytest.raises(pynn.AnomalyError, match=r"the backward of Sqrt returned inf values "
                                                    r"in its gradient for input #0"):
            y.sqrt().sum().backward()

    root = Lambda(lambda t: (t * t).sqrt() * 2, name="norm")
    x = Tensor(np.zeros((2, 3)), requires_grad=True, dtype=np.float64)
    with pynn.detect_anomaly():
        out = root(x)
        with pytest.raises(pynn.AnomalyError, match=r"backward of Sqrt in layer Lambda.*'norm'"):
            out.sum().backward()


def _sqrt_model():
    pynn.manual_seed(0)
    x_in = Input((3,), dtype=np.float64)
    h = Dense(3, 4, name="dense_in")(x_in)
    out = Lambda(lambda t: t.sqrt() * 1.0, name="root")(h)
    model = Model(x_in, out)
    for p in model.weights:
        p.data = p.data.astype(np.float64)
    return model


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_detect_anomaly_compiled_forward_names_the_op_and_layer():
    model = _sqrt_model()
    dense = model.get_layer("dense_in")
    dense.weight.data[:] = -1.0
    dense.bias.data[:] = 0.0
    x = np.ones((2, 3))
    assert np.isnan(model(x).data).all()         # off: NaN comes out quietly
    with pynn.detect_anomaly():
        with pytest.raises(pynn.AnomalyError, match=r"the forward of Sqrt in layer "
                                                    r"Lambda.*'root' produced nan") as info:
            model(x)
    assert info.value.layer is model.get_layer("root")


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_detect_anomaly_compiled_backward_names_the_op_and_layer():
    model = _sqrt_model()
    dense = model.get_layer("dense_in")
    dense.weight.data[:] = 0.0
    dense.bias.data[:] = 0.0       # sqrt(0): a finite forward, an infinite gradient
    x = Tensor(np.ones((2, 3)), requires_grad=True, dtype=np.float64)
    with pynn.detect_anomaly():
        out = model(x)
        assert np.isfinite(out.data).all()
        with pytest.raises(pynn.AnomalyError, match=r"the backward of Sqrt in layer "
                                                    r"Lambda.*'root' returned inf"):
            out.sum().backward()
    # and off, the same backward quietly gives inf
    model.zero_grad()
    model(x).sum().backward()
    assert not np.isfinite(model.get_layer("dense_in").weight.grad.data).all()


def test_detect_anomaly_passes_finite_work_unchanged():
    model = _readme_cnn()
    x = np.random.default_rng(6).random((4, 1, 28, 28), dtype=np.float32)
    want = model(x).data.copy()
    with pynn.detect_anomaly():
        got = model(x)
        got.sum().backward()
    np.testing.assert_array_equal(got.data, want)


# -- layer arguments ---------------------------------------------------------------------------
@pytest.mark.parametrize("make, error, match", [
    (lambda: Dense(0, 3), ValueError, "Dense: in_features must be a positive int"),
    (lambda: Dense(3, -2), ValueError, "Dense: out_features must be a positive int"),
    (lambda: Dense(2.5, 3), ValueError, "Dense: in_features must be a positive int"),
    (lambda: Dense(3, 2, bias="yes"), TypeError, "Dense: bias must be True or False"),
    (lambda: Dense(3, 2, activation="nope"), ValueError, "Dense: unknown activation 'nope'"),
    (lambda: Dropout(1.0), ValueError, r"Dropout: p must be a number in \[0, 1\)"),
    (lambda: Dropout(-0.1), ValueError, r"Dropout: p must be a number in \[0, 1\)"),
    (lambda: Dropout("0.5"), ValueError, r"Dropout: p must be a number in \[0, 1\)"),
    (lambda: Dropout(float("nan")), ValueError, r"Dropout: p must be a number in \[0, 1\)"),
    (lambda: Flatten(start_dim=1.5), TypeError, "Flatten: start_dim must be an int"),
    (lambda: Reshape((-1, -1)), ValueError, "Reshape: shape entries must be sizes >= 0"),
    (lambda: Reshape((4, -3)), ValueError, "Reshape: shape entries must be sizes >= 0"),
    (lambda: Reshape("ab"), TypeError, "Reshape: shape must be a tuple of ints"),
])
def test_layer_arguments_are_validated(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_flatten_and_reshape_check_their_input():
    x_in = Input((4, 7))
    with pytest.raises(ValueError, match=r"Reshape\(\(5, -1\)\) got input of shape "
                                         r"\(None, 4, 7\) \(28 values per sample\)"):
        Reshape((5, -1))(x_in)
    with pytest.raises(ValueError, match=r"Reshape\(\(3, 3\)\) got input"):
        Reshape((3, 3))(x_in)
    assert Reshape((7, -1))(x_in).shape[1:] == (7, 4)
    with pytest.raises(ValueError, match=r"Flatten\(\) got input of shape \(None, 4, 7\)"):
        Flatten(start_dim=3)(x_in)
    with pytest.raises(ValueError, match=r"Flatten\(\) got input of shape"):
        Flatten(start_dim=2, end_dim=1)(x_in)
    assert Flatten()(x_in).shape[1:] == (28,)
