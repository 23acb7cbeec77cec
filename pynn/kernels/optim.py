"""Fused, in-place Numba kernels for the optimizers in :mod:`pynn.optimizers`.

Every kernel updates one parameter (and its state buffers) in a single pass
over flattened, C-contiguous 1-D views, so an optimizer step costs exactly one
kernel call per parameter and allocates nothing.

Conventions
-----------
* ``p`` and the state buffers are 1-D, contiguous and of the same dtype; ``g``
  is 1-D with the same length (it may have another float dtype).
* Hyper-parameters arrive packed in one small float64 array ``hp`` (one
  argument instead of ~8: Numba's dispatcher costs ~0.2 us per argument, which
  dominates for small parameters).  They are cast to the parameter dtype
  (``T = p.dtype.type``) once per call, so float32 parameters are updated in
  float32 arithmetic like ``torch.optim`` does.  Scalar bookkeeping (bias
  corrections, step sizes) is done in float64 first, exactly as torch does it
  on the Python side, then cast.
* The element-wise formulas follow ``torch.optim``'s single-tensor
  implementations operation by operation (including ``lerp``'s two-branch
  formula), so float64 trajectories agree with torch to a few ulps.
* Buffers that an option does not need (e.g. ``max_exp_avg_sq`` without
  ``amsgrad``) are passed as empty arrays and never touched.
* ``error_model="numpy"`` removes Python's division-by-zero checks so the
  loops vectorise; no ``fastmath`` (it would reorder the arithmetic).
* Decaying state (momentum buffers, running moments and averages) is flushed to
  zero once it falls below the dtype's smallest normal number (``_flush``). A
  weight whose gradient stays zero (an MNIST border pixel's) has moments that
  shrink by beta every step into the subnormal range, and stay there (beta times
  the smallest subnormal rounds back to it), where x86 computes through a slow
  microcode assist: torch's Adam takes more than twice as long on such a
  state (``python benchmarks/optim_subnormal.py``). A flushed momentum buffer
  changes an update by less than lr times that smallest normal number. An
  optimizer that divides by a running average (Adam and its kin, RMSprop,
  Adadelta) flushes only while eps is 2^30 times the square root of the largest
  subnormal average (``_flush_limit``: eps=1e-8 qualifies, eps=0 keeps every
  subnormal, as torch does), so a flushed average changes the update by less
  than 2^-30 of it and a flushed first moment by less than lr * 1e-27.
"""
import numpy as np
from numba import njit

_JIT = dict(cache=True, nogil=True, error_model="numpy")

# Powers are taken of floats only (`beta1 ** float(step)`, as torch takes them in Python): a
# float ** int makes Numba compile an integer-power helper into each kernel at a cold start.
_2_POW_M30 = 2.0 ** -30


@njit(inline="always")
def _tiny(p):
    """The smallest normal number of p's float dtype, as that dtype (float32 or float64; a
    constant rather than np.finfo, whose Numba implementation adds 0.2 s to a cold start)."""
    T = p.dtype.type
    return T(1.1754943508222875e-38) if p.itemsize == 4 else T(2.2250738585072014e-308)


@njit(inline="always")
def _flush(x, tiny, zero):
    """x, or a zero of x's sign when |x| is below the smallest normal number `tiny` (NaN is
    kept); `tiny` and `zero` have x's type."""
    return x if not abs(x) < tiny else np.copysign(zero, x)


@njit(inline="always")
def _flush_limit(p, eps, bc2_sqrt):
    """The bound below which an Adam-like step flushes a running average of p: p's smallest
    normal number while the largest subnormal average's share of the denominator,
    sqrt(tiny) / bc2_sqrt, is below eps by a factor 2^30, so that dropping it (and a first
    moment below tiny) changes no float32 update; else 0 (nothing is below it)."""
    tiny = _tiny(p)
    return tiny if np.sqrt(float(tiny)) / bc2_sqrt <= eps * _2_POW_M30 else p.dtype.type(0.0)


