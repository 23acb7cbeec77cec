"""Decaying optimizer state is flushed to zero below the smallest normal number, without
changing the trajectory: compared with torch.optim, which keeps the subnormals."""
import numpy as np
import pytest
import torch

import pynn
from pynn import optimizers as O

SHAPE = (6, 5)
DEAD = np.s_[:3]          # rows whose gradient is zero after the first step


def _grads(dtype, steps, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for k in range(steps):
        g = (rng.standard_normal(SHAPE) * 1e-2).astype(dtype)
        if k:
            g[DEAD] = 0.0
        out.append(g)
    return out


def _run(name, kwargs, dtype, steps):
    """pynn's and torch's optimizer over the same gradients: (pynn param, torch param,
    pynn state arrays, torch state arrays), the states in the same order (exp_avg, ...)."""
    w = np.random.default_rng(1).standard_normal(SHAPE).astype(dtype)
    p = pynn.Tensor(w.copy(), requires_grad=True, dtype=dtype)
    t = torch.tensor(w, requires_grad=True)
    popt = getattr(O, name)(**kwargs)
    topt = getattr(torch.optim, name)([t], foreach=False, **kwargs)
    for g in _grads(dtype, steps):
        p.grad = pynn.Tensor(g, dtype=dtype)
        t.grad = torch.from_numpy(g)
        popt.update([p])
        topt.step()
    state = popt._states_for([p])[0]
    names = [n for n in popt._buffers if n in topt.state[t]]
    pstate = [getattr(state, f"b{popt._buffers.index(n)}") for n in names]
    tstate = [topt.state[t][n].numpy() for n in names]
    return p.data, t.detach().numpy(), pstate, tstate


def _subnormals(arrays, dtype):
    tiny = np.finfo(dtype).tiny
    return sum(int(((a != 0) & (np.abs(a) < tiny)).sum()) for a in arrays)


# A first moment of ~1e-3 times beta1 = 0.9 per step is subnormal in float32 (below 1.2e-38)
# from about step 765 on, and stays so: 0.9 times the smallest subnormal rounds back to it.
# With betas (0.5, 0.6) the first moment underflows to 0 and the second is subnormal from
# about step 155 on.
CASES = [
    ("Adam", dict(lr=1e-3), 840),
    ("Adam", dict(lr=1e-3, betas=(0.5, 0.6)), 170),
    ("AdamW", dict(lr=1e-3), 840),
    ("NAdam", dict(lr=1e-3), 840),
    ("NAdam", dict(lr=1e-3, betas=(0.5, 0.6)), 170),
    ("RAdam", dict(lr=1e-3), 840),
    ("Adamax", dict(lr=1e-3), 840),
    ("RMSprop", dict(lr=1e-3, alpha=0.6, centered=True), 170),
    ("Adadelta", dict(lr=1.0, rho=0.6), 170),
    ("SGD", dict(lr=1e-2, momentum=0.9), 840),
]


@pytest.mark.parametrize("name,kwargs,steps", CASES)
def test_subnormal_state_is_flushed_and_the_weights_match_torch(name, kwargs, steps):
    p, t, pstate, tstate = _run(name, kwargs, np.float32, steps)
    assert _subnormals(tstate, np.float32) > 0          # torch's state did reach that range
    assert _subnormals(pstate, np.float32) == 0
    tiny = np.finfo(np.float32).tiny
    for a, b in zip(pstate, tstate):        # torch's subnormals are pynn's zeros, of one sign
        sub = np.abs(b) < tiny
        np.testing.assert_array_equal(a.reshape(SHAPE)[sub], np.copysign(0, b[sub]))
        np.testing.assert_allclose(a.reshape(SHAPE)[~sub], b[~sub], rtol=1e-4)
    np.testing.assert_array_equal(p[DEAD], t[DEAD])      # flushing moved no dead weight
    np.testing.assert_allclose(p, t, rtol=5e-5, atol=5e-6)    # tests/test_optimizers.py's F32


def test_adam_with_eps_zero_keeps_subnormals_as_torch_does():
    """With eps=0 a subnormal second moment can be the whole denominator: nothing is
    flushed."""
    p, t, pstate, tstate = _run("Adam", dict(lr=1e-3, eps=0.0), np.float32, steps=840)
    assert _subnormals(pstate, np.float32) == _subnormals(tstate, np.float32) > 0
    np.testing.assert_array_equal(p[DEAD], t[DEAD])


def test_nan_and_signed_zero_survive_the_flush():
    p = pynn.Tensor(np.zeros(4, np.float32), requires_grad=True)
    opt = O.SGD(lr=1.0, momentum=0.5)
    p.grad = pynn.Tensor(np.array([np.nan, -1e-38, 1e-38, -1.0], np.float32))
    opt.update([p])                          # first step: the buffer is the gradient itself
    p.grad = pynn.Tensor(np.zeros(4, np.float32))
    opt.update([p])                          # 0.5 * buffer: NaN, -subnormal, +subnormal, -0.5
    buf = opt._states_for([p])[0].b0
    assert np.isnan(buf[0])
    assert buf[1] == 0 and np.signbit(buf[1])
    assert buf[2] == 0 and not np.signbit(buf[2])
    assert buf[3] == -0.5


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_kernels_smallest_normal_is_finfos(dtype):
    from pynn.kernels.optim import _tiny
    tiny = _tiny.py_func(np.zeros(1, dtype))
    assert tiny == np.finfo(dtype).tiny and tiny.dtype == dtype
