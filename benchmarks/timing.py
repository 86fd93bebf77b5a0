"""Interleaved timing: every candidate is measured once per round, in rotating order.

On a shared, noisy machine a slow spell hits all candidates of a round alike, so the
per-round ratios are steadier than ratios of separately taken medians.
"""
from __future__ import annotations

import statistics
import time
from typing import Callable, Mapping, Sequence

Runner = Callable[[int], None]   # run(steps): do `steps` steps and block until finished


def _elapsed(run: Runner, steps: int) -> float:
  start = time.perf_counter()
  run(steps)
  return time.perf_counter() - start


def calibrate(run: Runner, *, target_s: float, max_steps: int = 10_000) -> int:
  """Steps per measurement so that one measurement takes about ``target_s`` seconds."""
  per_step = _elapsed(run, 1)
  if per_step * 3 < target_s:      # a second, larger probe for fast candidates
    probe = max(1, min(max_steps, int(0.3 * target_s / max(per_step, 1e-7))))
    per_step = _elapsed(run, probe) / probe
  return max(1, min(max_steps, round(target_s / max(per_step, 1e-9))))


def interleaved(candidates: Mapping[str, Runner], *, rounds: int, target_s: float,
                warmup_steps: int = 2,
                cpu_times: dict[str, list[float]] | None = None) -> dict[str, list[float]]:
  """Wall-clock seconds per step of each candidate, one value per round.

  Args:
    candidates: name -> run(steps).
    rounds: number of rounds; in round r the order is rotated by r.
    target_s: wall time aimed at for one measurement (sets the steps per measurement).
    warmup_steps: steps run before calibration (compilation, allocator warm-up).
    cpu_times: if given, filled with name -> CPU seconds (all threads of this process)
      per step, one per round: less sensitive than wall time to other processes taking
      the cores, though it counts spin-waiting threads as busy.

  Returns:
    name -> list of seconds per step, one per round.
  """
  names = list(candidates)
  for name in names:
    candidates[name](warmup_steps)
  steps = {name: calibrate(candidates[name], target_s=target_s) for name in names}
  times: dict[str, list[float]] = {name: [] for name in names}
  if cpu_times is not None:
    cpu_times.update({name: [] for name in names})
  for r in range(rounds):
    shift = r % len(names)
    for name in names[shift:] + names[:shift]:
      cpu_start = time.process_time()
      times[name].append(_elapsed(candidates[name], steps[name]) / steps[name])
      if cpu_times is not None:
        cpu_times[name].append((time.process_time() - cpu_start) / steps[name])
  return times


def quartiles(values: Sequence[float]) -> tuple[float, float, float]:
  """(25th percentile, median, 75th percentile); all equal for a single value."""
  values = sorted(values)
  if len(values) == 1:
    return values[0], values[0], values[0]
  q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
  return q1, median, q3


def ratio_per_round(numerator: Sequence[float], denominator: Sequence[float]) -> list[float]:
  return [n / d for n, d in zip(numerator, denominator)]
