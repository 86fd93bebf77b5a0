"""The HK6 equivariance study: shifts, canvases, the direct equivariance check, and a run on
tiny data; the real quick run is marked slow."""
from __future__ import annotations

import json
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.studies import equivariance as eq
from hw.engine.randomness import init_key
from hw.nn import models


def test_shift_moves_down_right_with_zero_fill_and_back():
  images = np.arange(2 * 5 * 5, dtype=np.float32).reshape(2, 5, 5, 1) + 1
  moved = eq.shift(images, 2, -1)
  assert moved[0, 2, 0, 0] == images[0, 0, 1, 0] and moved[1, 4, 3, 0] == images[1, 2, 4, 0]
  assert np.all(moved[:, :2] == 0) and np.all(moved[:, :, 4] == 0)
  np.testing.assert_array_equal(eq.shift(moved, -2, 1)[:, :3, 1:], images[:, :3, 1:])
  assert not eq.shift(images, 5, 0).any() and np.array_equal(eq.shift(images, 0, 0), images)


def test_place_on_canvas_and_random_offsets():
  digits = np.ones((3, 28, 28, 1), np.float32)
  canvas = eq.place(digits, [[10, 10], [0, 20], [20, 0]], 48)
  assert canvas.shape == (3, 48, 48, 1) and canvas.sum() == 3 * 28 * 28
  assert canvas[0, 10, 10, 0] == 1 and canvas[0, 9, 10, 0] == 0 and canvas[1, 0, 47, 0] == 1
  assert eq.centre_offset(48) == 10
  offsets = eq.random_offsets(5000, 48, seed=0)
  assert offsets.min() == 0 and offsets.max() == 20
  with pytest.raises(ValueError, match="outside the 48×48 canvas"):
    eq.place(digits[:1], [[21, 0]], 48)


def test_matching_mlp_width_matches_the_parameter_count():
  cnn = models.create_model("cnn", num_outputs=10, filters=32, filter_size=5, hidden_size=100)
  params = cnn.init(init_key(0), jnp.zeros((1, 28, 28, 1)), train=False)["params"]
  count = sum(p.size for p in jax.tree_util.tree_leaves(params))
  width = eq.matching_mlp_width(count, 784)
  assert abs((784 + 11) * width + 10 - count) <= (784 + 11) / 2


def _global_pool_net(seed=0):
  model = models.create_model("cnn_global_pool", num_outputs=10,
                              conv_blocks=((4, 3), (6, 3), (8, 3)))
  params = model.init(init_key(seed), jnp.zeros((1, 48, 48, 1)), train=False)["params"]
  return model, params


def test_canvas_maps_recompute_the_model():
  model, params = _global_pool_net()
  x = jnp.asarray(np.random.default_rng(0).random((2, 48, 48, 1)), jnp.float32)
  maps = eq.canvas_maps(params, x)
  assert [m.shape for m in maps[:3]] == [(2, 48, 48, 4), (2, 24, 24, 6), (2, 12, 12, 8)]
  np.testing.assert_allclose(maps[-1], model.apply({"params": params}, x, train=False),
                             rtol=1e-5, atol=1e-5)


def test_first_conv_layer_is_equivariant_and_the_mlp_is_not():
  _, cnn_params = _global_pool_net()
  cnn_params = jax.tree_util.tree_map_with_path(  # biases make the background's features
      lambda path, v: v + 0.1 if "bias" in jax.tree_util.keystr(path) else v, cnn_params)
  mlp = models.create_model("mlp", num_outputs=10, hidden_sizes=(16,))
  mlp_params = mlp.init(init_key(1), jnp.zeros((1, 48, 48, 1)), train=False)["params"]
  digits = np.zeros((3, 28, 28, 1), np.float32)
  digits[:, 6:22, 8:20] = np.random.default_rng(2).random((3, 16, 12, 1))
  check = eq.equivariance_check(cnn_params, mlp_params, digits, 48,
                                shifts=((1, 0), (4, -4), (3, 2)))
  rows = {tuple(r["shift"]): r for r in check["shifts"]}
  assert check["strides"] == [1, 2, 4]
  for row in rows.values():
    assert row["conv_stages"][0]["relative_error"] < 1e-5
    assert row["mlp_hidden_relative_change"] > 0.05
  exact = rows[(4, -4)]
  assert all(stage["relative_error_interior"] < 1e-5 for stage in exact["conv_stages"])
  assert exact["conv_stages"][2]["relative_error"] > 1e-4  # the canvas edge: padding 0 ≠ relu(b)
  assert exact["pooled_relative_change"] < 1e-2 and exact["cnn_same_prediction"] == 1.0
  assert rows[(1, 0)]["conv_stages"][1]["relative_error"] is None  # odd shift, stride 2


def _tiny_mnist(train=400, test=120, seed=0):
  rng = np.random.default_rng(seed)

  def split(n):
    labels = rng.integers(0, 10, n).astype(np.int32)
    images = np.zeros((n, 28, 28, 1), np.float32)
    for i, label in enumerate(labels):  # a bar whose row encodes the class
      images[i, 6 + label, 6:22] = 1.0
      images[i, 6:22, 6 + label] = 0.5
    return types.SimpleNamespace(images=images, labels=labels)
  return types.SimpleNamespace(train=split(train), test=split(test), source="tiny stand-in")


TINY = eq.Settings(train_size=None, validation_size=40, test_size=None, epochs=1,
                   canvas_epochs=1, cnn_filters=4, cnn_filter_size=5, cnn_hidden=8,
                   canvas_blocks=((4, 3), (4, 3)), canvas_mlp_hidden=8, canvas=36, max_shift=2,
                   check_images=4)


def test_the_study_runs_on_tiny_data(tmp_path):
  results = eq.run(tmp_path, profile="quick", data_dir=None, settings=TINY, dataset=_tiny_mnist())
  assert set(results["shift_curve"]) == {"shifts", "cnn", "mlp"}
  assert results["shift_curve"]["shifts"] == [0, 1, 2] and len(results["shift_curve"]["cnn"]) == 3
  assert set(results["random_placement_48"]) == {"cnn", "mlp"}
  assert all(0 <= v <= 1 for v in results["random_placement_48"].values())
  assert results["meets_target"] in (True, False)
  for figure in results["figures"]:
    assert (tmp_path / figure).stat().st_size > 1000
  text = "\n".join(results["summary"])
  assert f"{100 * results['random_placement_48']['cnn']:.1f}%" in text
  assert "Why the MLP fails" in text
  assert results["mlp_blind_pixels"]["max_weight_change_never_inked"] == 0.0
  random_cnn = results["top_k"]["global-pool CNN, 48×48, random placement"]
  assert random_cnn["top1_error"] == pytest.approx(1 - results["random_placement_48"]["cnn"],
                                                   abs=1e-6)
  for errors in results["top_k"].values():
    assert 0 <= errors["top5_error"] <= errors["top1_error"] <= 1
  json.dumps(results)  # JSON-ready


@pytest.mark.slow
@pytest.mark.real_data
@pytest.mark.timeout(3600)
def test_quick_profile_meets_the_target(hw_data_dir, tmp_path):
  results = eq.run(tmp_path, profile="quick", data_dir=hw_data_dir)
  assert results["random_placement_48"]["cnn"] >= eq.TARGET
  assert results["random_placement_48"]["mlp"] < 0.5
  assert results["shift_curve"]["cnn"][4] > results["shift_curve"]["mlp"][4]
