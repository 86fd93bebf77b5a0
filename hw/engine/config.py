"""Experiment configuration: one frozen dataclass, one ``get_config`` per experiment.

Every field says what it is for in its metadata, and the fingerprint and the compile key
are derived from those marks, so a new field cannot be silently left out of either:

- ``fingerprint``: it shapes the training trajectory, so it belongs to the hash that
  decides whether a checkpoint or a finished result is still current;
- ``compiled``: it shapes the jitted train/evaluation programs (a traced value such as
  the learning rate, or data-dependent values such as seeds, do not).

The epoch count is neither on its own: it enters both only when the learning-rate
schedule spans the whole run (:attr:`hw.engine.update_rules.Schedule.uses_epochs`).
"""
from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import math
import re
from typing import Any, Mapping, Sequence

from hw.engine.augmentations import AUGMENTATIONS
from hw.engine.figures import FIGURES
from hw.engine.objectives import LOSSES
from hw.engine.update_rules import OPTIMIZERS, SCHEDULES
from hw.nn.models import MODELS

# Bump when a code change alters the numbers training gives, to invalidate checkpoints.
TRAINING_CODE_VERSION = 1

# Classes of the data sets with more than two (a binary loss cannot train them).
MULTICLASS_DATASETS = {"mnist": 10, "fashion_mnist": 10, "cifar10": 10}
# A name becomes file names (<name>.json, checkpoints/<name>/): one plain path component.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
# Model arguments set by the engine, not by ``model_kwargs``.
_ENGINE_MODEL_ARGUMENTS = ("num_outputs", "weight_scale")


def check_name(name: object, *, field: str = "name") -> None:
  """Raise ``ValueError`` unless ``name`` is one plain file name: letters, digits, ``_``,
  ``-`` and ``.`` (not first), no path separator, no ``..``."""
  if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name:
    raise ValueError(f"{field} must be a plain name (letters, digits, '_', '-', '.'; no path "
                     f"separators, no '..'), got {name!r}")


def model_keywords(model: str) -> tuple[str, ...] | None:
  """The ``model.<kw>`` keywords model ``model`` takes (None: any)."""
  parameters = inspect.signature(MODELS[model]).parameters.values()
  if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
    return None
  return tuple(p.name for p in parameters if p.name not in _ENGINE_MODEL_ARGUMENTS)


def _is_number(value: Any) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool)


def _field(default: Any = dataclasses.MISSING, *, fingerprint: bool, compiled: bool,
           factory: Any = dataclasses.MISSING) -> Any:
  metadata = {"fingerprint": fingerprint, "compiled": compiled}
  if factory is not dataclasses.MISSING:
    return dataclasses.field(default_factory=factory, metadata=metadata)
  return dataclasses.field(default=default, metadata=metadata)


def _describes(default: Any = dataclasses.MISSING, **kwargs) -> Any:
  return _field(default, fingerprint=False, compiled=False, **kwargs)


def _shapes(default: Any = dataclasses.MISSING, **kwargs) -> Any:
  """A training field that also shapes the compiled programs."""
  return _field(default, fingerprint=True, compiled=True, **kwargs)


