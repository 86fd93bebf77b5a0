"""Study: SGD, momentum, Nesterov, RMSProp and Adam compared (SPEC D, optimisation).

(a) Two 2-D problems with hand-written gradients, every optimiser with the learning rate
    (from a log grid) that gets below the tolerance, and stays there, in the fewest
    steps (or else ends lowest): an ill-conditioned quadratic ``f(x) = ½ xᵀHx``,
    ``H = R diag(1, 25) Rᵀ`` rotated by 30° (so that no coordinate-wise method gets the
    axes for free), and Rosenbrock's
    ``f(x, y) = (1 − x)² + 100 (y − x²)²``. Trajectories are drawn over the contours.
(b) The Q4.4 MLP 784–H–ReLU–10 on MNIST, built from ``hw.ops.linear``/``relu``/
    ``softmax_cross_entropy`` (its gradient comes from their hand-written VJPs), same
    number of steps and mini-batches for every optimiser; each optimiser's learning
    rate is chosen from a small grid on a validation split (10% of the training set,
    seed 0) and its selected model is evaluated once on the test set.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import os
import time
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

import hw.ops
from hw.optim import transforms
from hw.studies import _common

NAME = "optimizers"
NAMES = transforms.OPTIMIZER_NAMES
COLOURS = {"sgd": "tab:grey", "momentum": "tab:blue", "nesterov": "tab:green",
           "rmsprop": "tab:orange", "adam": "tab:red"}


# ----------------------------------------------------------------------- (a) 2-D problems


@dataclasses.dataclass(frozen=True)
class ToyProblem:
  """A 2-D objective with its gradient written by hand.

  Attributes:
    name: short id.
    value: ``x (..., 2) -> f(x)`` (batched over leading axes).
    gradient: ``x (2,) -> ∇f(x)``, derived by hand (no autodiff).
    start: the starting point.
    minimum: the minimiser (f there is 0).
    steps: step budget of every optimiser.
    tolerance: ``f ≤ tolerance`` counts as solved.
    extent: (xmin, xmax, ymin, ymax) of the contour plot.
  """
  name: str
  value: Callable
  gradient: Callable
  start: tuple[float, float]
  minimum: tuple[float, float]
  steps: int
  tolerance: float
  extent: tuple[float, float, float, float]


def _rotation(angle):
  c, s = math.cos(angle), math.sin(angle)
  return np.array([[c, -s], [s, c]])


def quadratic_problem(condition: float = 25.0, angle: float = math.pi / 6) -> ToyProblem:
  """``f(x) = ½ xᵀHx``, ``H = R(angle) diag(1, condition) R(angle)ᵀ``; ``∇f = Hx``."""
  rotation = _rotation(angle)
  hessian = rotation @ np.diag([1.0, condition]) @ rotation.T
  h = jnp.asarray(hessian)
  return ToyProblem(
      name="quadratic",
      value=lambda x: 0.5 * jnp.einsum("...i,ij,...j->...", x, h.astype(x.dtype), x),
      gradient=lambda x: h.astype(x.dtype) @ x, start=(-3.0, 2.0), minimum=(0.0, 0.0),
      steps=200, tolerance=1e-8, extent=(-3.5, 3.5, -2.5, 2.5))


def _rosenbrock(x):
  return (1 - x[..., 0]) ** 2 + 100 * (x[..., 1] - x[..., 0] ** 2) ** 2


def _rosenbrock_gradient(x):
  """∂f/∂x = −2(1 − x) − 400 x (y − x²),  ∂f/∂y = 200 (y − x²)."""
  bend = x[1] - x[0] ** 2
  return jnp.stack([-2 * (1 - x[0]) - 400 * x[0] * bend, 200 * bend])


def rosenbrock_problem() -> ToyProblem:
  """Rosenbrock's banana from the classic start (−1.2, 1); minimum f(1, 1) = 0."""
  return ToyProblem(name="rosenbrock", value=_rosenbrock, gradient=_rosenbrock_gradient,
                    start=(-1.2, 1.0), minimum=(1.0, 1.0), steps=3000, tolerance=1e-6,
                    extent=(-2.0, 2.0, -1.0, 3.0))


TOY_LEARNING_RATES = tuple(float(v) for v in 10.0 ** np.arange(-4.0, 0.51, 0.25))


@functools.partial(jax.jit, static_argnames=("problem", "name"))
def _toy_trajectories(problem: ToyProblem, name: str, learning_rates):
  """Trajectories (len(lrs), steps + 1, 2) of optimiser ``name``, one per learning rate."""
  def run(lr):
    optimizer = transforms.by_name(name, lr)
    start = jnp.asarray(problem.start, learning_rates.dtype)

    def step(carry, _):
      x, state = carry
      updates, state = optimizer.update(problem.gradient(x), state, x)
      x = optax.apply_updates(x, updates)
      return (x, state), x
    _, path = jax.lax.scan(step, (start, optimizer.init(start)), None, length=problem.steps)
    return jnp.concatenate([start[None], path])
  return jax.vmap(run)(learning_rates)


