"""Local sanity tests for the non-convolution ops of hw.ops.

Argument validation, dtype preservation, jit/vmap/grad of a small network, dropout
statistics, label handling, and each hand-written backward rule against autodiff of a
plain jnp expression in float64. (The exhaustive, registry-driven gradient suite lives
elsewhere.)
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hw import ops


def _normal(seed, shape, dtype=np.float32):
  return jnp.asarray(np.random.default_rng(seed).normal(size=shape).astype(dtype))


def _labels(seed, shape, classes):
  return jnp.asarray(np.random.default_rng(seed).integers(0, classes, size=shape), jnp.int32)


# --------------------------------------------------------------------------- validation

X = _normal(0, (4, 3))
W = _normal(1, (3, 2))
B = _normal(2, (2,))
KEY = jax.random.key(0)
LOGITS = _normal(3, (4, 5))
INT_LABELS = jnp.array([0, 1, 4, 2], jnp.int32)
SCORES = _normal(4, (4,))
BIN_LABELS = jnp.array([0, 1, 1, 0], jnp.int32)

BAD_CALLS = {
    "linear x rank 0": (lambda: ops.linear(jnp.float32(1.0), W), "`x`"),
    "linear x int": (lambda: ops.linear(jnp.ones((4, 3), jnp.int32), W), "`x`"),
    "linear w rank": (lambda: ops.linear(X, W[0]), "`w`"),
    "linear w mismatch": (lambda: ops.linear(X, _normal(1, (4, 2))), "`w`"),
    "linear w dtype": (lambda: ops.linear(X, W.astype(jnp.bfloat16)), "`w`"),
    "linear b shape": (lambda: ops.linear(X, W, jnp.ones((3,))), "`b`"),
    "linear b rank": (lambda: ops.linear(X, W, jnp.ones((1, 2))), "`b`"),
    "linear x list": (lambda: ops.linear([[1.0, 2.0, 3.0]], W), "`x`"),
    "relu int": (lambda: ops.relu(jnp.arange(3)), "`x`"),
    "sigmoid int": (lambda: ops.sigmoid(jnp.arange(3)), "`x`"),
    "tanh list": (lambda: ops.tanh([1.0]), "`x`"),
    "softmax rank 0": (lambda: ops.softmax(jnp.float32(1.0)), "`x`"),
    "softmax beta str": (lambda: ops.softmax(X, beta="2"), "`beta`"),
    "softmax beta inf": (lambda: ops.softmax(X, beta=float("inf")), "`beta`"),
    "softmax beta array": (lambda: ops.softmax(X, beta=jnp.float32(2.0)), "`beta`"),
    "dropout rate 1": (lambda: ops.dropout(X, key=KEY, rate=1.0, train=True), "`rate`"),
    "dropout rate <0": (lambda: ops.dropout(X, key=KEY, rate=-0.1, train=True), "`rate`"),
    "dropout rate bool": (lambda: ops.dropout(X, key=KEY, rate=True, train=True), "`rate`"),
    "dropout train int": (lambda: ops.dropout(X, key=KEY, rate=0.5, train=1), "`train`"),
    "dropout train array": (lambda: ops.dropout(X, key=KEY, rate=0.5, train=jnp.bool_(True)),
                            "`train`"),
    "dropout key None": (lambda: ops.dropout(X, key=None, rate=0.5, train=True), "`key`"),
    "dropout key float": (lambda: ops.dropout(X, key=jnp.ones(2), rate=0.5, train=True),
                          "`key`"),
    "dropout key batch": (lambda: ops.dropout(X, key=jax.random.split(KEY), rate=0.5,
                                              train=True), "`key`"),
    "dropout x int": (lambda: ops.dropout(jnp.arange(3), key=KEY, rate=0.5, train=True), "`x`"),
    "batch_norm x rank 1": (lambda: ops.batch_norm(B, B, B), "`x`"),
    "batch_norm gamma shape": (lambda: ops.batch_norm(X, B, jnp.ones(3)), "`gamma`"),
    "batch_norm beta shape": (lambda: ops.batch_norm(X, jnp.ones(3), B), "`beta`"),
    "batch_norm gamma dtype": (lambda: ops.batch_norm(X, jnp.ones(3, jnp.bfloat16),
                                                      jnp.ones(3)), "`gamma`"),
    "batch_norm eps negative": (lambda: ops.batch_norm(X, jnp.ones(3), jnp.ones(3), eps=-1.0),
                                "`eps`"),
    "sce labels float": (lambda: ops.softmax_cross_entropy(LOGITS, INT_LABELS * 1.0),
                         "`labels`"),
    "sce labels shape": (lambda: ops.softmax_cross_entropy(LOGITS, INT_LABELS[:3]), "`labels`"),
    "sce labels rank": (lambda: ops.softmax_cross_entropy(LOGITS, INT_LABELS[:, None]),
                        "`labels`"),
    "sce labels too big": (lambda: ops.softmax_cross_entropy(LOGITS, INT_LABELS.at[0].set(5)),
                           "`labels`"),
    "sce labels negative": (lambda: ops.softmax_cross_entropy(LOGITS, INT_LABELS.at[0].set(-1)),
                            "`labels`"),
    "sce logits int": (lambda: ops.softmax_cross_entropy(INT_LABELS[:, None], INT_LABELS),
                       "`logits`"),
    "sce reduction": (lambda: ops.softmax_cross_entropy(LOGITS, INT_LABELS, reduction="avg"),
                      "`reduction`"),
    "logistic labels shape": (lambda: ops.logistic_loss(SCORES, BIN_LABELS[:, None]),
                              "`labels`"),
    "logistic labels 2": (lambda: ops.logistic_loss(SCORES, BIN_LABELS.at[0].set(2)),
                          "`labels`"),
    "logistic labels mixed": (lambda: ops.logistic_loss(SCORES, jnp.array([-1, 0, 1, 1])),
                              "`labels`"),
    "logistic labels 0.5": (lambda: ops.logistic_loss(SCORES, jnp.full(4, 0.5)), "`labels`"),
    "logistic scores int": (lambda: ops.logistic_loss(BIN_LABELS, BIN_LABELS), "`scores`"),
    "logistic reduction": (lambda: ops.logistic_loss(SCORES, BIN_LABELS, reduction=None),
                           "`reduction`"),
    "hinge labels shape": (lambda: ops.hinge_loss(SCORES, BIN_LABELS[:3]), "`labels`"),
    "hinge labels -2": (lambda: ops.hinge_loss(SCORES, jnp.array([-2, 1, 1, -1])), "`labels`"),
    "hinge reduction": (lambda: ops.hinge_loss(SCORES, BIN_LABELS, reduction="max"),
                        "`reduction`"),
    "squared_error shape": (lambda: ops.squared_error(X, X[:2]), "`target`"),
    "squared_error dtype": (lambda: ops.squared_error(X, X.astype(jnp.bfloat16)), "`target`"),
    "squared_error int": (lambda: ops.squared_error(INT_LABELS, INT_LABELS), "`pred`"),
}


@pytest.mark.parametrize("case", sorted(BAD_CALLS))
def test_bad_argument_raises_value_error_naming_it(case):
  call, name = BAD_CALLS[case]
  with pytest.raises(ValueError, match=name):
    call()


def test_shape_errors_raise_at_trace_time_under_jit():
  with pytest.raises(ValueError, match="`labels`"):
    jax.jit(ops.softmax_cross_entropy)(LOGITS, INT_LABELS[:3])
  with pytest.raises(ValueError, match="`w`"):
    jax.jit(ops.linear)(X, _normal(1, (4, 2)))
  with pytest.raises(ValueError, match="`rate`"):
    jax.jit(functools.partial(ops.dropout, key=KEY, rate=1.5, train=True))(X)


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


def test_dropout_key_may_be_omitted_when_no_mask_is_drawn():
  np.testing.assert_array_equal(ops.dropout(X, key=None, rate=0.5, train=False), X)
  np.testing.assert_array_equal(ops.dropout(X, key=None, rate=0.0, train=True), X)


# ------------------------------------------------------------------------------- dtypes

def _call_every_op(dtype):
  """name -> output of each op on small inputs of ``dtype``."""
  x = _normal(0, (6, 3), dtype)
  w = _normal(1, (3, 4), dtype)
  b = _normal(2, (4,), dtype)
  labels = _labels(3, (6,), 4)
  binary = labels % 2
  return {
      "linear": ops.linear(x, w, b),
      "linear_no_bias": ops.linear(x, w),
      "relu": ops.relu(x),
      "sigmoid": ops.sigmoid(x),
      "tanh": ops.tanh(x),
      "softmax": ops.softmax(x, beta=2.0),
      "dropout": ops.dropout(x, key=KEY, rate=0.3, train=True),
      "batch_norm": ops.batch_norm(x, w[:, 0], w[:, 1]),
      "softmax_cross_entropy": ops.softmax_cross_entropy(x @ w, labels),
      "logistic_loss": ops.logistic_loss(x[:, 0], binary),
      "hinge_loss": ops.hinge_loss(x[:, 0], binary, reduction="none"),
      "squared_error": ops.squared_error(x, 2 * x),
  }


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_output_dtype_matches_input_dtype(dtype):
  with jax.enable_x64(dtype == "float64"):
    # Output dtypes are fixed at trace time, so abstract evaluation suffices.
    outputs = jax.eval_shape(lambda: _call_every_op(np.dtype(dtype)))
  for name, out in outputs.items():
    assert out.dtype == np.dtype(dtype), name


# ------------------------------------------------ backward rules vs autodiff (float64)

def _ref_batch_norm(x, gamma, beta, eps=1e-5):
  mean = x.mean(0)
  var = ((x - mean) ** 2).mean(0)
  return gamma * (x - mean) / jnp.sqrt(var + eps) + beta


def _ref_softmax_cross_entropy(logits, labels, reduction):
  losses = -jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], 1)[:, 0]
  return {"mean": jnp.mean, "sum": jnp.sum, "none": lambda v: v}[reduction](losses)


def _signs(labels):
  return jnp.where(labels > 0, 1.0, -1.0)


def _vjp_cases():
  """name -> (op, plain-jnp reference, float inputs); labels are closed over."""
  x = _normal(10, (5, 4), np.float64)
  w = _normal(11, (4, 3), np.float64)
  b = _normal(12, (3,), np.float64)
  x3 = _normal(13, (2, 5, 4), np.float64)  # leading axes to flatten
  gamma = _normal(14, (4,), np.float64)
  beta = _normal(15, (4,), np.float64)
  labels = _labels(16, (5,), 4)
  pm1 = 2 * (labels % 2) - 1
  scores = _normal(17, (5,), np.float64)
  cases = {
      "linear": (ops.linear, lambda x, w, b: x @ w + b, (x3, w, b)),
      "linear_no_bias": (ops.linear, lambda x, w: x @ w, (x, w)),
      "relu": (ops.relu, jax.nn.relu, (x,)),
      "sigmoid": (ops.sigmoid, lambda x: 1 / (1 + jnp.exp(-x)), (x,)),
      "tanh": (ops.tanh, jnp.tanh, (x,)),
      "softmax": (functools.partial(ops.softmax, beta=1.7),
                  lambda x: jnp.exp(1.7 * x) / jnp.exp(1.7 * x).sum(-1, keepdims=True), (x,)),
      "batch_norm": (ops.batch_norm, _ref_batch_norm, (x, gamma, beta)),
      "batch_norm_4d": (ops.batch_norm,
                        lambda x, g, b: _ref_batch_norm(x.reshape(-1, 4), g, b).reshape(x.shape),
                        (x3.reshape(2, 5, 1, 4), gamma, beta)),
      "squared_error": (ops.squared_error, lambda p, t: 0.5 * jnp.sum((p - t) ** 2),
                        (x, x * 0.5 + 1)),
  }
  for reduction in ("mean", "sum", "none"):
    reduce = {"mean": jnp.mean, "sum": jnp.sum, "none": lambda v: v}[reduction]
    cases[f"softmax_cross_entropy_{reduction}"] = (
        lambda z, r=reduction: ops.softmax_cross_entropy(z, labels, reduction=r),
        lambda z, r=reduction: _ref_softmax_cross_entropy(z, labels, r), (x,))
    cases[f"logistic_{reduction}"] = (
        lambda s, r=reduction: ops.logistic_loss(s, labels % 2, reduction=r),
        lambda s, red=reduce: red(jnp.logaddexp(0.0, -_signs(labels % 2) * s)), (scores,))
    cases[f"hinge_{reduction}"] = (
        lambda s, r=reduction: ops.hinge_loss(s, pm1, reduction=r),
        lambda s, red=reduce: red(jnp.maximum(0.0, 1 - pm1 * s)), (scores,))
  return cases


VJP_CASES = ("linear", "linear_no_bias", "relu", "sigmoid", "tanh", "softmax", "batch_norm",
             "batch_norm_4d", "squared_error") + tuple(
                 f"{loss}_{reduction}" for loss in ("softmax_cross_entropy", "logistic", "hinge")
                 for reduction in ("mean", "sum", "none"))


@pytest.mark.parametrize("name", VJP_CASES)
def test_backward_rule_matches_autodiff_of_plain_jnp_in_float64(name):
  with jax.enable_x64(True):
    op, reference, inputs = _vjp_cases()[name]
    cotangent = _normal(99, jax.eval_shape(op, *inputs).shape, np.float64)

    @jax.jit
    def outputs_and_input_cotangents(*inputs):
      out, pullback = jax.vjp(op, *inputs)
      ref_out, ref_pullback = jax.vjp(reference, *inputs)
      return out, ref_out, pullback(cotangent), ref_pullback(cotangent)

    out, ref_out, got, want = outputs_and_input_cotangents(*inputs)
  np.testing.assert_allclose(out, ref_out, rtol=1e-12, atol=1e-12)
  assert len(got) == len(want) == len(inputs)
  for got_i, want_i in zip(got, want):
    assert got_i.dtype == want_i.dtype == np.float64
    np.testing.assert_allclose(got_i, want_i, rtol=1e-10, atol=1e-12)


def test_kinks_take_the_documented_subgradient():
  zero_grad = jax.grad(lambda x: ops.relu(x).sum())(jnp.array([-1.0, 0.0, 2.0]))
  np.testing.assert_array_equal(zero_grad, [0.0, 0.0, 1.0])
  # t*s = 1 exactly: on the hinge, the subgradient is 0; just inside it is -t.
  hinge_grad = jax.grad(lambda s: ops.hinge_loss(s, jnp.array([1, -1, 1]), reduction="sum"))(
      jnp.array([1.0, -1.0, 0.5]))
  np.testing.assert_array_equal(hinge_grad, [0.0, 0.0, -1.0])


def test_losses_are_stable_for_extreme_inputs():
  scores = jnp.array([-1e4, 1e4, -1e4, 1e4], jnp.float32)
  labels = jnp.array([1, 1, 0, 0])
  loss, grad = jax.value_and_grad(
      lambda s: ops.logistic_loss(s, labels, reduction="sum"))(scores)
  np.testing.assert_allclose(loss, 2e4, rtol=1e-6)
  np.testing.assert_allclose(grad, [-1.0, 0.0, 0.0, 1.0])
  logits = jnp.array([[1e4, 0.0, -1e4]], jnp.float32)
  loss, grad = jax.value_and_grad(ops.softmax_cross_entropy)(logits, jnp.array([1]))
  np.testing.assert_allclose(loss, 1e4, rtol=1e-6)
  np.testing.assert_allclose(grad, [[1.0, -1.0, 0.0]])


# ------------------------------------------------------------------------------- labels

def test_labels_get_no_cotangent():
  _, pullback = jax.vjp(ops.softmax_cross_entropy, LOGITS, INT_LABELS)
  d_logits, d_labels = pullback(jnp.float32(1.0))
  assert d_logits.shape == LOGITS.shape
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


def test_softmax_cross_entropy_accepts_extra_leading_axes():
  logits = _normal(5, (2, 3, 4))
  labels = _labels(6, (2, 3), 4)
  np.testing.assert_allclose(
      ops.softmax_cross_entropy(logits, labels, reduction="none"),
      ops.softmax_cross_entropy(logits.reshape(6, 4), labels.reshape(6),
                                reduction="none").reshape(2, 3), rtol=1e-6)
  grad = jax.grad(ops.softmax_cross_entropy)(logits, labels)
  flat_grad = jax.grad(ops.softmax_cross_entropy)(logits.reshape(6, 4), labels.reshape(6))
  np.testing.assert_allclose(grad.reshape(6, 4), flat_grad, rtol=1e-6)


# ------------------------------------------------------------ composite: jit, vmap, grad

def _mlp_loss(params, x, labels, *, op_set):
  linear, relu, cross_entropy = op_set
  hidden = relu(linear(x, params["w1"], params["b1"]))
  return cross_entropy(linear(hidden, params["w2"], params["b2"]), labels)


HW_OPS = (ops.linear, ops.relu, ops.softmax_cross_entropy)
REF_OPS = (lambda x, w, b: x @ w + b, jax.nn.relu,
           lambda z, y: _ref_softmax_cross_entropy(z[None] if z.ndim == 1 else z,
                                                   y[None] if y.ndim == 0 else y, "mean"))


def _mlp_problem():
  params = {"w1": _normal(20, (6, 8)) * 0.5, "b1": _normal(21, (8,)) * 0.1,
            "w2": _normal(22, (8, 3)) * 0.5, "b2": _normal(23, (3,)) * 0.1}
  return params, _normal(24, (10, 6)), _labels(25, (10,), 3)


def test_grad_of_composite_under_jit_matches_autodiff():
  params, x, labels = _mlp_problem()
  grad = jax.jit(jax.grad(functools.partial(_mlp_loss, op_set=HW_OPS)))(params, x, labels)
  want = jax.grad(functools.partial(_mlp_loss, op_set=REF_OPS))(params, x, labels)
  for name in params:
    np.testing.assert_allclose(grad[name], want[name], rtol=2e-5, atol=1e-6, err_msg=name)


def test_per_example_grads_under_vmap_match_autodiff():
  params, x, labels = _mlp_problem()

  def per_example(op_set):
    grad_fn = jax.grad(functools.partial(_mlp_loss, op_set=op_set))
    return jax.jit(jax.vmap(grad_fn, in_axes=(None, 0, 0)))(params, x, labels)

  got, want = per_example(HW_OPS), per_example(REF_OPS)
  for name in params:
    assert got[name].shape == (10,) + params[name].shape
    np.testing.assert_allclose(got[name], want[name], rtol=2e-5, atol=1e-6, err_msg=name)


def test_vmap_of_each_op_matches_the_batched_call():
  xs = _normal(30, (3, 5, 4))
  gamma, beta = _normal(31, (4,)), _normal(32, (4,))
  vmapped = {
      "sigmoid": (jax.vmap(ops.sigmoid)(xs), ops.sigmoid(xs)),
      "softmax": (jax.vmap(functools.partial(ops.softmax, beta=0.5))(xs),
                  ops.softmax(xs, beta=0.5)),
      "batch_norm": (jax.vmap(ops.batch_norm, in_axes=(0, None, None))(xs, gamma, beta),
                     jnp.stack([ops.batch_norm(x, gamma, beta) for x in xs])),
      "squared_error": (jax.vmap(ops.squared_error)(xs, 2 * xs),
                        jnp.stack([ops.squared_error(x, 2 * x) for x in xs])),
  }
  for name, (got, want) in vmapped.items():
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7, err_msg=name)


# ------------------------------------------------------------------------------ dropout

def test_dropout_keeps_about_one_minus_rate_and_scales_kept_units():
  x = jnp.ones((200, 100), jnp.float32)
  for rate in (0.2, 0.5, 0.8):
    y = ops.dropout(x, key=jax.random.key(1), rate=rate, train=True)
    kept = y != 0
    # 20000 Bernoulli draws: the standard error of the kept fraction is below 0.0036.
    assert abs(float(kept.mean()) - (1 - rate)) < 0.02, rate
    np.testing.assert_allclose(y[kept], 1 / (1 - rate), rtol=1e-6)


def test_dropout_same_key_same_mask_and_gradient_uses_it():
  x = _normal(40, (50, 20))
  key = jax.random.key(7)
  apply = functools.partial(ops.dropout, key=key, rate=0.5, train=True)
  first, second = apply(x), jax.jit(apply)(x)
  np.testing.assert_array_equal(first, second)
  other = ops.dropout(x, key=jax.random.key(8), rate=0.5, train=True)
  assert not np.array_equal(first != 0, other != 0)
  grad = jax.grad(lambda v: (apply(v) * 3.0).sum())(x)
  np.testing.assert_allclose(grad, jnp.where(first != 0, 6.0, 0.0))
  legacy = ops.dropout(x, key=jax.random.PRNGKey(7), rate=0.5, train=True)
  assert legacy.shape == x.shape


def test_dropout_is_identity_at_eval_and_vmaps_over_keys():
  x = _normal(41, (4, 30))
  np.testing.assert_array_equal(ops.dropout(x, key=KEY, rate=0.9, train=False), x)
  grad = jax.grad(lambda v: ops.dropout(v, key=KEY, rate=0.9, train=False).sum())(x)
  np.testing.assert_array_equal(grad, 1.0)
  keys = jax.random.split(KEY, 4)
  batched = jax.vmap(lambda v, k: ops.dropout(v, key=k, rate=0.5, train=True))(x, keys)
  rows = [ops.dropout(v, key=k, rate=0.5, train=True) for v, k in zip(x, keys)]
  np.testing.assert_allclose(batched, jnp.stack(rows), rtol=1e-6)


def test_dropout_mask_does_not_depend_on_dtype_or_64_bit_mode():
  x32 = jnp.ones((8, 16), jnp.float32)
  mask32 = ops.dropout(x32, key=KEY, rate=0.4, train=True) != 0
  with jax.enable_x64(True):
    mask64 = ops.dropout(jnp.ones((8, 16), jnp.float64), key=KEY, rate=0.4, train=True) != 0
  np.testing.assert_array_equal(mask32, mask64)


def test_dropout_mask_units_look_independent():
  # The hashed mask: keep fraction 1 - rate, no correlation between neighbouring units or
  # between the masks of two keys (each |corr| ~ N(0, 1/n), n = 20,000 here).
  keep = [np.asarray(ops.dropout(jnp.ones((100, 200)), key=jax.random.key(s), rate=0.3,
                                 train=True) != 0, np.float64).ravel() for s in (3, 4)]
  assert abs(keep[0].mean() - 0.7) < 0.02
  for a, b in ((keep[0][:-1], keep[0][1:]), (keep[0][:-200], keep[0][200:]),
               (keep[0], keep[1])):
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.04
