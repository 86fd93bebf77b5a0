"""pytest plugin of ``hw.testing`` (entry point ``pytest11``: ``hw.testing.plugin``).

* fixture ``check_vjp``: ``hw.testing.check_vjp`` that also records its report;
* ``@hw.testing.vjp_cases(...)`` parametrizes a test over ``Case``s (argument ``case``);
* at the end of the session, one line per checked function: calls, failures and the
  worst relative error of each check (merged across pytest-xdist workers).

Without the entry point installed: ``pytest -p hw.testing.plugin``. The plugin imports
nothing heavy: JAX and the checker load when a test first asks for the fixture.
"""
from __future__ import annotations

import pytest

_KEY = "hw_testing_vjp_summary"
# function name -> {"calls": n, "failed": n, "worst": {check: rel err}}
_SUMMARY: dict[str, dict] = {}


def _record(name: str, report, failed: bool) -> None:
  entry = _SUMMARY.setdefault(name, {"calls": 0, "failed": 0, "worst": {}})
  entry["calls"] += 1
  entry["failed"] += int(failed)
  if report is not None:
    for check, err in report.worst().items():
      entry["worst"][check] = max(entry["worst"].get(check, 0.0), err)


def _merge(other: dict) -> None:
  for name, e in other.items():
    entry = _SUMMARY.setdefault(name, {"calls": 0, "failed": 0, "worst": {}})
    entry["calls"] += e["calls"]
    entry["failed"] += e["failed"]
    for check, err in e["worst"].items():
      entry["worst"][check] = max(entry["worst"].get(check, 0.0), err)


@pytest.fixture
def check_vjp():
  """``hw.testing.check_vjp``, recorded for the end-of-session summary."""
  from hw.testing.check import check_vjp as check

  def run(f, *args, **kwargs):
    __tracebackhide__ = True  # the failure shows the table, not these frames
    try:
      report = check(f, *args, **kwargs)
    except AssertionError as exc:
      report = getattr(exc, "report", None)
      _record(_group(report, f), report, failed=True)
      raise
    _record(_group(report, f), report, failed=False)
    return report
  return run


def _group(report, f) -> str:
  name = report.name if report is not None else getattr(f, "__name__", repr(f))
  return name.partition("[")[0]


def pytest_sessionfinish(session):
  workeroutput = getattr(session.config, "workeroutput", None)
  if workeroutput is not None:  # an xdist worker: hand the summary to the controller
    workeroutput[_KEY] = _SUMMARY


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook
def pytest_testnodedown(node, error):
  data = getattr(node, "workeroutput", {}).get(_KEY)
  if data:
    _merge(data)


def summary_lines() -> list[str]:
  lines = []
  for name in sorted(_SUMMARY):
    e = _SUMMARY[name]
    worst = ", ".join(f"{check} {err:.1e}" for check, err in e["worst"].items())
    status = "pass" if not e["failed"] else f"{e['failed']} FAILED"
    lines.append(f"{name}: {e['calls']} check_vjp call(s), {status}; worst rel err: {worst}")
  return lines


def pytest_terminal_summary(terminalreporter):
  if getattr(terminalreporter.config, "workeroutput", None) is not None or not _SUMMARY:
    return
  terminalreporter.section("hw.testing: worst relative error per check")
  for line in summary_lines():
    terminalreporter.write_line(line)
