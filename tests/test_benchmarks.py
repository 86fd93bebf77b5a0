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
  assert (out / "bench_ratios.png").stat().st_size > 5000
  return done.stdout, json.loads((out / "bench.json").read_text()), (out / "bench.md").read_text()


@pytest.fixture
def benchmarks(monkeypatch):
  monkeypatch.syspath_prepend(str(REPO))   # benchmarks/ is a folder of the repository
  import benchmarks.architectures
  import benchmarks.conv_algorithms
  import benchmarks.models_autodiff
  import benchmarks.op_timings
  import benchmarks.report
  import benchmarks.roofline
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
  assert model["a_impl"] == "hw.nn.models.create_model('mlp')"
  assert {"a", "b"} <= set(model["images_per_s"])
  assert all(stats["median"] > 0 for stats in model["images_per_s"].values())
  assert len(set(model["num_params"].values())) == 1   # (a), (b), (c): the same network
  assert model["num_params"]["a"] == 784 * 1000 + 1000 + 1000 * 10 + 10
  (op,) = result["ops"]
  assert {"hw", "autodiff"} <= set(op["impls"])
  assert "## Train-step throughput" in markdown and "## Per-op forward + backward" in markdown
  # the roofline column: the step's nominal FLOPs over its time, against this run's peak
  assert "a GFLOP/s (% peak)" in header and "hw GFLOP/s (% peak)" in markdown
  assert model["train_flops"] == 2 * 100 * (784 * 1000 * 2 + 1000 * 10 * 3)
  assert result["peak"]["peak_gflops"] > 0 and "xla" in result["peak"]["gflops"]
  assert "matmul peak" in markdown
  assert result["chart"] == "bench_ratios.png" and "(bench_ratios.png)" in markdown


def test_quick_benchmark_torch_column(quick_run):
  _, result, _ = quick_run
  (model,), (op,) = result["models"], result["ops"]
  if not HAS_TORCH:
    print(NO_TORCH)
    assert set(model["images_per_s"]) == {"a", "b"} and "torch" not in op["impls"]
    pytest.skip(NO_TORCH)
  assert "c" in model["images_per_s"] and "a/c" in model["ratios"]
  assert "torch" in op["impls"]


def _images(architecture, batch=2):
  shape = (batch, *architecture.image_shape)
  return jnp.asarray(np.random.default_rng(0).random(shape, dtype=np.float32))


def test_layer_lists_compute_the_hw_models(benchmarks):
  arch, jax_models = benchmarks.architectures, benchmarks.models_autodiff
  tolerance = jax_models.MIRROR_TOLERANCE
  for name in benchmarks.run.DEFAULT_MODELS + benchmarks.run.CIFAR_MODELS:
    architecture = arch.load(name)
    # q6_2 has batch norm and no dropout: train mode checks where its batch norms sit
    train = architecture.name == "q6_2"
    error = jax_models.mirror_error(architecture, _images(architecture), train=train)
    assert error < tolerance, name
  images = _images(arch.load("q5_4"))
  # train mode checks where batch norm sits (eval-mode BN at init is nearly the identity)
  small = arch.from_model("small", "", "cnn_bn", {"conv_blocks": ((2, 3),), "hidden_size": 4,
                                                  "dropout_rate": 0.0})
  assert jax_models.mirror_error(small, images, train=True) < tolerance
  layers = list(small.layers)
  relu = layers.index(arch.ReLU())
  layers[relu - 1], layers[relu] = layers[relu], layers[relu - 1]   # ReLU before BN: wrong
  wrong = dataclasses.replace(small, layers=tuple(layers))
  assert jax_models.mirror_error(wrong, images, train=True) > 1e-2


@pytest.mark.parametrize("module", ["hw", "autodiff"])
def test_a_step_in_halves_trains_as_the_step_over_the_batch(benchmarks, module):
  """(a) and (b) step the nets the engine steps in halves that way: the same parameters after
  a few steps, up to rounding (a net without dropout, so no masks differ)."""
  arch, jax_models = benchmarks.architectures, benchmarks.models_autodiff
  small = arch.from_model("small", "", "cnn", {"filters": 4, "filter_size": 3, "hidden_size": 8})
  net = small.module if module == "hw" else jax_models.AutodiffNet(tuple(small.layers))
  loss = jax_models.hw_loss if module == "hw" else jax_models.autodiff_loss
  images = _images(small, batch=10)
  labels = jnp.arange(10, dtype=jnp.int32)
  trainers = [jax_models.JaxTrainer(net, loss, images, labels, halves=halves)
              for halves in (False, True)]
  for trainer in trainers:
    trainer.run(3)
  whole, halved = (jax.tree_util.tree_leaves(trainer._state[0]) for trainer in trainers)
  for a, b in zip(whole, halved):
    np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-7)
  assert trainers[1].last_loss == pytest.approx(trainers[0].last_loss, rel=1e-5)
  initial = jax.tree_util.tree_leaves(jax_models.JaxTrainer(net, loss, images, labels)._state[0])
  assert not all(np.array_equal(a, b) for a, b in zip(initial, halved))


