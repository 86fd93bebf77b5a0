"""The UCL COMPGI22 coursework 2 study (experiments.studies.ucl, experiments/configs/ucl.py) on tiny data."""
from __future__ import annotations

import dataclasses
import json
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import experiments
from experiments import catalog as registry
from experiments import reproduce
from experiments.configs import ucl as ucl_experiment
from experiments.studies import ucl
from experiments.studies.base import Study, check_results
from hw import data as hw_data


def _arrays(n_train=400, n_test=100, seed=0):
  """Tiny learnable stand-in for MNIST: a class-dependent bar on faint noise."""
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, 10, n_train + n_test).astype(np.int32)
  images = (rng.random((n_train + n_test, 28, 28, 1)) * 0.3).astype(np.float32)
  for k in range(10):
    images[labels == k, 2 * k:2 * k + 3, 4:24, 0] += 0.7
  return images[:n_train], labels[:n_train], images[n_train:], labels[n_train:]


@pytest.fixture(scope="module")
def tiny():
  return ucl.StudyData.from_arrays(*_arrays(), fraction=0.2, subset_seed=0)


def _close(a, b, rtol=1e-5, atol=1e-6):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol)


# ---------------------------------------------------------------------------- models

def test_models_have_the_spec_shapes_and_xavier_init():
  images = jnp.zeros((3, 28, 28, 1))
  for model in (1, 2, 3, 4):
    params = ucl.init_params(model, 0)
    assert jax.eval_shape(lambda p, x: ucl.apply(model, p, x), params, images).shape == (3, 10)
    for (w, b), shape in zip(params, ucl.layer_shapes(model)):
      assert w.shape == shape and not np.any(np.asarray(b))
      receptive = int(np.prod(shape[:-2]))
      limit = np.sqrt(6 / (receptive * (shape[-2] + shape[-1])))
      assert np.abs(np.asarray(w)).max() <= limit and np.asarray(w).std() > 0.5 * limit / np.sqrt(3)
  assert ucl.layer_shapes(4)[2] == (392, 32)  # 28 -> 14 -> 7 after two 2×2 pools, 8 channels
  _close(ucl.init_params(2, 5), ucl.init_params(2, 5), rtol=0, atol=0)  # a pure function of the seed


