"""hw.ops.pooling: the algorithm error, dtypes, the tie rule, adaptive windows, and the choice
between the "blocks" and "windows" paths.

The gradients of both paths are checked by the registry rows ``<pool>``,
``<pool>[blocks]`` and ``<pool>[windows]`` (tests/test_gradients.py, ``hw verify``).
Bad arguments of every op: tests/test_ops_bad_arguments.py.
"""
from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hw import ops
from hw.ops import pooling

X4 = jnp.zeros((2, 6, 6, 3), jnp.float32)


def test_algorithm_error_lists_every_valid_name():
  with pytest.raises(ValueError) as error:
    ops.avg_pool(X4, algorithm="nope")
  for name in pooling.ALGORITHMS:
    assert repr(name) in str(error.value)


def _call_every_op(dtype):
  x = jnp.zeros((2, 7, 7, 2), dtype)
  return {
      "max_pool": ops.max_pool(x),
      "max_pool_overlap": ops.max_pool(x, 3, 2),
      "avg_pool": ops.avg_pool(x),
      "avg_pool_overlap": ops.avg_pool(x, 3, 2),
      "adaptive_avg_pool": ops.adaptive_avg_pool(x, 3),
      "adaptive_max_pool": ops.adaptive_max_pool(x, (3, 2)),
  }


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_output_and_gradient_dtype_match_input_dtype(dtype):
  with jax.enable_x64(dtype == "float64"):
    outputs = jax.eval_shape(lambda: _call_every_op(np.dtype(dtype)))
    grads = jax.eval_shape(jax.grad(
        lambda x: sum(jnp.sum(y) for y in _call_every_op(x.dtype).values())),
        jnp.zeros((2, 7, 7, 2), dtype))
  for name, out in outputs.items():
    assert out.dtype == np.dtype(dtype), name
  chex.assert_shape([outputs["max_pool"], outputs["avg_pool_overlap"],
                     outputs["adaptive_avg_pool"]], (2, 3, 3, 2))
  chex.assert_shape(outputs["adaptive_max_pool"], (2, 3, 2, 2))
  assert grads.dtype == np.dtype(dtype)


class TieRuleTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_max_pool_tie_goes_to_first_element_in_row_major_order(self):
    x = jnp.array([[1.0, 1.0, 0.0, 2.0], [1.0, 1.0, 2.0, 1.0]]).reshape(1, 2, 4, 1)
    for window, stride, algorithm in ((2, None, None), (2, None, "blocks"),
                                      (2, None, "windows"), ((2, 2), 1, None)):
      grad = self.variant(jax.grad(lambda x: jnp.sum(
          ops.max_pool(x, window, stride, algorithm=algorithm))))(x)[0, :, :, 0]
      if stride is None:
        np.testing.assert_array_equal(grad, [[1, 0, 0, 1], [0, 0, 0, 0]])
      else:  # windows at columns 0-1, 1-2, 2-3: maxima 1 (first at (0,0)), 2 at (1,2) twice
        np.testing.assert_array_equal(grad, [[1, 0, 0, 1], [0, 0, 1, 0]])

  @chex.variants(with_jit=True, without_jit=True)
  def test_adaptive_max_pool_tie_goes_to_first_element_on_both_paths(self):
    x = jnp.ones((1, 4, 4, 1))
    expected = np.zeros((4, 4))
    expected[::2, ::2] = 1.0
    for algorithm in (None, "blocks", "windows"):
      grad = self.variant(jax.grad(lambda x: jnp.sum(
          ops.adaptive_max_pool(x, 2, algorithm=algorithm))))(x)
      np.testing.assert_array_equal(grad[0, :, :, 0], expected)


def test_adaptive_windows_follow_pytorch_rule():
  assert pooling._adaptive_windows(5, 3) == ((0, 2), (1, 4), (3, 5))
  assert pooling._adaptive_windows(7, 3) == ((0, 3), (2, 5), (4, 7))
  assert pooling._adaptive_windows(6, 3) == ((0, 2), (2, 4), (4, 6))


def _regular_choice(size_hw, window, stride=None):
  (h, w), (kh, kw) = size_hw, window
  sh, sw = window if stride is None else stride
  return pooling._resolve_algorithm(pooling._regular_windows(h, kh, sh),
                                    pooling._regular_windows(w, kw, sw), None, "")


def test_automatic_choice_takes_blocks_exactly_when_windows_tile():
  # The models' 2×2 pools after each conv (odd sizes drop the last row and column).
  for size in (26, 24, 22, 13, 11, 10, 8):
    assert _regular_choice((size, size), (2, 2)) == "blocks", size
  assert _regular_choice((6, 9), (2, 3)) == "blocks"
  assert _regular_choice((7, 7), (3, 3), (2, 2)) == "windows"  # overlap
  assert _regular_choice((8, 8), (2, 2), (3, 3)) == "windows"  # gaps
  adaptive = lambda size, out: pooling._resolve_algorithm(
      pooling._adaptive_windows(size[0], out[0]), pooling._adaptive_windows(size[1], out[1]),
      None, "")
  assert adaptive((6, 8), (3, 4)) == "blocks"
  assert adaptive((5, 3), (1, 1)) == "blocks"
  assert adaptive((7, 6), (3, 3)) == "windows"


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_automatic_choice_computes_exactly_what_pinning_it_computes(kind):
  op = ops.max_pool if kind == "max" else ops.avg_pool
  x = jnp.asarray(np.random.default_rng(0).standard_normal((3, 11, 11, 4)), jnp.float32)
  for window, stride, algorithm in ((2, None, "blocks"), (3, 2, "windows")):
    value_and_grad = lambda a: jax.jit(jax.value_and_grad(
        lambda v: jnp.sum(jnp.sin(op(v, window, stride, algorithm=a)))))(x)
    chex.assert_trees_all_equal(value_and_grad(None), value_and_grad(algorithm))
