"""Inverted dropout with a hand-derived backward pass."""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from hw.ops import _checks


def dropout(x: jax.Array, *, key: jax.Array | None, rate: float, train: bool) -> jax.Array:
  """Inverted dropout: ``Y = X ⊙ M / (1 − rate)`` at train time, ``Y = X`` at eval time.

  ``M`` keeps each unit independently with probability ``1 − rate``. Kept units are
  scaled up during training so that E[Y] = X and inference needs no rescaling (the
  "inverted" rule). Backward: ``dX = dY ⊙ M / (1 − rate)``; the identity at eval time
  (or when ``rate == 0``) passes ``dY`` through unchanged.

  Args:
    x: floating-point array of any shape.
    key: PRNG key for the mask (``jax.random.key`` or ``jax.random.PRNGKey``); the same
      key gives the same mask. May be None when no mask is drawn (``train`` False or
      ``rate`` 0).
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
  # A float32 keep-probability fixes the mask's uniform draws to float32, so a key gives
  # the same mask whatever the dtype of x and whether 64-bit mode is on.
  keep = jax.random.bernoulli(key, np.float32(1.0 - rate), x.shape)
  return _masked_scale(x, keep, 1.0 / (1.0 - rate))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _masked_scale(x, keep, scale):
  return jnp.where(keep, x * scale, 0)


def _masked_scale_fwd(x, keep, scale):
  return jnp.where(keep, x * scale, 0), keep


def _masked_scale_bwd(scale, keep, dy):
  # The boolean mask is not differentiable: None is its (zero) cotangent.
  return jnp.where(keep, dy * scale, 0), None


_masked_scale.defvjp(_masked_scale_fwd, _masked_scale_bwd)