@njit(**_JIT)
def sgd_step(p, g, buf, first, hp):
    """SGD with optional momentum/dampening/Nesterov and L2 weight decay.

    ``hp = [lr, momentum, dampening, weight_decay, nesterov]``.  ``first``
    marks the step that creates the momentum buffer (torch clones the gradient
    instead of applying dampening on that step).
    """
    lr, momentum, dampening, weight_decay, nesterov = hp[0], hp[1], hp[2], hp[3], hp[4] != 0.0
    T = p.dtype.type
    nlr = T(-lr)
    mom = T(momentum)
    one_m_damp = T(1.0 - dampening)
    wd = T(weight_decay)
    use_wd = weight_decay != 0.0
    use_mom = momentum != 0.0
    tiny, zero = _tiny(p), T(0.0)
    for i in range(p.size):
        d = g[i]
        if use_wd:
            d = d + wd * p[i]
        if use_mom:
            if first:
                b = d
            else:
                b = _flush(buf[i] * mom + one_m_damp * d, tiny, zero)
            buf[i] = b
            if nesterov:
                d = d + mom * b
            else:
                d = b
        p[i] = p[i] + nlr * d


@njit(inline="always")
def _adam_scalars(p, step, hp):
    """Adam's per-call scalars in p's dtype, from ``hp`` and the 1-based ``step``: the step size
    -lr / bc1, sqrt(bc2), eps, beta2, 1 - beta2, the lerp weight 1 - beta1, the flush limit
    and zero (bc1, bc2: the bias corrections, computed in float64 as torch does)."""
    lr, beta1, beta2, eps = hp[0], hp[1], hp[2], hp[3]
    T = p.dtype.type
    bc2_sqrt = (1.0 - beta2 ** float(step)) ** 0.5
    return (T(-(lr / (1.0 - beta1 ** float(step)))), T(bc2_sqrt), T(eps), T(beta2),
            T(1.0 - beta2), T(1.0 - beta1), _flush_limit(p, eps, bc2_sqrt), T(0.0))


@njit(**_JIT)
def adam_step_usual(p, g, m, v, step, hp):
    """Adam / AdamW with the usual options: beta1 > 0.5 (the lerp's small-weight branch), no L2
    weight decay (AdamW's decoupled decay is fine) and no AMSGrad; ``hp`` as in adam_step.

    adam_step's loop with those options fixed: the same operations in the same order, so the
    same values (a NaN may come out with the other sign bit), without its branches. p * 1.0
    is p exactly, inf and -0 included. A 784x256 float32 step 135.1 -> 104.5 us
    (``python benchmarks/optim_subnormal.py``, first 100)."""
    nstep, bc2s, e, b2, one_m_b2, lw, tiny, zero = _adam_scalars(p, step, hp)
    keep = p.dtype.type(1.0 - hp[0] * hp[4]) if hp[6] != 0.0 else p.dtype.type(1.0)
    for i in range(p.size):
        d = g[i]
        mi = _flush(m[i] + lw * (d - m[i]), tiny, zero)
        m[i] = mi
        vi = _flush(v[i] * b2 + one_m_b2 * (d * d), tiny, zero)
        v[i] = vi
        p[i] = p[i] * keep + nstep * (mi / (np.sqrt(vi) / bc2s + e))


def adam_is_usual(beta1, weight_decay, amsgrad, decoupled):
    """Can adam_step_usual make this step? (otherwise adam_step)"""
    return abs(1.0 - beta1) < 0.5 and (weight_decay == 0.0 or decoupled) and not amsgrad


