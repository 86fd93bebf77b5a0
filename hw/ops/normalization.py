"""Batch normalisation (training mode) with a hand-derived backward pass."""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from hw.ops import _checks


def batch_norm(x: jax.Array, gamma: jax.Array, beta: jax.Array, *,
               eps: float = 1e-5) -> jax.Array:
  """Training-mode batch normalisation with statistics over all axes but the last.

  ``Y = γ X̂ + β`` with ``X̂ = (X − μ) / σ``, ``σ = sqrt(var + eps)``; μ and the biased
  variance are taken over the n = prod(x.shape[:-1]) positions of each channel.
  Backward (sums over those n positions):
  ``dX = (γ / (n σ)) (n dY − Σ dY − X̂ Σ dY ⊙ X̂)``, ``dγ = Σ dY ⊙ X̂``, ``dβ = Σ dY``.

  Args:
    x: floating-point array of shape (..., C) with at least one leading axis.
    gamma: scale of shape (C,), same dtype as ``x``.
    beta: shift of shape (C,), same dtype as ``x``.
    eps: non-negative number added to the variance (static).

  Returns:
    Array of the shape and dtype of ``x`` (the batch statistics are not returned).
  """
  _checks.check_min_rank("x", x, 2, "(..., C) with at least one batch axis")
  _checks.check_floating("x", x)
  channels = x.shape[-1]
  for name, param in (("gamma", gamma), ("beta", beta)):
    _checks.check_rank(name, param, 1, "(C,)")
    _checks.check_same_dtype(name, param, "x", x)
    _checks.check_dim(name, param, 0, channels, "C, the last axis of `x`")
  eps = _checks.check_real_number("eps", eps, low=0.0)
  return _batch_norm(x, gamma, beta, eps)


def _normalise(x, eps):
  """(X̂, 1/σ) for batch statistics over all axes but the last."""
  axes = tuple(range(x.ndim - 1))
  centred = x - jnp.mean(x, axis=axes)
  inv_sigma = jax.lax.rsqrt(jnp.mean(centred * centred, axis=axes) + eps)
  return centred * inv_sigma, inv_sigma


def _batch_norm_forward(x, gamma, beta, eps):
  """(Y, X̂, 1/σ)."""
  x_hat, inv_sigma = _normalise(x, eps)
  return gamma * x_hat + beta, x_hat, inv_sigma


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _batch_norm(x, gamma, beta, eps):
  return _batch_norm_forward(x, gamma, beta, eps)[0]


def _batch_norm_fwd(x, gamma, beta, eps):
  y, x_hat, inv_sigma = _batch_norm_forward(x, gamma, beta, eps)
  return y, (x_hat, gamma, inv_sigma)


def _batch_norm_bwd(eps, residuals, dy):
  del eps
  x_hat, gamma, inv_sigma = residuals
  axes = tuple(range(dy.ndim - 1))
  n = dy.size // dy.shape[-1]
  d_beta = jnp.sum(dy, axis=axes)
  d_gamma = jnp.sum(dy * x_hat, axis=axes)
  dx = (gamma * inv_sigma / n) * (n * dy - d_beta - x_hat * d_gamma)
  return dx, d_gamma, d_beta


_batch_norm.defvjp(_batch_norm_fwd, _batch_norm_bwd)
