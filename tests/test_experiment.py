"""hw.engine.experiment: grids, selection on validation, checkpoints and exact resumption (tiny data)."""
from __future__ import annotations

import json
import math
import os
import pathlib

import jax
import numpy as np
import pytest

from experiments import report
from hw import backends
from hw.engine import checkpoint, experiment, loop
from hw.engine.config import ExperimentConfig
from hw.engine.experiment_data import Split, Splits
from hw.engine.results import SCHEMA_VERSION, Results
from hw.engine.steps import ProgramCache

PUBLISHED = pathlib.Path(__file__).resolve().parents[1] / "docs" / "results" / "q4_3.json"


# One cache for the module: its runs share compiled programs, as one experiment's grid points do.
COMPILED = ProgramCache(size=32)


def _run(config: ExperimentConfig, workdir, **kwargs):
  return experiment.train_and_evaluate(config, workdir, compiled=COMPILED, **kwargs)


def _images(count: int, seed: int) -> Split:
  """28×28 images whose class (0–4) is a bright horizontal bar at row 5·class, plus noise."""
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, 5, count).astype(np.int32)
  images = rng.random((count, 28, 28, 1), dtype=np.float32) * 0.5
  for i, label in enumerate(labels):
    images[i, 5 * label:5 * label + 3, 4:24, 0] += 0.5
  return Split(images, labels)


@pytest.fixture(scope="module")
def splits() -> Splits:
  return Splits(_images(300, 0), _images(100, 1), _images(100, 2), num_classes=5)


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
  return _run(_config(), tmp_path_factory.mktemp("a"), splits=splits,
              plot=False)


def test_mlp_learns_and_writes_json_and_png(splits, tmp_path):
  results = _run(_config(), tmp_path, splits=splits)
  assert (tmp_path / "tiny.png").stat().st_size > 1000
  saved = json.loads((tmp_path / "tiny.json").read_text())
  assert saved["test_accuracy"] == results["test_accuracy"] > 0.6  # chance is 0.2
  assert [r["epoch"] for r in saved["grid"][0]["history"]] == [1, 2, 3]
  losses = [r["train_loss"] for r in saved["grid"][0]["history"]]
  assert losses[-1] < losses[0]
  lines = [json.loads(line) for line in (tmp_path / "tiny.metrics.jsonl").read_text().splitlines()]
  assert [(line["point"], line["epoch"]) for line in lines] == [(0, 1), (0, 2), (0, 3)]
  assert lines[-1]["val_accuracy"] == saved["grid"][0]["val_accuracy"]
  assert saved == json.loads(json.dumps(results.to_json())) and saved["schema_version"] == 1
  identity = saved["data"].pop("identity")
  assert saved["data"] == {"source": "in-memory arrays", "stand_in": False, "num_classes": 5,
                           "train": 300, "validation": 100, "test": 100}
  assert identity.startswith("sha256:") and identity == splits.identity
  assert isinstance(results, Results) and results.schema_version == SCHEMA_VERSION
  assert results.grid[0].history == saved["grid"][0]["history"]


def _layout(results) -> dict:
  point = results["grid"][0]
  return {"record": list(results), "data": list(results["data"]),
          "selected": list(results["selected"]), "platform": list(results["platform"]),
          "point": list(point), "epoch": list(point["history"][0])}


def test_the_written_record_keeps_the_published_layout_plus_its_schema_version(splits, tmp_path):
  """Every field of a results file written before the typed record (Q4.3: a grid, five or
  more classes, figures), in the same order, after ``schema_version`` (and with
  ``platform.backend_choices``, recorded since)."""
  published = _layout(json.loads(PUBLISHED.read_text()))
  config = _config(epochs=1, grid={"learning_rate": [0.05]}, model="linear", model_kwargs={},
                   figures=("class_templates",))
  _run(config, tmp_path, splits=splits)
  written = _layout(json.loads((tmp_path / "tiny.json").read_text()))
  platform = published["platform"]  # files written before the backend table lack its row
  if "backend_choices" not in platform:
    platform.insert(platform.index("stepping") + 1, "backend_choices")
  record = published["record"]  # and before the typed record, its schema_version
  if record[0] != "schema_version":
    record = ["schema_version", *record]
  assert written == {**published, "record": record}


def test_cnn_with_batch_norm_and_dropout_trains(splits, tmp_path):
  config = _config(model="cnn_bn", optimizer="adam", learning_rate=3e-3, epochs=2,
                   model_kwargs={"conv_blocks": ((4, 5),), "hidden_size": 16,
                                 "dropout_rate": 0.25})
  results = _run(config, tmp_path, splits=splits, plot=False)
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
  results = _run(config, tmp_path, splits=splits, plot=False)
  assert math.isfinite(results["grid"][0]["train_loss"])


