"""Training over several processes (machines) with JAX's multi-process runtime.

The command line (``hw train``, ``hw reproduce``) reads the settings once, before any
other JAX call, and calls :func:`jax.distributed.initialize`:

- ``--coordinator HOST:PORT --num-processes N --process-id I`` (all three together), or the
  environment variables ``HW_COORDINATOR``, ``HW_NUM_PROCESSES``, ``HW_PROCESS_ID`` (a flag
  wins over its variable);
- ``--distributed auto`` (or ``HW_DISTRIBUTED=auto``): JAX's own detection of the cluster
  (SLURM, Open MPI, TPU pods) fills in whatever the flags and variables leave unset.

Nothing set: one process, and nothing here changes a single number of the one-process
path. With several processes the data-parallel mesh of :mod:`hw.engine.steps` spans every
process's devices; each process feeds only its share of each batch's indices
(:func:`global_batch`), only process 0 writes files (:func:`is_writer`), and decisions
that read files (resuming from a checkpoint, skipping a finished experiment) are taken by
process 0 and broadcast (:func:`broadcast_bytes`, :func:`broadcast_json`), so that every
process enters the same collectives in the same order.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
from typing import Any, Mapping

import numpy as np

ENVIRONMENT = {"coordinator": "HW_COORDINATOR", "num_processes": "HW_NUM_PROCESSES",
               "process_id": "HW_PROCESS_ID", "distributed": "HW_DISTRIBUTED"}
FLAGS = {"coordinator": "--coordinator", "num_processes": "--num-processes",
         "process_id": "--process-id", "distributed": "--distributed"}
# Cross-process collectives on the CPU (JAX's config option and the implementation).
CPU_COLLECTIVES = ("jax_cpu_collectives_implementation", "gloo")


class SettingsError(ValueError):
  """A bad distributed setting; the message names the flag (or variable) and its value."""


class ProcessesDisagree(ValueError):
  """The processes of one run hold different configurations or data (:func:`agree`), or
  another process failed where this one did not (:func:`together`)."""


@dataclasses.dataclass(frozen=True)
class Settings:
  """What :func:`initialize` passes to :func:`jax.distributed.initialize`; ``auto``: let
  JAX detect the unset ones from the cluster's environment."""
  coordinator: str | None = None
  num_processes: int | None = None
  process_id: int | None = None
  auto: bool = False


def add_arguments(parser: argparse.ArgumentParser) -> None:
  """The multi-process flags of ``hw train`` and ``hw reproduce``."""
  group = parser.add_argument_group(
      "several processes", "train over every device of several processes (machines) with "
      "jax.distributed; only process 0 writes files. Default: $HW_COORDINATOR, "
      "$HW_NUM_PROCESSES, $HW_PROCESS_ID, $HW_DISTRIBUTED")
  group.add_argument("--coordinator", default=None, metavar="HOST:PORT",
                     help="address of process 0's coordination service")
  group.add_argument("--num-processes", default=None, metavar="N",
                     help="how many processes take part")
  group.add_argument("--process-id", default=None, metavar="I",
                     help="this process's index, 0 to N-1 (0 writes the results)")
  group.add_argument("--distributed", default=None, choices=("auto",),
                     help="auto: jax.distributed.initialize() detects what is not given "
                          "(SLURM, Open MPI) ")


def _source(name: str, args: Any, environ: Mapping[str, str]) -> tuple[str, str] | None:
  """(where it came from, text) of one setting: the flag, else the variable, else None."""
  value = getattr(args, name, None)
  if value is not None:
    return FLAGS[name], str(value)
  text = environ.get(ENVIRONMENT[name], "")
  if text.strip():
    return ENVIRONMENT[name], text.strip()
  return None


def _integer(name: str, given: tuple[str, str] | None, minimum: int) -> int | None:
  if given is None:
    return None
  where, text = given
  try:
    value = int(text)
  except ValueError:
    value = None
  if value is None or value < minimum:
    raise SettingsError(f"{where} {text!r}: {name.replace('_', ' ')} must be an integer "
                        f">= {minimum}")
  return value


