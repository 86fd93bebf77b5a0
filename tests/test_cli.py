"""The `hw` command line: dispatch, `hw list`, `hw train` with overrides."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from experiments import catalog as registry
from experiments import cli as app


def test_usage_and_unknown_command(capsys):
  assert app.main([]) == 0 and "commands:" in capsys.readouterr().out
  assert app.main(["nope"]) == 2 and "unknown command 'nope'" in capsys.readouterr().err


def test_list_names_every_registry_entry(capsys):
  assert app.main(["list", "--json"]) == 0
  listed = json.loads(capsys.readouterr().out)
  assert set(listed["experiments"]) == set(registry.EXPERIMENTS)
  assert {"mlp", "cnn_bn"} <= set(listed["models"]) and "hinge" in listed["losses"]
  assert "adam" in listed["optimizers"] and "cosine" in listed["lr_schedules"]


@pytest.mark.parametrize("text, expected", [
    ("epochs=3", ("epochs", 3)), ("model.hidden_sizes=(5,)", ("model.hidden_sizes", (5,))),
    ("optimizer=adam", ("optimizer", "adam")), ("augment=None", ("augment", None)),
    ("normalize=(0.5, 0.5)", ("normalize", (0.5, 0.5)))])
def test_overrides_are_python_literals(text, expected):
  assert app.parse_override(text) == expected


@pytest.mark.parametrize("argv, message", [
    (["train", "q2.3", "--set", "lr=0.1"], "unknown config field(s) ['lr']"),
    (["train", "q2.3", "--set", "optimizer=lbfgs"], "unknown optimizer optimizer='lbfgs'; known:"),
    (["train", "q2.3", "--set", "epochs"], "--set takes key=value"),
    (["train", "q9.9"], "unknown experiment 'q9.9'"),
    (["train", "prox"], "'prox' is a study, not a grid experiment"),
    (["train", "q2.3", "--devices", "64"], "devices=64 in 'q2_3', but this process has only"),
    (["train", "q2.3", "--devices", "0"], "devices must be a positive integer"),
])
def test_train_rejects_bad_overrides_with_the_valid_names(argv, message, capsys):
  assert app.main(argv) == 2
  assert message in capsys.readouterr().err


def test_train_runs_one_experiment_with_overrides(tmp_path, capsys):
  code = app.main(["train", "q2.3", "--set", "epochs=2", "--set", "grid={}", "--seed", "3",
                   "--results-dir", str(tmp_path)])
  assert code == 0
  results = json.loads((tmp_path / "q2_3.json").read_text())
  assert results["config"]["epochs"] == 2 and results["config"]["seed"] == 3
  assert len(results["grid"]) == 1
  assert "q2_3: test accuracy" in capsys.readouterr().out


def test_no_library_module_imports_the_application_even_lazily():
  """No import statement anywhere in ``hw`` (functions included) names ``experiments`` or
  ``benchmarks``."""
  import ast
  import pathlib
  root = pathlib.Path(__file__).resolve().parents[1] / "hw"
  found = []
  for path in sorted(root.rglob("*.py")):
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
      names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
               [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
      found += [f"{path.relative_to(root.parent)}:{node.lineno} {name}" for name in names
                if name.split(".")[0] in ("experiments", "benchmarks")]
  assert found == []


def test_the_library_never_imports_the_application():
  """Every module of ``hw`` imports without ``experiments`` (the application) loading."""
  code = ("import importlib, pkgutil, sys, hw\n"
          "for info in pkgutil.walk_packages(hw.__path__, 'hw.'):\n"
          "  if not info.name.endswith('.plugin'): importlib.import_module(info.name)\n"
          "print(sorted(m for m in sys.modules if m.split('.')[0] in ('experiments', 'benchmarks')))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  assert out.stdout.strip() == "[]"


def test_train_exit_codes_for_bad_data_and_results_folders(tmp_path, capsys):
  assert app.main(["train", "q4.3", "--data-dir", str(tmp_path / "absent"),
                   "--results-dir", str(tmp_path / "r")]) == 2  # bad input, named
  assert "is not an existing folder" in capsys.readouterr().err
  blocker = tmp_path / "file"
  blocker.write_text("x")
  assert app.main(["train", "q2.3", "--set", "epochs=1", "--results-dir",
                   str(blocker / "sub")]) == 2
  assert "cannot use --results-dir" in capsys.readouterr().err


# --- issue 20: overrides take effect or are refused; an exit-code contract; no tracebacks ---

import os
import pathlib
import pickle
import signal
import types

import numpy as np

from experiments import report, reproduce
from hw.engine.config import ExperimentConfig

REPO = pathlib.Path(__file__).resolve().parents[1]


def _binary_file(tmp_path) -> str:
  """A user's binary data file (not the stand-in, so targets apply): 10% of labels noisy."""
  rng = np.random.default_rng(0)
  features = rng.normal(size=(400, 5))
  labels = (features[:, 0] > 0).astype(np.int64)
  flip = rng.random(400) < 0.1
  path = tmp_path / "user.pkl"
  path.write_bytes(pickle.dumps((features, np.where(flip, 1 - labels, labels))))
  return str(path)


