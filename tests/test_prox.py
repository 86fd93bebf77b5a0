"""ISTA / FISTA for the lasso: the prox, the step size, optimality and an independent solver."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import hw.optim
from hw.optim import prox
from hw.optim.coordinate_descent import lasso_coordinate_descent


def _problem(m=40, n=80, nonzeros=5, seed=0, lam_fraction=0.1):
  rng = np.random.default_rng(seed)
  a = rng.standard_normal((m, n)) / np.sqrt(m)
  x_true = np.zeros(n)
  support = rng.choice(n, nonzeros, replace=False)
  x_true[support] = rng.choice([-1.0, 1.0], nonzeros) * (1 + rng.random(nonzeros))
  b = a @ x_true + 0.01 * rng.standard_normal(m)
  lam = lam_fraction * np.max(np.abs(a.T @ b))
  return a, b, lam, support


@pytest.fixture(scope="module")
def solved():
  a, b, lam, support = _problem()
  with jax.enable_x64(True):
    ista_run = prox.ista(jnp.asarray(a), jnp.asarray(b), lam, num_iterations=3000)
    fista_run = prox.fista(jnp.asarray(a), jnp.asarray(b), lam, num_iterations=1000)
    runs = {name: (np.asarray(r.x), np.asarray(r.objective), float(r.lipschitz))
            for name, r in (("ista", ista_run), ("fista", fista_run))}
  return a, b, lam, support, runs, lasso_coordinate_descent(a, b, lam)


def test_soft_threshold_is_the_prox_of_the_l1_norm():
  v = np.array([-3.0, -1.0, -0.5, 0.0, 0.2, 1.0, 2.5])
  tau = 1.0
  with jax.enable_x64(True):
    shrunk = np.asarray(prox.soft_threshold(jnp.asarray(v), tau))
  np.testing.assert_array_equal(shrunk, [-2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.5])
  grid = np.linspace(-5, 5, 200_001)  # brute-force argmin of ½(x − v)² + τ|x|
  for vi, si in zip(v, shrunk):
    brute = grid[np.argmin(0.5 * (grid - vi) ** 2 + tau * np.abs(grid))]
    assert abs(brute - si) <= 1e-4


def test_power_iteration_finds_the_lipschitz_constant():
  a, _, _, _ = _problem(m=60, n=30, seed=3)
  with jax.enable_x64(True):
    result = prox.largest_eigenvalue(jnp.asarray(a))
  exact = np.linalg.eigvalsh(a.T @ a)[-1]
  assert abs(float(result.eigenvalue) - exact) <= 1e-9 * exact
  assert float(result.eigenvalue) <= exact * (1 + 1e-12)  # a Rayleigh quotient: from below


@pytest.mark.parametrize("method", ["ista", "fista"])
def test_solution_satisfies_the_kkt_conditions(solved, method):
  a, b, lam, _, runs, _ = solved
  x = runs[method][0]
  assert prox.kkt_violation(a, b, lam, x) <= 1e-6
  correlation = a.T @ (a @ x - b)
  zero = x == 0
  assert zero.any() and (~zero).any()  # both kinds of condition are exercised
  assert np.all(np.abs(correlation[zero]) <= lam + 1e-6)
  np.testing.assert_allclose(correlation[~zero], -lam * np.sign(x[~zero]), atol=1e-6)


@pytest.mark.parametrize("method", ["ista", "fista"])
def test_agrees_with_coordinate_descent(solved, method):
  a, b, lam, support, runs, reference = solved
  x, objective, _ = runs[method]
  assert prox.kkt_violation(a, b, lam, reference.x) <= 1e-9
  np.testing.assert_allclose(x, reference.x, atol=1e-6)
  assert abs(objective[-1] - reference.objective) <= 1e-10 * reference.objective
  assert set(support) <= set(np.flatnonzero(reference.x))


def test_convergence_rates_hold(solved):
  a, b, lam, _, runs, reference = solved
  f_star = reference.objective
  distance = np.sum(reference.x ** 2)  # ‖x₀ − x*‖² with x₀ = 0
  k = np.arange(1, 501)
  ista_objective, lipschitz = runs["ista"][1], runs["ista"][2]
  assert np.all(np.diff(ista_objective) <= 1e-12)  # ISTA never goes uphill
  assert np.all(ista_objective[k] - f_star <= lipschitz * distance / (2 * k) + 1e-12)
  fista_objective = runs["fista"][1]
  assert np.all(fista_objective[k] - f_star <= 2 * lipschitz * distance / (k + 1) ** 2 + 1e-12)


def test_fista_momentum_sequence():
  t = [1.0]
  for _ in range(50):
    t.append(float(prox.fista_momentum(jnp.asarray(t[-1]))))
  t = np.array(t)
  np.testing.assert_allclose(t[1], (1 + np.sqrt(5)) / 2, rtol=1e-6)
  assert np.all(t >= (np.arange(1, 52) + 1) / 2 - 1e-5)
  # The defining identity t²_{k+1} − t_{k+1} = t²_k.
  np.testing.assert_allclose(t[1:] ** 2 - t[1:], t[:-1] ** 2, rtol=1e-5)


def test_prox_l1_chained_after_sgd_is_ista():
  a, b, lam, _ = _problem(seed=1)
  with jax.enable_x64(True):
    a_j, b_j = jnp.asarray(a), jnp.asarray(b)
    run = prox.ista(a_j, b_j, lam, num_iterations=50)
    lipschitz = run.lipschitz
    optimizer = optax.chain(hw.optim.sgd(1.0 / lipschitz), prox.prox_l1(lam / lipschitz))
    x = jnp.zeros(a.shape[1])
    state = optimizer.init(x)
    step = jax.jit(lambda x, s: optimizer.update(a_j.T @ (a_j @ x - b_j), s, x))
    for _ in range(50):
      updates, state = step(x, state)
      x = optax.apply_updates(x, updates)
    np.testing.assert_allclose(np.asarray(x), np.asarray(run.x), atol=1e-12)
    assert int(np.sum(np.asarray(x) == 0)) > 0  # exact zeros, as from the prox


def test_kkt_violation_flags_a_point_that_is_not_optimal():
  a, b, lam, _ = _problem()
  assert prox.kkt_violation(a, b, lam, np.zeros(a.shape[1])) > 0.5 * lam
  big_lam = 1.01 * np.max(np.abs(a.T @ b))  # above λ_max the solution is x = 0
  assert prox.kkt_violation(a, b, big_lam, np.zeros(a.shape[1])) == 0.0


def test_prox_l1_needs_params():
  transformation = prox.prox_l1(0.1)
  with pytest.raises(ValueError, match="params"):
    transformation.update(jnp.zeros(2), transformation.init(jnp.zeros(2)))
