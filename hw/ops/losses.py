"""Loss layers with hand-derived backward passes.

Labels are never differentiated: each backward rule returns None (a zero cotangent) for
them, whether they are integers or floats. Every forward pass saves dLoss/dInput per
element (or the softmax) as its only float residual, so a backward rule is one multiply.
Each custom_vjp's primal and forward rule share one ``_*_forward`` helper that returns the
value and that residual.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from hw.ops import _checks


def _reduce(per_example: jax.Array, reduction: str) -> jax.Array:
  if reduction == "mean":
    return jnp.mean(per_example)
  if reduction == "sum":
    return jnp.sum(per_example)
  return per_example


def _nan_unless(valid: jax.Array, per_example: jax.Array) -> jax.Array:
  """The per-example loss where ``valid``, NaN elsewhere: labels out of range are caught
  by the argument checks when they are concrete, and poison the loss under ``jit``
  (instead of wrapping to another class and giving a finite, wrong value)."""
  return jnp.where(valid, per_example, jnp.nan)


def _binary_label_valid(labels: jax.Array) -> jax.Array:
  return (labels == 0) | (labels == 1) | (labels == -1)


def _cotangent_scale(g: jax.Array, size: int, reduction: str) -> jax.Array:
  """d(reduced loss)/d(per-example loss) times the incoming cotangent ``g``."""
  if reduction == "mean":
    return g / size
  return g  # "sum": a scalar; "none": one value per example.


def _check_loss_args(input_name: str, inputs, labels, reduction: str) -> None:
  _checks.check_floating(input_name, inputs)
  _checks.check_array("labels", labels)
  _checks.check_reduction(reduction)


# ----------------------------------------------------------------- softmax cross-entropy


def softmax_cross_entropy(logits: jax.Array, labels: jax.Array, *,
                          reduction: str = "mean") -> jax.Array:
  """Cross-entropy of integer labels under ``softmax(logits)``.

  Per example ``ℓ = logsumexp(z) − z_y`` (computed after subtracting the row maximum).
  Backward: ``d logits = (softmax(z) − onehot(y)) · g``, where g is the incoming
  cotangent, divided by the number of examples for ``reduction="mean"`` and one value
  per example for ``"none"``. Labels get no cotangent.

  Args:
    logits: floating-point array of shape (N, K), or (..., K).
    labels: integer array of shape (N,), or (...) matching ``logits.shape[:-1]``, with
      values in [0, K). Checked when concrete (outside ``jit``); under ``jit`` an
      out-of-range label gives an undefined (NaN or wrong) loss.
    reduction: "mean" (over all examples), "sum" or "none" (static).

  Returns:
    A scalar for "mean"/"sum", else an array of shape ``labels.shape``; dtype of
    ``logits``.
  """
  _check_loss_args("logits", logits, labels, reduction)
  _checks.check_min_rank("logits", logits, 1, "(..., K)")
  _checks.check_integer("labels", labels)
  _checks.check_shape("labels", labels, logits.shape[:-1], "the leading axes of `logits`")
  _checks.check_labels_in_range("labels", labels, 0, logits.shape[-1])
  return _softmax_cross_entropy(logits, labels, reduction)


def _log_softmax_parts(logits, labels):
  """(per-example loss, softmax) of the logits."""
  shifted = logits - jnp.max(logits, axis=-1, keepdims=True)
  exps = jnp.exp(shifted)
  total = jnp.sum(exps, axis=-1, keepdims=True)
  picked = jnp.take_along_axis(shifted, labels[..., None], axis=-1)
  loss = (jnp.log(total) - picked)[..., 0]
  return loss, exps / total


def _softmax_cross_entropy_forward(logits, labels, reduction):
  """(reduced loss, softmax)."""
  loss, probs = _log_softmax_parts(logits, labels)
  loss = _nan_unless((labels >= 0) & (labels < logits.shape[-1]), loss)
  return _reduce(loss, reduction), probs


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _softmax_cross_entropy(logits, labels, reduction):
  return _softmax_cross_entropy_forward(logits, labels, reduction)[0]


def _softmax_cross_entropy_fwd(logits, labels, reduction):
  value, probs = _softmax_cross_entropy_forward(logits, labels, reduction)
  return value, (probs, labels)


def _softmax_cross_entropy_bwd(reduction, residuals, g):
  probs, labels = residuals
  scale = _cotangent_scale(g, labels.size, reduction)
  if reduction == "none":
    scale = scale[..., None]
  one_hot = labels[..., None] == jnp.arange(probs.shape[-1])
  return (probs - one_hot.astype(probs.dtype)) * scale, None


_softmax_cross_entropy.defvjp(_softmax_cross_entropy_fwd, _softmax_cross_entropy_bwd)


# ---------------------------------------------------------------- binary (±1) losses


def _signed_targets(labels, dtype):
  """t = +1 for labels > 0, −1 otherwise (so {0, 1} and {−1, +1} both work)."""
  return jnp.where(labels > 0, 1, -1).astype(dtype)


def _check_binary_args(scores, labels, reduction) -> None:
  _check_loss_args("scores", scores, labels, reduction)
  if not (jnp.issubdtype(labels.dtype, jnp.integer) or jnp.issubdtype(labels.dtype, jnp.floating)
          or labels.dtype == jnp.bool_):
    raise ValueError(
        f"`labels` must be an integer, boolean or float array, got {_checks.describe(labels)}")
  _checks.check_shape("labels", labels, scores.shape, "the shape of `scores`")
  _checks.check_binary_labels("labels", labels)


def logistic_loss(scores: jax.Array, labels: jax.Array, *,
                  reduction: str = "mean") -> jax.Array:
  """Sigmoid + binary cross-entropy on raw scores, ``ℓ = softplus(−t s) = log(1 + e^{−t s})``.

  ``t = +1`` for a positive label and ``−1`` for any label <= 0; softplus is computed
  stably as ``max(z, 0) + log1p(exp(−|z|))``. Backward: ``ds = −t σ(−t s) · g`` (g divided
  by the number of examples for "mean"). Labels are not differentiated: even float labels
  get a zero (None) cotangent.

  Args:
    scores: floating-point array of any shape, usually (N,).
    labels: integer, boolean or float array of the same shape, all values in {0, 1} or
      all in {−1, +1} (checked when concrete, i.e. outside ``jit``).
    reduction: "mean", "sum" or "none" (static).

  Returns:
    A scalar for "mean"/"sum", else an array of shape ``scores.shape``; dtype of
    ``scores``.
  """
  _check_binary_args(scores, labels, reduction)
  return _logistic_loss(scores, labels, reduction)


def _logistic_forward(scores, labels, reduction):
  """(reduced loss, dℓ/ds per example)."""
  t = _signed_targets(labels, scores.dtype)
  z = -t * scores
  e = jnp.exp(-jnp.abs(z))
  loss = jnp.maximum(z, 0) + jnp.log1p(e)
  sigmoid_z = jnp.where(z >= 0, 1, e) / (1 + e)  # σ(z) without overflow for either sign
  d_scores = -t * sigmoid_z
  return _reduce(_nan_unless(_binary_label_valid(labels), loss), reduction), d_scores


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _logistic_loss(scores, labels, reduction):
  return _logistic_forward(scores, labels, reduction)[0]


def _logistic_loss_fwd(scores, labels, reduction):
  return _logistic_forward(scores, labels, reduction)


def _logistic_loss_bwd(reduction, d_scores, g):
  return d_scores * _cotangent_scale(g, d_scores.size, reduction), None


_logistic_loss.defvjp(_logistic_loss_fwd, _logistic_loss_bwd)


def hinge_loss(scores: jax.Array, labels: jax.Array, *, reduction: str = "mean") -> jax.Array:
  """Binary hinge (SVM) loss ``ℓ = max(0, 1 − t s)``.

  ``t = +1`` for a positive label and ``−1`` for any label <= 0. Backward (a
  subgradient): ``ds = −t · 1[t s < 1] · g``; exactly at the hinge ``t s = 1`` the chosen
  subgradient is 0. Labels are not differentiated: even float labels get a zero (None)
  cotangent.

  Args:
    scores: floating-point array of any shape, usually (N,).
    labels: integer, boolean or float array of the same shape, all values in {0, 1} or
      all in {−1, +1} (checked when concrete, i.e. outside ``jit``).
    reduction: "mean", "sum" or "none" (static).

  Returns:
    A scalar for "mean"/"sum", else an array of shape ``scores.shape``; dtype of
    ``scores``.
  """
  _check_binary_args(scores, labels, reduction)
  return _hinge_loss(scores, labels, reduction)


def _hinge_forward(scores, labels, reduction):
  """(reduced loss, dℓ/ds per example: −t inside the margin, 0 on and beyond it)."""
  t = _signed_targets(labels, scores.dtype)
  margin = 1 - t * scores
  d_scores = jnp.where(margin > 0, -t, 0)
  loss = _nan_unless(_binary_label_valid(labels), jnp.maximum(margin, 0))
  return _reduce(loss, reduction), d_scores


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _hinge_loss(scores, labels, reduction):
  return _hinge_forward(scores, labels, reduction)[0]


def _hinge_loss_fwd(scores, labels, reduction):
  return _hinge_forward(scores, labels, reduction)


def _hinge_loss_bwd(reduction, d_scores, g):
  return d_scores * _cotangent_scale(g, d_scores.size, reduction), None


_hinge_loss.defvjp(_hinge_loss_fwd, _hinge_loss_bwd)


# -------------------------------------------------------------------------- regression


def squared_error(pred: jax.Array, target: jax.Array) -> jax.Array:
  """Half the summed squared error, ``ℓ = ½ ‖p − t‖²`` (a scalar).

  Backward: ``dp = (p − t) · g``, ``dt = −(p − t) · g``.

  Args:
    pred: floating-point array of any shape.
    target: array of the same shape and dtype as ``pred``.

  Returns:
    A scalar of the dtype of ``pred``.
  """
  _checks.check_floating("pred", pred)
  _checks.check_array("target", target)
  _checks.check_shape("target", target, pred.shape, "the shape of `pred`")
  _checks.check_same_dtype("target", target, "pred", pred)
  return _squared_error(pred, target)


def _squared_error_forward(pred, target):
  """(½‖p − t‖², p − t)."""
  residual = pred - target
  return 0.5 * jnp.sum(residual * residual), residual


@jax.custom_vjp
def _squared_error(pred, target):
  return _squared_error_forward(pred, target)[0]


def _squared_error_fwd(pred, target):
  return _squared_error_forward(pred, target)


def _squared_error_bwd(residual, g):
  d_pred = residual * g
  return d_pred, -d_pred


_squared_error.defvjp(_squared_error_fwd, _squared_error_bwd)
