"""SGD, heavy-ball momentum, Nesterov, RMSProp and Adam from their update equations.

Each optimiser is an ``optax.GradientTransformation``: ``init(params) -> state`` and
``update(grads, state, params=None) -> (updates, state)``, pure functions that work
under ``jit`` on any pytree (every per-parameter quantity is mapped over the leaves with
``jax.tree_util``). The update is *added* to the parameters
(``optax.apply_updates(params, updates)``), so it carries the minus sign.

Conventions follow optax exactly, so the updates agree with ``optax.sgd``,
``optax.rmsprop`` and ``optax.adam`` to float64 rounding (``hw.optim.verify`` checks
this): ``g_t`` is the gradient at step ``t = 1, 2, …``, ``α_t`` the learning rate,
either a constant or ``schedule(t − 1)`` (optax evaluates a schedule at the number of
updates done before this one, starting at 0).
"""
from __future__ import annotations

from typing import Callable, NamedTuple, Union

import jax
import jax.numpy as jnp
import optax

LearningRate = Union[float, jax.Array, Callable[[jax.Array], jax.Array]]

_MAX_COUNT = jnp.iinfo(jnp.int32).max


def _tree_map(fn, *trees):
  return jax.tree_util.tree_map(fn, *trees)


def _zeros_like(tree):
  return _tree_map(jnp.zeros_like, tree)


def _increment(count: jax.Array) -> jax.Array:
  """``count + 1``, saturating at the largest int32 instead of wrapping to negative."""
  return jnp.where(count < _MAX_COUNT, count + 1, count)


def _learning_rate_at(learning_rate: LearningRate, count: jax.Array):
  """The step size of the update that follows ``count`` earlier updates."""
  return learning_rate(count) if callable(learning_rate) else learning_rate


def _descend(learning_rate_value, direction):
  """``u = −α d`` leaf by leaf, with α cast to each leaf's dtype (as optax does)."""
  return _tree_map(lambda d: -jnp.asarray(learning_rate_value, dtype=d.dtype) * d, direction)


# ------------------------------------------------------------------------------ SGD


class SgdState(NamedTuple):
  """State of :func:`sgd`.

  Attributes:
    count: number of updates done so far (int32), the argument of a schedule.
    trace: the momentum buffer ``m`` (zeros and unused when ``momentum`` is None).
  """
  count: jax.Array
  trace: optax.Updates


def sgd(learning_rate: LearningRate, momentum: float | None = None,
        nesterov: bool = False) -> optax.GradientTransformation:
  """Stochastic gradient descent, optionally with heavy-ball or Nesterov momentum.

  Plain SGD (``momentum=None``)::

      u_t = −α_t g_t

  Heavy-ball momentum (Polyak), as optax's ``trace`` — the buffer accumulates raw
  gradients and the learning rate is applied afterwards::

      m_t = g_t + μ m_{t−1},   m_0 = 0
      u_t = −α_t m_t

  Nesterov momentum (Sutskever et al. 2013's form, re-parametrised so that the
  gradient is taken at the current parameters)::

      m_t = g_t + μ m_{t−1}
      u_t = −α_t (g_t + μ m_t)

  With a constant α this is the classic ``v_t = μ v_{t−1} − α g_t`` with ``v = −α m``.

  Args:
    learning_rate: α, a float or an optax schedule ``count -> α``.
    momentum: μ in [0, 1), or None for plain SGD.
    nesterov: use the Nesterov update (needs ``momentum``).

  Returns:
    An ``optax.GradientTransformation``.
  """
  if nesterov and momentum is None:
    raise ValueError("`nesterov=True` needs a `momentum` value, got momentum=None")

  def init(params):
    return SgdState(count=jnp.zeros([], jnp.int32), trace=_zeros_like(params))

  def update(grads, state, params=None):
    del params
    step_size = _learning_rate_at(learning_rate, state.count)
    if momentum is None:
      direction, trace = grads, state.trace
    else:
      trace = _tree_map(lambda g, m: g + momentum * m, grads, state.trace)
      direction = (_tree_map(lambda g, m: g + momentum * m, grads, trace) if nesterov
                   else trace)
    return _descend(step_size, direction), SgdState(_increment(state.count), trace)

  return optax.GradientTransformation(init, update)


# -------------------------------------------------------------------------- RMSProp


class RmsPropState(NamedTuple):
  """State of :func:`rmsprop`.

  Attributes:
    count: number of updates done so far (int32).
    nu: the running mean of squared gradients ``v``.
  """
  count: jax.Array
  nu: optax.Updates


