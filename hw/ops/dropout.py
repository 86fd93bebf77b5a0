"""Inverted dropout. PLACEHOLDER: plain JAX, to be replaced."""
import jax
import jax.numpy as jnp


def dropout(x, *, key, rate, train):
  if not train or rate == 0.0:
    return x
  keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
  return jnp.where(keep, x / (1.0 - rate), 0).astype(x.dtype)
