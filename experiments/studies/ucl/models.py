"""The four models of the UCL study and the compiled programs that train and evaluate them.

Every layer is an ``hw.ops`` call, so ``jax.grad`` of :func:`loss` runs their hand-written
``custom_vjp`` rules; every update is plain SGD.

Speed (small nets at batch 100 are overhead-bound on a CPU):

- runs of one model with the same number of epochs and the same reduction form a group,
  trained together as "members" of one compiled program, each with its own learning rate
  and seed. The MLPs (models 1-3) are ``jax.vmap``-ed over the members inside a jitted
  ``lax.scan`` over the steps between two evaluations. The conv net (model 4) is not:
  ``vmap`` turns its convolutions into grouped convolutions, about 7× slower per member
  on XLA:CPU, and XLA:CPU runs convolutions 2-3× slower inside a ``scan``'s while loop,
  so model 4 makes one jitted call per step, computing every member in that call.
- on the CPU every program is compiled without XLA's YNN library fusion
  (:data:`CPU_COMPILER_OPTIONS`): it fuses the first convolution with the max pool into one
  call that runs about 3× slower than the two kernels apart (model 4's forward pass: 9.3
  vs 3.5 ms CPU per 100 images, measured on the 2-core CPU).
"""
from __future__ import annotations

import functools
import math
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from hw import metrics, ops
from hw.engine import randomness

# XLA:CPU's YNN library fusion merges model 4's first convolution and max pool into one
# call that runs ~3x slower than the two kernels apart; an empty list turns it off.
CPU_COMPILER_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": ""}

# ----------------------------------------------------------------------------- models

def layer_shapes(model: int) -> tuple[tuple[int, ...], ...]:
  """Weight shapes of model 1-4 (dense (in, out); conv HWIO)."""
  if model == 1:
    return ((784, 10),)
  if model == 2:
    return ((784, 32), (32, 10))
  if model == 3:
    return ((784, 32), (32, 32), (32, 10))
  if model == 4:
    return ((3, 3, 1, 8), (3, 3, 8, 8), (7 * 7 * 8, 32), (32, 10))
  raise ValueError(f"`model` must be 1, 2, 3 or 4, got {model!r}")


def _fans(shape: Sequence[int]) -> tuple[int, int]:
  """(fan_in, fan_out) of a dense (in, out) or conv HWIO weight: a conv kernel's fans
  include its receptive field (kh·kw·in, kh·kw·out), as TensorFlow's initializers."""
  receptive = math.prod(shape[:-2])
  return receptive * shape[-2], receptive * shape[-1]


def xavier_uniform(key: jax.Array, shape: Sequence[int]) -> jax.Array:
  """Glorot/Xavier uniform: U(±√(6 / (fan_in + fan_out))), variance 2 / (fan_in + fan_out)."""
  fan_in, fan_out = _fans(shape)
  limit = math.sqrt(6.0 / (fan_in + fan_out))
  return jax.random.uniform(key, tuple(shape), jnp.float32, -limit, limit)


def xavier_normal(key: jax.Array, shape: Sequence[int]) -> jax.Array:
  """Glorot/Xavier normal: N(0, 2 / (fan_in + fan_out)) (Glorot & Bengio's variance,
  not truncated)."""
  fan_in, fan_out = _fans(shape)
  return math.sqrt(2.0 / (fan_in + fan_out)) * jax.random.normal(key, tuple(shape), jnp.float32)


def he_normal(key: jax.Array, shape: Sequence[int]) -> jax.Array:
  """He (Kaiming) normal: N(0, 2 / fan_in) (He et al. 2015, for ReLU layers; not truncated)."""
  fan_in, _ = _fans(shape)
  return math.sqrt(2.0 / fan_in) * jax.random.normal(key, tuple(shape), jnp.float32)


TRUNCATED_STDDEV = 0.1


def truncated_normal(key: jax.Array, shape: Sequence[int]) -> jax.Array:
  """``tf.truncated_normal(shape, stddev=0.1)`` of the 2017 TensorFlow experts' tutorial:
  N(0, 0.1²) redrawn outside ±2σ, so every value lies in [-0.2, 0.2] and the standard
  deviation is 0.1 · 0.8796 ≈ 0.088."""
  return TRUNCATED_STDDEV * jax.random.truncated_normal(key, -2.0, 2.0, tuple(shape),
                                                        jnp.float32)


