"""The ``hw`` console script: ``hw.cli`` with this package's experiments as its catalog."""
from __future__ import annotations

import sys
from typing import Sequence

from experiments import registry
from hw import cli


def main(argv: Sequence[str] | None = None) -> int:
  return cli.main(argv, catalog=registry)


if __name__ == "__main__":
  sys.exit(main())
