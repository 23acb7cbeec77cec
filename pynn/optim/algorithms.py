"""SGD, Adam, AdamW, RMSprop, Adagrad, NAdam, RAdam, Adamax and Adadelta (same math as
``torch.optim``).

The step loop is shared (``Optimizer.update``); each class names its hyper-parameters
(``_hyper``) and the fused kernel that updates one parameter (``_step``).
"""
from ..kernels import optim as _k
from .base import Optimizer


class SGD(Optimizer):
    """SGD with momentum, dampening, Nesterov and L2 weight decay (torch.optim.SGD)."""
    _spec = (("lr", 1e-3), ("momentum", 0.0), ("nesterov", False),
             ("weight_decay", 0.0), ("dampening", 0.0))
    _buffers = ("momentum_buffer",)

    def _validate(self):
        super()._validate()
        if not self.momentum >= 0.0:
            raise ValueError(f"Invalid momentum value: {self.momentum}")
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")

    def _required(self):
        return (self.momentum != 0,)

    def _hyper(self):
        return (self.lr, self.momentum, self.dampening, self.weight_decay, self.nesterov)

    def _step(self, s, g, hp):
        _k.sgd_step(s.flat, g, s.b0, s.fresh, hp)
        s.fresh = False


class Adam(Optimizer):
    """Adam with L2 weight decay and optional AMSGrad (torch.optim.Adam)."""
    _spec = (("lr", 1e-3), ("betas", (0.9, 0.999)), ("eps", 1e-8),
             ("weight_decay", 0.0), ("amsgrad", False))
    _buffers = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    _decoupled = False

    def _validate(self):
        super()._validate()
        if not self.eps >= 0.0:
            raise ValueError(f"Invalid epsilon value: {self.eps}")
        b1, b2 = self.betas
        if not 0.0 <= b1 < 1.0 or not 0.0 <= b2 < 1.0:
            raise ValueError(f"Invalid betas: {self.betas}")

    def _required(self):
        return (True, True, bool(self.amsgrad))

    def _hyper(self):
        b1, b2 = self.betas
        usual = _k.adam_is_usual(b1, self.weight_decay, self.amsgrad, self._decoupled)
        return (self.lr, b1, b2, self.eps, self.weight_decay, self.amsgrad, self._decoupled,
                usual)

    def _step(self, s, g, hp):
        if hp[7]:       # the usual options: the kernel without their branches
            _k.adam_step_usual(s.flat, g, s.b0, s.b1, s.step, hp)
        else:
            _k.adam_step(s.flat, g, s.b0, s.b1, s.b2, s.step, hp)


class AdamW(Adam):
    """Adam with decoupled weight decay: ``p *= 1 - lr*weight_decay`` (torch.optim.AdamW)."""
    _spec = (("lr", 1e-3), ("betas", (0.9, 0.999)), ("eps", 1e-8),
             ("weight_decay", 1e-2), ("amsgrad", False))
    _decoupled = True


class RMSprop(Optimizer):
    """RMSprop with L2 weight decay, momentum and centering (torch.optim.RMSprop)."""
    _spec = (("lr", 1e-2), ("alpha", 0.99), ("eps", 1e-8), ("weight_decay", 0.0),
             ("momentum", 0.0), ("centered", False))
    _buffers = ("square_avg", "grad_avg", "momentum_buffer")

    def _validate(self):
        super()._validate()
        if not self.eps >= 0.0:
            raise ValueError(f"Invalid epsilon value: {self.eps}")
        if not self.momentum >= 0.0:
            raise ValueError(f"Invalid momentum value: {self.momentum}")
        if not self.alpha >= 0.0:
            raise ValueError(f"Invalid alpha value: {self.alpha}")

    def _required(self):
        return (True, bool(self.centered), self.momentum > 0)

    def _hyper(self):
        return (self.lr, self.alpha, self.eps, self.weight_decay, self.momentum, self.centered)

    def _step(self, s, g, hp):
        _k.rmsprop_step(s.flat, g, s.b0, s.b1, s.b2, hp)


