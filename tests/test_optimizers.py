"""Optimizers, gradient clipping and LR schedulers vs torch.optim.

One helper (`_compare`) drives pynn and torch from identical parameters with the
same sequence of random gradients (set directly on `.grad`, no autograd) and
checks the parameter trajectories at every step.
"""
import itertools
import tracemalloc

import numpy as np
import pytest
import torch

import pynn
from pynn import optimizers as O

SHAPES = [(1,), (7,), (5, 3)]
STEPS = 20
F64 = dict(dtype=np.float64, rtol=1e-5, atol=1e-9)
# float32: both sides run float32 arithmetic in the same op order; what remains is
# rounding (fma vs mul+add, scalar casts).  Observed over 20 steps with |p| ~ 1:
# max abs diff ~1e-6, max rel diff ~7e-6 (Adagrad/RMSprop divide by small sqrt
# accumulators).  Tolerance = ~5x that.
F32 = dict(dtype=np.float32, rtol=5e-5, atol=5e-6)


def _tensor(x, dtype):
    return pynn.Tensor(np.array(x, dtype=dtype), requires_grad=True, dtype=dtype)


def _compare(name, kwargs, dtype=np.float64, rtol=1e-5, atol=1e-9, style="keras",
             steps=STEPS, shapes=SHAPES, none_prob=0.0, seed=0, hook=None, check=None):
    """Run pynn.optimizers.<name> and torch.optim.<name> side by side.

    style: "keras" (Opt(lr=...) + update(params)), "torch" (Opt(params, ...) +
    step()/zero_grad()) or "positional" (Opt(lr, ...) with the lr positional).
    none_prob: chance that a parameter's grad is None on a step (both skip it).
    hook(step, popt, topt): called before each step (e.g. to change the lr).
    check(step, pparams, tparams): extra assertions after each step.
    """
    rng = np.random.default_rng(seed)
    init = [rng.standard_normal(s) for s in shapes]
    grads = [[None if rng.random() < none_prob else
              rng.standard_normal(s) * rng.uniform(0.1, 3.0) for s in shapes]
             for _ in range(steps)]
    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    tparams = [torch.tensor(x, dtype=tdtype, requires_grad=True) for x in init]
    topt = getattr(torch.optim, name)(tparams, foreach=False, **kwargs)
    pparams = [_tensor(x, dtype) for x in init]
    cls = getattr(O, name)
    if style == "torch":
        popt = cls(pparams, **kwargs)
    elif style == "positional":
        kw = dict(kwargs)
        popt = cls(kw.pop("lr"), **kw)
    else:
        popt = cls(**kwargs)
    for step in range(steps):
        for tp, pp, g in zip(tparams, pparams, grads[step]):
            tp.grad = None if g is None else torch.tensor(g, dtype=tdtype)
            pp.grad = None if g is None else pynn.Tensor(g.astype(dtype), dtype=dtype)
        if hook is not None:
            hook(step, popt, topt)
        topt.step()
        if style == "torch":
            popt.step()
            popt.zero_grad()
            assert all(p.grad is None for p in pparams)
        else:
            popt.update(pparams)
        for i, (tp, pp) in enumerate(zip(tparams, pparams)):
            assert pp.data.dtype == dtype
            np.testing.assert_allclose(pp.data, tp.detach().numpy(), rtol=rtol, atol=atol,
                                       err_msg=f"{name}{kwargs} param {i} step {step}")
        if check is not None:
            check(step, pparams, tparams)
    return popt, topt, pparams, tparams


def _grid(**axes):
    keys = list(axes)
    return [dict(zip(keys, vals)) for vals in itertools.product(*axes.values())]


SGD_GRID = [kw for kw in _grid(lr=[0.1], momentum=[0.0, 0.9], nesterov=[False, True],
                               weight_decay=[0.0, 0.1], dampening=[0.0, 0.5])
            if not (kw["nesterov"] and (kw["momentum"] == 0 or kw["dampening"] != 0))]
ADAM_GRID = _grid(lr=[0.05], betas=[(0.9, 0.999), (0.3, 0.9)], eps=[1e-8, 1e-3],
                  weight_decay=[0.0, 0.1], amsgrad=[False, True])
ADAMW_GRID = _grid(lr=[0.05], betas=[(0.9, 0.999), (0.3, 0.9)],
                   weight_decay=[0.0, 1e-2, 0.5], amsgrad=[False, True])
