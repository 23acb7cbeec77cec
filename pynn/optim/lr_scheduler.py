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
next ``step()`` and schedulers do not chain (``SequentialLR`` runs several one
after another).  An optimizer made with parameter groups gets one lr per group,
each scheduled from the group's own ``initial_lr``, as in torch.
``ReduceLROnPlateau`` is stepped with the metric it watches:
``sched.step(val_loss)``.
"""
import bisect
import math

__all__ = ["LRScheduler", "StepLR", "MultiStepLR", "ExponentialLR",
           "CosineAnnealingLR", "LambdaLR", "LinearLR", "PolynomialLR",
           "CosineAnnealingWarmRestarts", "OneCycleLR", "SequentialLR", "ReduceLROnPlateau"]


def _groups(optimizer):
    """The optimizer's explicit parameter groups (dicts), or None for one lr attribute."""
    return getattr(optimizer, "_groups", None) or None


def _set_lrs(optimizer, lrs):
    groups = _groups(optimizer)
    if groups:
        for group, lr in zip(groups, lrs):
            group["lr"] = lr
    else:
        optimizer.lr = lrs[0]


def _current_lrs(optimizer):
    groups = _groups(optimizer)
    return [float(g["lr"]) for g in groups] if groups else [float(optimizer.lr)]


class LRScheduler:
    """Base class: subclasses implement ``_lr_at(epoch, base_lr)``."""

    def __init__(self, optimizer, last_epoch=-1):
        if not hasattr(optimizer, "lr"):
            raise TypeError(f"{type(optimizer).__name__} has no 'lr' attribute")
        self.optimizer = optimizer
        groups = _groups(optimizer)
        if groups:
            for group in groups:
                if last_epoch == -1:
                    group.setdefault("initial_lr", float(group["lr"]))
                elif "initial_lr" not in group:
                    raise KeyError("'initial_lr' is not set in a parameter group; it is "
                                   "required when resuming with last_epoch != -1")
            self.base_lrs = [float(g["initial_lr"]) for g in groups]
        else:
            if last_epoch == -1:
                if getattr(optimizer, "initial_lr", None) is None:
                    optimizer.initial_lr = float(optimizer.lr)
            elif getattr(optimizer, "initial_lr", None) is None:
                raise KeyError("'initial_lr' is not set on the optimizer; it is required when "
                               "resuming with last_epoch != -1")
            self.base_lrs = [float(optimizer.initial_lr)]
        self.last_epoch = last_epoch
        self._last_lr = _current_lrs(optimizer)
        self.step()

    def _lr_at(self, epoch, base_lr):
        raise NotImplementedError

    def get_lr(self):
        """The lr(s) for the current epoch, as a list (one per parameter group)."""
        return [self._lr_at(self.last_epoch, b) for b in self.base_lrs]

    def get_last_lr(self):
        """The lr(s) set by the last ``step()``, one per parameter group (like torch)."""
        return list(self._last_lr)

    def step(self, epoch=None):
        """Advance one epoch (or jump to ``epoch``) and set ``optimizer.lr``."""
        self.last_epoch = self.last_epoch + 1 if epoch is None else int(epoch)
        lrs = self.get_lr()
        _set_lrs(self.optimizer, lrs)
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


class LinearLR(LRScheduler):
    """``lr = base_lr * factor``, the factor going linearly from ``start_factor`` to
    ``end_factor`` over ``total_iters`` epochs, then staying there (a warm-up)."""

    def __init__(self, optimizer, start_factor=1.0 / 3, end_factor=1.0, total_iters=5,
                 last_epoch=-1):
        if not 0 < start_factor <= 1 or not 0 <= end_factor <= 1:
            raise ValueError(f"LinearLR: start_factor must be in (0, 1] and end_factor in "
                             f"[0, 1], got {start_factor} and {end_factor}")
        if int(total_iters) < 0:
            raise ValueError(f"total_iters must be >= 0, got {total_iters}")
        self.start_factor, self.end_factor = float(start_factor), float(end_factor)
        self.total_iters = int(total_iters)
        super().__init__(optimizer, last_epoch)

    def _lr_at(self, epoch, base_lr):
        if self.total_iters == 0:
            return base_lr * self.end_factor
        done = min(self.total_iters, epoch) / self.total_iters
        return base_lr * (self.start_factor + (self.end_factor - self.start_factor) * done)


