"""Learning-rate schedulers (public via :mod:`pynn.optimizers`).

Each scheduler wraps an optimizer with a writable ``lr`` attribute, sets
``optimizer.lr`` from a closed-form function of the epoch counter (the same
values as ``torch.optim.lr_scheduler``'s closed forms), and is stepped once per
epoch::

    sched = CosineAnnealingLR(opt, T_max=30)
    for epoch in range(30):
        train_one_epoch(opt)
        sched.step()

Like torch, creating a scheduler performs step 0 (``lr = base_lr``), and the
base lr is remembered on the optimizer as ``optimizer.initial_lr`` (set once,
so several schedulers see the same base).  Because the lr is recomputed from
the epoch, a scheduler overwrites manual changes of ``optimizer.lr`` on its
next ``step()`` and schedulers do not chain.
"""
import bisect
import math

__all__ = ["LRScheduler", "StepLR", "MultiStepLR", "ExponentialLR",
           "CosineAnnealingLR", "LambdaLR"]


class LRScheduler:
    """Base class: subclasses implement ``_lr_at(epoch, base_lr)``."""

    def __init__(self, optimizer, last_epoch=-1):
        if not hasattr(optimizer, "lr"):
            raise TypeError(f"{type(optimizer).__name__} has no 'lr' attribute")
        self.optimizer = optimizer
        if last_epoch == -1:
            if getattr(optimizer, "initial_lr", None) is None:
                optimizer.initial_lr = float(optimizer.lr)
        elif getattr(optimizer, "initial_lr", None) is None:
            raise KeyError("'initial_lr' is not set on the optimizer; it is required when "
                           "resuming with last_epoch != -1")
        self.base_lrs = [float(optimizer.initial_lr)]
        self.last_epoch = last_epoch
        self._last_lr = [float(optimizer.lr)]
        self.step()

    def _lr_at(self, epoch, base_lr):
        raise NotImplementedError

    def get_lr(self):
        """The lr(s) for the current epoch, as a list (one entry: pynn optimizers
        have a single parameter group)."""
        return [self._lr_at(self.last_epoch, b) for b in self.base_lrs]

    def get_last_lr(self):
        """The lr(s) set by the last ``step()``, as a one-element list (like torch)."""
        return list(self._last_lr)

    def step(self, epoch=None):
        """Advance one epoch (or jump to ``epoch``) and set ``optimizer.lr``."""
        self.last_epoch = self.last_epoch + 1 if epoch is None else int(epoch)
        lrs = self.get_lr()
        self.optimizer.lr = lrs[0]
        self._last_lr = lrs

    def state_dict(self):
        return {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "lr_lambda")}

    def load_state_dict(self, sd):
        self.__dict__.update(sd)

    def __repr__(self):
        return (f"{type(self).__name__}(last_epoch={self.last_epoch}, "
                f"lr={self._last_lr[0]:g})")


class StepLR(LRScheduler):
    """``lr = base_lr * gamma ** (epoch // step_size)``."""

    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
        if int(step_size) < 1:
            raise ValueError(f"step_size must be a positive integer, got {step_size}")
        self.step_size, self.gamma = int(step_size), float(gamma)
        super().__init__(optimizer, last_epoch)

    def _lr_at(self, epoch, base_lr):
        return base_lr * self.gamma ** (epoch // self.step_size)


class MultiStepLR(LRScheduler):
    """``lr = base_lr * gamma ** (number of milestones <= epoch)``."""

    def __init__(self, optimizer, milestones, gamma=0.1, last_epoch=-1):
        self.milestones, self.gamma = sorted(int(m) for m in milestones), float(gamma)
        super().__init__(optimizer, last_epoch)

    def _lr_at(self, epoch, base_lr):
        return base_lr * self.gamma ** bisect.bisect_right(self.milestones, epoch)


class ExponentialLR(LRScheduler):
    """``lr = base_lr * gamma ** epoch``."""

    def __init__(self, optimizer, gamma, last_epoch=-1):
        self.gamma = float(gamma)
        super().__init__(optimizer, last_epoch)

    def _lr_at(self, epoch, base_lr):
        return base_lr * self.gamma ** epoch


class CosineAnnealingLR(LRScheduler):
    """``lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2``
    (SGDR without restarts; past ``T_max`` the cosine continues, as in torch)."""

    def __init__(self, optimizer, T_max, eta_min=0.0, last_epoch=-1):
        if T_max <= 0:
            raise ValueError(f"T_max must be positive, got {T_max}")
        self.T_max, self.eta_min = T_max, float(eta_min)
        super().__init__(optimizer, last_epoch)

    def _lr_at(self, epoch, base_lr):
        return self.eta_min + (base_lr - self.eta_min) * (
            1 + math.cos(math.pi * epoch / self.T_max)) / 2


class LambdaLR(LRScheduler):
    """``lr = base_lr * lr_lambda(epoch)``."""

    def __init__(self, optimizer, lr_lambda, last_epoch=-1):
        self.lr_lambda = lr_lambda
        super().__init__(optimizer, last_epoch)

    def _lr_at(self, epoch, base_lr):
        return base_lr * self.lr_lambda(epoch)