@njit(**_JIT)
def adam_step(p, g, m, v, vmax, step, hp):
    """Adam / AdamW (``decoupled``) with optional AMSGrad, any options.

    ``hp = [lr, beta1, beta2, eps, weight_decay, amsgrad, decoupled]`` (the optimizer appends
    its ``adam_is_usual`` flag, which the kernels do not read);
    ``step`` is the 1-based step count of this parameter (already incremented). The optimizer
    calls adam_step_usual instead where it can (``adam_is_usual``): one kernel less to compile
    at a cold start, and a loop without branches.
    """
    lr, beta1, weight_decay = hp[0], hp[1], hp[4]
    amsgrad, decoupled = hp[5] != 0.0, hp[6] != 0.0
    T = p.dtype.type
    nstep, bc2s, e, b2, one_m_b2, lw, tiny, zero = _adam_scalars(p, step, hp)
    small_w = abs(1.0 - beta1) < 0.5      # lerp weight, as in exp_avg.lerp_(grad, 1 - beta1)
    one_m_lw = T(1.0 - (1.0 - beta1))     # not T(beta1): as torch's 1 - weight
    wd = T(weight_decay)
    decay = T(1.0 - lr * weight_decay)
    l2 = weight_decay != 0.0 and not decoupled
    dwd = weight_decay != 0.0 and decoupled
    for i in range(p.size):
        d = g[i]
        if dwd:
            p[i] = p[i] * decay
        elif l2:
            d = d + wd * p[i]
        mi = m[i]
        if small_w:
            mi = mi + lw * (d - mi)
        else:
            mi = d - (d - mi) * one_m_lw
        mi = _flush(mi, tiny, zero)
        m[i] = mi
        vi = _flush(v[i] * b2 + one_m_b2 * (d * d), tiny, zero)
        v[i] = vi
        if amsgrad:
            if vmax[i] > vi or vmax[i] != vmax[i]:   # torch.maximum propagates NaN
                vi = vmax[i]
            vmax[i] = vi
        denom = np.sqrt(vi) / bc2s + e
        p[i] = p[i] + nstep * (mi / denom)


@njit(**_JIT)
def rmsprop_step(p, g, sq, gavg, buf, hp):
    """RMSprop with optional L2 weight decay, momentum and centering.

    ``hp = [lr, alpha, eps, weight_decay, momentum, centered]``.
    """
    lr, alpha, eps, weight_decay, momentum = hp[0], hp[1], hp[2], hp[3], hp[4]
    centered = hp[5] != 0.0
    T = p.dtype.type
    nlr = T(-lr)
    a = T(alpha)
    one_m_a = T(1.0 - alpha)
    w = 1.0 - alpha                       # grad_avg.lerp_(grad, 1 - alpha)
    small_w = abs(w) < 0.5
    lw = T(w)
    one_m_lw = T(1.0 - w)
    e = T(eps)
    wd = T(weight_decay)
    use_wd = weight_decay != 0.0
    mom = T(momentum)
    use_mom = momentum > 0.0
    tiny, zero = _tiny(p), T(0.0)
    # the momentum buffer is never divided by: always flushed; the averages only with eps
    sq_tiny = _flush_limit(p, eps, 1.0)
    for i in range(p.size):
        d = g[i]
        if use_wd:
            d = d + wd * p[i]
        s = _flush(sq[i] * a + one_m_a * (d * d), sq_tiny, zero)
        sq[i] = s
        if centered:
            ga = gavg[i]
            if small_w:
                ga = ga + lw * (d - ga)
            else:
                ga = d - (d - ga) * one_m_lw
            ga = _flush(ga, sq_tiny, zero)
            gavg[i] = ga
            avg = np.sqrt(s - ga * ga) + e
        else:
            avg = np.sqrt(s) + e
        if use_mom:
            b = _flush(buf[i] * mom + d / avg, tiny, zero)
            buf[i] = b
            p[i] = p[i] + nlr * b
        else:
            p[i] = p[i] + nlr * (d / avg)


@njit(**_JIT)
def adagrad_step(p, g, ssum, step, hp):
    """Adagrad with learning-rate decay and L2 weight decay.

    ``hp = [lr, lr_decay, weight_decay, eps]``; ``step`` is 1-based.
    """
    lr, lr_decay, weight_decay, eps = hp[0], hp[1], hp[2], hp[3]
    T = p.dtype.type
    nclr = T(-(lr / (1.0 + (step - 1) * lr_decay)))
    e = T(eps)
    wd = T(weight_decay)
    use_wd = weight_decay != 0.0
    for i in range(p.size):
        d = g[i]
        if use_wd:
            d = d + wd * p[i]
        s = ssum[i] + d * d
        ssum[i] = s
        p[i] = p[i] + nclr * (d / (np.sqrt(s) + e))


