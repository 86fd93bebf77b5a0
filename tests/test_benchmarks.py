"""The benchmark command and what makes its comparisons fair: (a), (b) and (c) are the same
network, and each per-op case times implementations that compute the same thing. No
timing assertions: speed is reported, not tested."""
from __future__ import annotations

import dataclasses
import functools
import importlib.util
import json
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
HAS_TORCH = importlib.util.find_spec("torch") is not None
NO_TORCH = "torch is not installed (make bench installs it): the PyTorch column is not checked"


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
  """One smoke run of ``python -m benchmarks.run`` on the MLP: (stdout, bench.json, bench.md)."""
  out = tmp_path_factory.mktemp("bench")
  command = [sys.executable, "-m", "benchmarks.run", "--quick", "--models", "q4_4",
             "--rounds", "1", "--seconds", "0.01", "--ops", "softmax_cross_entropy",
             "--out", str(out)]
  done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-3000:]
  return done.stdout, json.loads((out / "bench.json").read_text()), (out / "bench.md").read_text()


@pytest.fixture
def benchmarks(monkeypatch):
  monkeypatch.syspath_prepend(str(REPO))   # benchmarks/ is a folder of the repository
  import benchmarks.architectures
  import benchmarks.conv_algorithms
  import benchmarks.models_autodiff
  import benchmarks.op_timings
  import benchmarks.run
  return benchmarks


def test_help(benchmarks, capsys):
  with pytest.raises(SystemExit) as exit_info:
    benchmarks.run.parse_args(["--help"])
  assert exit_info.value.code == 0
  assert "--quick" in capsys.readouterr().out


def test_quick_benchmark_writes_the_tables(quick_run):
  stdout, result, markdown = quick_run
  header = next(line for line in stdout.splitlines() if line.startswith("| model |"))
  for column in ("a img/s", "b img/s", "c img/s", "a/b [IQR]", "a/c [IQR]", "a/c* [IQR]",
                 "epoch s a"):
    assert column in header
  assert "| softmax_cross_entropy | logits 100x10 |" in stdout

  (model,) = result["models"]
  assert model["name"] == "q4_4"
  assert model["layers"] == "flat fc1000 relu fc10"
  assert model["a_impl"] == "hw.models.create_model('mlp')"
  assert {"a", "b"} <= set(model["images_per_s"])
  assert all(stats["median"] > 0 for stats in model["images_per_s"].values())
  assert len(set(model["num_params"].values())) == 1   # (a), (b), (c): the same network
  assert model["num_params"]["a"] == 784 * 1000 + 1000 + 1000 * 10 + 10
  (op,) = result["ops"]
  assert {"hw", "autodiff"} <= set(op["impls"])
  assert "## Train-step throughput" in markdown and "## Per-op forward + backward" in markdown


def test_quick_benchmark_torch_column(quick_run):
  _, result, _ = quick_run
  (model,), (op,) = result["models"], result["ops"]
  if not HAS_TORCH:
    print(NO_TORCH)
    assert set(model["images_per_s"]) == {"a", "b"} and "torch" not in op["impls"]
    pytest.skip(NO_TORCH)
  assert "c" in model["images_per_s"] and "a/c" in model["ratios"]
  assert "torch" in op["impls"]


def test_layer_lists_compute_the_hw_models(benchmarks):
  arch, jax_models = benchmarks.architectures, benchmarks.models_autodiff
  tolerance = jax_models.MIRROR_TOLERANCE
  images = jnp.asarray(np.random.default_rng(0).random((2, 28, 28, 1), dtype=np.float32))
  for name in benchmarks.run.DEFAULT_MODELS:
    architecture = arch.load(name)
    assert jax_models.mirror_error(architecture, images, train=False) < tolerance, name
  # train mode checks where batch norm sits (eval-mode BN at init is nearly the identity)
  small = arch.from_model("small", "", "cnn_bn", {"conv_blocks": ((2, 3),), "hidden_size": 4,
                                                  "dropout_rate": 0.0})
  assert jax_models.mirror_error(small, images, train=True) < tolerance
  layers = list(small.layers)
  relu = layers.index(arch.ReLU())
  layers[relu - 1], layers[relu] = layers[relu], layers[relu - 1]   # ReLU before BN: wrong
  wrong = dataclasses.replace(small, layers=tuple(layers))
  assert jax_models.mirror_error(wrong, images, train=True) > 1e-2


def output_and_vjp(fn, diff, other):
  out, vjp = jax.vjp(lambda *d: fn(*d, *other), *diff)
  return out, vjp(jnp.ones_like(out))


