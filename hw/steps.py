"""The compiled programs of training: the train step, a scan over chunks of steps and the
evaluation, jitted once per compile key and kept in one bounded cache.

The programs depend only on :func:`hw.config.compile_key` of the config (the learning rate
is a traced optimiser hyper-parameter), so epochs and grid points of the same shape reuse
them. Stepping: an epoch is either scanned chunks of mini-batches or one jitted call per
mini-batch; :func:`per_batch_stepping` picks per backend and model (XLA:CPU runs
convolutions several times slower inside a while loop, see ``docs/results/bench.md``).
Both compute the same steps up to float rounding.
"""
from __future__ import annotations

import collections
import dataclasses
import functools
from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp
import optax

from hw import augmentations, losses, metrics, models, optimizers, randomness
from hw.config import ExperimentConfig, compile_key

CHUNK_STEPS = 100  # mini-batches per jitted scan call


@flax.struct.dataclass
class TrainState:
  params: Any
  batch_stats: Any
  opt_state: Any

  def variables(self) -> dict[str, Any]:
    return {"params": self.params, "batch_stats": self.batch_stats}


def per_batch_stepping(config: ExperimentConfig, model: Any, backend: str) -> bool:
  """One jitted call per batch (True) or scanned chunks: ``config.jit_per_batch`` if set;
  else per batch exactly for conv nets on the CPU (scans elsewhere)."""
  if config.jit_per_batch is not None:
    return bool(config.jit_per_batch)
  return backend == "cpu" and isinstance(model, models.ConvNet)


@dataclasses.dataclass
class Programs:
  """The jitted functions of one compile key, and how often each was traced."""
  model: Any
  init: Callable
  step: Callable      # (state, images, labels, index (B,), key data) -> (state, loss, correct)
  chunk: Callable     # the same over (S, B) indices, scanned
  evaluate: Callable  # (variables, images, labels, size) -> (mean loss, accuracy)
  per_batch: bool
  traces: collections.Counter = dataclasses.field(default_factory=collections.Counter)


def _build_programs(config: ExperimentConfig, num_classes: int, steps: int) -> Programs:
  loss = losses.LOSSES[config.loss]
  model = models.create_model(config.model, num_outputs=loss.num_outputs(num_classes),
                              weight_scale=config.weight_scale, **config.model_kwargs)
  tx = optimizers.make_optimizer(config, steps)
  augment = augmentations.AUGMENTATIONS[config.augment] if config.augment else None
  traces: collections.Counter = collections.Counter()

  def step(images, labels, state, inputs):
    index, key_data = inputs
    key = randomness.wrap(key_data)
    x, y = jnp.take(images, index, axis=0), jnp.take(labels, index, axis=0)
    if augment is not None:
      x = augment(x, key=jax.random.fold_in(key, 1))

    def loss_fn(params):
      scores, updates = model.apply({"params": params, "batch_stats": state.batch_stats}, x,
                                    train=True, rngs={"dropout": key}, mutable=["batch_stats"])
      return loss.fn(scores, y, reduction="mean"), (scores, updates)

    (value, (scores, updates)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    changes, opt_state = tx.update(grads, state.opt_state, state.params)
    new_state = TrainState(params=optax.apply_updates(state.params, changes),
                           batch_stats=updates.get("batch_stats", state.batch_stats),
                           opt_state=opt_state)
    return new_state, (value, jnp.sum(metrics.correct_predictions(scores, y)))

  @functools.partial(jax.jit, donate_argnums=(0,))
  def chunk(state, images, labels, batch_index, keys):
    traces["chunk"] += 1
    state, (losses_, correct) = jax.lax.scan(functools.partial(step, images, labels), state,
                                             (batch_index, keys))
    return state, losses_, correct

  @functools.partial(jax.jit, donate_argnums=(0,))
  def single_step(state, images, labels, index, key):
    traces["step"] += 1
    state, (value, correct) = step(images, labels, state, (index, key))
    return state, value, correct

  @jax.jit
  def evaluate(variables, images, labels, size):
    traces["evaluate"] += 1
    batch = config.eval_batch_size
    chunks = images.shape[0] // batch
    xs = images.reshape((chunks, batch) + images.shape[1:])
    ys = labels.reshape((chunks, batch))
    valid = (jnp.arange(chunks * batch) < size).reshape((chunks, batch))

    def one(inputs):
      x, y, mask = inputs
      scores = model.apply(variables, x, train=False)
      per_example = loss.fn(scores, y, reduction="none")
      return (jnp.sum(jnp.where(mask, per_example, 0.0)),
              jnp.sum(jnp.where(mask, metrics.correct_predictions(scores, y), 0.0)))

    loss_sums, correct = jax.lax.map(one, (xs, ys, valid))
    return jnp.sum(loss_sums) / size, jnp.sum(correct) / size

  return Programs(model=model, init=jax.jit(functools.partial(model.init, train=False)),
                  step=single_step, chunk=chunk, evaluate=evaluate, traces=traces,
                  per_batch=per_batch_stepping(config, model, jax.default_backend()))


class ProgramCache:
  """The compile cache: at most ``size`` program sets, least recently used dropped first."""

  def __init__(self, size: int = 8):
    self.size = size
    self._programs: collections.OrderedDict[tuple, Programs] = collections.OrderedDict()

  def get(self, config: ExperimentConfig, num_classes: int, steps: int) -> Programs:
    key = (compile_key(config), config.jit_per_batch, num_classes, steps, jax.default_backend())
    if key in self._programs:
      self._programs.move_to_end(key)
    else:
      self._programs[key] = _build_programs(config, num_classes, steps)
      while len(self._programs) > self.size:
        self._programs.popitem(last=False)
    return self._programs[key]

  def clear(self) -> None:
    self._programs.clear()


PROGRAMS = ProgramCache()
