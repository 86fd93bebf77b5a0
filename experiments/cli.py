"""The ``hw`` command: a thin dispatcher to the sub-commands.

The library (``hw``) never imports this application; the experiments come from
:mod:`experiments.catalog` (a test may hand in another catalog).
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import importlib
import json
import os
import pathlib
import sys
from typing import Any, Mapping, Sequence


COMMANDS = {
    "verify": "check every hand-written VJP against autodiff and finite differences",
    "paper": "recompute the worked numbers of the write-ups (assignments C, D: docs/assignments.md)",
    "reproduce": "run verify, paper and the experiments; write results/REPORT.md",
    "train": "train one experiment, with any config field overridden (--set key=value)",
    "list": "list the experiments, models, losses, optimisers, schedules and augmentations",
    "readme": "rewrite the README's results table from a results folder (docs/results)",
}


def _usage() -> str:
  lines = ["usage: hw <command> [options]", "", "commands:"]
  lines += [f"  {name:<10} {help_}" for name, help_ in COMMANDS.items()]
  lines += ["", "Run `hw <command> --help` for a command's options; `hw --debug <command> ...`",
            "shows the traceback of an unexpected error.", "", EXIT_STATUS]
  return "\n".join(lines)


def parse_override(text: str) -> tuple[str, Any]:
  """``key=value`` with the value read as a Python literal (a bare word stays a string)."""
  key, sep, value = text.partition("=")
  if not sep or not key.strip():
    raise ValueError(f"--set takes key=value, got {text!r}")
  try:
    parsed = ast.literal_eval(value.strip())
  except (ValueError, SyntaxError, MemoryError, RecursionError):
    parsed = value
  return key.strip(), parsed


def apply_overrides(config: Any, overrides: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
  """``config`` with ``overrides`` (``--set``), and the grid axes they replaced.

  A field the grid sweeps would be overwritten by every grid point, so an override of it
  replaces that axis by the one given value instead (in a list of points: that field of
  every point); ``grid`` itself may be overridden too (first). Returns (config,
  {field: {"grid": the values it had, "set": the value}}).
  """
  from hw.engine.experiment import plain
  overrides = dict(overrides)
  grid = overrides.pop("grid", config.grid)
  flat = dict(overrides)
  for key, value in overrides.items():  # model_kwargs={...} sets model.<kw> keys too
    if key == "model_kwargs" and isinstance(value, Mapping):
      flat.update({f"model.{kw}": v for kw, v in value.items()})
  replaced: dict[str, Any] = {}
  if isinstance(grid, Mapping):
    grid = dict(grid)
    for key, value in flat.items():
      if key in grid:
        replaced[key] = {"grid": plain(grid[key]), "set": plain(value)}
        grid[key] = [value]
  elif isinstance(grid, (list, tuple)) and all(isinstance(p, Mapping) for p in grid):
    points: list[dict[str, Any]] = []
    for point in grid:
      for key in set(point) & set(flat):
        replaced.setdefault(key, {"grid": [], "set": plain(flat[key])})["grid"].append(
            plain(point[key]))
      point = {key: flat.get(key, value) for key, value in point.items()}
      if point not in points:
        points.append(point)
    grid = points
  return config.replace(**overrides, grid=grid), replaced


def _changed_training(reference: Any, config: Any) -> list[str]:
  """The fields (``model.<kw>`` for model keywords) in which ``config`` trains otherwise
  than ``reference``: those of the fingerprint, the epochs, the grid and the repeat seeds."""
  import dataclasses
  names = [f.name for f in dataclasses.fields(config) if f.metadata["fingerprint"]]
  names += ["epochs", "grid", "repeat_seeds"]
  changed = [name for name in names if name != "model_kwargs"
             and getattr(reference, name) != getattr(config, name)]
  for key in sorted(set(reference.model_kwargs) | set(config.model_kwargs)):
    if reference.model_kwargs.get(key, object()) != config.model_kwargs.get(key, object()):
      changed.append(f"model.{key}")
  return changed


EXIT_STATUS = """exit status:
  0    done (for a reference experiment: its target met, or it has none here)
  1    it ran but failed (diverged, could not write its results) or fell short of its
       target; the last line says which
  2    bad usage or bad input (an argument, a config field, a data file), named in the
       last line
  130  interrupted (Ctrl-C): rerun the same command to resume from the checkpoints