RMSPROP_GRID = _grid(lr=[0.01], alpha=[0.99, 0.3], weight_decay=[0.0, 0.1],
                     momentum=[0.0, 0.9], centered=[False, True])
ADAGRAD_GRID = _grid(lr=[0.1], lr_decay=[0.0, 0.1], weight_decay=[0.0, 0.1],
                     initial_accumulator_value=[0.0, 0.5], eps=[1e-10, 1e-2])
CASES = ([("SGD", kw) for kw in SGD_GRID] + [("Adam", kw) for kw in ADAM_GRID]
         + [("AdamW", kw) for kw in ADAMW_GRID] + [("RMSprop", kw) for kw in RMSPROP_GRID]
         + [("Adagrad", kw) for kw in ADAGRAD_GRID])


def _id(case):
    name, kw = case
    return name + "-" + ",".join(f"{k}={v}" for k, v in kw.items() if k != "lr")


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_float64_matches_torch(case):
    _compare(*case, **F64)


# float32: one representative per optimizer with every option switched on, plus defaults
F32_CASES = [("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1)),
             ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.5)),
             ("Adam", dict(lr=0.05, weight_decay=0.1, amsgrad=True)),
             ("Adam", dict()),
             ("AdamW", dict(lr=0.05, amsgrad=True)),
             ("RMSprop", dict(lr=0.01, weight_decay=0.1, momentum=0.9, centered=True)),
             ("RMSprop", dict()),
             ("Adagrad", dict(lr=0.1, lr_decay=0.1, weight_decay=0.1,
                              initial_accumulator_value=0.5))]


@pytest.mark.parametrize("case", F32_CASES, ids=_id)
def test_float32_matches_torch(case):
    _compare(*case, **F32)


@pytest.mark.parametrize("style", ["torch", "positional"])
@pytest.mark.parametrize("name,kw", [("SGD", dict(lr=0.1, momentum=0.9)),
                                     ("Adam", dict(lr=0.05, amsgrad=True)),
                                     ("AdamW", dict(lr=0.05)), ("RMSprop", dict(lr=0.01)),
                                     ("Adagrad", dict(lr=0.1))])
def test_call_styles(name, kw, style):
    _compare(name, kw, style=style, **F64)


def test_positional_hyperparams():
    opt = O.SGD(0.1, 0.9, True)
    assert (opt.lr, opt.momentum, opt.nesterov) == (0.1, 0.9, True)
    p = _tensor([1.0], np.float64)
    opt = O.Adam([p], 0.01, (0.5, 0.6))
    assert (opt.lr, opt.betas) == (0.01, (0.5, 0.6))
    assert O.AdamW().weight_decay == 1e-2 and O.Adam().lr == 1e-3
    with pytest.raises(TypeError):
        O.Adam(0.1, lr=0.2)
    with pytest.raises(TypeError):
        O.Adam(0.1, momentum=0.9)


@pytest.mark.parametrize("style", ["keras", "torch"])
@pytest.mark.parametrize("name,kw", [("SGD", dict(lr=0.1, momentum=0.9, weight_decay=0.1)),
                                     ("Adam", dict(lr=0.05, weight_decay=0.1)),
                                     ("RMSprop", dict(lr=0.01, momentum=0.9, centered=True)),
                                     ("Adagrad", dict(lr=0.1, lr_decay=0.1))])
def test_none_grads_are_skipped(name, kw, style):
    # torch skips grad-None params too (no weight decay, no step count advance)
    _compare(name, kw, style=style, none_prob=0.4, steps=30, **F64)


def test_lr_is_writable():
    def hook(step, popt, topt):
        lr = 0.1 * 0.8 ** step
        popt.lr = lr
        topt.param_groups[0]["lr"] = lr
    _compare("Adam", dict(lr=0.1, amsgrad=True), hook=hook, **F64)
    _compare("SGD", dict(lr=0.1, momentum=0.9), hook=hook, **F64)


def test_momentum_switched_on_midway():
    def hook(step, popt, topt):
        if step == 5:
            popt.momentum = 0.9
            topt.param_groups[0]["momentum"] = 0.9
    _compare("SGD", dict(lr=0.1, momentum=0.0), hook=hook, **F64)


