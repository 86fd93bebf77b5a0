"""Q7 part 1: why deep sigmoid networks train badly. The same 8-hidden-layer MLP with
sigmoid and with ReLU units, trained alike (SGD with momentum, LeCun-normal init) with the
engine (:func:`hw.engine.train`, a hook for the per-epoch measurements): loss curves, the
gradient norm of every layer at initialisation and after every epoch, and the state of the
sigmoid units (mean output, mean derivative σ' = σ(1 − σ), share saturated)."""
from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp

from experiments.studies import _runs
from experiments.studies.q7.shared import SATURATED, Settings, _config, _normalized, layer_names
from hw import ops
from hw.engine import loop
from hw.engine.config import ExperimentConfig
from hw.engine.experiment_data import Split


def probe(model: Any, params: Any, images: jax.Array, labels: jax.Array,
          activation: str) -> dict[str, list[float]]:
  """Per layer: ‖∂L/∂W‖ (Frobenius, mean loss over the probe batch), and per hidden layer
  the mean unit output, the mean derivative of the activation, and the share of units
  that are saturated (sigmoid: σ < 0.05 or > 0.95) or inactive (ReLU: z ≤ 0)."""
  return _probe(model, activation, params, images, labels)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _probe(model, activation, params, images, labels):
  def loss_fn(p):
    scores = model.apply({"params": p}, images, train=False)
    return ops.softmax_cross_entropy(scores, labels)
  grads = jax.grad(loss_fn)(params)
  names = layer_names(params)
  norms = [jnp.sqrt(jnp.sum(grads[n]["kernel"] ** 2)) for n in names]
  _, state = model.apply({"params": params}, images, train=False, capture_intermediates=True,
                         mutable=["intermediates"])
  means, derivatives, saturated = [], [], []
  for n in names[:-1]:
    z = state["intermediates"][n]["__call__"][0]
    if activation == "sigmoid":
      s = ops.sigmoid(z)
      means.append(jnp.mean(s))
      derivatives.append(jnp.mean(s * (1 - s)))
      saturated.append(jnp.mean((s < SATURATED) | (s > 1 - SATURATED)))
    else:
      means.append(jnp.mean(ops.relu(z)))
      derivatives.append(jnp.mean(z > 0))
      saturated.append(jnp.mean(z <= 0))
  return {"grad_norm": norms, "mean_output": means, "mean_derivative": derivatives,
          "saturated": saturated}


class Probe(loop.Hook):
  """:func:`probe` after every epoch (and once before training, by :meth:`measure`)."""

  def __init__(self, model, images, labels, activation):
    self.model, self.images, self.labels, self.activation = model, images, labels, activation
    self.records: list[dict[str, Any]] = []

  def measure(self, epoch: int, params: Any) -> None:
    values = probe(self.model, params, self.images, self.labels, self.activation)
    self.records.append({"epoch": epoch,
                         **{k: [float(v) for v in vs] for k, vs in values.items()}})

  def on_epoch_end(self, epoch, state, record):
    self.measure(epoch, state.params)


# (name, activation, weight_scale: None = LeCun normal, else N(0, scale²))
DEEP_RUNS = (("sigmoid", "sigmoid", None), ("relu", "relu", None),
             ("sigmoid_large_init", "sigmoid", 1.0))


def deep_networks(split: _runs.MnistSplits, settings: Settings, profile: str) -> dict[str, Any]:
  train = _runs.head(split.train, settings.deep_train_size)
  validation = _runs.head(split.validation, settings.validation_size)
  probe_images = _normalized(train.images[:settings.probe_size])
  probe_labels = jnp.asarray(train.labels[:settings.probe_size])
  runs = {}
  for name, activation, weight_scale in DEEP_RUNS:
    config = _config(f"deep_{name}",
                     {"hidden_sizes": settings.deep_hidden, "activation": activation},
                     epochs=settings.deep_epochs, optimizer="momentum",
                     learning_rate=settings.deep_learning_rate, settings=settings,
                     profile=profile).replace(weight_scale=weight_scale)
    programs = _runs.programs_for(config, len(train.labels))
    state = loop.init_state(config, programs, jnp.asarray(train.images[:config.batch_size]))
    hook = Probe(programs.model, probe_images, probe_labels, activation)
    hook.measure(0, state.params)
    initial_loss, initial_accuracy = loop.evaluate(
        state, programs, _device(validation, config))
    trained = _runs.train_model(config, train, validation, hooks=[hook], state=state,
                                programs=programs)
    test = _runs.head(split.test, settings.test_size)
    test_accuracy, top_k = trained.accuracy_and_top_k(test.images, test.labels)
    runs[name] = {
        "activation": activation, "weight_init": "LeCun normal" if weight_scale is None
        else f"N(0, {weight_scale:g}²)",
        "config": _runs.plain_config(config), "parameters": trained.parameter_count(),
        "initial": {"val_loss": initial_loss, "val_accuracy": initial_accuracy},
        "history": trained.history, "probes": hook.records, "train_seconds": trained.seconds,
        "test_accuracy": test_accuracy, "top_k": top_k}
  return runs


def _device(split: Split, config: ExperimentConfig):
  from hw.engine.experiment_data import to_device
  return to_device(split, config.normalize, config.eval_batch_size)


def layer_gain(probe_: dict[str, Any]) -> float:
  """Geometric mean of the factor by which the weight-gradient norm shrinks per layer,
  from the output layer down to the first: (‖∂L/∂W_1‖ / ‖∂L/∂W_L‖)^(1/(L − 1))."""
  norms = probe_["grad_norm"]
  return float((norms[0] / norms[-1]) ** (1 / (len(norms) - 1)))
