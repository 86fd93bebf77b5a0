"""The UCL study's searched initialisations and the rule that chooses each model's setup
(experiments.studies.ucl), on small data."""
from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import ucl as ucl_experiment
from experiments.studies import ucl

DENSE, CONV = (784, 300), (3, 3, 64, 64)  # conv fans: 3·3·64 = 576 in and out


def _fans(shape):
  receptive = int(np.prod(shape[:-2]))
  return receptive * shape[-2], receptive * shape[-1]


def _draw(scheme, shape, seed=0):
  return np.asarray(scheme(jax.random.key(seed), shape), np.float64)


# ------------------------------------------------------------------ the schemes' draws

@pytest.mark.parametrize("shape", [DENSE, CONV])
def test_xavier_and_he_draws_have_their_variances(shape):
  fan_in, fan_out = _fans(shape)
  limit = math.sqrt(6 / (fan_in + fan_out))
  uniform = _draw(ucl.xavier_uniform, shape)
  assert np.abs(uniform).max() <= limit and np.abs(uniform).max() > 0.99 * limit
  assert uniform.var() == pytest.approx(2 / (fan_in + fan_out), rel=0.05)
  normal = _draw(ucl.xavier_normal, shape)
  assert normal.var() == pytest.approx(2 / (fan_in + fan_out), rel=0.05)
  assert abs(normal.mean()) < 0.05 * normal.std()
  assert np.abs(normal).max() > limit  # a normal, not the uniform: tails beyond √3 σ
  he = _draw(ucl.he_normal, shape)
  assert he.var() == pytest.approx(2 / fan_in, rel=0.05)  # fan_in with the receptive field


def test_truncated_normal_is_tensorflows_stddev_0_1_cut_at_two_sigma():
  draws = _draw(ucl.truncated_normal, DENSE)
  # N(0, 1) cut at ±2 has variance 1 − 2·2·φ(2) / (Φ(2) − Φ(−2))
  phi = math.exp(-2) / math.sqrt(2 * math.pi)
  mass = math.erf(2 / math.sqrt(2))
  expected_std = 0.1 * math.sqrt(1 - 4 * phi / mass)
  assert expected_std == pytest.approx(0.08796, abs=1e-5)
  assert draws.std() == pytest.approx(expected_std, rel=0.02)
  assert np.abs(draws).max() <= 0.2 + 1e-7 and np.abs(draws).max() > 0.199  # the cut, reached
  assert abs(draws.mean()) < 0.002


def test_init_params_biases_and_the_shared_per_layer_keys():
  for model in (2, 4):  # dense layers; conv and dense layers
    normal, he = ucl.init_params(model, 3, "xavier_normal"), ucl.init_params(model, 3, "he")
    truncated = ucl.init_params(model, 3, "truncated_normal")
    for (wn, bn), (wh, bh), (wt, bt), shape in zip(normal, he, truncated, ucl.layer_shapes(model)):
      fan_in, fan_out = _fans(shape)
      # the same key per layer: He's draw is Xavier-normal's scaled by √((in + out) / in)
      np.testing.assert_allclose(np.asarray(wh), np.asarray(wn) * math.sqrt((fan_in + fan_out)
                                                                         / fan_in), rtol=1e-5)
      assert not np.any(np.asarray(bn)) and not np.any(np.asarray(bh))
      np.testing.assert_array_equal(np.asarray(bt), np.full(shape[-1], 0.1, np.float32))
      assert wt.shape == shape and np.abs(np.asarray(wt)).max() <= 0.2 + 1e-7
  (w, b), = ucl.init_params(1, 0, "zeros")
  assert w.shape == (784, 10) and not np.any(np.asarray(w)) and not np.any(np.asarray(b))
  # the default stays the coursework's Xavier-uniform
  for a, c in zip(jax.tree.leaves(ucl.init_params(3, 1)),
                  jax.tree.leaves(ucl.init_params(3, 1, "xavier_uniform"))):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(c))
  assert tuple(ucl.INITIALISATIONS) == ucl.INITIALISATION_NAMES
  with pytest.raises(ValueError, match="`init` must be one of .*'glorot'"):
    ucl.init_params(1, 0, "glorot")


# ----------------------------------------------------------- zeros and symmetry

