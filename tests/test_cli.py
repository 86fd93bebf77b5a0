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
                   "--results-dir", str(tmp_path / "r")]) == 1
  assert "is not an existing folder" in capsys.readouterr().err
  blocker = tmp_path / "file"
  blocker.write_text("x")
  assert app.main(["train", "q2.3", "--set", "epochs=1", "--results-dir",
                   str(blocker / "sub")]) == 2
  assert "cannot use --results-dir" in capsys.readouterr().err
