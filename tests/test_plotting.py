"""Legends never cover data: hw.plotting.legend_overlaps_data, and the figures of
experiments.report and hw verify checked with it."""
from __future__ import annotations

import types

import numpy as np
import pytest

from hw import plotting
from hw.engine import figures
from hw.verification import verify

plt = plotting.pyplot()


@pytest.fixture(autouse=True)
def close_figures():
  yield
  plt.close("all")


def _crossing_lines(legend):
  fig, ax = plt.subplots(figsize=(5, 3))
  x = np.linspace(0, 1, 40)
  ax.plot(x, x, label="rising")
  ax.plot(x, 1 - x, "--", label="falling")
  ax.set_xlabel("x")
  legend(fig, ax)
  return fig


def test_a_legend_over_a_line_is_found():
  fig = _crossing_lines(lambda fig, ax: ax.legend(loc="center"))
  found = plotting.legend_overlaps_data(fig)
  assert len(found) == 2 and "'rising'" in found[0] and "'falling'" in found[1]


def test_saving_a_figure_with_a_legend_over_data_warns_and_the_suite_makes_it_an_error(
    tmp_path):
  with pytest.warns(plotting.LegendCoversData, match="bad.png: the legend"):
    plotting.save(_crossing_lines(lambda fig, ax: ax.legend(loc="center")), tmp_path / "bad.png")
  assert (tmp_path / "bad.png").stat().st_size > 0  # still written
  with pytest.raises(plotting.LegendCoversData):  # pyproject's filterwarnings: an error
    plotting.save(_crossing_lines(lambda fig, ax: ax.legend(loc="center")), tmp_path / "b.png")
  plotting.save(_crossing_lines(lambda fig, ax: plotting.legend_below(ax)), tmp_path / "ok.png")


def test_a_legend_over_segments_but_no_vertex_is_found():
  fig, ax = plt.subplots(figsize=(5, 3))
  ax.plot([0, 1], [0.5, 0.5], label="two points only")   # no vertex under the legend
  ax.legend(loc="center")
  assert plotting.legend_overlaps_data(fig)


def test_a_legend_over_bars_or_points_is_found():
  fig, (bars, points) = plt.subplots(1, 2, figsize=(8, 3))
  bars.bar([0, 1, 2], [3, 3, 3], yerr=0.2, label="bars")
  bars.legend(loc="center")
  points.scatter([0.5], [0.5], label="a point")
  points.set(xlim=(0, 1), ylim=(0, 1))
  fig.legend(loc="center", bbox_to_anchor=(0.72, 0.55))   # a figure legend over the point
  found = plotting.legend_overlaps_data(fig)
  assert any("Rectangle" in f for f in found) and any("'a point'" in f for f in found)


def test_legends_below_the_axes_cover_nothing():
  fig = _crossing_lines(lambda fig, ax: plotting.legend_below(ax))
  assert plotting.legend_overlaps_data(fig) == []
  fig = _crossing_lines(lambda fig, ax: plotting.figure_legend_below(fig, [ax]))
  assert fig.legends and plotting.legend_overlaps_data(fig) == []


def test_a_legend_away_from_the_data_covers_nothing():
  fig, ax = plt.subplots(figsize=(5, 3))
  ax.scatter([0.05, 0.95], [0.05, 0.95], label="corners")
  ax.set(xlim=(0, 1), ylim=(0, 1))
  ax.legend(loc="center")
  assert plotting.legend_overlaps_data(fig) == []


def _history(offset, epochs=12):
  rows = []
  for epoch in range(1, epochs + 1):   # curves spread over the whole panel
    t = epoch / epochs
    rows.append({"epoch": epoch, "train_accuracy": 0.1 + 0.89 * t, "val_accuracy": 0.1 + offset * t,
                 "train_loss": 2.3 * (1 - t) + 0.01, "val_loss": 2.3 - 1.5 * t + offset})
  return rows


def test_learning_curves_legends_cover_no_curve(tmp_path):
  results = {"title": "fake", "test_accuracy": 0.9, "selected": {"index": 1},
             "grid": [{"index": i, "label": f"lr={lr}", "history": _history(0.3 + 0.2 * i)}
                      for i, lr in enumerate((0.1, 0.01, 0.001, 0.0001))]}
  fig = figures.learning_curves_figure(results)
  assert all(ax.get_legend() is not None for ax in fig.axes)
  assert plotting.legend_overlaps_data(fig) == []
  path = figures.plot_learning_curves(results, tmp_path / "curves.png")
  assert path.stat().st_size > 5000


def test_verify_error_chart_legend_covers_no_bar():
  reports = [types.SimpleNamespace(op=name, max_rel_err=error, passed=error < 1e-10)
             for name, error in (("relu", 0.0), ("tanh", 6.7e-16), ("sigmoid", 1.0),
                                 ("softmax", float("nan")), ("linear", 1e-12))]
  fig = verify.errors_figure(reports * 8)   # as tall as the real 37-row chart
  assert fig.axes[0].get_legend() is not None
  assert plotting.legend_overlaps_data(fig) == []