def _trains(default: Any = dataclasses.MISSING, **kwargs) -> Any:
  """A training field that reaches the programs only as data (or as array shapes)."""
  return _field(default, fingerprint=True, compiled=False, **kwargs)


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
  """Everything that defines one experiment (one question of the assignments, docs/assignments.md).

  A grid maps a field name (a top-level field, or ``model.<kwarg>`` for a model keyword)
  to the values tried (or is a list of points); every combination is trained on the train split, the best by
  validation accuracy is selected, and only that model is evaluated on the test set.
  String options are checked against their registries when the config is made.
  """
  name: str = _describes()            # e.g. "q5_3"; results go to results/<name>.json
  title: str = _describes()           # e.g. "Q5.3 CNN: conv7x7-ReLU-pool-fc100-ReLU-fc10"
  dataset: str = _trains()            # "mnist" | "fashion_mnist" | "cifar10" | "binary"
  model: str = _shapes()              # a name in hw.nn.models.MODELS
  model_kwargs: Mapping[str, Any] = _shapes(factory=dict)
  loss: str = _shapes("softmax_cross_entropy")  # a name in hw.engine.objectives.LOSSES
  optimizer: str = _shapes("sgd")     # a name in hw.engine.update_rules.OPTIMIZERS
  learning_rate: float = _trains(1e-3)  # traced: grid points share one compiled step
  lr_decay: float = _shapes(1.0)      # "exponential": multiplied into the lr after every epoch
  lr_schedule: str = _shapes("exponential")  # a name in hw.engine.update_rules.SCHEDULES
  momentum: float = _shapes(0.9)
  weight_decay: float = _shapes(0.0)
  weight_scale: float | None = _shapes(1e-3)  # std of N(0, s²) init (starter default); None: Flax's
  batch_size: int = _trains(100)
  eval_batch_size: int = _field(1000, fingerprint=False, compiled=True)  # memory, not numbers
  jit_per_batch: bool | None = _trains(None)  # one jitted call per batch instead of a scan;
                                              # None: the backend's default (hw.engine.loop.stepping)
  rmsprop_decay: float = _shapes(0.99)  # the handout's RMSProp decay rate
  devices: int | None = _field(None, fingerprint=False, compiled=True)  # data parallel over
                                     # this many local devices (None: all); the global batch
                                     # is split over them, the numbers stay those of one device
  epochs: int = _field(10, fingerprint=False, compiled=False)  # see the module docstring
  seed: int = _trains(0)              # initialisation, shuffling and dropout
  data_seed: int = _trains(0)         # the validation split / binary stand-in (kept fixed)
  validation_fraction: float = _trains(0.1)
  train_subset: int | None = _trains(None)  # train on the first this many examples of the
                                           # training split only (CPU smoke runs of big nets)
  augment: str | None = _shapes(None)  # None or a name in hw.engine.augmentations.AUGMENTATIONS
  normalize: tuple[float, float] | str | None = _trains(None)  # (mean, std) of [0,1] pixels,
                                     # or "standardize": per feature, training-split statistics
  grid: Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Any]] = _describes(factory=dict)
                                     # or a list of points (several fields each)
  also_test: Sequence[int] = _describes(())  # grid points whose test accuracy is reported
                                            # beside the selected one (not used to select)
  repeat_seeds: Sequence[int] = _describes(())  # the whole experiment again with these seeds,
                                               # for the spread of the test accuracy
  reported: Sequence[str] = _describes(())  # what the write-ups reported
  target: float | None = _describes(None)   # test accuracy this project commits to (fraction)
  notes: str = _describes("")
  figures: Sequence[str] = _describes(())  # names in hw.engine.figures.FIGURES, drawn from the
                                          # selected model into <name>_<figure>.png
  profile: str = _describes("quick")  # which profile of the experiment's get_config made this

  def __post_init__(self):
    check_name(self.name)
    LOSSES.check(self.loss, field="loss")
    OPTIMIZERS.check(self.optimizer, field="optimizer")
    SCHEDULES.check(self.lr_schedule, field="lr_schedule")
    MODELS.check(self.model, field="model")
    if self.augment is not None:
      AUGMENTATIONS.check(self.augment, field="augment")
    for figure in self.figures:
      FIGURES.check(figure, field="figures")
    if self.train_subset is not None and (isinstance(self.train_subset, bool) or not
                                          isinstance(self.train_subset, int)
                                          or self.train_subset < 1):
      raise ValueError(f"train_subset must be a positive integer or None in {self.name!r}, "
                       f"got {self.train_subset!r}")
    for field in ("epochs", "batch_size", "eval_batch_size"):
      value = getattr(self, field)
      if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{field} must be a positive integer in {self.name!r}, got {value!r}")
    if self.devices is not None and (isinstance(self.devices, bool)
                                     or not isinstance(self.devices, int) or self.devices < 1):
      raise ValueError(f"devices must be a positive integer or None in {self.name!r}, "
                       f"got {self.devices!r}")
    for field in ("seed", "data_seed"):
      value = getattr(self, field)
      if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{field} must be a non-negative integer in {self.name!r}, "
                         f"got {value!r}")
    for field in ("learning_rate", "lr_decay", "momentum", "weight_decay", "rmsprop_decay"):
      value = getattr(self, field)
      if not _is_number(value) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{field} must be a finite number >= 0 in {self.name!r}, "
                         f"got {value!r}")
    if self.weight_scale is not None and (not _is_number(self.weight_scale) or not
                                          math.isfinite(self.weight_scale)
                                          or self.weight_scale <= 0):
      raise ValueError(f"weight_scale must be a finite number > 0 or None in {self.name!r}, "
                       f"got {self.weight_scale!r}")
    classes = MULTICLASS_DATASETS.get(self.dataset)
    if LOSSES[self.loss].binary and classes:
      raise ValueError(f"loss={self.loss!r} is a binary loss (one score per example), but "
                       f"dataset {self.dataset!r} of {self.name!r} has {classes} classes; "
                       f"use loss='softmax_cross_entropy'")
    if not isinstance(self.model_kwargs, Mapping):
      raise ValueError(f"model_kwargs must be a mapping in {self.name!r}, "
                       f"got {self.model_kwargs!r}")
    known = model_keywords(self.model)
    unknown = [key for key in self.model_kwargs if known is not None and key not in known]
    if unknown:
      raise ValueError(f"model {self.model!r} of {self.name!r} takes no keyword "
                       f"{', '.join(f'model.{key}' for key in unknown)}; it takes: "
                       f"{', '.join(f'model.{key}' for key in known) or 'none'}")
    try:  # the model's own checks of its keywords (types, choices); nothing is initialised
      MODELS[self.model](num_outputs=2, weight_scale=self.weight_scale, **self.model_kwargs)
    except (TypeError, ValueError) as error:
      raise ValueError(f"model_kwargs {dict(self.model_kwargs)!r} do not make a {self.model!r} "
                       f"model in {self.name!r}: {error}") from None
    self._check_grid_fields()
    self._check_plain_fields()
    if not 0.0 < self.validation_fraction < 1.0:
      raise ValueError(f"validation_fraction must be in (0, 1) in {self.name!r}, "
                       f"got {self.validation_fraction!r}")

  def _check_plain_fields(self) -> None:
    """Texts, switches, normalisation and seed lists of the right types."""
    for field in ("title", "notes", "profile"):
      if not isinstance(getattr(self, field), str):
        raise ValueError(f"{field} must be a string in {self.name!r}, "
                         f"got {getattr(self, field)!r}")
    if self.jit_per_batch not in (None, True, False):
      raise ValueError(f"jit_per_batch must be True, False or None in {self.name!r}, "
                       f"got {self.jit_per_batch!r}")
    normalize = self.normalize
    if not (normalize is None or normalize == "standardize" or (
        isinstance(normalize, (tuple, list)) and len(normalize) == 2
        and all(_is_number(v) and math.isfinite(v) for v in normalize) and normalize[1] > 0)):
      raise ValueError(f"normalize must be None, 'standardize' or (mean, std) with std > 0 in "
                       f"{self.name!r}, got {normalize!r}")
    for field in ("repeat_seeds", "also_test"):
      values = getattr(self, field)
      if not isinstance(values, (tuple, list)) or not all(
          isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values):
        raise ValueError(f"{field} must be a list of non-negative integers in {self.name!r}, "
                         f"got {values!r}")

  def _check_grid_fields(self) -> None:
    """Every field a grid sets is a config field or a keyword of the model."""
    if isinstance(self.grid, Mapping):
      keys = list(self.grid)
    elif isinstance(self.grid, (list, tuple)):
      keys = [key for point in self.grid if isinstance(point, Mapping) for key in point]
    else:
      raise ValueError(f"grid of {self.name!r} must be a mapping of field -> values or a list "
                       f"of points, got {self.grid!r}")
    fields = {f.name for f in dataclasses.fields(self)} - {"grid", "name"}
    known = None if "model" in keys else model_keywords(self.model)  # a grid over models
    for key in dict.fromkeys(keys):
      if not isinstance(key, str):
        raise ValueError(f"grid of {self.name!r} names {key!r}, not a field")
      if key.startswith("model."):
        if known is not None and key.split(".", 1)[1] not in known:
          raise ValueError(f"grid of {self.name!r} sets {key}, but model {self.model!r} takes "
                           f"{', '.join(f'model.{k}' for k in known) or 'no keywords'}")
      elif key not in fields:
        raise ValueError(f"grid of {self.name!r} sets unknown config field {key!r}")

  def replace(self, **changes: Any) -> "ExperimentConfig":
    """A copy with ``changes``; keys ``model.<kw>`` update ``model_kwargs``."""
    model_changes = {k.split(".", 1)[1]: v for k, v in changes.items() if k.startswith("model.")}
    plain = {k: v for k, v in changes.items() if not k.startswith("model.")}
    unknown = set(plain) - {f.name for f in dataclasses.fields(self)}
    if unknown:
      raise ValueError(f"unknown config field(s) {sorted(unknown)} for experiment {self.name!r}; "
                       f"known: {', '.join(f.name for f in dataclasses.fields(self))}")
    if model_changes:
      plain["model_kwargs"] = {**self.model_kwargs, **model_changes}
    return dataclasses.replace(self, **plain)

  def to_dict(self) -> dict[str, Any]:
    return dataclasses.asdict(self)

  def length_matters(self) -> bool:
    """Whether the epoch count shapes every step (a schedule over the whole run)."""
    return SCHEDULES[self.lr_schedule].uses_epochs


