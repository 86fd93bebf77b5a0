"""experiments.studies.base and how `hw reproduce` runs studies beside grid experiments."""
from __future__ import annotations

import json
import types

import numpy as np

from experiments import catalog as registry
from experiments import reproduce
from experiments.studies.base import Study


def _figure(workdir, name):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots()
  ax.plot([0, 1], [1, 0])
  fig.savefig(workdir / name)
  plt.close(fig)


def _catalog(study: Study):
  """The real catalog with one extra study."""
  return types.SimpleNamespace(
      EXPERIMENTS=(*registry.EXPERIMENTS, study.name), PROFILES=registry.PROFILES,
      canonical_name=lambda text: study.name if text == study.name else registry.canonical_name(text),
      get_config=lambda name, profile: study if name == study.name
      else registry.get_config(name, profile))


def test_a_study_runs_writes_json_and_its_report_section(tmp_path):
  calls = []

  def run(workdir, *, profile, data_dir):
    calls.append(profile)
    _figure(workdir, "toy.png")
    return {"summary": ["The toy study measured **42**."], "figures": ["toy.png"],
            "meets_target": True, "headline": "42",
            "curve": np.arange(3.0), "best": np.float32(0.5), "gap": float("nan")}
  study = Study(name="toy", title="Toy study", run=run, reported=("41",))
  argv = ["--only", "toy", "--results-dir", str(tmp_path)]
  assert reproduce.main(argv, catalog=_catalog(study)) == 0
  saved = json.loads((tmp_path / "toy.json").read_text())
  assert saved["status"] == "complete" and saved["reported"] == ["41"]
  assert saved["curve"] == [0.0, 1.0, 2.0] and saved["best"] == 0.5 and saved["gap"] is None
  report = (tmp_path / "REPORT.md").read_text()
  assert "The toy study measured **42**." in report and "![toy: toy.png](toy.png)" in report
  assert "| Toy | 41 | 42 |" in report
  assert reproduce.main(argv, catalog=_catalog(study)) == 0 and calls == ["quick"]  # not rerun


def test_a_finished_study_short_of_its_target_stays_a_failure_when_not_rerun(tmp_path):
  calls = []

  def run(workdir, *, profile, data_dir):
    calls.append(profile)
    _figure(workdir, "short.png")
    return {"summary": ["measured 7"], "figures": ["short.png"], "meets_target": False}
  study = Study(name="short", title="Short study", run=run, target=0.9)
  argv = ["--only", "short", "--results-dir", str(tmp_path)]
  assert reproduce.main(argv, catalog=_catalog(study)) == 1
  assert reproduce.main(argv, catalog=_catalog(study)) == 1 and calls == ["quick"]  # not rerun
  state = json.loads((tmp_path / "reproduce_state.json").read_text())
  assert state["experiments"]["short"]["status"] == "short of target"


def test_a_broken_study_is_a_failure(tmp_path):
  study = Study(name="broken", title="Broken study", run=lambda workdir, **kw: {"summary": []})
  assert reproduce.main(["--only", "broken", "--results-dir", str(tmp_path)],
                        catalog=_catalog(study)) == 1
  assert "returned results without ['figures', 'meets_target']" in (
      tmp_path / "REPORT.md").read_text()
