"""The Q7 study: the probes, the dropout rules, the learning-rate runs, and a run on tiny
data; the real quick run is marked slow."""
from __future__ import annotations

import json
import math
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.studies import q7
from hw.engine.randomness import init_key
from hw.nn import models


def _mlp(hidden, **kwargs):
  model = models.create_model("mlp", num_outputs=10, hidden_sizes=hidden, **kwargs)
  params = model.init({"params": init_key(0), "dropout": init_key(1)}, jnp.zeros((1, 784)),
                      train=False)["params"]
  return model, params


def _batch(n=64, seed=0):
  rng = np.random.default_rng(seed)
  return (jnp.asarray(rng.normal(size=(n, 784)), jnp.float32),
          jnp.asarray(rng.integers(0, 10, n), jnp.int32))


def test_the_sigmoid_net_passes_back_far_less_gradient_than_the_relu_net():
  x, y = _batch()
  sigmoid, sigmoid_params = _mlp((32,) * 6, activation="sigmoid")
  relu, relu_params = _mlp((32,) * 6, activation="relu")
  s = q7.probe(sigmoid, sigmoid_params, x, y, "sigmoid")
  r = q7.probe(relu, relu_params, x, y, "relu")
  assert len(s["grad_norm"]) == 7 and len(s["saturated"]) == len(s["mean_derivative"]) == 6
  assert all(0 < float(d) <= 0.25 for d in s["mean_derivative"])
  assert all(0.3 < float(m) < 0.7 for m in s["mean_output"])
  assert q7.layer_gain({"grad_norm": [float(v) for v in s["grad_norm"]]}) < 0.5
  assert float(s["grad_norm"][0] / s["grad_norm"][-1]) < 0.01 * float(
      r["grad_norm"][0] / r["grad_norm"][-1])


def test_mlp_activation_is_checked():
  with pytest.raises(ValueError, match="activation must be one of relu, sigmoid, tanh"):
    models.create_model("mlp", num_outputs=10, activation="swish")


def test_dropout_rules():
  model, params = _mlp((64, 32), dropout_rate=0.5)
  x, _ = _batch(200)
  scores, outputs = q7.forward(params, x, rate=0.5, rule="inverted")
  np.testing.assert_allclose(scores, model.apply({"params": params}, x, train=False),
                             rtol=1e-5, atol=1e-5)
  _, raw = q7.forward(params, x, rate=0.5, rule="no_rescale")
  np.testing.assert_allclose(raw[0], 2 * outputs[0], rtol=1e-6)
  assert float(jnp.mean(raw[1])) > 2 * float(jnp.mean(outputs[1]))  # compounds
  _, masked = q7.forward(params, x, rate=0.5, rule="train", key=jax.random.key(0))
  active = np.asarray(outputs[0]) > 0
  assert 0.4 < float(np.mean(np.asarray(masked[0])[active] == 0)) < 0.6  # p = 0.5 dropped
  assert abs(float(jnp.mean(masked[0]) / jnp.mean(outputs[0])) - 1) < 0.1
  with pytest.raises(ValueError, match="unknown dropout rule"):
    q7.forward(params, x, rate=0.5, rule="halve")


def test_evaluate_rules_reports_every_rule():
  _, params = _mlp((16,), dropout_rate=0.5)
  images = np.random.default_rng(0).random((30, 28, 28, 1)).astype(np.float32)
  labels = np.arange(30) % 10
  rules = q7.evaluate_rules(params, images, labels, rate=0.5, mask_draws=2, mc_passes=3, seed=0,
                            batch=16)
  assert set(rules) == {"inverted", "no_rescale", "masks_on", "masks_averaged"}
  assert len(rules["masks_on"]["accuracies"]) == 2 and rules["masks_averaged"]["passes"] == 3
  assert rules["no_rescale"]["mean_activation"][0] == pytest.approx(
      2 * rules["inverted"]["mean_activation"][0], rel=1e-5)


