"""Independent reference implementations of every op in ``hw.ops``.

Each reference is written with plain JAX primitives (``jnp``, ``jax.nn``,
``lax.conv_general_dilated``, ``lax.reduce_window``, ...) and is differentiated by
ordinary autodiff. Nothing here imports ``hw.ops``: the references are what the
hand-written backward rules are checked against, so they must not share code with them.

Conventions at non-differentiable points (they are the contract of ``hw.ops``):
  * ``relu'(0) = 0`` and the hinge loss has gradient 0 at margin exactly 1
    (``jnp.where`` routes no gradient to the unselected branch, whereas
    ``jnp.maximum`` would split it 1/2 : 1/2).
  * Max pooling routes the gradient to the FIRST arg-max in row-major window order.
    ``max_pool`` gets this from autodiff of ``lax.reduce_window(lax.max)``;
    ``adaptive_max_pool`` from a one-hot of ``jnp.argmax`` (first occurrence).
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import lax


def linear(x, w, b=None):
  """y = x @ w + b, contracting the last axis of x with the first of w."""
  y = jnp.einsum("...i,io->...o", x, w)
  return y if b is None else y + b


def relu(x):
  return jnp.where(x > 0, x, jnp.zeros_like(x))


def sigmoid(x):
  return jax.nn.sigmoid(x)


def tanh(x):
  return jnp.tanh(x)


def softmax(x, *, beta=1.0):
  z = beta * x
  z = z - lax.stop_gradient(jnp.max(z, axis=-1, keepdims=True))
  e = jnp.exp(z)
  return e / jnp.sum(e, axis=-1, keepdims=True)


def dropout_mask(key, rate, shape):
  """The keep-mask of inverted dropout, written out from its definition in ``hw.ops``.

  Seeds ``(s0, s1) = jax.random.bits(key, (2,), uint32)``; the unit at multi-index
  ``(i_0, ..., i_k)`` has the row-major flat index ``i = Σ_d i_d · stride_d`` and is kept
  iff ``mix(mix(i + s0) XOR s1) < min(round((1 − rate)·2³²), 2³² − 1)``, with ``mix`` the
  lowbias32 finaliser (xorshift 16, × 0x7feb352d, xorshift 15, × 0x846ca68b, xorshift 16),
  all arithmetic modulo 2³². Unsigned 32-bit throughout, so a key gives the same mask in
  float32 and float64 runs.
  """
  u32 = jnp.uint32
  s0, s1 = jax.random.bits(key, (2,), u32)
  flat = jnp.zeros(shape, u32)
  stride = 1
  for axis in reversed(range(len(shape))):
    along = jnp.arange(shape[axis], dtype=u32) * u32(stride)
    flat = flat + along.reshape((-1,) + (1,) * (len(shape) - 1 - axis))
    stride *= shape[axis]

  def mix(v):
    v = jnp.bitwise_xor(v, jnp.right_shift(v, u32(16)))
    v = v * u32(0x7FEB352D)
    v = jnp.bitwise_xor(v, jnp.right_shift(v, u32(15)))
    v = v * u32(0x846CA68B)
    return jnp.bitwise_xor(v, jnp.right_shift(v, u32(16)))

  threshold = min(int(round((1.0 - rate) * 4294967296.0)), 4294967295)
  return mix(jnp.bitwise_xor(mix(flat + s0), s1)) < u32(threshold)


def dropout(x, *, key, rate, train):
  if not train or rate == 0.0:
    return x
  keep = dropout_mask(key, rate, x.shape)
  return jnp.where(keep, x / (1.0 - rate), jnp.zeros_like(x))


def batch_norm(x, gamma, beta, *, eps=1e-5):
  """Training-mode batch norm: statistics over every axis but the last (biased var)."""
  axes = tuple(range(x.ndim - 1))
  n = math.prod(x.shape[:-1])
  mean = jnp.sum(x, axis=axes) / n
  centred = x - mean
  var = jnp.sum(centred * centred, axis=axes) / n
  return gamma * centred / jnp.sqrt(var + eps) + beta


def conv1d(x, w, b=None):
  y = lax.conv_general_dilated(x, w, window_strides=(1,), padding="VALID",
                               dimension_numbers=("NWC", "WIO", "NWC"))
  return y if b is None else y + b


def _pair(value):
  """An int or a pair as a pair."""
  return (value, value) if isinstance(value, int) else tuple(value)


def conv2d(x, w, b=None, *, stride=1, padding="VALID"):
  """Stride and padding: an int or a pair; padding also "VALID" or "SAME"."""
  if not isinstance(padding, str):
    ph, pw = _pair(padding)
    padding = ((ph, ph), (pw, pw))
  y = lax.conv_general_dilated(x, w, window_strides=_pair(stride), padding=padding,
                               dimension_numbers=("NHWC", "HWIO", "NHWC"))
  return y if b is None else y + b


def max_pool(x, window=2, stride=None):
  """Window and stride: an int or a pair; stride None means the window."""
  kh, kw = _pair(window)
  sh, sw = (kh, kw) if stride is None else _pair(stride)
  return lax.reduce_window(x, -jnp.inf, lax.max, (1, kh, kw, 1), (1, sh, sw, 1), "VALID")


def avg_pool(x, window=2, stride=None):
  kh, kw = _pair(window)
  sh, sw = (kh, kw) if stride is None else _pair(stride)
  total = lax.reduce_window(x, 0.0, lax.add, (1, kh, kw, 1), (1, sh, sw, 1), "VALID")
  return total / (kh * kw)


def adaptive_bounds(size: int, out: int) -> list[tuple[int, int]]:
  """Window i spans [floor(i*size/out), ceil((i+1)*size/out)), as PyTorch."""
  return [((i * size) // out, -((-(i + 1) * size) // out)) for i in range(out)]


def _adaptive(x, output_size, reduce_window):
  oh, ow = _pair(output_size)
  rows = []
  for r0, r1 in adaptive_bounds(x.shape[1], oh):
    cols = []
    for c0, c1 in adaptive_bounds(x.shape[2], ow):
      window = x[:, r0:r1, c0:c1, :]
      cols.append(reduce_window(window.reshape(x.shape[0], -1, x.shape[3])))
    rows.append(jnp.stack(cols, axis=1))
  return jnp.stack(rows, axis=1)


def adaptive_avg_pool(x, output_size):
  return _adaptive(x, output_size, lambda flat: jnp.mean(flat, axis=1))


def _first_argmax_value(flat):
  """max over axis 1, differentiated only through the first arg-max (row-major)."""
  index = jnp.argmax(flat, axis=1)
  one_hot = jax.nn.one_hot(index, flat.shape[1], axis=1, dtype=flat.dtype)
  return jnp.sum(one_hot * flat, axis=1)


def adaptive_max_pool(x, output_size):
  return _adaptive(x, output_size, _first_argmax_value)


def _reduce(values, reduction):
  if reduction == "mean":
    return jnp.mean(values)
  if reduction == "sum":
    return jnp.sum(values)
  return values


def _signed(labels, dtype):
  """Labels in {0,1} or {-1,+1} as targets t in {-1,+1} (a 0 counts as negative)."""
  return jnp.where(labels > 0, 1.0, -1.0).astype(dtype)


def softmax_cross_entropy(logits, labels, *, reduction="mean"):
  shifted = logits - lax.stop_gradient(jnp.max(logits, axis=-1, keepdims=True))
  log_probs = shifted - jnp.log(jnp.sum(jnp.exp(shifted), axis=-1, keepdims=True))
  one_hot = jax.nn.one_hot(labels, logits.shape[-1], dtype=logits.dtype)
  return _reduce(-jnp.sum(one_hot * log_probs, axis=-1), reduction)


def logistic_loss(scores, labels, *, reduction="mean"):
  """-log sigmoid(t*s) = log(1 + exp(-t*s))."""
  t = _signed(labels, scores.dtype)
  return _reduce(jnp.logaddexp(0.0, -t * scores), reduction)


def hinge_loss(scores, labels, *, reduction="mean"):
  margin = 1.0 - _signed(labels, scores.dtype) * scores
  return _reduce(jnp.where(margin > 0, margin, jnp.zeros_like(margin)), reduction)


def squared_error(pred, target):
  diff = pred - target
  return 0.5 * jnp.sum(diff * diff)
