"""Training loop, model selection, checkpoints and resumption on tiny synthetic data."""
from __future__ import annotations

import json
import math
import os
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hw import checkpoint, models, nn as hnn, train
from hw.config import ExperimentConfig


def _images(count: int, seed: int) -> train.Split:
  """28×28 images whose class (0–4) is a bright horizontal bar at row 5·class, plus noise."""
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, 5, count).astype(np.int32)
  images = rng.random((count, 28, 28, 1), dtype=np.float32) * 0.5
  for i, label in enumerate(labels):
    images[i, 5 * label:5 * label + 3, 4:24, 0] += 0.5
  return train.Split(images, labels)


@pytest.fixture(scope="module")
def splits() -> train.Splits:
  return train.Splits(_images(300, 0), _images(100, 1), _images(100, 2), num_classes=5)


def _config(**changes) -> ExperimentConfig:
  base = ExperimentConfig(name="tiny", title="tiny MLP", dataset="synthetic", model="mlp",
                          model_kwargs={"hidden_sizes": (32,), "dropout_rate": 0.2},
                          optimizer="momentum", learning_rate=0.05, batch_size=50, epochs=3,
                          weight_scale=None, eval_batch_size=50)
  return base.replace(**changes)


def _curves(results):
  """Per-epoch metrics without the timings, for exact comparison."""
  return [[{k: v for k, v in record.items() if k != "seconds"} for record in point["history"]]
          for point in results["grid"]]


def _params(directory):
  payload = checkpoint.serialization.msgpack_restore(
      (directory / checkpoint.FILENAME).read_bytes())
  return payload["epoch"], jax.tree_util.tree_leaves(payload["state"]["params"])


def _selected_checkpoint(results) -> pathlib.Path:
  return pathlib.Path(results["grid"][results["selected"]["index"]]["checkpoint"])


@pytest.fixture(scope="module")
def uninterrupted(splits, tmp_path_factory):
  return train.train_and_evaluate(_config(), tmp_path_factory.mktemp("a"), splits=splits, plot=False)


def test_mlp_learns_and_writes_json_and_png(splits, tmp_path):
  results = train.train_and_evaluate(_config(), tmp_path, splits=splits)
  assert (tmp_path / "tiny.png").stat().st_size > 1000
  saved = json.loads((tmp_path / "tiny.json").read_text())
  assert saved["test_accuracy"] == results["test_accuracy"] > 0.6  # chance is 0.2
  assert [r["epoch"] for r in saved["grid"][0]["history"]] == [1, 2, 3]
  losses = [r["train_loss"] for r in saved["grid"][0]["history"]]
  assert losses[-1] < losses[0]
  assert saved["data"] == {"source": "in-memory arrays", "num_classes": 5, "train": 300,
                           "validation": 100, "test": 100}


def test_cnn_with_batch_norm_and_dropout_trains(splits, tmp_path):
  config = _config(model="cnn_bn", optimizer="adam", learning_rate=3e-3, epochs=2,
                   model_kwargs={"conv_blocks": ((4, 5),), "hidden_size": 16,
                                 "dropout_rate": 0.25})
  results = train.train_and_evaluate(config, tmp_path, splits=splits, plot=False)
  history = results["grid"][0]["history"]
  assert all(math.isfinite(r["train_loss"]) for r in history)
  assert results["test_accuracy"] > 0.4
  payload = checkpoint.serialization.msgpack_restore(
      (_selected_checkpoint(results) / checkpoint.FILENAME).read_bytes())
  stats = payload["state"]["batch_stats"]
  assert set(stats) == {"BatchNorm_0", "BatchNorm_1"}
  assert np.abs(stats["BatchNorm_0"]["mean"]).max() > 0  # running averages were updated


def test_q53_cnn_runs_on_28x28(splits, tmp_path):
  config = _config(model="cnn", epochs=1, model_kwargs={"filters": 4, "filter_size": 7,
                                                        "hidden_size": 8})
  results = train.train_and_evaluate(config, tmp_path, splits=splits, plot=False)
  assert math.isfinite(results["grid"][0]["train_loss"])


def test_grid_selects_the_best_validation_point(splits, tmp_path):
  config = _config(epochs=2, grid={"learning_rate": [0.0, 0.05]})  # lr 0 cannot learn
  results = train.train_and_evaluate(config, tmp_path, splits=splits, plot=False)
  accuracies = [point["val_accuracy"] for point in results["grid"]]
  assert len(accuracies) == 2 and accuracies[1] > accuracies[0]
  assert results["selected"]["index"] == int(np.argmax(accuracies)) == 1
  assert results["selected"]["params"] == {"learning_rate": 0.05}


class _Interrupt(Exception):
  pass