def _catalog(target: float):
  """A catalog of one tiny reference experiment, "Q9.9", with ``target``."""
  config = ExperimentConfig(name="q9_9", title="Q9.9 tiny logistic", dataset="binary",
                            model="linear", loss="logistic", learning_rate=0.1, batch_size=100,
                            epochs=2, normalize="standardize", target=target,
                            grid={"learning_rate": [0.1, 1.0]})

  def canonical_name(text):
    if text.lower().replace(".", "_") != "q9_9":
      raise ValueError(f"unknown experiment {text!r}")
    return "q9_9"
  return types.SimpleNamespace(EXPERIMENTS=("q9_9",), PROFILES=("quick", "full"),
                               canonical_name=canonical_name,
                               get_config=lambda name, profile: config)


def _last_line(text: str) -> str:
  return text.strip().splitlines()[-1]


def test_a_reference_run_short_of_its_target_exits_1_saying_so(tmp_path, capsys):
  argv = ["train", "q9.9", "--binary-data", _binary_file(tmp_path), "--results-dir",
          str(tmp_path / "r")]
  assert app.main(argv, catalog=_catalog(0.999)) == 1
  captured = capsys.readouterr()
  results = json.loads((tmp_path / "r" / "q9_9.json").read_text())
  accuracy = f"{100 * results['test_accuracy']:.2f}%"
  assert _last_line(captured.err) == f"Q9.9 short of target: {accuracy} < 99.90%"
  assert results["meets_target"] is False and results["origin"] == "hw train"
  assert app.main(argv, catalog=_catalog(0.5)) == 0
  assert _last_line(capsys.readouterr().out) == f"Q9.9 met its target: {accuracy} >= 50.00%"


def test_with_training_overrides_the_reference_target_does_not_apply_and_the_run_says_so(
    tmp_path, capsys):
  argv = ["train", "q9.9", "--binary-data", _binary_file(tmp_path), "--results-dir",
          str(tmp_path / "r"), "--set", "epochs=1"]
  assert app.main(argv, catalog=_catalog(0.999)) == 0
  out = capsys.readouterr().out
  assert ("the target of Q9.9 (99.90%) is for its reference config and does not apply: this "
          "run changes epochs") in out
  assert "no target check (the run changes epochs)" in _last_line(out)
  results = json.loads((tmp_path / "r" / "q9_9.json").read_text())
  assert results["target"] is None and results["meets_target"] is None
  assert results["command_line"]["reference_target"] == 0.999
  assert results["command_line"]["changes_training"] == ["epochs"]


