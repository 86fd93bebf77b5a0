"""What the studies share: JSON output, matplotlib set-up, figure legends kept off the curves."""
from __future__ import annotations

import json
import os
import pathlib

import numpy as np

from hw.files import as_json_value


def write_json(workdir: os.PathLike, name: str, results: dict) -> pathlib.Path:
  """Write ``results`` to ``<workdir>/<name>.json`` (creating ``workdir``); return the path."""
  folder = pathlib.Path(workdir)
  folder.mkdir(parents=True, exist_ok=True)
  path = folder / f"{name}.json"
  path.write_text(json.dumps(as_json_value(results), indent=1, ensure_ascii=False) + "\n")
  return path


def pyplot():
  """``matplotlib.pyplot`` on the non-interactive Agg backend."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  return plt


def legend_below(fig, axes, *, columns: int | None = None, bottom: float = 0.08) -> None:
  """One legend for the whole figure, below the axes, so that it never covers a curve.

  Takes the handles of the first axes that has labelled artists (all panels of a study
  plot the same series in the same colours). ``bottom`` is the figure fraction kept
  free for the legend.
  """
  for ax in np.ravel(axes):
    handles, labels = ax.get_legend_handles_labels()
    if handles:
      break
  else:
    return
  fig.legend(handles, labels, loc="lower center", ncol=columns or len(labels),
             frameon=False, bbox_to_anchor=(0.5, 0.0))
  fig.tight_layout(rect=(0, bottom, 1, 1))


def save_figure(fig, workdir: os.PathLike, filename: str) -> pathlib.Path:
  """Save ``fig`` as ``<workdir>/<filename>`` (PNG, 120 dpi) and close it."""
  path = pathlib.Path(workdir) / filename
  path.parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(path, dpi=120)
  import matplotlib.pyplot as plt
  plt.close(fig)
  return path
