"""Q7 part 3: a loss that drops fast and then diverges. A learning-rate sweep of SGD with
momentum whose largest rates diverge, then the fixes for the largest rate: a lower rate, a
larger batch, a decaying schedule, gradient clipping.

This part needs per-step losses and gradient clipping, which the engine's per-epoch records
and optimiser registry do not offer, so it runs a small loop of its own (optax SGD,
gradients from hw.ops' hand-written VJPs as everywhere)."""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments.studies import _runs
from experiments.studies.q7.shared import MNIST_NORMALIZE, Settings, _normalized, layer_names
from hw import metrics, ops


@dataclasses.dataclass(frozen=True)
class LrRun:
  """One run of :func:`sgd_run`."""
  label: str
  learning_rate: float
  batch_size: int
  schedule: str = "constant"   # "cosine": per-step cosine decay to 0 over the run;
                               # "warmup_cosine": linear warm-up over the first 10%, then that
  clip: float | None = None    # clip the global gradient norm to this


def sgd_run(model: Any, params: Any, images: jax.Array, labels: jax.Array, run: LrRun, *,
            steps: int, seed: int, log_every: int, momentum: float = 0.9) -> dict[str, Any]:
  """``steps`` steps of SGD with momentum on random mini-batches (drawn with replacement,
  the same draws for every run of one batch size); the mean training loss of every
  ``log_every`` steps; stops at the first non-finite loss (the run diverged)."""
  rate = schedule(run.schedule, run.learning_rate, steps)
  tx = optax.sgd(rate, momentum=momentum)
  if run.clip is not None:
    tx = optax.chain(optax.clip_by_global_norm(run.clip), tx)
  step = _sgd_step(model, tx)
  opt_state = tx.init(params)
  draws = np.random.default_rng(seed).integers(0, len(labels), size=(steps, run.batch_size))
  losses, norms, diverged_at = [], [], None
  for t in range(steps):
    params, opt_state, loss, norm = step(params, opt_state, images, labels, draws[t])
    losses.append(loss), norms.append(norm)
    if (t + 1) % log_every == 0 and not np.all(np.isfinite(np.asarray(losses[-log_every:]))):
      break
  losses = np.asarray([float(v) for v in losses])
  norms = np.asarray([float(v) for v in norms])
  start = float(losses[0]) if losses.size and np.isfinite(losses[0]) else None
  bad = np.flatnonzero(~np.isfinite(losses))
  if bad.size:
    diverged_at = int(bad[0]) + 1
    losses, norms = losses[:bad[0]], norms[:bad[0]]
  blocks = len(losses) // log_every
  curve = losses[:blocks * log_every].reshape(blocks, log_every).mean(1)
  initial = float(curve[0]) if blocks else None
  lowest = float(curve.min()) if blocks else None
  final = float(curve[-1]) if blocks else None
  after = curve[int(np.argmax(curve == lowest)):] if blocks else curve
  return {**dataclasses.asdict(run), "steps": [log_every * (i + 1) for i in range(blocks)],
          "loss": [float(v) for v in curve], "diverged_at_step": diverged_at,
          "first_step_loss": start, "initial_loss": initial, "lowest_loss": lowest,
          "highest_loss": float(curve.max()) if blocks else None,
          "lowest_at_step": log_every * (int(np.argmax(curve == lowest)) + 1) if blocks else None,
          "final_loss": final if diverged_at is None else None,
          "highest_after_lowest": float(after.max()) if after.size else None,
          "max_grad_norm": float(norms.max()) if norms.size and np.isfinite(norms.max()) else None,
          "params": params}