def test_set_of_a_swept_field_replaces_that_grid_axis(tmp_path, capsys):
  """The README's example: the grid's hidden size no longer wins over --set."""
  q5_3 = registry.get_config("q5_3", "quick")
  config, replaced = app.apply_overrides(q5_3, {"epochs": 3, "model.hidden_size": 200})
  assert config.grid["model.hidden_size"] == [200] and config.epochs == 3
  assert config.grid["model.filter_size"] == q5_3.grid["model.filter_size"]
  assert replaced == {"model.hidden_size": {"grid": [100], "set": 200}}
  q4_3, _ = app.apply_overrides(registry.get_config("q4_3", "quick"), {"learning_rate": 0.001})
  assert q4_3.grid == {"learning_rate": [0.001]}
  points, _ = app.apply_overrides(
      registry.get_config("q4_3", "quick").replace(grid=[{"learning_rate": 0.1, "seed": 1},
                                                         {"learning_rate": 0.2, "seed": 1}]),
      {"learning_rate": 0.5})
  assert points.grid == [{"learning_rate": 0.5, "seed": 1}]  # the same point once

  assert app.main(["train", "q9.9", "--binary-data", _binary_file(tmp_path), "--results-dir",
                   str(tmp_path / "r"), "--set", "learning_rate=0.3"],
                  catalog=_catalog(0.5)) == 0
  out = capsys.readouterr().out
  assert ("--set learning_rate=0.3 replaces the grid's learning_rate values [0.1, 1.0] "
          "(the grid is now {'learning_rate': [0.3]})") in out
  results = json.loads((tmp_path / "r" / "q9_9.json").read_text())
  assert [point["params"] for point in results["grid"]] == [{"learning_rate": 0.3}]
  assert results["selected"]["params"] == {"learning_rate": 0.3}
  assert results["command_line"]["grid_axes_replaced"] == {
      "learning_rate": {"grid": [0.1, 1.0], "set": 0.3}}


@pytest.mark.parametrize("argv, message", [
    (["--set", "learning_rate=nan"], "learning_rate must be a finite number >= 0 in 'q4_3', got 'nan'"),
    (["--set", "grid={}", "--set", "learning_rate=1e999"], "learning_rate must be a finite number >= 0"),
    (["--set", "loss=hinge"], "loss='hinge' is a binary loss (one score per example), but dataset "
                              "'mnist' of 'q4_3' has 10 classes"),
    (["--set", "model.hiden_size=3"], "model 'linear' of 'q4_3' takes no keyword model.hiden_size"),
    (["--seed", "-1"], "seed must be a non-negative integer in 'q4_3', got -1"),
    (["--set", "name=../../x"], "name must be a plain name"),
    (["--set", "name=a/b"], "name must be a plain name"),
    (["--set", "grid=5"], "grid of 'q4_3' must be a mapping"),
])
def test_an_override_that_makes_the_config_invalid_is_refused_before_training(
    argv, message, tmp_path, capsys):
  results = tmp_path / "r"
  assert app.main(["train", "q4.3", *argv, "--results-dir", str(results)]) == 2
  assert message in _last_line(capsys.readouterr().err)
  assert not results.exists() and list(tmp_path.iterdir()) == []  # nothing written


def test_a_batch_larger_than_the_training_split_is_refused_naming_batch_size(tmp_path, capsys):
  assert app.main(["train", "q9.9", "--binary-data", _binary_file(tmp_path), "--results-dir",
                   str(tmp_path / "r"), "--set", "batch_size=1000000"],
                  catalog=_catalog(0.5)) == 2
  assert _last_line(capsys.readouterr().err) == (
      "hw train: q9_9: batch_size 1000000 exceeds the 200 training examples of 'q9_9'")
  assert not (tmp_path / "r" / "q9_9.json").exists()


