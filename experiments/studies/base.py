"""Experiments that are not a grid of training runs: a solver comparison, an embedding, a
set of figures. ``hw reproduce`` runs them beside the grid experiments.

A study's ``run(workdir, *, profile, data_dir)`` writes ``<workdir>/<name>.json`` and its
figures, and returns the results dict, which holds at least:

- ``summary``: Markdown lines for the report (what was measured, next to what was
  reported, in numbers the run produced);
- ``figures``: the PNG file names it wrote into ``workdir``;
- ``meets_target``: True / False against the study's stated targets, None without any;
- optionally ``headline``: the one number or phrase for the report's summary table.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

from hw.engine.files import as_json_value

STUDY_VERSION = 1  # bump when a change alters what studies compute, to rerun finished ones


@dataclasses.dataclass(frozen=True)
class Study:
  """One study: its name (results file ``<name>.json``), title and runner."""
  name: str
  title: str
  run: Callable[..., dict[str, Any]]
  reported: Sequence[str] = ()
  target: float | None = None
  profile: str = "quick"
  notes: str = ""


def finished(results: dict[str, Any], study: Study) -> bool:
  """Whether saved results are complete results of this study, profile and version."""
  return (results.get("status") == "complete" and results.get("profile") == study.profile
          and results.get("study_version") == STUDY_VERSION)


def stamp(results: dict[str, Any], study: Study) -> dict[str, Any]:
  """The results as plain JSON values, with what :func:`finished` checks and the study's
  description."""
  return {**as_json_value(results), "name": study.name, "title": study.title, "status": "complete",
          "profile": study.profile, "study_version": STUDY_VERSION,
          "reported": list(study.reported), "target": study.target}


def check_results(results: Any, study: Study) -> None:
  """Raise ``TypeError`` naming the study when its runner broke the contract above."""
  if not isinstance(results, dict):
    raise TypeError(f"study {study.name!r} returned {type(results).__name__}, not a dict")
  missing = [key for key in ("summary", "figures", "meets_target") if key not in results]
  if missing:
    raise TypeError(f"study {study.name!r} returned results without {missing}")


def summary_lines(results: dict[str, Any]) -> Sequence[str]:
  return [str(line) for line in results.get("summary", [])]
