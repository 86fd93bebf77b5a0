"""What the studies share: JSON output, matplotlib set-up, figure legends kept off the curves."""
from __future__ import annotations

import json
import os
import pathlib

from hw import plotting
from hw.engine.files import as_json_value


def write_json(workdir: os.PathLike, name: str, results: dict) -> pathlib.Path:
  """Write ``results`` to ``<workdir>/<name>.json`` (creating ``workdir``); return the path."""
  folder = pathlib.Path(workdir)
  folder.mkdir(parents=True, exist_ok=True)
  path = folder / f"{name}.json"
  path.write_text(json.dumps(as_json_value(results), indent=1, ensure_ascii=False) + "\n")
  return path


# Shared with every figure of hw (hw.plotting); the studies call them by these names.
pyplot = plotting.pyplot
legend_below = plotting.figure_legend_below


def save_figure(fig, workdir: os.PathLike, filename: str) -> pathlib.Path:
  """Save ``fig`` as ``<workdir>/<filename>`` (PNG, 120 dpi) and close it."""
  return plotting.save(fig, pathlib.Path(workdir) / filename, dpi=120)