@pytest.mark.parametrize("model", [1, 3])
def test_sum_reduction_scales_the_step_by_the_batch_size(model):
  images, labels, _, _ = _arrays(n_train=100)
  lr = 1e-3
  with jax.enable_x64(True):  # float64, so that the comparison is not about rounding
    params = jax.tree.map(lambda p: jnp.asarray(p, jnp.float64), ucl.init_params(model, 1))
    images = jnp.asarray(images, jnp.float64)
    after_mean, loss_mean = ucl.sgd_step(params, lr, images, labels, model=model, reduction="mean")
    after_sum, loss_sum = ucl.sgd_step(params, lr, images, labels, model=model, reduction="sum")
    step_mean = jax.tree.map(lambda a, p: a - p, after_mean, params)
    step_sum = jax.tree.map(lambda a, p: a - p, after_sum, params)
    _close(step_sum, jax.tree.map(lambda s: 100 * s, step_mean), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(loss_sum, loss_mean, rtol=1e-12)  # both per-example means
    # and the step is plain SGD on the hw.ops loss: θ - lr · ∂(mean loss)/∂θ
    grads = jax.grad(ucl.loss)(params, images, labels, model=model, reduction="mean")
    _close(after_mean, jax.tree.map(lambda p, g: p - lr * g, params, grads), rtol=1e-12,
           atol=1e-15)


# --------------------------------------------------------------------------- training

def _alone(model, members, epochs, data, **kw):
  """Each member trained by itself."""
  runs = [ucl.train_members(model, [m], epochs, data, return_params=True, **kw) for m in members]
  return [r[0][0] for r in runs], [r[1][0] for r in runs]


def test_vmapped_members_equal_separate_single_seed_runs(tiny):
  members = [ucl.Member(0.05, 0, "mean"), ucl.Member(0.05, 1, "mean"),
             ucl.Member(0.01, 2, "sum"), ucl.Member(0.2, 1, "mean")]
  kw = dict(batch_size=50, eval_every=100, eval_batch_size=40)
  curves, params = ucl.train_members(2, members, 2, tiny, return_params=True, **kw)
  alone_curves, alone_params = _alone(2, members, 2, tiny, **kw)
  assert ucl.scanned(2)
  for c, a in zip(curves, alone_curves):
    assert c["samples"] == a["samples"] == list(range(0, 801, 100))
    np.testing.assert_allclose(c["test_accuracy"], a["test_accuracy"], atol=1 / 100 + 1e-9)
  _close(params, alone_params, rtol=1e-4, atol=1e-5)
  # members with the same seed saw the same batches: different learning rates differ
  assert not np.allclose(np.asarray(params[1][0][0]), np.asarray(params[3][0][0]))


def test_conv_members_stepped_together_equal_single_runs(tiny):
  members = [ucl.Member(0.05, 0, "mean"), ucl.Member(0.001, 1, "mean")]
  kw = dict(batch_size=100, eval_every=200, eval_batch_size=100)
  curves, params = ucl.train_members(4, members, 1, tiny, return_params=True, **kw)
  alone_curves, alone_params = _alone(4, members, 1, tiny, **kw)
  assert not ucl.scanned(4)
  _close(params, alone_params, rtol=1e-4, atol=1e-5)
  for c, a in zip(curves, alone_curves):
    assert c["samples"] == [0, 200, 400]


def test_a_shorter_run_is_the_prefix_of_a_longer_one(tiny):
  member = [ucl.Member(0.1, 3, "mean")]
  kw = dict(batch_size=50, eval_every=100, eval_batch_size=100)
  short = ucl.train_members(1, member, 1, tiny, **kw)[0]
  long = ucl.train_members(1, member, 3, tiny, stops=(1,), **kw)[0]
  n = len(short["samples"])
  assert long["samples"][:n] == short["samples"] and long["samples"][-1] == 1200
  for key in ("train_accuracy", "test_accuracy", "test_loss"):
    np.testing.assert_allclose(long[key][:n], short[key], rtol=1e-5)


def test_divergence_is_recorded_and_a_group_of_nan_runs_stops(tiny):
  # softmax cross-entropy's gradient is bounded, so only a huge step overflows float32
  curve = ucl.train_members(1, [ucl.Member(1e37, 0, "sum")], 3, tiny, batch_size=100,
                            eval_every=100)[0]
  assert curve["diverged_at"] is not None and curve["diverged_at"] <= 400
  assert curve["stopped_at"] is not None and curve["samples"][-1] == 1200
  assert curve["test_loss"][-1] is None


# ---------------------------------------------------------------------------- rules

def test_the_reproduce_rule():
  assert ucl.reproduces(0.90, [0.87, 0.88, 0.89])             # inside the widened range
  assert ucl.reproduces(0.903, [0.87, 0.875, 0.88])           # range 0.85-0.90 misses; median 2.8 points
  assert not ucl.reproduces(0.92, [0.87, 0.875, 0.88])        # 4 points from the median, outside the range
  assert ucl.reproduces(0.92, [0.87, 0.875, 0.95])            # a wide seed range covers it
  assert ucl.reproduces(0.7288, [0.70])                       # one seed: ±2 points or median ±3
  assert not ucl.reproduces(0.7288, [0.60])
  assert ucl.reproduces(0.93, [0.90], range_margin=0.0, median_margin=0.03)
  assert not ucl.reproduces(0.93, [0.90], range_margin=0.0, median_margin=0.02)


def test_the_under_and_overfitting_rule():
  samples = list(range(0, 300_001, 20_000))  # 5 epochs of 60,000
  spe = 60_000
  flat = [0.95] * 16
  rising = [0.5 + 0.02 * i for i in range(16)]
  assert ucl.classify_fit(samples, flat, flat, samples_per_epoch=spe)["label"] == "good fit"
  fit = ucl.classify_fit(samples, rising, rising, samples_per_epoch=spe)
  assert fit["label"] == "underfit" and fit["train_gain_last_epoch"] == pytest.approx(0.06)
  low_flat = [0.85] * 16  # flat but below 90% on the training set
  assert ucl.classify_fit(samples, low_flat, low_flat, samples_per_epoch=spe)["label"] == "underfit"
  gap_test = [0.96] * 16
  fit = ucl.classify_fit(samples, [0.99] * 16, gap_test, samples_per_epoch=spe)
  assert fit["label"] == "overfit" and fit["final_gap"] == pytest.approx(0.03)
  peaked = [0.95] * 8 + [0.97] + [0.96] * 7  # test falls 1 point from its best, train keeps level
  fit = ucl.classify_fit(samples, [0.975] * 16, peaked, samples_per_epoch=spe)
  assert fit["label"] == "overfit" and fit["best_test_sample"] == 160_000
  assert ucl.classify_fit(samples, flat, flat, samples_per_epoch=spe,
                          diverged=True)["label"] == "diverged"
  # both: still rising on the training set yet already 3 points above the test accuracy
  both = ucl.classify_fit(samples, rising, [r - 0.03 for r in rising], samples_per_epoch=spe)
  assert both["label"] == "underfit and overfit"


def test_groups_share_runs_between_settings_with_the_same_learning_rate():
  groups = ucl._groups(ucl.SETTINGS)
  assert groups[(3, 40)] == [(0.003, [5, 40]), (0.05, [40])]
  assert groups[(4, 20)] == [(0.001, [10, 20])] and groups[(4, 5)] == [(0.01, [5])]
  assert groups[(1, 5)] == [(1e-4, [5]), (0.005, [5]), (0.1, [5])]
  assert len(ucl.SETTINGS) == 12 and {s.model for s in ucl.SETTINGS} == {1, 2, 3, 4}


def test_explanations_come_from_the_curves():
  samples = [0, 60_000, 120_000]
  cell = {"reported": 0.95, "test_accuracy": 0.80, "seeds": [0.79, 0.80, 0.81], "reduction": "mean",
          "fit": ucl.classify_fit(samples, [0.5, 0.7, 0.8], [0.5, 0.7, 0.8], samples_per_epoch=60_000),
          "curves": {"samples": samples, "median": {"test_accuracy": [0.5, 0.7, 0.8]},
                     "seeds": [{"diverged_at": None}] * 3}}
  other = {"reduction": "sum", "test_accuracy": 0.94, "reproduces": True}
  text = ucl.explain(cell, other, 60_000)
  assert "still rising at the end" in text and "15.00 points below" in text
  assert 'with reduction "sum" the cell reads 0.9400 (reproduces)' in text
  cell["curves"]["seeds"] = [{"diverged_at": 20_000}, {"diverged_at": 40_000}, {"diverged_at": None}]
  assert "diverged (NaN) at sample 20,000 in 2 of 3 seeds" in ucl.explain(cell, None, 60_000)
  blown = ucl.blow_up(samples, [None, 4.5, 2.35], [2.36, 2.34, 2.35], [0.11, 0.10, 0.098])
  assert blown == {"initial_loss": 2.36, "peak_loss": 4.5, "peak_sample": 60_000,
                   "final_loss": 2.35, "final_test_accuracy": 0.098}
  assert ucl.blow_up(samples, [None, 1.5, 1.0], [2.36, 1.4, 1.0], [0.11, 0.5, 0.7]) is None
  assert ucl.blow_up(samples, [None, 2.6, 2.3], [2.36, 2.1, 2.0], [0.11, 0.5, 0.7]) is None
  cell["curves"]["seeds"] = [{"diverged_at": None, "blow_up": blown}] * 3
  assert ("blew up in 3 of 3 seeds: the training loss rose from 2.36 at initialisation to 4.50"
          in ucl.explain(cell, None, 60_000))
  above = dict(cell, test_accuracy=0.80, reported=0.6,
               curves={"samples": samples, "median": {"test_accuracy": [0.5, 0.7, 0.8]},
                       "seeds": [{"diverged_at": None}] * 3})
  assert "passed 0.6000 at sample 60,000" in ucl.explain(above, None, 60_000)


# ------------------------------------------------------------------------ the study

def test_experiment_configs_are_studies():
  assert "ucl" in experiments.EXPERIMENTS and registry.canonical_name("UCL") == "ucl"
  quick, full = registry.get_config("ucl", "quick"), registry.get_config("ucl", "full")
  assert isinstance(quick, Study) and isinstance(full, Study)
  assert quick.name == full.name == "ucl" and (quick.profile, full.profile) == ("quick", "full")
  assert quick.run.keywords["config"].seeds == (0,)
  assert quick.run.keywords["config"].reductions == (ucl_experiment.QUICK_REDUCTION,)
  assert full.run.keywords["config"].seeds == (0, 1, 2)
  assert set(full.run.keywords["config"].reductions) == {"mean", "sum"}
  assert full.run.keywords["config"].initialisations == ucl.INITIALISATION_NAMES
  assert quick.run.keywords["config"].initialisations == ("xavier_uniform",)


def _tiny_mnist(folder):
  train_x, train_y, test_x, test_y = _arrays(n_train=300, n_test=100)
  folder.mkdir(parents=True)
  for name, array in (("train-images-idx3-ubyte", train_x), ("t10k-images-idx3-ubyte", test_x)):
    hw_data.write_idx(folder / name, np.round(array[..., 0].clip(0, 1) * 255).astype(np.uint8))
  for name, array in (("train-labels-idx1-ubyte", train_y), ("t10k-labels-idx1-ubyte", test_y)):
    hw_data.write_idx(folder / name, array.astype(np.uint8))


def test_the_study_runs_under_hw_reproduce_and_keeps_its_contract(tmp_path):
  _tiny_mnist(tmp_path / "data" / "mnist")
  settings = tuple(s._replace(epochs=1 if s.epochs < 10 else 2) for s in ucl.SETTINGS
                   if s.model in (1, 2))
  config = dataclasses.replace(ucl_experiment.FULL, settings=settings, seeds=(0, 1),
                               eval_every=100, initialisations=("xavier_uniform", "zeros", "he"),
                               left_out=())
  study = ucl_experiment.make_study("quick", config)
  catalog = types.SimpleNamespace(
      EXPERIMENTS=("ucl",), PROFILES=registry.PROFILES,
      canonical_name=lambda text: "ucl", get_config=lambda name, profile: study)
  results_dir = tmp_path / "results"
  argv = ["--only", "ucl", "--results-dir", str(results_dir),
          "--data-dir", str(tmp_path / "data")]
  assert reproduce.main(argv, catalog=catalog) in (0, 1)  # 1: the tiny data misses the target
  saved = json.loads((results_dir / "ucl.json").read_text())
  check_results(saved, study)
  assert saved["status"] == "complete" and saved["figures"] == [
      "ucl_curves_mean.png", "ucl_curves_sum.png", "ucl_curves_chosen.png"]
  assert all((results_dir / f).stat().st_size > 10_000 for f in saved["figures"])
  # model 1 under 3 initialisations × 2 reductions, model 2 under 2 × 2 (zeros cannot train it)
  assert len(saved["cells"]) == 3 * (6 + 4)
  assert [len(saved["search"][m]) for m in ("1", "2")] == [6, 4]
  assert set(saved["chosen"]) == {"1", "2"} and saved["not_run"]["2"]["cannot_train"]
  for model, chosen in saved["chosen"].items():
    best = max(entry["reproduced"] for entry in saved["search"][model])
    assert chosen["reproduced"] == best
    assert [e["chosen"] for e in saved["search"][model]].count(True) == 1
  for cell in saved["cells"]:
    assert {"model", "setting", "reduction", "init", "reported", "test_accuracy", "seeds",
            "curves", "reproduces", "fit"} <= set(cell)
    assert len(cell["seeds"]) == 2 and cell["test_accuracy"] == pytest.approx(np.median(cell["seeds"]))
    assert cell["curves"]["samples"][-1] == 300 * cell["epochs"]
    assert 0 <= cell["test_accuracy"] <= 1 and isinstance(cell["reproduces"], bool)
  assert saved["meets_target"] == (saved["chosen_score"]["reproduced"] >= 10)
  report = (results_dir / "REPORT.md").read_text()
  assert "| model | setting | epochs, lr | reported | chosen setup |" in report
  assert "| model | initialisation | `mean` | `sum` |" in report
  assert "Conclusion, from the search:" in report
  assert "![ucl: ucl_curves_mean.png](ucl_curves_mean.png)" in report
  assert saved["headline"] in report


# ------------------------------------------------------------------------ real runs

@pytest.mark.slow
@pytest.mark.real_data
@pytest.mark.timeout(3 * 3600)
def test_the_full_table(tmp_path, hw_data_dir):
  study = registry.get_config("ucl", "full")
  results = study.run(tmp_path, profile="full", data_dir=str(hw_data_dir))
  check_results(results, study)
  # models 1-3 under every setup that can train them, model 4 under MODEL4_SETUPS
  assert len(results["cells"]) == 3 * (10 + 8 + 8 + len(ucl_experiment.MODEL4_SETUPS))
  assert results["better_reduction"] == ucl_experiment.QUICK_REDUCTION
  assert results["scores"]["mean"]["reproduced"] >= MEASURED_XAVIER_MEAN_REPRODUCED
  assert results["meets_target"] is MEASURED_FULL_MEETS_TARGET
  assert results["chosen_score"]["reproduced"] >= MEASURED_FULL_REPRODUCED


# What the full profile measured (seeds 0-2) on the 2-core CPU: Xavier-uniform with `mean`
# reproduces 7 of 12 cells (2026-12-02, the same cells on 2026-12-05); each model's chosen
# setup 8 of 12: models 1-3 (2026-12-05) zeros × `mean` 3/3, truncated_normal × `mean` 2/3
# and 2/3, model 4 its one setup, Xavier-uniform × `mean`, 1/3 (2026-12-02); short of the
# target of 10. The slow test holds the study to them.
MEASURED_XAVIER_MEAN_REPRODUCED = 7
MEASURED_FULL_REPRODUCED = 8
MEASURED_FULL_MEETS_TARGET = False


@pytest.mark.parametrize("model", [1, 4])
def test_the_top_5_error_of_every_member_is_a_direct_count(tiny, model):
  members = [ucl.Member(0.05, 0, "mean"), ucl.Member(0.01, 1, "sum")]
  curves, params = ucl.train_members(model, members, 1, tiny, batch_size=50, eval_every=200,
                                     eval_batch_size=40, return_params=True)
  for curve, member_params in zip(curves, params):
    scores = np.asarray(ucl.apply(model, member_params, tiny.test_images))
    labels = np.asarray(tiny.test_labels)
    kth_best = np.sort(scores, axis=1)[:, -5]
    misses = scores[np.arange(len(labels)), labels] < kth_best
    assert curve["test_top5_error"][-1] == pytest.approx(misses.mean(), abs=1e-9)
    assert curve["test_accuracy"][-1] == pytest.approx(
        np.mean(scores.argmax(1) == labels), abs=1e-9)
