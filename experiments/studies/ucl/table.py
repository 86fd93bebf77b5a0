"""Running the UCL study's table: the setups each model is searched under, runs grouped by
model, epochs and reduction, trained on worker threads, cut into the reported cells and
scored; the rule that chooses each model's setup.

Speed:

- ``UclConfig.workers`` (2) Python threads train groups concurrently, longest first (a
  group's result does not depend on what runs beside it).
- a run is a pure function of (model, learning rate, seed, reduction): its first E epochs
  do not depend on how many follow. So a setting whose (model, learning rate) another
  setting repeats with more epochs is read off the longer run at epoch E (model 3
  settings 1/2 at lr 0.003, model 4 settings 2/3 at lr 0.001), which is exactly the run
  a separate training would give.
"""
from __future__ import annotations

import concurrent.futures
import statistics
import time
from typing import Any, Callable, Sequence

import numpy as np

from experiments.studies.ucl.analysis import (
  _at_or_before,
  _median_curve,
  blow_up,
  classify_fit,
  reproduces,
)
from experiments.studies.ucl.models import scanned, symmetry_problem
from experiments.studies.ucl.settings import Member, Setting, Setup, UclConfig
from experiments.studies.ucl.training import StudyData, train_members

# --------------------------------------------------------------------------- table

def _groups(settings: Sequence[Setting]) -> dict[tuple[int, int], list[tuple[float, list[int]]]]:
  """{(model, epochs): [(learning rate, epochs of the cells it serves), ...]}: one run per
  (model, learning rate), as long as the longest setting that uses it."""
  runs: dict[tuple[int, float], list[int]] = {}
  for s in settings:
    runs.setdefault((s.model, s.learning_rate), []).append(s.epochs)
  groups: dict[tuple[int, int], list[tuple[float, list[int]]]] = {}
  for (model, lr), epochs in runs.items():
    groups.setdefault((model, max(epochs)), []).append((lr, sorted(epochs)))
  return dict(sorted(groups.items()))


def plan(config: UclConfig) -> dict[int, dict[str, Any]]:
  """{model: {"run": [Setup, ...], "refused": {Setup: reason}, "left_out": [Setup, ...]}}
  in search order (``config.initialisations`` × ``config.reductions``): what each model is
  trained under, what cannot train it (:func:`~experiments.studies.ucl.models.symmetry_problem`)
  and what ``config.left_out`` leaves out."""
  plans = {}
  for model in sorted({s.model for s in config.settings}):
    entry: dict[str, Any] = {"run": [], "refused": {}, "left_out": []}
    for init in config.initialisations:
      problem = symmetry_problem(model, init)
      for reduction in config.reductions:
        setup = Setup(init, reduction)
        if problem is not None:
          entry["refused"][setup] = problem
        elif (model, init, reduction) in config.left_out:
          entry["left_out"].append(setup)
        else:
          entry["run"].append(setup)
    plans[model] = entry
  return plans


# Relative cost of one member-step (MLPs vs the conv net, measured on the CPU) to order
# the groups longest first across the workers.
_STEP_COST = {1: 0.02, 2: 0.025, 3: 0.03, 4: 1.0}


