"""hw.engine.loop and hw.engine.steps: stepping choice, programs passed explicitly and
compiled once per shape, hooks."""
from __future__ import annotations

import threading

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hw import backends, metrics
from hw.engine import loop, randomness, steps
from hw.engine.config import ExperimentConfig
from hw.engine.experiment_data import Split, to_device
from hw.nn import models


def _config(**changes) -> ExperimentConfig:
  return ExperimentConfig(name="core", title="core", dataset="synthetic", model="mlp",
                          model_kwargs={"hidden_sizes": (16,)}, optimizer="momentum",
                          learning_rate=0.05, batch_size=20, epochs=3, weight_scale=None,
                          eval_batch_size=50).replace(**changes)


@pytest.fixture(scope="module")
def data() -> loop.TrainingData:
  rng = np.random.default_rng(0)
  images = rng.random((150, 6, 6, 1), dtype=np.float32)
  labels = (images[:, :3].mean((1, 2, 3)) > images[:, 3:].mean((1, 2, 3))).astype(np.int32)
  return loop.TrainingData(to_device(Split(images[:100], labels[:100]), None, 1),
                            to_device(Split(images[100:], labels[100:]), None, 50))


def test_conv_nets_step_per_batch_on_cpu_dense_nets_scan_and_accelerators_scan():
  conv = models.create_model("cnn", num_outputs=10, filters=4, filter_size=3, hidden_size=8)
  dense = models.create_model("mlp", num_outputs=10, hidden_sizes=(8,))
  assert _config().jit_per_batch is None
  assert steps.per_batch_stepping(_config(), conv, "cpu") is True
  assert steps.per_batch_stepping(_config(), dense, "cpu") is False
  assert steps.per_batch_stepping(_config(), conv, "gpu") is False
  assert steps.per_batch_stepping(_config(), conv, "tpu") is False
  assert steps.per_batch_stepping(_config(jit_per_batch=True), dense, "cpu") is True
  assert steps.per_batch_stepping(_config(jit_per_batch=False), conv, "cpu") is False


