"""The epoch loop: a train state, one epoch, evaluation, and ``train``.

``train(config, data, programs=programs, hooks=...)`` trains ``config.epochs`` epochs of
mini-batch steps on ``data.train`` and evaluates on ``data.validation`` after each, calling
the hooks (progress, checkpoints, extra evaluations) after every step batch and epoch.
``programs`` are the compiled step, scan and evaluation (:mod:`hw.engine.steps`;
:func:`programs_for` compiles them). Everything above one training run (grids, selection,
checkpoints, results) is :mod:`hw.engine.experiment`'s job.
"""
from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Mapping, Sequence

import jax
import numpy as np

from hw import backends
from hw.engine import host_memory, randomness, update_rules
from hw.engine.config import ExperimentConfig
from hw.engine.experiment_data import DeviceSplit
from hw.engine.steps import CHUNK_STEPS, ProgramKey, Programs, TrainState, compile_programs

__all__ = ["Hook", "TrainingData", "TrainingDiverged", "check_programs", "evaluate",
           "evaluate_with_top_k", "init_state", "programs_for", "steps_per_epoch", "train",
           "train_epoch"]


class TrainingDiverged(RuntimeError):
  """A non-finite loss; ``epoch`` is the epoch it happened in."""

  def __init__(self, message: str, *, epoch: int):
    super().__init__(message)
    self.epoch = epoch


@dataclasses.dataclass(frozen=True)
class TrainingData:
  train: DeviceSplit
  validation: DeviceSplit


class Hook:
  """What ``train`` calls; override the methods you need."""

  def on_train_begin(self, *, start_epoch: int, epochs: int, steps_per_epoch: int) -> None:
    """Before the first epoch that runs (``start_epoch`` > 1 when resuming)."""

  def on_steps_end(self, steps: int) -> None:
    """After ``steps`` more mini-batches of the current epoch."""

  def on_epoch_end(self, epoch: int, state: TrainState, record: dict[str, Any]) -> None:
    """After epoch ``epoch`` (its ``record`` of metrics); may add entries to ``record``."""

  def on_train_end(self) -> None:
    """After the last epoch, or when training stops with an error."""


def steps_per_epoch(config: ExperimentConfig, train_size: int) -> int:
  steps = train_size // config.batch_size
  if steps < 1:
    raise ValueError(f"batch_size {config.batch_size} exceeds the {train_size} training examples "
                     f"of {config.name!r}")
  return steps


def programs_for(config: ExperimentConfig, num_classes: int, train_size: int) -> Programs:
  """:func:`hw.engine.steps.compile_programs` for ``config`` on a training split of
  ``train_size`` examples of ``num_classes`` classes."""
  return compile_programs(config, num_classes, steps_per_epoch(config, train_size))


def check_programs(programs: Programs, config: ExperimentConfig, train_size: int) -> None:
  """Raise ValueError unless ``programs`` were compiled for ``config`` and this training size."""
  expected = ProgramKey.of(config, programs.key.num_classes, steps_per_epoch(config, train_size))
  if programs.key != expected:
    differ = ", ".join(f"{field} {have!r} != {want!r}" for field, have, want
                       in zip(ProgramKey._fields, programs.key, expected) if have != want)
    raise ValueError(f"programs were compiled for another configuration or training size than "
                     f"{config.name!r} ({differ}); compile them with programs_for(config, "
                     f"num_classes, train_size)")


def init_state(config: ExperimentConfig, programs: Programs, sample: jax.Array) -> TrainState:
  """Initial parameters (from :func:`hw.engine.randomness.init_key`) and optimiser state."""
  key = randomness.init_key(config.seed)
  variables = programs.init({"params": key, "dropout": key}, sample[:config.batch_size])
  tx = update_rules.make_optimizer(config, steps_per_epoch(config, sample.shape[0]))
  return TrainState(params=variables["params"], batch_stats=variables.get("batch_stats", {}),
                    opt_state=tx.init(variables["params"]))


