"""The ``hw`` console script: ``hw.cli`` with this package's experiments as its catalog."""
from __future__ import annotations

import sys
from typing import Sequence

from experiments import registry
from hw import cli


def _bench(argv: Sequence[str]) -> int:
  from benchmarks import run  # the benchmarks need only hw; imported when asked for
  return run.main(argv)


def main(argv: Sequence[str] | None = None) -> int:
  return cli.main(argv, catalog=registry, extra={
      "bench": ("hw.ops vs autodiff vs PyTorch: train-step and per-op timings (make bench "
                "installs PyTorch's CPU wheel)", _bench)})


if __name__ == "__main__":
  sys.exit(main())
