"""The Q7 study's figures: one per part."""
from __future__ import annotations

import numpy as np

from experiments.studies import _runs
from experiments.studies.q7.shared import NAME

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
