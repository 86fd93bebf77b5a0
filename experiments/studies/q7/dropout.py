"""Q7 part 2: dropout at inference. One network trained with inverted dropout (with the
engine, :func:`hw.engine.train`), evaluated with the inverted rule (no mask, no scaling),
with train-time masks left on, with the average of many masked passes, and as plain dropout
without the test-time rescaling."""
from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from experiments.studies import _runs
from experiments.studies.q7.shared import ACTIVATIONS, Settings, _config, _normalized, layer_names
from hw import ops


def forward(params: Any, images: jax.Array, *, rate: float, rule: str,
            key: jax.Array | None = None,
            activation: str = "relu") -> tuple[jax.Array, list[jax.Array]]:
  """The dropout MLP (Dense–activation–dropout per hidden layer, then Dense) written out
  with hw.ops, under one of the rules:

  - ``"train"``: inverted dropout as in training, ``h ⊙ M / (1 − p)`` (needs ``key``);
  - ``"inverted"``: the inverted rule at test time, ``h`` (what :class:`hw.nn.Dropout` does);
  - ``"no_rescale"``: plain dropout without the test-time rescaling. The network trained
    with inverted dropout is the same function as a plain-dropout network (train time
    ``h ⊙ M``) whose next layer has weights W / (1 − p); at test time plain dropout must
    multiply by the keep probability 1 − p, which gives back ``h W``. Leaving the rescaling
    out feeds ``h W / (1 − p)``: every dropout output is 1 / (1 − p) times too large.

  Returns the scores and the dropout layers' outputs (what the next layer reads).
  """
  names = layer_names(params)
  x = images.reshape((images.shape[0], -1))
  outputs = []
  for index, name in enumerate(names[:-1]):
    x = ACTIVATIONS[activation](ops.linear(x, params[name]["kernel"], params[name]["bias"]))
    if rule == "train":
      x = ops.dropout(x, key=jax.random.fold_in(key, index), rate=rate, train=True)
    elif rule == "no_rescale":
      x = x / (1.0 - rate)
    elif rule != "inverted":
      raise ValueError(f"unknown dropout rule {rule!r}")
    outputs.append(x)
  last = params[names[-1]]
  return ops.linear(x, last["kernel"], last["bias"]), outputs


@functools.partial(jax.jit, static_argnames=("rate", "rule", "activation"))
def _forward_stats(params, images, labels, key, *, rate, rule, activation):
  scores, outputs = forward(params, images, rate=rate, rule=rule, key=key,
                            activation=activation)
  probabilities = jax.nn.softmax(scores)
  return (probabilities, ops.softmax_cross_entropy(scores, labels, reduction="none"),
          jnp.stack([jnp.mean(o) for o in outputs]))


def evaluate_rules(params: Any, images: np.ndarray, labels: np.ndarray, *, rate: float,
                   mask_draws: int, mc_passes: int, seed: int, activation: str = "relu",
                   batch: int = 1000) -> dict[str, Any]:
  """Accuracy, loss, mean confidence and the mean of each dropout layer's output under
  each rule; for the masked rule the mean and spread over ``mask_draws`` draws, and the
  accuracy of the average of ``mc_passes`` masked passes."""
  x_all, y_all = _normalized(images), jnp.asarray(labels)
  root = jax.random.key(seed)

  def run(rule, key):
    probabilities, losses, means = [], [], []
    for start in range(0, len(labels), batch):
      p, l, m = _forward_stats(params, x_all[start:start + batch], y_all[start:start + batch],
                               jax.random.fold_in(key, start), rate=rate, rule=rule,
                               activation=activation)
      probabilities.append(np.asarray(p)), losses.append(np.asarray(l)), means.append(np.asarray(m))
    probabilities = np.concatenate(probabilities)
    weights = np.diff([min(s, len(labels)) for s in range(0, len(labels) + batch, batch)])
    return probabilities, float(np.mean(np.concatenate(losses))), \
        (np.asarray(means) * weights[:, None]).sum(0) / len(labels)

  def summary(probabilities, loss, means):
    return {"accuracy": float(np.mean(np.argmax(probabilities, -1) == labels)), "loss": loss,
            "confidence": float(np.mean(np.max(probabilities, -1))),
            "mean_activation": [float(m) for m in means]}

  results = {rule: summary(*run(rule, root)) for rule in ("inverted", "no_rescale")}
  draws, passes = [], None
  for draw in range(max(mask_draws, mc_passes)):
    probabilities, loss, means = run("train", jax.random.fold_in(root, 1000 + draw))
    if draw < mask_draws:
      draws.append(summary(probabilities, loss, means))
    if draw < mc_passes:
      passes = probabilities if passes is None else passes + probabilities
  accuracies = [d["accuracy"] for d in draws]
  results["masks_on"] = {
      "accuracy": float(np.mean(accuracies)), "accuracy_std": float(np.std(accuracies)),
      "accuracies": accuracies, "loss": float(np.mean([d["loss"] for d in draws])),
      "confidence": float(np.mean([d["confidence"] for d in draws])),
      "mean_activation": [float(v) for v in np.mean([d["mean_activation"] for d in draws], 0)]}
  averaged = passes / mc_passes
  results["masks_averaged"] = {
      "passes": mc_passes, "accuracy": float(np.mean(np.argmax(averaged, -1) == labels)),
      "loss": float(np.mean(-np.log(np.maximum(averaged[np.arange(len(labels)), labels], 1e-30)))),
      "confidence": float(np.mean(np.max(averaged, -1)))}
  return results


def dropout_network(split: _runs.MnistSplits, settings: Settings, profile: str,
                    activation: str = "relu") -> dict[str, Any]:
  train = _runs.head(split.train, settings.dropout_train_size)
  validation = _runs.head(split.validation, settings.validation_size)
  test = _runs.head(split.test, settings.test_size)
  config = _config(f"dropout_{activation}", {"hidden_sizes": settings.dropout_hidden,
                                             "dropout_rate": settings.dropout_rate,
                                             "activation": activation},
                   epochs=settings.dropout_epochs, optimizer="adam", learning_rate=1e-3,
                   settings=settings, profile=profile)
  trained = _runs.train_model(config, train, validation)
  rules = evaluate_rules(trained.params, test.images, test.labels, rate=settings.dropout_rate,
                         mask_draws=settings.mask_draws, mc_passes=settings.mc_passes,
                         seed=settings.seed, activation=activation)
  engine_accuracy, engine_top_k = trained.accuracy_and_top_k(test.images, test.labels)
  return {"config": _runs.plain_config(config), "parameters": trained.parameter_count(),
          "history": trained.history, "train_seconds": trained.seconds, "rate": settings.dropout_rate,
          "rules": rules, "engine_test_accuracy": engine_accuracy,
          "engine_top_k": engine_top_k}
