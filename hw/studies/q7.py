"""EECS 498/598 HW1 Q7 (SPEC A7): three short answers, each shown by an experiment on MNIST.

1. **Deep sigmoid networks train badly.** The same 8-hidden-layer MLP with sigmoid and with
   ReLU units, trained alike (SGD with momentum, LeCun-normal init): loss curves, the
   gradient norm of every layer at initialisation and after every epoch, and the state of
   the sigmoid units (mean output, mean derivative σ' = σ(1 − σ), share saturated).
2. **Dropout at inference.** One network trained with inverted dropout, evaluated with the
   inverted rule (no mask, no scaling), with train-time masks left on, with the average of
   many masked passes, and as plain dropout without the test-time rescaling.
3. **A loss that drops fast and then diverges.** A learning-rate sweep of SGD with
   momentum whose largest rates diverge, then the fixes for the largest rate: a lower rate,
   a larger batch, a decaying schedule, gradient clipping.

Parts 1 and 2 train with the engine (:func:`hw.train.train`, hooks for the per-epoch
measurements); part 3 needs per-step losses and gradient clipping, which the engine's
per-epoch records and optimiser registry do not offer, so it runs a small loop of its own
(optax SGD, gradients from hw.ops' hand-written VJPs as everywhere). Every number in the
report text comes from the run.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import os
import time
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from hw import ops, train as core
from hw.config import ExperimentConfig
from hw.splits import Split
from hw.studies import _runs
from hw.studies._runs import percent

NAME = "q7"
TITLE = "Q7 (EECS short answers): deep sigmoid nets, dropout at inference, a diverging loss"
REPORTED = ("short answers, no numbers",)
MNIST_NORMALIZE = (0.1307, 0.3081)
ACTIVATIONS = {"relu": ops.relu, "tanh": ops.tanh, "sigmoid": ops.sigmoid}
SATURATED = 0.05  # a sigmoid unit counts as saturated when σ(z) < 0.05 or σ(z) > 0.95


@dataclasses.dataclass(frozen=True)
class Settings:
  """Sizes of one run of the study (a profile)."""
  # 1. deep sigmoid vs ReLU
  deep_train_size: int | None = 10_000
  deep_hidden: tuple[int, ...] = (128,) * 8
  deep_epochs: int = 10
  deep_learning_rate: float = 0.05
  probe_size: int = 1000            # training images of the gradient / activation probes
  # 2. dropout
  dropout_train_size: int | None = None
  dropout_hidden: tuple[int, ...] = (512, 512)
  dropout_rate: float = 0.5
  dropout_epochs: int = 3
  mask_draws: int = 5               # single masked passes, for the mean and spread
  mc_passes: int = 20               # masked passes averaged (Monte-Carlo dropout)
  # 3. learning rates
  lr_hidden: tuple[int, ...] = (256, 256)
  lr_steps: int = 600
  lr_batch: int = 100
  lr_sweep: tuple[float, ...] = (0.01, 0.03, 0.1, 0.3, 1.0)
  lr_large_batch: int = 1000
  lr_clip: float = 1.0
  lr_log_every: int = 10
  validation_size: int | None = 2000
  test_size: int | None = None
  seed: int = 0


SETTINGS = {"quick": Settings(), "full": Settings(deep_train_size=None, deep_epochs=20,
                                                  dropout_epochs=10, lr_steps=2000)}


def _config(name: str, model_kwargs: dict[str, Any], *, epochs: int, optimizer: str,
            learning_rate: float, settings: Settings, profile: str) -> ExperimentConfig:
  return ExperimentConfig(
      name=f"{NAME}_{name}", title=f"Q7 {name}", dataset="mnist", model="mlp",
      model_kwargs=model_kwargs, optimizer=optimizer, learning_rate=learning_rate,
      momentum=0.9, batch_size=100, epochs=epochs, weight_scale=None,
      normalize=MNIST_NORMALIZE, seed=settings.seed, profile=profile)


def _normalized(images: np.ndarray) -> jax.Array:
  return jnp.asarray((np.asarray(images, np.float32) - MNIST_NORMALIZE[0]) / MNIST_NORMALIZE[1])


# ------------------------------------------------------------- 1. sigmoid vs ReLU

def layer_names(params: Any) -> list[str]:
  """The MLP's dense layers in order: Dense_0 (first hidden) … Dense_L (output)."""
  return [f"Dense_{i}" for i in range(len(params)) if f"Dense_{i}" in params]


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


