"""Facts about the machine and the software a benchmark ran on."""
from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform


def cpu_model() -> str:
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or "unknown"


def load_average() -> tuple[float, float, float] | None:
  try:
    return os.getloadavg()
  except OSError:
    return None


def _version(package: str) -> str | None:
  try:
    return importlib.metadata.version(package)
  except importlib.metadata.PackageNotFoundError:
    return None


def facts() -> dict[str, object]:
  """CPU model, core count, load, library versions, time (UTC)."""
  import jax
  return {
      "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
      "cpu_model": cpu_model(),
      "cpu_count": os.cpu_count(),
      "load_average_at_start": load_average(),
      "platform": platform.platform(),
      "python": platform.python_version(),
      "jax": jax.__version__,
      "jaxlib": _version("jaxlib"),
      "flax": _version("flax"),
      "optax": _version("optax"),
      "torch": _version("torch"),
      "jax_backend": jax.default_backend(),
      "xla_flags": os.environ.get("XLA_FLAGS", ""),
  }