def test_the_cifar_nets_are_benchmarked_on_cifar_shapes(benchmarks):
  arch, op_timings = benchmarks.architectures, benchmarks.op_timings
  handout, improved = (arch.load(name) for name in benchmarks.run.CIFAR_MODELS)
  assert (handout.name, improved.name) == ("q6_1", "q6_2")
  assert handout.model == "cifar_handout" and improved.model == "cifar_improved"
  assert handout.image_shape == improved.image_shape == (32, 32, 3)
  assert handout.epoch_images == 45_000
  assert arch.describe(handout.layers) == (
      "conv8x3/same pool2 conv16x3/same pool2 conv32x3/same conv32x3/same pool2 "
      "conv64x3/same conv64x3/same pool2 conv64x3/same conv64x3/same pool2 flat fc64 fc10")
  assert arch.describe(improved.layers).startswith("conv32x3/same bn relu pool2 conv64x3/same")
  assert arch.describe(improved.layers).endswith(
      "conv256x3/same bn relu pool2 flat fc256 relu fc10")
  assert not any(layer.use_bias for layer in improved.layers if isinstance(layer, arch.Conv))
  shapes = [case.shape for case in op_timings.cases_for([handout], batch=100, ops=["conv2d"])]
  assert shapes[0] == "x 100x32x32x3, w 3x3x3x8, SAME, no dX"
  with_dropout = arch.from_model("d", "", "cifar_improved", {"dropout_rate": 0.3}, "cifar10")
  assert arch.describe(with_dropout.layers).endswith("flat drop0.3 fc256 relu drop0.3 fc10")


@pytest.mark.skipif(not HAS_TORCH, reason=NO_TORCH)
def test_torch_layer_lists_compute_the_same_scores(benchmarks, monkeypatch):
  """(c) with (b)'s variables gives (b)'s scores (and so (a)'s), for every benchmarked net."""
  import torch

  import benchmarks.models_torch as models_torch
  arch, tolerance = benchmarks.architectures, benchmarks.models_autodiff.MIRROR_TOLERANCE
  for name in benchmarks.run.DEFAULT_MODELS + benchmarks.run.CIFAR_MODELS:
    architecture = arch.load(name)
    no_dropout = not any(isinstance(layer, arch.Dropout) for layer in architecture.layers)
    for train in (False, True) if no_dropout else (False,):
      error = models_torch.mirror_error(architecture, np.asarray(_images(architecture, 3)),
                                        train=train)
      assert error < tolerance, (name, train)
  small = arch.from_model("small", "", "cnn_bn", {"conv_blocks": ((2, 3),), "hidden_size": 4,
                                                  "dropout_rate": 0.0})
  images = np.asarray(_images(small, 3))
  assert models_torch.mirror_error(small, images, train=True) < tolerance
  monkeypatch.setattr(torch.nn, "ReLU", torch.nn.Tanh)   # (c) alone computes something else
  assert models_torch.mirror_error(small, images, train=True) > 1e-2


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
  from hw import backends
  sweep = benchmarks.conv_algorithms
  x, w, dy = jnp.ones((2, 6, 6, 1)), jnp.ones((3, 3, 1, 2)), jnp.ones((2, 4, 4, 2))
  convs = {}
  for name in ("lax", "im2col"):   # the thresholds still steer hw.ops.conv2d
    with sweep.policy(sweep.POLICIES[name]):
      jaxpr = jax.make_jaxpr(  # fresh functions: traced under this policy
          lambda x, w: jax.vjp(lambda x, w: ops.conv2d(x, w), x, w)[1](dy))(x, w)
    convs[name] = str(jaxpr).count("conv_general_dilated")
  assert convs["lax"] > 0 and convs["im2col"] == 0

  before = backends.TABLE["cpu"]
  policies = {name: sweep.POLICIES[name] for name in ("lax", "im2col")}
  rows = sweep.sweep([(6, 1, 2, 3, "VALID")], batch=2, rounds=1, target_s=0.001,
                     policies=policies)
  assert [row["shape"] for row in rows] == ["x 2x6x6x1, w 3x3x1x2, VALID",
                                            "x 2x6x6x1, w 3x3x1x2, VALID, no dX"]
  assert all(set(row["cpu_ms"]) == set(policies) for row in rows)
  assert backends.TABLE["cpu"] == before