class Probe(core.Hook):
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
    state = core.init_state(config, programs, jnp.asarray(train.images[:config.batch_size]))
    hook = Probe(programs.model, probe_images, probe_labels, activation)
    hook.measure(0, state.params)
    initial_loss, initial_accuracy = core.evaluate(
        state, programs, _device(validation, config))
    trained = _runs.train_model(config, train, validation, hooks=[hook], state=state)
    test = _runs.head(split.test, settings.test_size)
    runs[name] = {
        "activation": activation, "weight_init": "LeCun normal" if weight_scale is None
        else f"N(0, {weight_scale:g}²)",
        "config": _runs.plain_config(config), "parameters": trained.parameter_count(),
        "initial": {"val_loss": initial_loss, "val_accuracy": initial_accuracy},
        "history": trained.history, "probes": hook.records, "train_seconds": trained.seconds,
        "test_accuracy": trained.accuracy(test.images, test.labels)}
  return runs


def _device(split: Split, config: ExperimentConfig):
  from hw.splits import to_device
  return to_device(split, config.normalize, config.eval_batch_size)


# ------------------------------------------------------------------------ 2. dropout

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
  engine_accuracy = trained.accuracy(test.images, test.labels)
  return {"config": _runs.plain_config(config), "parameters": trained.parameter_count(),
          "history": trained.history, "train_seconds": trained.seconds, "rate": settings.dropout_rate,
          "rules": rules, "engine_test_accuracy": engine_accuracy}


# -------------------------------------------------------------- 3. learning rates

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
  from hw import models
  train, test = split.train, _runs.head(split.test, settings.test_size)
  model = models.create_model("mlp", num_outputs=_runs.NUM_CLASSES,
                              hidden_sizes=settings.lr_hidden)
  from hw.randomness import init_key
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
      entry["dead_units"] = dead_units(params, _normalized(test.images[:settings.probe_size]))
    else:
      entry["test_accuracy"] = entry["dead_units"] = None
    entry["unstable"] = is_unstable(entry)
  return {"hidden": list(settings.lr_hidden), "momentum": 0.9, "steps": settings.lr_steps,
          "sweep": sweep, "diverging_rate": lr, "fixes": fixes}


# ------------------------------------------------------------------------- the study

def run(workdir: str | os.PathLike, *, profile: str, data_dir: str | os.PathLike | None,
        settings: Settings | None = None, dataset: Any = None) -> dict[str, Any]:
  settings = settings or SETTINGS[profile]
  cpu_began = time.process_time()
  mnist = _runs.load_mnist(data_dir, dataset)
  deep = deep_networks(mnist, settings, profile)
  drop = dropout_network(mnist, settings, profile)
  rates = learning_rates(mnist, settings, profile)
  figures = [_plot_deep(workdir, deep), _plot_dropout(workdir, drop), _plot_rates(workdir, rates)]
  results = {"sigmoid_vs_relu": deep, "dropout": drop, "learning_rate": rates,
             "settings": dataclasses.asdict(settings), "figures": figures,
             "data": {"source": mnist.source}, "meets_target": None,
             "cpu_seconds": time.process_time() - cpu_began}
  results["summary"] = summary(results)
  results["headline"] = headline(results)
  return results


def headline(results: dict[str, Any]) -> str:
  deep = results["sigmoid_vs_relu"]
  rules = results["dropout"]["rules"]
  return (f"sigmoid {percent(deep['sigmoid']['test_accuracy'])} vs ReLU "
          f"{percent(deep['relu']['test_accuracy'])}; dropout rules "
          f"{percent(rules['inverted']['accuracy'])} / {percent(rules['masks_on']['accuracy'])} / "
          f"{percent(rules['no_rescale']['accuracy'])}")


