"""``python -m experiments <command>``: the same as the ``hw`` console script."""
import sys

from experiments.cli import main

sys.exit(main())