@pytest.mark.parametrize("model", [2, 3, 4])
def test_zero_init_is_refused_where_hidden_layers_cannot_break_symmetry(model):
  with pytest.raises(ValueError, match=f"`init` 'zeros' for `model` {model}: .*symmetry"):
    ucl.init_params(model, 0, "zeros")
  assert "symmetry" in ucl.symmetry_problem(model, "zeros")
  # why: from zero, every gradient but the output bias's is exactly zero
  zero = jax.tree.map(jnp.zeros_like, ucl.init_params(model, 0))
  rng = np.random.default_rng(0)
  images = jnp.asarray(rng.random((20, 28, 28, 1)), jnp.float32)
  labels = jnp.asarray(rng.integers(0, 10, 20), jnp.int32)
  grads = jax.jit(jax.grad(ucl.loss), static_argnames=("model", "reduction"))(
      zero, images, labels, model=model, reduction="mean")
  *hidden, (output_w, output_b) = grads
  for leaf in jax.tree.leaves(hidden) + [output_w]:
    assert not np.any(np.asarray(leaf))
  assert np.any(np.asarray(output_b))


def test_zero_init_trains_model_1():
  assert ucl.symmetry_problem(1, "zeros") is None
  assert all(ucl.symmetry_problem(m, init) is None for m in (1, 2, 3, 4)
             for init in ucl.INITIALISATION_NAMES if init != "zeros")
  rng = np.random.default_rng(1)
  labels = rng.integers(0, 10, 200).astype(np.int32)
  images = (rng.random((200, 28, 28, 1)) * 0.3).astype(np.float32)
  for k in range(10):
    images[labels == k, 2 * k:2 * k + 3, 4:24, 0] += 0.7
  params = ucl.init_params(1, 0, "zeros")
  before = ucl.loss(params, images, labels, model=1, reduction="mean")
  for _ in range(5):
    params, _ = ucl.sgd_step(params, 0.1, images, labels, model=1, reduction="mean")
  assert ucl.loss(params, images, labels, model=1, reduction="mean") < before
  assert np.mean(np.argmax(ucl.apply(1, params, images), 1) == labels) > 0.5


def test_the_plan_refuses_zeros_and_leaves_out_what_the_config_says():
  plans = ucl.plan(ucl_experiment.FULL)
  assert [len(plans[m]["run"]) for m in (1, 2, 3, 4)] == [10, 8, 8,
                                                          len(ucl_experiment.MODEL4_SETUPS)]
  assert plans[4]["run"] == [ucl.Setup(*s) for s in ucl_experiment.MODEL4_SETUPS]
  assert plans[1]["run"][0] == ucl.Setup("xavier_uniform", "mean")  # search order
  for model in (2, 3, 4):
    assert set(plans[model]["refused"]) == {ucl.Setup("zeros", "mean"), ucl.Setup("zeros", "sum")}
  assert not plans[1]["refused"] and not plans[1]["left_out"]
  assert len(plans[4]["left_out"]) == 8 - len(ucl_experiment.MODEL4_SETUPS)
  quick = ucl.plan(ucl_experiment.QUICK)
  assert all(quick[m]["run"] == [ucl.Setup("xavier_uniform", "mean")] for m in (1, 2, 3, 4))


def test_the_config_checks_its_search():
  with pytest.raises(ValueError, match="`initialisations`.*'glorot'"):
    ucl.UclConfig(initialisations=("glorot",))
  with pytest.raises(ValueError, match="`reductions`"):
    ucl.UclConfig(reductions=("mean", "mean"))
  with pytest.raises(ValueError, match=r"`left_out` .*\(5, 'he', 'mean'\)"):
    ucl.UclConfig(initialisations=("he",), left_out=((5, "he", "mean"),))
  with pytest.raises(ValueError, match="`left_out`"):  # not searched: cannot be left out
    ucl.UclConfig(left_out=((4, "he", "mean"),))


# ---------------------------------------------------------------- the selection rule

def _score(init, reduction, reproduced, miss):
  return {"setup": ucl.Setup(init, reduction), "reproduced": reproduced, "cells": 3,
          "mean_abs_miss_points": miss}


def test_the_selection_rule_counts_then_misses_then_search_order():
  scores = [_score("xavier_uniform", "mean", 2, 9.0), _score("zeros", "mean", 3, 12.0),
            _score("he", "sum", 1, 0.5)]
  assert ucl.choose_setup(scores)["setup"] == ucl.Setup("zeros", "mean")  # the count first
  tied = [_score("xavier_uniform", "mean", 2, 9.0), _score("he", "mean", 2, 4.0),
          _score("zeros", "sum", 2, 6.0)]
  assert ucl.choose_setup(tied)["setup"] == ucl.Setup("he", "mean")  # then the smaller miss
  exact = [_score("xavier_uniform", "sum", 1, 5.0), _score("he", "mean", 1, 5.0)]
  assert ucl.choose_setup(exact)["setup"] == ucl.Setup("xavier_uniform", "sum")  # then order
  assert ucl.choose_setup(exact[::-1])["setup"] == ucl.Setup("he", "mean")
  with pytest.raises(ValueError, match="`scores`"):
    ucl.choose_setup([])


