"""How a command ends when something goes wrong: Ctrl-C and errors, without tracebacks.

The command line (:func:`experiments.cli.main`) installs :func:`watching_interrupts`: a
SIGINT handler that raises ``KeyboardInterrupt`` as Python's own does and remembers that
it did, because an interrupt that lands inside NumPy's C code can surface as another
exception (``ValueError: setting an array element with a sequence``); any exception after
a Ctrl-C is reported as the interruption (exit 130). ``--debug`` shows tracebacks.
"""
from __future__ import annotations

import contextlib
import signal
import sys
import threading
import traceback
from typing import Iterator

INTERRUPTED = 130
RESUME_HINT = "rerun the same command to resume"
_state = {"interrupted": False, "debug": False}


def interrupted() -> bool:
  """Whether Ctrl-C was pressed while :func:`watching_interrupts` was active."""
  return _state["interrupted"]


def set_debug(debug: bool) -> None:
  _state["debug"] = bool(debug)


def debug() -> bool:
  """Whether ``--debug`` asked for tracebacks."""
  return _state["debug"]


def _on_sigint(signum, frame) -> None:
  _state["interrupted"] = True
  raise KeyboardInterrupt


@contextlib.contextmanager
def watching_interrupts() -> Iterator[None]:
  """Remember a Ctrl-C (SIGINT) while the block runs (main thread only; elsewhere a no-op)."""
  _state["interrupted"] = False
  if threading.current_thread() is not threading.main_thread():
    yield
    return
  previous = signal.signal(signal.SIGINT, _on_sigint)
  try:
    yield
  finally:
    signal.signal(signal.SIGINT, previous)


def show_traceback() -> None:
  """The current exception's traceback on stderr when ``--debug`` asked for it."""
  if debug():
    traceback.print_exc()


def one_line(error: BaseException) -> str:
  """``Type: message`` on one line."""
  text = " ".join(str(error).split())
  return f"{type(error).__name__}: {text}" if text else type(error).__name__


def fail(prefix: str, message: str) -> None:
  """Print ``prefix: message`` as the last line, on stderr, after flushing stdout."""
  sys.stdout.flush()
  print(f"{prefix}: {message}", file=sys.stderr, flush=True)
