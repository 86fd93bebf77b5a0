"""Experiment configuration: one frozen dataclass, one ``get_config`` per experiment."""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
  """Everything that defines one experiment (one SPEC question).

  A grid maps a field name (a top-level field, or ``model.<kwarg>`` for a model keyword)
  to the values tried; every combination is trained on the train split, the best by
  validation accuracy is selected, and only that model is evaluated on the test set.
  """
  name: str                          # e.g. "q5_3"; results go to results/<name>.json
  title: str                         # e.g. "Q5.3 CNN: conv7x7-ReLU-pool-fc100-ReLU-fc10"
  dataset: str                       # "mnist" | "fashion_mnist" | "cifar10" | "binary"
  model: str                         # a name registered in hw.models
  model_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  loss: str = "softmax_cross_entropy"  # | "logistic" | "hinge"
  optimizer: str = "sgd"             # "sgd" | "momentum" | "nesterov" | "rmsprop" | "adam"
  learning_rate: float = 1e-3
  lr_decay: float = 1.0              # "exponential": multiplied into the lr after every epoch
  lr_schedule: str = "exponential"   # | "cosine": lr·½(1 + cos(π·step/total_steps)), per step
  momentum: float = 0.9
  weight_decay: float = 0.0
  weight_scale: float | None = 1e-3  # std of N(0, s²) weight init (starter default); None: Flax default
  batch_size: int = 100
  eval_batch_size: int = 1000        # evaluation chunk (no effect on the numbers, only memory)
  jit_per_batch: bool | None = None  # one jitted call per batch instead of lax.scan chunks
                                     # (speed); None: per batch for conv nets, scan otherwise
  rmsprop_decay: float = 0.99        # the handout's RMSProp decay rate (optimizer="rmsprop")
  epochs: int = 10
  seed: int = 0                      # initialisation, shuffling and dropout
  data_seed: int = 0                 # the validation split / binary stand-in (kept fixed)
  validation_fraction: float = 0.1
  augment: str | None = None         # "shift": random ±2 px translations (images, on device)
  normalize: tuple[float, float] | None = None  # (mean, std) applied to [0,1] pixels
  grid: Mapping[str, Sequence[Any]] = dataclasses.field(default_factory=dict)
  reported: Sequence[str] = ()       # what the write-ups reported, e.g. ("98.39%", "98.7%")
  target: float | None = None        # test accuracy this project commits to (fraction)
  notes: str = ""
  profile: str = "quick"             # which profile of experiments/<name>.py made this config

  def replace(self, **changes: Any) -> "ExperimentConfig":
    """A copy with ``changes``; keys ``model.<kw>`` update ``model_kwargs``."""
    model_changes = {k.split(".", 1)[1]: v for k, v in changes.items() if k.startswith("model.")}
    plain = {k: v for k, v in changes.items() if not k.startswith("model.")}
    unknown = set(plain) - {f.name for f in dataclasses.fields(self)}
    if unknown:
      raise ValueError(f"unknown config field(s) {sorted(unknown)} for experiment {self.name!r}")
    if model_changes:
      plain["model_kwargs"] = {**self.model_kwargs, **model_changes}
    return dataclasses.replace(self, **plain)

  def to_dict(self) -> dict[str, Any]:
    return dataclasses.asdict(self)
