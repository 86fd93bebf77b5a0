"""What every figure of hw shares: matplotlib on Agg, legends kept off the plotted data,
and the check that they are.

``legend_below`` (one axes) and ``figure_legend_below`` (one legend for several panels)
put the legend outside the plotting area; ``legend_overlaps_data`` is the test of it.
"""
from __future__ import annotations

import os
import pathlib
import warnings
from typing import Any, Iterator

import numpy as np


def pyplot():
  """``matplotlib.pyplot`` on the non-interactive Agg backend."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  return plt


class LegendCoversData(UserWarning):
  """A saved figure has a legend over plotted data (an error in the test suite)."""


def save(fig, path: str | os.PathLike, *, dpi: int = 100) -> pathlib.Path:
  """Save ``fig`` as ``path`` (a PNG; legends placed outside the axes included) and close it.

  Every figure of hw is saved here, so every one is checked with
  :func:`legend_overlaps_data`: a legend over data is a :class:`LegendCoversData` warning
  (the figure is still written: a long run does not fail over its picture).
  """
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  for problem in legend_overlaps_data(fig):
    warnings.warn(f"{path.name}: {problem}", LegendCoversData, stacklevel=2)
  fig.savefig(path, dpi=dpi, bbox_inches="tight")
  pyplot().close(fig)
  return path


def legend_below(ax, *, columns: int | None = None, offset: float = 0.18,
                 fontsize: Any = "small") -> None:
  """The axes' legend under its plotting area, so that it never covers a curve.

  ``offset`` is the gap between the bottom of the axes and the top of the legend, as a
  fraction of the axes' height (room for the tick labels and the x label). Save the
  figure with ``bbox_inches="tight"`` (or leave room) so that the legend is in the file.
  """
  handles, labels = ax.get_legend_handles_labels()
  if handles:
    ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -offset),
              ncol=columns or min(len(labels), 3), frameon=False, fontsize=fontsize)


def figure_legend_below(fig, axes, *, columns: int | None = None,
                        bottom: float = 0.08) -> None:
  """One legend for the whole figure, below the axes, so that it never covers a curve.

  Takes the handles of the first axes that has labelled artists (all panels plot the
  same series in the same colours). ``bottom`` is the figure fraction kept free for the
  legend.
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


def _legends(fig) -> Iterator[Any]:
  yield from fig.legends
  for ax in fig.axes:
    if ax.get_legend() is not None:
      yield ax.get_legend()


def _name(artist) -> str:
  label = artist.get_label()
  kind = type(artist).__name__
  return f"{kind} {label!r}" if label and not label.startswith("_") else kind


def _covers(artist, region) -> bool:
  """Whether ``artist`` (a line, a collection of lines or a patch) draws inside the
  display-space bbox ``region``."""
  from matplotlib.collections import Collection
  from matplotlib.lines import Line2D
  from matplotlib.patches import Patch
  from matplotlib.path import Path
  if not artist.get_visible():
    return False
  if isinstance(artist, Line2D):
    points = artist.get_transform().transform(np.asarray(artist.get_xydata(), float))
    points = points[np.isfinite(points).all(axis=1)]
    if len(points) and region.count_contains(points):   # a vertex (or marker) inside
      return True
    drawn = artist.get_linestyle() not in ("None", "none", "", " ")
    return bool(drawn and len(points) > 1 and Path(points).intersects_bbox(region, filled=False))
  if isinstance(artist, Patch):
    return artist.get_window_extent().overlaps(region)
  if isinstance(artist, Collection):   # error bars (LineCollection), scatter points, fills
    transform = artist.get_transform()
    for path in artist.get_paths():
      if len(path.vertices) and path.transformed(transform).intersects_bbox(region,
                                                                          filled=True):
        return True
    offsets = artist.get_offsets()
    if len(offsets) and not (len(offsets) == 1 and not np.any(offsets)):
      points = artist.get_offset_transform().transform(np.asarray(offsets, float))
      return bool(region.count_contains(points[np.isfinite(points).all(axis=1)]))
  return False


def legend_overlaps_data(fig) -> list[str]:
  """Where a legend of ``fig`` covers plotted data: one sentence per (legend, artist).

  Draws the figure, then in display coordinates intersects each legend's bounding box
  with each axes' plotting area and tests every line (its points and the segments
  between them), bar or other patch, and line/point collection (error bars, scatter) of
  that axes against what is left. An empty list: no legend covers data.
  """
  from matplotlib.transforms import Bbox
  fig.canvas.draw()
  renderer = fig.canvas.get_renderer()
  found = []
  for legend in _legends(fig):
    box = legend.get_window_extent(renderer)
    names = [text.get_text() for text in legend.get_texts()]
    for index, ax in enumerate(fig.axes):
      region = Bbox.intersection(box, ax.bbox)
      if region is None or region.width <= 0 or region.height <= 0:
        continue
      for artist in [*ax.lines, *ax.patches, *ax.collections]:
        if _covers(artist, region):
          title = ax.get_title() or f"axes {index}"
          found.append(f"the legend {names} covers {_name(artist)} in {title!r}")
  return found
