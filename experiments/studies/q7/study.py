"""The Q7 study's runner: the three parts, their figures and the report."""
from __future__ import annotations

import dataclasses
import os
import time
from typing import Any

from experiments.studies import _runs
from experiments.studies.q7.depth import deep_networks
from experiments.studies.q7.dropout import dropout_network
from experiments.studies.q7.figures import _plot_deep, _plot_dropout, _plot_rates
from experiments.studies.q7.rates import learning_rates
from experiments.studies.q7.report import headline, summary
from experiments.studies.q7.shared import SETTINGS, Settings


def run(workdir: str | os.PathLike, *, profile: str, data_dir: str | os.PathLike | None,
        settings: Settings | None = None, dataset: Any = None) -> dict[str, Any]:
  settings = settings or SETTINGS[profile]
  cpu_began = time.process_time()
  mnist = _runs.load_mnist(data_dir, dataset)
  deep = deep_networks(mnist, settings, profile)
  drop = dropout_network(mnist, settings, profile)
  rates = learning_rates(mnist, settings, profile)
  figures = [_plot_deep(workdir, deep), _plot_dropout(workdir, drop), _plot_rates(workdir, rates)]
  results = {"sigmoid_vs_relu": deep, "dropout": drop, "learning_rate": rates,
             "settings": dataclasses.asdict(settings), "figures": figures,
             "data": {"source": mnist.source}, "meets_target": None,
             "cpu_seconds": time.process_time() - cpu_began}
  results["top_k"] = top_k_by_classifier(deep, drop, rates)
  results["summary"] = summary(results)
  results["headline"] = headline(results)
  return results


def top_k_by_classifier(deep: dict[str, Any], drop: dict[str, Any],
                        rates: dict[str, Any]) -> dict[str, dict[str, float]]:
  """Every trained network's top-1 / top-5 test error (a diverged run has none)."""
  errors = {f"deep MLP, {name}": run["top_k"] for name, run in deep.items()}
  errors["dropout MLP (inference rule of the engine: inverted dropout)"] = drop["engine_top_k"]
  for part, entries in (("learning-rate sweep", rates["sweep"]), ("fix", rates["fixes"])):
    for entry in entries:
      if entry.get("top_k"):
        errors[f"{part}: {entry['label']}"] = entry["top_k"]
  return errors
