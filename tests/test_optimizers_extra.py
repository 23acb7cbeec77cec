"""NAdam, RAdam, Adamax, Adadelta and parameter groups against torch.optim: the parameter
trajectories over 20 steps of random gradients, with test_optimizers.py's `_compare` helper."""
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import pynn
from pynn import optimizers as O

sys.path.insert(0, str(Path(__file__).parent))
from test_optimizers import F32, F64, SHAPES, _compare, _grid, _id, _tensor  # noqa: E402

NADAM_GRID = _grid(lr=[0.05], betas=[(0.9, 0.999), (0.3, 0.9)], weight_decay=[0.0, 0.1],
                   momentum_decay=[4e-3, 0.1], decoupled_weight_decay=[False, True])
RADAM_GRID = _grid(lr=[0.05], betas=[(0.9, 0.999), (0.3, 0.9)], eps=[1e-8, 1e-3],
                   weight_decay=[0.0, 0.1], decoupled_weight_decay=[False, True])
ADAMAX_GRID = _grid(lr=[0.05], betas=[(0.9, 0.999), (0.3, 0.9)], eps=[1e-8, 1e-2],
                    weight_decay=[0.0, 0.1])
ADADELTA_GRID = _grid(lr=[1.0, 0.5], rho=[0.9, 0.5], eps=[1e-6, 1e-2], weight_decay=[0.0, 0.1])
CASES = ([("NAdam", kw) for kw in NADAM_GRID] + [("RAdam", kw) for kw in RADAM_GRID]
         + [("Adamax", kw) for kw in ADAMAX_GRID] + [("Adadelta", kw) for kw in ADADELTA_GRID])


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_float64_matches_torch(case):
    _compare(*case, **F64)


@pytest.mark.parametrize("case", [
    ("NAdam", dict(lr=0.05, weight_decay=0.1)), ("NAdam", dict()),
    ("RAdam", dict(lr=0.05, weight_decay=0.1, decoupled_weight_decay=True)), ("RAdam", dict()),
    ("Adamax", dict(lr=0.05, weight_decay=0.1)), ("Adamax", dict()),
    ("Adadelta", dict(weight_decay=0.1)), ("Adadelta", dict())], ids=_id)
def test_float32_matches_torch(case):
    _compare(*case, **F32)


@pytest.mark.parametrize("style", ["torch", "positional"])
@pytest.mark.parametrize("name,kw", [("NAdam", dict(lr=0.05)), ("RAdam", dict(lr=0.05)),
                                     ("Adamax", dict(lr=0.05)), ("Adadelta", dict(lr=0.5))])
def test_call_styles_and_skipped_none_grads(name, kw, style):
    _compare(name, kw, style=style, **F64)
    _compare(name, kw, style=style, none_prob=0.3, **F64)


def test_lr_changed_midway():
    def hook(step, popt, topt):
        if step == 7:
            popt.lr = 0.01
            topt.param_groups[0]["lr"] = 0.01
    for name in ("NAdam", "RAdam", "Adamax", "Adadelta"):
        _compare(name, dict(lr=0.05), hook=hook, **F64)


@pytest.mark.parametrize("name,kw", [("NAdam", dict(lr=0.05)), ("RAdam", dict(lr=0.05)),
                                     ("Adamax", dict(lr=0.05)), ("Adadelta", dict())])
def test_state_dict_roundtrip(name, kw):
    """Saving mid-run and loading into a fresh optimizer continues the same trajectory (NAdam
    keeps its mu_product)."""
    def run(split):
        rng = np.random.default_rng(2)
        ps = [_tensor(rng.standard_normal(s), np.float64) for s in SHAPES]
        opt = getattr(O, name)(**kw)
        for step in range(20):
            if step == split:
                sd = opt.state_dict()
                opt = getattr(O, name)(lr=123.0)
                opt.load_state_dict(sd)
            for p in ps:
                p.grad = pynn.Tensor(rng.standard_normal(p.data.shape), dtype=np.float64)
            opt.update(ps)
        return [p.data for p in ps]
    for a, b in zip(run(None), run(10)):
        np.testing.assert_array_equal(a, b)


# -- parameter groups ---------------------------------------------------------------------------
GROUP_CASES = [("SGD", dict(lr=0.1, momentum=0.9), dict(lr=0.01, nesterov=True)),
               ("Adam", dict(lr=1e-3), dict(lr=1e-2, amsgrad=True)),
               ("AdamW", dict(lr=1e-2), dict(weight_decay=0.5)),
               ("RMSprop", dict(lr=1e-2), dict(centered=True, momentum=0.5)),
               ("Adagrad", dict(lr=0.1), dict(lr_decay=0.1)),
               ("NAdam", dict(lr=0.05), dict(lr=0.01, momentum_decay=0.1)),
               ("RAdam", dict(lr=0.05), dict(betas=(0.3, 0.9))),
               ("Adamax", dict(lr=0.05), dict(lr=0.2)),
               ("Adadelta", dict(lr=1.0), dict(rho=0.5))]


