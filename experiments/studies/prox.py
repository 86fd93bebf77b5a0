"""Study: ISTA vs FISTA on a sparse-recovery lasso (assignment D, proximal gradient descent).

A 200×500 Gaussian design A (entries N(0, 1/200), so columns have norm ≈ 1), a
20-sparse x_true with entries ±(1 + U(0, 1)), ``b = A x_true + σε`` with σ = 0.01, and
``λ = 2σ√(2 log n)`` — twice the expected largest noise correlation ``maxⱼ |aⱼᵀσε|``,
the usual scale for recovering the support. Both methods start at 0 with step 1/L.
The optimum F* is the best of an independent coordinate-descent solve (NumPy, to 1e-14)
and both runs; the relative gap is ``(F(x_k) − F*) / F*``.
"""
from __future__ import annotations

import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from experiments.studies import _common
from hw.optim import prox
from hw.optim.coordinate_descent import lasso_coordinate_descent

NAME = "prox"
GAP_TARGET = 1e-6
NOISE = 0.01


def make_problem(*, m: int = 200, n: int = 500, nonzeros: int = 20, noise: float = NOISE,
                 seed: int = 0) -> dict:
  """The sparse-recovery problem: ``a``, ``b``, ``lam``, ``x_true`` (NumPy float64)."""
  rng = np.random.default_rng(seed)
  a = rng.standard_normal((m, n)) / np.sqrt(m)
  x_true = np.zeros(n)
  support = np.sort(rng.choice(n, nonzeros, replace=False))
  x_true[support] = rng.choice([-1.0, 1.0], nonzeros) * (1.0 + rng.random(nonzeros))
  b = a @ x_true + noise * rng.standard_normal(m)
  lam = 2.0 * noise * np.sqrt(2.0 * np.log(n))
  return {"a": a, "b": b, "lam": float(lam), "x_true": x_true}


def first_iteration_below(relative_gap: np.ndarray, target: float) -> int | None:
  """The first k ≥ 1 with ``relative_gap[k] ≤ target`` (index 0 is the start), or None."""
  hits = np.flatnonzero(relative_gap[1:] <= target)
  return int(hits[0]) + 1 if hits.size else None


def run_prox(workdir: os.PathLike, *, m: int = 200, n: int = 500, nonzeros: int = 20,
             iterations: int = 1000, seed: int = 0) -> dict:
  """Run ISTA and FISTA, write ``<workdir>/prox.json`` and ``prox.png``, return the results.

  Args:
    workdir: output folder.
    m, n, nonzeros: rows, columns and non-zeros of the problem.
    iterations: iterations of each method.
    seed: seed of the problem.

  Returns:
    The results dict (also the JSON): ``"iterations_to_1e-6"`` ({"ista", "fista"}: the
    first iteration with relative gap ≤ 1e-6, None if never), ``"kkt_max_violation"``
    (over both final iterates), the support found and the curves.
  """
  start = time.perf_counter()
  problem = make_problem(m=m, n=n, nonzeros=nonzeros, seed=seed)
  a, b, lam, x_true = problem["a"], problem["b"], problem["lam"], problem["x_true"]
  with jax.enable_x64(True):
    a_j, b_j = jnp.asarray(a), jnp.asarray(b)
    power = prox.largest_eigenvalue(a_j)
    lipschitz = float(power.eigenvalue)
    runs = {"ista": prox.ista(a_j, b_j, lam, num_iterations=iterations, lipschitz=lipschitz),
            "fista": prox.fista(a_j, b_j, lam, num_iterations=iterations, lipschitz=lipschitz)}
    runs = {k: (np.asarray(r.x), np.asarray(r.objective)) for k, r in runs.items()}
  reference = lasso_coordinate_descent(a, b, lam)
  f_star = min(reference.objective, *(float(obj.min()) for _, obj in runs.values()))
  gaps = {k: (obj - f_star) / f_star for k, (_, obj) in runs.items()}
  kkt = {k: prox.kkt_violation(a, b, lam, x) for k, (x, _) in runs.items()}
  x_hat = runs["fista"][0]
  true_support = set(np.flatnonzero(x_true).tolist())
  found_support = set(np.flatnonzero(x_hat).tolist())
  distance = float(np.sum(reference.x ** 2))  # ‖x₀ − x*‖², x₀ = 0
  results = {
      "problem": {"m": m, "n": n, "nonzeros": nonzeros, "noise": NOISE, "lambda": lam,
                  "lambda_rule": "2 sigma sqrt(2 log n)", "seed": seed},
      "lipschitz": lipschitz,
      "lipschitz_exact": float(np.linalg.eigvalsh(a.T @ a)[-1]),
      "power_iterations": int(power.iterations),
      "f_star": f_star,
      "coordinate_descent": {"objective": reference.objective, "sweeps": reference.sweeps,
                             "kkt_violation": prox.kkt_violation(a, b, lam, reference.x)},
      "iterations": iterations,
      "iterations_to_1e-6": {k: first_iteration_below(g, GAP_TARGET) for k, g in gaps.items()},
      "kkt_violation": kkt,
      "kkt_max_violation": max(kkt.values()),
      "max_abs_diff_to_coordinate_descent": {
          k: float(np.max(np.abs(x - reference.x))) for k, (x, _) in runs.items()},
      "support": {
          "true": sorted(true_support), "found": sorted(found_support),
          "true_positives": len(true_support & found_support),
          "false_positives": len(found_support - true_support),
          "false_negatives": len(true_support - found_support),
          "recovered": true_support <= found_support,
      },
      "relative_gap": {k: g.tolist() for k, g in gaps.items()},
  }
  results["seconds"] = time.perf_counter() - start
  _plot(workdir, gaps, lipschitz * distance / f_star, x_true, x_hat, results)
  _common.write_json(workdir, NAME, results)
  return results


