"""Independent plain-JAX references of the t-SNE and symmetric-SNE costs.

Written straight from the definition ``KL(P‖Q) = Σ_{i≠j} pᵢⱼ log(pᵢⱼ/qᵢⱼ)`` and
differentiated by ordinary autodiff; nothing here imports ``hw.tsne.cost``. They are
what the hand-written backward rules of :func:`hw.tsne.tsne_kl` and
:func:`hw.tsne.sne_kl` are checked against. Masking uses the double-``where`` pattern
so that no NaN cotangent reaches the diagonal.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def _pairwise_squared_distances(y):
  pair = lambda a, b: jnp.dot(a - b, a - b)
  return jax.vmap(lambda a: jax.vmap(lambda b: pair(a, b))(y))(y)


def _kl_from_log_q(p, log_q, off_diagonal):
  safe_log_q = jnp.where(off_diagonal, log_q, 0.0)
  positive = off_diagonal & (p > 0)
  entropy_term = jnp.where(positive, p * jnp.log(jnp.where(positive, p, 1.0)), 0.0)
  return jnp.sum(entropy_term) - jnp.sum(jnp.where(off_diagonal, p * safe_log_q, 0.0))


def tsne_kl(y, p):
  """KL(P‖Q) with ``qᵢⱼ = (1 + ‖yᵢ − yⱼ‖²)⁻¹ / Σ_{k≠l} (1 + ‖y_k − y_l‖²)⁻¹``."""
  off_diagonal = ~jnp.eye(y.shape[0], dtype=bool)
  kernel = jnp.where(off_diagonal, 1.0 / (1.0 + _pairwise_squared_distances(y)), 0.0)
  q = kernel / jnp.sum(kernel)
  log_q = jnp.log(jnp.where(off_diagonal, q, 1.0))
  return _kl_from_log_q(p, log_q, off_diagonal)


def sne_kl(y, p):
  """KL(P‖Q) with ``qᵢⱼ = softmax over all pairs k ≠ l of −‖y_k − y_l‖²``."""
  n = y.shape[0]
  off_diagonal = ~jnp.eye(n, dtype=bool)
  logits = jnp.where(off_diagonal, -_pairwise_squared_distances(y), -jnp.inf)
  log_q = jax.nn.log_softmax(logits.reshape(-1)).reshape(n, n)
  return _kl_from_log_q(p, log_q, off_diagonal)
