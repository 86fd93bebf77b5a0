"""Fully connected layer with a hand-derived backward pass."""
from __future__ import annotations

import math

import jax

from hw.ops import _checks


def linear(x: jax.Array, w: jax.Array, b: jax.Array | None = None) -> jax.Array:
  """Affine map ``Y = X W + b`` over the last axis of ``x``.

  Backward (leading axes of X and dY flattened into one of length n):
  ``dX = dY Wᵀ``, ``dW = Xᵀ dY``, ``db = Σₙ dY``.

  Args:
    x: inputs of shape (..., Din), floating point.
    w: weights of shape (Din, Dout), same dtype as ``x``.
    b: optional bias of shape (Dout,), same dtype as ``x``.

  Returns:
    Array of shape (..., Dout) and the dtype of ``x``.
  """
  _checks.check_min_rank("x", x, 1, "(..., Din)")
  _checks.check_floating("x", x)
  _checks.check_rank("w", w, 2, "(Din, Dout)")
  _checks.check_same_dtype("w", w, "x", x)
  _checks.check_dim("w", w, 0, x.shape[-1], "Din, the last axis of `x`")
  if b is None:
    return _linear_no_bias(x, w)
  _checks.check_rank("b", b, 1, "(Dout,)")
  _checks.check_same_dtype("b", b, "x", x)
  _checks.check_dim("b", b, 0, w.shape[1], "Dout, the last axis of `w`")
  return _linear(x, w, b)


def _rows(a):
  """``a`` as a matrix (n, last axis), n the product of the leading axes (named, not -1:
  a -1 beside a zero-size last axis has no answer)."""
  return a.reshape(math.prod(a.shape[:-1]), a.shape[-1])


def _input_grads(x, w, dy):
  """(dX, dW) = (dY Wᵀ, Xᵀ dY) with the leading axes flattened."""
  dx = dy @ w.T
  dw = _rows(x).T @ _rows(dy)
  return dx, dw


def _linear_forward(x, w, b=None):
  """Y = X W (+ b)."""
  y = x @ w
  return y if b is None else y + b


@jax.custom_vjp
def _linear(x, w, b):
  return _linear_forward(x, w, b)


def _linear_fwd(x, w, b):
  return _linear_forward(x, w, b), (x, w)


def _linear_bwd(residuals, dy):
  x, w = residuals
  dx, dw = _input_grads(x, w, dy)
  db = _rows(dy).sum(axis=0)
  return dx, dw, db


_linear.defvjp(_linear_fwd, _linear_bwd)


@jax.custom_vjp
def _linear_no_bias(x, w):
  return _linear_forward(x, w)


def _linear_no_bias_fwd(x, w):
  return _linear_forward(x, w), (x, w)


def _linear_no_bias_bwd(residuals, dy):
  return _input_grads(*residuals, dy)


_linear_no_bias.defvjp(_linear_no_bias_fwd, _linear_no_bias_bwd)
