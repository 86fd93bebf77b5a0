"""results/REPORT.md and the README's table, built from the experiments' results JSON (the
learning curves are :func:`hw.engine.figures.plot_learning_curves`)."""
from __future__ import annotations

import datetime
import json
import os
import pathlib
from typing import Any, Mapping, Sequence

from hw.engine import files


def _percent(value: float | None) -> str:
  return "—" if value is None else f"{100 * value:.2f}%"


def verdict(results: Mapping[str, Any]) -> str:
  """PASS / SHORT against the target, or why there is none."""
  target, accuracy = results.get("target"), results["test_accuracy"]
  if target is None:
    return "no target"
  if results.get("data", {}).get("stand_in"):
    return "no target (stand-in data)"
  if accuracy >= target:
    return f"PASS (+{100 * (accuracy - target):.2f} pp)"
  return f"SHORT by {100 * (target - accuracy):.2f} pp"


def _lossy(results: Mapping[str, Any]) -> str:
  """A mark to print beside every number measured on data with caveats (lossy pixels)."""
  return " (JPEG-decoded pixels, lossy)" if results.get("data", {}).get("notes") else ""


def _extra_test_lines(results: Mapping[str, Any]) -> list[str]:
  lines = [f"Note: {note}." for note in results.get("data", {}).get("notes", [])]
  if "top1_error" in results:
    lines.append(f"Selected model on test: top-1 / top-5 error {_top_k_cell(results)}"
                 f"{_lossy(results)}.")
  for point in results["grid"]:
    if (point.get("test_accuracy") is not None
        and point["index"] != results["selected"]["index"]):
      lines.append(f"Beside it (not selected on validation; listed by the config's "
                   f"also_test): **{point['label']}** test accuracy "
                   f"{_percent(point['test_accuracy'])}, top-1 / top-5 error "
                   f"{_percent(point.get('top1_error'))} / {_percent(point.get('top5_error'))}"
                   f"{_lossy(results)}.")
  return [part for line in lines for part in (line, "")]


def _seeds_line(results: Mapping[str, Any]) -> list[str]:
  seeds = results.get("seeds")
  if not seeds:
    return []
  each = ", ".join(f"{_percent(a)} (seed {s})" for s, a in zip(seeds["seeds"], seeds["test_accuracy"]))
  return [f"Over {len(seeds['seeds'])} seeds (the whole grid and selection each time): mean "
          f"**{_percent(seeds['mean'])}**, std {100 * seeds['std']:.2f} pp, range "
          f"{_percent(seeds['min'])}–{_percent(seeds['max'])}: {each}.", ""]


def _schedule(config: Mapping[str, Any]) -> str:
  if config.get("lr_schedule", "exponential") == "cosine":
    return "cosine decay to 0 per step"
  return "constant" if config["lr_decay"] == 1 else f"×{config['lr_decay']:g} per epoch"