def schedule(name: str, learning_rate: float, steps: int) -> Any:
  """The learning rate of :class:`LrRun`'s ``schedule`` (a constant or an optax schedule)."""
  if name == "constant":
    return learning_rate
  if name == "cosine":
    return optax.cosine_decay_schedule(learning_rate, steps)
  if name == "warmup_cosine":
    return optax.warmup_cosine_decay_schedule(0.0, learning_rate, max(1, steps // 10), steps)
  raise ValueError(f"unknown schedule {name!r}")


def _sgd_step(model, tx):
  @functools.partial(jax.jit, donate_argnums=(0, 1))
  def step(params, opt_state, images, labels, index):
    x, y = jnp.take(images, index, axis=0), jnp.take(labels, index, axis=0)

    def loss_fn(p):
      return ops.softmax_cross_entropy(model.apply({"params": p}, x, train=False), y)
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss, optax.tree.norm(grads)
  return step


@jax.jit
def _dead(params, images):
  x, dead = images.reshape((images.shape[0], -1)), []
  for name in layer_names(params)[:-1]:
    z = ops.linear(x, params[name]["kernel"], params[name]["bias"])
    dead.append(jnp.all(z <= 0, axis=0))
    x = ops.relu(z)
  return jnp.mean(jnp.concatenate(dead))


def dead_units(params: Any, images: jax.Array) -> float:
  """Share of the MLP's hidden ReLU units that are inactive (z ≤ 0) on every image."""
  return float(_dead(params, images))


def is_unstable(run: dict[str, Any]) -> bool:
  """Diverged: a non-finite loss; or the loss (a mean over ``log_every`` steps) rose above
  twice the loss of the first step at some point; or it came down below half of it and
  ended above 0.9 of it again (it learned, then lost it all)."""
  start = run["first_step_loss"]
  if run["diverged_at_step"] is not None or start is None or run["final_loss"] is None:
    return True
  return bool(run["highest_loss"] > 2 * start
              or (run["lowest_loss"] < 0.5 * start and run["final_loss"] > 0.9 * start))


def learning_rates(split: _runs.MnistSplits, settings: Settings, profile: str) -> dict[str, Any]:
  from hw.nn import models
  train, test = split.train, _runs.head(split.test, settings.test_size)
  model = models.create_model("mlp", num_outputs=_runs.NUM_CLASSES,
                              hidden_sizes=settings.lr_hidden)
  from hw.engine.randomness import init_key
  initial = model.init(init_key(settings.seed), jnp.zeros((1,) + train.images.shape[1:]),
                       train=False)["params"]
  images, labels = _normalized(train.images), jnp.asarray(train.labels)
  run = functools.partial(sgd_run, model, steps=settings.lr_steps, seed=settings.seed,
                          log_every=settings.lr_log_every)
  copy = lambda: jax.tree_util.tree_map(jnp.array, initial)
  sweep = [run(copy(), images, labels, LrRun(f"lr {lr:g}", lr, settings.lr_batch))
           for lr in settings.lr_sweep]
  unstable = [r for r in sweep if is_unstable(r)]
  stable = [r for r in sweep if not is_unstable(r)]
  worst = max(unstable or sweep, key=lambda r: r["learning_rate"])
  diverging = min(unstable, key=lambda r: r["learning_rate"]) if unstable else worst
  best = min(stable or sweep, key=lambda r: r["final_loss"] if r["final_loss"] is not None
             else math.inf)
  lr = diverging["learning_rate"]
  lower = min((r for r in stable if r["learning_rate"] < lr), default=best,
              key=lambda r: r["final_loss"])
  fixes = [
      dict(lower, label=f"lower rate: lr {lower['learning_rate']:g}"),
      run(copy(), images, labels, LrRun(f"larger batch: {settings.lr_large_batch}", lr,
                                        settings.lr_large_batch)),
      run(copy(), images, labels, LrRun("cosine decay", lr, settings.lr_batch, "cosine")),
      run(copy(), images, labels, LrRun("warm-up + cosine decay", lr, settings.lr_batch,
                                        "warmup_cosine")),
      run(copy(), images, labels, LrRun(f"clip ‖g‖ ≤ {settings.lr_clip:g}", lr,
                                        settings.lr_batch, clip=settings.lr_clip)),
  ]
  for entry in [*sweep, *fixes]:
    params = entry.pop("params", None)
    if params is not None and entry.get("diverged_at_step") is None:
      scores = _runs.predict(model, {"params": params}, test.images, MNIST_NORMALIZE)
      entry["test_accuracy"] = float(np.mean(np.argmax(scores, -1) == test.labels))
      entry["top_k"] = metrics.top_k_errors(scores, test.labels)
      entry["dead_units"] = dead_units(params, _normalized(test.images[:settings.probe_size]))
    else:
      entry["test_accuracy"] = entry["dead_units"] = entry["top_k"] = None
    entry["unstable"] = is_unstable(entry)
  return {"hidden": list(settings.lr_hidden), "momentum": 0.9, "steps": settings.lr_steps,
          "sweep": sweep, "diverging_rate": lr, "fixes": fixes}