def test_grid_selects_the_best_validation_point(splits, tmp_path):
  config = _config(epochs=2, grid={"learning_rate": [0.0, 0.05]})  # lr 0 cannot learn
  results = _run(config, tmp_path, splits=splits, plot=False)
  accuracies = [point["val_accuracy"] for point in results["grid"]]
  assert len(accuracies) == 2 and accuracies[1] > accuracies[0]
  assert results["selected"]["index"] == int(np.argmax(accuracies)) == 1
  assert results["selected"]["params"] == {"learning_rate": 0.05}


class _Interrupt(Exception):
  pass


def _stop_after_first_epoch(index, epoch, record):
  if epoch == 1:
    raise _Interrupt


def test_resume_after_interruption_equals_uninterrupted_run(splits, tmp_path, uninterrupted):
  with pytest.raises(_Interrupt):
    _run(_config(), tmp_path, splits=splits, plot=False,
         on_epoch_end=_stop_after_first_epoch)
  epochs_seen = []
  resumed = _run(_config(), tmp_path, splits=splits, plot=False,
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
  _run(_config(epochs=1), tmp_path, splits=splits, plot=False)
  extended = _run(_config(epochs=3), tmp_path, splits=splits,
                  plot=False)
  assert _curves(extended) == _curves(uninterrupted)


def test_same_seed_same_numbers_other_seed_differs(splits, tmp_path, uninterrupted):
  again = _run(_config(), tmp_path / "same", splits=splits, plot=False)
  assert _curves(again) == _curves(uninterrupted)
  other = _run(_config(seed=1), tmp_path / "other", splits=splits,
               plot=False)
  assert _curves(other) != _curves(uninterrupted)


def test_nan_loss_stops_with_clear_error_and_keeps_last_good_checkpoint(splits, tmp_path):
  # The learning rate grows ×1e30 per epoch, so a few epochs in the weights overflow.
  config = _config(name="blowup", model="linear", model_kwargs={}, optimizer="sgd",
                   learning_rate=1.0, lr_decay=1e30, epochs=6)
  with pytest.raises(loop.TrainingDiverged) as caught:
    _run(config, tmp_path, splits=splits, plot=False)
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
  data = Splits(Split(features[:200], labels[:200]),
                      Split(features[200:300], labels[200:300]),
                      Split(features[300:], labels[300:]), num_classes=2)
  config = _config(model="linear", model_kwargs={}, loss="hinge", optimizer="sgd",
                   learning_rate=0.5, epochs=10)
  results = _run(config, tmp_path, splits=data, plot=False)
  assert results["test_accuracy"] > 0.85
  # one score per sample: top-1 only, and it is the error of the sign rule
  assert results["top1_error"] == pytest.approx(1 - results["test_accuracy"], abs=1e-6)
  assert "top5_error" not in results


@pytest.mark.real_data
def test_softmax_regression_one_epoch_on_mnist(tmp_path):
  data_dir = os.environ.get("HW_DATA_DIR")
  if not data_dir or not os.path.isdir(data_dir):
    pytest.skip("HW_DATA_DIR is not set to a folder with MNIST; skipping the real-data test")
  config = ExperimentConfig(name="mnist_linear", title="softmax regression", dataset="mnist",
                            model="linear", learning_rate=0.5, epochs=1)
  results = _run(config, tmp_path, data_dir=data_dir, plot=False)
  assert results["data"]["train"] == 54000 and results["data"]["test"] == 10000
  assert results["test_accuracy"] > 0.90


def test_per_batch_jit_mode_matches_the_scan(splits, tmp_path, uninterrupted):
  per_batch = _run(_config(jit_per_batch=True), tmp_path, splits=splits,
                   plot=False)
  for a, b in zip(_curves(per_batch)[0], _curves(uninterrupted)[0]):
    assert a.keys() == b.keys()
    np.testing.assert_allclose([a[k] for k in sorted(a)], [b[k] for k in sorted(b)], rtol=1e-4)


def test_shift_augmentation_with_cosine_schedule_resumes_exactly(splits, tmp_path):
  config = _config(augment="shift", lr_schedule="cosine", epochs=2)
  whole = _run(config, tmp_path / "whole", splits=splits, plot=False)
  plain = _run(config.replace(augment=None), tmp_path / "plain",
               splits=splits, plot=False)
  assert _curves(whole) != _curves(plain)  # the augmentation changes the training
  assert whole["test_accuracy"] > 0.6

  with pytest.raises(_Interrupt):
    _run(config, tmp_path / "resumed", splits=splits, plot=False,
         on_epoch_end=_stop_after_first_epoch)
  resumed = _run(config, tmp_path / "resumed", splits=splits, plot=False)
  assert _curves(resumed) == _curves(whole)
  with pytest.raises(ValueError, match="cutout"):
    config.replace(augment="cutout")


def test_crop_flip_augmentation_resumes_exactly(splits, tmp_path):
  config = _config(augment="crop_flip", lr_schedule="cosine", epochs=2)

  def stop_after_first_epoch(index, epoch, record):
    if epoch == 1:
      raise _Interrupt
  whole = _run(config, tmp_path / "whole", splits=splits, plot=False)
  with pytest.raises(_Interrupt):
    _run(config, tmp_path / "resumed", splits=splits, plot=False,
         on_epoch_end=stop_after_first_epoch)
  resumed = _run(config, tmp_path / "resumed", splits=splits, plot=False)
  assert _curves(resumed) == _curves(whole)
  plain = _run(config.replace(augment=None), tmp_path / "plain",
               splits=splits, plot=False)
  assert _curves(whole) != _curves(plain)


def test_a_list_of_points_and_a_point_also_tested_beside_the_selected_one(splits, tmp_path):
  config = _config(epochs=1, grid=[{}, {"learning_rate": 0.0, "model.dropout_rate": 0.0}],
                   also_test=(1,))
  results = _run(config, tmp_path, splits=splits, plot=False)
  assert [point["label"] for point in results["grid"]] == [
      "(single point)", "learning_rate=0.0, model.dropout_rate=0.0"]
  assert results["selected"]["index"] == 0  # lr 0 does not learn
  assert "test_accuracy" not in results["grid"][0] and results["grid"][1]["test_accuracy"] < 0.5
  assert results["top1_error"] == pytest.approx(1 - results["test_accuracy"], abs=1e-6)
  assert 0.0 <= results["top5_error"] <= results["top1_error"]
  assert results["top5_error"] == 0.0  # 5 classes: the true one is always in the top 5
  assert results["platform"]["device_count"] == 1 and "notes" not in results["data"]
  assert results["platform"]["backend_choices"] == backends.describe()  # the table's row


def test_a_diverging_grid_point_is_recorded_and_the_others_are_selected(splits, tmp_path):
  config = _config(name="mixed", model="linear", model_kwargs={}, optimizer="sgd",
                   epochs=6, grid={"lr_decay": [1e30, 1.0]}, learning_rate=0.5)
  results = _run(config, tmp_path, splits=splits, plot=True)
  diverged, fine = results["grid"]
  assert diverged["status"] == "diverged" and "non-finite" in diverged["message"]
  assert "'mixed', grid point 0" in diverged["message"]
  assert fine["status"] == "complete" and results["selected"]["index"] == 1
  report_lines = report._experiment_section("mixed", results, {})
  assert any("diverged" in line for line in report_lines)


def test_checkpoints_of_other_data_are_not_resumed(splits, tmp_path, capsys):
  with pytest.raises(_Interrupt):
    _run(_config(), tmp_path, splits=splits, plot=False,
         on_epoch_end=_stop_after_first_epoch)
  flipped = Split(splits.train.images[::-1].copy(), splits.train.labels[::-1].copy())
  other = Splits(flipped, splits.validation, splits.test, num_classes=5)
  assert other.identity != splits.identity
  epochs_seen = []
  _run(_config(), tmp_path, splits=other, plot=False,
       on_epoch_end=lambda i, e, r: epochs_seen.append(e))
  assert epochs_seen == [1, 2, 3]  # trained from scratch, not resumed


def test_repeat_seeds_rerun_the_whole_experiment_and_report_the_spread(splits, tmp_path):
  config = _config(epochs=1, repeat_seeds=(1, 2), grid={"learning_rate": [0.02, 0.05]})
  results = _run(config, tmp_path, splits=splits, plot=False)
  seeds = results["seeds"]
  assert seeds["seeds"] == [0, 1, 2] and seeds["test_accuracy"][0] == results["test_accuracy"]
  for seed in (1, 2):
    again = json.loads((tmp_path / "seeds" / f"seed{seed}" / "tiny.json").read_text())
    assert again["config"]["seed"] == seed and len(again["grid"]) == 2
    assert seeds["test_accuracy"][seed] == again["test_accuracy"]
  assert seeds["min"] <= seeds["mean"] <= seeds["max"]


def test_no_target_applies_to_stand_in_data(splits, tmp_path):
  stand_in = Splits(splits.train, splits.validation, splits.test, num_classes=5, stand_in=True)
  results = _run(_config(epochs=1, target=0.99), tmp_path,
                 splits=stand_in, plot=False)
  assert results["meets_target"] is None and results["data"]["stand_in"] is True


@pytest.mark.parametrize("model, kwargs, figure", [
    ("linear", {}, "class_templates"),
    ("cnn", {"filters": 4, "filter_size": 5, "hidden_size": 8}, "first_filters")])
def test_figures_of_the_selected_model_are_drawn(splits, tmp_path, model, kwargs, figure):
  config = _config(model=model, model_kwargs=kwargs, epochs=1, figures=(figure,))
  results = _run(config, tmp_path, splits=splits)
  assert results["figures"] == ["tiny.png", f"tiny_{figure}.png"]
  assert (tmp_path / f"tiny_{figure}.png").stat().st_size > 1000
  with pytest.raises(ValueError, match="unknown figure figures='nope'"):
    _config(figures=("nope",))
