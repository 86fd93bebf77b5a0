"""The reported table of the UCL study: its twelve settings, the searched initialisations,
the study's configuration, and the member (one training run inside a group)."""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

NAME = "ucl"
STUDENT_MODEL4_SECONDS = 10 * 3600  # "about 10 hours with loop-based numpy code"

ARCHITECTURES = {
    1: "linear → softmax",
    2: "32 ReLU → linear → softmax",
    3: "32 ReLU → 32 ReLU → linear → softmax",
    4: "conv 3×3×8 SAME + maxpool 2 → conv 3×3×8 SAME + maxpool 2 → 32 ReLU → linear → softmax",
}


# The initialisations the study can search (the schemes are in ``models.INITIALISATIONS``),
# in search order: the coursework's Xavier-uniform first, so that it wins ties.
INITIALISATION_NAMES = ("xavier_uniform", "xavier_normal", "zeros", "truncated_normal", "he")
INITIALISATION_LABELS = {
    "xavier_uniform": "Xavier-uniform, zero biases (the coursework's)",
    "xavier_normal": "Xavier-normal, zero biases",
    "zeros": "zero weights and biases",
    "truncated_normal": "truncated normal σ = 0.1, biases 0.1",
    "he": "He-normal, zero biases",
}
REDUCTIONS = ("mean", "sum")


class Setup(NamedTuple):
  """One searched training setup: an initialisation and a loss reduction."""
  init: str
  reduction: str

  @property
  def label(self) -> str:
    return f"{self.init} × `{self.reduction}`"


class Setting(NamedTuple):
  """One cell of the reported table."""
  model: int
  setting: int
  epochs: int
  learning_rate: float
  reported: float


SETTINGS: tuple[Setting, ...] = (
    Setting(1, 1, 5, 1e-4, 0.7288), Setting(1, 2, 5, 0.005, 0.8776),
    Setting(1, 3, 5, 0.1, 0.9171),
    Setting(2, 1, 15, 1e-4, 0.2066), Setting(2, 2, 15, 0.005, 0.9026),
    Setting(2, 3, 15, 0.1, 0.9651),
    Setting(3, 1, 5, 0.003, 0.7146), Setting(3, 2, 40, 0.003, 0.9148),
    Setting(3, 3, 40, 0.05, 0.9685),
    Setting(4, 1, 5, 0.01, 0.9281), Setting(4, 2, 10, 0.001, 0.9857),
    Setting(4, 3, 20, 0.001, 0.9856),
)


@dataclasses.dataclass(frozen=True)
class UclConfig:
  """What a run of the study trains and how it judges the result.

  Each model is trained under every setup (initialisation, reduction) of
  ``initialisations`` × ``reductions`` except those that cannot train it (zero weights in
  a model with hidden layers: ``models.symmetry_problem``) and those listed in
  ``left_out`` as (model, initialisation, reduction), with ``left_out_reason``.

  ``reproduce_range_margin`` / ``reproduce_median_margin``: a cell reproduces when the
  reported number lies within the seeds' [min, max] widened by the first on each side, or
  the median is within the second of it. ``rising`` / ``gap`` / ``drop`` /
  ``underfit_below``: the under/overfitting rule of :func:`classify_fit`.
  """
  reductions: tuple[str, ...] = REDUCTIONS
  initialisations: tuple[str, ...] = ("xavier_uniform",)
  left_out: tuple[tuple[int, str, str], ...] = ()
  left_out_reason: str = ""
  seeds: tuple[int, ...] = (0, 1, 2)
  settings: tuple[Setting, ...] = SETTINGS
  batch_size: int = 100
  eval_every: int = 20_000
  train_eval_fraction: float = 0.2
  subset_seed: int = 0
  eval_batch_size: int = 1000
  workers: int = 2
  target_cells: int = 10
  reproduce_range_margin: float = 0.02
  reproduce_median_margin: float = 0.03
  rising: float = 0.005
  gap: float = 0.02
  drop: float = 0.005
  underfit_below: float = 0.90
  notes: str = ""

  def __post_init__(self):
    for name, values, allowed in (("reductions", self.reductions, REDUCTIONS),
                                  ("initialisations", self.initialisations,
                                   INITIALISATION_NAMES)):
      bad = [v for v in values if v not in allowed]
      if bad or not values or len(set(values)) != len(values):
        raise ValueError(f"`{name}` must be distinct names from {allowed}, got {values!r}")
    for entry in self.left_out:  # a model absent from `settings` is left out anyway
      if (len(entry) != 3 or entry[0] not in ARCHITECTURES or entry[1] not in self.initialisations
          or entry[2] not in self.reductions):
        raise ValueError("`left_out` entries must be (model, initialisation, reduction) of "
                         f"this configuration, got {entry!r}")


class Member(NamedTuple):
  """One training run inside a group: its learning rate, seed, loss reduction and
  initialisation."""
  learning_rate: float
  seed: int
  reduction: str
  init: str = "xavier_uniform"
