"""Keep freed host memory in the process, so a train step does not page-fault its buffers.

XLA:CPU allocates each execution's buffers (one temporary block per program, sized for
all its intermediates, plus the outputs) with ``malloc`` and frees them when it is done.
glibc serves a block above its mmap threshold (at most 32 MiB) with a fresh ``mmap`` and
unmaps it on ``free``, and trims its heap when the top is free: the next step then takes a
page fault on every 4 KiB page it touches again. Measured on the 2-core CPU
(``docs/speed.md``): a Winograd layer's forward pass took 6.5-23 ms in different
processes (1-5 million page faults in a 20 s run), 6.3 ms every time with freed memory
kept (0.15 million).

:func:`keep_freed_memory` asks glibc (``mallopt``) to serve every block from its main
heap (``M_ARENA_MAX`` = 1: XLA's worker threads would otherwise allocate in per-thread
arenas, which take any block over 64 MiB from ``mmap`` whatever the settings; ``M_MMAP_MAX``
= 0) and never to give freed memory back (``M_TRIM_THRESHOLD`` = 2³¹ − 1, the largest an
int holds; ``M_TOP_PAD`` = 64 MiB): a process holds on to its peak memory, and reuses it.
Q6.2's quick run (``hw reproduce --only q6_2``): 19.3 million minor page faults and 104 s
without, 0.2 million and 89 s with (peak resident memory 3.3 and 4.0 GB; the same
accuracy; ``docs/speed.md``). It changes
no result (allocation does not change arithmetic) and does nothing where the C library is
not glibc. The ``hw`` command calls it at start when the backend JAX will pick
(:func:`hw.backends.expected_backend`) has ``keep_freed_memory`` in its row of
:mod:`hw.backends` (the CPU), before XLA's threads exist: a thread that has already
allocated keeps its own arena. The training engine calls it too (on the CPU), for library
users; called late, the per-thread arenas it cannot reach keep mapping large blocks.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools

from hw import backends

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -2, -4, -8
_TOP_PAD_BYTES = 64 << 20
_NEVER_TRIM = 2**31 - 1  # mallopt's value is a C int


@functools.lru_cache(maxsize=None)
def keep_freed_memory() -> bool:
  """Make glibc's malloc keep freed memory for reuse (once per process).

  Returns:
    True when glibc accepted all four settings; False where the C library is not glibc
    (or refused one), which leaves the allocator as it was.
  """
  name = ctypes.util.find_library("c")
  try:
    libc = ctypes.CDLL(name)
    mallopt = libc.mallopt
    libc.gnu_get_libc_version  # only glibc has it  # noqa: B018
  except (OSError, AttributeError, TypeError):
    return False
  mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
  return all(mallopt(option, value) == 1 for option, value in (
      (_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, _NEVER_TRIM),
      (_M_TOP_PAD, _TOP_PAD_BYTES)))


def keep_freed_memory_on(backend: str) -> bool:
  """:func:`keep_freed_memory` where the row of ``backend`` in :mod:`hw.backends` asks for
  it (the CPU); nothing elsewhere.

  Returns:
    Whether freed memory is kept: False for a backend whose row does not ask, or where
    glibc refused.
  """
  return backends.choices(backend).keep_freed_memory and keep_freed_memory()