def _steps_to_tolerance(values: np.ndarray, tolerance: float) -> int | None:
  """The first step from which ``f ≤ tolerance`` holds to the end of the run (a method
  that touches the tolerance and bounces back out has not reached it), or None."""
  above = np.flatnonzero(~(values <= tolerance))
  if not above.size:
    return 0
  return int(above[-1]) + 1 if above[-1] + 1 < len(values) else None


def _selection_key(values: np.ndarray, tolerance: float):
  """Sort key: solved runs by steps to tolerance, then unsolved ones by final value."""
  final = values[-1]
  if not np.all(np.isfinite(values)):
    return (2, math.inf, math.inf)
  steps = _steps_to_tolerance(values, tolerance)
  return (0, steps, final) if steps is not None else (1, final, 0.0)


def run_toy_problem(problem: ToyProblem,
                    learning_rates: Sequence[float] = TOY_LEARNING_RATES) -> dict:
  """Every optimiser on ``problem`` over the lr grid; the best lr each, and the ranking.

  Returns:
    ``{"per_optimizer": {name: {"learning_rate", "steps_to_tolerance", "final_value",
    "trajectory"}}, "ranking": [names, best first], …}``.
  """
  with jax.enable_x64(True):
    lrs = jnp.asarray(learning_rates, jnp.float64)
    per_optimizer = {}
    for name in NAMES:
      paths = np.asarray(_toy_trajectories(problem, name, lrs))
      values = _values(problem, paths)
      keys = [_selection_key(v, problem.tolerance) for v in values]
      best = min(range(len(learning_rates)), key=lambda i: keys[i])
      per_optimizer[name] = {
          "learning_rate": learning_rates[best],
          "learning_rate_at_grid_edge": best in (0, len(learning_rates) - 1),
          "steps_to_tolerance": _steps_to_tolerance(values[best], problem.tolerance),
          "final_value": float(values[best][-1]),
          "trajectory": paths[best],
          "values": values[best],
      }
  ranking = sorted(NAMES, key=lambda n: _selection_key(per_optimizer[n]["values"],
                                                       problem.tolerance))
  return {"problem": problem.name, "start": problem.start, "minimum": problem.minimum,
          "steps": problem.steps, "tolerance": problem.tolerance,
          "learning_rate_grid": list(learning_rates), "per_optimizer": per_optimizer,
          "ranking": ranking}


def _values(problem: ToyProblem, paths: np.ndarray) -> np.ndarray:
  """f along every trajectory (NumPy float64), with the problem's own formula."""
  with jax.enable_x64(True):
    return np.asarray(problem.value(jnp.asarray(paths, jnp.float64)))


# ------------------------------------------------------------------------- (b) MNIST MLP


@dataclasses.dataclass(frozen=True)
class MlpSettings:
  """Settings of the MNIST part.

  Attributes:
    hidden: H, the hidden width.
    steps: mini-batch steps per run (the same for every optimiser).
    batch_size: examples per step.
    eval_every: steps between two validation evaluations.
    learning_rates: the grid of each optimiser.
    seed: seed of the initialisation and of the mini-batch order (shared by all runs).
  """
  hidden: int
  steps: int
  batch_size: int
  eval_every: int
  learning_rates: dict
  seed: int = 0


QUICK = MlpSettings(hidden=256, steps=1000, batch_size=128, eval_every=50, learning_rates={
    "sgd": (0.1, 0.3, 1.0), "momentum": (0.01, 0.03, 0.1),
    "nesterov": (0.01, 0.03, 0.1), "rmsprop": (3e-4, 1e-3, 3e-3),
    "adam": (3e-4, 1e-3, 3e-3)})
FULL = MlpSettings(hidden=1000, steps=4000, batch_size=128, eval_every=200, learning_rates={
    "sgd": (0.01, 0.03, 0.1, 0.3, 1.0), "momentum": (0.001, 0.003, 0.01, 0.03, 0.1),
    "nesterov": (0.001, 0.003, 0.01, 0.03, 0.1), "rmsprop": (3e-5, 1e-4, 3e-4, 1e-3, 3e-3),
    "adam": (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)})


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
        "test_accuracy": test_acc, "test_loss": test_loss, "grid": runs}
  ranking = sorted(NAMES, key=lambda n: (-per_optimizer[n]["val_accuracy"],
                                         per_optimizer[n]["val_loss"]))
  return {"settings": dataclasses.asdict(settings), "standardisation": {"mean": mean, "std": std},
          "num_train": len(train), "num_validation": len(validation), "num_test": len(test),
          "per_optimizer": per_optimizer, "ranking": ranking,
          "ranking_by": "final validation accuracy (then validation loss)",
          "note": ("one seed; accuracies that differ by less than about two standard errors "
                   "(val_accuracy_standard_error, binomial) do not separate the optimisers")}


