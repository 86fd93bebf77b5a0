"""The ``hw`` console command: a thin dispatcher to the sub-commands' own ``main``."""
from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "verify": ("hw.verification.verify", "check every hand-written VJP against autodiff and finite differences"),
    "paper": ("hw.verification.paper", "recompute the worked numbers of the write-ups (SPEC C, D)"),
    "reproduce": ("hw.reproduce", "run verify, paper and the experiments; write results/REPORT.md"),
}


def _usage() -> str:
  lines = ["usage: hw <command> [options]", "", "commands:"]
  lines += [f"  {name:<10} {help_}" for name, (_, help_) in COMMANDS.items()]
  lines += ["", "Run `hw <command> --help` for a command's options."]
  return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  if not argv or argv[0] in ("-h", "--help"):
    print(_usage())
    return 0
  name, rest = argv[0], argv[1:]
  if name not in COMMANDS:
    print(f"hw: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
    return 2
  module = importlib.import_module(COMMANDS[name][0])
  return int(module.main(rest) or 0)


if __name__ == "__main__":
  sys.exit(main())
