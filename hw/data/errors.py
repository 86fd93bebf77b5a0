"""The one exception type of :mod:`hw.data`."""
from __future__ import annotations


class DataError(ValueError):
  """Missing, truncated or corrupt data files, a bad pickle, or no way to get the data.

  The message names the file (or folder) and what is wrong with it.
  """