def summary(results: dict[str, Any]) -> list[str]:
  return [*_deep_text(results["sigmoid_vs_relu"]), "", *_dropout_text(results["dropout"]), "",
          *_rates_text(results["learning_rate"])]


def _deep_text(deep: dict[str, Any]) -> list[str]:
  sig, relu = deep["sigmoid"], deep["relu"]
  hidden = sig["config"]["model_kwargs"]["hidden_sizes"]
  s0, r0, s_end = sig["probes"][0], relu["probes"][0], sig["probes"][-1]
  ratio = lambda p: p["grad_norm"][0] / p["grad_norm"][-1]
  product = float(np.prod(s0["mean_derivative"]))
  epochs = sig["config"]["epochs"]
  outcome = lambda run: (f"{run['initial']['val_loss']:.2f} → {run['history'][-1]['train_loss']:.3f}, "
                         f"test accuracy {percent(run['test_accuracy'])}")
  text = (
      f"**1. Why deep sigmoid networks train badly.** The same MLP with {len(hidden)} hidden "
      f"layers of {hidden[0]} units, trained {epochs} epochs with SGD (momentum 0.9, lr "
      f"{sig['config']['learning_rate']:g}, LeCun-normal init). Loss: ReLU {outcome(relu)}; "
      f"sigmoid {outcome(sig)} (chance: ln 10 = {math.log(10):.3f}, 10%). The backward pass "
      f"shows why. At initialisation the gradient of the first layer's weights is "
      f"{ratio(s0):.1e} of the output layer's in the sigmoid net, against {ratio(r0):.1f} in "
      f"the ReLU net, and after training it is still {ratio(s_end):.1e}: the first layers do "
      f"not learn. Every sigmoid layer multiplies the backward signal by σ'(z) = σ(1 − σ) ≤ "
      f"1/4; here the mean σ' per layer is {min(s0['mean_derivative']):.3f}–"
      f"{max(s0['mean_derivative']):.3f}, and their product over the {len(hidden)} layers, "
      f"{product:.1e}, accounts for the measured {ratio(s0):.1e}. That is not saturation: at "
      f"this initialisation at most {percent(max(s0['saturated']))} of a layer's units are "
      f"saturated (σ < {SATURATED} or > {1 - SATURATED}; "
      f"{percent(max(s_end['saturated']))} after training). The ReLU's derivative is 1 on "
      f"active units ({percent(min(r0['mean_derivative']))}–"
      f"{percent(max(r0['mean_derivative']))} of them), so the signal keeps its size.")
  large = deep.get("sigmoid_large_init")
  if large is not None:
    l0 = large["probes"][0]
    learns = large["test_accuracy"] > sig["test_accuracy"] + 0.05
    text += (
        f" Saturation is what larger weights add: with {large['weight_init']} weights, "
        f"{percent(min(l0['saturated']))}–{percent(max(l0['saturated']))} of the units per "
        f"layer are saturated at initialisation and the mean σ' drops to "
        f"{min(l0['mean_derivative']):.3f}–{max(l0['mean_derivative']):.3f}; "
        + (f"yet the weights, √{hidden[0]} ≈ {math.sqrt(hidden[0]):.0f}× LeCun's, multiply "
           f"the backward signal as well, so the gradient shrinks by {layer_gain(l0):.2f} per "
           f"layer instead of {layer_gain(s0):.2f} (ReLU: {layer_gain(r0):.2f}), the first "
           f"layer gets {ratio(l0):.1e} of the output layer's gradient, and this net does "
           f"learn, from a huge initial loss (saturated logits): {outcome(large)}. Saturation "
           f"costs gradient, but what decides is the gain σ'·‖W‖ of each layer, which the "
           f"sigmoid's σ' ≤ 1/4 keeps small at the initialisation that suits ReLU nets."
           if learns else
           f"the first layer gets {ratio(l0):.1e} of the output layer's gradient (a factor "
           f"{layer_gain(l0):.2f} per layer; LeCun sigmoid {layer_gain(s0):.2f}, ReLU "
           f"{layer_gain(r0):.2f}), and training goes {outcome(large)}."))
  text += (
      f" The sigmoid's outputs are also not centred (mean {min(s0['mean_output']):.2f}–"
      f"{max(s0['mean_output']):.2f} per layer): the gradient of a weight into unit j, "
      f"δ_j h_i with every h_i > 0, has the sign of δ_j for all i, so the weights into one "
      f"unit can only all rise or all fall in a step, and the next layer's pre-activations "
      f"start off-centre.")
  return [text]


