"""Atomic per-epoch checkpoints: one msgpack file per training run (flax.serialization).

A checkpoint holds the training state (params, batch_stats, optimiser state), the number
of completed epochs, the metrics history and a fingerprint of the configuration it
belongs to. It is written to a temporary file in the same folder and moved into place
with ``os.replace``, so an interruption leaves either the previous or the new checkpoint,
never a torn one.
"""
from __future__ import annotations

import json
import os
import pathlib
from typing import Any

import jax
import numpy as np
from flax import serialization

from hw.engine import files

FILENAME = "checkpoint.msgpack"


def save(directory: str | os.PathLike, *, state: Any, epoch: int,
         history: list[dict[str, Any]], fingerprint: str) -> pathlib.Path:
  """Atomically write ``state`` (a pytree) and metadata to ``directory/checkpoint.msgpack``."""
  directory = pathlib.Path(directory)
  directory.mkdir(parents=True, exist_ok=True)
  payload = {
      "state": serialization.to_state_dict(jax.device_get(state)),
      "epoch": int(epoch),
      "history_json": json.dumps(history),
      "fingerprint": fingerprint,
  }
  data = serialization.msgpack_serialize(payload)
  path = directory / FILENAME
  files.write_atomic(path, data, durable=True)
  return path


def load(directory: str | os.PathLike, *, target: Any,
         fingerprint: str) -> tuple[Any, int, list[dict[str, Any]]] | None:
  """Restore ``(state, epoch, history)`` into the structure of ``target``.

  Returns None when there is no checkpoint, or it belongs to another configuration
  (fingerprint mismatch), or it cannot be read (a warning is printed).
  """
  return restore(read(directory), pathlib.Path(directory) / FILENAME, target=target,
                 fingerprint=fingerprint)


def read(directory: str | os.PathLike) -> bytes | None:
  """The bytes of ``directory``'s checkpoint; None when there is none."""
  path = pathlib.Path(directory) / FILENAME
  if not path.exists():
    return None
  try:
    return path.read_bytes()
  except OSError as error:
    print(f"[checkpoint] ignoring unreadable {path}: {type(error).__name__}: {error}")
    return None


def restore(data: bytes | None, path: pathlib.Path, *, target: Any,
            fingerprint: str) -> tuple[Any, int, list[dict[str, Any]]] | None:
  """:func:`load` of a checkpoint's bytes ``data`` (read from ``path``, named in warnings)."""
  if data is None:
    return None
  try:
    payload = serialization.msgpack_restore(data)
    if payload.get("fingerprint") != fingerprint:
      print(f"[checkpoint] ignoring {path}: it belongs to another configuration")
      return None
    state = serialization.from_state_dict(target, payload["state"])
  except Exception as error:  # a corrupt or incompatible file: start afresh, loudly
    print(f"[checkpoint] ignoring unreadable {path}: {type(error).__name__}: {error}")
    return None
  state = jax.tree_util.tree_map(np.asarray, state)
  return state, int(payload["epoch"]), json.loads(payload["history_json"])