def run_table(config: UclConfig, data: StudyData, *,
              log: Callable[[str], None] | None = None) -> dict[str, Any]:
  """Train every group; returns {"cells": [...], "timing": {...}}.

  A group is one model, number of epochs and reduction; ``config.workers`` Python threads
  train groups concurrently (XLA runs each group's programs on its own thread pool; the
  results do not depend on the order), longest first.
  """
  plans_size = int(data.train_labels.shape[0])
  spe_samples = (plans_size // config.batch_size) * config.batch_size
  runs: dict[tuple[int, float, int, str], dict[str, Any]] = {}
  timing: dict[str, Any] = {"groups": []}
  tasks = []
  plans = plan(config)
  for (model, epochs), lrs in _groups(config.settings).items():
    stops = sorted({e for _, cell_epochs in lrs for e in cell_epochs})
    for reduction in config.reductions:
      inits = [setup.init for setup in plans[model]["run"] if setup.reduction == reduction]
      # the MLPs' members of every initialisation share one vmapped program; the conv
      # net's are unrolled one per call anyway, so each initialisation is its own task
      # (finer tasks pack the two workers more evenly)
      for chunk in ([inits] if scanned(model) else [[init] for init in inits]):
        members = [Member(lr, seed, reduction, init) for init in chunk for lr, _ in lrs
                   for seed in config.seeds]
        if members:
          tasks.append((model, epochs, reduction, lrs, members, stops))
  tasks.sort(key=lambda t: -_STEP_COST[t[0]] * t[1] * len(t[4]))
  began = time.perf_counter()

  def train(task):
    model, epochs, reduction, lrs, members, stops = task
    if log:
      inits = list(dict.fromkeys(m.init for m in members))
      log(f"model {model}: {len(members)} runs × {epochs} epochs, reduction {reduction} "
          f"(learning rates {', '.join(f'{lr:g}' for lr, _ in lrs)}; seeds {list(config.seeds)}; "
          f"initialisations {', '.join(inits)})")
    start = time.perf_counter()
    curves = train_members(model, members, epochs, data, batch_size=config.batch_size,
                           eval_every=config.eval_every, eval_batch_size=config.eval_batch_size,
                           stops=stops, log=log)
    return {"model": model, "epochs": epochs, "reduction": reduction, "runs": len(members),
            "initialisations": list(dict.fromkeys(m.init for m in members)),
            "start_s": start - began, "end_s": time.perf_counter() - began}, members, curves

  workers = max(1, min(config.workers, len(tasks)))
  if workers == 1:
    done = [train(task) for task in tasks]
  else:
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
      done = list(pool.map(train, tasks))
  for record, members, curves in done:
    timing["groups"].append(record)
    for member, curve in zip(members, curves):
      runs[(record["model"], member.learning_rate, member.seed, member.reduction,
            member.init)] = curve
  cells = []
  for model, model_plan in plans.items():
    for init, reduction in model_plan["run"]:
      for s in [s for s in config.settings if s.model == model]:
        end = s.epochs * spe_samples
        seeds = []
        for seed in config.seeds:
          curve = runs[(s.model, s.learning_rate, seed, reduction, init)]
          keep = _at_or_before(curve["samples"], end) + 1
          cut = {key: curve[key][:keep] for key in
                 ("samples", "train_accuracy", "test_accuracy", "test_loss", "test_top5_error",
                  "train_loss")}
          within = lambda at: at if at is not None and at <= end else None  # noqa: E731
          seeds.append({"seed": seed, **cut, "diverged_at": within(curve["diverged_at"]),
                        "stopped_at": within(curve["stopped_at"]),
                        "blow_up": blow_up(cut["samples"], cut["train_loss"], cut["test_loss"],
                                           cut["test_accuracy"])})
        samples = seeds[0]["samples"]
        median = {key: _median_curve([sd[key] for sd in seeds])
                  for key in ("train_accuracy", "test_accuracy")}
        finals = [sd["test_accuracy"][-1] for sd in seeds]
        failed = sum(sd["diverged_at"] is not None or sd["blow_up"] is not None for sd in seeds)
        fit = classify_fit(samples, median["train_accuracy"], median["test_accuracy"],
                           samples_per_epoch=spe_samples, diverged=failed * 2 > len(seeds),
                           rising=config.rising, gap=config.gap, drop=config.drop,
                           underfit_below=config.underfit_below)
        cells.append({
            "model": s.model, "setting": s.setting, "reduction": reduction, "init": init,
            "epochs": s.epochs, "learning_rate": s.learning_rate, "reported": s.reported,
            "test_accuracy": float(statistics.median(finals)), "seeds": finals,
            "top1_error": 1 - float(statistics.median(finals)),
            "top5_error": float(statistics.median(sd["test_top5_error"][-1] for sd in seeds)),
            "seed_numbers": list(config.seeds),
            "train_accuracy": float(statistics.median(sd["train_accuracy"][-1] for sd in seeds)),
            "reproduces": reproduces(s.reported, finals,
                                     range_margin=config.reproduce_range_margin,
                                     median_margin=config.reproduce_median_margin),
            "fit": fit,
            "curves": {"samples": samples, "median": median, "seeds": seeds}})
  model4 = [g for g in timing["groups"] if g["model"] == 4]
  # model 4's groups ran from the first one's start to the last one's end (concurrently
  # with each other and, on another worker, perhaps with MLP groups)
  timing["model4_wall_s"] = (max(g["end_s"] for g in model4) - min(g["start_s"] for g in model4)
                             if model4 else 0.0)
  timing["workers"] = workers
  timing["samples_per_epoch"] = spe_samples
  timing["test_size"] = int(data.test_labels.shape[0])
  return {"cells": cells, "timing": timing}


def _score(cells: Sequence[dict[str, Any]]) -> dict[str, Any]:
  misses = [100 * abs(c["test_accuracy"] - c["reported"]) for c in cells]
  return {"reproduced": sum(c["reproduces"] for c in cells), "cells": len(cells),
          "mean_abs_miss_points": float(np.mean(misses)),
          "max_abs_miss_points": float(np.max(misses)),
          "per_model": {m: sum(c["reproduces"] for c in cells if c["model"] == m)
                        for m in sorted({c["model"] for c in cells})}}


def better_reduction(scores: dict[str, dict[str, Any]]) -> str:
  """The reduction with more reproduced cells; ties: the smaller mean |miss|."""
  return min(scores, key=lambda r: (-scores[r]["reproduced"], scores[r]["mean_abs_miss_points"]))


def setup_scores(cells: Sequence[dict[str, Any]],
                 plans: dict[int, dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
  """{model: [{"setup": Setup, **score}, ...]} for every setup the model ran, in search
  order; a score counts the model's reproduced cells under that setup (:func:`_score`)."""
  return {model: [{"setup": setup, **_score([c for c in cells if c["model"] == model
                                             and (c["init"], c["reduction"]) == setup])}
                  for setup in entry["run"]]
          for model, entry in plans.items() if entry["run"]}


def choose_setup(scores: Sequence[dict[str, Any]]) -> dict[str, Any]:
  """The rule that picks one model's setup: the most reproduced cells; on a tie the smaller
  mean |median − reported| over the model's cells; on a tie of both, the earlier setup in
  the search order (initialisations as listed, the coursework's Xavier-uniform first, then
  reductions as listed)."""
  if not scores:
    raise ValueError("`scores` must hold at least one setup's score, got none")
  return min(enumerate(scores), key=lambda pair: (-pair[1]["reproduced"],
                                                  pair[1]["mean_abs_miss_points"], pair[0]))[1]
