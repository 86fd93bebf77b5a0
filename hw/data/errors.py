"""The one exception type of :mod:`hw.data`."""
from __future__ import annotations


class DataError(ValueError):
  """Missing, truncated or corrupt data files, a bad pickle, or no way to get the data.

  The message names the file (or folder) and what is wrong with it.
  """


class DataUnavailable(DataError):
  """No local copy of a data set and no network to download it: the one data problem that
  may skip an experiment the user did not ask for by name (anything else is a failure)."""
