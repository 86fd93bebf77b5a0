"""`hw reproduce` end to end on tiny configurations (the binary stand-in needs no download)."""
from __future__ import annotations

import json

import pytest

from experiments import catalog as registry
from experiments import reproduce
from experiments.studies.base import Study


def _tiny(name: str, profile: str):
  """The real configurations cut down to a few epochs (studies as they are)."""
  config = registry.get_config(name, profile)
  if isinstance(config, Study):
    return config
  return config.replace(epochs=3, grid={"learning_rate": [0.1, 1.0]})


def test_only_one_experiment_writes_json_png_and_report(tmp_path, capsys):
  argv = ["--only", "Q2.3", "--results-dir", str(tmp_path)]
  code = reproduce.main(argv, catalog=registry, get_config=_tiny)
  results = json.loads((tmp_path / "q2_3.json").read_text())
  assert code == (1 if results["meets_target"] is False else 0)
  assert (tmp_path / "q2_3.png").stat().st_size > 1000
  assert [point["params"] for point in results["grid"]] == [{"learning_rate": 0.1},
                                                             {"learning_rate": 1.0}]
  report = (tmp_path / "REPORT.md").read_text()
  assert "Q2.3 logistic classifier" in report and "learning_rate=0.1" in report
  assert "learning_rate=1.0" in report and "![q2_3 learning curves](q2_3.png)" in report
  assert f"{100 * results['test_accuracy']:.2f}%" in report
  assert "Q5.3" in report  # the other questions are listed as not run
  call = json.loads((tmp_path / reproduce.STATE_FILE).read_text())["last_call"]
  assert call["experiments"] == ["q2_3"] and call["reused"] == [] and call["finished"]
  assert call["seconds"] >= results["wall_time_s"]
  assert f"Last `hw reproduce` call: {call['seconds'] / 60:.1f} min wall for 1 experiment." in report

  before = (tmp_path / "q2_3.json").stat().st_mtime_ns
  assert reproduce.main(argv, catalog=registry, get_config=_tiny) == code  # finished: not retrained
  assert (tmp_path / "q2_3.json").stat().st_mtime_ns == before
  assert "already complete" in capsys.readouterr().out
  report = (tmp_path / "REPORT.md").read_text()
  assert "for 1 experiment (1 finished earlier and reused: q2_3)." in report


def test_an_empty_or_missing_data_dir_is_a_failure_with_the_reason(tmp_path):
  empty = tmp_path / "no_data"
  empty.mkdir()
  for data_dir in (empty, tmp_path / "nonexistent"):
    code = reproduce.main(["--only", "q4_3", "--results-dir", str(tmp_path / "results"),
                           "--data-dir", str(data_dir)], catalog=registry)
    assert code == 1
    report = (tmp_path / "results" / "REPORT.md").read_text()
    assert "unusable data" in report and str(data_dir) in report and "Q4.3" in report
    assert not (tmp_path / "results" / "q4_3.json").exists()


def test_data_that_cannot_be_had_offline_skips_unnamed_experiments_only(tmp_path, monkeypatch):
  from hw import data

  def offline(config, **kwargs):
    raise data.DataUnavailable("no local copy, and offline")
  monkeypatch.setattr(reproduce, "load_splits", offline)
  unnamed = reproduce.run_experiment(registry.get_config("q4_3", "quick"), tmp_path,
                                     data_dir=None, binary_data=None, force=False)
  assert unnamed["status"] == "skipped"
  named = reproduce.run_experiment(registry.get_config("q4_3", "quick"), tmp_path,
                                   data_dir=None, binary_data=None, force=False, named=True)
  assert named["status"] == "failed" and "no local copy" in named["message"]


def test_a_bad_results_dir_is_a_usage_error(tmp_path, capsys):
  blocker = tmp_path / "file"
  blocker.write_text("not a folder")
  assert reproduce.main(["--only", "q2_3", "--results-dir", str(blocker / "sub")],
                        catalog=registry) == 2
  assert "cannot use --results-dir" in capsys.readouterr().err


@pytest.mark.parametrize("spelling", ["q5.3", "q5_3", "Q5.3", "5.3"])
def test_experiment_names_are_accepted_in_every_spelling(spelling):
  assert registry.canonical_name(spelling) == "q5_3"


def test_unknown_experiment_is_a_usage_error(tmp_path, capsys):
  assert reproduce.main(["--only", "q9.9", "--results-dir", str(tmp_path)], catalog=registry) == 2
  assert "unknown experiment 'q9.9'" in capsys.readouterr().err


def test_every_experiment_has_quick_and_full_configs():
  for name in registry.EXPERIMENTS:
    quick, full = registry.get_config(name, "quick"), registry.get_config(name, "full")
    if isinstance(quick, Study):
      assert quick.name == full.name == name and (quick.profile, full.profile) == ("quick", "full")
      continue
    assert quick.name == full.name == name and quick.grid and (quick.target is not None or quick.dataset == "binary")
    assert full.epochs >= quick.epochs


def test_a_crashing_experiment_is_one_line_without_a_traceback(tmp_path, capsys, monkeypatch):
  from hw.engine import experiment

  def crash(*args, **kwargs):
    raise RuntimeError("disk on fire")
  monkeypatch.setattr(experiment, "train_and_evaluate", crash)
  code = reproduce.main(["--only", "q2.3", "--results-dir", str(tmp_path)], catalog=registry,
                        get_config=_tiny)
  err = capsys.readouterr().err
  assert code == 1 and "Traceback" not in err
  assert "Q2.3 logistic classifier, no hidden layer (binary task): FAILED: RuntimeError: disk on fire" in err
  state = json.loads((tmp_path / reproduce.STATE_FILE).read_text())
  assert state["experiments"]["q2_3"]["message"] == "RuntimeError: disk on fire"


def test_seed_and_devices_that_no_experiment_can_take_are_usage_errors(tmp_path, capsys):
  for argv, message in ((["--seed", "-1"], "seed must be a non-negative integer in 'q2_3'"),
                        (["--devices", "64"], "devices=64 in 'q2_3', but this process has only")):
    assert reproduce.main(["--only", "q2.3", "--results-dir", str(tmp_path / "r"), *argv],
                          catalog=registry) == 2
    assert message in capsys.readouterr().err
  assert not (tmp_path / "r").exists()


def test_the_quick_profile_help_promises_no_time():
  text = " ".join(reproduce._parser().format_help().split())
  assert "under 20 minutes" not in text and "the README gives the measured times" in text


def test_results_of_an_earlier_call_are_not_reported_as_not_run(tmp_path):
  """reproduce_state.json lost, q2_3.json kept: the report does not say "not run" above
  the results."""
  argv = ["--only", "Q2.3", "--results-dir", str(tmp_path)]
  reproduce.main(argv, catalog=registry, get_config=_tiny)
  (tmp_path / reproduce.STATE_FILE).unlink()
  reproduce.main(["--only", "q2.4", "--results-dir", str(tmp_path)], catalog=registry,
                 get_config=_tiny)
  report = (tmp_path / "REPORT.md").read_text()
  section = report.split("### Q2.3", 1)[1].split("###", 1)[0]
  assert "not run" not in section.lower()
  state = json.loads((tmp_path / reproduce.STATE_FILE).read_text())
  assert state["experiments"]["q2_3"]["message"] == "results of an earlier call found in this folder"