def _percent_change(value: float, reference: float) -> str:
  change = 100 * (value / reference - 1)
  return f"{abs(change):.0f}% {'above' if change >= 0 else 'below'}"


def layer_gain(probe_: dict[str, Any]) -> float:
  """Geometric mean of the factor by which the weight-gradient norm shrinks per layer,
  from the output layer down to the first: (‖∂L/∂W_1‖ / ‖∂L/∂W_L‖)^(1/(L − 1))."""
  norms = probe_["grad_norm"]
  return float((norms[0] / norms[-1]) ** (1 / (len(norms) - 1)))


def _dropout_text(drop: dict[str, Any]) -> list[str]:
  rules, p = drop["rules"], drop["rate"]
  inv, on, avg, raw = (rules[k] for k in ("inverted", "masks_on", "masks_averaged", "no_rescale"))
  hidden = drop["config"]["model_kwargs"]["hidden_sizes"]
  ratios = ", ".join(f"{r / i:.2f}×" for r, i in zip(raw["mean_activation"], inv["mean_activation"]))
  means = lambda rule: ", ".join(f"{v:.3f}" for v in rule["mean_activation"])
  first_match = abs(on["mean_activation"][0] - inv["mean_activation"][0]) <= 0.02 * abs(
      on["mean_activation"][0])
  drop_points = 100 * (inv["accuracy"] - raw["accuracy"])
  verdict = ("barely moves the accuracy" if abs(drop_points) < 0.5
             else f"costs {drop_points:.1f} points of accuracy")
  table = [
      "| test-time rule | test accuracy | test loss | mean confidence | mean dropout output per layer |",
      "|---|---|---|---|---|",
      f"| inverted rule: no mask, no scaling (right) | **{percent(inv['accuracy'], 2)}** | "
      f"{inv['loss']:.3f} | {inv['confidence']:.3f} | {means(inv)} |",
      f"| train-time masks left on ({len(on['accuracies'])} draws) | "
      f"{percent(on['accuracy'], 2)} ± {100 * on['accuracy_std']:.2f} | {on['loss']:.3f} | "
      f"{on['confidence']:.3f} | {means(on)} |",
      f"| masks on, {avg['passes']} passes averaged | {percent(avg['accuracy'], 2)} | "
      f"{avg['loss']:.3f} | {avg['confidence']:.3f} | — |",
      f"| plain dropout without the test-time ×(1 − p) | {percent(raw['accuracy'], 2)} | "
      f"{raw['loss']:.3f} | {raw['confidence']:.3f} | {means(raw)} |"]
  text = (
      f"What has to match is what each layer receives in training and at test time. In "
      f"training (masks on, kept units × 1/(1 − p)) the dropout layers' mean outputs are "
      f"{means(on)}; the inverted rule with no mask gives {means(inv)}"
      + (f" — the same for the first layer, whose input carries no noise (E[h ⊙ M]/(1 − p) = "
         f"h exactly); deeper, the training-time mean is "
         f"{_percent_change(on['mean_activation'][-1], inv['mean_activation'][-1])} the "
         f"test-time one, because the ReLU of a noisy input has a larger mean than the ReLU of "
         f"its mean (the rule is exact for one layer, an approximation after that). "
         if first_match else ". ")
      + f"Leaving the masks on keeps these means but feeds every prediction the training "
      f"noise: {percent(on['accuracy'], 2)} instead of {percent(inv['accuracy'], 2)}, loss "
      f"{on['loss']:.3f} instead of {inv['loss']:.3f}; averaging {avg['passes']} masked "
      f"passes recovers {percent(avg['accuracy'], 2)} at {avg['passes']}× the cost. Plain "
      f"dropout trains with h ⊙ M and must multiply by 1 − p = {1 - p:g} at test time; "
      f"without that factor the dropout outputs are {ratios} their values under the right "
      f"rule (the factor compounds layer by layer), the mean confidence rises from "
      f"{inv['confidence']:.3f} to {raw['confidence']:.3f} and the loss from "
      f"{inv['loss']:.3f} to {raw['loss']:.3f}: the network is over-confident. The mistake "
      f"{verdict} here ({percent(raw['accuracy'], 2)}): ReLU layers are positively "
      f"homogeneous, relu(c z) = c relu(z), so scaling a layer's input scales every later "
      f"layer except for the biases, and the arg-max mostly survives; the loss and the "
      f"activations show the mismatch. The right rule is inverted dropout and nothing at "
      f"test time (hw.ops.dropout's choice), or plain dropout and × (1 − p) at test time "
      f"(the same function).")
  return [f"**2. Dropout at inference.** An MLP {'–'.join(str(h) for h in hidden)} with "
          f"dropout p = {p:g} after each hidden layer, trained {drop['config']['epochs']} "
          f"epochs with inverted dropout, evaluated on the test set four ways:", "", *table,
          "", text]



