"""(a) and (b): the JAX versions of a network and their jitted SGD train step.

(a) ``hw``: the network of ``hw.nn.models`` (``Architecture.module``, every layer an
    ``hw.ops`` custom VJP) and the loss ``hw.ops.softmax_cross_entropy``.
(b) ``autodiff``: the same layer list with standard Flax layers (``nn.Dense``, ``nn.Conv``,
    ``nn.BatchNorm``, ``nn.Dropout``, ``nn.max_pool``) and
    ``optax.softmax_cross_entropy_with_integer_labels``, differentiated by JAX autodiff.
Both use the same jitted step: forward, ``jax.value_and_grad``, ``optax.sgd`` update,
running batch-norm statistics updated, a fresh dropout key per step; for a network that the
training engine steps in two halves on this backend (``Architecture.batch_halves``,
:func:`hw.backends.batch_halves`) both step that way: the gradients of the two halves
computed side by side (:func:`hw.engine.steps.side_by_side`), then summed in the update.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import numpy as np
import optax

from benchmarks import architectures as arch
from hw import ops
from hw.engine import steps

LEARNING_RATE = 1e-3
# (a) and (b) give the same float32 scores up to rounding (batch-norm variance formulas)
MIRROR_TOLERANCE = 1e-4


class AutodiffNet(nn.Module):
  """The layer list with standard Flax/JAX layers (autodiff of lax primitives)."""
  layers: Sequence[arch.Layer]

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    for layer in self.layers:
      if isinstance(layer, arch.Conv):
        x = nn.Conv(layer.features, (layer.kernel_size,) * 2, padding=layer.padding,
                    use_bias=layer.use_bias)(x)
      elif isinstance(layer, arch.Dense):
        x = nn.Dense(layer.features, use_bias=layer.use_bias)(x)
      elif isinstance(layer, arch.BatchNorm):
        x = nn.BatchNorm(use_running_average=not train, momentum=layer.momentum,
                         epsilon=layer.epsilon)(x)
      elif isinstance(layer, arch.ReLU):
        x = nn.relu(x)
      elif isinstance(layer, arch.MaxPool):
        x = nn.max_pool(x, (layer.window,) * 2, strides=(layer.window,) * 2)
      elif isinstance(layer, arch.Dropout):
        x = nn.Dropout(layer.rate, deterministic=not train)(x)
      elif isinstance(layer, arch.Flatten):
        x = x.reshape((x.shape[0], -1))
      else:
        raise ValueError(f"unknown layer {layer!r}")
    return x


def hw_loss(logits: jax.Array, labels: jax.Array) -> jax.Array:
  return ops.softmax_cross_entropy(logits, labels)


def autodiff_loss(logits: jax.Array, labels: jax.Array) -> jax.Array:
  return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def compile_quickly(fn: Callable[..., Any], *args: Any) -> Callable[..., Any]:
  """``jax.jit(fn)`` compiled for ``args`` without XLA's backend optimisations: for checks
  that run once, where compiling optimised CPU code would take most of the time."""
  return jax.jit(fn).lower(*args).compile(
      compiler_options={"xla_backend_optimization_level": 0})


def autodiff_scores(architecture: arch.Architecture, images: jax.Array, *, train: bool,
                    seed: int = 0, also: Sequence[nn.Module] = ()) -> tuple[Any, list[Any]]:
  """The variables initialised for (b), the layer list in Flax, and the scores of (b) and
  of each module of ``also`` applied to them (batch-norm statistics of the batch when
  ``train``; one fixed dropout key)."""
  autodiff = AutodiffNet(tuple(architecture.layers))
  key = jax.random.PRNGKey(seed)

  def scores(images):
    variables = autodiff.init({"params": key, "dropout": key}, images, train=False)
    return variables, [module.apply(variables, images, train=train, rngs={"dropout": key},
                                    mutable=["batch_stats"])[0]
                       for module in (autodiff, *also)]

  return compile_quickly(scores, images)(images)


def max_difference(x: Any, y: Any) -> float:
  return float(np.max(np.abs(np.asarray(x) - np.asarray(y))))


def mirror_error(architecture: arch.Architecture, images: jax.Array, *, train: bool,
                 seed: int = 0) -> float:
  """Largest |difference| of the scores of (a) the ``hw.nn.models`` network and (b) its layer
  list in Flax, both applied to the variables initialised for (b).

  The two have the same variable tree (layer names, shapes), so a small value shows the
  layer list mirrors the model. ``train=True`` compares batch-norm batch statistics too,
  so it needs a network without dropout (the two draw different masks).
  """
  _, (autodiff, hw) = autodiff_scores(architecture, images, train=train, seed=seed,
                                      also=(architecture.module,))
  return max_difference(hw, autodiff)


def parameter_count(variables: Any) -> int:
  return sum(int(leaf.size) for leaf in jax.tree_util.tree_leaves(variables.get("params", {})))


class JaxTrainer:
  """A jitted SGD train step on one fixed batch; ``run(steps)`` runs and blocks.

  Args:
    module: a Flax module called as ``module.apply(v, x, train=True, rngs=...)``.
    loss_fn: ``(logits, labels) -> scalar``.
    images: (N, 28, 28, 1) float32; labels: (N,) int32.
    seed: initialisation / dropout seed.
    halves: the gradients of the two halves of the batch computed side by side and summed
      (as :mod:`hw.engine.steps` steps such nets); only for networks without batch norm.
  """

  def __init__(self, module: nn.Module, loss_fn: Callable[[jax.Array, jax.Array], jax.Array],
               images: jax.Array, labels: jax.Array, *, seed: int = 0, halves: bool = False):
    self.images, self.labels = images, labels
    init_key, self._key = jax.random.split(jax.random.PRNGKey(seed))
    variables = module.init({"params": init_key, "dropout": init_key}, images, train=True)
    self.num_params = parameter_count(variables)
    params = variables["params"]
    batch_stats = variables.get("batch_stats", {})
    tx = optax.sgd(LEARNING_RATE)

    def loss(params, batch_stats, x, y, key):
      variables = {"params": params}
      if batch_stats:
        variables["batch_stats"] = batch_stats
      logits, updates = module.apply(variables, x, train=True, rngs={"dropout": key},
                                     mutable=["batch_stats"])
      return loss_fn(logits, y), updates.get("batch_stats", batch_stats)

    @functools.partial(jax.jit, donate_argnums=(0,))
    def step(state, x, y):
      params, batch_stats, opt_state, key = state
      key, dropout_key = jax.random.split(key)
      (value, batch_stats), grads = jax.value_and_grad(loss, has_aux=True)(
          params, batch_stats, x, y, dropout_key)
      updates, opt_state = tx.update(grads, opt_state, params)
      return (optax.apply_updates(params, updates), batch_stats, opt_state, key), value

    @jax.jit
    def half_gradients(params, x, y, key, part):
      """The gradient of one half's share (mean × half size / batch size) of the loss."""
      part_key = jax.random.split(jax.random.split(key)[1])[part]

      def share(params):
        logits = module.apply({"params": params}, x, train=True, rngs={"dropout": part_key})
        return loss_fn(logits, y) * (x.shape[0] / images.shape[0])

      return jax.value_and_grad(share)(params)

    @functools.partial(jax.jit, donate_argnums=(0,))
    def finish_halves(state, first, second):
      params, batch_stats, opt_state, key = state
      grads = jax.tree_util.tree_map(jax.numpy.add, first[1], second[1])
      updates, opt_state = tx.update(grads, opt_state, params)
      return ((optax.apply_updates(params, updates), batch_stats, opt_state,
               jax.random.split(key)[0]), first[0] + second[0])

    def step_in_halves(state, x, y):  # as hw.engine.steps steps such nets
      middle = x.shape[0] // 2
      params, key = state[0], state[3]
      first, second = steps.side_by_side(half_gradients, (params, x[:middle], y[:middle], key, 0),
                                         (params, x[middle:], y[middle:], key, 1))
      return finish_halves(state, first, second)

    self._step = step_in_halves if halves else step
    self._state = (params, batch_stats, tx.init(params), self._key)
    self.last_loss: float | None = None

  def run(self, steps: int) -> None:
    value = None
    for _ in range(steps):
      self._state, value = self._step(self._state, self.images, self.labels)
    if value is not None:
      self.last_loss = float(jax.block_until_ready(value))
