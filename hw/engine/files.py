"""Writing results safely: atomic replacement through unique temporary files, and a lock
that keeps two runs out of one results folder at the same time."""
from __future__ import annotations

import contextlib
import fcntl
import math
import os
import pathlib
import sys
import tempfile
from typing import Any, Iterator

import numpy as np

LOCK_FILE = ".hw.lock"


def default_file_mode() -> int:
  """The mode ``open()`` gives a new file: 0o666 less the process's umask (0o644 under
  the usual umask 022)."""
  mask = os.umask(0o022)
  os.umask(mask)
  return 0o666 & ~mask


def write_atomic(path: str | os.PathLike, data: str | bytes, *, durable: bool = False) -> None:
  """Replace ``path`` with ``data`` in one step: readers see the old or the new file, never
  a torn one, and concurrent writers never share a temporary name. ``durable``: fsync first.
  The file gets the mode of any other new file (:func:`default_file_mode`), not the
  0600 of a temporary file."""
  path = pathlib.Path(path)
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
  try:
    os.fchmod(fd, default_file_mode())
    with os.fdopen(fd, "wb") as handle:
      handle.write(data.encode() if isinstance(data, str) else data)
      if durable:
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
  except BaseException:
    pathlib.Path(tmp).unlink(missing_ok=True)
    raise


def remove_stale_temporaries(directory: str | os.PathLike) -> int:
  """Delete the temporary files interrupted writers left in ``directory`` and below it
  (call it only while holding the folder's lock); returns how many."""
  stale = list(pathlib.Path(directory).rglob(".*.tmp"))
  for tmp in stale:
    tmp.unlink(missing_ok=True)
  return len(stale)


def as_json_value(value: Any) -> Any:
  """NumPy/JAX scalars and arrays to plain Python; non-finite floats to None."""
  if isinstance(value, dict):
    return {str(k): as_json_value(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [as_json_value(v) for v in value]
  if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
    return as_json_value(np.asarray(value).tolist())
  if isinstance(value, (bool, np.bool_)):
    return bool(value)
  if isinstance(value, (int, np.integer)):
    return int(value)
  if isinstance(value, (float, np.floating)):
    value = float(value)
    return value if math.isfinite(value) else None
  return value


@contextlib.contextmanager
def locked(results_dir: str | os.PathLike) -> Iterator[None]:
  """Hold ``results_dir``'s lock; a second run waits, saying which process holds it."""
  results_dir = pathlib.Path(results_dir)
  results_dir.mkdir(parents=True, exist_ok=True)
  with open(results_dir / LOCK_FILE, "a+") as handle:
    try:
      fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      handle.seek(0)
      holder = handle.read().strip() or "another process"
      print(f"[hw] {results_dir} is in use by {holder}; waiting for it to finish", file=sys.stderr,
            flush=True)
      fcntl.flock(handle, fcntl.LOCK_EX)
    handle.seek(0)
    handle.truncate()
    handle.write(f"process {os.getpid()}")
    handle.flush()
    try:
      yield
    finally:
      handle.seek(0)
      handle.truncate()
      fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def writer_lock(results_dir: str | os.PathLike, writer: bool) -> Iterator[None]:
  """For the process that writes ``results_dir`` (``writer``): hold its lock and remove
  stale temporaries first; for the others (several processes, only process 0 writes):
  nothing, so that they never wait for the lock the writer holds."""
  if not writer:
    yield
    return
  with locked(results_dir):
    remove_stale_temporaries(results_dir)
    yield
