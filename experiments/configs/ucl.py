"""UCL COMPGI22 coursework 2 (assignment B): models 1-4 × settings 1-3, plain SGD, hand-written
backprop; the study itself is :mod:`experiments.studies.ucl`."""
from __future__ import annotations

import dataclasses
import functools

from experiments.catalog import check_profile
from experiments.studies import ucl
from experiments.studies.base import Study

# Which reduction the quick profile runs: the one that reproduced more of the reported
# table in the full profile (three seeds, both reductions; 2-core CPU, 2026-12-02): `mean`
# 7 of 12 cells, `sum` 3 of 12 (per model, `sum` fits model 4's settings 2 and 3 better).
QUICK_REDUCTION = "mean"
FULL = ucl.UclConfig()
QUICK = dataclasses.replace(
    FULL, reductions=(QUICK_REDUCTION,), seeds=(0,),
    notes=f"the quick profile runs one seed (0) with the `{QUICK_REDUCTION}` reduction, the one "
          f"that reproduces more of the reported table in the full profile (three seeds, both "
          f"reductions); run `--profile full` for the whole comparison")


def make_study(profile: str, config: ucl.UclConfig) -> Study:
  return Study(
      name=ucl.NAME, title="UCL COMPGI22 coursework 2: models 1-4 × 3 settings, plain SGD (MNIST)",
      run=functools.partial(ucl.run, config=config),
      reported=("12 final test accuracies, 0.2066-0.9857",), target=None, profile=profile,
      notes=config.notes or "Three seeds per cell, loss reduction `mean` and `sum`.")


def get_config(profile: str = "quick") -> Study:
  return make_study(profile, FULL if check_profile(profile) == "full" else QUICK)
