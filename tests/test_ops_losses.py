"""hw.ops.losses: label errors under jit, dtypes, label conventions, the hinge's
subgradient, stability at extreme inputs, extra leading axes, vmap.

Their gradients are checked by the registry (tests/test_gradients.py, ``hw verify``).
Bad arguments of every op: tests/test_ops_bad_arguments.py.
"""
from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hw import ops
from helpers import normal, random_labels


LOGITS = normal(3, (4, 5))
INT_LABELS = jnp.array([0, 1, 4, 2], jnp.int32)
SCORES = normal(4, (4,))
BIN_LABELS = jnp.array([0, 1, 1, 0], jnp.int32)


def test_shape_error_raises_at_trace_time_under_jit():
  with pytest.raises(ValueError, match="`labels`"):
    jax.jit(ops.softmax_cross_entropy)(LOGITS, INT_LABELS[:3])


def test_label_values_are_checked_only_when_concrete():
  # Under jit the labels are abstract, so an out-of-range label cannot be detected.
  bad = INT_LABELS.at[0].set(7)
  jax.jit(ops.softmax_cross_entropy)(LOGITS, bad)
  jax.jit(ops.hinge_loss)(SCORES, BIN_LABELS.at[0].set(3))
  # Labels closed over by a jitted function are concrete, so they are still checked.
  with pytest.raises(ValueError, match="`labels`"):
    jax.jit(lambda z: ops.softmax_cross_entropy(z, bad))(LOGITS)
  bad_binary = BIN_LABELS.at[0].set(3)
  with pytest.raises(ValueError, match="`labels`"):
    jax.jit(lambda s: ops.logistic_loss(s, bad_binary))(SCORES)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_output_dtype_matches_input_dtype(dtype):
  with jax.enable_x64(dtype == "float64"):
    x = normal(0, (6, 3), np.dtype(dtype))
    w = normal(1, (3, 4), np.dtype(dtype))
    labels = random_labels(3, (6,), 4)
    binary = labels % 2
    outputs = jax.eval_shape(lambda: {
        "softmax_cross_entropy": ops.softmax_cross_entropy(x @ w, labels),
        "logistic_loss": ops.logistic_loss(x[:, 0], binary),
        "hinge_loss": ops.hinge_loss(x[:, 0], binary, reduction="none"),
        "squared_error": ops.squared_error(x, 2 * x),
    })
  for name, out in outputs.items():
    assert out.dtype == np.dtype(dtype), name
  chex.assert_shape(outputs["hinge_loss"], (6,))
  chex.assert_shape([outputs[k] for k in ("softmax_cross_entropy", "logistic_loss",
                                          "squared_error")], ())


class LossTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_hinge_subgradient_is_zero_exactly_at_the_hinge(self):
    # t*s = 1 exactly: on the hinge, the subgradient is 0; just inside it is -t.
    grad = self.variant(jax.grad(
        lambda s: ops.hinge_loss(s, jnp.array([1, -1, 1]), reduction="sum")))
    np.testing.assert_array_equal(grad(jnp.array([1.0, -1.0, 0.5])), [0.0, 0.0, -1.0])

  @chex.variants(with_jit=True, without_jit=True)
  def test_losses_are_stable_for_extreme_inputs(self):
    scores = jnp.array([-1e4, 1e4, -1e4, 1e4], jnp.float32)
    labels = jnp.array([1, 1, 0, 0])
    loss, grad = self.variant(jax.value_and_grad(
        lambda s: ops.logistic_loss(s, labels, reduction="sum")))(scores)
    np.testing.assert_allclose(loss, 2e4, rtol=1e-6)
    np.testing.assert_allclose(grad, [-1.0, 0.0, 0.0, 1.0])
    logits = jnp.array([[1e4, 0.0, -1e4]], jnp.float32)
    loss, grad = self.variant(jax.value_and_grad(ops.softmax_cross_entropy))(
        logits, jnp.array([1]))
    np.testing.assert_allclose(loss, 1e4, rtol=1e-6)
    np.testing.assert_allclose(grad, [[1.0, -1.0, 0.0]])

  @chex.variants(with_jit=True, without_jit=True)
  def test_softmax_cross_entropy_accepts_extra_leading_axes(self):
    logits = normal(5, (2, 3, 4))
    labels = random_labels(6, (2, 3), 4)
    losses = self.variant(lambda z, y: ops.softmax_cross_entropy(z, y, reduction="none"))
    chex.assert_trees_all_close(losses(logits, labels),
                                losses(logits.reshape(6, 4), labels.reshape(6)).reshape(2, 3),
                                rtol=1e-6)
    grad = self.variant(jax.grad(ops.softmax_cross_entropy))
    chex.assert_trees_all_close(grad(logits, labels).reshape(6, 4),
                                grad(logits.reshape(6, 4), labels.reshape(6)), rtol=1e-6)


def test_labels_get_no_cotangent():
  _, pullback = jax.vjp(ops.softmax_cross_entropy, LOGITS, INT_LABELS)
  d_logits, d_labels = pullback(jnp.float32(1.0))
  chex.assert_shape(d_logits, LOGITS.shape)
  assert d_labels.dtype == jax.dtypes.float0
  for loss in (ops.logistic_loss, ops.hinge_loss):
    _, pullback = jax.vjp(loss, SCORES, BIN_LABELS)
    assert pullback(jnp.float32(1.0))[1].dtype == jax.dtypes.float0
    # Float labels are accepted but not differentiated either.
    float_labels = BIN_LABELS.astype(jnp.float32) * 2 - 1
    _, pullback = jax.vjp(loss, SCORES, float_labels)
    np.testing.assert_array_equal(pullback(jnp.float32(1.0))[1], 0.0)


def test_zero_and_minus_one_labels_mean_the_same_class():
  for loss in (ops.logistic_loss, ops.hinge_loss):
    np.testing.assert_allclose(loss(SCORES, BIN_LABELS), loss(SCORES, 2 * BIN_LABELS - 1))
    np.testing.assert_allclose(loss(SCORES, BIN_LABELS), loss(SCORES, BIN_LABELS > 0))


def test_vmap_of_squared_error_matches_one_call_per_row():
  xs = normal(30, (3, 5, 4))
  chex.assert_trees_all_close(jax.vmap(ops.squared_error)(xs, 2 * xs),
                              jnp.stack([ops.squared_error(x, 2 * x) for x in xs]),
                              rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("loss, scores, bad", [
    (ops.softmax_cross_entropy, np.zeros((3, 4), np.float32), [0, -1, 2]),
    (ops.softmax_cross_entropy, np.zeros((3, 4), np.float32), [0, 4, 2]),
    (ops.logistic_loss, np.zeros(3, np.float32), [0, 2, 1]),
    (ops.hinge_loss, np.zeros(3, np.float32), [1, -2, 1]),
])
def test_labels_out_of_range_under_jit_give_nan_not_a_wrong_loss(loss, scores, bad):
  jitted = jax.jit(lambda s, y: loss(s, y, reduction="none"))
  per_example = np.asarray(jitted(scores, np.asarray(bad, np.int32)))
  assert np.isnan(per_example[1]) and np.isfinite(per_example[[0, 2]]).all()
  assert np.isnan(jax.jit(lambda s, y: loss(s, y))(scores, np.asarray(bad, np.int32)))
  with pytest.raises(ValueError, match="labels"):
    loss(scores, np.asarray(bad, np.int32))  # concrete labels: refused outright
