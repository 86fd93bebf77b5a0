"""The quick-profile experiments on real MNIST meet their targets (slow: `pytest -m slow`).

Each runs the experiment's real quick configuration end to end — grid, selection on the
validation split, one test evaluation — exactly as `hw reproduce --profile quick` does.
"""
from __future__ import annotations

import pytest

from experiments import catalog as registry
from hw.engine import experiment

pytestmark = [pytest.mark.slow, pytest.mark.real_data, pytest.mark.timeout(3600)]


@pytest.mark.parametrize("name", ["q4_3", "q4_4", "q5_3", "q5_4"])
def test_quick_profile_meets_target(name, hw_data_dir, tmp_path):
  config = registry.get_config(name, "quick")
  results = experiment.train_and_evaluate(config, tmp_path, data_dir=hw_data_dir, plot=False)
  selected = results["grid"][results["selected"]["index"]]
  assert selected["val_accuracy"] == max(point["val_accuracy"] for point in results["grid"])
  assert results["test_accuracy"] >= config.target, (
      f"{name}: test accuracy {results['test_accuracy']:.4f} < target {config.target}")
