"""Helpers the layer, loss and model tests share: run one pynn layer (eagerly and inside a
compiled Model) and the equivalent torch module on the same float64 data and weights, and
compare the output and the gradients of the input and of every parameter.

    check_layer(Dense(5, 3, relu), lambda: torch.nn.Sequential(torch.nn.Linear(5, 3),
                torch.nn.ReLU()), (4, 5), params={"weight": "0.weight", "bias": "0.bias"})

`params` maps a pynn parameter name to the torch parameter's name; the pynn layer's values
(turned to float64 first) are copied into the torch module, so both start from the same weights.
Backward is seeded with a random cotangent (not ones), so a gradient summed over the wrong axis
or permuted the wrong way shows up.
"""
import numpy as np
import torch

from pynn import Input, Model, Tensor

RTOL = 1e-6     # the tolerance for layers against torch (both sides in float64)
ATOL = 1e-12    # for values that are exactly or nearly zero


def as_float64(layer):
    """Turn a layer's parameters and buffers to float64 in place; return the layer."""
    for name in layer.param_names:
        p = getattr(layer, name)
        if p is not None:
            p.data = p.data.astype(np.float64)
    for name in layer.buffer_names:
        setattr(layer, name, getattr(layer, name).astype(np.float64))
    return layer


def as_float64_model(model):
    for layer in model.layers:
        as_float64(layer)
    for p in model.free_params:
        p.data = p.data.astype(np.float64)
    return model


def np_(t):
    if t is None:
        return None
    if isinstance(t, torch.Tensor):
        return t.detach().numpy()
    if isinstance(t, Tensor):
        return t.data
    return np.asarray(t)


def close(name, got, want, rtol=RTOL, atol=ATOL):
    got, want = np_(got), np_(want)
    assert got is not None, f"{name}: pynn gave None"
    assert got.shape == want.shape, f"{name}: shape {got.shape} != torch {want.shape}"
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=name)


def torch_param(module, name):
    obj = module
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def copy_into_torch(layer, module, params, buffers=None):
    """Copy the pynn layer's parameters (and buffers) into the torch module."""
    with torch.no_grad():
        for pname, tname in params.items():
            torch_param(module, tname).copy_(torch.from_numpy(getattr(layer, pname).data.copy()))
        for bname, tname in (buffers or {}).items():
            torch_param(module, tname).copy_(torch.from_numpy(getattr(layer, bname).copy()))


def snapshot(layer):
    return ({n: getattr(layer, n).data.copy() for n in layer.param_names
             if getattr(layer, n) is not None},
            {n: getattr(layer, n).copy() for n in layer.buffer_names})


def restore(layer, snap):
    params, buffers = snap
    for n, v in params.items():
        p = getattr(layer, n)
        p.data[...] = v
        p.grad = None
    for n, v in buffers.items():
        getattr(layer, n)[...] = v


def run_pynn(layer, x, seed_grad, mode, training=True):
    """Output, input gradient and parameter gradients of `layer` on `x`, eagerly or in a Model."""
    layer.train(training)
    xt = Tensor(x, requires_grad=True, dtype=np.float64)
    if mode == "eager":
        y = layer(xt)
    else:
        x_in = Input(x.shape[1:], dtype=np.float64)
        model = Model(x_in, layer(x_in))
        model.train(training)
        y = model(xt)
    y.backward(seed_grad)
    grads = {n: (None if getattr(layer, n).grad is None else getattr(layer, n).grad.data.copy())
             for n in layer.param_names if getattr(layer, n) is not None}
    return y.data.copy(), (None if xt.grad is None else xt.grad.data.copy()), grads


def check_layer(layer, make_torch, x_shape, params=(), buffers=None, training=True,
                modes=("eager", "model"), x=None, seed=0, rtol=RTOL, atol=ATOL):
    """Compare `layer` with the torch module `make_torch()` (fresh per mode) on float64 data.

    params/buffers map pynn names to torch names ({"weight": "weight"} or a list of names that
    are the same on both sides). Checks forward output, input gradient, parameter gradients and
    (for buffers) the buffers after the call, in every mode in `modes`."""
    if not isinstance(params, dict):
        params = {n: n for n in params}
    if buffers is not None and not isinstance(buffers, dict):
        buffers = {n: n for n in buffers}
    as_float64(layer)
    rng = np.random.default_rng(seed)
    if x is None:
        x = rng.standard_normal(x_shape)
    snap = snapshot(layer)
    results = {}
    for mode in modes:
        restore(layer, snap)
        module = make_torch().double()
        copy_into_torch(layer, module, params, buffers)
        module.train(training)
        xt = torch.tensor(x, requires_grad=True)
        yt = module(xt)
        g = rng.standard_normal(tuple(yt.shape))
        yt.backward(torch.from_numpy(g))
        y, gx, gp = run_pynn(layer, x, g, mode, training)
        close(f"{mode}: output", y, yt, rtol, atol)
        close(f"{mode}: input grad", gx, xt.grad, rtol, atol)
        for pname, tname in params.items():
            close(f"{mode}: grad of {pname}", gp[pname], torch_param(module, tname).grad,
                  rtol, atol)
        for bname, tname in (buffers or {}).items():
            close(f"{mode}: buffer {bname}", getattr(layer, bname), torch_param(module, tname),
                  rtol, atol)
        results[mode] = (y, gx, gp)
    restore(layer, snap)
    return results
