"""The UCL study's report: the summary lines and verdicts, and one figure of curves per loss
reduction."""
from __future__ import annotations

import pathlib
from typing import Any, Sequence

import numpy as np

from experiments.studies.ucl.analysis import explain
from experiments.studies.ucl.settings import STUDENT_MODEL4_SECONDS, UclConfig
from experiments.studies.ucl.table import _score, better_reduction
from hw import plotting


def _pct(value: float) -> str:
  return f"{value:.4f}"


def _figure(workdir: pathlib.Path, cells: Sequence[dict[str, Any]], reduction: str,
            name: str) -> None:
  plt = plotting.pyplot()
  fig, axes = plt.subplots(4, 3, figsize=(13, 14))
  for cell in cells:
    ax = axes[cell["model"] - 1][cell["setting"] - 1]
    curves = cell["curves"]
    x = np.asarray(curves["samples"]) / 1000
    for sd in curves["seeds"]:
      ax.plot(x, sd["test_accuracy"], color="tab:blue", alpha=0.25, lw=0.8)
      ax.plot(x, sd["train_accuracy"], color="tab:orange", alpha=0.25, lw=0.8, ls="--")
    ax.plot(x, curves["median"]["test_accuracy"], color="tab:blue", lw=1.6, label="test")
    ax.plot(x, curves["median"]["train_accuracy"], color="tab:orange", lw=1.6, ls="--",
            label="train (20%)")
    ax.axhline(cell["reported"], color="black", ls=":", lw=1.2, label="reported")
    mark = "✓" if cell["reproduces"] else "✗"
    ax.set_title(f"model {cell['model']}, setting {cell['setting']}: {cell['epochs']} ep, "
                 f"lr {cell['learning_rate']:g}\nours {cell['test_accuracy']:.4f} vs "
                 f"{cell['reported']:.4f} {mark} ({cell['fit']['label']})", fontsize=9)
    ax.set_xlabel("training samples (thousands)", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
  fig.suptitle(f"UCL COMPGI22 cw2: accuracy every 20,000 samples, loss reduction "
               f"\"{reduction}\" (thin: seeds, thick: median)", fontsize=11)
  plotting.figure_legend_below(fig, axes, bottom=0.03)
  fig.subplots_adjust(top=0.94)
  plotting.save(fig, workdir / name, dpi=90)


def _fit_lists(cells: Sequence[dict[str, Any]]) -> dict[str, list[str]]:
  lists: dict[str, list[str]] = {}
  for c in cells:
    lists.setdefault(c["fit"]["label"], []).append(f"M{c['model']}S{c['setting']}")
  return lists


def summarize(cells: Sequence[dict[str, Any]], timing: dict[str, Any], config: UclConfig,
              *, profile: str, load: Sequence[float] | None) -> dict[str, Any]:
  """The report lines and verdicts (every number from ``cells`` and ``timing``)."""
  by = {r: [c for c in cells if c["reduction"] == r] for r in config.reductions}
  scores = {r: _score(cs) for r, cs in by.items()}
  best = better_reduction(scores)
  index = {(c["model"], c["setting"], c["reduction"]): c for c in cells}
  spe = timing["samples_per_epoch"]
  n_seeds = len(config.seeds)
  test_size = timing["test_size"]
  lines = [
      f"Models 1-4 × settings 1-3 of SPEC B, plain SGD (batch {config.batch_size}), Xavier-"
      f"uniform weights, zero biases, raw [0, 1] pixels, gradients from the hand-written VJPs "
      f"of `hw.ops`; {n_seeds} seed{'s' if n_seeds > 1 else ''} "
      f"({', '.join(map(str, config.seeds))}) per cell, loss reduction "
      f"{' and '.join(f'`{r}`' for r in config.reductions)}. Training on all {spe:,} MNIST "
      f"training images; every {config.eval_every:,} samples accuracy on a fixed "
      f"{100 * config.train_eval_fraction:.0f}% of them and on the {test_size:,} test images.",
      "",
      f"A cell reproduces when the reported number lies within the seeds' range widened by "
      f"{100 * config.reproduce_range_margin:.0f} points, or the median is within "
      f"{100 * config.reproduce_median_margin:.0f} points of it. Table: median final test "
      f"accuracy [min-max over seeds].",
      "",
      "| model | setting | epochs, lr | reported | "
      + " | ".join(f"ours, `{r}` | ✓" for r in config.reductions) + " |",
      "|---|---|---|---|" + "---|---|" * len(config.reductions),
  ]
  for s in config.settings:
    row = f"| {s.model} | {s.setting} | {s.epochs}, {s.learning_rate:g} | {_pct(s.reported)} |"
    for r in config.reductions:
      c = index[(s.model, s.setting, r)]
      spread = (f" [{_pct(min(c['seeds']))}-{_pct(max(c['seeds']))}]" if n_seeds > 1 else "")
      row += f" **{_pct(c['test_accuracy'])}**{spread} | {'✓' if c['reproduces'] else '✗'} |"
    lines.append(row)
  lines += [""]
  for r in config.reductions:
    sc = scores[r]
    per_model = ", ".join(f"model {m}: {k}/3" for m, k in sc["per_model"].items())
    lines.append(f"- `{r}`: **{sc['reproduced']} of {sc['cells']}** cells reproduce ({per_model}); "
                 f"the medians miss the reported numbers by {sc['mean_abs_miss_points']:.2f} "
                 f"points on average, {sc['max_abs_miss_points']:.2f} at most.")
  met = scores[best]["reproduced"] >= config.target_cells
  lines += ["", f"Better reduction: **`{best}`** ({scores[best]['reproduced']} of 12; target "
                f"≥ {config.target_cells}: {'met' if met else 'not met'})."]
  if len(config.reductions) > 1:
    per_model_best = {m: max(config.reductions, key=lambda r: scores[r]["per_model"][m])
                      for m in scores[best]["per_model"]}
    mixed = [m for m, r in per_model_best.items()
             if scores[r]["per_model"][m] > scores[best]["per_model"][m]]
    if mixed:
      mixed_total = sum(scores[r]["per_model"][m] for m, r in per_model_best.items())
      lines.append(
          "Per model the other reduction does better for "
          + ", ".join(f"model {m} (`{per_model_best[m]}`: {scores[per_model_best[m]]['per_model'][m]}/3 "
                      f"vs {scores[best]['per_model'][m]}/3)" for m in mixed)
          + ": the reported table is not consistent with one reduction throughout; with each "
          f"model's better reduction {mixed_total} of 12 cells reproduce.")
  else:
    lines.append(f"(This profile runs only `{best}`; {config.notes})" if config.notes else "")
  failing = [c for c in by[best] if not c["reproduces"]]
  if failing:
    lines += ["", f"Cells that do not reproduce with `{best}`, from their curves:"]
    for c in failing:
      other = next((index[(c["model"], c["setting"], r)] for r in config.reductions if r != best),
                   None)
      c["explanation"] = explain(c, other, spe)
      lines.append(f"- model {c['model']}, setting {c['setting']} (ours {_pct(c['test_accuracy'])} "
                   f"vs {_pct(c['reported'])}): {c['explanation']}")
  for c in cells:
    if not c["reproduces"] and "explanation" not in c:
      other = next((index[(c["model"], c["setting"], r)] for r in config.reductions
                    if r != c["reduction"]), None)
      c["explanation"] = explain(c, other, spe)
  lines += [
      "", "Under- and overfitting, decided on the median train (20% subset) and test accuracy "
      f"curves: **underfit** when the training accuracy gained ≥ {100 * config.rising:.1f} "
      f"points over the last epoch (still rising) or ended below "
      f"{100 * config.underfit_below:.0f}%; **overfit** when the final train − test gap is ≥ "
      f"{100 * config.gap:.0f} points, or the test accuracy ended ≥ {100 * config.drop:.1f} "
      "points below its best while the training accuracy did not fall; **diverged** when, in "
      "most seeds, the training loss became NaN or blew up (rose above its value at "
      "initialisation while the test accuracy ended below 20%).", ""]
  fits = {r: _fit_lists(by[r]) for r in config.reductions}
  for r in config.reductions:
    parts = [f"{label}: {', '.join(names)}" for label, names in sorted(fits[r].items())]
    lines.append(f"- `{r}`: " + "; ".join(parts) + ".")
  if not any(c["fit"]["overfit"] for c in by[best]):
    widest = max(by[best], key=lambda c: c["fit"]["final_gap"])
    lines.append(f"\nNo `{best}` run overfits by this rule: the widest final train − test gap is "
                 f"{100 * widest['fit']['final_gap']:.2f} points (M{widest['model']}"
                 f"S{widest['setting']}), and the test accuracy ends at most "
                 f"{100 * max(c['fit']['test_drop_from_best'] for c in by[best]):.2f} points below "
                 "its best.")
  lines += ["", "Per cell with the better reduction (gain over the last epoch, final gap):", "",
            "| cell | fit | train gain, last epoch | test gain, last epoch | train − test | "
            "test below best |", "|---|---|---|---|---|---|"]
  for c in by[best]:
    f = c["fit"]
    lines.append(f"| M{c['model']}S{c['setting']} | {f['label']} | "
                 f"{100 * f['train_gain_last_epoch']:+.2f} | {100 * f['test_gain_last_epoch']:+.2f} | "
                 f"{100 * f['final_gap']:+.2f} | {100 * f['test_drop_from_best']:.2f} |")
  m4_wall = timing["model4_wall_s"]
  m4_runs = sum(g["runs"] * g["epochs"] for g in timing["groups"] if g["model"] == 4)
  load_text = (f"; load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1/5/15 min) "
               f"at the end on {timing['cpu_count']} cores" if load else "")
  if m4_wall > 0:
    theirs = STUDENT_MODEL4_SECONDS / 35
    lines += [
        "", f"Time: model 4's runs ({m4_runs} run-epochs: its settings × "
        f"{len(config.reductions)} reduction(s) × {n_seeds} seed(s), settings 2 and 3 sharing "
        f"one run) took **{m4_wall:.0f} s** of wall time (first start to last end, "
        f"{timing['workers']} worker thread(s)); the whole table {timing['train_wall_s']:.0f} s "
        f"wall, {timing['train_cpu_s']:.0f} s CPU{load_text}. The student's loop-based numpy "
        f"code took about 10 hours for model 4: **{STUDENT_MODEL4_SECONDS / m4_wall:.0f}×** our "
        f"model-4 wall time; per epoch of one run {theirs:.0f} s (10 h / 35 epochs, if it was "
        f"one run per setting) vs {m4_wall / m4_runs:.1f} s here "
        f"(**{theirs / (m4_wall / m4_runs):.0f}×**)."]
  else:
    lines += ["", f"Time: {timing['train_wall_s']:.0f} s wall, {timing['train_cpu_s']:.0f} s CPU"
              f"{load_text}."]
  lines += ["", "SPEC B's derivations: ∂loss/∂z = softmax(z) − y is the backward rule of "
            "`hw.ops.softmax_cross_entropy` (checked by `hw verify` and `hw paper`), model 1's "
            "gradients are `hw.ops.linear`'s (dW = Xᵀ dZ, db = Σ dZ), and a conv layer's "
            "gradients w.r.t. its filter and its 4-D input are `hw.ops.conv2d`'s (module "
            "docstring of `hw/ops/convolution.py`); this study trains with exactly those."]
  headline = (f"{scores[best]['reproduced']}/12 cells (`{best}`)"
              + (", " + ", ".join(f"`{r}` {scores[r]['reproduced']}/12" for r in config.reductions
                                  if r != best) if len(config.reductions) > 1 else ""))
  return {"summary": lines, "meets_target": met, "headline": headline, "scores": scores,
          "better_reduction": best,
          "fit_lists": fits}
