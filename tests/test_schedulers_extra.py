"""OneCycleLR, LinearLR, SequentialLR, CosineAnnealingWarmRestarts, PolynomialLR and
ReduceLROnPlateau against torch.optim.lr_scheduler: the lr (and, for OneCycleLR, the momentum)
at every epoch, for single-lr optimizers and for parameter groups."""
import math

import numpy as np
import pytest
import torch
from torch.optim import lr_scheduler as TS

import pynn
from pynn import optimizers as O

TOL = dict(rtol=1e-10, atol=1e-15)


def _pair(name="SGD", lr=0.1, **kw):
    topt = getattr(torch.optim, name)([torch.zeros(1, requires_grad=True)], lr=lr, **kw)
    return getattr(O, name)(lr, **kw), topt


def _grouped_pair(name="SGD", lrs=(0.1, 0.02), **kw):
    tparams = [torch.zeros(1, requires_grad=True) for _ in lrs]
    pparams = [pynn.Tensor(np.zeros(1), requires_grad=True) for _ in lrs]
    topt = getattr(torch.optim, name)([{"params": [p], "lr": lr} for p, lr in zip(tparams, lrs)],
                                      **kw)
    popt = getattr(O, name)([{"params": [p], "lr": lr} for p, lr in zip(pparams, lrs)], **kw)
    return popt, topt


def _lrs(opt):
    return [g["lr"] for g in opt.param_groups]


def _follow(psched, tsched, popt, topt, epochs, step_args=None, momentum=False):
    for epoch in range(epochs):
        np.testing.assert_allclose(psched.get_last_lr(), tsched.get_last_lr(), **TOL,
                                   err_msg=f"epoch {epoch}")
        np.testing.assert_allclose(_lrs(popt), _lrs(topt), **TOL, err_msg=f"epoch {epoch}")
        if momentum:
            for pg, tg in zip(popt.param_groups, topt.param_groups):
                key = "betas" if "betas" in tg else "momentum"
                np.testing.assert_allclose(np.ravel(pg[key]), np.ravel(tg[key]), **TOL,
                                           err_msg=f"momentum, epoch {epoch}")
        topt.step()
        args = () if step_args is None else (step_args(epoch),)
        tsched.step(*args)
        psched.step(*args)


SIMPLE = [("LinearLR", dict()),
          ("LinearLR", dict(start_factor=0.1, end_factor=0.8, total_iters=7)),
          ("LinearLR", dict(start_factor=1.0, end_factor=0.2, total_iters=12)),
          ("PolynomialLR", dict()),
          ("PolynomialLR", dict(total_iters=10, power=2.0)),
          ("PolynomialLR", dict(total_iters=20, power=0.5)),
          ("CosineAnnealingWarmRestarts", dict(T_0=5)),
          ("CosineAnnealingWarmRestarts", dict(T_0=3, T_mult=2, eta_min=0.01)),
          ("CosineAnnealingWarmRestarts", dict(T_0=1, T_mult=3))]


@pytest.mark.parametrize("grouped", [False, True])
@pytest.mark.parametrize("name,kw", SIMPLE, ids=lambda x: str(x))
def test_scheduler_matches_torch(name, kw, grouped):
    popt, topt = _grouped_pair() if grouped else _pair()
    psched = getattr(O, name)(popt, **kw)
    tsched = getattr(TS, name)(topt, **kw)
    _follow(psched, tsched, popt, topt, 30)


@pytest.mark.parametrize("T_mult", [1, 2])
def test_warm_restarts_with_fractional_epochs(T_mult):
    popt, topt = _pair()
    psched = O.CosineAnnealingWarmRestarts(popt, T_0=4, T_mult=T_mult)
    tsched = TS.CosineAnnealingWarmRestarts(topt, T_0=4, T_mult=T_mult)
    _follow(psched, tsched, popt, topt, 40, step_args=lambda e: e * 0.7 + 0.35)


ONECYCLE = [("SGD", dict(momentum=0.9), dict(max_lr=1.0, total_steps=50)),
            ("SGD", dict(momentum=0.9), dict(max_lr=0.5, epochs=5, steps_per_epoch=7,
                                             anneal_strategy="linear", pct_start=0.4)),
            ("SGD", dict(momentum=0.9), dict(max_lr=0.3, total_steps=40, three_phase=True,
                                             div_factor=10.0, final_div_factor=100.0)),
            ("Adam", dict(), dict(max_lr=0.01, total_steps=30)),
            ("Adam", dict(), dict(max_lr=0.01, total_steps=30, cycle_momentum=False)),
            ("SGD", dict(), dict(max_lr=1.0, total_steps=20, cycle_momentum=False))]


