"""``<name>.metrics.jsonl``: one JSON line per finished epoch of a training run.

Every line is the epoch's record (epoch, learning_rate, train/validation loss and accuracy,
seconds) plus what tells the lines of different runs apart: ``experiment`` and its
``fingerprint`` (the results JSON's), the grid ``point`` (index, ``params``, ``label``),
its ``seed`` and ``point_fingerprint`` (its checkpoint's), and ``run``, a new id for each
training run (one grid point in one call; a resumed point is a new run). Runs of another
configuration or seed appended to the same file stay apart by these fields.

The line is written after the epoch's checkpoint. A crash between the two would lose the
line; when the point resumes from that checkpoint, the epochs it holds that the file lacks
are written from the checkpoint's history first, marked ``"restored": true``.
"""
from __future__ import annotations

import json
import os
import pathlib
import uuid
from typing import Any, Iterator

from hw.engine import checkpoint, loop


def read_lines(path: str | os.PathLike) -> Iterator[dict[str, Any]]:
  """The lines of a metrics file as dicts (a torn last line, from a crash, is skipped)."""
  path = pathlib.Path(path)
  if not path.exists():
    return
  with open(path) as handle:
    for line in handle:
      try:
        yield json.loads(line)
      except json.JSONDecodeError:
        continue


def _checkpoint_history(directory: pathlib.Path, point_fingerprint: str | None) -> list[dict]:
  """The metrics history saved in ``directory``'s checkpoint ([] if none or another one's)."""
  from flax import serialization
  data = checkpoint.read(directory)
  if data is None:
    return []
  try:
    payload = serialization.msgpack_restore(data)
  except Exception:  # pylint: disable=broad-except  # unreadable: train_point says so
    return []
  if point_fingerprint is not None and payload.get("fingerprint") != point_fingerprint:
    return []
  return json.loads(payload.get("history_json", "[]"))


class MetricsLog(loop.Hook):
  """Appends each epoch's record, with ``fields`` and the run's id, as one JSON line to
  ``path``; resuming, first restores the lines of finished epochs the file lacks from the
  checkpoint in ``checkpoint_dir`` (see the module docstring)."""

  def __init__(self, path: pathlib.Path, *, checkpoint_dir: pathlib.Path | None = None,
               **fields: Any):
    self.path, self.checkpoint_dir = pathlib.Path(path), checkpoint_dir
    self.fields = {**fields, "run": uuid.uuid4().hex[:12]}

  def _same_point(self, line: dict[str, Any]) -> bool:
    keys = ("experiment", "point", "point_fingerprint")
    return all(line.get(key) == self.fields.get(key) for key in keys)

  def on_train_begin(self, *, start_epoch: int, epochs: int, steps_per_epoch: int) -> None:
    if start_epoch <= 1 or self.checkpoint_dir is None:
      return
    logged = {line.get("epoch") for line in read_lines(self.path) if self._same_point(line)}
    if set(range(1, start_epoch)) <= logged:
      return
    history = _checkpoint_history(pathlib.Path(self.checkpoint_dir),
                                  self.fields.get("point_fingerprint"))
    missing = [r for r in history if r["epoch"] < start_epoch and r["epoch"] not in logged]
    self._append([{**self.fields, **record, "restored": True} for record in missing])

  def on_epoch_end(self, epoch: int, state: loop.TrainState, record: dict[str, Any]) -> None:
    self._append([{**self.fields, **record}])

  def _append(self, lines: list[dict[str, Any]]) -> None:
    if lines:
      with open(self.path, "a") as handle:
        handle.write("".join(json.dumps(line) + "\n" for line in lines))
