"""The ``hw`` command: a thin dispatcher to the sub-commands.

The library (``hw``) never imports this application; the experiments come from
:mod:`experiments.catalog` (a test may hand in another catalog).
"""
from __future__ import annotations

import argparse
import ast
import importlib
import json
import sys
from typing import Any, Callable, Mapping, Sequence


COMMANDS = {
    "verify": "check every hand-written VJP against autodiff and finite differences",
    "paper": "recompute the worked numbers of the write-ups (SPEC C, D)",
    "reproduce": "run verify, paper and the experiments; write results/REPORT.md",
    "train": "train one experiment, with any config field overridden (--set key=value)",
    "list": "list the experiments, models, losses, optimisers, schedules and augmentations",
    "readme": "rewrite the README's results table from a results folder (docs/results)",
}


def _usage(extra: Mapping[str, tuple[str, Callable]] | None = None) -> str:
  lines = ["usage: hw <command> [options]", "", "commands:"]
  helps = {**COMMANDS, **{name: help_ for name, (help_, _) in (extra or {}).items()}}
  lines += [f"  {name:<10} {help_}" for name, help_ in helps.items()]
  lines += ["", "Run `hw <command> --help` for a command's options."]
  return "\n".join(lines)


def parse_override(text: str) -> tuple[str, Any]:
  """``key=value`` with the value read as a Python literal (a bare word stays a string)."""
  key, sep, value = text.partition("=")
  if not sep or not key.strip():
    raise ValueError(f"--set takes key=value, got {text!r}")
  try:
    parsed = ast.literal_eval(value)
  except (ValueError, SyntaxError):
    parsed = value
  return key.strip(), parsed


def train_command(argv: Sequence[str], catalog: Any) -> int:
  """``hw train NAME [--set key=value]... [--profile P] [--seed N] [--data-dir D]`` (and
  the multi-process flags of :mod:`hw.engine.distributed`)."""
  from experiments.studies.base import Study
  from hw import data
  from hw.engine import distributed, experiment, files, progress, steps
  from hw.engine import loop as train
  parser = argparse.ArgumentParser(prog="hw train", description=COMMANDS["train"])
  parser.add_argument("experiment", help="e.g. q5.3 (see `hw list`)")
  parser.add_argument("--profile", choices=catalog.PROFILES, default="quick")
  parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                      help="override a config field (model.<kw> for a model keyword); the value "
                           "is a Python literal; repeatable")
  parser.add_argument("--seed", type=int, default=None)
  parser.add_argument("--devices", type=int, default=None, metavar="N",
                      help="train data parallel over N local devices (per process with "
                           "several; default: all)")
  parser.add_argument("--data-dir", default=None)
  parser.add_argument("--binary-data", default=None)
  parser.add_argument("--results-dir", default="results")
  distributed.add_arguments(parser)
  args = parser.parse_args(argv)
  failed = distributed.setup(args, "hw train")  # before any other JAX call
  if failed:
    return failed
  try:
    config = catalog.get_config(catalog.canonical_name(args.experiment), args.profile)
    if isinstance(config, Study):
      raise ValueError(f"{config.name!r} is a study, not a grid experiment; run it with "
                       f"`hw reproduce --only {config.name}`")
    overrides = dict(parse_override(item) for item in args.set)
    if args.seed is not None:
      overrides["seed"] = args.seed
    if args.devices is not None:
      overrides["devices"] = args.devices
    config = config.replace(**overrides)
    for point in experiment.grid_points(config):  # a batch that does not split over the devices
      steps.device_count(experiment.point_config(config, point))
  except (ValueError, TypeError) as error:
    print(f"hw train: {error}", file=sys.stderr)
    return 2
  try:
    with files.writer_lock(args.results_dir, distributed.is_writer()):
      results = experiment.train_and_evaluate(
          config, args.results_dir, data_dir=args.data_dir, binary_data=args.binary_data,
          console=progress.Console.for_process())
  except (data.DataError, train.TrainingDiverged, distributed.ProcessesDisagree) as error:
    print(f"hw train: {config.name}: {error}", file=sys.stderr)
    return 1
  except OSError as error:
    print(f"hw train: cannot use --results-dir {args.results_dir!r}: {error}", file=sys.stderr)
    return 2
  written = (f"{args.results_dir}/{config.name}.json" if distributed.is_writer() else
             f"process 0 writes {config.name}.json")
  print(f"{config.name}: test accuracy {results['test_accuracy']:.4f} "
        f"(selected {results['selected']['label']}; {written})")
  return 0 if results["meets_target"] in (None, True) else 1


def list_command(argv: Sequence[str], catalog: Any) -> int:
  """``hw list [--json]``: every registered name with one line about it."""
  from hw.engine import augmentations
  from hw.engine import objectives as losses
  from hw.engine import update_rules as optimizers
  from hw.nn import models
  parser = argparse.ArgumentParser(prog="hw list", description=COMMANDS["list"])
  parser.add_argument("--json", action="store_true")
  args = parser.parse_args(argv)
  sections = {"experiments": {name: catalog.get_config(name, "quick").title
                              for name in catalog.EXPERIMENTS}}
  for title, registry in (("models", models.MODELS), ("losses", losses.LOSSES),
                          ("optimizers", optimizers.OPTIMIZERS),
                          ("lr_schedules", optimizers.SCHEDULES),
                          ("augmentations", augmentations.AUGMENTATIONS)):
    sections[title] = {name: registry.summary(name) for name in registry}
  if args.json:
    print(json.dumps(sections, indent=1))
    return 0
  for title, entries in sections.items():
    print(f"{title}:")
    width = max(map(len, entries))
    for name, summary in entries.items():
      print(f"  {name:<{width}}  {summary}")
  return 0


def readme_command(argv: Sequence[str], catalog: Any) -> int:
  """``hw readme [--readme README.md] [--results-dir docs/results]``."""
  from experiments import report
  parser = argparse.ArgumentParser(prog="hw readme", description=COMMANDS["readme"])
  parser.add_argument("--readme", default="README.md")
  parser.add_argument("--results-dir", default="docs/results")
  args = parser.parse_args(argv)
  try:
    changed = report.update_readme(args.readme, args.results_dir, catalog.EXPERIMENTS)
  except (OSError, ValueError) as error:
    print(f"hw readme: {error}", file=sys.stderr)
    return 2
  print(f"{args.readme}: results table {'rewritten' if changed else 'already current'} "
        f"from {args.results_dir}")
  return 0


def main(argv: Sequence[str] | None = None, *, catalog: Any = None,
         extra: Mapping[str, tuple[str, Callable]] | None = None) -> int:
  """Dispatch ``argv``; ``extra`` maps more command names to (help, main) (the app's own)."""
  argv = list(sys.argv[1:] if argv is None else argv)
  if not argv or argv[0] in ("-h", "--help"):
    print(_usage(extra))
    return 0
  name, rest = argv[0], argv[1:]
  if extra and name in extra:
    return int(extra[name][1](rest) or 0)
  if name not in COMMANDS:
    print(f"hw: unknown command {name!r}\n\n{_usage(extra)}", file=sys.stderr)
    return 2
  if name in ("verify", "paper"):
    from experiments.reproduce import CHECK_MODULES
    return int(importlib.import_module(CHECK_MODULES[name]).main(rest) or 0)
  if catalog is None:
    from experiments import catalog
  if name == "reproduce":
    from experiments import reproduce
    return reproduce.main(rest, catalog=catalog)
  commands = {"train": train_command, "list": list_command, "readme": readme_command}
  return commands[name](rest, catalog)


if __name__ == "__main__":
  sys.exit(main())