def settings_from(args: Any, environ: Mapping[str, str] | None = None) -> Settings | None:
  """The settings from parsed flags and the environment; None for one plain process.

  Raises:
    SettingsError: a malformed value, a process id out of range, or a partial set of
      settings without ``--distributed auto``.
  """
  environ = os.environ if environ is None else environ
  given = {name: _source(name, args, environ) for name in ENVIRONMENT}
  auto = given["distributed"] is not None
  if auto and given["distributed"][1] != "auto":
    raise SettingsError(f"{given['distributed'][0]} {given['distributed'][1]!r}: the only "
                        f"value is 'auto'")
  coordinator = None
  if given["coordinator"] is not None:
    where, coordinator = given["coordinator"]
    host, sep, port = coordinator.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
      raise SettingsError(f"{where} {coordinator!r}: the coordinator must be HOST:PORT "
                          f"(a port from 1 to 65535), e.g. node001:12345")
  num_processes = _integer("num_processes", given["num_processes"], 1)
  process_id = _integer("process_id", given["process_id"], 0)
  if num_processes is not None and process_id is not None and process_id >= num_processes:
    where, text = given["process_id"]
    raise SettingsError(f"{where} {text!r}: the process id must be below the number of "
                        f"processes ({num_processes})")
  settings = Settings(coordinator, num_processes, process_id, auto)
  if auto:
    return settings
  missing = [FLAGS[name] for name in ("coordinator", "num_processes", "process_id")
             if getattr(settings, name) is None]
  if len(missing) == 3:
    return None
  if missing:
    named = ", ".join(f"{where} {text!r}" for where, text in
                      (given[n] for n in ("coordinator", "num_processes", "process_id")
                       if given[n] is not None))
    raise SettingsError(f"{named} given without {' and '.join(missing)}: several processes "
                        f"need all of --coordinator, --num-processes and --process-id (or "
                        f"{', '.join(ENVIRONMENT[n] for n in ('coordinator', 'num_processes', 'process_id'))}), "
                        f"or --distributed auto to detect the rest")
  if num_processes == 1:
    return None  # one process: nothing to coordinate
  return settings


_INITIALIZED: list[Settings] = []


def initialize(settings: Settings | None) -> None:
  """``jax.distributed.initialize`` with ``settings`` (once per process; None: nothing).

  Raises:
    SettingsError: JAX refused the settings (e.g. ``auto`` outside a cluster).
  """
  if settings is None or _INITIALIZED:
    return
  import jax
  jax.config.update(*CPU_COLLECTIVES)  # before the CPU backend exists; GPUs use NCCL
  try:
    jax.distributed.initialize(coordinator_address=settings.coordinator,
                               num_processes=settings.num_processes,
                               process_id=settings.process_id)
  except (ValueError, TypeError) as error:
    given = ", ".join(f"{FLAGS[name]} {value!r}" for name, value in
                      dataclasses.asdict(settings).items() if name != "auto" and value is not None)
    what = "--distributed auto" + (f" with {given}" if given else "") if settings.auto else given
    hint = (" (no SLURM, Open MPI or TPU environment was detected to fill in the rest; give "
            "--coordinator, --num-processes and --process-id)" if settings.auto else "")
    raise SettingsError(f"{what}: jax.distributed.initialize refused: {error}{hint}") from error
  _INITIALIZED.append(settings)


def setup(args: Any, prog: str) -> int | None:
  """Read the settings of parsed ``args`` and initialise; an exit status (2) with the
  error printed on bad settings, None when all is well. Call before any other JAX call."""
  import sys
  try:
    initialize(settings_from(args))
  except SettingsError as error:
    print(f"{prog}: {error}", file=sys.stderr)
    return 2
  return None


def process_count() -> int:
  import jax
  return jax.process_count()


def is_writer() -> bool:
  """Whether this process writes files: process 0 (the only process, without several)."""
  import jax
  return jax.process_index() == 0


def global_replicated(sharding: Any, value: Any) -> Any:
  """``value`` (the same on every process) as a global array replicated over ``sharding``;
  arrays that already span several processes are returned as they are."""
  import jax
  if isinstance(value, jax.Array) and not value.is_fully_addressable:
    return value
  value = np.asarray(value)
  return jax.make_array_from_process_local_data(sharding, value, value.shape)