@pytest.mark.parametrize("grouped", [False, True])
@pytest.mark.parametrize("name,okw,kw", ONECYCLE, ids=lambda x: str(x))
def test_one_cycle_matches_torch(name, okw, kw, grouped):
    popt, topt = _grouped_pair(name, **okw) if grouped else _pair(name, **okw)
    psched = O.OneCycleLR(popt, **kw)
    tsched = TS.OneCycleLR(topt, **kw)
    steps = kw.get("total_steps") or kw["epochs"] * kw["steps_per_epoch"]
    _follow(psched, tsched, popt, topt, steps, momentum=kw.get("cycle_momentum", True))
    with pytest.raises(ValueError, match="Tried to step"):
        psched.step()
        psched.step()


def test_one_cycle_max_lr_per_group():
    popt, topt = _grouped_pair("SGD", momentum=0.9)
    psched = O.OneCycleLR(popt, max_lr=[1.0, 0.1], total_steps=25)
    tsched = TS.OneCycleLR(topt, max_lr=[1.0, 0.1], total_steps=25)
    _follow(psched, tsched, popt, topt, 25, momentum=True)


SEQUENTIAL = [
    (lambda S, o: [S.LinearLR(o, start_factor=0.1, total_iters=4),
                   S.CosineAnnealingLR(o, T_max=20)], [4]),
    (lambda S, o: [S.ExponentialLR(o, gamma=0.9), S.StepLR(o, step_size=3, gamma=0.5),
                   S.PolynomialLR(o, total_iters=8, power=2.0)], [5, 12]),
    (lambda S, o: [S.LinearLR(o, start_factor=0.5, total_iters=3),
                   S.CosineAnnealingWarmRestarts(o, T_0=4)], [3]),
]


@pytest.mark.parametrize("grouped", [False, True])
@pytest.mark.parametrize("make,milestones", SEQUENTIAL)
def test_sequential_matches_torch(make, milestones, grouped):
    popt, topt = _grouped_pair() if grouped else _pair()
    psched = O.SequentialLR(popt, make(O, popt), milestones)
    tsched = TS.SequentialLR(topt, make(TS, topt), milestones)
    _follow(psched, tsched, popt, topt, 30)


PLATEAU = [dict(), dict(patience=2, factor=0.5), dict(patience=1, cooldown=2, min_lr=0.02),
           dict(mode="max", patience=2, threshold=0.1, threshold_mode="abs"),
           dict(mode="max", patience=0, factor=0.3, threshold=0.05)]


@pytest.mark.parametrize("grouped", [False, True])
@pytest.mark.parametrize("kw", PLATEAU, ids=lambda x: str(x))
def test_reduce_on_plateau_matches_torch(kw, grouped):
    popt, topt = _grouped_pair() if grouped else _pair()
    psched, tsched = O.ReduceLROnPlateau(popt, **kw), TS.ReduceLROnPlateau(topt, **kw)
    # a metric that improves, stalls, wobbles and improves again
    metric = [1.0, 0.8, 0.7, 0.7, 0.71, 0.69, 0.7, 0.7, 0.7, 0.5, 0.5, 0.52, 0.49, 0.49, 0.49,
              0.49, 0.3, 0.31, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.29, 0.3, 0.3, 0.3, 0.3]
    if kw.get("mode") == "max":
        metric = [2.0 - m for m in metric]
    _follow(psched, tsched, popt, topt, len(metric), step_args=lambda e: metric[e])
    assert min(_lrs(popt)) < 0.1 or kw == {}      # the schedule did reduce somewhere


def test_reduce_on_plateau_min_lr_per_group_and_tensor_metric():
    popt, topt = _grouped_pair()
    psched = O.ReduceLROnPlateau(popt, patience=0, min_lr=[0.05, 0.0])
    tsched = TS.ReduceLROnPlateau(topt, patience=0, min_lr=[0.05, 0.0])
    _follow(psched, tsched, popt, topt, 6, step_args=lambda e: 1.0)
    psched.step(pynn.tensor(2.0))                   # a 0-d tensor metric works too
    assert math.isclose(_lrs(popt)[0], 0.05)


def test_scheduler_errors():
    opt = O.SGD(0.1)
    with pytest.raises(ValueError, match="total_steps"):
        O.OneCycleLR(opt, max_lr=1.0)
    with pytest.raises(ValueError, match="momentum"):
        O.OneCycleLR(O.Adagrad(0.1), max_lr=1.0, total_steps=10)
    with pytest.raises(ValueError, match="milestones"):
        O.SequentialLR(opt, [O.StepLR(opt, 2), O.StepLR(opt, 3)], milestones=[])
    with pytest.raises(ValueError, match="Factor"):
        O.ReduceLROnPlateau(opt, factor=2.0)
    with pytest.raises(ValueError, match="T_0"):
        O.CosineAnnealingWarmRestarts(opt, T_0=0)
    with pytest.raises(ValueError, match="start_factor"):
        O.LinearLR(opt, start_factor=0.0)
