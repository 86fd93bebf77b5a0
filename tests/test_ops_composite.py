"""Ops composed into small networks: gradients under ``jit`` and per-example / per-batch
gradients under ``vmap`` equal autodiff of the same network written with plain JAX.

(The per-op gradients are checked by the registry: tests/test_gradients.py.)
"""
from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from hw import ops
from helpers import normal, random_labels


# ------------------------------------------------------------------------------------ MLP

def _plain_cross_entropy(logits, labels):
  logits, labels = (logits[None], labels[None]) if logits.ndim == 1 else (logits, labels)
  return jnp.mean(-jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], 1)[:, 0])


def _mlp_loss(params, x, labels, *, op_set):
  linear, relu, cross_entropy = op_set
  hidden = relu(linear(x, params["w1"], params["b1"]))
  return cross_entropy(linear(hidden, params["w2"], params["b2"]), labels)


HW_OPS = (ops.linear, ops.relu, ops.softmax_cross_entropy)
PLAIN_OPS = (lambda x, w, b: x @ w + b, jax.nn.relu, _plain_cross_entropy)


def _mlp_problem():
  params = {"w1": normal(20, (6, 8)) * 0.5, "b1": normal(21, (8,)) * 0.1,
            "w2": normal(22, (8, 3)) * 0.5, "b2": normal(23, (3,)) * 0.1}
  return params, normal(24, (10, 6)), random_labels(25, (10,), 3)


def test_mlp_grad_under_jit_matches_autodiff():
  params, x, labels = _mlp_problem()
  grad = jax.jit(jax.grad(functools.partial(_mlp_loss, op_set=HW_OPS)))(params, x, labels)
  want = jax.grad(functools.partial(_mlp_loss, op_set=PLAIN_OPS))(params, x, labels)
  chex.assert_trees_all_close(grad, want, rtol=2e-5, atol=1e-6)


def test_mlp_per_example_grads_under_vmap_match_autodiff():
  params, x, labels = _mlp_problem()

  def per_example(op_set):
    grad_fn = jax.grad(functools.partial(_mlp_loss, op_set=op_set))
    return jax.jit(jax.vmap(grad_fn, in_axes=(None, 0, 0)))(params, x, labels)

  got, want = per_example(HW_OPS), per_example(PLAIN_OPS)
  for name in params:
    chex.assert_shape(got[name], (10,) + params[name].shape)
  chex.assert_trees_all_close(got, want, rtol=2e-5, atol=1e-6)


# ------------------------------------------------------------------------------------ CNN

def _lax_conv(x, w, b=0.0, stride=1, padding="VALID"):
  stride = (stride, stride) if isinstance(stride, int) else stride
  if not isinstance(padding, str):
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    padding = [(ph, ph), (pw, pw)]
  y = lax.conv_general_dilated(x, w, stride, padding, dimension_numbers=("NHWC", "HWIO", "NHWC"))
  return y + b


def _lax_max_pool(x):
  return lax.reduce_window(x, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")


def _tiny_cnn(params, x, conv=ops.conv2d, pool=ops.max_pool):
  w1, b1, w2 = params
  h = jnp.maximum(conv(x, w1, b1, padding="SAME"), 0.0)
  h = pool(h)
  h = conv(h, w2, stride=2, padding=1)
  return jnp.sum(ops.adaptive_avg_pool(h, 1) ** 2) if pool is ops.max_pool else jnp.sum(
      jnp.mean(h, axis=(1, 2), keepdims=True) ** 2)


def _lax_tiny_cnn(params, x):
  return _tiny_cnn(params, x, _lax_conv, _lax_max_pool)


def test_cnn_grad_under_jit_and_vmap_matches_autodiff():
  with jax.enable_x64(True):
    # 2 input channels, 6 output channels: shifted-slice forward, im2col backward; 6 input
    # channels: all lax.
    params = (normal(8, (3, 3, 2, 6), np.float64), normal(9, (6,), np.float64),
              normal(10, (3, 3, 6, 5), np.float64))
    xs = normal(11, (3, 2, 6, 6, 2), np.float64)  # 3 independent batches of 2 images
    grad = jax.jit(jax.grad(_tiny_cnn))
    grad_ref = jax.jit(jax.grad(_lax_tiny_cnn))
    chex.assert_trees_all_close(grad(params, xs[0]), grad_ref(params, xs[0]),
                                rtol=1e-10, atol=1e-10)
    per_batch = jax.vmap(grad, in_axes=(None, 0))(params, xs)
    for i in range(xs.shape[0]):
      chex.assert_trees_all_close(jax.tree.map(lambda g: g[i], per_batch),
                                  grad_ref(params, xs[i]), rtol=1e-10, atol=1e-10)
