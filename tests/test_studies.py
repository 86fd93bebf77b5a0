"""The studies of assignment D on small inputs: they run, write their JSON and figures, and the
numbers they report are the ones they claim (seconds, not minutes)."""
from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import hw.tsne
from experiments.studies import optimizers
from experiments.studies.optimizers import run_optimizers
from experiments.studies.prox import run_prox
from experiments.studies.tsne import run_tsne
from hw.data import ArraySplit


def _blobs(rng, n, classes, shape, spread=0.3, prototypes=None):
  """Images that are a class prototype plus noise (float32 in [0, 1]), int32 labels."""
  if prototypes is None:
    prototypes = rng.random((classes,) + shape)
  labels = rng.integers(0, classes, size=n).astype(np.int32)
  images = np.clip(prototypes[labels] + spread * rng.standard_normal((n,) + shape), 0, 1)
  return ArraySplit(images=images.astype(np.float32), labels=labels)


def test_prox_study(tmp_path):
  results = run_prox(tmp_path, m=40, n=80, nonzeros=5, iterations=400)
  saved = json.loads((tmp_path / "prox.json").read_text())
  assert (tmp_path / "prox.png").stat().st_size > 10_000
  hits = saved["iterations_to_1e-6"]
  assert set(hits) == {"ista", "fista"}
  assert isinstance(hits["ista"], int) and isinstance(hits["fista"], int)
  assert hits["fista"] <= hits["ista"]
  assert saved["kkt_max_violation"] <= 1e-6
  assert saved["support"]["recovered"]
  gap = np.array(saved["relative_gap"]["ista"])
  assert gap[hits["ista"]] <= 1e-6 < gap[hits["ista"] - 1]  # the *first* such iteration
  assert results["kkt_max_violation"] == saved["kkt_max_violation"]


def test_toy_gradients_are_the_derivatives():
  for problem in (optimizers.quadratic_problem(), optimizers.rosenbrock_problem()):
    with jax.enable_x64(True):
      for point in ([0.3, -1.2], [-1.5, 2.0], [1.0, 1.0]):
        x = jnp.asarray(point, jnp.float64)
        np.testing.assert_allclose(problem.gradient(x), jax.grad(problem.value)(x),
                                   rtol=1e-12, atol=1e-12)
    assert float(problem.value(jnp.asarray(problem.minimum))) == 0.0


def test_steps_to_tolerance_needs_the_run_to_stay_below():
  values = np.array([5.0, 1e-9, 3.0, 1e-9, 1e-10])
  assert optimizers._steps_to_tolerance(values, 1e-8) == 3
  assert optimizers._steps_to_tolerance(np.array([5.0, 1.0]), 1e-8) is None
  assert optimizers._steps_to_tolerance(np.array([1e-9, 1e-9]), 1e-8) == 0


def test_optimizers_study_on_a_small_data_set(tmp_path):
  rng = np.random.default_rng(0)
  prototypes = rng.random((4, 6, 6, 1))
  splits = tuple(_blobs(rng, n, 4, (6, 6, 1), prototypes=prototypes) for n in (256, 64, 64))
  settings = optimizers.MlpSettings(
      hidden=16, steps=40, batch_size=32, eval_every=20,
      learning_rates={name: (0.01, 0.1) for name in optimizers.NAMES})
  results = run_optimizers(tmp_path, mnist=splits, settings=settings)
  saved = json.loads((tmp_path / "optimizers.json").read_text())
  for figure in ("optimizers_toy.png", "optimizers_mnist.png"):
    assert (tmp_path / figure).stat().st_size > 10_000
  assert sorted(saved["ranking"]["mnist_mlp"]) == sorted(optimizers.NAMES)
  assert sorted(saved["ranking"]["rosenbrock"]) == sorted(optimizers.NAMES)
  for name in optimizers.NAMES:
    entry = saved["mnist_mlp"]["per_optimizer"][name]
    assert entry["best_learning_rate"] in (0.01, 0.1)
    assert 0.0 <= entry["test_accuracy"] <= 1.0
    assert len(entry["grid"]) == 2 and len(entry["grid"][0]["train_loss"]) == 40
    best = max(entry["grid"], key=lambda r: (r["final_val_accuracy"], -r["final_val_loss"]))
    assert best["learning_rate"] == entry["best_learning_rate"]  # selected on validation
    assert entry["top_k"] == {"top1_error": pytest.approx(1 - entry["test_accuracy"], abs=1e-6)}
    assert saved["top_k"][f"MLP, 16 hidden units, {name} (lr {entry['best_learning_rate']:g})"] == \
        entry["top_k"]  # 4 classes: top-1 only
  assert max(saved["test_accuracy"].values()) > 0.5  # 4 classes: well above chance
  # The 2-D problems: everything the ranking says is consistent with the numbers.
  quad = saved["toy_problems"]["quadratic"]["per_optimizer"]
  solved = [n for n in saved["ranking"]["quadratic"] if quad[n]["steps_to_tolerance"] is not None]
  steps = [quad[n]["steps_to_tolerance"] for n in solved]
  assert steps == sorted(steps) and len(solved) >= 3
  assert results["ranking"] == saved["ranking"]


def test_tsne_study_on_small_clusters(tmp_path):
  rng = np.random.default_rng(1)
  split = _blobs(rng, 120, 3, (4, 5), spread=0.05)
  config = hw.tsne.TsneConfig(perplexity=10.0, iterations=200, exaggeration_iterations=100,
                              momentum_switch=100, learning_rate=20.0, pca_components=10)
  results = run_tsne(tmp_path, dataset=split, num_points=100, config=config)
  saved = json.loads((tmp_path / "tsne.json").read_text())
  assert (tmp_path / "tsne.png").stat().st_size > 10_000
  assert saved["num_points"] == 100
  for key in ("knn5_accuracy", "kl", "seconds"):
    assert isinstance(saved[key], float) and saved["gaussian_sne"][key] is not None
  assert saved["knn5_accuracy"] >= 0.95
  assert saved["kl"] == pytest.approx(saved["kl_history"][-1])
  assert results["knn5_accuracy"] == saved["knn5_accuracy"]


def test_prox_study_judges_its_targets_and_writes_the_report_summary(tmp_path, monkeypatch):
  from experiments.studies import spec_d
  monkeypatch.setattr(spec_d, "run_prox", lambda folder: run_prox(folder, m=40, n=80,
                                                                  nonzeros=5, iterations=400))
  results = spec_d.prox_study(tmp_path, profile="quick")
  assert results["meets_target"] is True and results["figures"] == ["prox.png"]
  assert "FISTA" in results["summary"][0] and (tmp_path / "prox.png").exists()


def test_tsne_study_without_mnist_is_a_data_error(tmp_path):
  from experiments.studies import spec_d
  from hw.data import DataError
  empty = tmp_path / "no-data"
  empty.mkdir()
  with pytest.raises(DataError):
    spec_d.tsne_study(tmp_path / "out", profile="quick", data_dir=empty)