Errors are one line; `hw --debug ...` shows the Python traceback of an unexpected one."""


def _question(config: Any) -> str:
  """"Q4.3" from the title "Q4.3 softmax classifier ..." (else the name)."""
  first = (config.title or "").split(" ")[0].rstrip(":")
  return first if first else config.name


def train_command(argv: Sequence[str], catalog: Any) -> int:
  """``hw train NAME [--set key=value]... [--profile P] [--seed N] [--data-dir D]`` (and
  the multi-process flags of :mod:`hw.engine.distributed`)."""
  from experiments import console
  from experiments.studies.base import Study
  from hw import data
  from hw.engine import distributed, experiment, files, loop, progress, steps
  from hw.engine.experiment_data import load_splits
  parser = argparse.ArgumentParser(
      prog="hw train", description=COMMANDS["train"] + ". The results (JSON, learning "
      "curves, metrics.jsonl, checkpoints) go under --results-dir, apart from `hw "
      "reproduce`'s report.", epilog=EXIT_STATUS,
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("experiment", help="e.g. q5.3 (see `hw list`)")
  parser.add_argument("--profile", choices=catalog.PROFILES, default="quick")
  parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                      help="override a config field (model.<kw> for a model keyword); the value "
                           "is a Python literal; repeatable. A field the grid sweeps is set to "
                           "this one value. A change of the training makes the reference "
                           "target not apply")
  parser.add_argument("--seed", type=int, default=None)
  parser.add_argument("--devices", type=int, default=None, metavar="N",
                      help="train data parallel over N local devices (per process with "
                           "several; default: all)")
  parser.add_argument("--data-dir", default=None,
                      help="folder with mnist/ (and cifar10/); default: $HW_DATA_DIR, else a "
                           "../shared/data beside the clone, else tensorflow-datasets")
  parser.add_argument("--binary-data", default=None, metavar="PATH",
                      help="a pickle or .npz (features, targets) for Q2/Q3; default: "
                           "DATA_DIR/eecs598-hw1/data.pkl when present, else the stand-in")
  parser.add_argument("--results-dir", default="results/train",
                      help="default: results/train (apart from hw reproduce's results/)")
  parser.add_argument("--force", action="store_true",
                      help="retrain from scratch (delete this experiment's checkpoints)")
  distributed.add_arguments(parser)
  args = parser.parse_args(argv)
  failed = distributed.setup(args, "hw train")  # before any other JAX call
  if failed:
    return failed
  try:
    reference = catalog.get_config(catalog.canonical_name(args.experiment), args.profile)
    if isinstance(reference, Study):
      raise ValueError(f"{reference.name!r} is a study, not a grid experiment; run it with "
                       f"`hw reproduce --only {reference.name}`")
    overrides = dict(parse_override(item) for item in args.set)
    if args.seed is not None:
      overrides["seed"] = args.seed
    if args.devices is not None:
      overrides["devices"] = args.devices
    config, replaced = apply_overrides(reference, overrides)
    for point in experiment.grid_points(config):  # every point valid, before any training
      steps.device_count(experiment.point_config(config, point))
  except (ValueError, TypeError) as error:
    console.fail("hw train", str(error))
    return 2
  question = _question(config)
  for key, change in replaced.items():
    print(f"hw train: --set {key}={change['set']!r} replaces the grid's {key} values "
          f"{change['grid']} (the grid is now {experiment.plain(config.grid)})")
  changed = _changed_training(reference, config)
  target_note = None
  if changed and reference.target is not None and "target" not in overrides:
    target_note = (f"the target of {question} ({100 * reference.target:.2f}%) is for its "
                   f"reference config and does not apply: this run changes "
                   f"{', '.join(changed)}")
    config = config.replace(target=None)
    print(f"hw train: {target_note}")
  writer = distributed.is_writer()
  with contextlib.ExitStack() as stack:
    try:
      stack.enter_context(files.writer_lock(args.results_dir, writer))
    except OSError as error:
      console.fail("hw train", f"cannot use --results-dir {args.results_dir!r}: {error}")
      return 2
    try:
      failure = None
      try:
        splits = load_splits(config, data_dir=args.data_dir, binary_data=args.binary_data)
      except data.DataError as error:  # several processes: all stop if one cannot load it
        failure = error
      distributed.together(failure, f"loading the data of {config.name!r}")
      for point in experiment.grid_points(config):  # a batch larger than the training split
        loop.steps_per_epoch(experiment.point_config(config, point), len(splits.train.labels))
    except distributed.ProcessesDisagree as error:
      console.fail(f"hw train: {config.name} failed", str(error))
      return 1
    except (data.DataError, ValueError) as error:
      console.fail(f"hw train: {config.name}", str(error))
      return 2
    if args.force and writer:
      import shutil
      shutil.rmtree(pathlib.Path(args.results_dir) / "checkpoints" / config.name,
                    ignore_errors=True)
    try:
      results = experiment.train_and_evaluate(config, args.results_dir, splits=splits,
                                              console=progress.Console.for_process())
      if writer:  # the engine's record, marked as an ad-hoc run with its command line
        command_line = {
            "experiment": reference.name, "profile": args.profile, "set": list(args.set),
            "seed": args.seed, "devices": args.devices, "grid_axes_replaced": replaced,
            "changes_training": changed, "reference_target": reference.target,
            **({"target_note": target_note} if target_note else {})}
        experiment.write_json(pathlib.Path(args.results_dir) / f"{config.name}.json",
                              {**results.to_json(), "origin": "hw train",
                               "command_line": command_line})
    except (loop.TrainingDiverged, distributed.ProcessesDisagree) as error:
      console.fail(f"hw train: {config.name} failed", str(error))
      return 1
    except (ValueError, TypeError) as error:  # a config the data or model cannot take
      if console.interrupted():  # Ctrl-C that NumPy turned into a ValueError
        raise
      console.show_traceback()
      console.fail(f"hw train: {config.name}", f"this config cannot train on its data: "
                                               f"{console.one_line(error)}")
      return 2
    except OSError as error:
      console.fail(f"hw train: {config.name} failed", f"cannot write its results: {error}")
      return 1
  written = (f"{args.results_dir}/{config.name}.json" if writer else
             f"process 0 writes {config.name}.json")
  print(f"{config.name}: test accuracy {results['test_accuracy']:.4f} "
        f"(selected {results['selected']['label']}; {written})")
  accuracy = f"{100 * results['test_accuracy']:.2f}%"
  if results["meets_target"] is False:
    console.fail(f"{question} short of target",
                 f"{accuracy} < {100 * config.target:.2f}%")
    return 1
  if results["meets_target"]:
    print(f"{question} met its target: {accuracy} >= {100 * config.target:.2f}%")
  elif target_note:
    print(f"{question}: {accuracy}; no target check (the run changes {', '.join(changed)})")
  elif results["data"]["stand_in"] and config.target is not None:
    print(f"{question}: {accuracy}; no target check on the stand-in data")
  else:
    print(f"{question}: {accuracy}; no target for this experiment")
  return 0


def list_command(argv: Sequence[str], catalog: Any) -> int:
  """``hw list [--json]``: every registered name with one line about it."""
  from hw.engine import augmentations, objectives, update_rules
  from hw.nn import models
  parser = argparse.ArgumentParser(prog="hw list", description=COMMANDS["list"])
  parser.add_argument("--json", action="store_true")
  args = parser.parse_args(argv)
  sections = {"experiments": {name: catalog.get_config(name, "quick").title
                              for name in catalog.EXPERIMENTS}}
  for title, registry in (("models", models.MODELS), ("losses", objectives.LOSSES),
                          ("optimizers", update_rules.OPTIMIZERS),
                          ("lr_schedules", update_rules.SCHEDULES),
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


def data_beside_clone(root: pathlib.Path | None = None) -> pathlib.Path | None:
  """The ``../shared/data`` folder beside the clone ``root`` (the Makefile's default of
  HW_DATA_DIR), or None. ``root``: the clone this package runs from (None when it is
  installed elsewhere, e.g. in site-packages)."""
  if root is None:
    root = pathlib.Path(__file__).resolve().parents[1]
    if not (root / "Makefile").is_file() or not (root / "pyproject.toml").is_file():
      return None
  folder = root.parent / "shared" / "data"
  return folder if folder.is_dir() else None


def _default_data_dir() -> None:
  """As ``make`` does: HW_DATA_DIR, when unset, is the shared data folder beside the clone."""
  if not os.environ.get("HW_DATA_DIR"):
    folder = data_beside_clone()
    if folder is not None:
      os.environ["HW_DATA_DIR"] = str(folder)


def main(argv: Sequence[str] | None = None, *, catalog: Any = None) -> int:
  """Dispatch ``argv`` to a command; ``catalog``: the experiments (default
  :mod:`experiments.catalog`; tests hand in others).

  ``--debug`` anywhere shows the traceback of an unexpected error; without it every error
  is one line. Ctrl-C exits 130 with how to resume. Called as the ``hw`` program
  (``argv`` None), HW_DATA_DIR defaults as in the Makefile (:func:`data_beside_clone`).
  """
  from experiments import console
  from hw import backends
  from hw.engine import host_memory
  host_memory.keep_freed_memory_on(backends.expected_backend())  # before XLA's threads start
  if argv is None:
    _default_data_dir()
  argv = list(sys.argv[1:] if argv is None else argv)
  console.set_debug("--debug" in argv)
  argv = [arg for arg in argv if arg != "--debug"]
  if not argv or argv[0] in ("-h", "--help"):
    print(_usage())
    return 0
  name = argv[0]
  with console.watching_interrupts():
    try:
      return _dispatch(argv, catalog)
    except Exception as error:  # pylint: disable=broad-except  # one line, not a traceback
      console.show_traceback()
      if console.interrupted():
        console.fail(f"hw {name}", f"interrupted; {console.RESUME_HINT}")
        return console.INTERRUPTED
      console.fail(f"hw {name}", f"unexpected error: {console.one_line(error)} (run `hw "
                   f"--debug {name} ...` for the traceback)")
      return 1
    except KeyboardInterrupt:
      console.show_traceback()
      console.fail(f"hw {name}", f"interrupted; {console.RESUME_HINT}")
      return console.INTERRUPTED


def _dispatch(argv: Sequence[str], catalog: Any) -> int:
  name, rest = argv[0], argv[1:]
  if name not in COMMANDS:
    hint = " (the benchmarks run with `make bench`)" if name == "bench" else ""
    print(f"{_usage()}\n\nhw: unknown command {name!r}{hint}", file=sys.stderr)
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
