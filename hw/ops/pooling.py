"""Pooling. PLACEHOLDER: plain JAX, to be replaced."""
import jax.numpy as jnp
from jax import lax


def max_pool(x, window=2, stride=None):
  stride = stride or window
  return lax.reduce_window(x, -jnp.inf, lax.max, (1, window, window, 1), (1, stride, stride, 1), "VALID")


def avg_pool(x, window=2, stride=None):
  stride = stride or window
  s = lax.reduce_window(x, 0.0, lax.add, (1, window, window, 1), (1, stride, stride, 1), "VALID")
  return s / (window * window)


def adaptive_avg_pool(x, output_size):
  raise NotImplementedError


def adaptive_max_pool(x, output_size):
  raise NotImplementedError
