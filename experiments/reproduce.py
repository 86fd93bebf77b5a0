"""``hw reproduce``: verify every VJP, recompute the worked numbers, run the experiments and
write ``results/REPORT.md`` (rewritten after every step, so an interruption loses nothing).

Rerunning resumes: an experiment whose ``<name>.json`` matches its current configuration
is not retrained (``--force`` retrains it), and an interrupted one resumes from its
per-epoch checkpoints.

Exit status: 0 when every step that ran succeeded and every experiment that ran met its
target; 1 on a real failure: ``hw verify`` or ``hw paper`` failing, an experiment
crashing, diverging on every grid point, falling short of its target, or finding its data
unusable (a missing ``--data-dir``, corrupt or malformed files). Only an experiment whose
data cannot be had at all (no data folder and offline) and that was not named with
``--only`` is reported as skipped, which is not a failure. 2 for bad command-line
arguments (an unknown name, a seed or device count no experiment can take) or an unusable
``--results-dir``; 130 when interrupted. Errors are one line (``hw --debug`` shows the
traceback of an unexpected one).

A ``<name>.json`` that ``hw train`` wrote into the same folder (``"origin": "hw train"``)
is never taken as this command's result: it is retrained, and the report leaves it out.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib
import io
import json
import pathlib
import shutil
import sys
import time
import traceback
from typing import Any, Callable, Protocol, Sequence

from experiments import console
from experiments.studies import base as study_module
from experiments.studies.base import Study
from hw.engine import distributed, figures, files
from hw.engine.config import ExperimentConfig, fingerprint
from hw.engine.experiment_data import load_splits
from hw.engine.progress import Console
from hw.engine.runtime import Runtime

STATE_FILE = "reproduce_state.json"


class Catalog(Protocol):
  """The experiments ``hw reproduce`` can run (the ``experiments`` package is one)."""
  EXPERIMENTS: Sequence[str]
  PROFILES: Sequence[str]

  def canonical_name(self, text: str) -> str: ...

  def get_config(self, name: str, profile: str) -> ExperimentConfig | Study: ...
CHECKS = ("verify", "paper")


def _parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog="hw reproduce",
      description="Run hw verify, hw paper and the experiments; write RESULTS_DIR/REPORT.md.",
      epilog="Exit status: 0 all good; 1 a step failed, missed its target or found its data "
             "unusable (only data that cannot be had offline, for experiments not named with "
             "--only, is a skip), listed in the last lines; 2 bad arguments, named; 130 "
             "interrupted: rerun the same command to resume.")
  parser.add_argument("--profile", choices=("quick", "full"), default="quick",
                      help="quick: short schedules that still meet the targets (the README "
                           "gives the measured times); full: more epochs, wider grids "
                           "(default: quick)")
  parser.add_argument("--only", action="append", default=[], metavar="NAME",
                      help="run only this experiment (q5.3, q5_3, Q5.3) or check (verify, "
                           "paper); repeatable")
  parser.add_argument("--data-dir", default=None,
                      help="folder with mnist/ (and cifar10/); default: $HW_DATA_DIR, else a "
                           "../shared/data beside the clone, else tensorflow-datasets when "
                           "online")
  parser.add_argument("--binary-data", default=None, metavar="PATH",
                      help="a pickle or .npz (features, targets) for Q2/Q3 (read with an "
                           "arrays-only unpickler); default: DATA_DIR/eecs598-hw1/data.pkl when "
                           "present, else the deterministic stand-in")
  parser.add_argument("--results-dir", default="results", help="default: results/")
  parser.add_argument("--seed", type=int, default=None, help="override every experiment's seed")
  parser.add_argument("--devices", type=int, default=None, metavar="N",
                      help="train data parallel over N local devices (per process with "
                           "several; default: all; the batch size must be a multiple of the "
                           "devices in all processes)")
  parser.add_argument("--force", action="store_true",
                      help="retrain finished experiments from scratch")
  distributed.add_arguments(parser)
  return parser


class _Tee(io.TextIOBase):
  """Writes to several streams (a check's output goes to the console and to its log)."""

  def __init__(self, *streams):
    self.streams = streams

  def write(self, text: str) -> int:
    for stream in self.streams:
      stream.write(text)
    return len(text)

  def flush(self) -> None:
    for stream in self.streams:
      stream.flush()


CHECK_MODULES = {"verify": "hw.verification.verify", "paper": "experiments.paper"}
# Extra arguments of a check run by hw reproduce: verify's error chart goes into the report.
_CHECK_ARGS = {"verify": lambda results_dir: ["--chart", str(results_dir / "verify_errors.png")]}


def run_check(name: str, results_dir: pathlib.Path) -> dict[str, Any]:
  """Run the check's ``main([])`` (``hw verify`` or ``hw paper``) in-process; its output also
  goes to ``results_dir/<name>.log``. Returns the step record {status, exit_code, seconds,
  message}."""
  began = time.perf_counter()
  module = importlib.import_module(CHECK_MODULES[name])
  log_path = results_dir / f"{name}.log"
  print(f"\n== hw {name} ==", flush=True)
  with open(log_path, "w") as log:
    tee = _Tee(sys.stdout, log)
    try:
      with contextlib.redirect_stdout(tee):
        code = int(module.main(_CHECK_ARGS.get(name, lambda d: [])(results_dir)) or 0)
    except KeyboardInterrupt:
      raise
    except SystemExit as error:  # an argparse-style main may exit
      code = error.code if isinstance(error.code, int) else 1
    except Exception as error:
      if console.interrupted():  # Ctrl-C that surfaced as another exception
        raise KeyboardInterrupt from error
      text = traceback.format_exc()
      log.write(text)
      console.show_traceback()
      print(f"[reproduce] hw {name} raised {console.one_line(error)} (traceback in "
            f"{log_path})", file=sys.stderr)
      return {"status": "error", "exit_code": None, "seconds": time.perf_counter() - began,
              "message": f"raised {text.strip().splitlines()[-1]} (see {log_path.name})"}
  status = "passed" if code == 0 else "FAILED"
  return {"status": status, "exit_code": code, "seconds": time.perf_counter() - began,
          "message": f"exit code {code}; output in {log_path.name}"}


def _check(name: str, results_dir: pathlib.Path) -> dict[str, Any]:
  """:func:`run_check`; the processes other than 0 of a multi-process run compute the same
  check with its log and chart in a scratch folder that is deleted afterwards."""
  if distributed.is_writer():
    return run_check(name, results_dir)
  import tempfile
  with tempfile.TemporaryDirectory(prefix="hw-check-") as scratch:
    return run_check(name, pathlib.Path(scratch))


def _finished(results_dir: pathlib.Path, config, splits) -> bool:
  """Whether ``<name>.json`` holds complete results of exactly this configuration and data,
  written by ``hw reproduce`` (not by ``hw train``)."""
  path = results_dir / f"{config.name}.json"
  if not path.exists():
    return False
  try:
    results = json.loads(path.read_text())
  except json.JSONDecodeError:
    return False
  current = fingerprint(config, whole_experiment=True, data_identity=splits.identity)
  return (results.get("status") == "complete" and results.get("fingerprint") == current
          and results.get("origin") != "hw train")


def run_experiment(config, results_dir: pathlib.Path, *, data_dir: str | None,
                   binary_data: str | None, force: bool, named: bool = False,
                   console: Console = Console()) -> dict[str, Any]:
  """Train (or resume, or skip when finished) one experiment; returns its status record.

  Data that cannot be had (no local copy, offline) skips the experiment, unless the user
  ``named`` it (``--only``); missing, corrupt or malformed files are a failure.
  """
  from hw import data
  from hw.engine import experiment, loop
  record: dict[str, Any] = {"title": config.title, "reported": list(config.reported),
                            "target": config.target, "profile": config.profile}
  runtime = Runtime.current()
  try:  # several processes: all stop if one cannot load the data
    splits = runtime.together(
        lambda: load_splits(config, data_dir=data_dir, binary_data=binary_data),
        f"loading the data of {config.name!r}")
  except distributed.ProcessesDisagree as error:
    print(f"[reproduce] {config.name}: FAILED: {error}", file=sys.stderr)
    return {**record, "status": "failed", "message": str(error)}
  except data.DataError as error:
    if isinstance(error, data.DataUnavailable) and not named:
      print(f"[reproduce] {config.name}: skipped, data unavailable: {error}", file=sys.stderr)
      return {**record, "status": "skipped", "message": f"data unavailable: {error}"}
    print(f"[reproduce] {config.name}: FAILED, unusable data: {error}", file=sys.stderr)
    return {**record, "status": "failed", "message": f"unusable data: {error}"}
  writer = runtime.writer  # several processes: process 0 reads and writes files
  if force:
    if writer:
      shutil.rmtree(results_dir / "checkpoints" / config.name, ignore_errors=True)
  elif runtime.json_from_writer(lambda: _finished(results_dir, config, splits)):
    path = results_dir / f"{config.name}.json"
    results = runtime.json_from_writer(lambda: json.loads(path.read_text()))
    # Descriptive fields (title, reported numbers, target) may change without retraining.
    current = {"title": config.title, "reported": list(config.reported), "target": config.target,
               "meets_target": None if config.target is None or results["data"]["stand_in"]
               else bool(results["test_accuracy"] >= config.target)}
    if any(results.get(key) != value for key, value in current.items()):
      results.update(current)
      if writer:
        experiment.write_json(path, results)
    png = results_dir / f"{config.name}.png"
    if writer and not png.exists():
      figures.plot_learning_curves(results, png)
    print(f"[reproduce] {config.name}: already complete in {results_dir} (use --force to retrain)")
    status = "short of target" if results["meets_target"] is False else "complete"
    return {**record, "status": status, "message": "finished earlier; not retrained",
            "reused": True}
  print(f"\n== {config.title} ({config.profile}) ==", flush=True)
  began = time.perf_counter()
  try:
    results = experiment.train_and_evaluate(config, results_dir, splits=splits, console=console)
  except loop.TrainingDiverged as error:
    print(f"[reproduce] {error}", file=sys.stderr)
    return {**record, "status": "diverged", "message": str(error)}
  except Exception as error:  # a crash fails this experiment, not the whole run
    return _crashed(record, error)
  seconds = time.perf_counter() - began
  met = results["meets_target"]
  status = "complete" if met in (None, True) else "short of target"
  print(f"[reproduce] {config.name}: test accuracy {results['test_accuracy']:.4f} "
        f"(target {config.target}) selected {results['selected']['label']} in {seconds:.0f} s")
  return {**record, "status": status, "message": f"trained in {seconds:.0f} s"}


def _crashed(record: dict[str, Any], error: Exception) -> dict[str, Any]:
  """The record of a crash, said in one line (the traceback with ``hw --debug``); a Ctrl-C
  that surfaced as another exception is raised as the interruption it was."""
  if console.interrupted():
    raise KeyboardInterrupt from error
  console.show_traceback()
  message = console.one_line(error)
  print(f"[reproduce] {record.get('title', '')}: FAILED: {message}", file=sys.stderr)
  return {**record, "status": "failed", "message": message}


def run_study(study: Study, results_dir: pathlib.Path, *, data_dir: str | None,
              force: bool) -> dict[str, Any]:
  """Run one study (or skip it when its results are complete); returns its status record.

  A study is a one-process program: with several processes, process 0 runs it on its own
  devices while the others wait for it (up to ``hw.engine.distributed.SYNC_TIMEOUT_S``), and all
  return process 0's record."""
  if distributed.process_count() == 1:
    return _run_study_here(study, results_dir, data_dir=data_dir, force=force)
  record = None
  if distributed.is_writer():
    try:
      record = _run_study_here(study, results_dir, data_dir=data_dir, force=force)
    except Exception as error:  # the others are waiting: they must hear of it
      record = _crashed(_study_record(study), error)
  else:
    print(f"[reproduce] {study.name}: run by process 0; waiting for it", flush=True)
  return distributed.broadcast_json(record)


def _study_record(study: Study) -> dict[str, Any]:
  return {"title": study.title, "reported": list(study.reported), "target": study.target,
          "profile": study.profile}


def _run_study_here(study: Study, results_dir: pathlib.Path, *, data_dir: str | None,
                    force: bool) -> dict[str, Any]:
  from hw import data
  from hw.engine import experiment
  record = _study_record(study)
  path = results_dir / f"{study.name}.json"
  if not force and path.exists():
    try:
      earlier = json.loads(path.read_text())
      if study_module.finished(earlier, study):
        print(f"[reproduce] {study.name}: already complete in {results_dir} (use --force to rerun)")
        status = "short of target" if earlier.get("meets_target") is False else "complete"
        return {**record, "status": status, "message": "finished earlier; not rerun",
                "reused": True}
    except json.JSONDecodeError:
      pass
  print(f"\n== {study.title} ({study.profile}) ==", flush=True)
  began = time.perf_counter()
  try:
    results = study.run(results_dir, profile=study.profile, data_dir=data_dir)
    study_module.check_results(results, study)
  except data.DataError as error:
    print(f"[reproduce] {study.name}: FAILED, unusable data: {error}", file=sys.stderr)
    return {**record, "status": "failed", "message": f"unusable data: {error}"}
  except Exception as error:  # a crash fails this study, not the whole run
    return _crashed(record, error)
  seconds = time.perf_counter() - began
  results = study_module.stamp({**results, "wall_time_s": seconds}, study)
  experiment.write_json(path, results)
  status = "short of target" if results["meets_target"] is False else "complete"
  print(f"[reproduce] {study.name}: {status} in {seconds:.0f} s")
  return {**record, "status": status, "message": f"ran in {seconds:.0f} s"}


def _load_state(results_dir: pathlib.Path) -> dict[str, Any]:
  path = results_dir / STATE_FILE
  if path.exists():
    try:
      return json.loads(path.read_text())
    except json.JSONDecodeError:
      pass
  return {"experiments": {}}


def _status_of_earlier_results(results_dir: pathlib.Path, name: str) -> dict[str, str]:
  """The status of ``name`` before this call: "not run", or what its ``<name>.json`` (an
  earlier ``hw reproduce`` call's, whose state file is gone) says, so that the report never
  puts results under a heading that says "not run"."""
  from experiments import report
  results = report.read_results(results_dir / f"{name}.json")
  if results is None or results.get("status") != "complete":
    return {"status": "not run", "message": "not run yet"}
  status = "short of target" if results.get("meets_target") is False else "complete"
  return {"status": status, "message": "results of an earlier call found in this folder"}


def _save(results_dir: pathlib.Path, state: dict[str, Any], experiments: Sequence[str]) -> None:
  from experiments import report
  from hw.engine import experiment
  if not distributed.is_writer():
    return
  state["updated"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
  experiment.write_json(results_dir / STATE_FILE, state)
  report.write_report(results_dir, state, experiments)


def _selection(only: Sequence[str], catalog: Catalog) -> tuple[list[str], list[str]]:
  """(checks, experiments) named by --only (all of both when empty)."""
  if not only:
    return list(CHECKS), list(catalog.EXPERIMENTS)
  checks, names = [], []
  for item in only:
    if item.strip().lower() in CHECKS:
      checks.append(item.strip().lower())
    else:
      names.append(catalog.canonical_name(item))
  return checks, list(dict.fromkeys(names))


def _overridden(config: ExperimentConfig, args) -> ExperimentConfig:
  """``config`` with the command line's ``--seed`` and ``--devices``."""
  if args.seed is not None:
    config = config.replace(seed=args.seed)
  if args.devices is not None:
    config = config.replace(devices=args.devices)
  return config


def _check_overrides(args, names: Sequence[str], get_config: Callable[[str, str], Any]) -> None:
  """Raise ``ValueError`` (naming the field) when ``--seed`` or ``--devices`` does not fit
  an experiment to run (a negative seed, more devices than there are, a batch that does
  not split over them), before anything runs."""
  from hw.engine import experiment, steps
  if args.seed is None and args.devices is None:
    return
  for name in names:
    config = get_config(name, args.profile)
    if isinstance(config, Study):
      continue
    config = _overridden(config, args)
    for point in experiment.grid_points(config):
      steps.device_count(experiment.point_config(config, point))


def main(argv: Sequence[str] | None = None, *, catalog: Catalog,
         get_config: Callable[[str, str], Any] | None = None,
         console: Console | None = None) -> int:
  """Entry point of ``hw reproduce``.

  Args:
    argv: the command-line arguments.
    catalog: the experiments (names, spellings, configs), e.g. the ``experiments`` package.
    get_config: ``(name, profile) -> config`` instead of ``catalog.get_config`` (tests).
    console: progress display; default: from the environment (the command line's job).
  """
  args = _parser().parse_args(argv)
  failed = distributed.setup(args, "hw reproduce")  # before any other JAX call
  if failed:
    return failed
  try:
    checks, names = _selection(args.only, catalog)
  except ValueError as error:
    print(f"hw reproduce: {error}", file=sys.stderr)
    return 2
  try:
    _check_overrides(args, names, get_config or catalog.get_config)
  except (ValueError, TypeError) as error:
    print(f"hw reproduce: {error}", file=sys.stderr)
    return 2
  console = console or Console.for_process()
  results_dir = pathlib.Path(args.results_dir)
  try:
    with files.writer_lock(results_dir, distributed.is_writer()):
      return _run(args, checks, names, results_dir, get_config or catalog.get_config,
                  catalog.EXPERIMENTS, console)
  except OSError as error:
    print(f"hw reproduce: cannot use --results-dir {args.results_dir!r}: {error}",
          file=sys.stderr)
    return 2


def _run(args, checks, names, results_dir, get_config, experiments, console) -> int:
  state = _load_state(results_dir)
  state["profile"] = args.profile
  for name in experiments:  # so the report lists every question from the start
    if name not in state["experiments"]:
      config = get_config(name, args.profile)
      state["experiments"][name] = {"title": config.title, "reported": list(config.reported),
                                    "target": config.target, "profile": config.profile,
                                    **_status_of_earlier_results(results_dir, name)}
  failures: list[str] = []
  call_began = time.perf_counter()
  call = state["last_call"] = {"checks": list(checks), "experiments": list(names),
                               "reused": [], "seconds": 0.0, "finished": False}

  def save() -> None:  # with this call's wall time so far
    call["seconds"] = time.perf_counter() - call_began
    _save(results_dir, state, experiments)

  try:
    for check in checks:
      state[check] = _check(check, results_dir)
      if state[check]["status"] != "passed":
        failures.append(f"hw {check}: {state[check]['status']}")
      save()
    began = time.perf_counter()
    for done, name in enumerate(names):
      elapsed = time.perf_counter() - began
      estimate = (f", about {elapsed / done * (len(names) - done) / 60:.0f} min to go"
                  if done else "")
      print(f"\n[reproduce] experiment {done + 1} of {len(names)}: {name} "
            f"({elapsed / 60:.1f} min elapsed{estimate})", flush=True)
      config = get_config(name, args.profile)
      if isinstance(config, Study):
        record = run_study(config, results_dir, data_dir=args.data_dir, force=args.force)
      else:
        config = _overridden(config, args)
        record = run_experiment(config, results_dir, data_dir=args.data_dir,
                                binary_data=args.binary_data, force=args.force,
                                named=bool(args.only), console=console)
      state["experiments"][name] = record
      if record.get("reused"):
        call["reused"].append(name)
      if record["status"] not in ("complete", "skipped"):
        failures.append(f"{name}: {record['status']} ({record.get('message', '')})")
      save()
  except KeyboardInterrupt:
    save()
    print(f"\n[reproduce] interrupted; rerun the same command to resume. Report so far: "
          f"{results_dir / 'REPORT.md'}", file=sys.stderr)
    return 130
  state["exit_code"] = 1 if failures else 0
  call["finished"] = True
  save()
  skipped = [n for n in names if state["experiments"][n]["status"] == "skipped"]
  print(f"\n[reproduce] report: {results_dir / 'REPORT.md'}"
        + ("" if distributed.is_writer() else " (written by process 0)"))
  if skipped:
    print(f"[reproduce] skipped for lack of data: {', '.join(skipped)}")
  if failures:
    print("[reproduce] FAILURES:\n  " + "\n  ".join(failures), file=sys.stderr)
  return state["exit_code"]