def test_a_full_disk_while_a_figure_is_drawn_is_one_line_and_exit_1(tmp_path, capsys,
                                                                     monkeypatch):
  import errno
  from hw import plotting

  def full_disk(fig, path, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device", str(path))
  monkeypatch.setattr(plotting, "save", full_disk)
  assert app.main(["train", "q9.9", "--binary-data", _binary_file(tmp_path), "--results-dir",
                   str(tmp_path / "r")], catalog=_catalog(0.5)) == 1
  err = capsys.readouterr().err
  assert "Traceback" not in err
  assert _last_line(err).startswith("hw train: q9_9 failed: cannot write its results: "
                                    "[Errno 28] No space left on device")


def test_an_unexpected_error_is_one_line_and_debug_shows_the_traceback(capsys, monkeypatch):
  def broken(argv, catalog):
    raise RuntimeError("something inside broke")
  monkeypatch.setattr(app, "list_command", broken)
  assert app.main(["list"]) == 1
  err = capsys.readouterr().err
  assert "Traceback" not in err and _last_line(err) == (
      "hw list: unexpected error: RuntimeError: something inside broke (run `hw --debug list "
      "...` for the traceback)")
  assert app.main(["--debug", "list"]) == 1
  assert "Traceback (most recent call last)" in capsys.readouterr().err


def test_ctrl_c_that_numpy_turns_into_a_value_error_still_exits_130(tmp_path, capsys,
                                                                     monkeypatch):
  """Two times in three a Ctrl-C during training surfaced as NumPy's "setting an array
  element with a sequence"; after a SIGINT any exception is the interruption."""
  from hw.engine import experiment

  def interrupted_inside_numpy(*args, **kwargs):
    try:
      signal.raise_signal(signal.SIGINT)
    except KeyboardInterrupt:
      raise ValueError("setting an array element with a sequence.") from None
  monkeypatch.setattr(experiment, "train_and_evaluate", interrupted_inside_numpy)
  before = signal.getsignal(signal.SIGINT)  # SIG_IGN where pytest runs as a background job
  assert app.main(["train", "q9.9", "--binary-data", _binary_file(tmp_path), "--results-dir",
                   str(tmp_path / "r")], catalog=_catalog(0.5)) == 130
  assert _last_line(capsys.readouterr().err) == (
      "hw train: interrupted; rerun the same command to resume")
  assert signal.getsignal(signal.SIGINT) is before  # restored


def test_ctrl_c_in_hw_train_exits_130_with_how_to_resume(tmp_path):
  """A real SIGINT to a training ``python -m experiments train`` (a subprocess)."""
  env = {**os.environ, "HW_NO_PROGRESS": "1", "PYTHONUNBUFFERED": "1"}
  process = subprocess.Popen(
      [sys.executable, "-m", "experiments", "train", "q2.3", "--set", "epochs=100000",
       "--set", "grid={}", "--set", "repeat_seeds=()", "--results-dir", str(tmp_path)],
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
  try:
    for line in process.stdout:
      if "epoch 2/" in line:
        break
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
  finally:
    process.kill()
  assert process.returncode == 130, err
  assert "Traceback" not in err
  assert _last_line(err) == "hw train: interrupted; rerun the same command to resume"


def test_user_errors_exit_2_without_a_traceback_in_a_subprocess(tmp_path):
  env = {**os.environ, "HW_NO_PROGRESS": "1"}
  for argv, message in (
      (["train", "q4.3", "--set", "grid={}", "--set", "learning_rate=nan"], "learning_rate"),
      (["reproduce", "--only", "q2.3", "--devices", "64"], "devices=64 in 'q2_3', but this "
                                                             "process has only"),
      (["reproduce", "--only", "q2.3", "--seed", "-1"], "seed must be a non-negative integer")):
    done = subprocess.run([sys.executable, "-m", "experiments", *argv, "--results-dir",
                           str(tmp_path / "r")], capture_output=True, text=True, env=env,
                          timeout=120)
    assert done.returncode == 2, (argv, done.stderr)
    assert "Traceback" not in done.stderr and message in _last_line(done.stderr), argv
  assert not (tmp_path / "r").exists()


def test_help_documents_the_exit_codes_and_promises_no_time(capsys):
  for argv in (["train", "--help"], ["reproduce", "--help"]):
    with pytest.raises(SystemExit):
      app.main(argv)
    text = " ".join(capsys.readouterr().out.split())
    assert "130" in text and "resume" in text and "2 bad" in text, argv
    assert "under 20 minutes" not in text
  assert app.main(["--help"]) == 0 and "130  interrupted" in capsys.readouterr().out


def test_force_retrains_instead_of_resuming(tmp_path, capsys):
  argv = ["train", "q9.9", "--binary-data", _binary_file(tmp_path), "--results-dir",
          str(tmp_path / "r"), "--set", "grid={}"]
  assert app.main(argv, catalog=_catalog(0.5)) == 0
  assert app.main([*argv, "--set", "epochs=3"], catalog=_catalog(0.5)) == 0
  assert "resuming after epoch 2" in capsys.readouterr().out
  assert app.main([*argv, "--set", "epochs=3", "--force"], catalog=_catalog(0.5)) == 0
  assert "resuming" not in capsys.readouterr().out


def test_every_file_of_a_train_run_is_under_its_results_folder(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  assert app.main(["train", "q9.9", "--binary-data", _binary_file(tmp_path), "--results-dir",
                   "r", "--set", "name=mine"], catalog=_catalog(0.5)) == 0
  assert sorted(p.name for p in tmp_path.iterdir()) == ["r", "user.pkl"]
  assert {"mine.json", "mine.png", "mine.metrics.jsonl", "checkpoints"} <= {
      p.name for p in (tmp_path / "r").iterdir()}


def test_hw_train_results_stay_out_of_the_reproduce_report(tmp_path, capsys):
  """An ad-hoc run in reproduce's folder is neither reused nor reported as its result."""
  folder = tmp_path / "results"
  assert app.main(["train", "q2.3", "--set", "epochs=2", "--set", "grid={}", "--set",
                   "repeat_seeds=()", "--results-dir", str(folder)]) == 0
  state = {"experiments": {"q2_3": {"title": "Q2.3", "status": "not run",
                                    "message": "not run yet"}}}
  text = report.write_report(folder, state, ["q2_3"]).read_text()
  assert "SHORT" not in text and "PASS" not in text and "Latest attempt" not in text
  assert ("Left out: q2_3.json in this folder was written by an ad-hoc `hw train` run, not "
          "by `hw reproduce`") in text

  def tiny(name, profile):
    config = registry.get_config(name, profile)
    return config if name != "q2_3" else config.replace(epochs=2, grid={}, repeat_seeds=())
  reproduce.main(["--only", "q2.3", "--results-dir", str(folder)], catalog=registry,
                 get_config=tiny)
  assert "already complete" not in capsys.readouterr().out  # retrained, not reused
  results = json.loads((folder / "q2_3.json").read_text())
  assert "origin" not in results
  text = (folder / "REPORT.md").read_text()
  assert "Left out" not in text and f"{100 * results['test_accuracy']:.2f}%" in text


def test_hw_finds_the_shared_data_folder_beside_the_clone_as_make_does(tmp_path, monkeypatch):
  clone = tmp_path / "clone"
  clone.mkdir()
  assert app.data_beside_clone(clone) is None
  (tmp_path / "shared" / "data").mkdir(parents=True)
  assert app.data_beside_clone(clone) == tmp_path / "shared" / "data"
  # this checkout: the Makefile's default `../shared/data`, relative to the clone
  makefile = (REPO / "Makefile").read_text()
  assert "HW_DATA_DIR ?= $(firstword $(wildcard ../shared/data))" in makefile
  expected = REPO.parent / "shared" / "data"
  assert app.data_beside_clone() == (expected if expected.is_dir() else None)
  monkeypatch.setattr(app, "data_beside_clone", lambda: tmp_path / "shared" / "data")
  monkeypatch.delenv("HW_DATA_DIR", raising=False)
  monkeypatch.setattr(sys, "argv", ["hw", "list", "--json"])
  assert app.main() == 0  # as the `hw` program: the default is applied
  assert os.environ["HW_DATA_DIR"] == str(tmp_path / "shared" / "data")
  monkeypatch.setenv("HW_DATA_DIR", "/somewhere/else")
  assert app.main() == 0 and os.environ["HW_DATA_DIR"] == "/somewhere/else"  # given: kept


def test_a_model_that_cannot_take_the_data_is_bad_input_named(tmp_path, capsys):
  assert app.main(["train", "q9.9", "--binary-data", _binary_file(tmp_path), "--results-dir",
                   str(tmp_path / "r"), "--set", "model=cnn"], catalog=_catalog(0.5)) == 2
  err = capsys.readouterr().err
  assert "Traceback" not in err and _last_line(err) == (
      "hw train: q9_9: this config cannot train on its data: ValueError: ConvNet expects NHWC "
      "images of rank 4, got shape (100, 5)")
