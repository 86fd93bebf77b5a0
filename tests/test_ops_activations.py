"""hw.ops.activations: argument errors, dtypes, the subgradient at relu's kink, vmap.

Their gradients are checked by the registry (tests/test_gradients.py, ``hw verify``).
"""
from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hw import ops


def _normal(seed, shape, dtype=np.float32):
  return jnp.asarray(np.random.default_rng(seed).normal(size=shape).astype(dtype))


X = _normal(0, (4, 3))

BAD_CALLS = {
    "relu int": (lambda: ops.relu(jnp.arange(3)), "`x`"),
    "sigmoid int": (lambda: ops.sigmoid(jnp.arange(3)), "`x`"),
    "tanh list": (lambda: ops.tanh([1.0]), "`x`"),
    "softmax rank 0": (lambda: ops.softmax(jnp.float32(1.0)), "`x`"),
    "softmax beta str": (lambda: ops.softmax(X, beta="2"), "`beta`"),
    "softmax beta inf": (lambda: ops.softmax(X, beta=float("inf")), "`beta`"),
    "softmax beta array": (lambda: ops.softmax(X, beta=jnp.float32(2.0)), "`beta`"),
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
    xs = _normal(30, (3, 5, 4))
    chex.assert_trees_all_close(jax.vmap(ops.sigmoid)(xs), ops.sigmoid(xs),
                                rtol=1e-6, atol=1e-7)
    chex.assert_trees_all_close(jax.vmap(functools.partial(ops.softmax, beta=0.5))(xs),
                                ops.softmax(xs, beta=0.5), rtol=1e-6, atol=1e-7)
