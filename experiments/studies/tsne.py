"""Study: t-SNE of 2,000 MNIST test digits, and symmetric SNE (Gaussian Q) beside it.

Both use the same P (perplexity 30 on the 50 leading principal components), the same
initialisation and the same optimiser settings (1,000 iterations, exaggeration 12 for
250, momentum 0.5 → 0.8, gains, η = 200); only the low-dimensional kernel differs.
The Gaussian's light tails cannot place moderately similar points at moderate distance
without crushing everything else together (the crowding problem); Student-t's heavy
tails can. The quality measure is the leave-one-out 5-nearest-neighbour label accuracy
in the 2-D embedding.
"""
from __future__ import annotations

import dataclasses
import os

import numpy as np

import hw.tsne
from experiments.studies import _common

NAME = "tsne"


def _digits(data_dir, dataset, num_points):
  if dataset is None:
    import hw.data
    dataset = hw.data.load_dataset("mnist", data_dir=data_dir)
  split = getattr(dataset, "test", dataset)  # a Dataset, or an ArraySplit directly
  return np.asarray(split.images[:num_points]), np.asarray(split.labels[:num_points])


def run_tsne(workdir: os.PathLike, *, data_dir=None, dataset=None, num_points: int = 2000,
             config: hw.tsne.TsneConfig = hw.tsne.TsneConfig()) -> dict:
  """Embed the first ``num_points`` MNIST test digits; write ``tsne.json`` and ``tsne.png``.

  Args:
    workdir: output folder.
    data_dir: where to look for MNIST (None: ``$HW_DATA_DIR``, then tfds).
    dataset: instead of loading, a ``hw.data.Dataset`` (its test split is used) or an
      ``ArraySplit``.
    num_points: how many digits (the first ones, in file order).
    config: the t-SNE settings; the Gaussian run uses the same with ``kernel="gaussian"``.

  Returns:
    The results dict: ``"knn5_accuracy"``, ``"kl"``, ``"seconds"`` (PCA + P + 1,000
    iterations, after compilation) of t-SNE, the same under ``"gaussian_sne"``, and the
    machine load while it ran.
  """
  images, labels = _digits(data_dir, dataset, num_points)
  load_before = os.getloadavg()
  tsne = hw.tsne.embed(images, config)
  load_after = os.getloadavg()
  sne = hw.tsne.embed(images, dataclasses.replace(config, kernel="gaussian"))
  summary = lambda e: {
      "knn5_accuracy": hw.tsne.knn_accuracy(e.y, labels, k=5), "kl": e.kl,
      "seconds": e.seconds, "cpu_seconds": e.cpu_seconds,
      "affinity_seconds": e.affinity_seconds, "compile_seconds": e.compile_seconds,
      "kl_history": e.kl_history}
  results = {
      **summary(tsne),
      "num_points": len(labels),
      "config": dataclasses.asdict(config),
      "cpu_cores": os.cpu_count(),
      "load_average_1min": {"before": load_before[0], "after": load_after[0]},
      "gaussian_sne": summary(sne),
      "targets": {"seconds": 15.0, "knn5_accuracy": 0.88},
  }
  _plot(workdir, tsne.y, sne.y, labels, results)
  _common.write_json(workdir, NAME, results)
  return results


def _plot(workdir, y_tsne, y_sne, labels, results) -> None:
  plt = _common.pyplot()
  fig, axes = plt.subplots(1, 2, figsize=(11, 5.6))
  colours = plt.get_cmap("tab10")
  panels = ((axes[0], y_tsne, "t-SNE (Student-t Q)", results),
            (axes[1], y_sne, "symmetric SNE (Gaussian Q)", results["gaussian_sne"]))
  for ax, y, title, numbers in panels:
    for digit in range(int(labels.max()) + 1):
      chosen = labels == digit
      ax.scatter(y[chosen, 0], y[chosen, 1], s=3, color=colours(digit % 10), label=str(digit))
    ax.set_title(f"{title}\n5-NN accuracy {numbers['knn5_accuracy']:.3f}, "
                 f"KL {numbers['kl']:.3f}", fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_aspect("equal", adjustable="datalim")
  fig.suptitle(f"{len(labels)} MNIST test digits, perplexity "
               f"{results['config']['perplexity']:g}, {results['config']['iterations']} "
               "iterations", fontsize=11)
  handles, names = axes[0].get_legend_handles_labels()
  fig.legend(handles, names, loc="lower center", ncol=len(names), frameon=False,
             markerscale=4, title="digit", fontsize=9)
  fig.tight_layout(rect=(0, 0.1, 1, 1))
  _common.save_figure(fig, workdir, f"{NAME}.png")
