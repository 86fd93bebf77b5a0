"""Smoke test of the benchmark command (no timing assertions: speed is reported, not tested)."""
from __future__ import annotations

import importlib.util
import json
import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
HAS_TORCH = importlib.util.find_spec("torch") is not None


def test_quick_benchmark_writes_the_tables(tmp_path):
  command = [sys.executable, "-m", "benchmarks.run", "--quick", "--models", "q4_4",
             "--rounds", "1", "--seconds", "0.01", "--ops", "softmax_cross_entropy",
             "--out", str(tmp_path)]
  done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-3000:]

  header = next(line for line in done.stdout.splitlines() if line.startswith("| model |"))
  for column in ("a img/s", "b img/s", "c img/s", "a/b [IQR]", "a/c [IQR]", "a/c* [IQR]",
                 "epoch s a"):
    assert column in header
  assert "| softmax_cross_entropy | logits 100x10 |" in done.stdout

  result = json.loads((tmp_path / "bench.json").read_text())
  (model,) = result["models"]
  assert model["name"] == "q4_4"
  assert model["layers"] == "flat fc1000 relu fc10"
  expected = {"a", "b", "c"} if HAS_TORCH else {"a", "b"}
  assert expected <= set(model["images_per_s"])
  assert HAS_TORCH or set(model["images_per_s"]) == expected
  assert all(stats["median"] > 0 for stats in model["images_per_s"].values())
  assert ("a/c" in model["ratios"]) == HAS_TORCH
  # (a), (b) and (c) must be the same network
  assert len(set(model["num_params"].values())) == 1
  assert model["num_params"]["a"] == 784 * 1000 + 1000 + 1000 * 10 + 10
  (op,) = result["ops"]
  assert {"hw", "autodiff"} <= set(op["impls"])
  assert ("torch" in op["impls"]) == HAS_TORCH

  markdown = (tmp_path / "bench.md").read_text()
  assert "## Train-step throughput" in markdown and "## Per-op forward + backward" in markdown


def test_dropout_op_case_and_the_before_after_patch_is_undone(monkeypatch):
  monkeypatch.syspath_prepend(str(REPO))   # benchmarks/ is a folder of the repository
  import jax.numpy as jnp
  import numpy as np
  from benchmarks import architectures as arch
  from benchmarks import before_after, op_timings
  layers = (arch.Flatten(), arch.Dense(8), arch.Dropout(0.5), arch.Dense(arch.NUM_CLASSES))
  tiny = arch.Architecture("tiny", "tiny", "mlp", {}, layers, "test", (2, 2, 1), 10)
  (case,) = op_timings.cases_for([tiny], batch=3, ops=("dropout",))
  assert case.shape == "x 3x8, rate 0.5" and case.models == ["tiny"]
  for name in ("hw", "autodiff"):
    impl = case.jax_impls[name]
    x = np.asarray(impl.diff_args[0])
    y = np.asarray(impl.fn(*map(jnp.asarray, impl.diff_args), *map(jnp.asarray, impl.other_args)))
    assert np.all((y == 0) | np.isclose(y, 2 * x)), name
  current = (before_after.dropout_module.keep_mask,
             before_after.convolution._input_grad_transposed_conv)
  with before_after.Patched():
    assert before_after.dropout_module.keep_mask is before_after.old_keep_mask
  assert (before_after.dropout_module.keep_mask,
          before_after.convolution._input_grad_transposed_conv) == current
