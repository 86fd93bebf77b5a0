"""Training the UCL study's runs: the data on the device, the mini-batch plans and
:func:`train_members`, which trains the members of one group together and records their
curves."""
from __future__ import annotations

import dataclasses
import math
import statistics
import time
from typing import Any, Callable, Iterable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from experiments.studies.ucl.models import (
  _stack,
  _take,
  _train_program,
  evaluate,
  init_params,
  scanned,
)
from experiments.studies.ucl.settings import Member
from hw.engine import randomness

# ------------------------------------------------------------------------- training

@dataclasses.dataclass(frozen=True)
class StudyData:
  """Device arrays: the training set, the fixed training subset and the test set."""
  train_images: jax.Array
  train_labels: jax.Array
  subset_images: jax.Array
  subset_labels: jax.Array
  test_images: jax.Array
  test_labels: jax.Array
  subset_indices: np.ndarray

  @classmethod
  def from_arrays(cls, train_images, train_labels, test_images, test_labels, *,
                  fraction: float, subset_seed: int) -> "StudyData":
    n = len(train_labels)
    size = max(1, round(fraction * n))
    subset = np.sort(np.random.default_rng([subset_seed, 20]).permutation(n)[:size])
    put = lambda a, dtype: jnp.asarray(np.asarray(a, dtype))  # noqa: E731
    return cls(put(train_images, np.float32), put(train_labels, np.int32),
               put(np.asarray(train_images)[subset], np.float32),
               put(np.asarray(train_labels)[subset], np.int32),
               put(test_images, np.float32), put(test_labels, np.int32), subset)


class _Plans:
  """Mini-batch indices by global step: epoch e's order is ``randomness.epoch_plan(seed, e)``."""

  def __init__(self, size: int, batch: int):
    self.size, self.batch = size, batch
    self.steps_per_epoch = size // batch
    self._cache: dict[tuple[int, int], np.ndarray] = {}

  def _epoch(self, seed: int, epoch: int) -> np.ndarray:
    key = (seed, epoch)
    if key not in self._cache:
      if len(self._cache) > 64:
        self._cache.clear()
      self._cache[key] = randomness.epoch_plan(seed, epoch, self.size, self.steps_per_epoch,
                                               self.batch)[0]
    return self._cache[key]

  def steps(self, seed: int, start: int, stop: int) -> np.ndarray:
    """(stop - start, batch) indices of global steps [start, stop) (0-based) for ``seed``."""
    rows, step = [], start
    while step < stop:
      epoch, offset = divmod(step, self.steps_per_epoch)
      take = min(stop - step, self.steps_per_epoch - offset)
      rows.append(self._epoch(seed, epoch + 1)[offset:offset + take])
      step += take
    return np.concatenate(rows)


def _finite_or_none(values: Iterable[float]) -> list[float | None]:
  return [float(v) if math.isfinite(v) else None for v in values]