def test_op_cases_compare_like_with_like(benchmarks):
  """Every per-op case of a small CNN: the JAX implementations give the same output and
  VJP (a first layer's case has no dX; a later one has)."""
  arch, jax_models, op_timings = (benchmarks.architectures, benchmarks.models_autodiff,
                                  benchmarks.op_timings)
  layers = (arch.Conv(2, 3, "SAME"), arch.MaxPool(2), arch.Conv(3, 3, use_bias=False),
            arch.BatchNorm(), arch.ReLU(), arch.Dropout(0.5), arch.Flatten(),
            arch.Dense(arch.NUM_CLASSES))
  tiny = dataclasses.replace(arch.load("q5_4"), name="tiny", layers=layers,
                             image_shape=(8, 8, 1))
  cases = op_timings.cases_for([tiny], batch=3)
  assert [case.op for case in cases] == ["conv2d", "max_pool", "conv2d", "batch_norm",
                                         "dropout", "linear", "softmax_cross_entropy"]
  assert [case.shape for case in cases if case.op == "conv2d"] == [
      "x 3x8x8x1, w 3x3x1x2, SAME, no dX", "x 3x4x4x2, w 3x3x2x3, VALID"]
  for case in cases:
    results = {}
    for name, impl in case.jax_impls.items():
      diff = [jnp.asarray(a) for a in impl.diff_args]
      other = [jnp.asarray(a) for a in impl.other_args]
      run = functools.partial(output_and_vjp, impl.fn)
      results[name] = jax_models.compile_quickly(run, diff, other)(diff, other)
    if case.op == "dropout":   # different masks: each unit is dropped or scaled by 1/(1 - 0.5)
      x = case.jax_impls["hw"].diff_args[0]
      for name, (out, _) in results.items():
        assert np.all((out == 0) | np.isclose(out, 2 * x)), name
      continue
    for name, got in results.items():
      for g, w in zip(jax.tree_util.tree_leaves(got),
                      jax.tree_util.tree_leaves(results["autodiff"])):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4, err_msg=f"{case.shape} {name}")


def test_conv_algorithm_sweep(benchmarks):
  from hw import ops
  from hw.ops import convolution
  sweep = benchmarks.conv_algorithms
  x, w, dy = jnp.ones((2, 6, 6, 1)), jnp.ones((3, 3, 1, 2)), jnp.ones((2, 4, 4, 2))
  convs = {}
  for name in ("lax", "im2col"):   # the thresholds still steer hw.ops.conv2d
    with sweep.policy(sweep.POLICIES[name]):
      jaxpr = jax.make_jaxpr(  # fresh functions: traced under this policy
          lambda x, w: jax.vjp(lambda x, w: ops.conv2d(x, w), x, w)[1](dy))(x, w)
    convs[name] = str(jaxpr).count("conv_general_dilated")
  assert convs["lax"] > 0 and convs["im2col"] == 0

  before = [getattr(convolution, knob) for knob in sweep.KNOBS]
  policies = {name: sweep.POLICIES[name] for name in ("lax", "im2col")}
  rows = sweep.sweep([(6, 1, 2, 3, "VALID")], batch=2, rounds=1, target_s=0.001,
                     policies=policies)
  assert [row["shape"] for row in rows] == ["x 2x6x6x1, w 3x3x1x2, VALID",
                                            "x 2x6x6x1, w 3x3x1x2, VALID, no dX"]
  assert all(set(row["cpu_ms"]) == set(policies) for row in rows)
  assert [getattr(convolution, knob) for knob in sweep.KNOBS] == before


def test_xla_cpu_options_quick_checks_results(tmp_path):
  """`python -m benchmarks.xla_cpu_options --quick` on tiny shapes with two settings: the
  report is written, and the correctness check marks a deliberately perturbed setting
  WRONG while the default passes (so the check can fail)."""
  command = [sys.executable, "-m", "benchmarks.xla_cpu_options", "--quick",
             "--settings", "default,fast_math", "--perturb", "fast_math",
             "--hidden", "16", "--batch", "8", "--rounds", "1", "--seconds", "0.01",
             "--out", str(tmp_path)]
  done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
  assert done.returncode == 0, done.stderr[-3000:]
  result = json.loads((tmp_path / "xla_cpu_dense.json").read_text())
  markdown = (tmp_path / "xla_cpu_dense.md").read_text()
  verdicts = result["correctness"]
  assert verdicts["default"]["verdict"] == "ok" and verdicts["default"]["worst"] == 0
  assert verdicts["fast_math"]["verdict"] == "WRONG"
  assert verdicts["fast_math"]["worst"] == pytest.approx(1e-3, rel=0.05)
  assert set(result["summary"]) == {"default", "fast_math"}
  assert result["summary"]["fast_math"]["step_ms"]["median"] > 0
  assert result["hlo_libraries"]["default"]["dot ops"] > 0
  assert "## What helped and what not" in markdown and "| fast_math |" in markdown
  assert "WRONG results, never to be used" in result["findings"]
  assert "Recommended" not in result["findings"]   # the only other setting is WRONG
  assert "fewer than 5: no speed verdicts" in result["findings"]
