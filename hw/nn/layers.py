"""Thin Flax linen layers whose forward and backward passes are the hand-written hw.ops.

Each layer only owns its parameters (and running statistics); the computation is one
call into :mod:`hw.ops`, so every gradient that training uses is a hand-derived VJP.

Weight initialisation: ``N(0, weight_scale²)`` when ``weight_scale`` is given (the
handout's starter default is 1e-3), else Flax's default LeCun normal; biases are zero.
"""
from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from hw import ops

Initializer = Callable[..., jax.Array]


def kernel_init(weight_scale: float | None) -> Initializer:
  """``N(0, weight_scale²)`` if ``weight_scale`` is set, else LeCun normal (Flax's default)."""
  if weight_scale is None:
    return nn.initializers.lecun_normal()
  if weight_scale < 0:
    raise ValueError(f"`weight_scale` must be >= 0 or None, got {weight_scale}")
  return nn.initializers.normal(stddev=weight_scale)


class Dense(nn.Module):
  """``y = x W + b`` with W of shape (Din, features), via :func:`hw.ops.linear`."""
  features: int
  weight_scale: float | None = None
  use_bias: bool = True

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    w = self.param("kernel", kernel_init(self.weight_scale), (x.shape[-1], self.features))
    b = self.param("bias", nn.initializers.zeros, (self.features,)) if self.use_bias else None
    return ops.linear(x, w, b)


class Conv(nn.Module):
  """2-D convolution (NHWC input, HWIO kernel) via :func:`hw.ops.conv2d`."""
  features: int
  kernel_size: int
  stride: int = 1
  padding: Any = "VALID"
  weight_scale: float | None = None
  use_bias: bool = True

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    shape = (self.kernel_size, self.kernel_size, x.shape[-1], self.features)
    w = self.param("kernel", kernel_init(self.weight_scale), shape)
    b = self.param("bias", nn.initializers.zeros, (self.features,)) if self.use_bias else None
    return ops.conv2d(x, w, b, stride=self.stride, padding=self.padding)


class BatchNorm(nn.Module):
  """Batch normalisation over all axes but the last (channels), with running averages.

  Train mode: ``y = γ (x − μ_B) / sqrt(σ²_B + eps) + β`` through :func:`hw.ops.batch_norm`
  (hand-written backward), and the running statistics in the 'batch_stats' collection are
  updated as ``r ← momentum · r + (1 − momentum) · batch value`` (momentum 0.9 as in the
  handout; the biased batch variance, as the handout's ``np.var``).
  Eval mode: the plain affine map ``y = γ (x − μ_run) / sqrt(σ²_run + eps) + β``.
  """
  momentum: float = 0.9
  epsilon: float = 1e-5

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    features = x.shape[-1]
    gamma = self.param("scale", nn.initializers.ones, (features,))
    beta = self.param("bias", nn.initializers.zeros, (features,))
    running_mean = self.variable("batch_stats", "mean", jnp.zeros, (features,), jnp.float32)
    running_var = self.variable("batch_stats", "var", jnp.ones, (features,), jnp.float32)
    if not train:
      scale = gamma * jax.lax.rsqrt(running_var.value + self.epsilon)
      return (x - running_mean.value) * scale + beta
    y = ops.batch_norm(x, gamma, beta, eps=self.epsilon)
    if not self.is_initializing():
      axes = tuple(range(x.ndim - 1))
      batch_mean = jax.lax.stop_gradient(jnp.mean(x, axes))
      batch_var = jax.lax.stop_gradient(jnp.var(x, axes))
      m = self.momentum
      running_mean.value = m * running_mean.value + (1 - m) * batch_mean
      running_var.value = m * running_var.value + (1 - m) * batch_var
    return y


class Dropout(nn.Module):
  """Inverted dropout (:func:`hw.ops.dropout`): kept units are scaled by 1/(1 − rate) at
  train time, so inference is the identity. The key comes from the 'dropout' rng stream."""
  rate: float

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    if not 0.0 <= self.rate < 1.0:
      raise ValueError(f"dropout `rate` must be in [0, 1), got {self.rate}")
    if not train or self.rate == 0.0:
      return x
    return ops.dropout(x, key=self.make_rng("dropout"), rate=self.rate, train=True)


def relu(x: jax.Array) -> jax.Array:
  return ops.relu(x)


def sigmoid(x: jax.Array) -> jax.Array:
  return ops.sigmoid(x)


def tanh(x: jax.Array) -> jax.Array:
  return ops.tanh(x)


def max_pool(x: jax.Array, window: int = 2) -> jax.Array:
  return ops.max_pool(x, window)


def global_pool(x: jax.Array, kind: str = "max") -> jax.Array:
  """(N, H, W, C) → (N, C): the max or the mean of each channel over the whole map
  (:func:`hw.ops.adaptive_max_pool` / :func:`hw.ops.adaptive_avg_pool` to 1×1)."""
  if kind not in ("max", "avg"):
    raise ValueError(f"global pool `kind` must be 'max' or 'avg', got {kind!r}")
  pooled = ops.adaptive_max_pool(x, 1) if kind == "max" else ops.adaptive_avg_pool(x, 1)
  return pooled.reshape((x.shape[0], x.shape[-1]))


def flatten(x: jax.Array) -> jax.Array:
  """(N, ...) → (N, prod(...))."""
  return x.reshape((x.shape[0], -1))
