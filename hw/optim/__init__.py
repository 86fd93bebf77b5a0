"""Optimisers written from their update equations, and proximal methods for the lasso.

``sgd`` (plain, heavy-ball or Nesterov momentum), ``rmsprop`` and ``adam`` are
``optax.GradientTransformation``s that match optax's own to float64 rounding
(``hw.optim.verify``). ``hw.optim.prox`` has ISTA, FISTA and the soft-thresholding
prox of the L1 norm.
"""
from hw.optim import coordinate_descent, prox
from hw.optim.prox import fista, ista, prox_l1, soft_threshold
from hw.optim.transforms import (
    DEFAULT_MOMENTUM, OPTIMIZER_NAMES, AdamState, RmsPropState, SgdState, adam, by_name,
    rmsprop, sgd)

__all__ = [
    "AdamState", "DEFAULT_MOMENTUM", "OPTIMIZER_NAMES", "RmsPropState", "SgdState", "adam",
    "by_name", "coordinate_descent", "fista", "ista", "prox", "prox_l1", "rmsprop", "sgd",
    "soft_threshold",
]
