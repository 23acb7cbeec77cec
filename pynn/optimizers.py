"""Optimizers, gradient clipping and learning-rate schedulers.

Every optimizer supports two call styles::

    opt = Adam(0.01)                      # Keras/pynn style: first arg is the lr
    opt.update(model.parameters)          # once per step, with the param list

    opt = Adam(model.parameters, lr=1e-3) # PyTorch style: first arg is the params
    opt.zero_grad(); loss.backward(); opt.step()

The math matches ``torch.optim`` (single-tensor implementation) exactly:
L2 weight decay is added to the gradient for SGD/Adam/RMSprop/Adagrad and is
decoupled for AdamW; bias correction, Nesterov, AMSGrad, centering and
Adagrad's lr decay are computed as torch does.  State lives per parameter
object (buffers in the parameter's dtype, allocated on its first step), and
each step is one fused in-place Numba kernel call per parameter
(:mod:`pynn.kernels.optim`).  Parameters whose ``grad`` is ``None`` are skipped
(their step count does not advance).  Hyper-parameters are plain attributes
(``opt.lr = 0.1`` takes effect on the next step).

Parameter data must be C-contiguous float32/float64 NumPy arrays; they are
updated in place (``p.data`` is never rebound).

Schedulers (``StepLR``, ``MultiStepLR``, ``ExponentialLR``, ``CosineAnnealingLR``,
``LambdaLR``, ``LinearLR``, ``PolynomialLR``, ``CosineAnnealingWarmRestarts``, ``OneCycleLR``
(per batch), ``SequentialLR``, ``ReduceLROnPlateau`` (``step(metric)``)) set ``opt.lr`` (or
each parameter group's lr) once per epoch; ``clip_grad_norm`` /
``clip_grad_value`` clip grads in place.  The implementation lives in the
:mod:`pynn.optim` package; this module is the public entry point.
"""
from .optim import *  # noqa: F403  (the names below, re-exported)
from .optim import __all__  # noqa: F401
