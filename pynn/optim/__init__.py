"""Implementation package of :mod:`pynn.optimizers` (the public module)."""
from .base import Optimizer
from .algorithms import SGD, Adam, AdamW, RMSprop, Adagrad, NAdam, RAdam, Adamax, Adadelta
from .clip import clip_grad_norm, clip_grad_norm_, clip_grad_value, clip_grad_value_
from .lr_scheduler import (LRScheduler, StepLR, MultiStepLR, ExponentialLR,
                           CosineAnnealingLR, LambdaLR, LinearLR, PolynomialLR,
                           CosineAnnealingWarmRestarts, OneCycleLR, SequentialLR,
                           ReduceLROnPlateau)

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "NAdam", "RAdam", "Adamax",
           "Adadelta",
           "clip_grad_norm", "clip_grad_norm_", "clip_grad_value", "clip_grad_value_",
           "LRScheduler", "StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR",
           "LambdaLR", "LinearLR", "PolynomialLR", "CosineAnnealingWarmRestarts", "OneCycleLR",
           "SequentialLR", "ReduceLROnPlateau"]
