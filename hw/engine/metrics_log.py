"""The per-epoch metrics file of an experiment: one JSON line per epoch, while it trains."""
from __future__ import annotations

import json
import pathlib
from typing import Any

from hw.engine import loop


class MetricsLog(loop.Hook):
  """Appends each epoch's record as one JSON line to ``path`` (watch or plot a live run)."""

  def __init__(self, path: pathlib.Path, **fields: Any):
    self.path, self.fields = path, fields

  def on_epoch_end(self, epoch: int, state: loop.TrainState, record: dict[str, Any]) -> None:
    with open(self.path, "a") as handle:
      handle.write(json.dumps({**self.fields, **record}) + "\n")
