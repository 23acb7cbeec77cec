"""Implementation package of :mod:`pynn.optimizers` (the public module)."""
from .algorithms import SGD, Adadelta, Adagrad, Adam, Adamax, AdamW, NAdam, RAdam, RMSprop
from .base import Optimizer
from .clip import clip_grad_norm, clip_grad_norm_, clip_grad_value, clip_grad_value_
from .lr_scheduler import (
                           CosineAnnealingLR,
                           CosineAnnealingWarmRestarts,
                           ExponentialLR,
                           LambdaLR,
                           LinearLR,
                           LRScheduler,
                           MultiStepLR,
                           OneCycleLR,
                           PolynomialLR,
                           ReduceLROnPlateau,
                           SequentialLR,
                           StepLR,
)

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "NAdam", "RAdam", "Adamax",
           "Adadelta",
           "clip_grad_norm", "clip_grad_norm_", "clip_grad_value", "clip_grad_value_",
           "LRScheduler", "StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR",
           "LambdaLR", "LinearLR", "PolynomialLR", "CosineAnnealingWarmRestarts", "OneCycleLR",
           "SequentialLR", "ReduceLROnPlateau"]