def test_roofline_counts_the_direct_arithmetic_of_the_passes_a_step_needs(benchmarks):
  arch, roofline = benchmarks.architectures, benchmarks.roofline
  conv_pass = 2 * 4 * 8 * 8 * 3 * 3 * 3 * 16          # SAME: 8×8 outputs, 3×3×3 taps, 16 out
  assert roofline.layer_flops(arch.Conv(16, 3, "SAME"), (4, 8, 8, 3),
                              input_grad=False) == 2 * conv_pass   # forward + dW
  assert roofline.layer_flops(arch.Conv(16, 3, "VALID"), (4, 8, 8, 3),
                              input_grad=True) == 3 * 2 * 4 * 6 * 6 * 27 * 16
  assert roofline.layer_flops(arch.Dense(10), (4, 5, 2), input_grad=True) == 3 * 2 * 4 * 10 * 10
  assert roofline.layer_flops(arch.MaxPool(), (4, 8, 8, 3), input_grad=True) == 0
  gflops, fraction = roofline.rate(4e9, 2.0, 4.0)
  assert (gflops, fraction) == (2.0, 0.5)
  assert roofline.rate(None, 1.0, 4.0) == (None, None)
  assert roofline.rate(1e9, 1.0, None) == (1.0, None)


def _stats(median, q1, q3):
  return {"median": median, "q1": q1, "q3": q3}


def fake_result(*, torch_column: bool = True) -> dict:
  """A bench.json-shaped result of three models (made-up numbers, for the report only)."""
  models = []
  for name, ab, ac in (("m1", (0.98, 0.95, 1.02), (1.08, 1.04, 1.11)),
                       ("m2", (3.2, 3.1, 3.9), (0.81, 0.77, 0.92)),
                       ("m3", (2.0, 1.5, 2.5), (1.2, 1.1, 1.4))):
    impls = ["a", "b", "c"] if torch_column else ["a", "b"]
    ratios = {"a/b": _stats(*ab)}
    if torch_column:
      ratios.update({"a/c": _stats(*ac), "a/c*": _stats(*ac)})
    models.append({
        "name": name, "title": f"model {name}", "layers": "flat fc10", "a_impl": "hw",
        "has_conv": name != "m1", "num_params": dict.fromkeys(impls, 7850),
        "images_per_s": {k: _stats(1e3, 9e2, 1.1e3) for k in impls}, "ratios": ratios,
        "step_ms": dict.fromkeys(impls, 100.0), "epoch_s_estimate": dict.fromkeys(impls, 54.0)})
  machine = {"date_utc": "2000-01-02 03:04:05", "cpu_model": "test", "cpu_count": 2,
             "load_average_at_start": [0.5, 0.5, 0.5], "python": "3", "jax": "0",
             "jaxlib": "0", "jax_backend": "cpu", "flax": "0", "optax": "0", "torch": None}
  return {"command": "python -m benchmarks.run (made up)", "machine": machine,
          "torch_threads": [], "settings_text": "Settings: made up.", "noise_note": None,
          "models": models, "ops": [], "epochs": [], "reproduce": None,
          "load_average_at_end": None, "wall_s": 1.0}


