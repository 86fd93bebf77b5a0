"""The HK6 equivariance study's figures: the shift curve, the random placement on the
48×48 canvas, and the first conv layer's feature maps under a shift."""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from experiments.studies import _runs
from experiments.studies._runs import percent
from experiments.studies.equivariance.canvas import centre_offset, overlap, place
from experiments.studies.equivariance.check import canvas_maps
from experiments.studies.equivariance.shared import NAME, PUBLISHED, SCALE

_COLOURS = {"cnn": "tab:blue", "mlp": "tab:orange"}


def _plot_shift_curves(workdir, shifts, curve, by_direction, models_info) -> str:
  plt = _runs.pyplot()
  fig, ax = plt.subplots(figsize=(6.4, 4.4))
  for name in ("cnn", "mlp"):
    label = f"{name.upper()} ({models_info[name]['parameters']:,} parameters), mean of 4 directions"
    ax.plot(shifts, [100 * a for a in curve[name]], "o-", color=_COLOURS[name], lw=2, label=label)
    for direction, values in by_direction[name].items():
      ax.plot(shifts, [100 * a for a in values], "-", color=_COLOURS[name], lw=0.7, alpha=0.45)
  ax.plot([], [], "-", color="grey", lw=0.7, alpha=0.6, label="each direction (up, down, left, right)")
  ax.set(xlabel="shift of the 28×28 test digits (pixels, zero fill)", ylabel="test accuracy (%)",
         title="Trained on centred MNIST, tested shifted", ylim=(0, 100), xticks=shifts)
  ax.grid(alpha=0.3)
  _runs.legend_below(ax, columns=1)
  return _runs.save(fig, workdir, f"{NAME}_shift_curve.png")


def _plot_canvas(workdir, train_example, test_examples, by_displacement, random_accuracy,
                 models_info) -> str:
  plt = _runs.pyplot()
  fig = plt.figure(figsize=(11, 4.4))
  grid = fig.add_gridspec(2, 5, width_ratios=(1, 1, 0.35, 1.6, 1.6))
  panels = [train_example, *test_examples[:3]]
  titles = ["training: centred", "test: random", "test: random", "test: random"]
  for i, (image, title) in enumerate(zip(panels, titles)):
    ax = fig.add_subplot(grid[i // 2, i % 2])
    ax.imshow(image[..., 0], cmap="gray_r", vmin=0, vmax=1)
    ax.set_title(title, fontsize="small")
    ax.set_xticks([]), ax.set_yticks([])
  ax = fig.add_subplot(grid[:, 3:])
  d = by_displacement["displacement"]
  for name, model_name in (("cnn", "cnn_48"), ("mlp", "mlp_48")):
    values = [None if a is None else 100 * a for a in by_displacement[name]]
    ax.plot(d, values, "o-", color=_COLOURS[name], ms=3,
            label=f"{name.upper()} ({models_info[model_name]['parameters']:,} parameters): "
                  f"{percent(random_accuracy[name])} overall, published "
                  f"{percent(PUBLISHED[name])}")
  ax.axhline(10, color="grey", lw=0.8, ls=":", label="chance (10%)")
  ax.set(xlabel="displacement from the centre (pixels, max of rows and columns)",
         ylabel="test accuracy (%)", ylim=(0, 100), title="48×48 canvas, random positions")
  ax.grid(alpha=0.3)
  _runs.legend_below(ax, columns=1)
  return _runs.save(fig, workdir, f"{NAME}_random_placement.png")


def _plot_feature_maps(workdir, params, digit, size, moved_by) -> str:
  plt = _runs.pyplot()
  centre = centre_offset(size)
  x = place(digit[None], [[centre, centre]], size)
  tx = place(digit[None], [[centre + moved_by[0], centre + moved_by[1]]], size)
  fx = np.asarray(canvas_maps(params, jnp.asarray(x / SCALE[1]))[0])[0]
  ftx = np.asarray(canvas_maps(params, jnp.asarray(tx / SCALE[1]))[0])[0]
  channels = np.argsort(fx.reshape(-1, fx.shape[-1]).std(axis=0))[::-1][:2]
  a, b = overlap(fx[None], ftx[None], *moved_by)
  difference = np.zeros(fx.shape[:2])
  rows = slice(max(moved_by[0], 0), size + min(moved_by[0], 0))
  cols = slice(max(moved_by[1], 0), size + min(moved_by[1], 0))
  difference[rows, cols] = np.max(np.abs(b - a)[0], axis=-1)
  fig, axes = plt.subplots(2, 4, figsize=(11, 6.4), gridspec_kw={"hspace": 0.45})
  for r, (image, maps, label) in enumerate(((x, fx, "x (centred)"),
                                             (tx, ftx, f"Tx (moved by {moved_by})"))):
    axes[r, 0].imshow(image[0, ..., 0], cmap="gray_r", vmin=0, vmax=1)
    axes[r, 0].set_title(label, fontsize="small")
    for c, channel in enumerate(channels):
      axes[r, c + 1].imshow(maps[..., channel], cmap="viridis")
      axes[r, c + 1].set_title(f"conv 1, channel {channel}: φ({'Tx' if r else 'x'})",
                               fontsize="small")
  scale = float(np.max(np.abs(fx)))
  axes[0, 3].imshow(difference, cmap="magma", vmin=0, vmax=scale)
  axes[0, 3].set_title(f"|φ(Tx) − Tφ(x)|, max over channels\nmax = {difference.max():.1e} "
                       f"(colour scale: max |φ(x)| = {scale:.2f})", fontsize="small")
  axes[1, 3].imshow(np.max(np.abs(ftx - fx), axis=-1), cmap="magma", vmin=0, vmax=scale)
  axes[1, 3].set_title(f"|φ(Tx) − φ(x)| (no shift back)\nmax = "
                       f"{float(np.max(np.abs(ftx - fx))):.2f}", fontsize="small")
  for ax in axes.ravel():
    ax.set_xticks([]), ax.set_yticks([])
  fig.suptitle("The first conv layer is shift-equivariant: φ(Tx) = Tφ(x)")
  return _runs.save(fig, workdir, f"{NAME}_feature_maps.png")
