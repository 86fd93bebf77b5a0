"""The report of ``hw.testing.check_vjp``: one ``Row`` per check and input, gathered in a
``VJPReport`` that prints as a table."""
from __future__ import annotations

import dataclasses
import math
from typing import Sequence


@dataclasses.dataclass
class Row:
  """One check on one input: the worst element and its relative error."""
  input: str
  check: str
  index: str = ""
  value: float | None = None        # None: not applicable (a blank cell); nan/inf print as such
  reference: float | None = None
  rel_err: float = 0.0
  tolerance: float = 0.0
  passed: bool = True
  note: str = ""


@dataclasses.dataclass
class VJPReport:
  """What ``check_vjp`` found. ``rows`` holds every check run; ``skipped`` the checks not
  run, with the reason."""
  name: str
  rows: list[Row]
  skipped: list[tuple[str, str]]
  cotangents: str
  seconds: float

  @property
  def passed(self) -> bool:
    return all(r.passed for r in self.rows)

  @property
  def failures(self) -> list[Row]:
    return [r for r in self.rows if not r.passed]

  def worst(self) -> dict[str, float]:
    """Check name -> worst relative error over inputs."""
    out: dict[str, float] = {}
    for r in self.rows:
      out[r.check] = max(out.get(r.check, 0.0), r.rel_err)
    return out

  def table(self, rows: Sequence[Row] | None = None) -> str:
    rows = self.rows if rows is None else rows
    header = ("input", "check", "worst element", "value", "reference", "rel err",
              "tolerance", "status")
    cells = [header] + [
        (r.input, r.check, r.index, _num(r.value), _num(r.reference), _num(r.rel_err, ".1e"),
         _num(r.tolerance, ".0e"), "pass" if r.passed else "FAIL") for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for r in rows:
      if r.note:
        lines.append(f"  {r.input} / {r.check}: {r.note}")
    for check, reason in self.skipped:
      lines.append(f"  skipped {check}: {reason}")
    return "\n".join(lines)

  def __str__(self) -> str:
    verdict = "pass" if self.passed else f"FAIL ({len(self.failures)} check(s))"
    return (f"check_vjp({self.name}): {verdict}; cotangents: {self.cotangents}; "
            f"{self.seconds:.1f} s\n{self.table()}")


def _num(v: float | None, fmt: str = ".10g") -> str:
  """A cell: blank when not applicable, ``nan``/``inf``/``-inf`` as such."""
  if v is None:
    return ""
  if not math.isfinite(v):
    return str(float(v))
  return format(v, fmt)