def test_sgd_run_detects_divergence_and_clipping_prevents_it():
  model, params = _mlp((16,))
  x, y = _batch(200)
  copy = lambda: jax.tree_util.tree_map(jnp.array, params)
  kwargs = dict(steps=40, seed=0, log_every=5)
  calm = q7.sgd_run(model, copy(), x, y, q7.LrRun("calm", 0.01, 20), **kwargs)
  wild = q7.sgd_run(model, copy(), x, y, q7.LrRun("wild", 1e4, 20), **kwargs)
  clipped = q7.sgd_run(model, copy(), x, y, q7.LrRun("clipped", 1e4, 20, clip=1e-4), **kwargs)
  assert calm["diverged_at_step"] is None and not q7.is_unstable(calm)
  assert calm["steps"] == list(range(5, 45, 5)) and calm["final_loss"] < calm["initial_loss"]
  assert q7.is_unstable(wild) and (wild["diverged_at_step"] is not None
                                  or wild["final_loss"] > wild["initial_loss"])
  assert clipped["diverged_at_step"] is None
  assert q7.schedule("warmup_cosine", 1.0, 100)(0) == 0.0
  assert q7.schedule("cosine", 1.0, 100)(100) == pytest.approx(0.0, abs=1e-7)
  with pytest.raises(ValueError, match="unknown schedule"):
    q7.schedule("linear", 1.0, 10)


def _tiny_mnist(train=600, test=200, seed=0):
  rng = np.random.default_rng(seed)

  def split(n):
    labels = rng.integers(0, 10, n).astype(np.int32)
    images = np.zeros((n, 28, 28, 1), np.float32)
    for i, label in enumerate(labels):
      images[i, 6 + label, 6:22] = 1.0
    return types.SimpleNamespace(images=images, labels=labels)
  return types.SimpleNamespace(train=split(train), test=split(test), source="tiny stand-in")


TINY = q7.Settings(deep_train_size=None, deep_hidden=(16,) * 4, deep_epochs=2, probe_size=50,
                   dropout_hidden=(16, 16), dropout_epochs=1, mask_draws=2, mc_passes=2,
                   lr_hidden=(16,), lr_steps=20, lr_sweep=(0.01, 1e4), lr_large_batch=100,
                   lr_log_every=5, validation_size=None)


def test_the_study_runs_on_tiny_data(tmp_path):
  results = q7.run(tmp_path, profile="quick", data_dir=None, settings=TINY,
                   dataset=_tiny_mnist())
  assert set(results["sigmoid_vs_relu"]) == {"sigmoid", "relu", "sigmoid_large_init"}
  assert len(results["sigmoid_vs_relu"]["sigmoid"]["probes"]) == 3  # init + 2 epochs
  assert set(results["dropout"]["rules"]) == {"inverted", "no_rescale", "masks_on",
                                              "masks_averaged"}
  assert [r["learning_rate"] for r in results["learning_rate"]["sweep"]] == [0.01, 1e4]
  assert len(results["learning_rate"]["fixes"]) == 5
  assert results["meets_target"] is None
  for figure in results["figures"]:
    assert (tmp_path / figure).stat().st_size > 1000
  text = "\n".join(results["summary"])
  for heading in ("**1.", "**2.", "**3."):
    assert heading in text
  inverted = results["dropout"]["rules"]["inverted"]["accuracy"]
  assert f"{100 * inverted:.2f}%" in text
  deep = results["sigmoid_vs_relu"]["relu"]
  assert deep["top_k"]["top1_error"] == pytest.approx(1 - deep["test_accuracy"], abs=1e-6)
  assert results["top_k"]["deep MLP, relu"] == deep["top_k"]
  for entry in results["learning_rate"]["sweep"]:  # a run that diverged has no classifier
    errors = results["top_k"].get(f"learning-rate sweep: {entry['label']}")
    assert (errors is None) == (entry["test_accuracy"] is None)
    if errors is not None:
      assert errors["top1_error"] == pytest.approx(1 - entry["test_accuracy"], abs=1e-6)
  for errors in results["top_k"].values():
    assert 0 <= errors["top5_error"] <= errors["top1_error"] <= 1
  json.dumps(results)
  assert not any(isinstance(v, float) and math.isnan(v) for v in _leaves(results))


def _leaves(value):
  if isinstance(value, dict):
    for v in value.values():
      yield from _leaves(v)
  elif isinstance(value, (list, tuple)):
    for v in value:
      yield from _leaves(v)
  else:
    yield value


@pytest.mark.slow
@pytest.mark.real_data
@pytest.mark.timeout(3600)
def test_quick_profile_shows_the_three_answers(hw_data_dir, tmp_path):
  results = q7.run(tmp_path, profile="quick", data_dir=hw_data_dir)
  deep = results["sigmoid_vs_relu"]
  assert deep["relu"]["test_accuracy"] > deep["sigmoid"]["test_accuracy"] + 0.3
  rules = results["dropout"]["rules"]
  assert rules["inverted"]["accuracy"] > rules["masks_on"]["accuracy"]
  assert rules["no_rescale"]["loss"] > rules["inverted"]["loss"]
  assert any(r["unstable"] for r in results["learning_rate"]["sweep"])
  assert any(not f["unstable"] for f in results["learning_rate"]["fixes"])