def test_resume_after_interruption_equals_uninterrupted_run(splits, tmp_path, uninterrupted):
  def stop_after_first_epoch(index, epoch, record):
    if epoch == 1:
      raise _Interrupt
  with pytest.raises(_Interrupt):
    train.train_and_evaluate(_config(), tmp_path, splits=splits, plot=False,
                             on_epoch_end=stop_after_first_epoch)
  epochs_seen = []
  resumed = train.train_and_evaluate(_config(), tmp_path, splits=splits, plot=False,
                                     on_epoch_end=lambda i, e, r: epochs_seen.append(e))
  assert epochs_seen == [2, 3]  # epoch 1 came from the checkpoint
  assert _curves(resumed) == _curves(uninterrupted)
  assert resumed["test_accuracy"] == uninterrupted["test_accuracy"]
  resumed_params = _params(_selected_checkpoint(resumed))
  original_params = _params(_selected_checkpoint(uninterrupted))
  assert resumed_params[0] == original_params[0] == 3
  for a, b in zip(resumed_params[1], original_params[1]):
    np.testing.assert_array_equal(a, b)


def test_extending_epochs_resumes_and_matches(splits, tmp_path, uninterrupted):
  train.train_and_evaluate(_config(epochs=1), tmp_path, splits=splits, plot=False)
  extended = train.train_and_evaluate(_config(epochs=3), tmp_path, splits=splits, plot=False)
  assert _curves(extended) == _curves(uninterrupted)


def test_same_seed_same_numbers_other_seed_differs(splits, tmp_path, uninterrupted):
  again = train.train_and_evaluate(_config(), tmp_path / "same", splits=splits, plot=False)
  assert _curves(again) == _curves(uninterrupted)
  other = train.train_and_evaluate(_config(seed=1), tmp_path / "other", splits=splits, plot=False)
  assert _curves(other) != _curves(uninterrupted)


def test_nan_loss_stops_with_clear_error_and_keeps_last_good_checkpoint(splits, tmp_path):
  # The learning rate grows ×1e30 per epoch, so a few epochs in the weights overflow.
  config = _config(name="blowup", model="linear", model_kwargs={}, optimizer="sgd",
                   learning_rate=1.0, lr_decay=1e30, epochs=6)
  with pytest.raises(train.TrainingDiverged) as caught:
    train.train_and_evaluate(config, tmp_path, splits=splits, plot=False)
  message = str(caught.value)
  assert "'blowup'" in message and "grid point 0" in message
  bad_epoch = int(message.split("in epoch ")[1].split(" ")[0])
  assert bad_epoch >= 2
  (directory,) = (tmp_path / "checkpoints" / "blowup").iterdir()
  epoch, params = _params(directory)
  assert epoch == bad_epoch - 1
  assert all(np.isfinite(p).all() for p in params)
  assert not (tmp_path / "blowup.json").exists()


def test_binary_scores_with_hinge_loss(tmp_path):
  rng = np.random.default_rng(0)
  features = rng.normal(size=(400, 20)).astype(np.float32)
  labels = (features[:, 0] + 0.5 * features[:, 1] > 0).astype(np.int32)
  data = train.Splits(train.Split(features[:200], labels[:200]),
                      train.Split(features[200:300], labels[200:300]),
                      train.Split(features[300:], labels[300:]), num_classes=2)
  config = _config(model="linear", model_kwargs={}, loss="hinge", optimizer="sgd",
                   learning_rate=0.5, epochs=10)
  results = train.train_and_evaluate(config, tmp_path, splits=data, plot=False)
  assert results["test_accuracy"] > 0.85


def test_batch_norm_train_updates_running_stats_and_eval_is_affine():
  x = jnp.asarray(np.random.default_rng(0).normal(size=(8, 3)), jnp.float32) * 2.0 + 1.0
  layer = hnn.BatchNorm()
  variables = layer.init(train.init_key(0), x, train=True)
  y, updates = layer.apply(variables, x, train=True, mutable=["batch_stats"])
  np.testing.assert_allclose(y.mean(0), 0.0, atol=1e-5)
  stats = updates["batch_stats"]
  np.testing.assert_allclose(stats["mean"], 0.1 * x.mean(0), rtol=1e-5)
  np.testing.assert_allclose(stats["var"], 0.9 + 0.1 * x.var(0), rtol=1e-5)
  y_eval = layer.apply({"params": variables["params"], "batch_stats": stats}, x, train=False)
  np.testing.assert_allclose(y_eval, (x - stats["mean"]) / jnp.sqrt(stats["var"] + 1e-5),
                             rtol=1e-5, atol=1e-6)


def test_model_registry_and_weight_scale():
  model = models.create_model("mlp", num_outputs=10, weight_scale=1e-3, hidden_sizes=(64,))
  init = jax.jit(lambda x: model.init(train.init_key(0), x, train=False))
  params = init(jnp.zeros((2, 28, 28, 1)))["params"]
  kernel = params["Dense_0"]["kernel"]
  assert kernel.shape == (784, 64) and 0.5e-3 < float(kernel.std()) < 1.5e-3
  assert float(jnp.abs(params["Dense_0"]["bias"]).max()) == 0.0
  with pytest.raises(ValueError, match="unknown model"):
    models.create_model("nope", num_outputs=10)


