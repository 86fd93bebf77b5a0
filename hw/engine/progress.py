"""What the console shows while training: a progress bar or one line per epoch.

The switches are read once, by the command line (:func:`Console.from_environment`), and
passed down; library code never reads the environment for them.
"""
from __future__ import annotations

import dataclasses
import os
import sys
from typing import Any

import tqdm

from hw.engine.loop import Hook
from hw.engine.steps import TrainState


@dataclasses.dataclass(frozen=True)
class Console:
  """``progress``: live bars (a terminal); ``quiet``: no per-epoch lines without them."""
  progress: bool = False
  quiet: bool = False

  @classmethod
  def from_environment(cls) -> "Console":
    """Bars when stderr is a terminal and ``HW_NO_PROGRESS`` is unset; ``HW_QUIET=1``
    silences the per-epoch lines."""
    off = lambda name: os.environ.get(name, "") not in ("", "0")
    return cls(progress=sys.stderr.isatty() and not off("HW_NO_PROGRESS"), quiet=off("HW_QUIET"))

  @classmethod
  def for_process(cls) -> "Console":
    """:meth:`from_environment` in process 0 (the only one, without several); silent in
    the other processes of a multi-process run, which compute the same epochs."""
    import jax
    return cls.from_environment() if jax.process_index() == 0 else cls(quiet=True)

  def hooks(self, name: str, epochs: int) -> list[Hook]:
    """The hooks that show the training of run ``name``."""
    if self.progress:
      return [ProgressBar(name)]
    return [] if self.quiet else [EpochLines(name, epochs)]


class ProgressBar(Hook):
  """A tqdm bar over the remaining mini-batches, with the last epoch's metrics; it stays on
  the screen when the run ends, so that its last metrics can still be read."""

  def __init__(self, name: str):
    self.name = name
    self.bar: Any = None

  def on_train_begin(self, *, start_epoch: int, epochs: int, steps_per_epoch: int) -> None:
    self.bar = tqdm.tqdm(total=(epochs - start_epoch + 1) * steps_per_epoch,
                         desc=self.name[:60], unit="batch", leave=True)

  def on_steps_end(self, steps: int) -> None:
    self.bar.update(steps)

  def on_epoch_end(self, epoch: int, state: TrainState, record: dict[str, Any]) -> None:
    self.bar.set_postfix(loss=f"{record['train_loss']:.4f}", val=f"{record['val_accuracy']:.4f}")

  def on_train_end(self) -> None:
    if self.bar is not None:
      self.bar.close()


class EpochLines(Hook):
  """One line per epoch (logs, CI, pipes)."""

  def __init__(self, name: str, epochs: int):
    self.name, self.epochs = name, epochs

  def on_epoch_end(self, epoch: int, state: TrainState, record: dict[str, Any]) -> None:
    print(f"[train] {self.name} epoch {epoch}/{self.epochs}: loss {record['train_loss']:.4f} "
          f"train acc {record['train_accuracy']:.4f} val acc {record['val_accuracy']:.4f} "
          f"({record['seconds']:.1f} s)", flush=True)
