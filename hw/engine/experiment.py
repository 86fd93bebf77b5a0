"""One experiment: a grid of training runs, selection on validation, one test evaluation.

``train_and_evaluate(config, workdir)`` trains every point of ``config.grid`` on the
training split (each resuming from its per-epoch checkpoint), selects the point with the
best final validation accuracy, evaluates that model once on the test split and writes
``<workdir>/<name>.json`` (schema in :func:`results_record`) and ``<name>.png``; while it
trains, ``<name>.metrics.jsonl`` gets one line per epoch. A grid
point whose loss diverges is recorded as diverged and left out of the selection.
"""
from __future__ import annotations

import itertools
import json
import os
import pathlib
import platform
import time
from typing import Any, Mapping, Sequence

import flax
import jax
import numpy as np
import optax

from hw.engine import checkpoint, distributed, files, randomness
from hw.engine import loop
from hw.engine.config import ExperimentConfig, fingerprint
from hw.engine.experiment_data import Splits, load_splits, normalization, to_device
from hw.engine.figures import FIGURES
from hw.engine.metrics_log import MetricsLog
from hw.engine.progress import Console
from hw.engine.steps import ProgramCache, Programs, TrainState, device_count


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


def plain(value: Any) -> Any:
  """JSON-friendly (tuples become lists)."""
  return json.loads(json.dumps(value, default=str))


def select(points: Sequence[Mapping[str, Any]]) -> int | None:
  """Index of the best final validation accuracy (ties: lower validation loss, then first),
  among the points that did not diverge; None when all did."""
  usable = [i for i, point in enumerate(points) if point.get("status", "complete") == "complete"]
  if not usable:
    return None
  return min(usable, key=lambda i: (-points[i]["val_accuracy"], points[i]["val_loss"], i))


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
                hooks: Sequence[loop.Hook] = (),
                log_name: str = "") -> tuple[TrainState, list[dict[str, Any]]]:
  """Train one configuration for ``config.epochs`` epochs with ``programs``, resuming from
  its checkpoint in ``directory`` when it holds one of the same fingerprint; returns the
  final state and the per-epoch history."""
  point_fingerprint = fingerprint(config, data_identity=data_identity)
  state = loop.init_state(config, programs, data.train.images)
  history: list[dict[str, Any]] = []
  restored = _restore(directory, jax.device_get(state), point_fingerprint)
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
  if distributed.is_writer():
    hooks = [Checkpoints(directory, point_fingerprint, list(history)), *hooks]
  state, history = loop.train(config, data, programs=programs, state=state, history=history,
                              hooks=hooks)
  return state, history


def _restore(directory: pathlib.Path, target: Any, point_fingerprint: str):
  """:func:`hw.engine.checkpoint.load`; with several processes, process 0's checkpoint (read by
  it alone) restored on every process, so that all resume from the same epoch."""
  if distributed.process_count() == 1:
    return checkpoint.load(directory, target=target, fingerprint=point_fingerprint)
  data = distributed.broadcast_bytes(checkpoint.read(directory) if distributed.is_writer()
                                     else None)
  return checkpoint.restore(data, directory / checkpoint.FILENAME, target=target,
                            fingerprint=point_fingerprint)