class Adagrad(Optimizer):
    """Adagrad with lr decay and L2 weight decay (torch.optim.Adagrad)."""
    _spec = (("lr", 1e-2), ("lr_decay", 0.0), ("weight_decay", 0.0),
             ("initial_accumulator_value", 0.0), ("eps", 1e-10))
    _buffers = ("sum",)

    def _validate(self):
        super()._validate()
        if not self.lr_decay >= 0.0:
            raise ValueError(f"Invalid lr_decay value: {self.lr_decay}")
        if not self.initial_accumulator_value >= 0.0:
            raise ValueError(f"Invalid initial_accumulator_value: {self.initial_accumulator_value}")
        if not self.eps >= 0.0:
            raise ValueError(f"Invalid epsilon value: {self.eps}")

    def _init_value(self, j):
        return float(self.initial_accumulator_value)

    def _hyper(self):
        return (self.lr, self.lr_decay, self.weight_decay, self.eps)

    def _step(self, s, g, hp):
        _k.adagrad_step(s.flat, g, s.b0, s.step, hp)


class _AdamFamily(Optimizer):
    """Shared checks of the Adam variants below."""

    def _validate(self):
        super()._validate()
        if not self.eps >= 0.0:
            raise ValueError(f"Invalid epsilon value: {self.eps}")
        b1, b2 = self.betas
        if not 0.0 <= b1 < 1.0 or not 0.0 <= b2 < 1.0:
            raise ValueError(f"Invalid betas: {self.betas}")


class NAdam(_AdamFamily):
    """Adam with Nesterov momentum and momentum decay (torch.optim.NAdam); L2 weight decay, or
    decoupled (AdamW-style) with ``decoupled_weight_decay=True``."""
    _spec = (("lr", 2e-3), ("betas", (0.9, 0.999)), ("eps", 1e-8), ("weight_decay", 0.0),
             ("momentum_decay", 4e-3), ("decoupled_weight_decay", False))
    _buffers = ("exp_avg", "exp_avg_sq")
    _scalar_state = "mu_product"

    def _validate(self):
        super()._validate()
        if not self.momentum_decay >= 0.0:
            raise ValueError(f"Invalid momentum_decay value: {self.momentum_decay}")

    def _hyper(self):
        b1, b2 = self.betas
        return (self.lr, b1, b2, self.eps, self.weight_decay, self.momentum_decay,
                self.decoupled_weight_decay)

    def _step(self, s, g, hp):
        s.scalar = _k.nadam_step(s.flat, g, s.b0, s.b1, s.step, s.scalar, hp)


class RAdam(_AdamFamily):
    """Rectified Adam (torch.optim.RAdam); L2 weight decay, or decoupled with
    ``decoupled_weight_decay=True``."""
    _spec = (("lr", 1e-3), ("betas", (0.9, 0.999)), ("eps", 1e-8), ("weight_decay", 0.0),
             ("decoupled_weight_decay", False))
    _buffers = ("exp_avg", "exp_avg_sq")

    def _hyper(self):
        b1, b2 = self.betas
        return (self.lr, b1, b2, self.eps, self.weight_decay, self.decoupled_weight_decay)

    def _step(self, s, g, hp):
        _k.radam_step(s.flat, g, s.b0, s.b1, s.step, hp)


class Adamax(_AdamFamily):
    """Adam with the infinity norm in place of the second moment (torch.optim.Adamax)."""
    _spec = (("lr", 2e-3), ("betas", (0.9, 0.999)), ("eps", 1e-8), ("weight_decay", 0.0))
    _buffers = ("exp_avg", "exp_inf")

    def _hyper(self):
        b1, b2 = self.betas
        return (self.lr, b1, b2, self.eps, self.weight_decay)

    def _step(self, s, g, hp):
        _k.adamax_step(s.flat, g, s.b0, s.b1, s.step, hp)


class Adadelta(Optimizer):
    """Adadelta (torch.optim.Adadelta): steps scaled by the ratio of running RMS of updates
    and of gradients; L2 weight decay."""
    _spec = (("lr", 1.0), ("rho", 0.9), ("eps", 1e-6), ("weight_decay", 0.0))
    _buffers = ("square_avg", "acc_delta")

    def _validate(self):
        super()._validate()
        if not 0.0 <= self.rho <= 1.0:
            raise ValueError(f"Invalid rho value: {self.rho}")
        if not self.eps >= 0.0:
            raise ValueError(f"Invalid epsilon value: {self.eps}")

    def _hyper(self):
        return (self.lr, self.rho, self.eps, self.weight_decay)

    def _step(self, s, g, hp):
        _k.adadelta_step(s.flat, g, s.b0, s.b1, hp)