def zeros(key: jax.Array, shape: Sequence[int]) -> jax.Array:
  """All-zero weights (the 2017 TensorFlow beginners' tutorial's softmax regression)."""
  del key
  return jnp.zeros(tuple(shape), jnp.float32)


# name -> (weight initialiser, the constant every bias starts at)
INITIALISATIONS: dict[str, tuple[Callable[[jax.Array, Sequence[int]], jax.Array], float]] = {
    "xavier_uniform": (xavier_uniform, 0.0),
    "xavier_normal": (xavier_normal, 0.0),
    "zeros": (zeros, 0.0),
    "truncated_normal": (truncated_normal, 0.1),
    "he": (he_normal, 0.0),
}


def symmetry_problem(model: int, init: str) -> str | None:
  """Why ``init`` cannot train ``model`` (None when it can).

  With every weight and bias zero, each hidden layer outputs h = 0 (0·x + 0, through ReLU
  or max-pool), so the next layer's weight gradient hᵀ·dZ and the gradient reaching h,
  dZ·Wᵀ, are both zero: no hidden unit ever moves and only the output bias learns (the
  class prior). Model 1 has no hidden layer, so its zero start trains (the loss is convex)."""
  if init not in INITIALISATIONS:
    raise ValueError(f"`init` must be one of {sorted(INITIALISATIONS)}, got {init!r}")
  layer_shapes(model)  # checks `model`
  if init == "zeros" and model != 1:
    return (f"zero weights and biases cannot break the symmetry of model {model}'s hidden "
            "layers: their outputs and every weight gradient stay zero, only the output "
            "bias learns")
  return None


def init_params(model: int, seed: int,
                init: str = "xavier_uniform") -> tuple[tuple[jax.Array, jax.Array], ...]:
  """((W, b), ...) per layer from the scheme ``init`` of :data:`INITIALISATIONS` (weights
  from its initialiser, every bias its constant); a pure function of (model, seed, init),
  each layer's key the same for every scheme. Raises ``ValueError`` for a scheme that
  cannot train the model (:func:`symmetry_problem`)."""
  problem = symmetry_problem(model, init)
  if problem is not None:
    raise ValueError(f"`init` {init!r} for `model` {model}: {problem}")
  weight, bias = INITIALISATIONS[init]
  shapes = layer_shapes(model)
  keys = jax.random.split(randomness.init_key(seed), len(shapes))
  return tuple((weight(key, shape), jnp.full((shape[-1],), bias, jnp.float32))
               for key, shape in zip(keys, shapes))


def apply(model: int, params, images: jax.Array) -> jax.Array:
  """Logits of ``images`` (N, 28, 28, 1) in [0, 1], every layer an ``hw.ops`` call."""
  if model == 4:
    (w1, b1), (w2, b2), (w3, b3), (w4, b4) = params
    h = ops.max_pool(ops.conv2d(images, w1, b1, padding="SAME"), 2)
    h = ops.max_pool(ops.conv2d(h, w2, b2, padding="SAME"), 2)
    h = ops.relu(ops.linear(h.reshape(h.shape[0], -1), w3, b3))
    return ops.linear(h, w4, b4)
  h = images.reshape(images.shape[0], -1)
  for w, b in params[:-1]:
    h = ops.relu(ops.linear(h, w, b))
  return ops.linear(h, *params[-1])


def loss(params, images, labels, *, model: int, reduction: str) -> jax.Array:
  """Softmax cross-entropy of the batch, summed or averaged (``hw.ops``)."""
  return ops.softmax_cross_entropy(apply(model, params, images), labels, reduction=reduction)


def sgd_step(params, learning_rate, images, labels, *, model: int, reduction: str):
  """One plain SGD step; returns (new params, the batch's mean per-example loss)."""
  value, grads = jax.value_and_grad(loss)(params, images, labels, model=model,
                                          reduction=reduction)
  params = jax.tree.map(lambda p, g: p - learning_rate * g, params, grads)
  per_example = value / labels.shape[0] if reduction == "sum" else value
  return params, per_example


# ------------------------------------------------------------------------ programs

