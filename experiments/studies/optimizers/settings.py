"""The optimisers study's names and settings: the optimisers compared, their plot colours,
and the MNIST part's settings (quick and full profiles)."""
from __future__ import annotations

import dataclasses

from hw.optim import transforms

NAME = "optimizers"
NAMES = transforms.OPTIMIZER_NAMES
COLOURS = {"sgd": "tab:grey", "momentum": "tab:blue", "nesterov": "tab:green",
           "rmsprop": "tab:orange", "adam": "tab:red"}


@dataclasses.dataclass(frozen=True)
class MlpSettings:
  """Settings of the MNIST part.

  Attributes:
    hidden: H, the hidden width.
    steps: mini-batch steps per run (the same for every optimiser).
    batch_size: examples per step.
    eval_every: steps between two validation evaluations.
    learning_rates: the grid of each optimiser.
    seed: seed of the initialisation and of the mini-batch order (shared by all runs).
  """
  hidden: int
  steps: int
  batch_size: int
  eval_every: int
  learning_rates: dict
  seed: int = 0


QUICK = MlpSettings(hidden=256, steps=1000, batch_size=128, eval_every=50, learning_rates={
    "sgd": (0.1, 0.3, 1.0), "momentum": (0.01, 0.03, 0.1),
    "nesterov": (0.01, 0.03, 0.1), "rmsprop": (3e-4, 1e-3, 3e-3),
    "adam": (3e-4, 1e-3, 3e-3)})
FULL = MlpSettings(hidden=1000, steps=4000, batch_size=128, eval_every=200, learning_rates={
    "sgd": (0.01, 0.03, 0.1, 0.3, 1.0), "momentum": (0.001, 0.003, 0.01, 0.03, 0.1),
    "nesterov": (0.001, 0.003, 0.01, 0.03, 0.1), "rmsprop": (3e-5, 1e-4, 3e-4, 1e-3, 3e-3),
    "adam": (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)})
