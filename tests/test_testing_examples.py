"""The example project (examples/) runs with the hw.testing pytest plugin: its tests pass,
every planted wrong rule is detected, and the session ends with the per-op summary; with
PyTorch installed, the torch twins of the planted rules match the JAX rules and
examples/compare.py's gradcheck column runs."""
from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

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


@pytest.fixture
def torch_twins(monkeypatch):
  """``vjp_demo.torch_twins`` and ``compare`` imported from examples/ (needs PyTorch)."""
  pytest.importorskip(
      "torch", reason="PyTorch is not installed (`make bench` installs it): "
                      "the gradcheck column of examples/compare.py is not run")
  monkeypatch.syspath_prepend(str(EXAMPLES))
  import compare
  from vjp_demo import planted, torch_twins
  return compare, planted, torch_twins


def test_torch_twins_have_the_jax_rules_forward_and_backward(torch_twins):
  import jax
  import torch
  _, planted, twins = torch_twins
  for name, p in planted.PLANTED.items():
    for jax_f, twin in ((p.f, twins.PLANTED[name]), (planted.CORRECT[name].f, twins.CORRECT[name])):
      args = p.args()
      with jax.enable_x64(True):
        y, vjp = jax.vjp(jax_f, *args)
        cotangent = np.random.default_rng(1).standard_normal(np.shape(y))
        expected = vjp(cotangent)
      inputs = twins.inputs(args)
      y_torch = twin.apply(*inputs)
      got = torch.autograd.grad(y_torch, inputs, torch.from_numpy(cotangent))
      np.testing.assert_allclose(y_torch.detach().numpy(), y, rtol=1e-13, atol=1e-13,
                                 err_msg=f"{twin.__name__} forward (twin of {name})")
      for i, (g, e) in enumerate(zip(got, expected)):
        # lse_nondeterministic carries 1e-12 relative host noise in both rules
        np.testing.assert_allclose(g.numpy(), e, rtol=1e-10, atol=1e-13,
                                   err_msg=f"{twin.__name__} gradient {i} (twin of {name})")


def test_gradcheck_column(torch_twins):
  compare, planted, _ = torch_twins
  order1 = compare.TOOLS["gradcheck (defaults)"]
  order2 = compare.TOOLS["gradcheck + gradgradcheck"]
  # a wrong Jacobian far outside gradcheck's tolerance (atol 1e-5, rtol 1e-3) is detected
  for name in ("lse_unnormalised", "ln_wrong_axis"):
    assert compare.raises(order1, planted.PLANTED[name]), name
  # every correct twin passes, except relu at exact zeros (central differences give 0.5)
  alarms = {name for name, p in planted.CORRECT.items() if compare.raises(order1, p)}
  assert alarms == {"relu_one_at_zero"}, alarms
  # a right first derivative with a wrong second one: only gradgradcheck sees it
  sigmoid = planted.PLANTED["sigmoid_no_second_order"]
  assert not compare.raises(order1, sigmoid)
  assert compare.raises(order2, sigmoid)
  assert not compare.raises(order2, planted.CORRECT["sigmoid_no_second_order"])