@pytest.mark.real_data
def test_softmax_regression_one_epoch_on_mnist(tmp_path):
  data_dir = os.environ.get("HW_DATA_DIR")
  if not data_dir or not os.path.isdir(data_dir):
    pytest.skip("HW_DATA_DIR is not set to a folder with MNIST; skipping the real-data test")
  config = ExperimentConfig(name="mnist_linear", title="softmax regression", dataset="mnist",
                            model="linear", learning_rate=0.5, epochs=1)
  results = train.train_and_evaluate(config, tmp_path, data_dir=data_dir, plot=False)
  assert results["data"]["train"] == 54000 and results["data"]["test"] == 10000
  assert results["test_accuracy"] > 0.90


def test_per_batch_jit_mode_matches_the_scan(splits, tmp_path, uninterrupted):
  per_batch = train.train_and_evaluate(_config(jit_per_batch=True), tmp_path, splits=splits,
                                       plot=False)
  for a, b in zip(_curves(per_batch)[0], _curves(uninterrupted)[0]):
    assert a.keys() == b.keys()
    np.testing.assert_allclose([a[k] for k in sorted(a)], [b[k] for k in sorted(b)], rtol=1e-4)


def test_conv_nets_default_to_per_batch_steps_dense_nets_to_the_scan():
  conv = models.create_model("cnn", num_outputs=10, filters=4, filter_size=3, hidden_size=8)
  dense = models.create_model("mlp", num_outputs=10, hidden_sizes=(8,))
  assert _config().jit_per_batch is None
  assert train.uses_per_batch_steps(_config(), conv) is True
  assert train.uses_per_batch_steps(_config(), dense) is False
  assert train.uses_per_batch_steps(_config(jit_per_batch=True), dense) is True
  assert train.uses_per_batch_steps(_config(jit_per_batch=False), conv) is False


def test_cosine_schedule_decays_per_step_to_zero_and_its_length_is_in_the_fingerprint():
  config = _config(learning_rate=0.1, lr_schedule="cosine", epochs=4)
  rates = [train.epoch_learning_rate(config, 10, epoch) for epoch in (1, 2, 3, 4)]
  np.testing.assert_allclose(rates, [0.1 * 0.5 * (1 + math.cos(math.pi * e / 4)) for e in range(4)],
                             rtol=1e-6)
  schedule = train.learning_rate_schedule(config, 10)
  assert float(schedule(40)) == pytest.approx(0.0, abs=1e-9)
  assert train.fingerprint(config) != train.fingerprint(config.replace(epochs=5))
  exponential = _config(lr_decay=0.5)
  assert train.fingerprint(exponential) == train.fingerprint(exponential.replace(epochs=5))
  assert train.epoch_learning_rate(exponential, 10, 3) == pytest.approx(0.05 * 0.25)
  with pytest.raises(ValueError, match="lr_schedule"):
    train.learning_rate_schedule(_config(lr_schedule="step"), 10)


def test_random_shift_translates_each_image_by_at_most_two_pixels():
  images = np.zeros((64, 9, 9, 1), np.float32)
  images[:, 4, 4, 0] = 1.0  # one bright pixel in the middle of a dark image
  shifted = np.asarray(train.random_shift(jnp.asarray(images), key=train.init_key(0)))
  assert shifted.shape == images.shape
  assert np.all(shifted.sum(axis=(1, 2, 3)) == 1.0)  # the pixel moved, nothing was smeared
  rows, cols = np.nonzero(shifted[..., 0])[1:]
  assert set(rows - 4) == set(cols - 4) == {-2, -1, 0, 1, 2}  # every offset occurs
  again = np.asarray(train.random_shift(jnp.asarray(images), key=train.init_key(0)))
  np.testing.assert_array_equal(shifted, again)
  with pytest.raises(ValueError, match="rank 4"):
    train.random_shift(jnp.zeros((4, 81)), key=train.init_key(0))


def test_shift_augmentation_with_cosine_schedule_resumes_exactly(splits, tmp_path):
  config = _config(augment="shift", lr_schedule="cosine", epochs=2)
  whole = train.train_and_evaluate(config, tmp_path / "whole", splits=splits, plot=False)
  plain = train.train_and_evaluate(config.replace(augment=None), tmp_path / "plain",
                                   splits=splits, plot=False)
  assert _curves(whole) != _curves(plain)  # the augmentation changes the training
  assert whole["test_accuracy"] > 0.6

  def stop_after_first_epoch(index, epoch, record):
    if epoch == 1:
      raise _Interrupt
  with pytest.raises(_Interrupt):
    train.train_and_evaluate(config, tmp_path / "resumed", splits=splits, plot=False,
                             on_epoch_end=stop_after_first_epoch)
  resumed = train.train_and_evaluate(config, tmp_path / "resumed", splits=splits, plot=False)
  assert _curves(resumed) == _curves(whole)
  with pytest.raises(NotImplementedError, match="crop_flip"):
    train.train_and_evaluate(config.replace(augment="crop_flip"), tmp_path / "bad",
                             splits=splits, plot=False)
