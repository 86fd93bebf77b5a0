"""One experiment: a grid of training runs, selection on validation, one test evaluation.

``train_and_evaluate(config, workdir)`` runs five named steps:

1. :func:`load_data`: the splits (the same in every process, or all stop);
2. :func:`hw.engine.grid.run_grid`: every point of ``config.grid`` trained on the training
   split, each resuming from its per-epoch checkpoint (``<name>.metrics.jsonl`` gets one
   line per epoch); a point whose loss diverges is recorded and left out;
3. :func:`hw.engine.grid.select`: the point with the best final validation accuracy;
4. :func:`test_selected`: that model evaluated once on the test split;
5. :func:`write`: ``<workdir>/<name>.json`` (a :class:`hw.engine.results.Results`) and the
   figures, by process 0 only.
"""
from __future__ import annotations

import os
import pathlib
import time
from typing import Any, Callable, Sequence

import jax
import numpy as np

from hw.engine import loop
from hw.engine.config import ExperimentConfig, fingerprint
from hw.engine.experiment_data import DeviceSplit, Splits, load_splits, normalization, to_device
from hw.engine.figures import FIGURES, plot_learning_curves
from hw.engine.grid import GridRun, grid_points, point_config, run_grid, select
from hw.engine.progress import Console
from hw.engine.results import (SCHEMA_VERSION, DataSummary, Platform, Results, SeedSpread,
                               Selection, plain, write_json)
from hw.engine.runtime import Runtime
from hw.engine.steps import ProgramCache, Programs, TrainState, device_count

__all__ = ["grid_points", "load_data", "plain", "point_config", "test_selected",
           "train_and_evaluate", "write", "write_json"]


