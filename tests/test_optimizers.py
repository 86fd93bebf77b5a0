"""hw.engine.update_rules: the schedules, and the injected learning rate."""
from __future__ import annotations

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from hw.engine import update_rules as optimizers
from hw.engine.config import ExperimentConfig


def _config(**changes) -> ExperimentConfig:
  return ExperimentConfig(name="opt", title="opt", dataset="synthetic", model="linear",
                          learning_rate=0.05, epochs=3).replace(**changes)


def test_cosine_schedule_decays_per_step_to_zero():
  config = _config(learning_rate=0.1, lr_schedule="cosine", epochs=4)
  rates = [optimizers.epoch_learning_rate(config, 10, epoch) for epoch in (1, 2, 3, 4)]
  np.testing.assert_allclose(rates, [0.1 * 0.5 * (1 + math.cos(math.pi * e / 4)) for e in range(4)],
                             rtol=1e-6)
  schedule = optimizers.learning_rate_schedule(config, 10)
  assert float(schedule(40)) == pytest.approx(0.0, abs=1e-9)


def test_exponential_schedule_multiplies_per_epoch():
  exponential = _config(lr_decay=0.5)
  assert optimizers.epoch_learning_rate(exponential, 10, 3) == pytest.approx(0.05 * 0.25)
  assert optimizers.learning_rate_schedule(_config(), 10) == 0.05  # lr_decay 1: a constant


@pytest.mark.parametrize("name", ["sgd", "momentum", "nesterov", "rmsprop", "adam"])
@pytest.mark.parametrize("schedule", list(optimizers.SCHEDULES))
def test_injected_learning_rate_gives_the_plain_optax_updates(name, schedule):
  """The traced learning rate changes nothing: updates equal the optimiser built with the
  learning rate as a constant, over a few steps."""
  config = _config(optimizer=name, lr_schedule=schedule, lr_decay=0.7)
  plain = {"sgd": optax.sgd(optimizers.learning_rate_schedule(config, 2)),
           "momentum": optax.sgd(optimizers.learning_rate_schedule(config, 2), momentum=0.9),
           "nesterov": optax.sgd(optimizers.learning_rate_schedule(config, 2), momentum=0.9,
                                 nesterov=True),
           "rmsprop": optax.rmsprop(optimizers.learning_rate_schedule(config, 2), decay=0.99,
                                    eps=1e-8),
           "adam": optax.adam(optimizers.learning_rate_schedule(config, 2))}[name]
  injected = optimizers.make_optimizer(config, 2)
  params = {"w": jnp.arange(6.0).reshape(2, 3), "b": jnp.ones(3)}
  states = plain.init(params), injected.init(params)
  for step in range(6):
    grads = jax.tree_util.tree_map(lambda p: jnp.sin(p + step), params)
    u_plain, s_plain = plain.update(grads, states[0], params)
    u_injected, s_injected = injected.update(grads, states[1], params)
    chex.assert_trees_all_equal(u_plain, u_injected)  # bit for bit
    states = s_plain, s_injected


def test_unknown_names_list_the_known_ones():
  with pytest.raises(ValueError, match="unknown lr_schedule lr_schedule='step'; known: "
                                       "exponential, cosine"):
    _config(lr_schedule="step")
  with pytest.raises(ValueError, match="unknown optimizer optimizer='lbfgs'; known: sgd"):
    _config(optimizer="lbfgs")


@pytest.mark.parametrize("name", ["sgd", "momentum", "nesterov", "rmsprop", "adam"])
@pytest.mark.parametrize("schedule", list(optimizers.SCHEDULES))
def test_hand_written_optimizers_give_optax_updates_in_the_engine(name, schedule):
  """hw_<name> (hw.optim) against <name> (optax), both as the engine builds them (injected
  learning rate, schedule), float32, over a few steps."""
  config = _config(optimizer=name, lr_schedule=schedule, lr_decay=0.7)
  ours = optimizers.make_optimizer(config.replace(optimizer=f"hw_{name}"), 2)
  theirs = optimizers.make_optimizer(config, 2)
  params = {"w": jnp.arange(6.0).reshape(2, 3), "b": jnp.ones(3)}
  states = ours.init(params), theirs.init(params)
  for step in range(6):
    grads = jax.tree_util.tree_map(lambda p: jnp.cos(p * (step + 1)), params)
    u_ours, s_ours = ours.update(grads, states[0], params)
    u_theirs, s_theirs = theirs.update(grads, states[1], params)
    chex.assert_trees_all_close(u_ours, u_theirs, rtol=5e-5, atol=1e-9)  # float32 rounding
    states = s_ours, s_theirs
