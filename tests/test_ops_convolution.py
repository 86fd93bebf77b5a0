"""hw.ops.convolution: the algorithm error, dtypes, the worked examples of assignments C
(1-D layer) and D (2-D image gradient; docs/assignments.md), and the choice of algorithm.

The gradients of every algorithm are checked by the registry rows ``conv2d``,
``conv2d[<algorithm>]``, ``conv1d`` and ``conv1d[<algorithm>]`` (tests/test_gradients.py,
``hw verify``).
Bad arguments of every op: tests/test_ops_bad_arguments.py.
"""
from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hw import backends, ops
from hw.ops import _conv_paths, convolution

ALGORITHMS = list(convolution.ALGORITHMS)

X4 = jnp.zeros((2, 6, 6, 3), jnp.float32)
W4 = jnp.zeros((3, 3, 3, 4), jnp.float32)


def test_algorithm_error_lists_every_valid_name():
  with pytest.raises(ValueError) as error:
    ops.conv2d(X4, W4, algorithm="nope")
  for name in ALGORITHMS:
    assert repr(name) in str(error.value)


@pytest.mark.parametrize("w_shape, stride", [((5, 5, 3, 4), 1), ((3, 3, 3, 4), 2),
                                              ((3, 1, 3, 4), 1)])
def test_winograd_refuses_what_it_cannot_compute_naming_kernel_and_stride(w_shape, stride):
  with pytest.raises(ValueError, match=r"'winograd' computes 3×3 kernels at stride 1.*"
                                       rf"{w_shape[0]}×{w_shape[1]} kernel.*stride"):
    ops.conv2d(X4, jnp.zeros(w_shape), stride=stride, algorithm="winograd")
  with pytest.raises(ValueError, match="got 'winograd'"):
    ops.conv1d(X4[:, 0], jnp.zeros((3, 3, 4)), algorithm="winograd")


def _call_every_op(dtype, algorithm):
  x = jnp.zeros((2, 7, 7, 2), dtype)
  stride = 1 if algorithm == "winograd" else 2   # Winograd: stride 1 only
  return {
      "conv2d": ops.conv2d(x, jnp.zeros((3, 3, 2, 4), dtype), jnp.zeros(4, dtype),
                           stride=stride, padding="SAME", algorithm=algorithm),
      "conv1d": ops.conv1d(x[:, 0], jnp.zeros((3, 2, 4), dtype),
                           algorithm=None if algorithm == "winograd" else algorithm),
  }