class PolynomialLR(LRScheduler):
    """``lr = base_lr * (1 - min(epoch, total_iters) / total_iters) ** power``."""

    def __init__(self, optimizer, total_iters=5, power=1.0, last_epoch=-1):
        if int(total_iters) < 1:
            raise ValueError(f"total_iters must be a positive integer, got {total_iters}")
        self.total_iters, self.power = int(total_iters), float(power)
        super().__init__(optimizer, last_epoch)

    def _lr_at(self, epoch, base_lr):
        return base_lr * (1.0 - min(self.total_iters, epoch) / self.total_iters) ** self.power


class CosineAnnealingWarmRestarts(LRScheduler):
    """SGDR: cosine annealing from base_lr to ``eta_min`` over ``T_0`` epochs, then a restart;
    each period is ``T_mult`` times the one before. ``step(epoch)`` accepts fractional epochs
    (e.g. ``epoch + batch / n_batches``), as in torch."""

    def __init__(self, optimizer, T_0, T_mult=1, eta_min=0.0, last_epoch=-1):
        if int(T_0) != T_0 or T_0 <= 0:
            raise ValueError(f"Expected positive integer T_0, but got {T_0}")
        if int(T_mult) != T_mult or T_mult < 1:
            raise ValueError(f"Expected integer T_mult >= 1, but got {T_mult}")
        self.T_0, self.T_i, self.T_mult = int(T_0), int(T_0), int(T_mult)
        self.eta_min = float(eta_min)
        self.T_cur = last_epoch
        super().__init__(optimizer, last_epoch)

    def _lr_at(self, epoch, base_lr):
        return self.eta_min + (base_lr - self.eta_min) * (
            1 + math.cos(math.pi * self.T_cur / self.T_i)) / 2

    def step(self, epoch=None):
        if epoch is None and self.last_epoch < 0:
            epoch = 0
        if epoch is None:
            epoch = self.last_epoch + 1
            self.T_cur += 1
            if self.T_cur >= self.T_i:
                self.T_cur -= self.T_i
                self.T_i *= self.T_mult
        elif epoch < 0:
            raise ValueError(f"Expected non-negative epoch, but got {epoch}")
        elif epoch >= self.T_0:
            if self.T_mult == 1:
                self.T_cur = epoch % self.T_0
            else:
                n = int(math.log(epoch / self.T_0 * (self.T_mult - 1) + 1, self.T_mult))
                self.T_cur = epoch - self.T_0 * (self.T_mult ** n - 1) / (self.T_mult - 1)
                self.T_i = self.T_0 * self.T_mult ** n
        else:
            self.T_i, self.T_cur = self.T_0, epoch
        self.last_epoch = math.floor(epoch)
        lrs = self.get_lr()
        _set_lrs(self.optimizer, lrs)
        self._last_lr = lrs


