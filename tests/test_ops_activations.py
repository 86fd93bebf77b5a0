"""hw.ops.activations: dtypes, the subgradient at relu's kink, vmap.

Their gradients are checked by the registry (tests/test_gradients.py, ``hw verify``).
Bad arguments of every op: tests/test_ops_bad_arguments.py.
"""
from __future__ import annotations

import functools

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
    outputs = jax.eval_shape(lambda: {"relu": ops.relu(x), "sigmoid": ops.sigmoid(x),
                                      "tanh": ops.tanh(x), "softmax": ops.softmax(x, beta=2.0)})
  for name, out in outputs.items():
    assert out.dtype == np.dtype(dtype), name
    chex.assert_shape(out, (6, 3))


class ActivationTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_relu_gradient_at_exactly_zero_is_zero(self):
    grad = self.variant(jax.grad(lambda x: ops.relu(x).sum()))
    np.testing.assert_array_equal(grad(jnp.array([-1.0, 0.0, 2.0])), [0.0, 0.0, 1.0])

  def test_vmap_matches_the_batched_call(self):
    xs = normal(30, (3, 5, 4))
    chex.assert_trees_all_close(jax.vmap(ops.sigmoid)(xs), ops.sigmoid(xs),
                                rtol=1e-6, atol=1e-7)
    chex.assert_trees_all_close(jax.vmap(functools.partial(ops.softmax, beta=0.5))(xs),
                                ops.softmax(xs, beta=0.5), rtol=1e-6, atol=1e-7)