@pytest.mark.parametrize("algorithm", [None] + ALGORITHMS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_output_and_gradient_dtype_match_input_dtype(dtype, algorithm):
  with jax.enable_x64(dtype == "float64"):
    outputs = jax.eval_shape(lambda: _call_every_op(np.dtype(dtype), algorithm))
    grads = jax.eval_shape(jax.grad(
        lambda x: jnp.sum(ops.conv2d(x, jnp.zeros((3, 3, 2, 4), x.dtype), algorithm=algorithm))
        + jnp.sum(ops.conv1d(x[:, 0], jnp.zeros((3, 2, 4), x.dtype),
                             algorithm=None if algorithm == "winograd" else algorithm))),
        jnp.zeros((2, 7, 7, 2), dtype))
  for name, out in outputs.items():
    assert out.dtype == np.dtype(dtype), name
  chex.assert_shape(outputs["conv2d"], (2, 7, 7, 4) if algorithm == "winograd" else (2, 4, 4, 4))
  chex.assert_shape(outputs["conv1d"], (2, 5, 4))
  assert grads.dtype == np.dtype(dtype)


# --------------------------------------------------------------- worked examples (assignments C, D)

class WorkedExamplesTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_spec_c_one_dimensional_layer_and_one_sgd_step(self):
    with jax.enable_x64(True):
      x = jnp.array([1.0, 2.0, 3.0, 4.0]).reshape(1, 4, 1)
      targets = jnp.array([2.0, 4.0])

      def predict(w, b):
        return ops.conv1d(x, w.reshape(3, 1, 1), b.reshape(1))[0, :, 0]

      def loss(w, b):
        return 0.5 * jnp.sum((targets - predict(w, b)) ** 2)

      grad = self.variant(jax.grad(loss, argnums=(0, 1)))
      predict, loss = self.variant(predict), self.variant(loss)
      w, b = jnp.array([2.0, 1.0, 3.0]), jnp.array(1.0)
      np.testing.assert_allclose(predict(w, b), [14.0, 20.0])
      np.testing.assert_allclose(loss(w, b), 200.0)
      dw, db = grad(w, b)
      np.testing.assert_allclose(dw, [44.0, 72.0, 100.0])
      np.testing.assert_allclose(db, 28.0)
      w, b = w - 0.01 * dw, b - 0.01 * db
      np.testing.assert_allclose(w, [1.56, 0.28, 2.0], rtol=1e-12)
      np.testing.assert_allclose(b, 0.72, rtol=1e-12)
      np.testing.assert_allclose(predict(w, b), [8.84, 12.68], rtol=1e-12)
      np.testing.assert_allclose(loss(w, b), 61.064, rtol=1e-12)

  @chex.variants(with_jit=True, without_jit=True)
  def test_spec_d_first_output_and_image_gradient_for_all_ones_upstream(self):
    with jax.enable_x64(True):
      kernel = jnp.array([[4.0, 3, 3], [5, 5, 5], [2, 4, 3]]).reshape(3, 3, 1, 1)
      image = np.random.default_rng(0).integers(0, 6, size=(5, 5)).astype(np.float64)
      image[:3, :3] = [[4, 5, 2], [3, 3, 2], [4, 3, 4]]
      image = jnp.asarray(image).reshape(1, 5, 5, 1)
      out = self.variant(lambda x: ops.conv2d(x, kernel))(image)
      chex.assert_shape(out, (1, 3, 3, 1))
      assert float(out[0, 0, 0, 0]) == 109.0
      grad = self.variant(jax.grad(lambda x: jnp.sum(ops.conv2d(x, kernel))))(image)
      np.testing.assert_array_equal(grad[0, :, :, 0], [[4, 7, 10, 6, 3], [9, 17, 25, 16, 8],
                                                       [11, 23, 34, 23, 11], [7, 16, 24, 17, 8],
                                                       [2, 6, 9, 7, 3]])


# ------------------------------------------------------------------------ algorithm choice

def _chosen(x_shape, w_shape, stride=1, padding="VALID"):
  spec = lambda shape: jax.ShapeDtypeStruct(shape, jnp.float32)
  return convolution._geometry(spec(x_shape), spec(w_shape), None, stride, padding).algorithm


# The layers of the experiments' models (batch 100, MNIST 28×28×1; Q5.3 conv 32 k×k with
# k in 3, 5, 7; Q5.4's blocks (16, 3)+(32, 3), (32, 3)+(64, 3), (32, 5)+(64, 5), each conv
# VALID followed by a 2×2 max pool). The automatic choice must not change silently: it
# decides the float32 rounding of every training run.
MODEL_LAYERS = [
    ((100, 28, 28, 1), (7, 7, 1, 32), "lax_im2col"),
    ((100, 28, 28, 1), (5, 5, 1, 32), "lax_im2col"),
    ((100, 28, 28, 1), (3, 3, 1, 32), "shift"),
    ((100, 28, 28, 1), (3, 3, 1, 16), "shift"),
    ((100, 13, 13, 16), (3, 3, 16, 32), "winograd"),
    ((100, 13, 13, 32), (3, 3, 32, 64), "winograd"),
    ((100, 12, 12, 32), (5, 5, 32, 64), "lax"),
]


@pytest.mark.parametrize("x_shape, w_shape, algorithm", MODEL_LAYERS,
                         ids=[f"{x[1]}x{x[2]}x{w[2]}-{w[3]}-k{w[0]}" for x, w, _ in MODEL_LAYERS])
def test_automatic_choice_for_the_model_layers_is_unchanged(x_shape, w_shape, algorithm):
  assert _chosen(x_shape, w_shape) == algorithm


def test_automatic_choice_rules():
  # Few input channels: up to 8 output channels shifted slices forward and lax backward;
  # else im2col/col2im backward, the forward by shifted slices while C·KH·KW·F <= 784, else
  # an im2col matmul up to 15 output channels, else lax with one input channel and shifted
  # slices with more.
  assert _chosen((2, 8, 8, 4), (3, 3, 4, 8)) == "shift_lax"
  assert _chosen((2, 8, 8, 1), (7, 7, 1, 16)) == "shift"  # 784 multiply-adds
  assert _chosen((2, 8, 8, 2), (7, 7, 2, 9)) == "im2col"  # 882
  assert _chosen((2, 8, 8, 2), (7, 7, 2, 15)) == "im2col"
  assert _chosen((2, 8, 8, 1), (7, 7, 1, 17)) == "lax_im2col"
  assert _chosen((2, 8, 8, 2), (7, 7, 2, 16)) == "shift"
  # Many input channels: Winograd for 3×3 at stride 1 from 16 channels; else lax, dW by a
  # matmul for kernels up to 9 taps and outputs up to 121 positions.
  assert _chosen((2, 13, 13, 16), (3, 3, 16, 2)) == "winograd"
  assert _chosen((2, 13, 13, 15), (3, 3, 15, 2)) == "lax_matmul_dw"  # 11×11 outputs
  assert _chosen((2, 14, 14, 5), (3, 3, 5, 2)) == "lax"  # 12×12 outputs
  assert _chosen((2, 8, 8, 5), (2, 5, 5, 2)) == "lax"  # 10 taps
  assert _chosen((2, 14, 14, 5), (3, 3, 5, 2), stride=2, padding="SAME") == "lax_matmul_dw"
  assert _chosen((2, 14, 14, 32), (3, 3, 32, 2), stride=2, padding="SAME") == "lax_matmul_dw"


@pytest.mark.parametrize("x_shape, w_shape, algorithm", [
    ((3, 9, 8, 1), (3, 3, 1, 9), "shift"),
    ((4, 9, 8, 3), (3, 3, 3, 32), "shift"),
    ((3, 9, 8, 4), (5, 5, 4, 9), "im2col"),
    ((3, 9, 8, 1), (5, 5, 1, 32), "lax_im2col"),
    ((3, 9, 8, 6), (3, 3, 6, 4), "lax_matmul_dw"),
    ((3, 9, 8, 6), (5, 5, 6, 4), "lax"),
    ((4, 9, 8, 2), (3, 3, 2, 4), "shift_lax"),
    ((3, 11, 10, 16), (3, 3, 16, 4), "winograd"),
    ((3, 4, 4, 6), (3, 3, 6, 4), "dense"),
])
def test_automatic_choice_computes_exactly_what_pinning_it_computes(x_shape, w_shape, algorithm):
  assert _chosen(x_shape, w_shape) == algorithm
  rng = np.random.default_rng(0)
  x, w = (jnp.asarray(rng.standard_normal(s), jnp.float32) for s in (x_shape, w_shape))
  b = jnp.asarray(rng.standard_normal(w_shape[3]), jnp.float32)

  def value_and_grads(algorithm):
    loss = lambda x, w, b: jnp.sum(jnp.sin(ops.conv2d(x, w, b, algorithm=algorithm)))
    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2)))(x, w, b)

  chex.assert_trees_all_equal(value_and_grads(None), value_and_grads(algorithm))


