"""(b) of the optimisers study: the Q4.4 MLP 784–H–ReLU–10 on MNIST from ``hw.ops``, trained
with every optimiser and learning rate of its grid on the same mini-batches, selected on
validation and tested once; and the figure of the selected runs.

It trains with a scan of its own, not the engine's loop (:func:`hw.engine.train`): the
optimisers compared are the hand-written :mod:`hw.optim.transforms` (the engine's registry
holds optax's), every run takes the same step budget across epochs and is evaluated every
``eval_every`` steps, and its published numbers come from this loop."""
from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

import hw.ops
from experiments.studies import _common
from experiments.studies.optimizers.settings import COLOURS, NAME, NAMES, QUICK, MlpSettings
from hw import metrics
from hw.optim import transforms


def init_mlp(key: jax.Array, hidden: int, inputs: int = 784, classes: int = 10) -> dict:
  """LeCun-normal weights (std 1/√fan_in) and zero biases of 784–H–10."""
  k1, k2 = jax.random.split(key)
  return {"w1": jax.random.normal(k1, (inputs, hidden)) / math.sqrt(inputs),
          "b1": jnp.zeros(hidden),
          "w2": jax.random.normal(k2, (hidden, classes)) / math.sqrt(hidden),
          "b2": jnp.zeros(classes)}


def mlp_logits(params: dict, x: jax.Array) -> jax.Array:
  """``linear → relu → linear`` with ``hw.ops`` (hand-written VJPs)."""
  hidden = hw.ops.relu(hw.ops.linear(x, params["w1"], params["b1"]))
  return hw.ops.linear(hidden, params["w2"], params["b2"])


def mlp_loss(params: dict, x: jax.Array, labels: jax.Array) -> jax.Array:
  """Mean softmax cross-entropy (``hw.ops.softmax_cross_entropy``)."""
  return hw.ops.softmax_cross_entropy(mlp_logits(params, x), labels)


@functools.partial(jax.jit, static_argnames=("name",))
def _train_chunk(name, learning_rate, params, opt_state, images, labels, batch_indices):
  """``len(batch_indices)`` steps of optimiser ``name``; returns the per-step losses."""
  optimizer = transforms.by_name(name, learning_rate)

  def step(carry, indices):
    params, opt_state = carry
    loss, grads = jax.value_and_grad(mlp_loss)(params, images[indices], labels[indices])
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state), loss
  (params, opt_state), losses = jax.lax.scan(step, (params, opt_state), batch_indices)
  return params, opt_state, losses


@jax.jit
def _evaluate(params, images, labels):
  logits = mlp_logits(params, images)
  loss = hw.ops.softmax_cross_entropy(logits, labels)
  accuracy = jnp.mean((jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32))
  return loss, accuracy


def _standardised(split, mean, std):
  images = np.asarray(split.images, np.float32).reshape(len(split), -1)
  return jnp.asarray((images - mean) / std), jnp.asarray(split.labels, jnp.int32)


def _splits(mnist, data_dir):
  """(train, validation, test) ArraySplits from None, a Dataset or a triple."""
  import hw.data
  if mnist is None:
    mnist = hw.data.load_dataset("mnist", data_dir=data_dir)
  if isinstance(mnist, hw.data.Dataset):
    train, validation = hw.data.split_validation(mnist.train, fraction=0.1, seed=0)
    return train, validation, mnist.test
  train, validation, test = mnist
  return train, validation, test


