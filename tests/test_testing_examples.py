"""The example project (examples/) runs with the hw.testing pytest plugin: its tests pass,
every planted wrong rule is detected, and the session ends with the per-op summary."""
from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def test_plugin_entry_point_is_declared():
  project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
  assert project["entry-points"]["pytest11"] == {"hw.testing.plugin": "hw.testing.plugin"}


def test_example_project_passes_with_the_plugin():
  env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(EXAMPLES)])}
  env.pop("PYTEST_ADDOPTS", None)
  proc = subprocess.run(
      [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist",
       "-p", "no:randomly"],
      cwd=EXAMPLES, env=env, capture_output=True, text=True, timeout=600)
  out = proc.stdout + proc.stderr
  assert proc.returncode == 0, out[-4000:]
  assert "hw.testing: worst relative error per check" in out
  for name in ("logsumexp:", "layer_norm:"):
    line = next(l for l in out.splitlines() if l.startswith(name))
    assert "pass; worst rel err: " in line and "reference" in line, line
  assert "test_planted_bug_is_detected" not in out  # no failures listed