def _loss(value: float) -> str:
  return f"{value:.2f}" if abs(value) < 1000 else f"{value:.1e}"


def _describe_run(run: dict[str, Any], steps: int) -> str:
  if run["lowest_at_step"] is None or run["first_step_loss"] is None:
    return f"non-finite at step {run['diverged_at_step']}"
  text = f"{_loss(run['first_step_loss'])} at step 1"
  if run["lowest_loss"] < run["first_step_loss"]:
    text += f" → lowest {_loss(run['lowest_loss'])} by step {run['lowest_at_step']}"
  else:
    text += f" → {_loss(run['highest_loss'])} by step {run['steps'][0]}"
  if run["diverged_at_step"] is not None:
    return text + f" → non-finite at step {run['diverged_at_step']}"
  if run["highest_after_lowest"] > run["lowest_loss"] + 0.5:
    text += f" → up to {_loss(run['highest_after_lowest'])}"
  return text + f" → {_loss(run['final_loss'])} at step {steps}"


def _fix_outcome(fix: dict[str, Any]) -> str:
  if fix["diverged_at_step"] is not None:
    return f"still diverges (non-finite at step {fix['diverged_at_step']})"
  if fix["unstable"]:
    return f"still diverges (final loss {fix['final_loss']:.2f})"
  return f"final loss {fix['final_loss']:.3f}, test accuracy {percent(fix['test_accuracy'])}"