# --------------------------------------------------------------------------------- study


def run_optimizers(workdir: os.PathLike, *, mnist=None, quick: bool = True, data_dir=None,
                   settings: MlpSettings | None = None) -> dict:
  """Run both parts, write ``<workdir>/optimizers.json`` and two PNGs, return the results.

  Args:
    workdir: output folder.
    mnist: None (load MNIST from ``data_dir`` / ``$HW_DATA_DIR``), a ``hw.data.Dataset``
      (10% of its training split is held out for validation, seed 0) or a triple
      ``(train, validation, test)`` of ``hw.data.ArraySplit``.
    quick: the quick settings (H = 256, 600 steps, 3 learning rates each) or the full
      ones (H = 1000, 4000 steps, 5 learning rates each).
    data_dir: where to look for MNIST when ``mnist`` is None.
    settings: overrides the quick/full MLP settings (e.g. tiny ones for tests).

  Returns:
    The results dict (the JSON without the trajectories' raw values).
  """
  start = time.perf_counter()
  toy = {p.name: run_toy_problem(p) for p in (quadratic_problem(), rosenbrock_problem())}
  toy_seconds = time.perf_counter() - start
  mlp = run_mlp(mnist, settings=settings or (QUICK if quick else FULL), data_dir=data_dir)
  results = {
      "quick": quick,
      "toy_problems": toy,
      "mnist_mlp": mlp,
      "ranking": {"quadratic": toy["quadratic"]["ranking"],
                  "rosenbrock": toy["rosenbrock"]["ranking"], "mnist_mlp": mlp["ranking"]},
      "best_learning_rate": {n: mlp["per_optimizer"][n]["best_learning_rate"] for n in NAMES},
      "val_accuracy": {n: mlp["per_optimizer"][n]["val_accuracy"] for n in NAMES},
      "test_accuracy": {n: mlp["per_optimizer"][n]["test_accuracy"] for n in NAMES},
      "seconds": {"toy_problems": toy_seconds,
                  "mnist_mlp": time.perf_counter() - start - toy_seconds},
  }
  _plot_toy(workdir, toy)
  _plot_mlp(workdir, mlp)
  for problem in toy.values():
    for entry in problem["per_optimizer"].values():
      entry["trajectory"] = np.asarray(entry["trajectory"])[::max(1, problem["steps"] // 200)]
      entry.pop("values")
  _common.write_json(workdir, NAME, results)
  return results


def _plot_toy(workdir, toy: dict) -> None:
  plt = _common.pyplot()
  problems = [quadratic_problem(), rosenbrock_problem()]
  fig, axes = plt.subplots(2, 2, figsize=(11, 8.5), gridspec_kw={"height_ratios": [3, 2]})
  for column, problem in enumerate(problems):
    result = toy[problem.name]
    ax = axes[0, column]
    x0, x1, y0, y1 = problem.extent
    grid_x, grid_y = np.meshgrid(np.linspace(x0, x1, 300), np.linspace(y0, y1, 300))
    points = np.stack([grid_x, grid_y], axis=-1)
    values = _values(problem, points)
    ax.contour(grid_x, grid_y, np.log10(values + 1e-3), levels=20, colors="lightgrey",
               linewidths=0.7, linestyles="solid")
    for name in NAMES:
      entry = result["per_optimizer"][name]
      path = np.asarray(entry["trajectory"])
      ax.plot(path[:, 0], path[:, 1], "-", color=COLOURS[name], lw=1.2, alpha=0.9,
              label=name)
    ax.plot(*problem.start, "ko", ms=5)
    ax.plot(*problem.minimum, "k*", ms=10)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_title(f"{problem.name} ({problem.steps} steps), best lr each")
    ax_values = axes[1, column]
    for name in NAMES:
      entry = result["per_optimizer"][name]
      ax_values.semilogy(np.maximum(entry["values"], 1e-20), color=COLOURS[name],
                         label=f"{name} (lr {entry['learning_rate']:.2g})")
    ax_values.axhline(problem.tolerance, color="grey", lw=0.8, ls=":")
    ax_values.set_xlabel("step")
    ax_values.set_ylabel("f")
    ax_values.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
  fig.tight_layout()
  _common.save_figure(fig, workdir, f"{NAME}_toy.png")


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
