"""Elementwise activations and softmax with hand-derived backward passes.

Each backward rule reuses the forward output as its only residual: the derivative of
these functions is a cheap expression of their value.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from hw.ops import _checks


def relu(x: jax.Array) -> jax.Array:
  """Rectifier ``y = max(x, 0)``.

  Backward: ``dX = dY ⊙ 1[X > 0]``, so the gradient at exactly 0 is 0 (as ``jax.nn.relu``).

  Args:
    x: floating-point array of any shape.

  Returns:
    Array of the shape and dtype of ``x``.
  """
  _checks.check_floating("x", x)
  return _relu(x)


def _relu_forward(x):
  return jnp.maximum(x, 0)


@jax.custom_vjp
def _relu(x):
  return _relu_forward(x)


def _relu_fwd(x):
  y = _relu_forward(x)
  return y, y


def _relu_bwd(y, dy):
  # y > 0 exactly where x > 0, and y is usually kept alive by the next layer anyway.
  return (jnp.where(y > 0, dy, 0),)


_relu.defvjp(_relu_fwd, _relu_bwd)


def sigmoid(x: jax.Array) -> jax.Array:
  """Logistic function ``s = 1 / (1 + exp(-x))``.

  Backward: ``dX = dY ⊙ s (1 − s)`` with ``s`` saved from the forward pass.

  Args:
    x: floating-point array of any shape.

  Returns:
    Array of the shape and dtype of ``x``.
  """
  _checks.check_floating("x", x)
  return _sigmoid(x)


def _sigmoid_forward(x):
  return jax.nn.sigmoid(x)


@jax.custom_vjp
def _sigmoid(x):
  return _sigmoid_forward(x)


def _sigmoid_fwd(x):
  s = _sigmoid_forward(x)
  return s, s


def _sigmoid_bwd(s, dy):
  return (dy * s * (1 - s),)


_sigmoid.defvjp(_sigmoid_fwd, _sigmoid_bwd)


def tanh(x: jax.Array) -> jax.Array:
  """Hyperbolic tangent ``t = tanh(x)``.

  Backward: ``dX = dY ⊙ (1 − t²)`` with ``t`` saved from the forward pass.

  Args:
    x: floating-point array of any shape.

  Returns:
    Array of the shape and dtype of ``x``.
  """
  _checks.check_floating("x", x)
  return _tanh(x)


def _tanh_forward(x):
  return jnp.tanh(x)


@jax.custom_vjp
def _tanh(x):
  return _tanh_forward(x)


def _tanh_fwd(x):
  t = _tanh_forward(x)
  return t, t


def _tanh_bwd(t, dy):
  return (dy * (1 - t * t),)


_tanh.defvjp(_tanh_fwd, _tanh_bwd)


def softmax(x: jax.Array, *, beta: float = 1.0) -> jax.Array:
  """Softmax with inverse temperature over the last axis, ``y = softmax(β x)``.

  ``yᵢ = exp(β xᵢ) / Σⱼ exp(β xⱼ)``, computed after subtracting the row maximum.
  Backward: ``dX = β · y ⊙ (dY − Σⱼ dYⱼ yⱼ)`` (sum over the last axis).

  Args:
    x: floating-point array of shape (..., K), K >= 1.
    beta: inverse temperature, a finite Python number (static).

  Returns:
    Array of the shape and dtype of ``x``; each row along the last axis sums to 1.
  """
  _checks.check_min_rank("x", x, 1, "(..., K)")
  _checks.check_floating("x", x)
  beta = _checks.check_real_number("beta", beta)
  return _softmax(x, beta)


def _softmax_forward(x, beta):
  z = beta * x
  e = jnp.exp(z - jnp.max(z, axis=-1, keepdims=True))
  return e / jnp.sum(e, axis=-1, keepdims=True)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def _softmax(x, beta):
  return _softmax_forward(x, beta)


def _softmax_fwd(x, beta):
  y = _softmax_forward(x, beta)
  return y, y


def _softmax_bwd(beta, y, dy):
  return (beta * y * (dy - jnp.sum(dy * y, axis=-1, keepdims=True)),)


_softmax.defvjp(_softmax_fwd, _softmax_bwd)
