"""Judging the UCL study's curves: whether a cell reproduces the reported number, under- and
overfitting, blow-ups, and why a cell does not reproduce."""
from __future__ import annotations

import statistics
from typing import Any, Sequence

import numpy as np

# --------------------------------------------------------------------- judgements

def reproduces(reported: float, seed_values: Sequence[float], *, range_margin: float = 0.02,
               median_margin: float = 0.03) -> bool:
  """The reported number lies within the seeds' [min, max] widened by ``range_margin`` on
  each side, or their median is within ``median_margin`` of it."""
  tolerance = 1e-9  # the boundaries are inclusive, also after float rounding (0.93 - 0.90)
  low, high = min(seed_values) - range_margin, max(seed_values) + range_margin
  return (low - tolerance <= reported <= high + tolerance
          or abs(statistics.median(seed_values) - reported) <= median_margin + tolerance)


def _at_or_before(samples: Sequence[int], target: int) -> int:
  """Index of the last sample count <= target."""
  return max(i for i, s in enumerate(samples) if s <= target)


def classify_fit(samples: Sequence[int], train_accuracy: Sequence[float],
                 test_accuracy: Sequence[float], *, samples_per_epoch: int,
                 diverged: bool = False, rising: float = 0.005, gap: float = 0.02,
                 drop: float = 0.005, underfit_below: float = 0.90) -> dict[str, Any]:
  """Under/overfitting of one run from its train (subset) and test accuracy curves.

  - diverged: given by the caller (the loss became NaN, or the run blew up: see
    :func:`blow_up`); the other verdicts are still computed;
  - underfit: the training accuracy is still rising (gained >= ``rising`` over the last
    epoch) or ended below ``underfit_below``;
  - overfit: the final train − test gap is >= ``gap``, or the test accuracy ended >= ``drop``
    below its best while the training accuracy ended at or above its value there.
  ``label``: "diverged", "underfit", "overfit", "underfit and overfit" or "good fit".
  """
  last = len(samples) - 1
  before = _at_or_before(samples, samples[-1] - samples_per_epoch)
  gain = train_accuracy[last] - train_accuracy[before]
  test_gain = test_accuracy[last] - test_accuracy[before]
  final_gap = train_accuracy[last] - test_accuracy[last]
  best = int(np.argmax(test_accuracy))
  test_drop = test_accuracy[best] - test_accuracy[last]
  underfit = gain >= rising or train_accuracy[last] < underfit_below
  overfit = final_gap >= gap or (test_drop >= drop
                                 and train_accuracy[last] >= train_accuracy[best])
  if diverged:
    label = "diverged"
  elif underfit and overfit:
    label = "underfit and overfit"
  else:
    label = "underfit" if underfit else "overfit" if overfit else "good fit"
  return {"label": label, "train_gain_last_epoch": float(gain),
          "test_gain_last_epoch": float(test_gain), "final_gap": float(final_gap),
          "test_drop_from_best": float(test_drop), "best_test_sample": int(samples[best]),
          "final_train_accuracy": float(train_accuracy[last]),
          "final_test_accuracy": float(test_accuracy[last]), "diverged": bool(diverged),
          "underfit": bool(underfit), "overfit": bool(overfit)}


def blow_up(samples: Sequence[int], train_loss: Sequence[float | None],
            test_loss: Sequence[float | None], test_accuracy: Sequence[float], *,
            chance: float = 0.2) -> dict[str, Any] | None:
  """A run that blew up without a NaN: its training loss rose above the loss at
  initialisation (``test_loss[0]``) and its test accuracy ended below ``chance``
  (dead ReLUs or saturated logits: the net predicts one class). None otherwise."""
  finite = [(s, v) for s, v in zip(samples, train_loss) if v is not None]
  initial = test_loss[0]
  if not finite or initial is None:
    return None
  peak_sample, peak = max(finite, key=lambda pair: pair[1])
  if peak > initial and test_accuracy[-1] < chance:
    return {"initial_loss": float(initial), "peak_loss": float(peak),
            "peak_sample": int(peak_sample), "final_loss": float(finite[-1][1]),
            "final_test_accuracy": float(test_accuracy[-1])}
  return None


def _median_curve(per_seed: Sequence[Sequence[float]]) -> list[float]:
  return [float(np.median(column)) for column in zip(*per_seed)]


def _first_reaching(samples, curve, level) -> int | None:
  for s, v in zip(samples, curve):
    if v >= level:
      return s
  return None