@pytest.mark.parametrize("algorithm", [None, *convolution.ALGORITHMS])
@pytest.mark.parametrize("channels, filters", [(0, 4), (3, 0)])
def test_every_algorithm_takes_a_kernel_with_no_input_channels_or_no_filters(
    algorithm, channels, filters):
  x = jnp.ones((2, 5, 5, channels))
  w, b = jnp.ones((3, 3, channels, filters)), jnp.full((filters,), 0.5)
  loss = lambda x, w, b: jnp.sum(ops.conv2d(x, w, b, algorithm=algorithm))
  value, grads = jax.value_and_grad(loss, argnums=(0, 1, 2))(x, w, b)
  np.testing.assert_array_equal(ops.conv2d(x, w, b, algorithm=algorithm),
                                jnp.full((2, 3, 3, filters), 0.5))  # the empty sum, plus b
  assert float(value) == 0.5 * 2 * 3 * 3 * filters
  assert [g.shape for g in grads] == [x.shape, w.shape, b.shape]
  np.testing.assert_array_equal(grads[2], jnp.full((filters,), 18.0))


@pytest.mark.parametrize("x_shape, w_shape, stride, padding", [
    ((2, 9, 8, 1), (3, 3, 1, 4), 1, "VALID"),
    ((2, 9, 8, 1), (7, 7, 1, 4), 1, "SAME"),
    ((1, 5, 5, 1), (3, 3, 1, 1), (2, 1), 4),
    ((2, 7, 5, 1), (2, 2, 1, 3), 3, "VALID"),   # trailing rows/columns no window reaches
    ((3, 6, 7, 3), (3, 2, 3, 2), 2, (1, 2)),
])
def test_patches_stacked_nested_are_the_same_array_bit_for_bit(x_shape, w_shape, stride,
                                                                padding):
  x = jnp.asarray(np.random.default_rng(0).standard_normal(x_shape), jnp.float32)
  g = convolution._geometry(x, jax.ShapeDtypeStruct(w_shape, jnp.float32), None, stride,
                            padding, "im2col")
  stacks = {}
  for nested in (0, 8):
    with backends.replaced("cpu", conv={"patches_nested_max_input_channels": nested}):
      assert backends.patches_nested(x_shape[3], "cpu") == bool(nested)
      stacks[nested] = jax.jit(lambda x: _conv_paths._patches(x, g))(x)
  assert stacks[0].shape == (w_shape[0] * w_shape[1], x_shape[0], *g.out_hw, x_shape[3])
  np.testing.assert_array_equal(np.asarray(stacks[8]), np.asarray(stacks[0]))
