"""Evaluation metrics."""
from __future__ import annotations

import jax
import jax.numpy as jnp

TOP_K = (1, 5)  # the k of every top-k error the reports give


def top_k_hits(scores: jax.Array, labels: jax.Array, k: int = 1) -> jax.Array:
  """Per sample, whether the true label is among the k highest scores.

  A label counts as in the top k when fewer than ``k`` classes score strictly higher
  than it (so a tie with the k-th score counts as a hit). Jittable (the checks are on
  static shapes).

  Args:
    scores: (N, K) class scores (logits or probabilities).
    labels: (N,) integer true classes in [0, K).
    k: how many of the highest scores count, 1 <= k <= K.

  Returns:
    (N,) booleans.
  """
  scores = jnp.asarray(scores)
  labels = jnp.asarray(labels)
  if scores.ndim != 2:
    raise ValueError(f"`scores` must have rank 2 (N, K), got shape {scores.shape}")
  if labels.shape != scores.shape[:1]:
    raise ValueError(f"`labels` must have shape {scores.shape[:1]} (N of scores), got {labels.shape}")
  if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= scores.shape[1]:
    raise ValueError(f"`k` must be an integer in [1, {scores.shape[1]}], got {k!r}")
  true_scores = jnp.take_along_axis(scores, labels[:, None].astype(jnp.int32), axis=1)
  return jnp.sum(scores > true_scores, axis=1) < k


def top_k_error(scores: jax.Array, labels: jax.Array, k: int = 1) -> jax.Array:
  """Fraction of samples whose true label is not among the k highest scores
  (:func:`top_k_hits`; a tie with the k-th score counts as a hit).

  Args:
    scores: (N, K) class scores (logits or probabilities).
    labels: (N,) integer true classes in [0, K).
    k: how many of the highest scores count, 1 <= k <= K.

  Returns:
    Scalar float in [0, 1].
  """
  return jnp.mean((~top_k_hits(scores, labels, k)).astype(jnp.float32))


def top_k_errors(scores: jax.Array, labels: jax.Array) -> dict[str, float]:
  """``{"top1_error": …, "top5_error": …}``: :func:`top_k_error` for each k of
  :data:`TOP_K` up to the number of classes K of the (N, K) ``scores``."""
  return {f"top{k}_error": float(top_k_error(scores, labels, k))
          for k in TOP_K if k <= jnp.shape(scores)[1]}


def top_k_hits_by_k(scores: jax.Array, labels: jax.Array) -> dict[int, jax.Array]:
  """``{k: top_k_hits(scores, labels, k)}`` for each k of :data:`TOP_K` up to the number
  of classes; a binary classifier's (N,) scores s count as the two-class scores (0, s)
  with labels ``labels > 0`` (top-1 only). Jittable."""
  if jnp.ndim(scores) == 1:
    scores = jnp.stack([jnp.zeros_like(scores), scores], axis=1)
    labels = (jnp.asarray(labels) > 0).astype(jnp.int32)
  return {k: top_k_hits(scores, labels, k) for k in TOP_K if k <= jnp.shape(scores)[1]}


def correct_predictions(scores: jax.Array, labels: jax.Array) -> jax.Array:
  """1.0 where the prediction is right: arg-max of (N, K) scores, the sign of (N,) scores
  (positive means class 1; labels in {0, 1} or {−1, +1})."""
  if scores.ndim == 1:
    return ((scores > 0) == (labels > 0)).astype(jnp.float32)
  return (jnp.argmax(scores, axis=-1) == labels).astype(jnp.float32)
