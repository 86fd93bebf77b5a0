"""Proximal gradient methods for the lasso: ISTA, FISTA and the L1 prox as an optax step.

The lasso is ``F(x) = f(x) + g(x)`` with the smooth part ``f(x) = ½‖Ax − b‖²`` (gradient
``∇f(x) = Aᵀ(Ax − b)``, Lipschitz with constant ``L = λ_max(AᵀA)``) and the non-smooth
part ``g(x) = λ‖x‖₁``. A proximal gradient step takes a gradient step on ``f`` and then
the prox of ``g`` scaled by the step size::

    x⁺ = prox_{g/L}(x − ∇f(x)/L),   prox_{τ‖·‖₁}(v) = argmin_x ½‖x − v‖² + τ‖x‖₁.

ISTA iterates this; FISTA (Beck & Teboulle 2009) applies it at an extrapolated point
and improves the objective gap from O(1/k) to O(1/k²).
"""
from __future__ import annotations

import functools
from typing import Callable, NamedTuple, Union

import jax
import jax.numpy as jnp
import numpy as np
import optax


def soft_threshold(v: jax.Array, threshold) -> jax.Array:
  """The prox of ``τ‖·‖₁``: ``S_τ(v) = sign(v) · max(|v| − τ, 0)``, element-wise.

  Derivation: ``½‖x − v‖² + τ‖x‖₁`` separates into ``½(xᵢ − vᵢ)² + τ|xᵢ|`` per
  coordinate, each convex, so ``xᵢ`` is the minimiser iff ``0 ∈ xᵢ − vᵢ + τ ∂|xᵢ|``.
  If ``xᵢ > 0`` then ``∂|xᵢ| = {1}`` and ``xᵢ = vᵢ − τ``, consistent iff ``vᵢ > τ``; if
  ``xᵢ < 0``, ``xᵢ = vᵢ + τ``, consistent iff ``vᵢ < −τ``; if ``xᵢ = 0``,
  ``∂|0| = [−1, 1]`` and the condition is ``vᵢ ∈ [−τ, τ]``. Together:
  ``xᵢ = sign(vᵢ) max(|vᵢ| − τ, 0)`` — shrink towards zero by τ, and clamp to exactly
  zero inside ``[−τ, τ]``.

  Args:
    v: the point to shrink, any shape.
    threshold: τ ≥ 0, a scalar (or an array broadcastable to ``v``).

  Returns:
    ``S_τ(v)``, shape and dtype of ``v``.
  """
  threshold = jnp.asarray(threshold, dtype=v.dtype)
  return jnp.sign(v) * jnp.maximum(jnp.abs(v) - threshold, 0)


def lasso_objective(a: jax.Array, b: jax.Array, lam, x: jax.Array) -> jax.Array:
  """``F(x) = ½‖Ax − b‖² + λ‖x‖₁``."""
  residual = a @ x - b
  return 0.5 * jnp.vdot(residual, residual) + lam * jnp.sum(jnp.abs(x))


class PowerIteration(NamedTuple):
  """Largest eigenvalue of ``AᵀA`` by power iteration.

  Attributes:
    eigenvalue: the Rayleigh quotient ``vᵀAᵀAv`` of the final unit vector ``v``.
    iterations: iterations done.
    relative_change: change of the estimate in the last iteration, relative to it.
  """
  eigenvalue: jax.Array
  iterations: jax.Array
  relative_change: jax.Array


@functools.partial(jax.jit, static_argnames=("max_iterations",))
def largest_eigenvalue(a: jax.Array, *, max_iterations: int = 5000, tolerance: float = 1e-12,
                       seed: int = 0) -> PowerIteration:
  """λ_max(AᵀA) = ‖A‖₂², the Lipschitz constant of ``∇(½‖Ax − b‖²)``, by power iteration.

  ``v ← AᵀAv / ‖AᵀAv‖`` (applied as ``Aᵀ(Av)``, never forming ``AᵀA``), starting from a
  random unit vector, until the Rayleigh quotient ``λ = ‖Av‖²`` changes by less than
  ``tolerance`` relative to itself or ``max_iterations`` is reached. For a symmetric
  matrix the Rayleigh quotient converges like ``(λ₂/λ₁)^{2k}``; it approaches λ₁ from
  below.

  Args:
    a: the (m, n) matrix A.
    max_iterations: the most iterations to do (static).
    tolerance: stop when the relative change of the estimate is below this.
    seed: seed of the random starting vector.

  Returns:
    A :class:`PowerIteration`.
  """
  start = jax.random.normal(jax.random.key(seed), (a.shape[1],), dtype=a.dtype)
  start = start / jnp.linalg.norm(start)

  def rayleigh(v):
    av = a @ v
    return jnp.vdot(av, av), a.T @ av

  def not_done(state):
    _, _, iteration, change = state
    return (iteration < max_iterations) & (change > tolerance)

  def step(state):
    v, estimate, iteration, _ = state
    w = a.T @ (a @ v)
    v = w / jnp.linalg.norm(w)
    new_estimate, _ = rayleigh(v)
    change = jnp.abs(new_estimate - estimate) / new_estimate
    return v, new_estimate, iteration + 1, change

  initial = (start, rayleigh(start)[0], jnp.asarray(0), jnp.asarray(jnp.inf, a.dtype))
  _, estimate, iterations, change = jax.lax.while_loop(not_done, step, initial)
  return PowerIteration(estimate, iterations, change)


