"""The processes of one run as the engine sees them: one small object instead of branches.

With one process (the default) every method is the plain one-process step: nothing is
broadcast, compared or gathered, and arrays are placed as they always were. With several
(set up by :mod:`hw.engine.distributed` before any JAX call), only process 0 writes files
(:attr:`Runtime.writer`), decisions that read files are taken by process 0 and broadcast
(:meth:`Runtime.from_writer`, :meth:`Runtime.json_from_writer`), steps that may fail in one
process only fail in all (:meth:`Runtime.together`), and arrays become global arrays made
from each process's copy or share (:meth:`Runtime.replicate`, :meth:`Runtime.step_inputs`).
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, TypeVar

import jax
import numpy as np

from hw.engine import distributed

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Runtime:
  """This process's place among the ``process_count`` processes of the run."""
  process_index: int = 0
  process_count: int = 1

  @classmethod
  def current(cls) -> "Runtime":
    """The processes JAX was started with (one, unless ``jax.distributed`` was initialised)."""
    return cls(jax.process_index(), jax.process_count())

  @property
  def writer(self) -> bool:
    """Whether this process writes files: process 0 (the only one, without several)."""
    return self.process_index == 0

  @property
  def several(self) -> bool:
    return self.process_count > 1

  def together(self, compute: Callable[[], T], what: str) -> T:
    """``compute()`` in every process; when it raised in any process, every process raises
    (its own error, or :class:`hw.engine.distributed.ProcessesDisagree` naming the one that
    failed), so that none waits for the others in a collective."""
    if not self.several:
      return compute()
    value, failure = None, None
    try:
      value = compute()
    except Exception as error:  # the others must hear of it before anyone raises
      failure = error
    distributed.together(failure, what)
    return value

  def agree(self, text: str, what: str) -> None:
    """Every process holds the same ``text`` (e.g. a fingerprint), or all raise
    :class:`hw.engine.distributed.ProcessesDisagree`; nothing to compare with one process."""
    if self.several:
      distributed.agree(text, what)

  def from_writer(self, read: Callable[[], bytes | None]) -> bytes | None:
    """Process 0's ``read()`` on every process (the others do not call it)."""
    if not self.several:
      return read()
    return distributed.broadcast_bytes(read() if self.writer else None)

  def json_from_writer(self, compute: Callable[[], Any]) -> Any:
    """Process 0's JSON-able ``compute()`` on every process (the others do not call it)."""
    if not self.several:
      return compute()
    return distributed.broadcast_json(compute() if self.writer else None)

  def mesh_devices(self, per_process: int) -> list[Any]:
    """The first ``per_process`` local devices of every process, process by process."""
    if not self.several:
      return jax.local_devices()[:per_process]
    devices = []
    for process in range(self.process_count):
      mine = sorted((d for d in jax.devices() if d.process_index == process), key=lambda d: d.id)
      devices += mine[:per_process]
    return devices

  def replicate(self, sharding: Any, tree: Any) -> Any:
    """``tree`` replicated over ``sharding``; with several processes, global arrays made
    from each process's (identical) copy."""
    if not self.several:
      return jax.device_put(tree, sharding)
    return jax.tree_util.tree_map(functools.partial(distributed.global_replicated, sharding),
                                  tree)

  def step_inputs(self, along: Any, replicated: Any, index: np.ndarray,
                  keys: np.ndarray) -> tuple[Any, Any]:
    """A step's (or chunk's) batch indices and key data as the programs take them: as they
    are with one process; with several, the indices as a global array sharded by ``along``
    on their last axis (built from this process's share) and the keys replicated."""
    if not self.several:
      return index, keys
    return (distributed.global_batch(along, index, index.ndim - 1),
            distributed.global_replicated(replicated, keys))
