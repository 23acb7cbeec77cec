"""The one helper the op tests share: run an op in pynn and in PyTorch on the same float64 data
and compare the forward values and every input's gradient.

    check_op([(3, 4), (4,)], lambda a, b: a * b)              # same code runs on both
    check_op([(3, 4)], lambda x: F.gelu(x), lambda x: x.gelu())  # torch_fn, then pynn_fn

Inputs are drawn uniformly from [low, high) (or given as `vals`), turned into float64 leaves that
require grad in both libraries, and passed to the two functions. An output may be one tensor or a
tuple/list of them (split, max(dim) -> (values, indices)). For the backward pass every float
output is seeded with the same random cotangent in both libraries, so an error that a uniform
seed of ones would hide (a gradient summed over the wrong axis, a permutation applied the wrong
way round) still shows up.

Tolerances are explicit: rtol 1e-7 by default (both sides compute in float64, so they only
differ by rounding), and a tiny atol for values that are exactly or nearly zero. A test that
needs a wider atol says so, with the reason, at the call site.
"""
import numpy as np
import torch

import pynn

__all__ = ["check_op", "assert_close", "to_numpy"]


def to_numpy(x):
    """A NumPy array from a pynn Tensor, a torch tensor, or None."""
    if x is None:
        return None
    if isinstance(x, torch.Tensor):
        return x.detach().numpy()
    if isinstance(x, pynn.Tensor):
        return x.numpy()
    return np.asarray(x)


def assert_close(name, got, want, rtol=1e-7, atol=1e-12):
    """Shapes and dtypes must match exactly; floats within tolerance, integers and bools equal."""
    got, want = to_numpy(got), to_numpy(want)
    assert got.shape == want.shape, f"{name}: shape mismatch: pynn={got.shape} torch={want.shape}"
    assert got.dtype == want.dtype, f"{name}: dtype mismatch: pynn={got.dtype} torch={want.dtype}"
    if np.issubdtype(got.dtype, np.floating):
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=name)
    else:
        np.testing.assert_array_equal(got, want, err_msg=name)


def _outputs(out):
    return list(out) if isinstance(out, (tuple, list)) else [out]


def check_op(shapes, torch_fn, pynn_fn=None, *, vals=None, low=-2.0, high=2.0, rtol=1e-7,
             atol=1e-12, grad_rtol=None, grad_atol=None, forward_only=False, seed=0):
    """Compare `pynn_fn(*inputs)` with `torch_fn(*inputs)`: forward values and input gradients.

    shapes       one shape per input (ignored when `vals` is given)
    torch_fn     called with torch float64 tensors; also used for pynn when pynn_fn is None
    vals         explicit input values instead of random ones
    low, high    range of the random inputs (keep log/sqrt/pow bases positive this way)
    rtol, atol   forward tolerances; grad_rtol/grad_atol for gradients (default: the same)
    forward_only compare forward values only (the op has no gradient)
    """
    pynn_fn = pynn_fn or torch_fn
    grad_rtol = rtol if grad_rtol is None else grad_rtol
    grad_atol = atol if grad_atol is None else grad_atol
    rng = np.random.default_rng(seed)
    if vals is None:
        arrays = [rng.uniform(low, high, size=shape) for shape in shapes]
    else:
        arrays = [np.array(v, dtype=np.float64) for v in vals]

    need_grad = not forward_only
    tt = [torch.tensor(a, dtype=torch.float64, requires_grad=need_grad) for a in arrays]
    pt = [pynn.Tensor(a, dtype="float64", requires_grad=need_grad) for a in arrays]

    t_outs, p_outs = _outputs(torch_fn(*tt)), _outputs(pynn_fn(*pt))
    assert len(p_outs) == len(t_outs), f"pynn gave {len(p_outs)} outputs, torch {len(t_outs)}"
    for i, (p, t) in enumerate(zip(p_outs, t_outs)):
        assert isinstance(p, pynn.Tensor), f"output {i}: pynn returned {type(p).__name__}"
        assert_close(f"forward output {i}", p, t, rtol, atol)
    if forward_only:
        return

    # seed every differentiable output with the same random cotangent on both sides
    pairs = [(p, t) for p, t in zip(p_outs, t_outs) if t.requires_grad]
    assert pairs, "no differentiable output: use forward_only=True"
    seeds = [rng.standard_normal(t.shape) for _, t in pairs]
    torch.autograd.backward([t for _, t in pairs], [torch.tensor(s) for s in seeds])
    for k, ((p, _), s) in enumerate(zip(pairs, seeds)):
        assert p.requires_grad, "pynn output does not require grad but torch's does"
        # retain the graph between outputs that share it; the last call frees it
        p.backward(s, retain_graph=k < len(pairs) - 1)

    for i, (p, t) in enumerate(zip(pt, tt)):
        want = np.zeros_like(arrays[i]) if t.grad is None else t.grad.numpy()
        got = np.zeros_like(arrays[i]) if p.grad is None else p.grad.numpy()
        assert_close(f"grad of input {i}", got, want, grad_rtol, grad_atol)
