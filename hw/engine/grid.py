"""The grid step of an experiment: every point of ``config.grid`` trained on the training
split, each resuming from its per-epoch checkpoint; a point whose loss diverges is recorded
as diverged and left out of the selection."""
from __future__ import annotations

import dataclasses
import itertools
import pathlib
from typing import Any, Callable, Mapping, Sequence

import jax

from hw.engine import checkpoint, loop
from hw.engine.config import ExperimentConfig, fingerprint
from hw.engine.experiment_data import DeviceSplit, Splits
from hw.engine.metrics_log import MetricsLog
from hw.engine.progress import Console
from hw.engine.results import GridPoint, plain
from hw.engine.runtime import Runtime
from hw.engine.steps import ProgramCache, Programs, TrainState


def grid_points(config: ExperimentConfig) -> list[dict[str, Any]]:
  """Every combination of ``config.grid`` values, in order (one empty point without a grid).

  ``config.grid`` may also be a list of points (dicts of field → value), taken as given:
  for variants that differ in several fields at once.
  """
  if isinstance(config.grid, (list, tuple)):
    if not config.grid or not all(isinstance(point, dict) for point in config.grid):
      raise ValueError(f"grid of {config.name!r} must be a mapping of field -> values or a "
                       f"non-empty list of points (dicts), got {config.grid!r}")
    return [dict(point) for point in config.grid]
  for name, values in config.grid.items():
    if not isinstance(values, (list, tuple)) or not values:
      raise ValueError(f"grid[{name!r}] of {config.name!r} must be a non-empty list, "
                       f"got {values!r}")
  names = list(config.grid)
  return [dict(zip(names, values)) for values in itertools.product(*config.grid.values())]


def point_config(config: ExperimentConfig, point: Mapping[str, Any]) -> ExperimentConfig:
  return config.replace(**point).replace(grid={})


def point_label(point: Mapping[str, Any]) -> str:
  return ", ".join(f"{k}={plain(v)}" for k, v in point.items()) or "(single point)"


def select(points: Sequence[GridPoint]) -> int | None:
  """Index of the best final validation accuracy (ties: lower validation loss, then first),
  among the points that did not diverge; None when all did."""
  usable = [i for i, point in enumerate(points) if point.status == "complete"]
  if not usable:
    return None
  return min(usable, key=lambda i: (-points[i].val_accuracy, points[i].val_loss, i))


class Checkpoints(loop.Hook):
  """Writes the state and history after every epoch (atomically; see :mod:`hw.engine.checkpoint`)."""

  def __init__(self, directory: pathlib.Path, point_fingerprint: str, history: list[dict]):
    self.directory, self.fingerprint, self.history = directory, point_fingerprint, history

  def on_epoch_end(self, epoch: int, state: TrainState, record: dict[str, Any]) -> None:
    self.history.append(record)
    checkpoint.save(self.directory, state=state, epoch=epoch, history=self.history,
                    fingerprint=self.fingerprint)


class _Callback(loop.Hook):
  def __init__(self, index: int, callback):
    self.index, self.callback = index, callback

  def on_epoch_end(self, epoch: int, state: TrainState, record: dict[str, Any]) -> None:
    self.callback(self.index, epoch, record)


def train_point(config: ExperimentConfig, data: loop.TrainingData, programs: Programs,
                directory: pathlib.Path, *, data_identity: str = "",
                hooks: Sequence[loop.Hook] = (), log_name: str = "",
                runtime: Runtime | None = None) -> tuple[TrainState, list[dict[str, Any]]]:
  """Train one configuration for ``config.epochs`` epochs with ``programs``, resuming from
  its checkpoint in ``directory`` when it holds one of the same fingerprint (with several
  processes: process 0's checkpoint, read by it alone); returns the final state and the
  per-epoch history."""
  runtime = Runtime.current() if runtime is None else runtime
  point_fingerprint = fingerprint(config, data_identity=data_identity)
  state = loop.init_state(config, programs, data.train.images)
  history: list[dict[str, Any]] = []
  restored = checkpoint.restore(runtime.from_writer(lambda: checkpoint.read(directory)),
                                directory / checkpoint.FILENAME, target=jax.device_get(state),
                                fingerprint=point_fingerprint)
  if restored is not None:
    saved_state, saved_epoch, saved_history = restored
    if saved_epoch <= config.epochs:
      state = jax.tree_util.tree_map(jax.numpy.asarray, saved_state)
      history = saved_history
      if saved_epoch:
        print(f"[train] {log_name}: resuming after epoch {saved_epoch} from {directory}")
    else:
      print(f"[train] {log_name}: checkpoint has {saved_epoch} > {config.epochs} epochs; "
            f"starting afresh")
  if runtime.writer:
    hooks = [Checkpoints(directory, point_fingerprint, list(history)), *hooks]
  state, history = loop.train(config, data, programs=programs, state=state, history=history,
                              hooks=hooks)
  return state, history


