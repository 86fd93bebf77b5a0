"""Inverted dropout with a hand-derived backward pass."""
from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from hw.ops import _checks

# The keep-mask comes from a counter-based hash instead of one PRNG draw per unit. Drawing
# 32 random bits per unit with ``jax.random`` is the slow part of dropout on XLA's CPU
# backend, with threefry and rbg keys alike (`python -m benchmarks.run --ops dropout`
# compares them), and drawing 8 or 16 bits per unit is no cheaper. The key gives two
# 32-bit seeds (one tiny
# ``jax.random.bits`` draw, for any key implementation); unit ``i`` (row-major flat index)
# gets ``h = mix(mix(i + s0) ^ s1)``, ``mix`` the "lowbias32" integer finaliser
# (C. Wellons, hash-prospector), a bijection of uint32 with near-ideal avalanche. The unit
# is kept iff ``h < round((1 − rate)·2³²)``. Not a cryptographic generator: ample for
# dropout masks (tests/test_ops_dropout.py checks keep rate and correlations).
_MIX_MULTIPLIERS = (np.uint32(0x7FEB352D), np.uint32(0x846CA68B))


def _mix(h: jax.Array) -> jax.Array:
  """lowbias32: x ^= x>>16; x *= 0x7feb352d; x ^= x>>15; x *= 0x846ca68b; x ^= x>>16."""
  h = h ^ (h >> np.uint32(16))
  h = h * _MIX_MULTIPLIERS[0]
  h = h ^ (h >> np.uint32(15))
  h = h * _MIX_MULTIPLIERS[1]
  return h ^ (h >> np.uint32(16))


def keep_threshold(rate: float) -> np.uint32:
  """uint32 threshold t with P(h < t) = t / 2³² ≈ 1 − rate (error ≤ 2⁻³³, t ≤ 2³² − 1)."""
  return np.uint32(min(round((1.0 - rate) * 2.0**32), 2**32 - 1))


def keep_mask(key: jax.Array, rate: float, shape: tuple[int, ...]) -> jax.Array:
  """Boolean keep-mask of ``shape``: each unit kept with probability 1 − rate (to 2⁻³³).

  Depends only on the key, the rate and the shape (uint32 arithmetic throughout), so the
  same key gives the same mask for any dtype of ``x`` and with or without 64-bit mode.
  """
  size = math.prod(shape)
  if size >= 2**32:
    raise ValueError(f"dropout supports fewer than 2**32 units, got shape {shape}")
  seeds = jax.random.bits(key, (2,), jnp.uint32)
  index = lax.iota(jnp.uint32, size).reshape(shape)
  hashed = _mix(_mix(index + seeds[0]) ^ seeds[1])
  return hashed < keep_threshold(rate)


def dropout(x: jax.Array, *, key: jax.Array | None, rate: float, train: bool) -> jax.Array:
  """Inverted dropout: ``Y = X ⊙ M / (1 − rate)`` at train time, ``Y = X`` at eval time.

  ``M`` keeps each unit independently with probability ``1 − rate`` (quantised to a
  multiple of 2⁻³², see :func:`keep_mask`). Kept units are scaled up during training so
  that E[Y] = X and inference needs no rescaling (the "inverted" rule). Backward:
  ``dX = dY ⊙ M / (1 − rate)``; the identity at eval time (or when ``rate == 0``) passes
  ``dY`` through unchanged.

  Args:
    x: floating-point array of any shape.
    key: PRNG key for the mask (``jax.random.key`` of any implementation, or
      ``jax.random.PRNGKey``); the same key gives the same mask. May be None when no mask
      is drawn (``train`` False or ``rate`` 0).
    rate: probability of dropping a unit, a Python number in [0, 1) (static).
    train: Python bool; False makes the op the identity.

  Returns:
    Array of the shape and dtype of ``x``.
  """
  _checks.check_floating("x", x)
  rate = _checks.check_real_number("rate", rate, low=0.0, high=1.0, high_inclusive=False)
  _checks.check_bool("train", train)
  if not train or rate == 0.0:
    if key is not None:
      _checks.check_prng_key("key", key)
    return x
  if key is None:
    raise ValueError("`key` must be a PRNG key when `train` is True and `rate` > 0, got None")
  _checks.check_prng_key("key", key)
  keep = keep_mask(key, rate, tuple(x.shape))
  return _masked_scale(x, keep, 1.0 / (1.0 - rate))


def _masked_scale_forward(x, keep, scale):
  return jnp.where(keep, x * scale, 0)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _masked_scale(x, keep, scale):
  return _masked_scale_forward(x, keep, scale)


def _masked_scale_fwd(x, keep, scale):
  return _masked_scale_forward(x, keep, scale), keep


def _masked_scale_bwd(scale, keep, dy):
  # The boolean mask is not differentiable: None is its (zero) cotangent.
  return jnp.where(keep, dy * scale, 0), None


_masked_scale.defvjp(_masked_scale_fwd, _masked_scale_bwd)
