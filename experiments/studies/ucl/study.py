"""The UCL study's entry point: load MNIST, train the table, write the figures, return the
results dict."""
from __future__ import annotations

import dataclasses
import pathlib
import time
from typing import Any

from experiments.studies.ucl.analysis import setup_name
from experiments.studies.ucl.report import _figure, reference_init, summarize
from experiments.studies.ucl.settings import UclConfig
from experiments.studies.ucl.table import run_table
from experiments.studies.ucl.training import StudyData


def load_data(data_dir: str | None, config: UclConfig) -> tuple[StudyData, str]:
  from hw import data as hw_data
  dataset = hw_data.load_dataset("mnist", data_dir=data_dir)
  return StudyData.from_arrays(dataset.train.images, dataset.train.labels, dataset.test.images,
                               dataset.test.labels, fraction=config.train_eval_fraction,
                               subset_seed=config.subset_seed), dataset.source


def run(workdir, *, profile: str, data_dir: str | None, config: UclConfig | None = None,
        data: StudyData | None = None) -> dict[str, Any]:
  """The study: train the table, write the figures, return the results dict."""
  import os
  config = config or UclConfig()
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  source = "given arrays"
  if data is None:
    data, source = load_data(data_dir, config)
  log = lambda text: print(f"[ucl] {text}", flush=True)  # noqa: E731
  wall, cpu = time.perf_counter(), time.process_time()
  table = run_table(config, data, log=log)
  cells, timing = table["cells"], table["timing"]
  timing["train_wall_s"] = time.perf_counter() - wall
  timing["train_cpu_s"] = time.process_time() - cpu
  try:
    load = os.getloadavg()
  except OSError:
    load = None
  timing["load_average_at_end"] = list(load) if load else None
  timing["cpu_count"] = os.cpu_count()
  summary = summarize(cells, timing, config, profile=profile, load=load)
  figures = []
  reference = reference_init(config)
  for reduction in config.reductions:
    shown = [c for c in cells if c["reduction"] == reduction and c["init"] == reference]
    if shown:
      name = f"ucl_curves_{reduction}.png"
      _figure(workdir, shown, f"{reference}, loss reduction \"{reduction}\"", name)
      figures.append(name)
  if any(c["init"] != reference for c in cells):
    _figure(workdir, summary["chosen_cells"], "each model's chosen setup", "ucl_curves_chosen.png")
    figures.append("ucl_curves_chosen.png")
  shown_top_k = [c for c in cells if c["init"] == reference] + [
      c for c in summary["chosen_cells"] if c["init"] != reference]
  return {
      "summary": summary["summary"], "figures": figures, "meets_target": summary["meets_target"],
      "headline": summary["headline"], "cells": cells, "scores": summary["scores"],
      "better_reduction": summary["better_reduction"], "fit_lists": summary["fit_lists"],
      "search": summary["search"], "chosen": summary["chosen"],
      "chosen_score": summary["chosen_score"], "not_run": summary["not_run"],
      "top_k": {f"model {c['model']}, setting {c['setting']}, {setup_name(c)} (median over "
                f"seeds)": {"top1_error": c["top1_error"], "top5_error": c["top5_error"]}
                for c in shown_top_k},
      "timing": timing,
      "config": {**{k: v for k, v in dataclasses.asdict(config).items() if k != "settings"},
                 "settings": [s._asdict() for s in config.settings]},
      "data": {"source": source, "train": int(data.train_labels.shape[0]),
               "train_subset": int(data.subset_labels.shape[0]),
               "test": int(data.test_labels.shape[0])},
  }