class LassoRun(NamedTuple):
  """Result of :func:`ista` / :func:`fista`.

  Attributes:
    x: the last iterate ``x_K``.
    objective: ``F(x_k)`` for k = 0 … K (index 0 is the starting point).
    lipschitz: the L used (step size 1/L).
  """
  x: jax.Array
  objective: jax.Array
  lipschitz: jax.Array


def _prox_gradient_step(a, b, lam, lipschitz, point):
  """``prox_{λ‖·‖₁/L}(y − Aᵀ(Ay − b)/L)`` at ``point = y``."""
  gradient = a.T @ (a @ point - b)
  return soft_threshold(point - gradient / lipschitz, lam / lipschitz)


def _lipschitz_or_estimate(a, lipschitz):
  return largest_eigenvalue(a).eigenvalue if lipschitz is None else jnp.asarray(
      lipschitz, a.dtype)


def _start(a, x0):
  return jnp.zeros(a.shape[1], a.dtype) if x0 is None else jnp.asarray(x0, a.dtype)


@functools.partial(jax.jit, static_argnames=("num_iterations",))
def _ista(a, b, lam, lipschitz, x0, num_iterations):
  def step(x, _):
    x = _prox_gradient_step(a, b, lam, lipschitz, x)
    return x, lasso_objective(a, b, lam, x)
  x, objective = jax.lax.scan(step, x0, None, length=num_iterations)
  return LassoRun(x, jnp.concatenate([lasso_objective(a, b, lam, x0)[None], objective]),
                  lipschitz)


def ista(a: jax.Array, b: jax.Array, lam, *, num_iterations: int,
         lipschitz=None, x0: jax.Array | None = None) -> LassoRun:
  """ISTA for ``min_x ½‖Ax − b‖² + λ‖x‖₁``.

  ``x_{k+1} = S_{λ/L}(x_k − Aᵀ(Ax_k − b)/L)`` with ``S`` the soft-threshold
  (:func:`soft_threshold`). With step 1/L the objective decreases monotonically and
  ``F(x_k) − F* ≤ L‖x₀ − x*‖² / (2k)``.

  Args:
    a: (m, n) design matrix.
    b: (m,) observations.
    lam: λ > 0.
    num_iterations: K, the number of steps (static; the run is one jitted ``lax.scan``).
    lipschitz: L; None estimates λ_max(AᵀA) with :func:`largest_eigenvalue`.
    x0: starting point, zeros by default.

  Returns:
    A :class:`LassoRun` with ``x_K`` and ``F(x_0), …, F(x_K)``.
  """
  lipschitz = _lipschitz_or_estimate(a, lipschitz)
  return _ista(a, b, jnp.asarray(lam, a.dtype), lipschitz, _start(a, x0), num_iterations)


def fista_momentum(t: jax.Array) -> jax.Array:
  """FISTA's sequence ``t_{k+1} = (1 + √(1 + 4t_k²)) / 2`` (t₁ = 1); ``t_k ≥ (k + 1)/2``."""
  return (1 + jnp.sqrt(1 + 4 * t * t)) / 2


@functools.partial(jax.jit, static_argnames=("num_iterations",))
def _fista(a, b, lam, lipschitz, x0, num_iterations):
  def step(state, _):
    x_previous, y, t = state
    x = _prox_gradient_step(a, b, lam, lipschitz, y)
    t_next = fista_momentum(t)
    y = x + ((t - 1) / t_next) * (x - x_previous)
    return (x, y, t_next), lasso_objective(a, b, lam, x)
  (x, _, _), objective = jax.lax.scan(step, (x0, x0, jnp.ones((), a.dtype)), None,
                                      length=num_iterations)
  return LassoRun(x, jnp.concatenate([lasso_objective(a, b, lam, x0)[None], objective]),
                  lipschitz)