def _grouped_run(name, defaults, override, style, steps=15, dtype=np.float64):
    rng = np.random.default_rng(5)
    init = [rng.standard_normal(s) for s in SHAPES]
    grads = [[rng.standard_normal(s) for s in SHAPES] for _ in range(steps)]
    tps = [torch.tensor(x, requires_grad=True) for x in init]
    pps = [_tensor(x, dtype) for x in init]
    topt = getattr(torch.optim, name)([{"params": tps[:1], **override}, {"params": tps[1:]}],
                                      foreach=False, **defaults)
    popt = getattr(O, name)([{"params": pps[:1], **override}, {"params": pps[1:]}], **defaults)
    for step in range(steps):
        for tp, pp, g in zip(tps, pps, grads[step]):
            tp.grad = torch.tensor(g)
            pp.grad = pynn.Tensor(g, dtype=dtype)
        topt.step()
        if style == "step":
            popt.step()
        else:                                    # pynn's style: params passed at update time
            popt.update(pps)
        for i, (tp, pp) in enumerate(zip(tps, pps)):
            np.testing.assert_allclose(pp.data, tp.detach().numpy(), rtol=1e-5, atol=1e-9,
                                       err_msg=f"{name} groups: param {i} step {step}")
    return popt, topt


@pytest.mark.parametrize("style", ["step", "update"])
@pytest.mark.parametrize("name,defaults,override", GROUP_CASES, ids=[c[0] for c in GROUP_CASES])
def test_parameter_groups_match_torch(name, defaults, override, style):
    popt, topt = _grouped_run(name, defaults, override, style)
    assert len(popt.param_groups) == 2
    for pg, tg in zip(popt.param_groups, topt.param_groups):
        for key in O.__dict__[name]._spec:
            k = key[0]
            assert pg[k] == tg[k], (k, pg[k], tg[k])


def test_parameter_group_lr_changed_midway_and_groups_state_dict():
    rng = np.random.default_rng(6)
    a, b = _tensor(rng.standard_normal(3), np.float64), _tensor(rng.standard_normal(4), np.float64)
    ta, tb = (torch.tensor(p.data.copy(), requires_grad=True) for p in (a, b))
    opt = O.Adam([{"params": [a], "lr": 1e-4}, {"params": [b]}], lr=1e-2)
    topt = torch.optim.Adam([{"params": [ta], "lr": 1e-4}, {"params": [tb]}], lr=1e-2,
                            foreach=False)
    for step in range(10):
        if step == 4:
            opt.param_groups[0]["lr"] = 0.05
            topt.param_groups[0]["lr"] = 0.05
        for p, t in ((a, ta), (b, tb)):
            g = rng.standard_normal(p.shape)
            p.grad, t.grad = pynn.Tensor(g, dtype=np.float64), torch.tensor(g)
        opt.update([a, b])
        topt.step()
        for p, t in ((a, ta), (b, tb)):
            np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=1e-10)
    sd = opt.state_dict()
    assert [g["lr"] for g in sd["param_groups"]] == [0.05, 1e-2]
    fresh = O.Adam([{"params": [a], "lr": 9.0}, {"params": [b]}], lr=9.0)
    fresh.load_state_dict(sd)
    assert fresh.param_groups[0]["lr"] == 0.05 and fresh.param_groups[1]["lr"] == 1e-2


def test_without_groups_param_groups_is_a_live_view_of_the_attributes():
    opt = O.SGD(0.1, momentum=0.9)
    group = opt.param_groups[0]
    assert group["lr"] == 0.1 and group["momentum"] == 0.9
    group["lr"] = 0.5
    assert opt.lr == 0.5
    opt.lr = 0.25
    assert opt.param_groups[0]["lr"] == 0.25
    p = _tensor(np.ones(3), np.float64)
    p.grad = pynn.Tensor(np.ones(3), dtype=np.float64)
    opt.update([p])
    assert opt.param_groups[0]["params"][0] is p


def test_parameter_group_errors():
    a, b = _tensor(np.ones(2), np.float64), _tensor(np.ones(2), np.float64)
    with pytest.raises(TypeError, match="unknown keys"):
        O.Adam([{"params": [a], "learning_rate": 0.1}])
    with pytest.raises(ValueError, match="more than one group"):
        O.Adam([{"params": [a]}, {"params": [a, b]}])
    with pytest.raises(ValueError, match="Invalid learning rate"):
        O.Adam([{"params": [a], "lr": -1.0}])
    with pytest.raises(ValueError, match="no parameters"):
        O.Adam([{"params": [a]}, {"params": []}])
    with pytest.raises(TypeError, match="update\\(\\) takes Tensors"):
        O.Adam(0.1).update([{"params": [a]}])


def test_optimizer_argument_errors():
    with pytest.raises(ValueError, match="betas"):
        O.NAdam(betas=(1.0, 0.9))
    with pytest.raises(ValueError, match="momentum_decay"):
        O.NAdam(momentum_decay=-1)
    with pytest.raises(ValueError, match="rho"):
        O.Adadelta(rho=1.5)
    with pytest.raises(ValueError, match="epsilon"):
        O.Adamax(eps=-1)


def test_update_allocates_no_per_step_buffers():
    import tracemalloc
    rng = np.random.default_rng(3)
    ps = [_tensor(rng.standard_normal(s), np.float32) for s in [(300, 200), (200,), (200, 10)]]
    for p in ps:
        p.grad = pynn.Tensor(rng.standard_normal(p.data.shape), dtype=np.float32)
    for opt in [O.NAdam(), O.RAdam(), O.Adamax(), O.Adadelta(),
                O.Adam([{"params": ps[:1], "lr": 1e-4}, {"params": ps[1:]}])]:
        opt.update(ps)                                 # first step allocates the state
        tracemalloc.start()
        for _ in range(5):
            opt.update(ps)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < 20_000, (type(opt).__name__, peak)   # the params alone are 250 kB
