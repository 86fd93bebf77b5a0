"""The optimisers study: both parts, the JSON and the figures."""
from __future__ import annotations

import os
import time

import numpy as np

from experiments.studies import _common
from experiments.studies.optimizers.mlp import _plot_mlp, run_mlp
from experiments.studies.optimizers.settings import FULL, NAME, NAMES, QUICK, MlpSettings
from experiments.studies.optimizers.toy import (
  _plot_toy,
  quadratic_problem,
  rosenbrock_problem,
  run_toy_problem,
)


def run_optimizers(workdir: os.PathLike, *, mnist=None, quick: bool = True, data_dir=None,
                   settings: MlpSettings | None = None) -> dict:
  """Run both parts, write ``<workdir>/optimizers.json`` and two PNGs, return the results.

  Args:
    workdir: output folder.
    mnist: None (load MNIST from ``data_dir`` / ``$HW_DATA_DIR``), a ``hw.data.Dataset``
      (10% of its training split is held out for validation, seed 0) or a triple
      ``(train, validation, test)`` of ``hw.data.ArraySplit``.
    quick: the quick settings (H = 256, 600 steps, 3 learning rates each) or the full
      ones (H = 1000, 4000 steps, 5 learning rates each).
    data_dir: where to look for MNIST when ``mnist`` is None.
    settings: overrides the quick/full MLP settings (e.g. tiny ones for tests).

  Returns:
    The results dict (the JSON without the trajectories' raw values).
  """
  start = time.perf_counter()
  toy = {p.name: run_toy_problem(p) for p in (quadratic_problem(), rosenbrock_problem())}
  toy_seconds = time.perf_counter() - start
  mlp = run_mlp(mnist, settings=settings or (QUICK if quick else FULL), data_dir=data_dir)
  results = {
      "quick": quick,
      "toy_problems": toy,
      "mnist_mlp": mlp,
      "ranking": {"quadratic": toy["quadratic"]["ranking"],
                  "rosenbrock": toy["rosenbrock"]["ranking"], "mnist_mlp": mlp["ranking"]},
      "best_learning_rate": {n: mlp["per_optimizer"][n]["best_learning_rate"] for n in NAMES},
      "val_accuracy": {n: mlp["per_optimizer"][n]["val_accuracy"] for n in NAMES},
      "test_accuracy": {n: mlp["per_optimizer"][n]["test_accuracy"] for n in NAMES},
      "top_k": {f"MLP, {mlp['settings']['hidden']} hidden units, {n} "
                f"(lr {mlp['per_optimizer'][n]['best_learning_rate']:g})":
                mlp["per_optimizer"][n]["top_k"] for n in NAMES},
      "seconds": {"toy_problems": toy_seconds,
                  "mnist_mlp": time.perf_counter() - start - toy_seconds},
  }
  _plot_toy(workdir, toy)
  _plot_mlp(workdir, mlp)
  for problem in toy.values():
    for entry in problem["per_optimizer"].values():
      entry["trajectory"] = np.asarray(entry["trajectory"])[::max(1, problem["steps"] // 200)]
      entry.pop("values")
  _common.write_json(workdir, NAME, results)
  return results
