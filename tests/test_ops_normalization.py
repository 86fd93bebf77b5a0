"""hw.ops.normalization: dtypes and vmap of ``batch_norm``.

Its gradients are checked by the registry (tests/test_gradients.py, ``hw verify``).
Bad arguments of every op: tests/test_ops_bad_arguments.py.
"""
from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hw import ops
from helpers import normal


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_output_dtype_matches_input_dtype(dtype):
  with jax.enable_x64(dtype == "float64"):
    x = normal(0, (6, 3), np.dtype(dtype))
    w = normal(1, (3, 4), np.dtype(dtype))
    out = jax.eval_shape(lambda: ops.batch_norm(x, w[:, 0], w[:, 1]))
  assert out.dtype == np.dtype(dtype)
  chex.assert_shape(out, (6, 3))


def test_vmap_matches_one_call_per_batch():
  xs = normal(30, (3, 5, 4))
  gamma, beta = normal(31, (4,)), normal(32, (4,))
  chex.assert_trees_all_close(
      jax.vmap(ops.batch_norm, in_axes=(0, None, None))(xs, gamma, beta),
      jnp.stack([ops.batch_norm(x, gamma, beta) for x in xs]), rtol=1e-6, atol=1e-7)