def rmsprop(learning_rate: LearningRate, decay: float = 0.9, eps: float = 1e-8,
            initial_scale: float = 0.0) -> optax.GradientTransformation:
  """RMSProp (Hinton's lecture 6e): divide by a running root mean square of gradients.

  Element-wise, with optax's placement of ε *inside* the square root::

      v_t = ρ v_{t−1} + (1 − ρ) g_t²,   v_0 = initial_scale
      u_t = −α_t g_t / √(v_t + ε)

  (PyTorch puts ε outside, ``√v_t + ε``; the two differ by about ε/(2√v) relative.)

  Args:
    learning_rate: α, a float or an optax schedule ``count -> α``.
    decay: ρ, the decay of the running mean.
    eps: ε, added to ``v_t`` under the root.
    initial_scale: the value ``v_0`` every element starts from.

  Returns:
    An ``optax.GradientTransformation``.
  """

  def init(params):
    return RmsPropState(count=jnp.zeros([], jnp.int32),
                        nu=_tree_map(lambda p: jnp.full_like(p, initial_scale), params))

  def update(grads, state, params=None):
    del params
    step_size = _learning_rate_at(learning_rate, state.count)
    nu = _tree_map(lambda g, v: (1 - decay) * g ** 2 + decay * v, grads, state.nu)
    direction = _tree_map(lambda g, v: g * jax.lax.rsqrt(v + eps), grads, nu)
    return _descend(step_size, direction), RmsPropState(_increment(state.count), nu)

  return optax.GradientTransformation(init, update)


# ----------------------------------------------------------------------------- Adam


class AdamState(NamedTuple):
  """State of :func:`adam`.

  Attributes:
    count: number of updates done so far, t − 1 before step t (int32).
    mu: first-moment estimate ``m``.
    nu: second-moment estimate ``v``.
  """
  count: jax.Array
  mu: optax.Updates
  nu: optax.Updates


def adam(learning_rate: LearningRate, b1: float = 0.9, b2: float = 0.999,
         eps: float = 1e-8) -> optax.GradientTransformation:
  """Adam (Kingma & Ba 2015) with bias-corrected moments.

  Element-wise, for step t = 1, 2, …::

      m_t = β₁ m_{t−1} + (1 − β₁) g_t,    m_0 = 0
      v_t = β₂ v_{t−1} + (1 − β₂) g_t²,   v_0 = 0
      m̂_t = m_t / (1 − β₁ᵗ),   v̂_t = v_t / (1 − β₂ᵗ)
      u_t = −α_t m̂_t / (√v̂_t + ε)

  The bias corrections undo the pull of the zero initialisation: with constant
  gradients g, ``m̂_t = g`` and ``v̂_t = g²`` exactly for every t.

  Args:
    learning_rate: α, a float or an optax schedule ``count -> α``.
    b1: β₁, decay of the first moment.
    b2: β₂, decay of the second moment.
    eps: ε, added to √v̂ (outside the root, as in the paper and optax).

  Returns:
    An ``optax.GradientTransformation``.
  """

  def init(params):
    return AdamState(count=jnp.zeros([], jnp.int32), mu=_zeros_like(params),
                     nu=_zeros_like(params))

  def update(grads, state, params=None):
    del params
    step_size = _learning_rate_at(learning_rate, state.count)
    t = _increment(state.count)
    mu = _tree_map(lambda g, m: (1 - b1) * g + b1 * m, grads, state.mu)
    nu = _tree_map(lambda g, v: (1 - b2) * g ** 2 + b2 * v, grads, state.nu)
    first_correction = 1 - b1 ** t
    second_correction = 1 - b2 ** t
    direction = _tree_map(
        lambda m, v: (m / first_correction.astype(m.dtype))
        / (jnp.sqrt(v / second_correction.astype(v.dtype)) + eps), mu, nu)
    return _descend(step_size, direction), AdamState(t, mu, nu)

  return optax.GradientTransformation(init, update)


# ------------------------------------------------------------------------ by name

OPTIMIZER_NAMES = ("sgd", "momentum", "nesterov", "rmsprop", "adam")
"""The five optimisers compared in the studies, in a fixed order."""

DEFAULT_MOMENTUM = 0.9


def by_name(name: str, learning_rate: LearningRate) -> optax.GradientTransformation:
  """One of :data:`OPTIMIZER_NAMES` with its default hyper-parameters.

  ``"momentum"`` and ``"nesterov"`` are :func:`sgd` with μ = 0.9 (heavy ball and
  Nesterov); ``"rmsprop"`` and ``"adam"`` use the defaults of :func:`rmsprop` and
  :func:`adam`.

  Args:
    name: one of ``OPTIMIZER_NAMES``.
    learning_rate: α, a float, a traced scalar or an optax schedule.

  Returns:
    An ``optax.GradientTransformation``.
  """
  if name == "sgd":
    return sgd(learning_rate)
  if name == "momentum":
    return sgd(learning_rate, momentum=DEFAULT_MOMENTUM)
  if name == "nesterov":
    return sgd(learning_rate, momentum=DEFAULT_MOMENTUM, nesterov=True)
  if name == "rmsprop":
    return rmsprop(learning_rate)
  if name == "adam":
    return adam(learning_rate)
  raise ValueError(f"`name` must be one of {', '.join(OPTIMIZER_NAMES)}, got {name!r}")