def train_and_evaluate(config: ExperimentConfig, workdir: str | os.PathLike, *,
                       splits: Splits | None = None, data_dir: str | os.PathLike | None = None,
                       binary_data: str | os.PathLike | None = None, on_epoch_end=None,
                       hooks: Sequence[loop.Hook] = (), console: Console = Console(),
                       plot: bool = True, compiled: ProgramCache | None = None) -> dict[str, Any]:
  """Run the grid, select on validation, evaluate the selected model once on test.

  Args:
    config: the experiment; ``config.grid`` maps a field (or ``model.<kwarg>``) to values.
    workdir: results go to ``workdir/<name>.json`` and ``<name>.png``; checkpoints to
      ``workdir/checkpoints/<name>/<point>-<fingerprint>/``.
    splits: arrays to use instead of loading ``config.dataset`` (tests, notebooks).
    data_dir, binary_data: passed to :func:`hw.engine.experiment_data.load_splits`.
    on_epoch_end: called as ``callback(point_index, epoch, record)`` after each epoch's
      checkpoint is written (raise from it to simulate an interruption).
    hooks: more training hooks, for every grid point.
    console: progress display.
    plot: write the learning-curve PNG.
    compiled: the programs compiled so far, to reuse (default: a new cache for this call).

  Returns:
    The results dict that is written as JSON.

  With several processes (:mod:`hw.engine.distributed`) every process trains and evaluates the
  same and returns the same results; only process 0 writes files.

  Raises:
    TrainingDiverged: every grid point diverged (no results are written).
    hw.engine.distributed.ProcessesDisagree: the processes of a multi-process run hold different
      configurations, data or device counts (all of them raise it, before training).
  """
  began = time.perf_counter()
  workdir = pathlib.Path(workdir)
  writer = distributed.is_writer()  # several processes: only process 0 writes files
  if writer:
    workdir.mkdir(parents=True, exist_ok=True)
  if splits is None:
    failure = None
    try:
      splits = load_splits(config, data_dir=data_dir, binary_data=binary_data)
    except Exception as error:  # several processes: all stop if one cannot load the data
      failure = error
    distributed.together(failure, f"loading the data of {config.name!r}")
  if distributed.process_count() > 1:  # the same run everywhere, or all stop here
    distributed.agree(
        f"{fingerprint(config, whole_experiment=True, data_identity=splits.identity)} "
        f"{[device_count(point_config(config, point)) for point in grid_points(config)]}",
        f"the configuration, data or device count of {config.name!r}")
  compiled = ProgramCache() if compiled is None else compiled
  pad = config.eval_batch_size
  normalize = normalization(config.normalize, splits.train)
  data = loop.TrainingData(to_device(splits.train, normalize, 1),
                           to_device(splits.validation, normalize, pad))
  grid, best_run, stepping, device_count = [], None, None, 1
  for index, point in enumerate(grid_points(config)):
    run_config = point_config(config, point)
    label = point_label(point)
    run_fingerprint = fingerprint(run_config, data_identity=splits.identity)
    directory = workdir / "checkpoints" / config.name / f"{index:02d}-{run_fingerprint}"
    name = f"{config.name} [{index}] {label}"
    point_hooks = [*console.hooks(name, run_config.epochs), *hooks]
    if writer:
      point_hooks.append(MetricsLog(workdir / f"{config.name}.metrics.jsonl", point=index,
                                    label=label))
    if on_epoch_end is not None:
      point_hooks.append(_Callback(index, on_epoch_end))
    entry = {"index": index, "params": plain(point), "label": label, "checkpoint": str(directory)}
    try:
      programs = compiled.get(run_config, splits.num_classes,
                              loop.steps_per_epoch(run_config, data.train.size))
      state, history = train_point(run_config, data, programs, directory,
                                   data_identity=splits.identity, hooks=point_hooks,
                                   log_name=name)
    except loop.TrainingDiverged as error:
      kept = (f"the last good checkpoint (epoch {error.epoch - 1}) is kept in {directory}"
              if error.epoch > 1 else "no epoch completed, so there is no checkpoint")
      message = (f"experiment {config.name!r}, grid point {index} ({label}): {error}; {kept}. "
                 f"Lower the learning rate or the weight scale.")
      print(f"[train] {message}")
      grid.append({**entry, "status": "diverged", "message": message, "epochs": error.epoch - 1,
                   "val_accuracy": None, "val_loss": None, "train_accuracy": None,
                   "train_loss": None, "train_seconds": None, "history": []})
      continue
    stepping = "per_batch" if programs.per_batch else "scan"
    device_count = programs.device_count
    final = history[-1]
    grid.append({**entry, "status": "complete", "epochs": len(history),
                 **{key: final[key] for key in ("val_accuracy", "val_loss", "train_accuracy",
                                                "train_loss")},
                 "train_seconds": sum(r["seconds"] for r in history), "history": history})
    if index in config.also_test:  # reported beside the selected one, not used to select
      _, grid[-1]["test_accuracy"], errors = loop.evaluate_with_top_k(
          state, programs, to_device(splits.test, normalize, pad))
      grid[-1].update(errors)
    if select(grid) == index:
      best_run = (state, programs)  # keep only the current best model in memory
  best = select(grid)
  if best is None:
    raise loop.TrainingDiverged("; ".join(point["message"] for point in grid),
                                epoch=grid[-1]["epochs"] + 1)
  state, programs = best_run
  test_loss, test_accuracy, errors = loop.evaluate_with_top_k(
      state, programs, to_device(splits.test, normalize, pad))
  results = results_record(config, splits, grid, best, test_loss, test_accuracy,
                           wall=time.perf_counter() - began, stepping=stepping,
                           device_count=device_count)
  results.update(errors)
  if config.repeat_seeds:
    results["seeds"] = _repeat(config, workdir, splits, results, console, compiled)
  if plot:
    results["figures"] = [f"{config.name}.png"]
    for figure in config.figures:
      if writer:
        FIGURES[figure](jax.device_get(state.params), workdir / f"{config.name}_{figure}.png")
      results["figures"].append(f"{config.name}_{figure}.png")
  if not writer:
    return results
  write_json(workdir / f"{config.name}.json", results)
  if plot:
    from experiments import report
    report.plot_learning_curves(results, workdir / f"{config.name}.png")
  return results


