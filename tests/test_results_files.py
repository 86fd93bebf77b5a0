"""Files a run writes: their modes, and the progress bar that stays on the screen."""
from __future__ import annotations

import os
import stat

from hw.engine import files, progress


def test_atomic_writes_get_the_mode_of_any_new_file_not_0600(tmp_path):
  previous = os.umask(0o022)
  try:
    files.write_atomic(tmp_path / "results.json", "{}")
    (tmp_path / "figure.png").write_bytes(b"png")  # as matplotlib writes a figure
    modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in tmp_path.iterdir()}
    assert modes == {"results.json": 0o644, "figure.png": 0o644}
    os.umask(0o077)
    files.write_atomic(tmp_path / "private.json", "{}")
    assert stat.S_IMODE((tmp_path / "private.json").stat().st_mode) == 0o600
  finally:
    os.umask(previous)


def test_the_progress_bar_stays_with_the_last_metrics_when_training_ends(capsys):
  bar = progress.ProgressBar("q4_3 [0] learning_rate=0.003")
  bar.on_train_begin(start_epoch=1, epochs=1, steps_per_epoch=5)
  bar.on_steps_end(5)
  bar.on_epoch_end(1, None, {"train_loss": 0.1234, "val_accuracy": 0.9876})
  bar.on_train_end()
  last_render = capsys.readouterr().err.rstrip("\n").split("\r")[-1]
  assert "5/5" in last_render and "loss=0.1234" in last_render and "val=0.9876" in last_render