def train_epoch(state: TrainState, programs: Programs, split: DeviceSplit, *, seed: int,
                epoch: int, batch_size: int,
                hooks: Sequence[Hook] = ()) -> tuple[TrainState, float, float]:
  """One epoch of steps; returns (state, mean training loss, training accuracy)."""
  steps = split.size // batch_size
  batch_index, keys = randomness.epoch_plan(seed, epoch, split.size, steps, batch_size)
  stride = 1 if programs.per_batch else CHUNK_STEPS
  one_at_a_time = backends.one_step_at_a_time(programs.device_count)
  losses, corrects = [], []
  for start in range(0, steps, stride):
    stop = min(start + stride, steps)
    if programs.per_batch:
      state, loss, correct = programs.step(state, split.images, split.labels,
                                           *programs.feed(batch_index[start], keys[start]))
    else:
      state, loss, correct = programs.chunk(state, split.images, split.labels,
                                            *programs.feed(batch_index[start:stop],
                                                           keys[start:stop]))
    if one_at_a_time:  # a CPU mesh: see hw.backends (steps in flight deadlock)
      loss.block_until_ready()
    losses.append(loss)
    corrects.append(correct)
    for hook in hooks:
      hook.on_steps_end(stop - start)
  if programs.per_batch:  # one float64 sum over the epoch; a scan sums per chunk
    losses, corrects = [np.asarray(losses)], [np.asarray(corrects)]
  return state, _total(losses) / steps, _total(corrects) / (steps * batch_size)


def _total(parts: Sequence[Any]) -> float:
  return sum(float(np.sum(np.asarray(part, np.float64))) for part in parts)


def place(programs: Programs, split: DeviceSplit) -> DeviceSplit:
  """``split`` on the devices ``programs`` run on (replicated over a data-parallel mesh,
  which may span several processes)."""
  if programs.mesh is None:
    return split
  images, labels = programs.place((split.images, split.labels))
  return DeviceSplit(images, labels, split.size)


def evaluate(state: TrainState, programs: Programs, split: DeviceSplit) -> tuple[float, float]:
  """(mean loss, accuracy) of the model in inference mode over ``split``."""
  loss, accuracy, _ = evaluate_with_top_k(state, programs, split)
  return loss, accuracy


def evaluate_with_top_k(state: TrainState, programs: Programs,
                        split: DeviceSplit) -> tuple[float, float, dict[str, float]]:
  """(mean loss, accuracy, ``{"top1_error": …, "top5_error": …}``) of the model in
  inference mode over ``split``, in one pass. The top-k errors are those of
  :func:`hw.metrics.top_k_error` (a tie with the k-th score counts as a hit; a binary
  classifier's one score s counts as the scores (0, s): top-1 only), for each k of
  :data:`hw.metrics.TOP_K` up to the number of classes."""
  split = place(programs, split)
  loss, accuracy, errors = programs.evaluate(programs.place(state.variables()), split.images,
                                             split.labels, split.size)
  return float(loss), float(accuracy), {name: float(value) for name, value in errors.items()}


def train(config: ExperimentConfig, data: TrainingData, *, programs: Programs,
          state: TrainState | None = None, history: Sequence[Mapping[str, Any]] = (),
          hooks: Sequence[Hook] = ()) -> tuple[TrainState, list[dict[str, Any]]]:
  """Train from ``state`` (fresh when None) after ``len(history)`` finished epochs up to
  ``config.epochs`` with ``programs`` (:func:`programs_for`); returns the final state and one
  metrics record per epoch. Trains data parallel over ``config.devices`` local devices
  (None: all; see :mod:`hw.engine.steps`).

  Raises:
    TrainingDiverged: a non-finite training or validation loss (before the epoch's hooks).
    ValueError: ``programs`` were compiled for another configuration or training size.
  """
  check_programs(programs, config, data.train.size)
  host_memory.keep_freed_memory_on(backends.name())
  steps = steps_per_epoch(config, data.train.size)
  if state is None:
    state = init_state(config, programs, data.train.images)
  state = programs.place(state)
  data = TrainingData(place(programs, data.train), place(programs, data.validation))
  history = [dict(record) for record in history]
  for hook in hooks:
    hook.on_train_begin(start_epoch=len(history) + 1, epochs=config.epochs, steps_per_epoch=steps)
  try:
    for epoch in range(len(history) + 1, config.epochs + 1):
      began = time.perf_counter()
      state, train_loss, train_accuracy = train_epoch(
          state, programs, data.train, seed=config.seed, epoch=epoch,
          batch_size=config.batch_size, hooks=hooks)
      val_loss, val_accuracy = evaluate(state, programs, data.validation)
      rate = update_rules.epoch_learning_rate(config, steps, epoch)
      if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
        raise TrainingDiverged(
            f"the loss became non-finite in epoch {epoch} (train loss {train_loss}, validation "
            f"loss {val_loss}) at learning rate {rate:g}", epoch=epoch)
      record = {"epoch": epoch, "learning_rate": rate, "train_loss": train_loss,
                "train_accuracy": train_accuracy, "val_loss": val_loss,
                "val_accuracy": val_accuracy, "seconds": time.perf_counter() - began}
      for hook in hooks:
        hook.on_epoch_end(epoch, state, record)
      history.append(record)
  finally:
    for hook in hooks:
      hook.on_train_end()
  return state, history