class OneCycleLR(LRScheduler):
    """The 1cycle policy, stepped once per batch: lr rises from ``max_lr / div_factor`` to
    ``max_lr`` over the first ``pct_start`` of ``total_steps``, then anneals ("cos" or
    "linear") to ``initial / final_div_factor``; with ``three_phase`` it first comes back down to
    the initial lr. With ``cycle_momentum`` the momentum (SGD) or beta1 (Adam family) moves
    the opposite way between ``max_momentum`` and ``base_momentum``.
    Give ``total_steps``, or ``epochs`` and ``steps_per_epoch``. ``max_lr`` may be a list (one per
    parameter group)."""

    def __init__(self, optimizer, max_lr, total_steps=None, epochs=None, steps_per_epoch=None,
                 pct_start=0.3, anneal_strategy="cos", cycle_momentum=True, base_momentum=0.85,
                 max_momentum=0.95, div_factor=25.0, final_div_factor=1e4, three_phase=False,
                 last_epoch=-1):
        if total_steps is None:
            if epochs is None or steps_per_epoch is None:
                raise ValueError("OneCycleLR: give total_steps, or epochs and steps_per_epoch")
            if int(epochs) <= 0 or int(steps_per_epoch) <= 0:
                raise ValueError(f"epochs and steps_per_epoch must be positive, got {epochs} "
                                 f"and {steps_per_epoch}")
            total_steps = int(epochs) * int(steps_per_epoch)
        if int(total_steps) <= 0:
            raise ValueError(f"Expected positive integer total_steps, but got {total_steps}")
        if not 0 <= pct_start <= 1:
            raise ValueError(f"Expected float between 0 and 1 pct_start, but got {pct_start}")
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"anneal_strategy must be 'cos' or 'linear', got {anneal_strategy}")
        self.total_steps = int(total_steps)
        self.anneal_strategy, self.cycle_momentum = anneal_strategy, bool(cycle_momentum)
        groups = _groups(optimizer)
        n = len(groups) if groups else 1
        max_lrs = list(max_lr) if isinstance(max_lr, (list, tuple)) else [max_lr] * n
        if len(max_lrs) != n:
            raise ValueError(f"OneCycleLR: {len(max_lrs)} max_lr values for {n} groups")
        initial = [m / div_factor for m in max_lrs]
        self.max_lrs, self.initial_lrs = [float(m) for m in max_lrs], initial
        self.min_lrs = [i / final_div_factor for i in initial]
        # a phase: (last step, lr key at its start, at its end, momentum at start, at end)
        pct = float(pct_start) * self.total_steps
        if three_phase:
            self.phases = [(pct - 1, "initial", "max", max_momentum, base_momentum),
                           (2 * pct - 2, "max", "initial", base_momentum, max_momentum),
                           (self.total_steps - 1, "initial", "min", max_momentum, max_momentum)]
        else:
            self.phases = [(pct - 1, "initial", "max", max_momentum, base_momentum),
                           (self.total_steps - 1, "max", "min", base_momentum, max_momentum)]
        if self.cycle_momentum:
            if not (hasattr(optimizer, "betas") or hasattr(optimizer, "momentum")):
                raise ValueError("optimizer must support momentum or beta1 with "
                                 "`cycle_momentum` option enabled")
            self._set_momentum(optimizer, max_momentum)
        if last_epoch == -1:          # the schedule's own base: max_lr / div_factor
            if groups:
                for group, lr in zip(groups, initial):
                    group["initial_lr"] = lr
            else:
                optimizer.initial_lr = initial[0]
        super().__init__(optimizer, last_epoch)

    @staticmethod
    def _set_momentum(optimizer, m):
        for target in (_groups(optimizer) or [None]):
            if target is None:
                if hasattr(optimizer, "betas"):
                    optimizer.betas = (m, optimizer.betas[1])
                else:
                    optimizer.momentum = m
            elif "betas" in target:
                target["betas"] = (m, target["betas"][1])
            else:
                target["momentum"] = m

    def _anneal(self, start, end, pct):
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def _phase(self, step):
        start = 0
        for i, phase in enumerate(self.phases):
            end = phase[0]
            if step <= end or i == len(self.phases) - 1:
                return phase, (step - start) / (end - start)
            start = end

    def get_lr(self):
        step = self.last_epoch
        if step > self.total_steps:
            raise ValueError(f"Tried to step {step} times. The specified number of total steps "
                             f"is {self.total_steps}")
        (_, lr0, lr1, m0, m1), pct = self._phase(step)
        lrs = []
        for i in range(len(self.max_lrs)):
            values = {"initial": self.initial_lrs[i], "max": self.max_lrs[i],
                      "min": self.min_lrs[i]}
            lrs.append(self._anneal(values[lr0], values[lr1], pct))
        if self.cycle_momentum:
            self._set_momentum(self.optimizer, self._anneal(m0, m1, pct))
        return lrs


