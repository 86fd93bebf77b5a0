"""The results record of one experiment: typed dataclasses, written as ``<name>.json``.

:meth:`Results.to_json` gives the dict that is written (fields in the order below; a field
marked optional is left out while it is None). ``schema_version`` says which layout a file
has: files written before it existed have none and the layout of version 1 without it.
For code written against the dict, a :class:`Results` can also be read like one
(``results["test_accuracy"]``): that reads :meth:`Results.to_json`.
"""
from __future__ import annotations

import collections.abc
import dataclasses
import json
import os
import pathlib
import platform
from typing import Any, Iterator

import flax
import jax
import optax

from hw import backends
from hw.engine import files, randomness
from hw.engine.experiment_data import Splits

SCHEMA_VERSION = 1


def _optional(default: Any = None) -> Any:
  """A field left out of the JSON while it is None."""
  return dataclasses.field(default=default, metadata={"optional": True})


def _json(record: Any) -> Any:
  """A dataclass (and the dataclasses in it) as JSON-ready dicts, optional Nones left out."""
  if dataclasses.is_dataclass(record):
    return {field.name: _json(getattr(record, field.name))
            for field in dataclasses.fields(record)
            if not (field.metadata.get("optional") and getattr(record, field.name) is None)}
  if isinstance(record, list):
    return [_json(item) for item in record]
  return record


def plain(value: Any) -> Any:
  """JSON-friendly (tuples become lists)."""
  return json.loads(json.dumps(value, default=str))


@dataclasses.dataclass
class GridPoint:
  """One point of the grid: its values, how its training ended, its per-epoch history."""
  index: int
  params: dict[str, Any]       # the grid values of this point (plain JSON values)
  label: str                   # "learning_rate=0.1, ..." or "(single point)"
  checkpoint: str              # its checkpoint folder
  status: str                  # "complete" or "diverged"
  message: str | None = _optional()  # why it diverged
  epochs: int = 0              # epochs completed
  val_accuracy: float | None = None  # of the last epoch; None when diverged
  val_loss: float | None = None
  train_accuracy: float | None = None
  train_loss: float | None = None
  train_seconds: float | None = None  # over all its epochs, across resumptions
  history: list[dict[str, Any]] = dataclasses.field(default_factory=list)
  # per epoch: epoch, learning_rate, train_loss, train_accuracy, val_loss, val_accuracy, seconds
  test_accuracy: float | None = _optional()  # only for points in config.also_test
  top1_error: float | None = _optional()
  top5_error: float | None = _optional()  # only with ≥ 5 classes

  @classmethod
  def diverged(cls, index: int, params: dict[str, Any], label: str, checkpoint: str,
               message: str, epochs: int) -> "GridPoint":
    return cls(index, params, label, checkpoint, "diverged", message=message, epochs=epochs)

  @classmethod
  def complete(cls, index: int, params: dict[str, Any], label: str, checkpoint: str,
               history: list[dict[str, Any]]) -> "GridPoint":
    final = history[-1]
    return cls(index, params, label, checkpoint, "complete", epochs=len(history),
               val_accuracy=final["val_accuracy"], val_loss=final["val_loss"],
               train_accuracy=final["train_accuracy"], train_loss=final["train_loss"],
               train_seconds=sum(r["seconds"] for r in history), history=history)


@dataclasses.dataclass(frozen=True)
class DataSummary:
  source: str
  identity: str                # hw.engine.experiment_data.Splits.identity
  stand_in: bool               # made-up data: no target applies
  notes: list[str] | None = _optional()  # caveats (lossy pixels); only when there are some
  num_classes: int = 0
  train: int = 0               # split sizes
  validation: int = 0
  test: int = 0

  @classmethod
  def of(cls, splits: Splits) -> "DataSummary":
    return cls(splits.source, splits.identity, splits.stand_in,
               list(splits.notes) if splits.notes else None, splits.num_classes,
               len(splits.train.labels), len(splits.validation.labels),
               len(splits.test.labels))


@dataclasses.dataclass(frozen=True)
class Selection:
  index: int
  params: dict[str, Any]
  label: str
  val_accuracy: float


@dataclasses.dataclass(frozen=True)
class Platform:
  backend: str
  device: str
  device_count: int            # devices the batches were split over, in all processes
  process_count: int
  prng_impl: str
  stepping: str | None         # "per_batch" or "scan"
  backend_choices: dict        # the row of hw.backends it ran with
  jax: str
  flax: str
  optax: str
  python: str
  machine: str
  cpus: int | None

  @classmethod
  def here(cls, *, stepping: str | None, device_count: int) -> "Platform":
    return cls(jax.default_backend(), str(jax.devices()[0]), device_count, jax.process_count(),
               randomness.PRNG_IMPL, stepping, backends.describe(), jax.__version__,
               flax.__version__,
               optax.__version__, platform.python_version(), platform.machine(), os.cpu_count())


@dataclasses.dataclass(frozen=True)
class SeedSpread:
  """The test accuracy of the whole experiment repeated with each seed."""
  seeds: list[int]
  test_accuracy: list[float]
  mean: float
  std: float
  min: float
  max: float


@dataclasses.dataclass
class Results(collections.abc.Mapping):
  """What one experiment found: the grid, the selected point and its one test evaluation."""
  schema_version: int
  name: str
  title: str
  status: str                  # "complete" (an experiment with no usable point raises)
  config: dict[str, Any]       # the ExperimentConfig as plain JSON values
  fingerprint: str             # of the whole experiment and its data (decides reuse)
  data: DataSummary
  grid: list[GridPoint]
  selected: Selection
  test_accuracy: float         # of the selected model, on the test split
  test_loss: float
  target: float | None
  reported: list[str]
  meets_target: bool | None    # None without a target or on stand-in data
  train_seconds: float         # all points and epochs, across resumptions
  wall_time_s: float           # this call
  seconds_per_epoch: float | None  # median over all epochs
  platform: Platform
  top1_error: float | None = _optional()  # of the selected model on test
  top5_error: float | None = _optional()  # only with ≥ 5 classes
  seeds: SeedSpread | None = _optional()  # with config.repeat_seeds
  figures: list[str] | None = _optional()  # the PNGs drawn (learning curves first)

  def to_json(self) -> dict[str, Any]:
    """The dict written as ``<name>.json``."""
    return _json(self)

  def __getitem__(self, key: str) -> Any:
    return self.to_json()[key]

  def __iter__(self) -> Iterator[str]:
    return iter(self.to_json())

  def __len__(self) -> int:
    return len(self.to_json())


def write_json(path: pathlib.Path, payload: Any) -> None:
  """Write JSON atomically (:func:`hw.engine.files.write_atomic`)."""
  files.write_atomic(path, json.dumps(payload, indent=1))
