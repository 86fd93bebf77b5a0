"""hw.optim against optax, update by update, in float64; the check itself can fail."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import hw.optim
from hw.optim import verify

NAMES = ["sgd", "momentum", "nesterov", "rmsprop", "adam", "adam+schedule",
         "rmsprop-initial-scale"]


@pytest.mark.parametrize("name", NAMES)
def test_matches_optax_to_float64_precision(name):
  result = verify.check_against_optax(name, steps=100, seed=0)
  assert result.passed, result
  assert result.max_rel_err <= 1e-10
  assert result.steps == 100


def _adam_without_bias_correction(learning_rate, b1=0.9, b2=0.999, eps=1e-8):
  """Adam as sometimes mis-remembered: raw moments, no 1/(1 − βᵗ)."""
  def init(params):
    zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
    return hw.optim.AdamState(jnp.zeros([], jnp.int32), zeros, zeros)

  def update(grads, state, params=None):
    mu = jax.tree_util.tree_map(lambda g, m: (1 - b1) * g + b1 * m, grads, state.mu)
    nu = jax.tree_util.tree_map(lambda g, v: (1 - b2) * g ** 2 + b2 * v, grads, state.nu)
    updates = jax.tree_util.tree_map(lambda m, v: -learning_rate * m / (jnp.sqrt(v) + eps),
                                     mu, nu)
    return updates, hw.optim.AdamState(state.count + 1, mu, nu)
  return optax.GradientTransformation(init, update)


@pytest.mark.parametrize("name, wrong", [
    ("adam", _adam_without_bias_correction(0.03)),
    # PyTorch's eps placement, √v + ε instead of √(v + ε): off by only ~1e-4 relative.
    ("rmsprop", optax.rmsprop(0.03, eps_in_sqrt=False)),
    ("nesterov", hw.optim.sgd(0.03, momentum=0.9)),            # heavy ball, not Nesterov
    ("momentum", optax.chain(optax.ema(0.9, debias=False), optax.scale(-0.03))),  # EMA, not trace
    ("sgd+schedule", hw.optim.sgd(lambda count: verify._schedule(count + 1))),  # off by one step
], ids=["adam-no-bias-correction", "rmsprop-eps-outside-root", "nesterov-as-heavy-ball",
        "momentum-as-ema", "schedule-off-by-one"])
def test_check_detects_a_wrong_optimizer(name, wrong):
  result = verify.check_against_optax(name, transformation=wrong)
  assert not result.passed
  assert result.max_rel_err > 1e-6


def test_works_under_jit_on_a_nested_pytree():
  params = {"a": jnp.ones((3, 2)), "b": [jnp.zeros(4), jnp.full((), 2.0)]}
  grads = jax.tree_util.tree_map(lambda p: 0.5 * jnp.ones_like(p) + p, params)
  for name in hw.optim.OPTIMIZER_NAMES:
    optimizer = hw.optim.by_name(name, 0.1)
    state = optimizer.init(params)
    eager_updates, eager_state = optimizer.update(grads, state, params)
    jit_updates, jit_state = jax.jit(optimizer.update)(grads, state, params)
    for a, b in zip(jax.tree_util.tree_leaves((eager_updates, eager_state)),
                    jax.tree_util.tree_leaves((jit_updates, jit_state))):
      np.testing.assert_allclose(a, b, rtol=1e-6, atol=0)
    assert jax.tree_util.tree_structure(jit_updates) == jax.tree_util.tree_structure(params)


def test_learning_rate_can_be_a_traced_value_and_a_schedule():
  params = jnp.array([1.0, -2.0])
  grads = jnp.array([0.5, 0.25])

  @jax.jit
  def first_update(lr):
    optimizer = hw.optim.sgd(lr)
    return optimizer.update(grads, optimizer.init(params), params)[0]
  np.testing.assert_allclose(first_update(0.2), -0.2 * grads, rtol=1e-7)

  schedule = optax.linear_schedule(1.0, 0.0, transition_steps=4)
  optimizer = hw.optim.sgd(schedule)
  state = optimizer.init(params)
  seen = []
  for _ in range(3):
    updates, state = optimizer.update(grads, state, params)
    seen.append(float(updates[0] / -grads[0]))
  np.testing.assert_allclose(seen, [1.0, 0.75, 0.5], rtol=1e-6)  # schedule(0), (1), (2)


def test_adam_bias_correction_makes_constant_gradients_exact():
  optimizer = hw.optim.adam(0.1)
  with jax.enable_x64(True):
    params = jnp.zeros(3, jnp.float64)
    grads = jnp.array([2.0, -0.5, 1e-3], jnp.float64)
    state = optimizer.init(params)
    for _ in range(5):
      updates, state = optimizer.update(grads, state, params)
      # m̂ = g and v̂ = g², so u = −α g / (|g| + ε) ≈ −α sign(g).
      np.testing.assert_allclose(updates, -0.1 * grads / (jnp.abs(grads) + 1e-8), rtol=1e-12)


def test_invalid_arguments_are_reported():
  with pytest.raises(ValueError, match="nesterov"):
    hw.optim.sgd(0.1, nesterov=True)
  with pytest.raises(ValueError, match="name"):
    hw.optim.by_name("adagrad", 0.1)
  with pytest.raises(ValueError, match="name"):
    verify.check_against_optax("lbfgs")


def test_summary_table_lists_every_configuration():
  checks = verify.verify_all(names=["sgd", "adam"], steps=10)
  table = verify.format_table(checks)
  assert "sgd" in table and "adam" in table and "all match optax" in table
  assert all(c.passed for c in checks)
