"""The UCL study's report: the search over setups (initialisation × loss reduction), each
model's chosen setup, the summary lines and verdicts, and the figures of curves."""
from __future__ import annotations

import pathlib
from typing import Any, Sequence

import numpy as np

from experiments.studies.ucl.analysis import explain, setup_name
from experiments.studies.ucl.settings import (
  INITIALISATION_LABELS,
  SETTINGS,
  STUDENT_MODEL4_SECONDS,
  Setup,
  UclConfig,
)
from experiments.studies.ucl.table import _score, better_reduction, choose_setup, plan, setup_scores
from hw import plotting


def _pct(value: float) -> str:
  return f"{value:.4f}"


def _figure(workdir: pathlib.Path, cells: Sequence[dict[str, Any]], title: str,
            name: str) -> None:
  """One panel per (model, setting) of ``cells``; a panel without a cell says "not run"."""
  plt = plotting.pyplot()
  fig, axes = plt.subplots(4, 3, figsize=(13, 14))
  shown = {(c["model"], c["setting"]) for c in cells}
  for s in SETTINGS:
    if (s.model, s.setting) not in shown:
      ax = axes[s.model - 1][s.setting - 1]
      ax.text(0.5, 0.5, f"model {s.model}, setting {s.setting}:\nnot run", ha="center",
              va="center", fontsize=9, transform=ax.transAxes)
      ax.set_axis_off()
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
                 f"lr {cell['learning_rate']:g}, {setup_name(cell).replace('`', '')}\nours "
                 f"{cell['test_accuracy']:.4f} vs {cell['reported']:.4f} {mark} "
                 f"({cell['fit']['label']})", fontsize=9)
    ax.set_xlabel("training samples (thousands)", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
  fig.suptitle(f"UCL COMPGI22 cw2: accuracy every 20,000 samples, {title} "
               f"(thin: seeds, thick: median)", fontsize=11)
  plotting.figure_legend_below(fig, axes, bottom=0.03)
  fig.subplots_adjust(top=0.94)
  plotting.save(fig, workdir / name, dpi=90)


def _fit_lists(cells: Sequence[dict[str, Any]]) -> dict[str, list[str]]:
  lists: dict[str, list[str]] = {}
  for c in cells:
    lists.setdefault(c["fit"]["label"], []).append(f"M{c['model']}S{c['setting']}")
  return lists


def reference_init(config: UclConfig) -> str:
  """The coursework's initialisation (Xavier-uniform) when searched, else the first one."""
  return ("xavier_uniform" if "xavier_uniform" in config.initialisations
          else config.initialisations[0])


_INIT_MATH = {
    "xavier_uniform": "W ~ U(±√(6 / (fan_in + fan_out))), b = 0",
    "xavier_normal": "W ~ N(0, 2 / (fan_in + fan_out)), b = 0",
    "zeros": "W = 0, b = 0 (the 2017 TensorFlow beginners' tutorial's softmax regression)",
    "truncated_normal": "W ~ N(0, 0.1²) redrawn outside ±0.2, every b = 0.1 (the 2017 "
                        "TensorFlow experts' tutorial)",
    "he": "W ~ N(0, 2 / fan_in), b = 0",
}


def _models_text(models: Sequence[int]) -> str:
  models = list(models)
  if len(models) == 1:
    return f"model {models[0]}"
  return "models " + ", ".join(map(str, models[:-1])) + f" and {models[-1]}"


def _search_lines(config: UclConfig, plans: dict[int, dict[str, Any]],
                  search: dict[int, list[dict[str, Any]]],
                  chosen: dict[int, dict[str, Any]]) -> list[str]:
  """The per-model table (initialisation × reduction) → cells reproduced."""
  counts = sorted({sc["cells"] for scores in search.values() for sc in scores})
  lines = ["", "Cells reproduced per model and setup (of the model's "
           f"{' or '.join(map(str, counts))}; in brackets the mean |median − reported| over "
           "them, in points; bold: the chosen setup):", "",
           "| model | initialisation | " + " | ".join(f"`{r}`" for r in config.reductions) + " |",
           "|---|---|" + "---|" * len(config.reductions)]
  for model, entry in plans.items():
    found = {sc["setup"]: sc for sc in search.get(model, [])}
    for init in config.initialisations:
      row = f"| {model} | {init} |"
      for reduction in config.reductions:
        setup = Setup(init, reduction)
        if setup in found:
          sc = found[setup]
          text = f"{sc['reproduced']}/{sc['cells']} ({sc['mean_abs_miss_points']:.1f})"
          row += f" **{text}** |" if chosen[model]["setup"] == setup else f" {text} |"
        elif setup in entry["refused"]:
          row += " cannot train (symmetry) |"
        else:
          row += " left out (time budget) |"
      lines.append(row)
  return lines


def _conclusion(search: dict[int, list[dict[str, Any]]], chosen: dict[int, dict[str, Any]],
                cells: Sequence[dict[str, Any]], plans: dict[int, dict[str, Any]]) -> list[str]:
  """What the search measures: which models one setup explains, which cells need different
  setups, which cells no setup tried reaches."""
  lines = ["", "Conclusion, from the search:"]
  settings_of = {m: sorted({c["setting"] for c in cells if c["model"] == m}) for m in search}
  reached_by = {(c["model"], c["setting"]): [] for c in cells}
  for c in cells:
    if c["reproduces"]:
      reached_by[(c["model"], c["setting"])].append(Setup(c["init"], c["reduction"]))
  for model, scores in search.items():
    best = chosen[model]
    total = len(settings_of[model])
    equal = [sc for sc in scores if sc["reproduced"] == best["reproduced"]]
    tried = f"{len(scores)} setup{'s' if len(scores) > 1 else ''} tried"
    if len(scores) == 1:
      how = f"the only setup run; of the others {_unrun_text(plans[model])}"
    elif len(equal) == 1:
      runner = max((sc for sc in scores if sc is not best), key=lambda sc: sc["reproduced"])
      how = (f"the only one of {tried} with that count (next: {runner['setup'].label}, "
             f"{runner['reproduced']}/{runner['cells']})")
    else:
      exact = any(sc["mean_abs_miss_points"] == best["mean_abs_miss_points"]
                  for sc in equal if sc is not best)
      how = (f"tied on the count with {len(equal) - 1} other setup(s) of {tried} "
             f"({', '.join(sc['setup'].label for sc in equal if sc is not best)}), chosen "
             + ("by the search order (the same mean miss)" if exact else
                f"on the smaller mean miss ({best['mean_abs_miss_points']:.2f} points)"))
    if best["reproduced"] == total:
      lines.append(f"- model {model}: **{best['setup'].label} explains all {total} cells** "
                   f"(medians {best['mean_abs_miss_points']:.2f} points from the reported "
                   f"numbers on average) — {how}.")
      continue
    missed = [s for s in settings_of[model]
              if best["setup"] not in reached_by[(model, s)]]
    elsewhere = [s for s in missed if reached_by[(model, s)]]
    nowhere = [s for s in missed if not reached_by[(model, s)]]
    text = (f"- model {model}: no setup tried explains all {total} cells; the best, "
            f"{best['setup'].label}, reproduces {best['reproduced']}/{total} ({how})")
    if elsewhere:
      text += ("; " + "; ".join(
          f"S{s} is reproduced only under other setups "
          f"({', '.join(u.label for u in reached_by[(model, s)])})" for s in elsewhere)
          + ", so that model's row needs more than one setup")
    if nowhere:
      text += (f"; {', '.join(f'S{s}' for s in nowhere)}: no setup tried reproduces "
               f"{'it' if len(nowhere) == 1 else 'them'}")
    lines.append(text + ".")
  unreached = [f"M{m}S{s}" for (m, s), hits in sorted(reached_by.items()) if not hits]
  lines.append(
      "- Cells that no setup tried reaches: " + (", ".join(unreached) if unreached else "none")
      + ".")
  picks = {sc["setup"] for sc in chosen.values()}
  if len(picks) == 1:
    lines.append(f"- One setup is chosen for every model: {next(iter(picks)).label}.")
  else:
    common = [u for u in {sc["setup"] for scores in search.values() for sc in scores}
              if all(any(sc["setup"] == u for sc in scores) for scores in search.values())]
    if common:
      totals = {u: sum(sc["reproduced"] for scores in search.values() for sc in scores
                       if sc["setup"] == u) for u in common}
      top = max(common, key=lambda u: (totals[u], -_order(u, search)))
      lines.append(f"- The chosen setups differ between models; of the setups run for every "
                   f"model, the best single one, {top.label}, reproduces {totals[top]} of "
                   f"{sum(len(v) for v in settings_of.values())} cells.")
    else:
      lines.append("- The chosen setups differ between models; no setup was run for every model.")
  return lines


def _order(setup: Setup, search: dict[int, list[dict[str, Any]]]) -> int:
  for scores in search.values():
    for i, sc in enumerate(scores):
      if sc["setup"] == setup:
        return i
  return 0


def _unrun_text(entry: dict[str, Any]) -> str:
  parts = []
  inits = sorted({u.init for u in entry["refused"]})
  if inits:
    parts.append(f"{', '.join(inits)} cannot train it")
  if entry["left_out"]:
    parts.append(f"{len(entry['left_out'])} are left out for the time budget")
  return ", ".join(parts) or "none were searched"


def summarize(cells: Sequence[dict[str, Any]], timing: dict[str, Any], config: UclConfig,
              *, profile: str, load: Sequence[float] | None) -> dict[str, Any]:
  """The report lines and verdicts (every number from ``cells`` and ``timing``)."""
  plans = plan(config)
  search = setup_scores(cells, plans)
  chosen = {model: choose_setup(scores) for model, scores in search.items()}
  chosen_cells = [c for c in cells if Setup(c["init"], c["reduction"]) == chosen[c["model"]]["setup"]]
  reference = reference_init(config)
  by = {r: [c for c in cells if c["reduction"] == r and c["init"] == reference]
        for r in config.reductions}
  by = {r: cs for r, cs in by.items() if cs}
  scores = {r: _score(cs) for r, cs in by.items()}
  best = better_reduction(scores) if scores else None
  chosen_score = _score(chosen_cells)
  index = {(c["model"], c["setting"], c["init"], c["reduction"]): c for c in cells}
  spe = timing["samples_per_epoch"]
  n_seeds = len(config.seeds)
  test_size = timing["test_size"]
  setups_run = sum(len(v) for v in search.values())
  searched = any(len(v) > 1 for v in search.values())
  lines = [
      f"Models 1-4 × settings 1-3 of assignment B (docs/assignments.md), plain SGD (batch {config.batch_size}), raw [0, 1] "
      f"pixels, gradients from the hand-written VJPs of `hw.ops`; {n_seeds} "
      f"seed{'s' if n_seeds > 1 else ''} ({', '.join(map(str, config.seeds))}) per cell. "
      f"Training on all {spe:,} MNIST training images; every {config.eval_every:,} samples "
      f"accuracy on a fixed {100 * config.train_eval_fraction:.0f}% of them and on the "
      f"{test_size:,} test images.",
      "",
      ("Setups searched: " if searched else "Setup: ") + "initialisation × loss reduction "
      f"({' and '.join(f'`{r}`' for r in config.reductions)}"
      + ("; with plain SGD `sum` multiplies every step by the batch size"
         if "sum" in config.reductions else "")
      + "). Initialisations (a conv kernel's fans include its 3×3 receptive field; the same "
      "per-layer keys for every scheme):", ""]
  for init in config.initialisations:
    lines.append(f"- `{init}`: {INITIALISATION_LABELS[init]}: {_INIT_MATH[init]}.")
  refused: dict[str, list[int]] = {}
  for model, entry in plans.items():
    for setup, reason in entry["refused"].items():
      if setup.reduction == config.reductions[0]:
        refused.setdefault(setup.init, []).append(model)
  for init, models in refused.items():
    lines.append(f"\nNot run: `{init}` for {_models_text(models)}: a model whose hidden layers "
                 "all start at zero cannot break their symmetry: every hidden unit outputs 0 "
                 "(0·x + 0, through ReLU or max-pool), so the weight gradients hᵀ·dZ and the "
                 "gradients dZ·Wᵀ reaching the hidden layers are zero and only the output bias "
                 "would learn.")
  left = {m: e["left_out"] for m, e in plans.items() if e["left_out"]}
  if left:
    lines.append("\nLeft out for the time budget: " + "; ".join(
        f"{_models_text([m])} under {', '.join(u.label for u in us)}" for m, us in left.items())
        + (f" ({config.left_out_reason})" if config.left_out_reason else "") + ".")
  lines += [
      "",
      f"A cell reproduces when the reported number lies within the seeds' range widened by "
      f"{100 * config.reproduce_range_margin:.0f} points, or the median is within "
      f"{100 * config.reproduce_median_margin:.0f} points of it."]
  if searched:
    lines += _search_lines(config, plans, search, chosen)
    lines += [
      "", "Rule, the same for every model: the setup that reproduces the most of the model's "
      "cells is chosen; a tie goes to the smaller mean |median − reported| over the model's "
      "cells, and a tie of both to the earlier setup in the search order (initialisations as "
      "listed above, the coursework's Xavier-uniform first; reductions as listed). The counts "
      "are fitted to the reported table: with several setups per model some matches can be "
      "chance, so a count is an upper bound on what one fixed recipe reproduces.", ""]
    for model, best_score in chosen.items():
      lines.append(f"- model {model}: **{best_score['setup'].label}**, "
                   f"{best_score['reproduced']}/{best_score['cells']} (of {len(search[model])} "
                   f"setup{'s' if len(search[model]) > 1 else ''} run)")
  met = chosen_score["reproduced"] >= config.target_cells
  reference_text = ", ".join(
      f"`{r}` {scores[r]['reproduced']} of {scores[r]['cells']}"
      + (f" ({_models_text(sorted(set(search) - set(scores[r]['per_model'])))} not run with it)"
         if len(scores[r]["per_model"]) < len(search) else "") for r in scores)
  if searched:
    lines += ["", f"Under the chosen setups **{chosen_score['reproduced']} of "
                  f"{chosen_score['cells']}** cells reproduce (target ≥ {config.target_cells}: "
                  f"{'met' if met else 'not met'}); the coursework's own setup, {reference}: "
                  f"{reference_text}."]
  else:
    picks = sorted({sc["setup"].label for sc in chosen.values()})
    lines += ["", f"Under {', '.join(picks)} **{chosen_score['reproduced']} of "
                  f"{chosen_score['cells']}** cells reproduce (target ≥ {config.target_cells}: "
                  f"{'met' if met else 'not met'})."]
    if config.notes:
      lines.append(f"(This profile runs one setup per model and searches nothing; "
                   f"{config.notes}.)")
  # the cells, chosen setup beside the coursework's
  ref_cols = list(scores) if searched else []
  lines += ["", "Median final test accuracy [min-max over seeds] under "
            + ("each model's chosen setup" if searched else "this profile's setup")
            + (f", beside the coursework's {reference}; the last column counts the "
                        "setups that reproduce the cell" if searched else "") + ":", "",
            "| model | setting | epochs, lr | reported | chosen setup | ours | ✓ |"
            + "".join(f" {reference} `{r}` | ✓ |" for r in ref_cols)
            + (" setups reproducing |" if searched else ""),
            "|---|---|---|---|---|---|---|" + "---|---|" * len(ref_cols)
            + ("---|" if searched else "")]

  def value(c: dict[str, Any]) -> str:
    spread = f" [{_pct(min(c['seeds']))}-{_pct(max(c['seeds']))}]" if n_seeds > 1 else ""
    return f"**{_pct(c['test_accuracy'])}**{spread} | {'✓' if c['reproduces'] else '✗'}"

  for c in chosen_cells:
    row = (f"| {c['model']} | {c['setting']} | {c['epochs']}, {c['learning_rate']:g} | "
           f"{_pct(c['reported'])} | {setup_name(c)} | {value(c)} |")
    for r in ref_cols:
      ref = index.get((c["model"], c["setting"], reference, r))
      row += f" {value(ref)} |" if ref else " not run | |"
    if searched:
      same = [o for o in cells if (o["model"], o["setting"]) == (c["model"], c["setting"])]
      row += f" {sum(o['reproduces'] for o in same)}/{len(same)} |"
    lines.append(row)
  lines += _conclusion(search, chosen, cells, plans) if searched else []
  # explanations of every cell that misses, against the same cell under the other setups
  for c in cells:
    if not c["reproduces"]:
      others = [o for o in cells if (o["model"], o["setting"]) == (c["model"], c["setting"])
                and o is not c]
      c["explanation"] = explain(c, others, spe)
  failing = [c for c in chosen_cells if not c["reproduces"]]
  if failing:
    lines += ["", "Cells the chosen setups miss, from their curves:"]
    for c in failing:
      lines.append(f"- model {c['model']}, setting {c['setting']}, {setup_name(c)} (ours "
                   f"{_pct(c['test_accuracy'])} vs {_pct(c['reported'])}): {c['explanation']}")
  lines += [
      "", "Under- and overfitting, decided on the median train (20% subset) and test accuracy "
      f"curves: **underfit** when the training accuracy gained ≥ {100 * config.rising:.1f} "
      f"points over the last epoch (still rising) or ended below "
      f"{100 * config.underfit_below:.0f}%; **overfit** when the final train − test gap is ≥ "
      f"{100 * config.gap:.0f} points, or the test accuracy ended ≥ {100 * config.drop:.1f} "
      "points below its best while the training accuracy did not fall; **diverged** when, in "
      "most seeds, the training loss became NaN or blew up (rose above its value at "
      "initialisation while the test accuracy ended below 20%).", ""]
  fits = {"chosen": _fit_lists(chosen_cells)}
  fits.update({f"{reference} × `{r}`": _fit_lists(by[r]) for r in ref_cols})
  for name, lists in fits.items():
    parts = [f"{label}: {', '.join(names)}" for label, names in sorted(lists.items())]
    lines.append(f"- {'chosen setups' if name == 'chosen' else name}: " + "; ".join(parts) + ".")
  if not any(c["fit"]["overfit"] for c in chosen_cells):
    widest = max(chosen_cells, key=lambda c: c["fit"]["final_gap"])
    lines.append(f"\nNo run of the chosen setups overfits by this rule: the widest final train − "
                 f"test gap is {100 * widest['fit']['final_gap']:.2f} points (M{widest['model']}"
                 f"S{widest['setting']}), and the test accuracy ends at most "
                 f"{100 * max(c['fit']['test_drop_from_best'] for c in chosen_cells):.2f} points "
                 "below its best.")
  lines += ["", "Per cell under the chosen setup (gain over the last epoch, final gap):", "",
            "| cell | setup | fit | train gain, last epoch | test gain, last epoch | train − test | "
            "test below best |", "|---|---|---|---|---|---|---|"]
  for c in chosen_cells:
    f = c["fit"]
    lines.append(f"| M{c['model']}S{c['setting']} | {setup_name(c)} | {f['label']} | "
                 f"{100 * f['train_gain_last_epoch']:+.2f} | {100 * f['test_gain_last_epoch']:+.2f} | "
                 f"{100 * f['final_gap']:+.2f} | {100 * f['test_drop_from_best']:.2f} |")
  m4_wall = timing["model4_wall_s"]
  m4_runs = sum(g["runs"] * g["epochs"] for g in timing["groups"] if g["model"] == 4)
  m4_setups = len(search.get(4, []))
  load_text = (f"; load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1/5/15 min) "
               f"at the end on {timing['cpu_count']} cores" if load else "")
  runs_total = sum(g["runs"] for g in timing["groups"])
  if m4_wall > 0:
    theirs = STUDENT_MODEL4_SECONDS / 35
    lines += [
        "", f"Time: {runs_total} runs of {setups_run} (model, setup) pairs. Model 4's runs "
        f"({m4_runs} run-epochs: its settings × {m4_setups} setup(s) × {n_seeds} seed(s), "
        f"settings 2 and 3 sharing one run) took **{m4_wall:.0f} s** of wall time (first start "
        f"to last end, {timing['workers']} worker thread(s)); the whole table "
        f"{timing['train_wall_s']:.0f} s wall, {timing['train_cpu_s']:.0f} s CPU{load_text}. "
        f"The student's loop-based numpy code took about 10 hours for model 4: "
        f"**{STUDENT_MODEL4_SECONDS / m4_wall:.0f}×** our model-4 wall time; per epoch of one "
        f"run {theirs:.0f} s (10 h / 35 epochs, if it was one run per setting) vs "
        f"{m4_wall / m4_runs:.1f} s here (**{theirs / (m4_wall / m4_runs):.0f}×**)."]
  else:
    lines += ["", f"Time: {runs_total} runs; {timing['train_wall_s']:.0f} s wall, "
              f"{timing['train_cpu_s']:.0f} s CPU{load_text}."]
  lines += ["", "Assignment B's derivations: ∂loss/∂z = softmax(z) − y is the backward rule of "
            "`hw.ops.softmax_cross_entropy` (checked by `hw verify` and `hw paper`), model 1's "
            "gradients are `hw.ops.linear`'s (dW = Xᵀ dZ, db = Σ dZ), and a conv layer's "
            "gradients w.r.t. its filter and its 4-D input are `hw.ops.conv2d`'s (module "
            "docstring of `hw/ops/convolution.py`); this study trains with exactly those."]
  if searched:
    headline = (f"{chosen_score['reproduced']}/{chosen_score['cells']} cells (each model's chosen "
                f"setup, {setups_run} model × setup pairs run), {reference}: "
                + ", ".join(f"`{r}` {scores[r]['reproduced']}/{scores[r]['cells']}" for r in scores))
  else:
    picks = sorted({sc["setup"].label for sc in chosen.values()})
    headline = f"{chosen_score['reproduced']}/{chosen_score['cells']} cells ({', '.join(picks)})"
  return {"summary": lines, "meets_target": met, "headline": headline, "scores": scores,
          "better_reduction": best, "fit_lists": fits, "chosen_cells": chosen_cells,
          "chosen_score": chosen_score,
          "search": {str(model): [{"init": sc["setup"].init, "reduction": sc["setup"].reduction,
                                   **{k: v for k, v in sc.items() if k != "setup"},
                                   "chosen": sc is chosen[model]} for sc in v]
                     for model, v in search.items()},
          "chosen": {str(model): {"init": sc["setup"].init, "reduction": sc["setup"].reduction,
                                  "reproduced": sc["reproduced"], "cells": sc["cells"]}
                     for model, sc in chosen.items()},
          "not_run": {str(model): {"cannot_train": {f"{u.init} × {u.reduction}": reason
                                                    for u, reason in e["refused"].items()},
                                   "left_out": [f"{u.init} × {u.reduction}" for u in e["left_out"]]}
                      for model, e in plans.items()}}