def test_state_per_parameter_object_with_changing_lists():
    rng = np.random.default_rng(1)
    init = [rng.standard_normal(s) for s in SHAPES]
    pp = [_tensor(x, np.float64) for x in init]
    tp = [torch.tensor(x, requires_grad=True) for x in init]
    popt, topt = O.Adam(0.05), torch.optim.Adam(tp, lr=0.05, foreach=False)
    orders = [[0, 1, 2], [2, 0], [1], [2, 1, 0], [0, 1, 2]] * 3
    for order in orders:
        for i in range(3):
            g = rng.standard_normal(SHAPES[i]) if i in order else None
            tp[i].grad = None if g is None else torch.tensor(g)
            pp[i].grad = None if g is None else pynn.Tensor(g, dtype=np.float64)
        topt.step()
        popt.update([pp[i] for i in order])            # a new list every step
        for a, b in zip(pp, tp):
            np.testing.assert_allclose(a.data, b.detach().numpy(), rtol=1e-5, atol=1e-9)
    assert [s.step for s in popt._order] == [topt.state[t]["step"].item() for t in tp]


def test_update_is_in_place_and_accepts_ndarray_grads():
    p = _tensor(np.arange(6.0).reshape(2, 3), np.float64)
    data = p.data
    p.grad = np.ones((2, 3))
    O.SGD(0.5).update([p])
    assert p.data is data
    np.testing.assert_array_equal(data, np.arange(6.0).reshape(2, 3) - 0.5)


def test_zero_grad():
    ps = [_tensor(np.ones(s), np.float64) for s in SHAPES]
    opt = O.SGD(ps, lr=0.1)
    for p in ps:
        p.grad = pynn.Tensor(np.ones(p.data.shape), dtype=np.float64)
    grads = [p.grad for p in ps]
    opt.zero_grad(set_to_none=False)
    for p, g in zip(ps, grads):
        assert p.grad is g and not g.data.any()
    opt.zero_grad()
    assert all(p.grad is None for p in ps)
    kopt = O.SGD(0.1)                                 # keras style: the last update's params
    ps[0].grad = pynn.Tensor(np.ones(1), dtype=np.float64)
    kopt.update(ps)
    kopt.zero_grad()
    assert all(p.grad is None for p in ps)


def test_errors():
    p = pynn.Tensor(np.asfortranarray(np.ones((3, 4))), requires_grad=True, dtype=np.float64)
    p.grad = pynn.Tensor(np.ones((3, 4)), dtype=np.float64)
    with pytest.raises(ValueError, match="C-contiguous"):
        O.Adam(0.1).update([p])
    q = _tensor(np.ones((3, 4)), np.float64)
    q.grad = pynn.Tensor(np.ones((4, 4)), dtype=np.float64)
    with pytest.raises(ValueError, match="does not match"):
        O.Adam(0.1).update([q])
    with pytest.raises(ValueError):
        O.SGD(0.1, momentum=0.0, nesterov=True)
    with pytest.raises(ValueError):
        O.Adam(-1.0)
    with pytest.raises(ValueError):
        O.Adam(0.1, betas=(1.0, 0.9))
    with pytest.raises(ValueError, match="empty"):
        O.Adam([], lr=0.1)
    with pytest.raises(TypeError, match="without parameters"):
        O.Adam(0.1).step()


@pytest.mark.parametrize("name,kw", [("SGD", dict(lr=0.1, momentum=0.9)),
                                     ("Adam", dict(lr=0.05, amsgrad=True)),
                                     ("RMSprop", dict(lr=0.01, momentum=0.9, centered=True)),
                                     ("Adagrad", dict(lr=0.1, lr_decay=0.1))])
def test_state_dict_roundtrip(name, kw):
    def run(split):
        rng = np.random.default_rng(2)
        ps = [_tensor(rng.standard_normal(s), np.float64) for s in SHAPES]
        opt = getattr(O, name)(**kw)
        for step in range(20):
            if step == split:
                sd = opt.state_dict()
                opt = getattr(O, name)(lr=123.0)      # hyper-parameters come from sd
                opt.load_state_dict(sd)
            for p in ps:
                p.grad = pynn.Tensor(rng.standard_normal(p.data.shape), dtype=np.float64)
            opt.update(ps)
        return [p.data for p in ps]
    for a, b in zip(run(None), run(10)):
        np.testing.assert_array_equal(a, b)


def test_update_allocates_no_per_step_buffers():
    rng = np.random.default_rng(3)
    ps = [_tensor(rng.standard_normal(s), np.float32) for s in [(300, 200), (200,), (200, 10)]]
    for p in ps:
        p.grad = pynn.Tensor(rng.standard_normal(p.data.shape), dtype=np.float32)
    for opt in [O.Adam(1e-3, amsgrad=True), O.SGD(0.1, momentum=0.9),
                O.RMSprop(centered=True, momentum=0.9), O.Adagrad()]:
        opt.update(ps)                                 # first step allocates the state
        tracemalloc.start()
        for _ in range(5):
            opt.update(ps)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < 20_000, (type(opt).__name__, peak)   # the params alone are 250 kB