def test_a_step_over_two_half_batches_is_the_step_over_the_batch(data):
  """The halves' scores are concatenated and the loss is their mean over the whole batch:
  the same loss, gradients and updated parameters up to float rounding."""
  config = _config(model="cnn", model_kwargs={"filters": 4, "filter_size": 3, "hidden_size": 8},
                   jit_per_batch=True)
  results = {}
  for halves in (False, True):
    with backends.replaced("cpu", batch_halves=halves):
      programs = loop.programs_for(config, 2, data.train.size)
      state = loop.init_state(config, programs, data.train.images)
      initial = [np.asarray(leaf) for leaf in jax.tree_util.tree_leaves(state.params)]
      index = np.arange(config.batch_size, dtype=np.int32)
      key = randomness.key_data(np.random.default_rng(0))
      results[halves] = programs.step(state, data.train.images, data.train.labels,
                                      *programs.feed(index, key))
  (whole, loss, correct), (halved, halved_loss, halved_correct) = results[False], results[True]
  np.testing.assert_allclose(halved_loss, loss, rtol=1e-6)
  assert int(halved_correct) == int(correct)
  for a, b in zip(jax.tree_util.tree_leaves(halved.params), jax.tree_util.tree_leaves(whole.params)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
  assert not all(np.array_equal(a, b)
                 for a, b in zip(jax.tree_util.tree_leaves(halved.params), initial))


def test_side_by_side_runs_the_first_call_on_a_worker_and_keeps_the_order():
  threads = []

  def program(value):
    threads.append((value, threading.current_thread().name))
    return jnp.asarray(value * 10)

  first, second = steps.side_by_side(program, (1,), (2,))
  assert (int(first), int(second)) == (10, 20)
  where = dict(threads)
  assert where[1].startswith("hw-halves") and where[2] == threading.current_thread().name


@pytest.mark.parametrize("failing", [1, 2])
def test_side_by_side_raises_what_either_half_raised(failing):
  def program(value):
    if value == failing:
      raise ValueError(f"half {value} failed")
    return value

  with pytest.raises(ValueError, match=f"half {failing} failed"):
    steps.side_by_side(program, (1,), (2,))


@pytest.mark.parametrize("changes, halves_differ", [
    ({}, False),
    ({"model": "cnn_bn", "model_kwargs": {"conv_blocks": ((4, 3),), "hidden_size": 8,
                                          "batch_norm": False, "dropout_rate": 0.5}}, True),
    ({"augment": "shift"}, True),
])
def test_each_half_of_a_step_draws_its_own_masks_and_augmentation(data, monkeypatch, changes,
                                                                 halves_differ):
  """Two equal halves of a batch give equal gradients unless dropout or augmentation draws
  for each half from its own key."""
  config = _config(model="cnn", model_kwargs={"filters": 4, "filter_size": 3, "hidden_size": 8},
                   jit_per_batch=True).replace(**changes)
  seen = []
  side_by_side = steps.side_by_side
  monkeypatch.setattr(steps, "side_by_side",
                      lambda *args: seen.append(side_by_side(*args)) or seen[-1])
  with backends.replaced("cpu", batch_halves=True):
    programs = loop.programs_for(config, 2, data.train.size)
    state = loop.init_state(config, programs, data.train.images)
    index = np.tile(np.arange(config.batch_size // 2, dtype=np.int32), 2)
    programs.step(state, data.train.images, data.train.labels,
                  *programs.feed(index, randomness.key_data(np.random.default_rng(0))))
  (first_grads, *_), (second_grads, *_) = seen[0]
  equal = all(np.array_equal(a, b) for a, b in zip(jax.tree_util.tree_leaves(first_grads),
                                                  jax.tree_util.tree_leaves(second_grads)))
  assert equal is not halves_differ


def test_a_step_in_halves_compiles_one_half_program_for_an_even_batch(data):
  config = _config(model="cnn", model_kwargs={"filters": 4, "filter_size": 3, "hidden_size": 8},
                   jit_per_batch=True, epochs=2)
  with backends.replaced("cpu", batch_halves=True):
    programs = loop.programs_for(config, 2, data.train.size)
    loop.train(config, data, programs=programs)
  assert programs.traces == {"half": 1, "step": 1, "evaluate": 1}


def _train(config, data, **kwargs):
  return loop.train(config, data, programs=loop.programs_for(config, 2, data.train.size),
                    **kwargs)


@pytest.mark.parametrize("per_batch", [False, True])
def test_no_recompilation_across_epochs_and_learning_rates(data, per_batch):
  cache = steps.ProgramCache()
  for rate in (0.05, 0.1, 0.2):  # a learning-rate grid shares one compiled step
    config = _config(learning_rate=rate, jit_per_batch=per_batch)
    loop.train(config, data, programs=cache.get(config, 2, 5))
  assert len(cache) == 1
  programs = cache.get(_config(jit_per_batch=per_batch), 2, 5)
  assert programs.traces == {("step" if per_batch else "chunk"): 1, "evaluate": 1}


def test_programs_of_another_shape_are_refused_naming_what_differs(data):
  programs = loop.programs_for(_config(), 2, data.train.size)
  with pytest.raises(ValueError, match=r"steps_per_epoch 5 != 2"):
    loop.train(_config(batch_size=50), data, programs=programs)
  with pytest.raises(ValueError, match=r"compile_key"):
    loop.train(_config(model_kwargs={"hidden_sizes": (8,)}), data, programs=programs)


def test_the_learning_rate_still_matters(data):
  _, slow = _train(_config(learning_rate=0.0), data)
  _, fast = _train(_config(learning_rate=0.1), data)
  assert slow[-1]["train_loss"] == pytest.approx(slow[0]["train_loss"], rel=1e-6)
  assert fast[-1]["train_loss"] < fast[0]["train_loss"]


def test_the_program_cache_is_bounded():
  cache = steps.ProgramCache(size=2)
  for width in (3, 4, 5):
    cache.get(_config(model_kwargs={"hidden_sizes": (width,)}), 2, 5)
  assert len(cache) == 2


class _Recorder(loop.Hook):
  def __init__(self):
    self.calls = []

  def on_train_begin(self, *, start_epoch, epochs, steps_per_epoch):
    self.calls.append(("begin", start_epoch, epochs, steps_per_epoch))

  def on_steps_end(self, steps):
    self.calls.append(("steps", steps))

  def on_epoch_end(self, epoch, state, record):
    record["extra"] = epoch * 10
    self.calls.append(("epoch", epoch))

  def on_train_end(self):
    self.calls.append(("end",))


def test_hooks_see_every_step_batch_and_epoch_and_can_add_metrics(data):
  recorder = _Recorder()
  state, history = _train(_config(epochs=2), data, hooks=[recorder])
  assert recorder.calls == [("begin", 1, 2, 5), ("steps", 5), ("epoch", 1), ("steps", 5),
                            ("epoch", 2), ("end",)]
  assert [r["extra"] for r in history] == [10, 20]
  resumed = _Recorder()
  _, again = _train(_config(epochs=3), data, state=state, history=history, hooks=[resumed])
  assert resumed.calls[0] == ("begin", 3, 3, 5) and [r["epoch"] for r in again] == [1, 2, 3]


def test_a_non_finite_loss_raises_before_the_epoch_hooks(data):
  recorder = _Recorder()
  with pytest.raises(loop.TrainingDiverged, match="non-finite in epoch") as caught:
    _train(_config(model="linear", model_kwargs={}, optimizer="sgd", learning_rate=1.0,
                   lr_decay=1e30, epochs=8), data, hooks=[recorder])
  assert ("epoch", caught.value.epoch) not in recorder.calls and recorder.calls[-1] == ("end",)


def test_one_evaluation_pass_gives_loss_accuracy_and_top_k_of_the_unpadded_split():
  rng = np.random.default_rng(1)
  images = rng.random((137, 6, 6, 1), dtype=np.float32)
  labels = rng.integers(0, 7, 137).astype(np.int32)
  data = loop.TrainingData(to_device(Split(images[:100], labels[:100]), None, 1),
                           to_device(Split(images[100:], labels[100:]), None, 50))
  assert data.validation.images.shape[0] == 50 and data.validation.size == 37  # padded
  programs = loop.programs_for(_config(epochs=1), 7, data.train.size)
  state, _ = loop.train(_config(epochs=1), data, programs=programs)
  loss, accuracy, errors = loop.evaluate_with_top_k(state, programs, data.validation)
  scores = np.asarray(programs.model.apply(state.variables(), images[100:], train=False))
  expected_loss = _cross_entropy(scores.astype(np.float64), labels[100:])
  assert loss == pytest.approx(expected_loss, rel=1e-5)
  assert accuracy == pytest.approx(np.mean(np.argmax(scores, 1) == labels[100:]), abs=1e-6)
  assert errors == pytest.approx(metrics.top_k_errors(scores, labels[100:]), abs=1e-6)
  assert set(errors) == {"top1_error", "top5_error"} and errors["top5_error"] < errors["top1_error"]
  assert loop.evaluate(state, programs, data.validation) == (loss, accuracy)


def _cross_entropy(scores: np.ndarray, labels: np.ndarray) -> float:
  shifted = scores - scores.max(axis=1, keepdims=True)
  log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
  return float(-np.mean(log_probs[np.arange(len(labels)), labels]))