@dataclasses.dataclass
class GridRun:
  """What the grid step gives: every point, and the selected point's model (kept alone in
  memory while the grid trains)."""
  points: list[GridPoint]
  best: tuple[TrainState, Programs] | None
  stepping: str | None  # "per_batch" or "scan", of the last point that trained
  device_count: int


def run_grid(config: ExperimentConfig, splits: Splits, data: loop.TrainingData,
             test: Callable[[], DeviceSplit], workdir: pathlib.Path, *, compiled: ProgramCache,
             runtime: Runtime, console: Console, hooks: Sequence[loop.Hook] = (),
             on_epoch_end: Callable[[int, int, dict], None] | None = None) -> GridRun:
  """Train every grid point (checkpoints in ``workdir/checkpoints/<name>/<point>-<fingerprint>``,
  one line per epoch in ``workdir/<name>.metrics.jsonl``); the points of
  ``config.also_test`` are also evaluated on ``test()`` (the test split on the device),
  beside the selected one."""
  run = GridRun([], None, None, 1)
  for index, point in enumerate(grid_points(config)):
    run_config = point_config(config, point)
    label = point_label(point)
    run_fingerprint = fingerprint(run_config, data_identity=splits.identity)
    directory = workdir / "checkpoints" / config.name / f"{index:02d}-{run_fingerprint}"
    name = f"{config.name} [{index}] {label}"
    point_hooks = [*console.hooks(name, run_config.epochs), *hooks]
    if runtime.writer:
      point_hooks.append(MetricsLog(
          workdir / f"{config.name}.metrics.jsonl", checkpoint_dir=directory,
          experiment=config.name, point=index, params=plain(point), label=label,
          fingerprint=fingerprint(config, whole_experiment=True, data_identity=splits.identity),
          seed=run_config.seed, point_fingerprint=run_fingerprint))
    if on_epoch_end is not None:
      point_hooks.append(_Callback(index, on_epoch_end))
    where = (index, plain(point), label, str(directory))
    try:
      programs = compiled.get(run_config, splits.num_classes,
                              loop.steps_per_epoch(run_config, data.train.size))
      state, history = train_point(run_config, data, programs, directory,
                                   data_identity=splits.identity, hooks=point_hooks,
                                   log_name=name, runtime=runtime)
    except loop.TrainingDiverged as error:
      kept = (f"the last good checkpoint (epoch {error.epoch - 1}) is kept in {directory}"
              if error.epoch > 1 else "no epoch completed, so there is no checkpoint")
      message = (f"experiment {config.name!r}, grid point {index} ({label}): {error}; {kept}. "
                 f"Lower the learning rate or the weight scale.")
      print(f"[train] {message}")
      run.points.append(GridPoint.diverged(*where, message=message, epochs=error.epoch - 1))
      continue
    run.stepping = "per_batch" if programs.per_batch else "scan"
    run.device_count = programs.device_count
    run.points.append(GridPoint.complete(*where, history=history))
    if index in config.also_test:  # reported beside the selected one, not used to select
      _, accuracy, errors = loop.evaluate_with_top_k(state, programs, test())
      run.points[-1].test_accuracy = accuracy
      run.points[-1].top1_error = errors["top1_error"]
      run.points[-1].top5_error = errors.get("top5_error")
    if select(run.points) == index:
      run.best = (state, programs)  # keep only the current best model in memory
  return run