# ------------------------------------------------------------------ clipping
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, float("inf"), 0.0])
@pytest.mark.parametrize("max_norm", [0.5, 1e4])
def test_clip_grad_norm(norm_type, max_norm, dtype):
    rng = np.random.default_rng(4)
    grads = [rng.standard_normal(s) for s in SHAPES] + [None]
    pp, tp = [], []
    for g in grads:
        shape = g.shape if g is not None else (2,)
        p, t = _tensor(np.zeros(shape), dtype), torch.tensor(np.zeros(shape, dtype))
        p.grad = None if g is None else pynn.Tensor(g.astype(dtype), dtype=dtype)
        t.grad = None if g is None else torch.tensor(g.astype(dtype))
        pp.append(p)
        tp.append(t)
    tol = dict(rtol=1e-10 if dtype == np.float64 else 1e-5)
    total = O.clip_grad_norm_(pp, max_norm, norm_type)
    ttotal = torch.nn.utils.clip_grad_norm_(tp, max_norm, norm_type, foreach=False)
    assert isinstance(total, float)
    np.testing.assert_allclose(total, ttotal.item(), **tol)
    for p, t in zip(pp, tp):
        if t.grad is None:
            assert p.grad is None
        else:
            np.testing.assert_allclose(p.grad.data, t.grad.numpy(), **tol)
    assert O.clip_grad_norm is O.clip_grad_norm_


def test_clip_grad_value_and_single_tensor():
    p = _tensor(np.zeros(5), np.float64)
    p.grad = pynn.Tensor(np.array([-3.0, -0.5, 0.0, 0.5, 3.0]), dtype=np.float64)
    O.clip_grad_value_(p, 1.0)
    np.testing.assert_array_equal(p.grad.data, [-1.0, -0.5, 0.0, 0.5, 1.0])
    assert O.clip_grad_norm(p, 1.0) == pytest.approx(np.sqrt(2.5))
    np.testing.assert_allclose(np.linalg.norm(p.grad.data), 1.0, rtol=1e-5)


# ---------------------------------------------------------------- schedulers
SCHEDULERS = [("StepLR", dict(step_size=7, gamma=0.5)),
              ("StepLR", dict(step_size=1)),
              ("CosineAnnealingLR", dict(T_max=10, eta_min=0.001)),
              ("CosineAnnealingLR", dict(T_max=30)),
              ("MultiStepLR", dict(milestones=[3, 10, 10, 25], gamma=0.3)),
              ("ExponentialLR", dict(gamma=0.9))]


@pytest.mark.parametrize("name,kw", SCHEDULERS, ids=lambda x: str(x))
def test_scheduler_matches_torch(name, kw):
    topt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    tsched = getattr(torch.optim.lr_scheduler, name)(topt, **kw)
    popt = O.SGD(0.1)
    psched = getattr(O, name)(popt, **kw)
    for epoch in range(30):
        assert len(psched.get_last_lr()) == 1
        np.testing.assert_allclose(psched.get_last_lr(), tsched.get_last_lr(),
                                   rtol=1e-10, atol=1e-15, err_msg=f"epoch {epoch}")
        assert popt.lr == psched.get_last_lr()[0]
        topt.step()
        tsched.step()
        psched.step()


def test_lambda_lr_and_scheduler_state():
    topt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.2)
    tsched = torch.optim.lr_scheduler.LambdaLR(topt, lambda e: 1.0 / (1 + e))
    popt = O.Adam(0.2)
    psched = O.LambdaLR(popt, lambda e: 1.0 / (1 + e))
    for _ in range(10):
        assert psched.get_last_lr() == pytest.approx(tsched.get_last_lr())
        topt.step()
        tsched.step()
        psched.step()
    sd = O.CosineAnnealingLR(popt, T_max=10).state_dict()
    s2 = O.CosineAnnealingLR(O.SGD(0.2), T_max=10)
    s2.load_state_dict(sd)
    s2.step()
    assert s2.last_epoch == 1 and s2.get_last_lr()[0] == pytest.approx(
        0.1 * (1 + np.cos(np.pi / 10)))
