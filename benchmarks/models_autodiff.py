"""(a) and (b): the JAX versions of a network and their jitted SGD train step.

(a) ``hw``: the network of ``hw.models`` (every layer an ``hw.ops`` custom VJP) and the
    loss ``hw.ops.softmax_cross_entropy``; when ``hw.models`` does not import, the layer
    list is interpreted directly with ``hw.ops`` functions.
(b) ``autodiff``: the same layer list with standard Flax layers (``nn.Dense``, ``nn.Conv``,
    ``nn.BatchNorm``, ``nn.Dropout``, ``nn.max_pool``) and
    ``optax.softmax_cross_entropy_with_integer_labels``, differentiated by JAX autodiff.
Both use the same jitted step: forward, ``jax.value_and_grad``, ``optax.sgd`` update,
running batch-norm statistics updated, a fresh dropout key per step.
"""
from __future__ import annotations

import functools
import importlib
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from benchmarks import architectures as arch

LEARNING_RATE = 1e-3


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


class HwOpsNet(nn.Module):
  """The layer list interpreted with ``hw.ops`` directly (fallback when hw.models is absent)."""
  layers: Sequence[arch.Layer]

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    from hw import ops
    init = nn.initializers.lecun_normal()
    for i, layer in enumerate(self.layers):
      if isinstance(layer, arch.Conv):
        k = layer.kernel_size
        w = self.param(f"{i}_kernel", init, (k, k, x.shape[-1], layer.features))
        b = (self.param(f"{i}_bias", nn.initializers.zeros, (layer.features,))
             if layer.use_bias else None)
        x = ops.conv2d(x, w, b, padding=layer.padding)
      elif isinstance(layer, arch.Dense):
        w = self.param(f"{i}_kernel", init, (x.shape[-1], layer.features))
        b = (self.param(f"{i}_bias", nn.initializers.zeros, (layer.features,))
             if layer.use_bias else None)
        x = ops.linear(x, w, b)
      elif isinstance(layer, arch.BatchNorm):
        c = x.shape[-1]
        gamma = self.param(f"{i}_scale", nn.initializers.ones, (c,))
        beta = self.param(f"{i}_bias", nn.initializers.zeros, (c,))
        mean = self.variable("batch_stats", f"{i}_mean", jnp.zeros, (c,))
        var = self.variable("batch_stats", f"{i}_var", jnp.ones, (c,))
        y = ops.batch_norm(x, gamma, beta, eps=layer.epsilon)
        if train and not self.is_initializing():
          axes = tuple(range(x.ndim - 1))
          m = layer.momentum
          mean.value = m * mean.value + (1 - m) * jax.lax.stop_gradient(x.mean(axes))
          var.value = m * var.value + (1 - m) * jax.lax.stop_gradient(x.var(axes))
        x = y
      elif isinstance(layer, arch.ReLU):
        x = ops.relu(x)
      elif isinstance(layer, arch.MaxPool):
        x = ops.max_pool(x, layer.window)
      elif isinstance(layer, arch.Dropout):
        x = ops.dropout(x, key=self.make_rng("dropout"), rate=layer.rate, train=train)
      elif isinstance(layer, arch.Flatten):
        x = x.reshape((x.shape[0], -1))
      else:
        raise ValueError(f"unknown layer {layer!r}")
    return x


def hw_network(architecture: arch.Architecture) -> tuple[nn.Module, str]:
  """(a): the ``hw.models`` network, or the ``hw.ops`` interpreter; and which one it is."""
  try:
    models = importlib.import_module("hw.models")
  except ImportError:
    return HwOpsNet(architecture.layers), "hw.ops layer-list interpreter (hw.models absent)"
  module = models.create_model(architecture.model, num_outputs=arch.NUM_CLASSES,
                               **dict(architecture.model_kwargs))
  return module, f"hw.models.create_model({architecture.model!r})"


def hw_loss(logits: jax.Array, labels: jax.Array) -> jax.Array:
  from hw import ops
  return ops.softmax_cross_entropy(logits, labels)


def autodiff_loss(logits: jax.Array, labels: jax.Array) -> jax.Array:
  return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def parameter_count(variables: Any) -> int:
  return sum(int(leaf.size) for leaf in jax.tree_util.tree_leaves(variables.get("params", {})))


class JaxTrainer:
  """A jitted SGD train step on one fixed batch; ``run(steps)`` runs and blocks.

  Args:
    module: a Flax module called as ``module.apply(v, x, train=True, rngs=...)``.
    loss_fn: ``(logits, labels) -> scalar``.
    images: (N, 28, 28, 1) float32; labels: (N,) int32.
    seed: initialisation / dropout seed.
  """

  def __init__(self, module: nn.Module, loss_fn: Callable[[jax.Array, jax.Array], jax.Array],
               images: jax.Array, labels: jax.Array, *, seed: int = 0):
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

    self._step = step
    self._state = (params, batch_stats, tx.init(params), self._key)
    self.last_loss: float | None = None

  def run(self, steps: int) -> None:
    value = None
    for _ in range(steps):
      self._state, value = self._step(self._state, self.images, self.labels)
    if value is not None:
      self.last_loss = float(jax.block_until_ready(value))