def _plot(workdir, gaps, bound_scale, x_true, x_hat, results) -> None:
  plt = _common.pyplot()
  fig, (ax_gap, ax_coef) = plt.subplots(1, 2, figsize=(11, 4.4))
  k = np.arange(1, len(gaps["ista"]))
  floor = 1e-16  # gaps at or below rounding are drawn at the floor of the log axis
  for name, colour in (("ista", "tab:blue"), ("fista", "tab:red")):
    ax_gap.loglog(k, np.maximum(gaps[name][1:], floor), color=colour, label=name.upper())
  ax_gap.loglog(k, bound_scale / (2 * k), "--", color="tab:blue", alpha=0.6,
                label="ISTA bound L‖x*‖²/(2k)   O(1/k)")
  ax_gap.loglog(k, 2 * bound_scale / (k + 1) ** 2, "--", color="tab:red", alpha=0.6,
                label="FISTA bound 2L‖x*‖²/(k+1)²   O(1/k²)")
  ax_gap.axhline(GAP_TARGET, color="grey", lw=0.8, ls=":")
  ax_gap.set_ylim(floor, None)
  ax_gap.set_xlabel("iteration k")
  ax_gap.set_ylabel("relative objective gap (F(x_k) − F*) / F*")
  hits = results["iterations_to_1e-6"]
  ax_gap.set_title(f"gap ≤ 1e-6 at k = {hits['ista']} (ISTA), {hits['fista']} (FISTA)")
  index = np.arange(len(x_true))
  ax_coef.axhline(0, color="black", lw=0.5)
  ax_coef.vlines(index, 0, x_true, color="grey", lw=2.5, alpha=0.5)
  ax_coef.plot(index[x_true != 0], x_true[x_true != 0], "o", color="grey", alpha=0.5, ms=5)
  ax_coef.plot(index[x_hat != 0], x_hat[x_hat != 0], "x", color="tab:red", ms=5)
  support = results["support"]
  ax_coef.set_title(f"support: {support['true_positives']}/{len(support['true'])} found, "
                    f"{support['false_positives']} false positives")
  ax_coef.set_xlabel("coordinate")
  ax_coef.set_ylabel("coefficient (grey: true, ×: FISTA)")
  handles, labels = ax_gap.get_legend_handles_labels()
  fig.legend(handles, labels, loc="lower center", ncol=2, frameon=False)
  fig.tight_layout(rect=(0, 0.13, 1, 1))
  _common.save_figure(fig, workdir, f"{NAME}.png")
