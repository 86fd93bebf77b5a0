"""Shared pytest fixtures (data-related)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture
def hw_data_dir() -> Path:
  """The real-data folder from ``$HW_DATA_DIR``; skips the test (with the reason) if unset.

  Tests that need a particular data set should still load it and let the loader raise
  (or call ``pytest.skip``) when HW_DATA_DIR lacks it.
  """
  value = os.environ.get("HW_DATA_DIR")
  if not value:
    pytest.skip("real data: set HW_DATA_DIR to the data folder (e.g. /work/shared/data)")
  path = Path(value)
  if not path.is_dir():
    pytest.skip(f"real data: HW_DATA_DIR={value} is not a folder")
  return path