class SequentialLR(LRScheduler):
    """Run `schedulers` one after another: the i-th from epoch ``milestones[i-1]`` on (each
    starting again from its own epoch 0), as torch.optim.lr_scheduler.SequentialLR. A typical
    use: ``SequentialLR(opt, [LinearLR(opt, 0.1, total_iters=5), CosineAnnealingLR(opt, 45)],
    milestones=[5])``: a warm-up, then cosine decay."""

    def __init__(self, optimizer, schedulers, milestones, last_epoch=-1):
        if len(schedulers) < 1:
            raise ValueError("SequentialLR expects at least one scheduler")
        for i, sched in enumerate(schedulers):
            if sched.optimizer is not optimizer:
                raise ValueError(f"SequentialLR: scheduler #{i} is attached to another "
                                 f"optimizer")
        if len(milestones) != len(schedulers) - 1:
            raise ValueError(f"SequentialLR: {len(schedulers)} schedulers need "
                             f"{len(schedulers) - 1} milestones, got {len(milestones)}")
        self.optimizer = optimizer
        self._schedulers, self._milestones = list(schedulers), [int(m) for m in milestones]
        self.last_epoch = last_epoch + 1
        groups = _groups(optimizer)     # back to the initial lr, and undo the schedulers' step 0
        _set_lrs(optimizer, [g["initial_lr"] for g in groups] if groups
                 else [optimizer.initial_lr])
        for sched in self._schedulers:
            sched.last_epoch -= 1
        self._schedulers[0].step()
        self._last_lr = self._schedulers[0].get_last_lr()

    def step(self, epoch=None):
        if epoch is not None:
            raise TypeError("SequentialLR.step() takes no epoch")
        self.last_epoch += 1
        idx = bisect.bisect_right(self._milestones, self.last_epoch)
        sched = self._schedulers[idx]
        if idx > 0 and self._milestones[idx - 1] == self.last_epoch:
            sched.step(0)
        else:
            sched.step()
        self._last_lr = sched.get_last_lr()

    def state_dict(self):
        return {"last_epoch": self.last_epoch, "_last_lr": self._last_lr,
                "_schedulers": [s.state_dict() for s in self._schedulers]}

    def load_state_dict(self, sd):
        self.last_epoch, self._last_lr = sd["last_epoch"], sd["_last_lr"]
        for sched, state in zip(self._schedulers, sd["_schedulers"]):
            sched.load_state_dict(state)


class ReduceLROnPlateau(LRScheduler):
    """Multiply the lr by ``factor`` once the watched metric has not improved for more than
    ``patience`` epochs (``mode`` "min" or "max"; improvement beyond ``threshold``, relative
    or absolute by ``threshold_mode``), then wait ``cooldown`` epochs; never below ``min_lr``
    (a number, or one per parameter group). Call ``step(metric)`` once per epoch."""

    def __init__(self, optimizer, mode="min", factor=0.1, patience=10, threshold=1e-4,
                 threshold_mode="rel", cooldown=0, min_lr=0.0, eps=1e-8):
        if factor >= 1.0:
            raise ValueError("Factor should be < 1.0.")
        if mode not in ("min", "max"):
            raise ValueError(f"mode {mode} is unknown!")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"threshold mode {threshold_mode} is unknown!")
        if not hasattr(optimizer, "lr"):
            raise TypeError(f"{type(optimizer).__name__} has no 'lr' attribute")
        self.optimizer = optimizer
        n = len(_groups(optimizer) or [None])
        self.min_lrs = list(min_lr) if isinstance(min_lr, (list, tuple)) else [min_lr] * n
        if len(self.min_lrs) != n:
            raise ValueError(f"expected {n} min_lrs, got {len(self.min_lrs)}")
        self.mode, self.factor, self.patience = mode, float(factor), int(patience)
        self.threshold, self.threshold_mode = float(threshold), threshold_mode
        self.cooldown, self.eps = int(cooldown), float(eps)
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = self.cooldown_counter = 0
        self.last_epoch = 0
        self._last_lr = _current_lrs(optimizer)

    def _is_better(self, a):
        best, t = self.best, self.threshold
        if self.mode == "min":
            return a < (best * (1.0 - t) if self.threshold_mode == "rel" else best - t)
        return a > (best * (t + 1.0) if self.threshold_mode == "rel" else best + t)

    def step(self, metrics):
        current = float(getattr(metrics, "item", lambda: metrics)())
        self.last_epoch += 1
        if self._is_better(current):
            self.best, self.num_bad_epochs = current, 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            lrs = _current_lrs(self.optimizer)
            new = [max(lr * self.factor, m) for lr, m in zip(lrs, self.min_lrs)]
            _set_lrs(self.optimizer, [n if lr - n > self.eps else lr for lr, n in zip(lrs, new)])
            self.cooldown_counter, self.num_bad_epochs = self.cooldown, 0
        self._last_lr = _current_lrs(self.optimizer)

    def get_lr(self):
        return list(self._last_lr)