def _rates_text(rates: dict[str, Any]) -> list[str]:
  sweep, fixes, steps = rates["sweep"], rates["fixes"], rates["steps"]
  lr = rates["diverging_rate"]
  unstable = [r for r in sweep if r["unstable"]]
  hidden = "–".join(str(h) for h in rates["hidden"])
  text = (f"**3. A loss that drops fast and then diverges.** An MLP with hidden layers {hidden}, "
          f"SGD with momentum {rates['momentum']:g}, batch {sweep[0]['batch_size']}, {steps} "
          f"steps from the same initialisation; training loss (mean of "
          f"{sweep[0]['steps'][0] if sweep[0]['steps'] else '—'} steps) per rate: "
          + "; ".join(f"lr {r['learning_rate']:g}: {_describe_run(r, steps)}" for r in sweep) + ". ")
  if not unstable:
    return [text + "None of the rates diverged in this run, so there is nothing to fix."]
  first = next(r for r in sweep if r["learning_rate"] == lr)
  chance = math.log(_runs.NUM_CLASSES)
  text += (f"{len(unstable)} of the {len(sweep)} rates diverge. ")
  if first["diverged_at_step"] is None and first["lowest_at_step"] is not None:
    text += (f"At lr {lr:g} the loss first drops fast ({first['first_step_loss']:.2f} → "
             f"{first['lowest_loss']:.2f} by step {first['lowest_at_step']}), then jumps to "
             f"{first['highest_after_lowest']:.2f} and ends at {first['final_loss']:.2f}"
             + (f" ≈ ln 10 = {chance:.2f}, the loss of a constant prediction: "
                f"{percent(first['dead_units'])} of the hidden units are now inactive on every "
                f"test image (dead ReLUs), and the network never recovers. "
                if abs(first["final_loss"] - chance) < 0.05 else ". "))
  text += ("An early fast drop says nothing about whether a rate is safe: the step that "
           "helps while the loss surface is flat overshoots once it curves more sharply, "
           "and momentum adds up the overshoots. ")
  worked = [f for f in fixes if not f["unstable"]]
  failed = [f for f in fixes if f["unstable"]]
  text += (f"Fixes, each started again from the same initialisation at lr {lr:g} (the "
           f"lower rate is the sweep's best stable one): "
           + "; ".join(f"{f['label']}: {_fix_outcome(f)}" for f in fixes) + ". ")
  by_label = {f["schedule"] if f["schedule"] != "constant" else
              ("clip" if f["clip"] is not None else
               ("batch" if f["batch_size"] != sweep[0]["batch_size"] else "lower")): f
              for f in fixes}
  notes = []
  if "batch" in by_label:
    batch = by_label["batch"]
    notes.append(
        f"The larger batch ({batch['batch_size']}) {'works' if not batch['unstable'] else 'does not help'}"
        + (": it divides the gradient noise's standard deviation by "
           f"√{batch['batch_size'] // sweep[0]['batch_size']}, and here the noise, added up "
           "by momentum, is what threw the iterates out" if not batch["unstable"] else
           ": the rate itself is too large for the curvature, whatever the noise"))
  if "cosine" in by_label and first["lowest_at_step"] is not None:
    cosine = by_label["cosine"]
    at = first["lowest_at_step"]
    share = 0.5 * (1 + math.cos(math.pi * at / steps))
    notes.append(
        f"cosine decay {'works' if not cosine['unstable'] else 'alone does not help'}"
        + (f": at step {at}, where the run at lr {lr:g} turned, the schedule is still at "
           f"{percent(share)} of the rate" if cosine["unstable"] else "")
        + ("; a warm-up (the rate rising from 0 over the first 10% of the steps) before the "
           "decay " + ("does" if not by_label.get("warmup_cosine", {"unstable": True})["unstable"]
                       else "does not help either")
           if "warmup_cosine" in by_label else ""))
  if "clip" in by_label:
    clip = by_label["clip"]
    notes.append(f"clipping the gradient norm at {clip['clip']:g} "
                 + ("bounds every step and keeps the run stable" if not clip["unstable"]
                    else "is not enough"))
  if notes:
    notes[0] = notes[0][0].upper() + notes[0][1:]
    text += "; ".join(notes) + "."
  text += (f" Summary: {len(worked)} of the {len(fixes)} fixes work "
           f"({', '.join(f['label'] for f in worked) or 'none'})"
           + (f"; not: {', '.join(f['label'] for f in failed)}." if failed else "."))
  return [text]



# ---------------------------------------------------------------------------- figures

_DEEP_STYLE = {"sigmoid": ("tab:red", "sigmoid"), "relu": ("tab:blue", "ReLU"),
               "sigmoid_large_init": ("tab:purple", "sigmoid, N(0, 1) init")}


