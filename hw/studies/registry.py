"""The studies by name, with their pass/fail criteria, for ``hw reproduce`` to call.

``run_study(name, results_dir, data_dir=..., quick=...)`` runs one study (or reuses
its finished ``<name>.json``), and returns a status record in the shape ``hw reproduce``
keeps for its steps: ``{"status", "message", "seconds", "meets_target"}``. A missing
data set is a skip, not a failure; the t-SNE time target is reported but never fails
the run (it depends on the machine and its load).
"""
from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import sys
import time
import traceback
from typing import Any, Callable

from hw.studies.optimizers import run_optimizers
from hw.studies.prox import run_prox
from hw.studies.tsne import run_tsne


@dataclasses.dataclass(frozen=True)
class Study:
  """A study: how to run it and how to judge its results.

  Attributes:
    name: the name of its JSON/PNG files and of ``--only``.
    title: one line for reports.
    run: ``(results_dir, data_dir, quick) -> results dict``.
    judge: ``results -> (meets_target: bool | None, one-line message)``.
    figures: the PNG files it writes.
  """
  name: str
  title: str
  run: Callable[[pathlib.Path, Any, bool], dict]
  judge: Callable[[dict], tuple[bool | None, str]]
  figures: tuple[str, ...]


def _judge_optimizers(results):
  mlp = results["mnist_mlp"]["per_optimizer"]
  ranking = results["ranking"]["mnist_mlp"]
  parts = [f"{n} {100 * mlp[n]['test_accuracy']:.2f}% (lr {mlp[n]['best_learning_rate']:g})"
           for n in ranking]
  return None, "MNIST MLP test accuracy, ranked on validation: " + ", ".join(parts)


def _judge_prox(results):
  hits = results["iterations_to_1e-6"]
  met = (results["kkt_max_violation"] <= 1e-6 and None not in hits.values()
         and hits["fista"] <= hits["ista"])
  return met, (f"relative gap ≤ 1e-6 after {hits['ista']} (ISTA) and {hits['fista']} (FISTA) "
               f"iterations; KKT violation {results['kkt_max_violation']:.1e}; support "
               f"{results['support']['true_positives']}/{len(results['support']['true'])} "
               f"found, {results['support']['false_positives']} false positives")


def _judge_tsne(results):
  met = results["knn5_accuracy"] >= results["targets"]["knn5_accuracy"]
  load = results["load_average_1min"]["before"]
  return met, (f"5-NN accuracy {results['knn5_accuracy']:.3f} (target ≥ 0.88), "
               f"KL {results['kl']:.3f}, {results['seconds']:.1f} s for PCA + P + 1,000 "
               f"iterations (target < 15 s on an idle 2-core CPU; load average {load:.1f} "
               f"on {results['cpu_cores']} cores, CPU time {results['cpu_seconds']:.1f} s); "
               f"Gaussian Q: 5-NN {results['gaussian_sne']['knn5_accuracy']:.3f}")


STUDIES: dict[str, Study] = {s.name: s for s in (
    Study("optimizers", "SGD, momentum, Nesterov, RMSProp, Adam (SPEC D)",
          lambda d, data_dir, quick: run_optimizers(d, data_dir=data_dir, quick=quick),
          _judge_optimizers, ("optimizers_toy.png", "optimizers_mnist.png")),
    Study("prox", "ISTA vs FISTA on a 200×500 lasso (SPEC D)",
          lambda d, data_dir, quick: run_prox(d), _judge_prox, ("prox.png",)),
    Study("tsne", "t-SNE of 2,000 MNIST digits vs Gaussian-Q SNE (SPEC D)",
          lambda d, data_dir, quick: run_tsne(d, data_dir=data_dir), _judge_tsne,
          ("tsne.png",)),
)}


def _finished(study: Study, folder: pathlib.Path, quick: bool) -> dict | None:
  path = folder / f"{study.name}.json"
  if not path.exists() or not all((folder / f).exists() for f in study.figures):
    return None
  try:
    results = json.loads(path.read_text())
  except json.JSONDecodeError:
    return None
  if study.name == "optimizers" and results.get("quick") != quick:
    return None
  return results


def run_study(name: str, results_dir: os.PathLike, *, data_dir=None, quick: bool = True,
              force: bool = False) -> dict:
  """Run study ``name`` (or reuse its finished results) and judge it.

  Args:
    name: a key of :data:`STUDIES`.
    results_dir: where ``<name>.json`` and its figures go.
    data_dir: the MNIST folder (or None: ``$HW_DATA_DIR``, then tfds).
    quick: the quick profile (only the optimizer study has a full one).
    force: rerun even when finished results exist.

  Returns:
    ``{"title", "status", "message", "seconds", "meets_target"}`` with status
    "complete", "short of target", "skipped" (no data) or "failed" (it raised).
  """
  from hw.data import DataError
  study = STUDIES[name]
  folder = pathlib.Path(results_dir)
  record = {"title": study.title, "seconds": 0.0, "meets_target": None}
  results = None if force else _finished(study, folder, quick)
  reused = results is not None
  began = time.perf_counter()
  if results is None:
    try:
      results = study.run(folder, data_dir, quick)
    except DataError as error:
      return {**record, "status": "skipped", "message": f"data unavailable: {error}"}
    except (KeyboardInterrupt, SystemExit):
      raise
    except Exception as error:
      traceback.print_exc(file=sys.stderr)
      return {**record, "status": "failed", "message": f"{type(error).__name__}: {error}"}
  met, message = study.judge(results)
  return {**record, "seconds": time.perf_counter() - began, "meets_target": met,
          "status": "short of target" if met is False else "complete",
          "message": message + (" (finished earlier; not rerun)" if reused else "")}