def _repeat(config: ExperimentConfig, workdir: pathlib.Path, splits: Splits,
            results: Mapping[str, Any], console: Console,
            compiled: ProgramCache) -> dict[str, Any]:
  """The whole experiment (grid, selection, test) again for each of ``config.repeat_seeds``;
  the test accuracy of every seed and their mean, standard deviation and range."""
  seeds, accuracies = [config.seed], [results["test_accuracy"]]
  for seed in config.repeat_seeds:
    if seed in seeds:
      continue
    again = train_and_evaluate(config.replace(seed=seed, repeat_seeds=()),
                               workdir / "seeds" / f"seed{seed}", splits=splits,
                               console=console, plot=False, compiled=compiled)
    seeds.append(seed)
    accuracies.append(again["test_accuracy"])
  return {"seeds": seeds, "test_accuracy": accuracies, "mean": float(np.mean(accuracies)),
          "std": float(np.std(accuracies)), "min": min(accuracies), "max": max(accuracies)}


def write_json(path: pathlib.Path, payload: Any) -> None:
  """Write JSON atomically (:func:`hw.engine.files.write_atomic`)."""
  files.write_atomic(path, json.dumps(payload, indent=1))


def results_record(config: ExperimentConfig, splits: Splits, grid: list[dict[str, Any]],
                   best: int, test_loss: float, test_accuracy: float, *, wall: float,
                   stepping: str | None, device_count: int = 1) -> dict[str, Any]:
  """The results JSON.

  Schema: name, title, status ("complete"), config (ExperimentConfig as a dict),
  fingerprint, data {source, identity, stand_in, notes (caveats such as lossy pixels; only
  when there are some),
  num_classes, train, validation, test (sizes)}, grid
  (one entry per point: index, params, label, status ("complete" or "diverged", with a
  message), epochs, final val/train accuracy and loss, train_seconds, history [per-epoch:
  epoch, learning_rate, train_loss, train_accuracy, val_loss, val_accuracy, seconds],
  checkpoint), selected {index, params, label, val_accuracy}, test_accuracy, test_loss,
  target, reported, meets_target (None without a target or on stand-in data), top1_error
  and top5_error (of the selected model on test; top-5 only with ≥ 5 classes; grid points listed in
  ``config.also_test`` carry their own test_accuracy and errors), seeds (with
  ``repeat_seeds``: {seeds, test_accuracy per seed, mean, std, min, max}), train_seconds (sum over all points and epochs, across
  resumptions), wall_time_s (this call), seconds_per_epoch (median over all epochs),
  platform (backend, device, device_count (devices the batches were split over, in all
  processes), process_count,
  PRNG implementation, stepping, versions).
  """
  seconds = [r["seconds"] for point in grid for r in point["history"]]
  selected = grid[best]
  return {
      "name": config.name, "title": config.title, "status": "complete",
      "config": plain(config.to_dict()),
      "fingerprint": fingerprint(config, whole_experiment=True, data_identity=splits.identity),
      "data": {"source": splits.source, "identity": splits.identity, "stand_in": splits.stand_in,
               **({"notes": list(splits.notes)} if splits.notes else {}),
               "num_classes": splits.num_classes, "train": len(splits.train.labels),
               "validation": len(splits.validation.labels), "test": len(splits.test.labels)},
      "grid": grid,
      "selected": {"index": best, "params": selected["params"], "label": selected["label"],
                   "val_accuracy": selected["val_accuracy"]},
      "test_accuracy": test_accuracy, "test_loss": test_loss,
      "target": config.target, "reported": list(config.reported),
      "meets_target": (None if config.target is None or splits.stand_in
                       else bool(test_accuracy >= config.target)),
      "train_seconds": sum(seconds),
      "wall_time_s": wall,
      "seconds_per_epoch": float(np.median(seconds)) if seconds else None,
      "platform": {"backend": jax.default_backend(), "device": str(jax.devices()[0]),
                   "device_count": device_count, "process_count": jax.process_count(),
                   "prng_impl": randomness.PRNG_IMPL, "stepping": stepping,
                   "jax": jax.__version__, "flax": flax.__version__, "optax": optax.__version__,
                   "python": platform.python_version(), "machine": platform.machine(),
                   "cpus": os.cpu_count()},
  }