# Fields added after results were published, left out of the hashes while at these
# defaults, so that the fingerprints (and the finished results) of older configs stay valid.
_OMITTED_AT_DEFAULT = {"train_subset": None}


def _marked(config: ExperimentConfig, mark: str) -> dict[str, Any]:
  values = {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.metadata[mark]
            and not (f.name in _OMITTED_AT_DEFAULT
                     and getattr(config, f.name) == _OMITTED_AT_DEFAULT[f.name])}
  if config.length_matters():
    values["epochs"] = config.epochs
  return values


def _hash(values: Mapping[str, Any]) -> str:
  text = json.dumps(values, sort_keys=True, default=str)
  return hashlib.sha256(text.encode()).hexdigest()[:16]


def fingerprint(config: ExperimentConfig, *, whole_experiment: bool = False,
                data_identity: str = "") -> str:
  """Hash of everything that determines the training trajectory, the data's identity and
  the training-code version.

  The epoch count is left out (unless the schedule spans the run), so a run extended from
  k to n epochs resumes from its checkpoint. ``whole_experiment=True`` adds the name, the
  epochs, the grid and the repeat seeds: it decides whether finished results are current.
  """
  values = _marked(config, "fingerprint")
  if whole_experiment:
    values.update(name=config.name, epochs=config.epochs, grid=config.grid,
                  repeat_seeds=list(config.repeat_seeds))
  values["_code_version"] = TRAINING_CODE_VERSION
  values["_data"] = data_identity
  return _hash(values)


def compile_key(config: ExperimentConfig) -> str:
  """Hash of the fields that shape the compiled programs (the compile cache's key)."""
  return _hash(_marked(config, "compiled"))


def _check_every_field_is_marked() -> None:
  for field in dataclasses.fields(ExperimentConfig):
    if set(field.metadata) != {"fingerprint", "compiled"}:
      raise TypeError(f"ExperimentConfig.{field.name} must declare whether it is part of the "
                      f"fingerprint and of the compile key")


_check_every_field_is_marked()