def _plot_deep(workdir, deep) -> str:
  plt = _runs.pyplot()
  fig, axes = plt.subplots(2, 3, figsize=(16, 9.5))
  style = lambda name: _DEEP_STYLE.get(name, ("tab:grey", name))
  ax = axes[0, 0]
  for name, run in deep.items():
    colour, label = style(name)
    epochs = [0] + [r["epoch"] for r in run["history"]]
    ax.plot(epochs, [run["initial"]["val_loss"]] + [r["train_loss"] for r in run["history"]],
            "o-", ms=3, color=colour, label=f"{label}: training")
    ax.plot(epochs, [run["initial"]["val_loss"]] + [r["val_loss"] for r in run["history"]],
            "--", color=colour, label=f"{label}: validation")
  cut = 3.5
  above = any(max([run["initial"]["val_loss"]] + [r["train_loss"] for r in run["history"]]) > cut
              for run in deep.values())
  ax.set(xlabel="epoch (0 = initialisation)", ylabel="cross-entropy",
         title=f"Loss (axis cut at {cut})" if above else "Loss", ylim=(0, cut))
  ax.grid(alpha=0.3)
  _runs.legend_below(ax, columns=2)
  ax = axes[0, 1]
  for name, run in deep.items():
    colour, label = style(name)
    layers = np.arange(1, len(run["probes"][0]["grad_norm"]) + 1)
    ax.semilogy(layers, run["probes"][0]["grad_norm"], "o-", color=colour,
                label=f"{label}: initialisation")
    ax.semilogy(layers, run["probes"][-1]["grad_norm"], "s--", color=colour,
                label=f"{label}: epoch {run['probes'][-1]['epoch']}")
  ax.set(xlabel="layer (1 = first hidden, last = output)", ylabel="‖∂L/∂W‖",
         title="Gradient norm per layer")
  ax.grid(alpha=0.3, which="both")
  _runs.legend_below(ax, columns=2)
  ax = axes[0, 2]
  for name, run in deep.items():
    colour, label = style(name)
    epochs = [p["epoch"] for p in run["probes"]]
    ax.semilogy(epochs, [p["grad_norm"][0] for p in run["probes"]], "o-", ms=3, color=colour,
                label=f"{label}: layer 1")
    ax.semilogy(epochs, [p["grad_norm"][-1] for p in run["probes"]], ":", color=colour,
                label=f"{label}: output layer")
  ax.set(xlabel="epoch (0 = initialisation)", ylabel="‖∂L/∂W‖",
         title="During training: first and last layer")
  ax.grid(alpha=0.3, which="both")
  _runs.legend_below(ax, columns=2)
  sigmoids = {name: run for name, run in deep.items() if run["activation"] == "sigmoid"}
  for ax, key, title, ylabel, scale in (
      (axes[1, 0], "saturated", "Saturated sigmoid units (σ < 0.05 or > 0.95)", "% of units", 100),
      (axes[1, 1], "mean_derivative", "Mean σ'(z) per layer (at most 1/4)", "mean σ'", 1),
      (axes[1, 2], "mean_output", "Mean sigmoid output per layer (not centred)", "mean σ(z)", 1)):
    for name, run in sigmoids.items():
      colour, label = style(name)
      layers = np.arange(1, len(run["probes"][0][key]) + 1)
      ax.plot(layers, [scale * v for v in run["probes"][0][key]], "o-", color=colour,
              label=f"{label}: initialisation")
      ax.plot(layers, [scale * v for v in run["probes"][-1][key]], "s--", color=colour,
              label=f"{label}: epoch {run['probes'][-1]['epoch']}")
    ax.set(xlabel="hidden layer", ylabel=ylabel, title=title)
    if key == "mean_derivative":
      ax.axhline(0.25, color="grey", lw=0.8, ls=":")
      ax.set_ylim(0, 0.27)
    elif key == "mean_output":
      ax.axhline(0.5, color="grey", lw=0.8, ls=":")
      ax.set_ylim(0, 1)
    else:
      ax.set_ylim(-2, 102)
    ax.grid(alpha=0.3)
    _runs.legend_below(ax, columns=2)
  from matplotlib.ticker import MaxNLocator
  for ax in axes.ravel():
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
  fig.tight_layout(h_pad=3)
  return _runs.save(fig, workdir, f"{NAME}_sigmoid_vs_relu.png")


