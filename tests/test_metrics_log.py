"""<name>.metrics.jsonl: every line says which run, fingerprint, seed and grid point it is
of, and a run resumed after a crash between its checkpoint and its line loses no epoch."""
from __future__ import annotations

import json

import numpy as np
import pytest

from hw.engine import experiment
from hw.engine import loop
from hw.engine.config import ExperimentConfig
from hw.engine.experiment_data import Split, Splits
from hw.engine.metrics_log import read_lines


def _split(count: int, seed: int) -> Split:
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, 3, count).astype(np.int32)
  features = rng.normal(size=(count, 6)).astype(np.float32) + labels[:, None]
  return Split(features, labels)


@pytest.fixture(scope="module")
def splits() -> Splits:
  return Splits(_split(120, 0), _split(60, 1), _split(60, 2), num_classes=3)


def _config(**changes) -> ExperimentConfig:
  return ExperimentConfig(name="tiny", title="tiny", dataset="synthetic", model="linear",
                          learning_rate=0.1, batch_size=40, epochs=3, eval_batch_size=60,
                          grid={"learning_rate": [0.1, 0.3]}).replace(**changes)


def _lines(folder):
  return [json.loads(line) for line in (folder / "tiny.metrics.jsonl").read_text().splitlines()]


def test_every_line_carries_fingerprint_seed_point_and_run(splits, tmp_path):
  results = experiment.train_and_evaluate(_config(), tmp_path, splits=splits, plot=False)
  experiment.train_and_evaluate(_config(seed=5), tmp_path, splits=splits, plot=False)
  lines = _lines(tmp_path)
  assert len(lines) == 12  # two runs of two points of three epochs, in one file
  first, second = lines[:6], lines[6:]
  assert {line["fingerprint"] for line in first} == {results["fingerprint"]}
  assert len({line["fingerprint"] for line in second} - {results["fingerprint"]}) == 1
  assert [line["seed"] for line in lines] == [0] * 6 + [5] * 6
  assert [(line["point"], line["params"], line["epoch"]) for line in first] == [
      (0, {"learning_rate": 0.1}, 1), (0, {"learning_rate": 0.1}, 2), (0, {"learning_rate": 0.1}, 3),
      (1, {"learning_rate": 0.3}, 1), (1, {"learning_rate": 0.3}, 2), (1, {"learning_rate": 0.3}, 3)]
  assert len({line["run"] for line in lines}) == 4  # one per point and call
  assert len({line["point_fingerprint"] for line in lines}) == 4
  assert all(line["experiment"] == "tiny" for line in lines)


class _CrashAfterCheckpoint(loop.Hook):
  """Raises in epoch 2 after its checkpoint is written, before the metrics line."""

  def on_epoch_end(self, epoch, state, record):
    if epoch == 2:
      raise KeyboardInterrupt


def test_a_resumed_run_restores_the_line_a_crash_lost(splits, tmp_path):
  config = _config(grid={})
  with pytest.raises(KeyboardInterrupt):
    experiment.train_and_evaluate(config, tmp_path, splits=splits, plot=False,
                                  hooks=[_CrashAfterCheckpoint()])
  assert [line["epoch"] for line in _lines(tmp_path)] == [1]  # epoch 2 is checkpointed only
  results = experiment.train_and_evaluate(config, tmp_path, splits=splits, plot=False)
  lines = _lines(tmp_path)
  assert [(line["epoch"], line.get("restored", False)) for line in lines] == [
      (1, False), (2, True), (3, False)]
  history = results["grid"][0]["history"]
  assert [line["val_accuracy"] for line in lines] == [record["val_accuracy"] for record in history]
  assert lines[1]["point_fingerprint"] == lines[0]["point_fingerprint"]


def test_a_torn_last_line_is_skipped_when_read(tmp_path):
  path = tmp_path / "x.metrics.jsonl"
  path.write_text('{"epoch": 1}\n{"epoch": 2, "val_acc')
  assert list(read_lines(path)) == [{"epoch": 1}]
