"""hw.ops.dropout: the trace-time rate error, dtypes, and the facts of the hashed keep-mask (keep
rate, scaling, same key same mask, identity at eval, vmap over keys, independence of
dtype and of units).

Its gradient is checked by the registry (tests/test_gradients.py, ``hw verify``).
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


X = normal(0, (4, 3))
KEY = jax.random.key(0)


def test_rate_error_raises_at_trace_time_under_jit():
  with pytest.raises(ValueError, match="`rate`"):
    jax.jit(functools.partial(ops.dropout, key=KEY, rate=1.5, train=True))(X)


def test_key_may_be_omitted_when_no_mask_is_drawn():
  np.testing.assert_array_equal(ops.dropout(X, key=None, rate=0.5, train=False), X)
  np.testing.assert_array_equal(ops.dropout(X, key=None, rate=0.0, train=True), X)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_output_dtype_matches_input_dtype(dtype):
  with jax.enable_x64(dtype == "float64"):
    x = normal(0, (6, 3), np.dtype(dtype))
    out = jax.eval_shape(lambda: ops.dropout(x, key=KEY, rate=0.3, train=True))
  assert out.dtype == np.dtype(dtype)
  chex.assert_shape(out, (6, 3))


class DropoutTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_keeps_about_one_minus_rate_and_scales_kept_units(self):
    x = jnp.ones((200, 100), jnp.float32)
    for rate in (0.2, 0.5, 0.8):
      y = self.variant(functools.partial(ops.dropout, key=jax.random.key(1), rate=rate,
                                         train=True))(x)
      kept = y != 0
      # 20000 Bernoulli draws: the standard error of the kept fraction is below 0.0036.
      assert abs(float(kept.mean()) - (1 - rate)) < 0.02, rate
      np.testing.assert_allclose(y[kept], 1 / (1 - rate), rtol=1e-6)

  @chex.variants(with_jit=True, without_jit=True)
  def test_same_key_same_mask_and_the_gradient_uses_it(self):
    x = normal(40, (50, 20))
    key = jax.random.key(7)
    apply = functools.partial(ops.dropout, key=key, rate=0.5, train=True)
    first, second = apply(x), self.variant(apply)(x)
    np.testing.assert_array_equal(first, second)
    other = ops.dropout(x, key=jax.random.key(8), rate=0.5, train=True)
    assert not np.array_equal(first != 0, other != 0)
    grad = self.variant(jax.grad(lambda v: (apply(v) * 3.0).sum()))(x)
    np.testing.assert_allclose(grad, jnp.where(first != 0, 6.0, 0.0))
    legacy = ops.dropout(x, key=jax.random.PRNGKey(7), rate=0.5, train=True)
    chex.assert_shape(legacy, x.shape)

  @chex.variants(with_jit=True, without_jit=True)
  def test_identity_at_eval_and_vmaps_over_keys(self):
    x = normal(41, (4, 30))
    evaluate = self.variant(functools.partial(ops.dropout, key=KEY, rate=0.9, train=False))
    np.testing.assert_array_equal(evaluate(x), x)
    grad = self.variant(jax.grad(lambda v: ops.dropout(v, key=KEY, rate=0.9,
                                                       train=False).sum()))(x)
    np.testing.assert_array_equal(grad, 1.0)
    keys = jax.random.split(KEY, 4)
    batched = self.variant(jax.vmap(lambda v, k: ops.dropout(v, key=k, rate=0.5,
                                                             train=True)))(x, keys)
    rows = [ops.dropout(v, key=k, rate=0.5, train=True) for v, k in zip(x, keys)]
    chex.assert_trees_all_close(batched, jnp.stack(rows), rtol=1e-6)


def test_mask_does_not_depend_on_dtype_or_64_bit_mode():
  x32 = jnp.ones((8, 16), jnp.float32)
  mask32 = ops.dropout(x32, key=KEY, rate=0.4, train=True) != 0
  with jax.enable_x64(True):
    mask64 = ops.dropout(jnp.ones((8, 16), jnp.float64), key=KEY, rate=0.4, train=True) != 0
  np.testing.assert_array_equal(mask32, mask64)


def test_mask_units_look_independent():
  # The hashed mask: keep fraction 1 - rate, no correlation between neighbouring units or
  # between the masks of two keys (each |corr| ~ N(0, 1/n), n = 20,000 here).
  keep = [np.asarray(ops.dropout(jnp.ones((100, 200)), key=jax.random.key(s), rate=0.3,
                                 train=True) != 0, np.float64).ravel() for s in (3, 4)]
  assert abs(keep[0].mean() - 0.7) < 0.02
  for a, b in ((keep[0][:-1], keep[0][1:]), (keep[0][:-200], keep[0][200:]),
               (keep[0], keep[1])):
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.04