def fista(a: jax.Array, b: jax.Array, lam, *, num_iterations: int,
          lipschitz=None, x0: jax.Array | None = None) -> LassoRun:
  """FISTA (Beck & Teboulle 2009) for ``min_x ½‖Ax − b‖² + λ‖x‖₁``.

  With ``y₁ = x₀``, ``t₁ = 1``, for k = 1, 2, …::

      x_k     = S_{λ/L}(y_k − Aᵀ(Ay_k − b)/L)
      t_{k+1} = (1 + √(1 + 4t_k²)) / 2
      y_{k+1} = x_k + ((t_k − 1)/t_{k+1}) (x_k − x_{k−1})

  and ``F(x_k) − F* ≤ 2L‖x₀ − x*‖² / (k + 1)²``. The objective need not decrease
  monotonically.

  Args:
    a: (m, n) design matrix.
    b: (m,) observations.
    lam: λ > 0.
    num_iterations: K (static).
    lipschitz: L; None estimates λ_max(AᵀA) with :func:`largest_eigenvalue`.
    x0: starting point, zeros by default.

  Returns:
    A :class:`LassoRun` with ``x_K`` and ``F(x_0), …, F(x_K)``.
  """
  lipschitz = _lipschitz_or_estimate(a, lipschitz)
  return _fista(a, b, jnp.asarray(lam, a.dtype), lipschitz, _start(a, x0), num_iterations)


def kkt_violation(a, b, lam, x) -> float:
  """Largest violation of the lasso's optimality conditions at ``x`` (NumPy, float64).

  ``x`` minimises ``½‖Ax − b‖² + λ‖x‖₁`` iff ``0 ∈ Aᵀ(Ax − b) + λ∂‖x‖₁``, i.e. with
  ``c = Aᵀ(Ax − b)``: ``cᵢ = −λ sign(xᵢ)`` where ``xᵢ ≠ 0`` and ``|cᵢ| ≤ λ`` where
  ``xᵢ = 0``. Returns ``max(maxᵢ:xᵢ≠0 |cᵢ + λ sign xᵢ|, maxᵢ:xᵢ=0 (|cᵢ| − λ)₊)``.
  """
  a, b, x = (np.asarray(v, dtype=np.float64) for v in (a, b, x))
  correlation = a.T @ (a @ x - b)
  nonzero = x != 0
  on_support = np.abs(correlation + lam * np.sign(x))[nonzero]
  off_support = np.maximum(np.abs(correlation) - lam, 0.0)[~nonzero]
  return float(max(on_support.max(initial=0.0), off_support.max(initial=0.0)))


# ------------------------------------------------------------------- optax transformation

Threshold = Union[float, jax.Array, Callable[[jax.Array], jax.Array]]


class ProxL1State(NamedTuple):
  """State of :func:`prox_l1`: the number of updates done (the argument of a schedule)."""
  count: jax.Array


def prox_l1(threshold: Threshold) -> optax.GradientTransformation:
  """The L1 prox as an optax transformation, to chain after a gradient step.

  Given the update ``u`` of the preceding transformations and the current parameters
  ``x``, it returns ``S_τ(x + u) − x``, so that ``optax.apply_updates`` lands on
  ``x⁺ = S_τ(x + u)``. ``optax.chain(hw.optim.sgd(1/L), prox_l1(λ/L))`` is ISTA on
  ``f(x) + λ‖x‖₁`` (with ``u = −∇f(x)/L``); the threshold τ is the step size times λ.

  Args:
    threshold: τ ≥ 0, or a schedule ``count -> τ`` (to follow a learning-rate schedule).

  Returns:
    An ``optax.GradientTransformation`` whose ``update`` requires ``params``.
  """

  def init(params):
    del params
    return ProxL1State(count=jnp.zeros([], jnp.int32))

  def update(updates, state, params=None):
    if params is None:
      raise ValueError("prox_l1 needs `params`: call update(updates, state, params)")
    tau = threshold(state.count) if callable(threshold) else threshold
    new_updates = jax.tree_util.tree_map(
        lambda u, x: soft_threshold(x + u, tau) - x, updates, params)
    return new_updates, ProxL1State(state.count + 1)

  return optax.GradientTransformation(init, update)