def _plot_dropout(workdir, drop) -> str:
  plt = _runs.pyplot()
  rules = drop["rules"]
  fig, axes = plt.subplots(1, 3, figsize=(16, 4.4), gridspec_kw={"width_ratios": (1, 1, 1.1)})
  names = [("inverted", "inverted rule\n(no mask, no scale)"),
           ("masks_on", "masks left on"),
           ("masks_averaged", f"{rules['masks_averaged']['passes']} masked\npasses averaged"),
           ("no_rescale", "plain dropout,\nno ×(1−p)")]
  colours = ["tab:green", "tab:orange", "tab:olive", "tab:red"]
  for ax, key, title, unit, digits in ((axes[0], "accuracy", "Test accuracy", 100, 2),
                                       (axes[1], "loss", "Test loss (cross-entropy)", 1, 3)):
    values = [unit * rules[k][key] for k, _ in names]
    bars = ax.bar(range(len(names)), values, color=colours)
    top = max(values)
    for bar, value in zip(bars, values):
      ax.text(bar.get_x() + bar.get_width() / 2, value + 0.01 * top,
              f"{value:.{digits}f}{'%' if unit == 100 else ''}", ha="center", fontsize="small")
    ax.set_xticks(range(len(names)), [label for _, label in names], fontsize="small")
    ax.set_title(title)
    if key == "accuracy":
      ax.set(ylabel="%", ylim=(max(0, min(values) - 5), 100))
    else:
      ax.set(ylim=(0, 1.15 * top))
  ax = axes[2]
  layers = np.arange(1, len(rules["inverted"]["mean_activation"]) + 1)
  width = 0.25
  for offset, (key, label, colour) in zip(
      (-width, 0, width), (("masks_on", "training (masks, × 1/(1−p))", "tab:orange"),
                           ("inverted", "inverted rule at test", "tab:green"),
                           ("no_rescale", "plain dropout, no ×(1−p)", "tab:red"))):
    ax.bar(layers + offset, rules[key]["mean_activation"], width, color=colour, label=label)
  ax.set_xticks(layers, [f"hidden layer {i}" for i in layers])
  ax.set(ylabel="mean output of the dropout layer", title="Mean activation (test images)")
  _runs.legend_below(ax, columns=1)
  fig.suptitle(f"One MLP trained with inverted dropout (p = {drop['rate']:g}), four test-time rules",
               fontsize="medium")
  fig.tight_layout()
  return _runs.save(fig, workdir, f"{NAME}_dropout.png")


def _plot_rates(workdir, rates) -> str:
  plt = _runs.pyplot()
  fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), sharey=True)
  cmap = plt.get_cmap("viridis")
  starts = [r["first_step_loss"] for r in rates["sweep"] if r["first_step_loss"] is not None]
  ceiling = max([3.0] + [1.5 * v for v in starts])
  for ax, runs, title in ((axes[0], rates["sweep"], "Learning-rate sweep"),
                          (axes[1], rates["fixes"], f"Fixes for lr {rates['diverging_rate']:g}")):
    for i, r in enumerate(runs):
      colour = cmap(i / max(len(runs) - 1, 1))
      loss = np.minimum(r["loss"], ceiling)
      end = " (diverged)" if r["unstable"] else ""
      ax.plot(r["steps"], loss, "-", color=colour, lw=1.5, label=f"{r['label']}{end}")
      if r["diverged_at_step"] is not None:
        ax.plot([r["diverged_at_step"]], [ceiling], "x", color=colour, ms=9, mew=2)
    ax.set(xlabel="step", title=title, ylim=(0, ceiling * 1.05))
    ax.grid(alpha=0.3)
    _runs.legend_below(ax, columns=2)
  every = next((r["steps"][0] for r in rates["sweep"] if r["steps"]), 1)
  axes[0].set_ylabel(f"training loss (mean of {every} steps)")
  fig.suptitle(f"SGD with momentum {rates['momentum']:g}: × marks a non-finite loss; curves "
               f"are cut at {ceiling:.1f}", fontsize="medium")
  fig.tight_layout()
  return _runs.save(fig, workdir, f"{NAME}_learning_rate.png")
