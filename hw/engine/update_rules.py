"""Optimisers and learning-rate schedules by name.

``make_optimizer(config, steps_per_epoch)`` wraps the named optax optimiser in
``optax.inject_hyperparams``, so the learning rate lives in the optimiser state as a traced
value: grid points that differ only in their learning rate share one compiled train step.
Every other option shapes the compiled program and belongs to its compile key
(:func:`hw.engine.config.compile_key`).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import optax

from hw import optim as hw_optim
from hw.named import Registry


@dataclasses.dataclass(frozen=True)
class Optimizer:
  """``factory(learning_rate, **options)`` and the config fields it reads as ``options``
  (a map from the factory's keyword to the config field)."""
  factory: Callable[..., optax.GradientTransformation]
  options: tuple[tuple[str, str], ...] = ()


def _sgd(learning_rate, momentum=None, nesterov=False):
  return optax.sgd(learning_rate, momentum=momentum, nesterov=nesterov)


OPTIMIZERS: Registry[Optimizer] = Registry("optimizer")
OPTIMIZERS.register("sgd", Optimizer(_sgd), "θ ← θ − η g")
OPTIMIZERS.register("momentum", Optimizer(_sgd, (("momentum", "momentum"),)),
                    "heavy ball: v ← μ v + g, θ ← θ − η v")
OPTIMIZERS.register("nesterov",
                    Optimizer(lambda lr, momentum: _sgd(lr, momentum, nesterov=True),
                              (("momentum", "momentum"),)),
                    "Nesterov: v ← μ v + g, θ ← θ − η (g + μ v)")
OPTIMIZERS.register("rmsprop",
                    Optimizer(lambda lr, decay: optax.rmsprop(lr, decay=decay, eps=1e-8),
                              (("decay", "rmsprop_decay"),)),
                    "s ← ρ s + (1 − ρ) g², θ ← θ − η g / (√s + ε)")
OPTIMIZERS.register("adam", Optimizer(optax.adam), "Adam (β 0.9, 0.999, ε 1e-8)")

# The same five written by hand from their update equations (hw.optim; checked against
# optax by `hw verify`), selectable by any config.
OPTIMIZERS.register("hw_sgd", Optimizer(hw_optim.sgd), "hw.optim.sgd: θ ← θ − η g, by hand")
OPTIMIZERS.register("hw_momentum",
                    Optimizer(lambda lr, momentum: hw_optim.sgd(lr, momentum=momentum),
                              (("momentum", "momentum"),)), "hw.optim heavy ball, by hand")
OPTIMIZERS.register("hw_nesterov",
                    Optimizer(lambda lr, momentum: hw_optim.sgd(lr, momentum=momentum,
                                                                nesterov=True),
                              (("momentum", "momentum"),)), "hw.optim Nesterov, by hand")
OPTIMIZERS.register("hw_rmsprop",
                    Optimizer(lambda lr, decay: hw_optim.rmsprop(lr, decay=decay, eps=1e-8),
                              (("decay", "rmsprop_decay"),)), "hw.optim RMSProp, by hand")
OPTIMIZERS.register("hw_adam", Optimizer(hw_optim.adam), "hw.optim Adam, by hand")


def _exponential(learning_rate, *, config, steps_per_epoch):
  """``η · lr_decay^⌊t / steps_per_epoch⌋`` (a constant when lr_decay is 1)."""
  if config.lr_decay == 1.0:
    return learning_rate
  return optax.exponential_decay(learning_rate, transition_steps=steps_per_epoch,
                                 decay_rate=config.lr_decay, staircase=True)


def _cosine(learning_rate, *, config, steps_per_epoch):
  """``η · ½(1 + cos(π t / T))``, ``T = epochs · steps_per_epoch`` (0 from step T on)."""
  return optax.cosine_decay_schedule(learning_rate, decay_steps=config.epochs * steps_per_epoch)


@dataclasses.dataclass(frozen=True)
class Schedule:
  """``fn(learning_rate, *, config, steps_per_epoch)`` -> a constant or an optax schedule.
  ``uses_epochs``: the epoch count shapes every step (so it belongs to the fingerprint)."""
  fn: Callable[..., Any]
  uses_epochs: bool = False


SCHEDULES: Registry[Schedule] = Registry("lr_schedule")
SCHEDULES.register("exponential", Schedule(_exponential), "×lr_decay after every epoch")
SCHEDULES.register("cosine", Schedule(_cosine, uses_epochs=True),
                   "per-step cosine decay to 0 at the last step")


def learning_rate_schedule(config, steps_per_epoch: int) -> Any:
  """The configured learning rate: a constant or an optax schedule of the step count."""
  return SCHEDULES[config.lr_schedule].fn(config.learning_rate, config=config,
                                       steps_per_epoch=steps_per_epoch)


def epoch_learning_rate(config, steps_per_epoch: int, epoch: int) -> float:
  """The learning rate at the first step of (1-based) ``epoch``."""
  schedule = learning_rate_schedule(config, steps_per_epoch)
  return float(schedule((epoch - 1) * steps_per_epoch) if callable(schedule) else schedule)


def make_optimizer(config, steps_per_epoch: int) -> optax.GradientTransformation:
  """The configured optimiser with its schedule and optional L2 weight decay (added to the
  gradient); the learning rate is an injected hyper-parameter."""
  optimizer = OPTIMIZERS[config.optimizer]
  schedule = SCHEDULES[config.lr_schedule].fn
  options = {keyword: getattr(config, field) for keyword, field in optimizer.options}

  def build(learning_rate):
    rate = schedule(learning_rate, config=config, steps_per_epoch=steps_per_epoch)
    tx = optimizer.factory(rate, **options)
    if config.weight_decay:
      tx = optax.chain(optax.add_decayed_weights(config.weight_decay), tx)
    return tx

  return optax.inject_hyperparams(build)(learning_rate=config.learning_rate)
