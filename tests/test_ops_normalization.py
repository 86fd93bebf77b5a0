"""hw.ops.normalization: argument errors, dtypes and vmap of ``batch_norm``.

Its gradients are checked by the registry (tests/test_gradients.py, ``hw verify``).
"""
from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hw import ops


def _normal(seed, shape, dtype=np.float32):
  return jnp.asarray(np.random.default_rng(seed).normal(size=shape).astype(dtype))


X = _normal(0, (4, 3))
B = _normal(2, (2,))

BAD_CALLS = {
    "batch_norm x rank 1": (lambda: ops.batch_norm(B, B, B), "`x`"),
    "batch_norm gamma shape": (lambda: ops.batch_norm(X, B, jnp.ones(3)), "`gamma`"),
    "batch_norm beta shape": (lambda: ops.batch_norm(X, jnp.ones(3), B), "`beta`"),
    "batch_norm gamma dtype": (lambda: ops.batch_norm(X, jnp.ones(3, jnp.bfloat16),
                                                      jnp.ones(3)), "`gamma`"),
    "batch_norm eps negative": (lambda: ops.batch_norm(X, jnp.ones(3), jnp.ones(3), eps=-1.0),
                                "`eps`"),
}


@pytest.mark.parametrize("case", sorted(BAD_CALLS))
def test_bad_argument_raises_value_error_naming_it(case):
  call, name = BAD_CALLS[case]
  with pytest.raises(ValueError, match=name):
    call()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_output_dtype_matches_input_dtype(dtype):
  with jax.enable_x64(dtype == "float64"):
    x = _normal(0, (6, 3), np.dtype(dtype))
    w = _normal(1, (3, 4), np.dtype(dtype))
    out = jax.eval_shape(lambda: ops.batch_norm(x, w[:, 0], w[:, 1]))
  assert out.dtype == np.dtype(dtype)
  chex.assert_shape(out, (6, 3))


def test_vmap_matches_one_call_per_batch():
  xs = _normal(30, (3, 5, 4))
  gamma, beta = _normal(31, (4,)), _normal(32, (4,))
  chex.assert_trees_all_close(
      jax.vmap(ops.batch_norm, in_axes=(0, None, None))(xs, gamma, beta),
      jnp.stack([ops.batch_norm(x, gamma, beta) for x in xs]), rtol=1e-6, atol=1e-7)