def global_batch(sharding: Any, value: np.ndarray, axis: int) -> Any:
  """The global array ``value`` (every process holds the whole of it: the epoch's plan)
  sharded by ``sharding`` along ``axis``, from only this process's share of it."""
  import jax
  shares = sorted({(index[axis].start or 0, index[axis].stop)
                   for index in sharding.addressable_devices_indices_map(value.shape).values()})
  local = np.concatenate([np.take(value, np.arange(start, stop), axis=axis)
                          for start, stop in shares], axis=axis)
  return jax.make_array_from_process_local_data(sharding, local, value.shape)


SYNC_TIMEOUT_S = 3600  # how long a process waits at a barrier for the slowest one
_BARRIERS: list[str] = []


def barrier(name: str) -> None:
  """Wait (up to :data:`SYNC_TIMEOUT_S`) until every process reaches this point, on the
  coordination service rather than in a device collective: the CPU's gloo collectives give
  up when a peer comes more than 30 s later to the first one (a process still loading or
  downloading its data, or running a check)."""
  from jax._src import distributed as runtime  # the client jax.distributed made
  client = runtime.global_state.client
  if client is None:
    return
  _BARRIERS.append(name)
  client.wait_at_barrier(f"hw-{len(_BARRIERS)}-{name}", timeout_in_ms=SYNC_TIMEOUT_S * 1000)


def broadcast_bytes(data: bytes | None) -> bytes | None:
  """Process 0's ``data`` (None included) on every process; unchanged with one process."""
  import jax
  if jax.process_count() == 1:
    return data
  from jax.experimental import multihost_utils
  barrier("broadcast")
  source = jax.process_index() == 0
  size = len(data) if source and data is not None else -1
  size = int(multihost_utils.broadcast_one_to_all(np.int32(size)))
  if size < 0:
    return None
  buffer = np.frombuffer(data, np.uint8) if source else np.zeros(size, np.uint8)
  return np.asarray(multihost_utils.broadcast_one_to_all(buffer), np.uint8).tobytes()


def broadcast_json(value: Any) -> Any:
  """Process 0's JSON-able ``value`` on every process (what the others pass is ignored)."""
  import jax
  if jax.process_count() == 1:
    return value
  data = broadcast_bytes(json.dumps(value).encode() if is_writer() else None)
  return json.loads(data.decode())


def agree(text: str, what: str) -> None:
  """Check that every process has the same ``text`` (e.g. a fingerprint of the config and
  data); all processes raise together when they differ, so none waits in a collective.

  Raises:
    ProcessesDisagree: ``what`` differs between the processes (which ones are named).
  """
  import jax
  if jax.process_count() == 1:
    return
  from jax.experimental import multihost_utils
  barrier("agree")
  digest = np.frombuffer(hashlib.sha256(text.encode()).digest(), np.uint8)
  digests = np.asarray(multihost_utils.process_allgather(digest))
  differ = [index for index in range(len(digests)) if not np.array_equal(digests[index],
                                                                          digests[0])]
  if differ:
    raise ProcessesDisagree(f"{what} differs between process 0 and process(es) "
                     f"{', '.join(map(str, differ))}: every process must run the same command "
                     f"on the same data")


MESSAGE_BYTES = 512  # how much of another process's error message :func:`together` shows


def together(error: BaseException | None, what: str) -> None:
  """After a step that may fail in some processes only (loading the data): every process
  raises when any failed, so that none waits for the others in a collective. This process's
  own ``error`` is raised as it is; a failure elsewhere as :class:`ProcessesDisagree`
  naming the process and its message. With one process: ``error`` raised, if any."""
  import jax
  if jax.process_count() == 1:
    if error is not None:
      raise error
    return
  from jax.experimental import multihost_utils
  barrier(what)
  text = "" if error is None else f"{type(error).__name__}: {error}"
  encoded = np.zeros(MESSAGE_BYTES, np.uint8)
  data = text.encode()[:MESSAGE_BYTES]
  encoded[:len(data)] = np.frombuffer(data, np.uint8)
  rows = np.asarray(multihost_utils.process_allgather(encoded))
  if error is not None:
    raise error
  for index, row in enumerate(rows):
    if row.any():
      message = bytes(row).rstrip(b"\0").decode(errors="replace")
      raise ProcessesDisagree(f"{what}: process {index} failed ({message}); every process "
                              f"stops here")