def train_members(model: int, members: Sequence[Member], epochs: int, data: StudyData, *,
                  batch_size: int = 100, eval_every: int = 20_000, eval_batch_size: int = 1000,
                  stops: Iterable[int] = (), log: Callable[[str], None] | None = None,
                  return_params: bool = False) -> Any:
  """Train every member for ``epochs`` epochs together; one curve dict per member.

  With ``return_params``: (curves, final parameters of each member) instead.

  Evaluations: at sample 0, every ``eval_every`` samples, at the end of every epoch in
  ``stops`` and at the end. Each curve: ``samples``, ``train_accuracy`` (on the fixed
  training subset), ``test_accuracy``, ``test_loss`` (mean cross-entropy), ``test_top5_error``,
  ``train_loss`` (mean per-example loss of the batches since the previous point; None at
  0 or when not finite), ``diverged_at`` (the sample count after the first step whose loss
  was not finite, or None), and ``stopped_at`` (None, or the sample count where training
  stopped because every member's parameters were all NaN: later points repeat the last
  evaluation, which NaN parameters would reproduce exactly).
  """
  order = sorted(range(len(members)), key=lambda i: members[i].reduction)  # contiguous spans
  ordered = [members[i] for i in order]
  reductions = tuple(m.reduction for m in ordered)
  plans = _Plans(int(data.train_labels.shape[0]), batch_size)
  spe = plans.steps_per_epoch
  if spe < 1:
    raise ValueError(f"a batch of {batch_size} needs at least that many training examples")
  total = epochs * spe
  if eval_every % batch_size:
    raise ValueError(f"`eval_every` ({eval_every}) must be a multiple of the batch size")
  every = eval_every // batch_size
  bounds = sorted({*range(every, total + 1, every), *(e * spe for e in stops if e <= epochs),
                   total})
  params = _stack([init_params(model, m.seed, m.init) for m in ordered])
  lrs = jnp.asarray([m.learning_rate for m in ordered], jnp.float32)
  program = _train_program(model, reductions)
  count = len(ordered)
  curves = [{"samples": [], "train_accuracy": [], "test_accuracy": [], "test_loss": [],
             "test_top5_error": [], "train_loss": [], "diverged_at": None, "stopped_at": None} for _ in ordered]

  def record(step: int, train_loss: np.ndarray | None) -> None:
    train_acc, _, _ = evaluate(model, params, data.subset_images, data.subset_labels,
                               eval_batch_size)
    test_acc, test_loss, test_top5 = evaluate(model, params, data.test_images,
                                              data.test_labels, eval_batch_size)
    for m, curve in enumerate(curves):
      curve["samples"].append(step * batch_size)
      curve["train_accuracy"].append(float(train_acc[m]))
      curve["test_accuracy"].append(float(test_acc[m]))
      curve["test_loss"].append(_finite_or_none([test_loss[m]])[0])
      curve["test_top5_error"].append(float(test_top5[m]))
      curve["train_loss"].append(None if train_loss is None else
                                 _finite_or_none([train_loss[m]])[0])

  record(0, None)
  began, last_log, step = time.perf_counter(), time.perf_counter(), 0
  for bound in bounds:
    if all(c["stopped_at"] is not None for c in curves):
      for curve in curves:  # NaN parameters stay NaN: the evaluation would repeat
        for key in ("train_accuracy", "test_accuracy", "test_loss", "test_top5_error"):
          curve[key].append(curve[key][-1])
        curve["samples"].append(bound * batch_size)
        curve["train_loss"].append(None)
      step = bound
      continue
    idx = np.stack([plans.steps(m.seed, step, bound) for m in ordered])  # (M, S, B)
    if scanned(model):
      params, losses = program(params, lrs, jnp.asarray(idx), data.train_images,
                               data.train_labels)
    else:
      per_step = []
      for s in range(bound - step):
        params, value = program(params, lrs, jnp.asarray(idx[:, s:s + 1]), data.train_images,
                                data.train_labels)
        per_step.append(value)
      losses = jnp.concatenate(per_step, axis=1)
    losses = np.asarray(losses, np.float64)
    for m, curve in enumerate(curves):
      bad = np.flatnonzero(~np.isfinite(losses[m]))
      if curve["diverged_at"] is None and bad.size:
        curve["diverged_at"] = int((step + bad[0] + 1) * batch_size)
    step = bound
    record(step, losses.mean(axis=1))
    all_nan = np.asarray(jax.tree.leaves(jax.tree.map(
        lambda leaf: jnp.all(~jnp.isfinite(leaf.reshape(count, -1)), axis=1), params)))
    if all_nan.all():
      for curve in curves:
        curve["stopped_at"] = step * batch_size
    now = time.perf_counter()
    if log is not None and (now - last_log > 30 or step == total):
      last_log = now
      median = statistics.median(c["test_accuracy"][-1] for c in curves)
      log(f"model {model}, {epochs} epochs, {count} runs: epoch {step / spe:.1f}/{epochs}, "
          f"median test accuracy {median:.4f}, {now - began:.0f} s")
  unordered: list[Any] = [None] * len(members)
  final: list[Any] = [None] * len(members)
  for position, index in enumerate(order):
    unordered[index] = curves[position]
    final[index] = _take(params, position)
  return (unordered, final) if return_params else unordered
