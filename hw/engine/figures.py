"""Pictures of an experiment: its learning curves (:func:`plot_learning_curves`, from the
results record) and, by name, pictures of the trained model that a config lists.

Each named one is ``fn(params, path)`` and draws from the selected model's parameters.
"""
from __future__ import annotations

import math
import os
import pathlib
from typing import Any, Callable, Mapping

import numpy as np

from hw import plotting
from hw.named import Registry

Figure = Callable[[Any, str | os.PathLike], None]


def _grid(images: np.ndarray, titles: list[str], path: str | os.PathLike, suptitle: str,
          cmap: str = "RdBu_r") -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  columns = min(len(images), 8 if len(images) > 10 else 5)
  rows = math.ceil(len(images) / columns)
  fig, axes = plt.subplots(rows, columns, figsize=(1.6 * columns, 1.7 * rows + 0.4), squeeze=False)
  for ax in axes.flat:
    ax.axis("off")
  for ax, image, title in zip(axes.flat, images, titles):
    limit = float(np.abs(image).max()) or 1.0
    ax.imshow(image, cmap=cmap, vmin=-limit, vmax=limit)
    ax.set_title(title, fontsize=8)
  fig.suptitle(suptitle, fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def class_templates(params: Any, path: str | os.PathLike) -> None:
  """The weights of a linear classifier's first dense layer, one 28×28 image per class
  (red: pixels that raise the class's score, blue: lower it)."""
  kernel = np.asarray(params["Dense_0"]["kernel"])  # (784, classes)
  side = int(round(math.sqrt(kernel.shape[0])))
  images = kernel.T.reshape(-1, side, side)
  _grid(images, [f"class {k}" for k in range(len(images))], path,
        "learned class templates: weights of each class's score")


def first_filters(params: Any, path: str | os.PathLike) -> None:
  """The first convolution's kernels (one input channel), one image per filter."""
  kernel = np.asarray(params["Conv_0"]["kernel"])  # (KH, KW, C, F)
  images = kernel[:, :, 0, :].transpose(2, 0, 1)
  _grid(images, [f"filter {f}" for f in range(len(images))], path,
        f"first-layer {kernel.shape[0]}×{kernel.shape[1]} filters")


FIGURES: Registry[Figure] = Registry("figure")
FIGURES.register("class_templates", class_templates, "a linear classifier's weights as images")
FIGURES.register("first_filters", first_filters, "the first convolution's kernels as images")


def plot_learning_curves(results: Mapping[str, Any], path: str | os.PathLike) -> pathlib.Path:
  """Draw :func:`learning_curves_figure` into the PNG ``path``."""
  return plotting.save(learning_curves_figure(results), path, dpi=100)


def learning_curves_figure(results: Mapping[str, Any]):
  """Two panels: accuracy and loss per epoch. The selected grid point's train and
  validation curves are drawn bold; every other point's validation accuracy thin. The
  legends sit under the panels."""
  plt = plotting.pyplot()
  selected = results["selected"]["index"]
  fig, (acc_ax, loss_ax) = plt.subplots(1, 2, figsize=(10, 4))
  for point in results["grid"]:
    epochs = [r["epoch"] for r in point["history"]]
    if point["index"] == selected or not epochs:
      continue
    acc_ax.plot(epochs, [r["val_accuracy"] for r in point["history"]], lw=0.8, alpha=0.6,
                label=f"val: {point['label']}")
  best = results["grid"][selected]
  epochs = [r["epoch"] for r in best["history"]]
  for key, style in (("train", "--"), ("val", "-")):
    acc_ax.plot(epochs, [r[f"{key}_accuracy"] for r in best["history"]], style, lw=2, color="k",
                label=f"{key} (selected: {best['label']})")
    loss_ax.plot(epochs, [r[f"{key}_loss"] for r in best["history"]], style, lw=2, color="k",
                 label=f"{key} (selected)")
  acc_ax.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
  loss_ax.set(xlabel="epoch", ylabel="loss", title="loss (selected point)")
  for ax in (acc_ax, loss_ax):
    ax.grid(alpha=0.3)
    plotting.legend_below(ax, columns=1, fontsize=7)   # under the panel, off the curves
  fig.suptitle(f"{results['title']} — test accuracy {results['test_accuracy']:.4f}", fontsize=10)
  fig.tight_layout()
  return fig