@njit(**_JIT)
def _lerp(m, d, lw, one_m_lw, small_w):
    """torch.lerp(m, d, w)'s two-branch formula."""
    if small_w:
        return m + lw * (d - m)
    return d - (d - m) * one_m_lw


@njit(**_JIT)
def adamax_step(p, g, m, u, step, hp):
    """Adamax: Adam with an infinity-norm second moment (torch.optim.Adamax).

    ``hp = [lr, beta1, beta2, eps, weight_decay]``; ``step`` is 1-based.
    """
    lr, beta1, beta2, eps, weight_decay = hp[0], hp[1], hp[2], hp[3], hp[4]
    T = p.dtype.type
    nclr = T(-(lr / (1.0 - beta1 ** float(step))))
    b2 = T(beta2)
    e = T(eps)
    w1 = 1.0 - beta1
    small_w = abs(w1) < 0.5
    lw = T(w1)
    one_m_lw = T(1.0 - w1)
    wd = T(weight_decay)
    use_wd = weight_decay != 0.0
    zero = T(0.0)
    tiny = _flush_limit(p, eps, 1.0)
    for i in range(p.size):
        d = g[i]
        if use_wd:
            d = d + wd * p[i]
        mi = _flush(_lerp(m[i], d, lw, one_m_lw, small_w), tiny, zero)
        m[i] = mi
        a = u[i] * b2
        b = abs(d) + e
        ui = a if a > b or a != a else b          # torch.maximum propagates NaN
        u[i] = ui
        p[i] = p[i] + nclr * (mi / ui)


@njit(**_JIT)
def nadam_step(p, g, m, v, step, mu_product, hp):
    """NAdam: Adam with Nesterov momentum and the momentum-decay schedule (torch.optim.NAdam).

    ``hp = [lr, beta1, beta2, eps, weight_decay, momentum_decay, decoupled]``; ``step`` is
    1-based; ``mu_product`` is this parameter's running product of the mu_t (kept in float32,
    as torch keeps it in its default float dtype). Returns the new mu_product.
    """
    lr, beta1, beta2, eps, weight_decay = hp[0], hp[1], hp[2], hp[3], hp[4]
    momentum_decay, decoupled = hp[5], hp[6] != 0.0
    T = p.dtype.type
    bc2 = 1.0 - beta2 ** float(step)
    mu = beta1 * (1.0 - 0.5 * (0.96 ** (step * momentum_decay)))
    mu_next = beta1 * (1.0 - 0.5 * (0.96 ** ((step + 1) * momentum_decay)))
    mu_product = float(np.float32(mu_product) * np.float32(mu))
    c_grad = T(-lr * (1.0 - mu) / (1.0 - mu_product))
    c_avg = T((-lr * mu_next) / (1.0 - mu_product * mu_next))
    b2 = T(beta2)
    one_m_b2 = T(1.0 - beta2)
    tbc2 = T(bc2)
    e = T(eps)
    w1 = 1.0 - beta1
    small_w = abs(w1) < 0.5
    lw = T(w1)
    one_m_lw = T(1.0 - w1)
    wd = T(weight_decay)
    decay = T(1.0 - lr * weight_decay)
    l2 = weight_decay != 0.0 and not decoupled
    dwd = weight_decay != 0.0 and decoupled
    zero = T(0.0)
    tiny = _flush_limit(p, eps, bc2 ** 0.5)
    for i in range(p.size):
        d = g[i]
        if dwd:
            p[i] = p[i] * decay
        elif l2:
            d = d + wd * p[i]
        mi = _flush(_lerp(m[i], d, lw, one_m_lw, small_w), tiny, zero)
        m[i] = mi
        vi = _flush(v[i] * b2 + one_m_b2 * (d * d), tiny, zero)
        v[i] = vi
        denom = np.sqrt(vi / tbc2) + e
        p[i] = p[i] + c_grad * (d / denom)
        p[i] = p[i] + c_avg * (mi / denom)
    return mu_product


