"""Implementation package of :mod:`pynn.optimizers` (the public module)."""
from .algorithms import SGD, Adagrad, Adam, AdamW, RMSprop
from .base import Optimizer
from .clip import clip_grad_norm, clip_grad_norm_, clip_grad_value, clip_grad_value_
from .lr_scheduler import (
                           CosineAnnealingLR,
                           ExponentialLR,
                           LambdaLR,
                           LRScheduler,
                           MultiStepLR,
                           StepLR,
)

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad",
           "clip_grad_norm", "clip_grad_norm_", "clip_grad_value", "clip_grad_value_",
           "LRScheduler", "StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR",
           "LambdaLR"]
