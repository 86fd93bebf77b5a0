"""Keep freed host memory in the process, so a train step does not page-fault its buffers.

XLA:CPU allocates each execution's buffers (one temporary block per program, sized for
all its intermediates, plus the outputs) with ``malloc`` and frees them when it is done.
glibc serves a block above its mmap threshold (at most 32 MiB) with a fresh ``mmap`` and
unmaps it on ``free``, and trims its heap when the top is free: the next step then takes a
page fault on every 4 KiB page it touches again. Measured on the 2-core CPU
(``docs/results/speed.md``): a Winograd layer's forward pass took 6.5-23 ms in different
processes (1-5 million page faults in a 20 s run), 6.3 ms every time with freed memory
kept (0.15 million).

:func:`keep_freed_memory` asks glibc (``mallopt``) to serve every block from its heap
(``M_MMAP_MAX`` = 0) and never to give freed memory back (``M_TRIM_THRESHOLD`` = 2³¹ - 1, the largest an int holds;
``M_TOP_PAD`` = 64 MiB): a process holds on to its peak memory, and reuses it. It changes
no result (allocation does not change arithmetic) and does nothing where the C library is
not glibc. The training engine calls it on backends whose row of :mod:`hw.backends` says
``keep_freed_memory`` (the CPU).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_MAX = -1, -2, -4
_TOP_PAD_BYTES = 64 << 20
_NEVER_TRIM = 2**31 - 1  # mallopt's value is a C int


@functools.lru_cache(maxsize=None)
def keep_freed_memory() -> bool:
  """Make glibc's malloc keep freed memory for reuse (once per process).

  Returns:
    True when glibc accepted all three settings; False where the C library is not glibc
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
      (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, _NEVER_TRIM), (_M_TOP_PAD, _TOP_PAD_BYTES)))