@njit(**_JIT)
def radam_step(p, g, m, v, step, hp):
    """RAdam: Adam with the variance rectification term (torch.optim.RAdam); plain momentum
    SGD steps while the rectification is undefined (rho_t <= 5).

    ``hp = [lr, beta1, beta2, eps, weight_decay, decoupled]``; ``step`` is 1-based.
    """
    lr, beta1, beta2, eps, weight_decay = hp[0], hp[1], hp[2], hp[3], hp[4]
    decoupled = hp[5] != 0.0
    T = p.dtype.type
    bc1 = 1.0 - beta1 ** float(step)
    bc2 = 1.0 - beta2 ** float(step)
    rho_inf = 2.0 / (1.0 - beta2) - 1.0
    rho_t = rho_inf - 2.0 * step * (beta2 ** float(step)) / bc2
    rectify = rho_t > 5.0
    rect = 0.0
    if rectify:
        rect = ((rho_t - 4.0) * (rho_t - 2.0) * rho_inf
                / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t)) ** 0.5
    tbc1 = T(bc1)
    tlr = T(lr)
    trect = T(rect)
    sbc2 = T(bc2 ** 0.5)
    b2 = T(beta2)
    one_m_b2 = T(1.0 - beta2)
    e = T(eps)
    w1 = 1.0 - beta1
    small_w = abs(w1) < 0.5
    lw = T(w1)
    one_m_lw = T(1.0 - w1)
    wd = T(weight_decay)
    decay = T(1.0 - lr * weight_decay)
    l2 = weight_decay != 0.0 and not decoupled
    dwd = weight_decay != 0.0 and decoupled
    zero = T(0.0)
    tiny = _flush_limit(p, eps, bc2 ** 0.5)
    for i in range(p.size):
        d = g[i]
        if dwd:
            p[i] = p[i] * decay
        elif l2:
            d = d + wd * p[i]
        mi = _flush(_lerp(m[i], d, lw, one_m_lw, small_w), tiny, zero)
        m[i] = mi
        vi = _flush(v[i] * b2 + one_m_b2 * (d * d), tiny, zero)
        v[i] = vi
        update = (mi / tbc1) * tlr
        if rectify:
            update = update * (sbc2 / (np.sqrt(vi) + e)) * trect
        p[i] = p[i] - update


@njit(**_JIT)
def adadelta_step(p, g, sq, acc, hp):
    """Adadelta (torch.optim.Adadelta). ``hp = [lr, rho, eps, weight_decay]``."""
    lr, rho, eps, weight_decay = hp[0], hp[1], hp[2], hp[3]
    T = p.dtype.type
    nlr = T(-lr)
    r = T(rho)
    one_m_r = T(1.0 - rho)
    e = T(eps)
    wd = T(weight_decay)
    use_wd = weight_decay != 0.0
    zero = T(0.0)
    tiny = _flush_limit(p, eps, 1.0)
    for i in range(p.size):
        d = g[i]
        if use_wd:
            d = d + wd * p[i]
        s = _flush(sq[i] * r + one_m_r * (d * d), tiny, zero)
        sq[i] = s
        delta = np.sqrt(acc[i] + e) / np.sqrt(s + e) * d
        acc[i] = _flush(acc[i] * r + one_m_r * (delta * delta), tiny, zero)
        p[i] = p[i] + nlr * delta


@njit(**_JIT)
def norm_pow_sum(g, norm_type):
    """Return sum(|g|**norm_type) accumulated in float64 (max |g| for inf,
    the count of non-zeros for 0)."""
    acc = 0.0
    if norm_type == np.inf:
        for i in range(g.size):
            a = abs(float(g[i]))
            if a > acc or a != a:
                acc = a
    elif norm_type == 2.0:
        for i in range(g.size):
            x = float(g[i])
            acc += x * x
    elif norm_type == 0.0:
        for i in range(g.size):
            if g[i] != 0:
                acc += 1.0
    elif norm_type == 1.0:
        for i in range(g.size):
            acc += abs(float(g[i]))
    else:
        for i in range(g.size):
            acc += abs(float(g[i])) ** norm_type
    return acc