def _cell(model, setting, init, reduction, accuracy, reported):
  samples = [0, 60_000]
  curve = [0.1, accuracy]
  return {"model": model, "setting": setting, "init": init, "reduction": reduction,
          "epochs": 1, "learning_rate": 0.1, "reported": reported,
          "test_accuracy": accuracy, "seeds": [accuracy], "seed_numbers": [0],
          "top1_error": 1 - accuracy, "top5_error": 0.0, "train_accuracy": accuracy,
          "reproduces": ucl.reproduces(reported, [accuracy]),
          "fit": ucl.classify_fit(samples, curve, curve, samples_per_epoch=60_000),
          "curves": {"samples": samples, "median": {"train_accuracy": curve,
                                                    "test_accuracy": curve},
                     "seeds": [{"diverged_at": None, "blow_up": None}]}}


def test_the_report_chooses_per_model_and_concludes_from_the_search():
  settings = (ucl.Setting(1, 1, 1, 0.1, 0.70), ucl.Setting(1, 2, 1, 0.1, 0.90),
              ucl.Setting(2, 1, 1, 0.1, 0.20), ucl.Setting(2, 2, 1, 0.1, 0.95))
  config = dataclasses.replace(ucl_experiment.FULL, settings=settings, seeds=(0,),
                               initialisations=("xavier_uniform", "zeros", "he"),
                               reductions=("mean",), left_out=((2, "he", "mean"),))
  cells = [
      # model 1: zeros reproduces both cells, Xavier-uniform one, He none
      _cell(1, 1, "xavier_uniform", "mean", 0.25, 0.70), _cell(1, 2, "xavier_uniform", "mean", 0.89, 0.90),
      _cell(1, 1, "zeros", "mean", 0.71, 0.70), _cell(1, 2, "zeros", "mean", 0.88, 0.90),
      _cell(1, 1, "he", "mean", 0.30, 0.70), _cell(1, 2, "he", "mean", 0.50, 0.90),
      # model 2: only Xavier-uniform runs (zeros cannot, He left out); S1 is reached by none
      _cell(2, 1, "xavier_uniform", "mean", 0.53, 0.20), _cell(2, 2, "xavier_uniform", "mean", 0.95, 0.95),
  ]
  timing = {"samples_per_epoch": 60_000, "test_size": 10_000, "model4_wall_s": 0.0,
            "groups": [{"model": 1, "epochs": 1, "runs": 6}], "train_wall_s": 1.0,
            "train_cpu_s": 1.0, "workers": 1, "cpu_count": 2}
  result = ucl.summarize(cells, timing, config, profile="full", load=None)
  text = "\n".join(result["summary"])
  assert result["chosen"] == {"1": {"init": "zeros", "reduction": "mean", "reproduced": 2, "cells": 2},
                              "2": {"init": "xavier_uniform", "reduction": "mean", "reproduced": 1,
                                    "cells": 2}}
  assert result["chosen_score"]["reproduced"] == 3 and result["meets_target"] is False
  assert "| 1 | zeros | **2/2 (1.5)** |" in text and "| 1 | he | 0/2 (40.0) |" in text
  assert "| 2 | zeros | cannot train (symmetry) |" in text
  assert "| 2 | he | left out (time budget) |" in text
  assert "model 1: **zeros × `mean` explains all 2 cells**" in text
  assert "Cells that no setup tried reaches: M2S1." in text
  assert "the coursework's own setup, xavier_uniform: `mean` 2 of 4" in text
  assert result["headline"].startswith("3/4 cells (each model's chosen setup, 4 model × setup")
  missed = next(c for c in cells if (c["model"], c["setting"], c["init"]) == (1, 1, "he"))
  assert "1 of the 2 other setups tried reproduce it: zeros × `mean` 0.7100" in missed["explanation"]
  only = next(c for c in cells if (c["model"], c["setting"]) == (2, 1))
  assert "points above the reported number" in only["explanation"]
  assert result["not_run"]["2"]["left_out"] == ["he × mean"]