def train_and_evaluate(config: ExperimentConfig, workdir: str | os.PathLike, *,
                       splits: Splits | None = None, data_dir: str | os.PathLike | None = None,
                       binary_data: str | os.PathLike | None = None,
                       on_epoch_end: Callable[[int, int, dict], None] | None = None,
                       hooks: Sequence[loop.Hook] = (), console: Console = Console(),
                       plot: bool = True, compiled: ProgramCache | None = None) -> Results:
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
    The results, as written to ``<name>.json``.

  With several processes every process trains and evaluates the same and returns the same
  results; only process 0 writes files (:class:`hw.engine.runtime.Runtime`).

  Raises:
    TrainingDiverged: every grid point diverged (no results are written).
    hw.engine.distributed.ProcessesDisagree: the processes of a multi-process run hold different
      configurations, data or device counts (all of them raise it, before training).
  """
  began = time.perf_counter()
  workdir, runtime = pathlib.Path(workdir), Runtime.current()
  compiled = ProgramCache() if compiled is None else compiled
  if runtime.writer:
    workdir.mkdir(parents=True, exist_ok=True)
  if splits is None:
    splits = load_data(config, runtime, data_dir=data_dir, binary_data=binary_data)
  runtime.agree(  # the same run everywhere, or all stop here
      f"{fingerprint(config, whole_experiment=True, data_identity=splits.identity)} "
      f"{[device_count(point_config(config, point)) for point in grid_points(config)]}",
      f"the configuration, data or device count of {config.name!r}")
  normalize = normalization(config.normalize, splits.train)
  to_test = lambda: to_device(splits.test, normalize, config.eval_batch_size)
  data = loop.TrainingData(to_device(splits.train, normalize, 1),
                           to_device(splits.validation, normalize, config.eval_batch_size))
  grid = run_grid(config, splits, data, to_test, workdir, compiled=compiled, runtime=runtime,
                  console=console, hooks=hooks, on_epoch_end=on_epoch_end)
  best = select(grid.points)
  if best is None:
    raise loop.TrainingDiverged("; ".join(point.message for point in grid.points),
                                epoch=grid.points[-1].epochs + 1)
  state, programs = grid.best
  test_loss, test_accuracy, errors = test_selected(state, programs, to_test())
  results = record(config, splits, grid, best, test_loss, test_accuracy, errors,
                   wall=time.perf_counter() - began)
  if config.repeat_seeds:
    results.seeds = _repeat(config, workdir, splits, results, console, compiled)
  if plot:
    results.figures = [f"{config.name}.png", *(f"{config.name}_{f}.png" for f in config.figures)]
  if runtime.writer:
    write(results, config, workdir, params=jax.device_get(state.params) if plot else None)
  return results


def load_data(config: ExperimentConfig, runtime: Runtime, *,
              data_dir: str | os.PathLike | None = None,
              binary_data: str | os.PathLike | None = None) -> Splits:
  """:func:`hw.engine.experiment_data.load_splits`; with several processes, all stop when
  one cannot load the data."""
  return runtime.together(
      lambda: load_splits(config, data_dir=data_dir, binary_data=binary_data),
      f"loading the data of {config.name!r}")


def test_selected(state: TrainState, programs: Programs,
                  test: DeviceSplit) -> tuple[float, float, dict[str, float]]:
  """(loss, accuracy, top-k errors) of the selected model on the test split: the one
  test evaluation of the experiment."""
  return loop.evaluate_with_top_k(state, programs, test)


def record(config: ExperimentConfig, splits: Splits, grid: GridRun, best: int,
           test_loss: float, test_accuracy: float, errors: dict[str, float], *,
           wall: float) -> Results:
  """The :class:`hw.engine.results.Results` of a finished grid and test evaluation."""
  seconds = [r["seconds"] for point in grid.points for r in point.history]
  selected = grid.points[best]
  return Results(
      schema_version=SCHEMA_VERSION, name=config.name, title=config.title, status="complete",
      config=plain(config.to_dict()),
      fingerprint=fingerprint(config, whole_experiment=True, data_identity=splits.identity),
      data=DataSummary.of(splits), grid=grid.points,
      selected=Selection(best, selected.params, selected.label, selected.val_accuracy),
      test_accuracy=test_accuracy, test_loss=test_loss, target=config.target,
      reported=list(config.reported),
      meets_target=(None if config.target is None or splits.stand_in
                    else bool(test_accuracy >= config.target)),
      train_seconds=sum(seconds), wall_time_s=wall,
      seconds_per_epoch=float(np.median(seconds)) if seconds else None,
      platform=Platform.here(stepping=grid.stepping, device_count=grid.device_count),
      top1_error=errors.get("top1_error"), top5_error=errors.get("top5_error"))


def write(results: Results, config: ExperimentConfig, workdir: pathlib.Path, *,
          params: Any = None) -> None:
  """``<name>.json``; with the selected model's ``params``, also the learning curves
  ``<name>.png`` and ``config.figures`` drawn from the model."""
  if params is not None:
    for figure in config.figures:
      FIGURES[figure](params, workdir / f"{config.name}_{figure}.png")
  payload = results.to_json()
  write_json(workdir / f"{config.name}.json", payload)
  if params is not None:
    plot_learning_curves(payload, workdir / f"{config.name}.png")


def _repeat(config: ExperimentConfig, workdir: pathlib.Path, splits: Splits, results: Results,
            console: Console, compiled: ProgramCache) -> SeedSpread:
  """The whole experiment (grid, selection, test) again for each of ``config.repeat_seeds``;
  the test accuracy of every seed and their mean, standard deviation and range."""
  seeds, accuracies = [config.seed], [results.test_accuracy]
  for seed in config.repeat_seeds:
    if seed in seeds:
      continue
    again = train_and_evaluate(config.replace(seed=seed, repeat_seeds=()),
                               workdir / "seeds" / f"seed{seed}", splits=splits,
                               console=console, plot=False, compiled=compiled)
    seeds.append(seed)
    accuracies.append(again.test_accuracy)
  return SeedSpread(seeds, accuracies, float(np.mean(accuracies)), float(np.std(accuracies)),
                    min(accuracies), max(accuracies))