def setup_name(cell: dict[str, Any]) -> str:
  """"init × `reduction`" of a cell (cells without an ``init`` are Xavier-uniform's)."""
  return f"{cell.get('init', 'xavier_uniform')} × `{cell['reduction']}`"


def _others_text(cell: dict[str, Any], other: dict[str, Any] | Sequence[dict[str, Any]]) -> str:
  if isinstance(other, dict):
    verdict = "reproduces" if other["reproduces"] else "does not reproduce either"
    init = other.get("init", "xavier_uniform")
    where = (f"with reduction \"{other['reduction']}\"" if init == cell.get("init", "xavier_uniform")
             else f"with initialisation \"{init}\" and reduction \"{other['reduction']}\"")
    return f"{where} the cell reads {other['test_accuracy']:.4f} ({verdict})"
  hits = [o for o in other if o["reproduces"]]
  if hits:
    return (f"{len(hits)} of the {len(other)} other setups tried reproduce it: "
            + ", ".join(f"{setup_name(o)} {o['test_accuracy']:.4f}" for o in hits))
  closest = min(other, key=lambda o: abs(o["test_accuracy"] - cell["reported"]))
  return (f"none of the {len(other)} other setups tried reproduces it (closest: "
          f"{setup_name(closest)} at {closest['test_accuracy']:.4f})")


def explain(cell: dict[str, Any], other: dict[str, Any] | Sequence[dict[str, Any]] | None,
            samples_per_epoch: int) -> str:
  """Why a cell does not reproduce, in facts measured on its curves; ``other`` is the same
  cell under another setup (its reading is quoted) or under every other setup tried (those
  that reproduce it are named, or the closest one)."""
  fit, reported, median = cell["fit"], cell["reported"], cell["test_accuracy"]
  samples = cell["curves"]["samples"]
  test = cell["curves"]["median"]["test_accuracy"]
  miss = 100 * (median - reported)
  parts = []
  seeds = cell["curves"]["seeds"]
  nan = [s["diverged_at"] for s in seeds if s.get("diverged_at") is not None]
  blown = [s["blow_up"] for s in seeds if s.get("blow_up") and s.get("diverged_at") is None]
  if nan or blown:
    if nan:
      parts.append(f"diverged (NaN) at sample {min(nan):,} in {len(nan)} of {len(seeds)} seeds")
    if blown:
      first = min(blown, key=lambda b: b["peak_sample"])
      parts.append(
          f"blew up in {len(blown)} of {len(seeds)} seeds: the training loss rose from "
          f"{first['initial_loss']:.2f} at initialisation to {first['peak_loss']:.2f} (interval "
          f"ending at sample {first['peak_sample']:,}) and ended at {first['final_loss']:.2f}, "
          f"the net predicting near chance")
    parts.append(f"test accuracy ends at {median:.4f}, {-miss:.2f} points below the reported "
                 "number" if miss < 0 else f"test accuracy ends at {median:.4f}")
  elif miss < 0:
    reach = _first_reaching(samples, test, reported)
    if fit["train_gain_last_epoch"] >= 0.005 or fit["test_gain_last_epoch"] >= 0.005:
      parts.append(f"still rising at the end (test +{100 * fit['test_gain_last_epoch']:.2f}, "
                   f"train +{100 * fit['train_gain_last_epoch']:.2f} points over the last "
                   f"epoch): underfit, {-miss:.2f} points below the reported number")
    else:
      parts.append(f"flat at the end (test {100 * fit['test_gain_last_epoch']:+.2f} points "
                   f"over the last epoch) yet {-miss:.2f} points below the reported number")
    if reach is not None:
      parts.append(f"(the median curve touched {reported:.4f} at sample {reach:,})")
  else:
    reach = _first_reaching(samples, test, reported)
    parts.append(f"{miss:.2f} points above the reported number: our median test curve "
                 f"passed {reported:.4f} at sample {reach:,} of {samples[-1]:,} "
                 f"({reach / samples_per_epoch:.1f} of {samples[-1] / samples_per_epoch:.0f} "
                 f"epochs), so the reported run learned more slowly than this recipe")
  spread = 100 * (max(cell["seeds"]) - min(cell["seeds"]))
  if len(cell["seeds"]) > 1:
    parts.append(f"seeds span {spread:.2f} points")
  if other is not None and (isinstance(other, dict) or len(other)):
    parts.append(_others_text(cell, other))
  return "; ".join(parts) + "."