def _jit(fn: Callable, **kwargs) -> Callable:
  options = CPU_COMPILER_OPTIONS if jax.default_backend() == "cpu" else None
  return jax.jit(fn, compiler_options=options, **kwargs)


def _stack(trees: Sequence[Any]) -> Any:
  return jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)


def _take(tree: Any, index: int | slice) -> Any:
  return jax.tree.map(lambda leaf: leaf[index], tree)


def _spans(reductions: Sequence[str]) -> list[tuple[str, slice]]:
  """Contiguous runs of equal reductions: [(reduction, slice of members), ...]."""
  spans: list[tuple[str, slice]] = []
  start = 0
  for i in range(1, len(reductions) + 1):
    if i == len(reductions) or reductions[i] != reductions[start]:
      spans.append((reductions[start], slice(start, i)))
      start = i
  return spans


def scanned(model: int) -> bool:
  """Whether the members of ``model`` are vmapped inside a ``lax.scan`` (the MLPs), or
  stepped one jitted call per step with the members unrolled in it (the conv net)."""
  return model != 4


@functools.lru_cache(maxsize=32)
def _train_program(model: int, reductions: tuple[str, ...]) -> Callable:
  """jitted (params [M, ...], lrs [M], idx [M, S, B], images, labels) -> (params, losses [M, S]).

  Member m runs S SGD steps with its own learning rate on batches ``images[idx[m, s]]``,
  under the loss reduction ``reductions[m]``.
  """
  def member(params, lr, idx, images, labels, reduction):
    def step(p, batch):
      return sgd_step(p, lr, images[batch], labels[batch], model=model, reduction=reduction)
    return lax.scan(step, params, idx)

  def program(params, lrs, idx, images, labels):
    outs = []
    for reduction, span in _spans(reductions):
      p, lr, ix = _take(params, span), lrs[span], idx[span]
      if scanned(model):
        outs.append(jax.vmap(functools.partial(member, reduction=reduction),
                             in_axes=(0, 0, 0, None, None))(p, lr, ix, images, labels))
      else:  # one step (S == 1) per call; members unrolled
        for m in range(span.stop - span.start):
          new, value = sgd_step(_take(p, m), lr[m], images[ix[m, 0]], labels[ix[m, 0]],
                                model=model, reduction=reduction)
          outs.append((_stack([new]), value[None, None]))
    new_params = jax.tree.map(lambda *parts: jnp.concatenate(parts), *[o[0] for o in outs])
    return new_params, jnp.concatenate([o[1] for o in outs])
  return _jit(program, donate_argnums=(0,))


@functools.lru_cache(maxsize=8)
def _eval_program(model: int) -> Callable:
  """jitted (params [M, ...], images, labels) -> (correct [M], summed loss [M], top-5 hits [M]).

  A top-5 hit is :func:`hw.metrics.top_k_hits`' (fewer than 5 classes score strictly
  higher than the true one)."""
  def one(params, images, labels):
    logits = apply(model, params, images)
    correct = jnp.sum(jnp.argmax(logits, axis=-1) == labels)
    top5 = jnp.sum(metrics.top_k_hits(logits, labels, 5))
    return correct, ops.softmax_cross_entropy(logits, labels, reduction="sum"), top5

  def program(params, images, labels):
    if scanned(model):
      return jax.vmap(one, in_axes=(0, None, None))(params, images, labels)
    count = jax.tree.leaves(params)[0].shape[0]
    parts = [one(_take(params, m), images, labels) for m in range(count)]
    return tuple(jnp.stack([p[i] for p in parts]) for i in range(3))
  return _jit(program)


def evaluate(model: int, params, images: jax.Array, labels: jax.Array,
             batch_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(accuracy [M], mean cross-entropy [M], top-5 error [M]) of every member on
  (images, labels)."""
  program = _eval_program(model)
  correct, total, top5 = 0, 0.0, 0
  for start in range(0, labels.shape[0], batch_size):
    c, t, h = program(params, images[start:start + batch_size],
                      labels[start:start + batch_size])
    correct, total, top5 = correct + c, total + t, top5 + h
  n = labels.shape[0]
  return (np.asarray(correct, np.float64) / n, np.asarray(total, np.float64) / n,
          1 - np.asarray(top5, np.float64) / n)