def _with_grid_point(config: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
  """The config dict as trained at one grid point (``model.<kw>`` keys go to model_kwargs)."""
  merged = {**config, "model_kwargs": dict(config["model_kwargs"])}
  for key, value in params.items():
    if key.startswith("model."):
      merged["model_kwargs"][key.split(".", 1)[1]] = value
    else:
      merged[key] = value
  return merged


def _study_section(name: str, results: Mapping[str, Any],
                   status: Mapping[str, Any]) -> list[str]:
  lines = [f"### {results['title']}", ""]
  if status.get("status") not in (None, "complete"):
    lines += [f"> Latest attempt: **{status['status']}** — {status.get('message', '')}", ""]
  lines += [str(line) for line in results["summary"]]
  lines += _classifier_errors(results)
  lines += [""] + [f"![{name}: {figure}]({figure})" for figure in results["figures"]]
  return lines + ["", f"Time: {results['wall_time_s']:.1f} s (profile `{results['profile']}`).", ""]


def _experiment_section(name: str, results: Mapping[str, Any] | None,
                        status: Mapping[str, Any] | None) -> list[str]:
  status = status or {}
  if results is not None and "study_version" in results:
    return _study_section(name, results, status)
  if results is None:
    title = status.get("title", name)
    lines = [f"### {title}", ""]
    state, message = status.get("status", "not run"), status.get("message", "no results yet")
    lines.append(f"**{state.capitalize()}**" + ("" if message == f"{state} yet" else f" — {message}"))
    if status.get("reported"):
      lines.append(f"\nReported: {', '.join(status['reported'])}; target: "
                   f"{_percent(status.get('target'))}.")
    return lines + [""]
  config = _with_grid_point(results["config"], results["selected"]["params"])
  lines = [f"### {results['title']}", ""]
  if status.get("status") not in (None, "complete"):
    lines += [f"> Latest attempt: **{status['status']}** — {status.get('message', '')}", ""]
  lines += [
      "| reported | ours (test) | target | verdict |",
      "|---|---|---|---|",
      f"| {', '.join(results.get('reported') or []) or '—'} | "
      f"**{_percent(results['test_accuracy'])}**{_lossy(results)} | "
      f"{_percent(results.get('target'))} | {verdict(results)} |",
      "",
      *_seeds_line(results),
      f"Selected on validation: **{results['selected']['label']}** "
      f"(validation accuracy {_percent(results['selected']['val_accuracy'])}). "
      f"Model `{config['model']}` {json.dumps(config['model_kwargs'])}, loss `{config['loss']}`, "
      f"optimiser `{config['optimizer']}` lr {config['learning_rate']:g} "
      f"({_schedule(config)}), augmentation {config.get('augment') or 'none'}, "
      f"batch {config['batch_size']}, "
      f"weight scale {config['weight_scale']}, {config['epochs']} epochs, seed {config['seed']}, "
      f"profile `{config.get('profile', '?')}`.",
      "",
      f"Data: {results['data']['source']} — train {results['data']['train']}, validation "
      f"{results['data']['validation']}, test {results['data']['test']}.",
      "",
      *_extra_test_lines(results),
      f"Time: {results['train_seconds']:.1f} s of training in all "
      f"({results['seconds_per_epoch']:.2f} s/epoch median; "
      f"{results['platform']['backend']}, {results['platform']['cpus']} CPUs); "
      f"last call {results['wall_time_s']:.1f} s wall.",
      "",
      "| grid point | epochs | train loss | train acc | val loss | val acc | s |",
      "|---|---|---|---|---|---|---|",
  ]
  for point in results["grid"]:
    if point.get("status", "complete") != "complete":
      lines.append(f"| {point['label']} | {point['epochs']} | diverged | — | — | — | — |")
      continue
    mark = " ←" if point["index"] == results["selected"]["index"] else ""
    lines.append(f"| {point['label']}{mark} | {point['epochs']} | {point['train_loss']:.4f} | "
                 f"{_percent(point['train_accuracy'])} | {point['val_loss']:.4f} | "
                 f"{_percent(point['val_accuracy'])} | {point['train_seconds']:.1f} |")
  if config.get("notes"):
    lines += ["", config["notes"]]
  lines += ["", f"![{name} learning curves]({name}.png)", ""]
  lines += [f"![{name}: {figure}]({figure})" for figure in results.get("figures", [])[1:]]
  return lines


def _step_line(label: str, step: Mapping[str, Any] | None) -> str:
  if not step:
    return f"- **{label}**: not run in this results folder."
  detail = f" — {step['message']}" if step.get("message") else ""
  seconds = f" ({step['seconds']:.1f} s)" if step.get("seconds") is not None else ""
  return f"- **{label}**: {step['status']}{seconds}{detail}"


def _summary_row(name: str, results: Mapping[str, Any] | None,
                 status: Mapping[str, Any]) -> str:
  if results is None:
    label = status.get("title", name).split(" ")[0]
    reported = ", ".join(status.get("reported", [])) or "—"
    return (f"| {label} | {reported} | — | — | {_percent(status.get('target'))} | "
            f"{status.get('status', 'not run')} | — | — |")
  question = results["title"].split(" ")[0].rstrip(":")
  reported = ", ".join(results.get("reported") or [])
  if "study_version" in results:
    met = {True: "PASS", False: "SHORT", None: "no target"}[results["meets_target"]]
    return (f"| {question} | {reported or '—'} | {results.get('headline', 'see below')} | "
            f"{_top_k_cell(results)} | {_percent(results.get('target'))} | {met} | — | "
            f"{results['wall_time_s']:.0f} s |")
  ours = _percent(results["test_accuracy"]) + _lossy(results)
  for point in results["grid"]:
    if (point.get("test_accuracy") is not None
        and point["index"] != results["selected"]["index"]):
      ours += f"; {point['label']}: {_percent(point['test_accuracy'])}"
  if results.get("seeds"):
    ours += f" (mean of {len(results['seeds']['seeds'])} seeds {_percent(results['seeds']['mean'])})"
  return (f"| {question} | {reported or '—'} | {ours} | {_top_k_cell(results)} | "
          f"{_percent(results.get('target'))} | {verdict(results)} | {results['selected']['label']} | "
          f"{results['train_seconds']:.0f} s |")


def _classifier_errors(results: Mapping[str, Any]) -> list[str]:
  """A study's table of the top-1 / top-5 test error of each classifier it trained
  (``results["top_k"]``: {classifier: {"top1_error", "top5_error"}})."""
  if not results.get("top_k"):
    return []
  return ["", "Top-1 / top-5 test error of each classifier:", "",
          "| classifier | top-1 error | top-5 error |", "|---|---|---|",
          *(f"| {name} | {_percent(errors.get('top1_error'))} | "
            f"{_percent(errors.get('top5_error'))} |"
            for name, errors in results["top_k"].items())]


def _top_k_cell(results: Mapping[str, Any]) -> str:
  """"top-1 / top-5" test error of the selected model (a study: of its one classifier, or a
  pointer to its section's table); top-5 is "n/a" with fewer than 5 classes."""
  errors = results
  if results.get("top_k"):
    if len(results["top_k"]) > 1:
      return f"{len(results['top_k'])} classifiers: listed in REPORT.md"
    (errors,) = results["top_k"].values()
  if "top1_error" not in errors:
    return "—"
  top5 = errors.get("top5_error")
  classes = results.get("data", {}).get("num_classes")
  fewer = f"n/a ({classes} classes)" if classes else "n/a (< 5 classes)"
  return f"{_percent(errors['top1_error'])} / {_percent(top5) if top5 is not None else fewer}"


AD_HOC_ORIGIN = "hw train"


def _load(path: pathlib.Path) -> Mapping[str, Any] | None:
  """The JSON at ``path``; None when there is none or it cannot be read (a torn or
  hand-edited file: ``hw reproduce`` retrains that experiment)."""
  try:
    return json.loads(path.read_text())
  except (OSError, ValueError):
    return None


def read_results(path: pathlib.Path) -> Mapping[str, Any] | None:
  """The results JSON at ``path`` when ``hw reproduce`` wrote it; None when there is none
  (or none readable), or when it is an ad-hoc ``hw train`` run's (``"origin": "hw
  train"``), which this report leaves out."""
  results = _load(path)
  return None if results is None or results.get("origin") == AD_HOC_ORIGIN else results


def _ad_hoc(results_dir: pathlib.Path, experiments: Sequence[str]) -> list[str]:
  """The experiments whose JSON in ``results_dir`` an ad-hoc ``hw train`` run wrote."""
  found = []
  for name in experiments:
    results = _load(results_dir / f"{name}.json")
    if results is not None and results.get("origin") == AD_HOC_ORIGIN:
      found.append(f"{name}.json")
  return found


def summary_table(results_dir: str | os.PathLike, experiments: Sequence[str],
                  statuses: Mapping[str, Any] | None = None) -> list[str]:
  """The one-row-per-experiment Markdown table of REPORT.md (and of the README)."""
  results_dir = pathlib.Path(results_dir)
  lines = ["| question | reported | ours (test) | top-1 / top-5 error | target | verdict | "
           "selected on validation | train time |", "|---|---|---|---|---|---|---|---|"]
  for name in experiments:
    results = read_results(results_dir / f"{name}.json")
    lines.append(_summary_row(name, results, (statuses or {}).get(name) or {}))
  return lines


README_BEGIN = "<!-- results table: generated by `hw readme` from docs/results -->"
README_END = "<!-- end of results table -->"


def update_readme(readme: str | os.PathLike, results_dir: str | os.PathLike,
                  experiments: Sequence[str]) -> bool:
  """Rewrite the README's generated results table from ``results_dir``; True if it changed."""
  readme = pathlib.Path(readme)
  text = readme.read_text()
  if README_BEGIN not in text or README_END not in text:
    raise ValueError(f"{readme} has no results-table markers ({README_BEGIN!r} … {README_END!r})")
  head, rest = text.split(README_BEGIN, 1)
  _, tail = rest.split(README_END, 1)
  table = "\n".join(summary_table(results_dir, experiments))
  new = f"{head}{README_BEGIN}\n{table}\n{README_END}{tail}"
  if new != text:
    files.write_atomic(readme, new)
  return new != text


def _call_lines(call: Mapping[str, Any] | None) -> list[str]:
  """The wall time of the last ``hw reproduce`` call and what it ran."""
  if not call:
    return []
  parts = [f"hw {check}" for check in call["checks"]]
  count, reused = len(call["experiments"]), call["reused"]
  if count:
    parts.append(f"{count} experiment{'s' if count != 1 else ''}" + (
        f" ({len(reused)} finished earlier and reused: {', '.join(reused)})" if reused else ""))
  when = "" if call.get("finished") else " so far (the call did not finish)"
  return [f"Last `hw reproduce` call: {call['seconds'] / 60:.1f} min wall{when} for "
          f"{', '.join(parts)}.", ""]


def write_report(results_dir: str | os.PathLike, state: Mapping[str, Any],
                 experiments: Sequence[str]) -> pathlib.Path:
  """(Re)write ``results_dir/REPORT.md`` from ``state`` and every ``<name>.json`` present.

  Args:
    results_dir: the results folder.
    state: the reproduce run's record: {"verify": step, "paper": step, "experiments":
      {name: {"status", "message", ...}}, "profile", "exit_code"}; a step is
      {"status", "seconds", "message"}.
    experiments: experiment names, in report order.
  """
  results_dir = pathlib.Path(results_dir)
  now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
  lines = ["# `hw reproduce` report", "",
           f"Updated {now}; profile `{state.get('profile', '?')}`.", "",
           *_call_lines(state.get("last_call")),
           "## Checks", "",
           _step_line("hw verify (every hand-written VJP against autodiff and finite differences)",
                      state.get("verify")),
           _step_line("hw paper (worked numbers of the write-ups)", state.get("paper")),
           *(["\n![worst relative error of each hw verify row](verify_errors.png)"]
             if (results_dir / "verify_errors.png").exists() else []),
           "", "## Experiments", "",
           *summary_table(results_dir, experiments, state.get("experiments", {}))]
  ad_hoc = _ad_hoc(results_dir, experiments)
  if ad_hoc:
    lines += ["", f"Left out: {', '.join(ad_hoc)} in this folder {'were' if len(ad_hoc) > 1 else 'was'} "
              f"written by an ad-hoc `hw train` run, not by `hw reproduce` (rerunning `hw "
              f"reproduce` retrains {'them' if len(ad_hoc) > 1 else 'it'})."]
  sections: list[str] = []
  statuses = state.get("experiments", {})
  for name in experiments:
    results = read_results(results_dir / f"{name}.json")
    status = statuses.get(name)
    sections += _experiment_section(name, results, status)
  lines += ["", "Exit status: 0 when every step that ran succeeded and every experiment that ran "
            "met its target; 1 on a real failure (verify/paper failing, an experiment crashing, "
            "diverging, missing its target or finding its data unusable). Only an experiment "
            "whose data cannot be had offline, and that was not named with --only, is reported "
            "as skipped, which is not a failure.", ""]
  lines += ["## Per question", ""] + sections
  path = results_dir / "REPORT.md"
  results_dir.mkdir(parents=True, exist_ok=True)
  files.write_atomic(path, "\n".join(lines) + "\n")
  return path
