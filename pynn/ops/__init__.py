"""Differentiable ops, each defined once (forward and backward on NumPy arrays) and used by both
executors: the eager tape and the compiled Model plan."""
