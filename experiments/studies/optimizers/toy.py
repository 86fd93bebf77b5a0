"""(a) of the optimisers study: two 2-D problems with hand-written gradients, every
optimiser's trajectory per learning rate of a log grid, the learning rate that reaches the
tolerance (and stays there) in the fewest steps, and the contour figure."""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments.studies import _common
from experiments.studies.optimizers.settings import COLOURS, NAME, NAMES
from hw.optim import transforms


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