def _batch_schedule(num_train: int, settings: MlpSettings) -> np.ndarray:
  """(steps, batch) indices: shuffled epochs, the same for every run."""
  rng = np.random.default_rng(settings.seed)
  per_epoch = num_train // settings.batch_size
  epochs = -(-settings.steps // per_epoch)
  order = np.concatenate([rng.permutation(num_train)[:per_epoch * settings.batch_size]
                          for _ in range(epochs)])
  return order[:settings.steps * settings.batch_size].reshape(settings.steps,
                                                              settings.batch_size)


def run_mlp(mnist=None, *, settings: MlpSettings = QUICK, data_dir=None) -> dict:
  """Train the MLP with every optimiser and grid point; select on validation; test once."""
  train, validation, test = _splits(mnist, data_dir)
  pixels = np.asarray(train.images, np.float32)
  mean, std = float(pixels.mean()), float(pixels.std())
  train_x, train_y = _standardised(train, mean, std)
  val_x, val_y = _standardised(validation, mean, std)
  test_x, test_y = _standardised(test, mean, std)
  batches = jnp.asarray(_batch_schedule(len(train), settings))
  init = init_mlp(jax.random.key(settings.seed), settings.hidden, train_x.shape[1],
                  int(max(train.labels.max(), test.labels.max())) + 1)
  chunks = [(s, min(s + settings.eval_every, settings.steps))
            for s in range(0, settings.steps, settings.eval_every)]
  per_optimizer = {}
  for name in NAMES:
    runs, best_params, best_key = [], None, None
    for lr in settings.learning_rates[name]:
      params = init
      opt_state = transforms.by_name(name, lr).init(params)
      losses, curve = [], []
      for begin, end in chunks:
        params, opt_state, chunk_losses = _train_chunk(
            name, jnp.float32(lr), params, opt_state, train_x, train_y, batches[begin:end])
        losses.append(np.asarray(chunk_losses))
        val_loss, val_acc = (float(v) for v in _evaluate(params, val_x, val_y))
        curve.append({"step": end, "val_loss": val_loss, "val_accuracy": val_acc})
      losses = np.concatenate(losses)
      final = curve[-1]
      key = (final["val_accuracy"] if np.isfinite(final["val_loss"]) else -1.0,
             -final["val_loss"] if np.isfinite(final["val_loss"]) else -np.inf)
      runs.append({"learning_rate": lr, "train_loss": losses, "validation": curve,
                   "final_val_accuracy": final["val_accuracy"],
                   "final_val_loss": final["val_loss"]})
      if best_key is None or key > best_key:
        best_key, best_params, best_lr = key, params, lr
    test_loss, test_acc = (float(v) for v in _evaluate(best_params, test_x, test_y))
    best_run = next(r for r in runs if r["learning_rate"] == best_lr)
    grid = settings.learning_rates[name]
    per_optimizer[name] = {
        "best_learning_rate": best_lr,
        "learning_rate_at_grid_edge": best_lr in (grid[0], grid[-1]) and len(grid) > 1,
        "val_accuracy": best_run["final_val_accuracy"], "val_loss": best_run["final_val_loss"],
        "val_accuracy_standard_error": math.sqrt(
            best_run["final_val_accuracy"] * (1 - best_run["final_val_accuracy"])
            / len(validation)),
        "test_accuracy": test_acc, "test_loss": test_loss,
        "top_k": metrics.top_k_errors(np.asarray(mlp_logits(best_params, test_x)), test_y),
        "grid": runs}
  ranking = sorted(NAMES, key=lambda n: (-per_optimizer[n]["val_accuracy"],
                                         per_optimizer[n]["val_loss"]))
  return {"settings": dataclasses.asdict(settings), "standardisation": {"mean": mean, "std": std},
          "num_train": len(train), "num_validation": len(validation), "num_test": len(test),
          "per_optimizer": per_optimizer, "ranking": ranking,
          "ranking_by": "final validation accuracy (then validation loss)",
          "note": ("one seed; accuracies that differ by less than about two standard errors "
                   "(val_accuracy_standard_error, binomial) do not separate the optimisers")}


def _plot_mlp(workdir, mlp: dict) -> None:
  plt = _common.pyplot()
  fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4.4))
  for name in NAMES:
    entry = mlp["per_optimizer"][name]
    run = next(r for r in entry["grid"] if r["learning_rate"] == entry["best_learning_rate"])
    losses = np.asarray(run["train_loss"])
    window = max(1, len(losses) // 50)
    smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
    label = f"{name} (lr {entry['best_learning_rate']:g}, test {100 * entry['test_accuracy']:.2f}%)"
    ax_loss.plot(np.arange(window, len(losses) + 1), smooth, color=COLOURS[name], label=label)
    steps = [c["step"] for c in run["validation"]]
    ax_loss.plot(steps, [c["val_loss"] for c in run["validation"]], "--", color=COLOURS[name])
    ax_acc.plot(steps, [100 * c["val_accuracy"] for c in run["validation"]], "-o", ms=3,
                color=COLOURS[name])
  ax_loss.set_yscale("log")
  ax_loss.set_xlabel("step")
  ax_loss.set_ylabel("cross-entropy loss")
  ax_loss.set_title("solid: training (running mean), dashed: validation", fontsize=10)
  ax_acc.set_xlabel("step")
  ax_acc.set_ylabel("validation accuracy (%)")
  settings = mlp["settings"]
  ax_acc.set_title(f"784–{settings['hidden']}–ReLU–10, batch {settings['batch_size']}")
  final = [100 * mlp["per_optimizer"][n]["val_accuracy"] for n in NAMES]
  ax_acc.set_ylim(max(0.0, min(final) - 6.0), min(100.0, max(final) + 1.0))
  _common.legend_below(fig, [ax_loss, ax_acc], columns=3, bottom=0.17)
  _common.save_figure(fig, workdir, f"{NAME}_mnist.png")