@pytest.mark.parametrize("torch_column", [True, False])
def test_ratio_chart(benchmarks, tmp_path, torch_column):
  from hw import plotting
  report = benchmarks.report
  result = fake_result(torch_column=torch_column)
  fig = report.ratio_figure(result)
  ax, = fig.axes
  bars = [patch.get_height() for patch in ax.patches]   # a/b of each model, then a/c*
  assert bars == [0.98, 3.2, 2.0] + ([1.08, 0.81, 1.2] if torch_column else [])
  assert [t.get_text() for t in ax.get_xticklabels()] == ["m1", "m2", "m3"]
  parity = [line for line in ax.lines if line.get_linestyle() == "--"]
  assert len(parity) == 1 and set(parity[0].get_ydata()) == {1.0}
  labels = [t.get_text() for t in ax.get_legend().get_texts()]
  assert any(label.startswith("a/b") for label in labels)
  assert any(label.startswith("a/c*") for label in labels) == torch_column
  assert plotting.legend_overlaps_data(fig) == []
  plotting.pyplot().close(fig)

  md_path, json_path, chart_path = report.write(result, str(tmp_path))
  assert chart_path == str(tmp_path / "bench_ratios.png")
  assert (tmp_path / "bench_ratios.png").stat().st_size > 5000
  assert json.loads((tmp_path / "bench.json").read_text())["chart"] == "bench_ratios.png"
  assert "![" in (tmp_path / "bench.md").read_text()


def test_ratio_chart_needs_a_measured_model(benchmarks, tmp_path):
  report = benchmarks.report
  result = {**fake_result(), "models": []}
  assert report.ratio_figure(result) is None
  assert report.write(result, str(tmp_path))[2] is None
  assert json.loads((tmp_path / "bench.json").read_text())["chart"] is None
  assert not (tmp_path / "bench_ratios.png").exists()


def test_report_is_rendered_again_from_a_saved_json(tmp_path):
  saved = tmp_path / "saved"
  saved.mkdir()
  (saved / "bench.json").write_text(json.dumps(fake_result()))
  command = [sys.executable, "-m", "benchmarks.report", "--from-json",
             str(saved / "bench.json"), "--out", str(tmp_path / "again")]
  done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
  assert done.returncode == 0, done.stderr[-3000:]
  again = tmp_path / "again"
  assert (again / "bench_ratios.png").stat().st_size > 5000
  markdown = (again / "bench.md").read_text()
  assert "| m2 |" in markdown and "3.20 [3.10–3.90]" in markdown
  assert "(bench_ratios.png)" in markdown and "Date (UTC): 2000-01-02 03:04:05" in markdown
  assert json.loads((again / "bench.json").read_text())["models"] == fake_result()["models"]


def test_conv_layers_against_autodiff_count_slower_only_when_the_whole_iqr_is_below_one(
    benchmarks):
  report = benchmarks.report

  def conv(shape, median, q1, q3):
    return {"op": "conv2d", "shape": shape, "impls": {},
            "speedup_of_hw_fb": {"autodiff": _stats(median, q1, q3)}}

  pool = {"op": "max_pool", "shape": "p", "impls": {},
          "speedup_of_hw_fb": {"autodiff": _stats(0.5, 0.4, 0.6)}}
  tie = conv("tie", 0.95, 0.90, 1.01)
  assert report.conv_op_target([pool]) is None
  met = report.conv_op_target([tie, conv("fast", 1.5, 1.4, 1.6), pool])
  assert met == {"layers": 2, "slower": [], "met": True}
  assert report._op_target_lines(met) == [
      "- conv2d per op, autodiff/hw f+b ≥ 1 on every layer (slower only where the whole IQR "
      "is below 1): **met** on all 2 layers"]
  missed = report.conv_op_target([tie, conv("8x8", 0.9, 0.85, 0.99)])
  assert not missed["met"] and [t["shape"] for t in missed["slower"]] == ["8x8"]
  assert report._op_target_lines(missed)[0].endswith(
      "**missed** on 1 of 2 layers: 8x8 0.90 [0.85–0.99]")
  # with autodiff timed against itself: below 1 but within a tie's spread is a tie
  spread = dict(conv("8x8", 0.93, 0.89, 0.98), autodiff_self=_stats(1.0, 0.88, 1.1))
  narrow = dict(conv("8x8", 0.93, 0.89, 0.98), autodiff_self=_stats(1.0, 0.99, 1.01))
  assert report.conv_op_target([spread]) == {"layers": 1, "slower": [], "met": True,
                                             "self_spread": [0.88, 1.1]}
  assert not report.conv_op_target([narrow])["met"]
  assert not report.conv_op_target([dict(conv("8x8", 0.8, 0.75, 0.85),
                                         autodiff_self=_stats(1.0, 0.88, 1.1))])["met"]
  assert "second jit of itself, 0.88–1.10 over the layers): **met** on all 1 layers" in (
      report._op_target_lines(report.conv_op_target([spread]))[0])
