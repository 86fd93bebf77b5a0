"""UCL COMPGI22 (2017-18) coursework 2: four models × three settings, plain SGD on MNIST.

SPEC section B. Every gradient comes from the hand-written VJPs of :mod:`hw.ops`
(``jax.grad`` of a loss built from ``hw.ops`` calls runs their ``custom_vjp`` rules) and
every update is plain SGD, ``θ ← θ − lr · ∂loss/∂θ``: no momentum, schedule, augmentation
or input scaling beyond the raw [0, 1] pixels. Xavier (Glorot) uniform weights, zero
biases, batch 100. Every ``eval_every`` (20,000) training samples each run is evaluated on
a fixed 20% of the training set and on the whole test set.

The loss is ``hw.ops.softmax_cross_entropy`` with ``reduction`` "sum" (as the write-up
states the loss) or "mean" (the usual code); with plain SGD the sum multiplies every step
by the batch size, so both are run and compared with the reported table.

Speed (small nets at batch 100 are overhead-bound on a CPU):

- runs of one model with the same number of epochs and the same reduction form a group,
  trained together as "members" of one compiled program, each with its own learning rate
  and seed. The MLPs (models 1-3) are ``jax.vmap``-ed over the members inside a jitted
  ``lax.scan`` over the steps between two evaluations. The conv net (model 4) is not:
  ``vmap`` turns its convolutions into grouped convolutions, about 7× slower per member
  on XLA:CPU, and XLA:CPU runs convolutions 2-3× slower inside a ``scan``'s while loop,
  so model 4 makes one jitted call per step, computing every member in that call.
- ``UclConfig.workers`` (2) Python threads train groups concurrently, longest first (a
  group's result does not depend on what runs beside it).
- a run is a pure function of (model, learning rate, seed, reduction): its first E epochs
  do not depend on how many follow. So a setting whose (model, learning rate) another
  setting repeats with more epochs is read off the longer run at epoch E (model 3
  settings 1/2 at lr 0.003, model 4 settings 2/3 at lr 0.001), which is exactly the run
  a separate training would give.
- on the CPU every program is compiled without XLA's YNN library fusion
  (:data:`CPU_COMPILER_OPTIONS`): it fuses the first convolution with the max pool into one
  call that runs about 3× slower than the two kernels apart (model 4's forward pass: 9.3
  vs 3.5 ms CPU per 100 images, measured on the 2-core CPU).
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import math
import pathlib
import statistics
import time
from typing import Any, Callable, Iterable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from hw import ops, randomness

NAME = "ucl"
STUDENT_MODEL4_SECONDS = 10 * 3600  # "about 10 hours with loop-based numpy code"
# XLA:CPU's YNN library fusion merges model 4's first convolution and max pool into one
# call that runs ~3x slower than the two kernels apart; an empty list turns it off.
CPU_COMPILER_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": ""}

ARCHITECTURES = {
    1: "linear → softmax",
    2: "32 ReLU → linear → softmax",
    3: "32 ReLU → 32 ReLU → linear → softmax",
    4: "conv 3×3×8 SAME + maxpool 2 → conv 3×3×8 SAME + maxpool 2 → 32 ReLU → linear → softmax",
}


class Setting(NamedTuple):
  """One cell of the reported table."""
  model: int
  setting: int
  epochs: int
  learning_rate: float
  reported: float


SETTINGS: tuple[Setting, ...] = (
    Setting(1, 1, 5, 1e-4, 0.7288), Setting(1, 2, 5, 0.005, 0.8776),
    Setting(1, 3, 5, 0.1, 0.9171),
    Setting(2, 1, 15, 1e-4, 0.2066), Setting(2, 2, 15, 0.005, 0.9026),
    Setting(2, 3, 15, 0.1, 0.9651),
    Setting(3, 1, 5, 0.003, 0.7146), Setting(3, 2, 40, 0.003, 0.9148),
    Setting(3, 3, 40, 0.05, 0.9685),
    Setting(4, 1, 5, 0.01, 0.9281), Setting(4, 2, 10, 0.001, 0.9857),
    Setting(4, 3, 20, 0.001, 0.9856),
)


@dataclasses.dataclass(frozen=True)
class UclConfig:
  """What a run of the study trains and how it judges the result.

  ``reproduce_range_margin`` / ``reproduce_median_margin``: a cell reproduces when the
  reported number lies within the seeds' [min, max] widened by the first on each side, or
  the median is within the second of it. ``rising`` / ``gap`` / ``drop`` /
  ``underfit_below``: the under/overfitting rule of :func:`classify_fit`.
  """
  reductions: tuple[str, ...] = ("mean", "sum")
  seeds: tuple[int, ...] = (0, 1, 2)
  settings: tuple[Setting, ...] = SETTINGS
  batch_size: int = 100
  eval_every: int = 20_000
  train_eval_fraction: float = 0.2
  subset_seed: int = 0
  eval_batch_size: int = 1000
  workers: int = 2
  target_cells: int = 10
  reproduce_range_margin: float = 0.02
  reproduce_median_margin: float = 0.03
  rising: float = 0.005
  gap: float = 0.02
  drop: float = 0.005
  underfit_below: float = 0.90
  notes: str = ""


class Member(NamedTuple):
  """One training run inside a group: its learning rate, seed and loss reduction."""
  learning_rate: float
  seed: int
  reduction: str


# ----------------------------------------------------------------------------- models

def layer_shapes(model: int) -> tuple[tuple[int, ...], ...]:
  """Weight shapes of model 1-4 (dense (in, out); conv HWIO)."""
  if model == 1:
    return ((784, 10),)
  if model == 2:
    return ((784, 32), (32, 10))
  if model == 3:
    return ((784, 32), (32, 32), (32, 10))
  if model == 4:
    return ((3, 3, 1, 8), (3, 3, 8, 8), (7 * 7 * 8, 32), (32, 10))
  raise ValueError(f"`model` must be 1, 2, 3 or 4, got {model!r}")


def xavier_uniform(key: jax.Array, shape: Sequence[int]) -> jax.Array:
  """Glorot/Xavier uniform: U(±√(6 / (fan_in + fan_out))); a conv kernel's fans include
  its receptive field (kh·kw·in, kh·kw·out), as TensorFlow's initializer."""
  receptive = math.prod(shape[:-2])
  fan_in, fan_out = receptive * shape[-2], receptive * shape[-1]
  limit = math.sqrt(6.0 / (fan_in + fan_out))
  return jax.random.uniform(key, tuple(shape), jnp.float32, -limit, limit)


def init_params(model: int, seed: int) -> tuple[tuple[jax.Array, jax.Array], ...]:
  """((W, b), ...) per layer: Xavier-uniform weights, zero biases; a pure function of seed."""
  shapes = layer_shapes(model)
  keys = jax.random.split(randomness.init_key(seed), len(shapes))
  return tuple((xavier_uniform(key, shape), jnp.zeros((shape[-1],), jnp.float32))
               for key, shape in zip(keys, shapes))


def apply(model: int, params, images: jax.Array) -> jax.Array:
  """Logits of ``images`` (N, 28, 28, 1) in [0, 1], every layer an ``hw.ops`` call."""
  if model == 4:
    (w1, b1), (w2, b2), (w3, b3), (w4, b4) = params
    h = ops.max_pool(ops.conv2d(images, w1, b1, padding="SAME"), 2)
    h = ops.max_pool(ops.conv2d(h, w2, b2, padding="SAME"), 2)
    h = ops.relu(ops.linear(h.reshape(h.shape[0], -1), w3, b3))
    return ops.linear(h, w4, b4)
  h = images.reshape(images.shape[0], -1)
  for w, b in params[:-1]:
    h = ops.relu(ops.linear(h, w, b))
  return ops.linear(h, *params[-1])


def loss(params, images, labels, *, model: int, reduction: str) -> jax.Array:
  """Softmax cross-entropy of the batch, summed or averaged (``hw.ops``)."""
  return ops.softmax_cross_entropy(apply(model, params, images), labels, reduction=reduction)


def sgd_step(params, learning_rate, images, labels, *, model: int, reduction: str):
  """One plain SGD step; returns (new params, the batch's mean per-example loss)."""
  value, grads = jax.value_and_grad(loss)(params, images, labels, model=model,
                                          reduction=reduction)
  params = jax.tree.map(lambda p, g: p - learning_rate * g, params, grads)
  per_example = value / labels.shape[0] if reduction == "sum" else value
  return params, per_example


# ------------------------------------------------------------------------ programs

def _jit(fn: Callable, **kwargs) -> Callable:
  options = CPU_COMPILER_OPTIONS if jax.default_backend() == "cpu" else None
  return jax.jit(fn, compiler_options=options, **kwargs)


def _stack(trees: Sequence[Any]) -> Any:
  return jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)


def _take(tree: Any, index: int | slice) -> Any:
  return jax.tree.map(lambda leaf: leaf[index], tree)


def _spans(reductions: Sequence[str]) -> list[tuple[str, slice]]:
  """Contiguous runs of equal reductions: [(reduction, slice of members), ...]."""
  spans: list[tuple[str, slice]] = []
  start = 0
  for i in range(1, len(reductions) + 1):
    if i == len(reductions) or reductions[i] != reductions[start]:
      spans.append((reductions[start], slice(start, i)))
      start = i
  return spans


def scanned(model: int) -> bool:
  """Whether the members of ``model`` are vmapped inside a ``lax.scan`` (the MLPs), or
  stepped one jitted call per step with the members unrolled in it (the conv net)."""
  return model != 4


@functools.lru_cache(maxsize=32)
def _train_program(model: int, reductions: tuple[str, ...]) -> Callable:
  """jitted (params [M, ...], lrs [M], idx [M, S, B], images, labels) -> (params, losses [M, S]).

  Member m runs S SGD steps with its own learning rate on batches ``images[idx[m, s]]``,
  under the loss reduction ``reductions[m]``.
  """
  def member(params, lr, idx, images, labels, reduction):
    def step(p, batch):
      return sgd_step(p, lr, images[batch], labels[batch], model=model, reduction=reduction)
    return lax.scan(step, params, idx)

  def program(params, lrs, idx, images, labels):
    outs = []
    for reduction, span in _spans(reductions):
      p, lr, ix = _take(params, span), lrs[span], idx[span]
      if scanned(model):
        outs.append(jax.vmap(functools.partial(member, reduction=reduction),
                             in_axes=(0, 0, 0, None, None))(p, lr, ix, images, labels))
      else:  # one step (S == 1) per call; members unrolled
        for m in range(span.stop - span.start):
          new, value = sgd_step(_take(p, m), lr[m], images[ix[m, 0]], labels[ix[m, 0]],
                                model=model, reduction=reduction)
          outs.append((_stack([new]), value[None, None]))
    new_params = jax.tree.map(lambda *parts: jnp.concatenate(parts), *[o[0] for o in outs])
    return new_params, jnp.concatenate([o[1] for o in outs])
  return _jit(program, donate_argnums=(0,))


@functools.lru_cache(maxsize=8)
def _eval_program(model: int) -> Callable:
  """jitted (params [M, ...], images, labels) -> (correct [M], summed loss [M])."""
  def one(params, images, labels):
    logits = apply(model, params, images)
    correct = jnp.sum(jnp.argmax(logits, axis=-1) == labels)
    return correct, ops.softmax_cross_entropy(logits, labels, reduction="sum")

  def program(params, images, labels):
    if scanned(model):
      return jax.vmap(one, in_axes=(0, None, None))(params, images, labels)
    count = jax.tree.leaves(params)[0].shape[0]
    parts = [one(_take(params, m), images, labels) for m in range(count)]
    return jnp.stack([p[0] for p in parts]), jnp.stack([p[1] for p in parts])
  return _jit(program)


def evaluate(model: int, params, images: jax.Array, labels: jax.Array,
             batch_size: int) -> tuple[np.ndarray, np.ndarray]:
  """(accuracy [M], mean cross-entropy [M]) of every member on (images, labels)."""
  program = _eval_program(model)
  correct, total = 0, 0.0
  for start in range(0, labels.shape[0], batch_size):
    c, t = program(params, images[start:start + batch_size], labels[start:start + batch_size])
    correct, total = correct + c, total + t
  n = labels.shape[0]
  return (np.asarray(correct, np.float64) / n, np.asarray(total, np.float64) / n)


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
  training subset), ``test_accuracy``, ``test_loss`` (mean cross-entropy),
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
  params = _stack([init_params(model, m.seed) for m in ordered])
  lrs = jnp.asarray([m.learning_rate for m in ordered], jnp.float32)
  program = _train_program(model, reductions)
  count = len(ordered)
  curves = [{"samples": [], "train_accuracy": [], "test_accuracy": [], "test_loss": [],
             "train_loss": [], "diverged_at": None, "stopped_at": None} for _ in ordered]

  def record(step: int, train_loss: np.ndarray | None) -> None:
    train_acc, _ = evaluate(model, params, data.subset_images, data.subset_labels,
                            eval_batch_size)
    test_acc, test_loss = evaluate(model, params, data.test_images, data.test_labels,
                                   eval_batch_size)
    for m, curve in enumerate(curves):
      curve["samples"].append(step * batch_size)
      curve["train_accuracy"].append(float(train_acc[m]))
      curve["test_accuracy"].append(float(test_acc[m]))
      curve["test_loss"].append(_finite_or_none([test_loss[m]])[0])
      curve["train_loss"].append(None if train_loss is None else
                                 _finite_or_none([train_loss[m]])[0])

  record(0, None)
  began, last_log, step = time.perf_counter(), time.perf_counter(), 0
  for bound in bounds:
    if all(c["stopped_at"] is not None for c in curves):
      for curve in curves:  # NaN parameters stay NaN: the evaluation would repeat
        for key in ("train_accuracy", "test_accuracy", "test_loss"):
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


def explain(cell: dict[str, Any], other: dict[str, Any] | None, samples_per_epoch: int) -> str:
  """Why a cell does not reproduce, in facts measured on its curves."""
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
  if other is not None:
    verdict = "reproduces" if other["reproduces"] else "does not reproduce either"
    parts.append(f"with reduction \"{other['reduction']}\" the cell reads "
                 f"{other['test_accuracy']:.4f} ({verdict})")
  return "; ".join(parts) + "."


# --------------------------------------------------------------------------- study

def _groups(settings: Sequence[Setting]) -> dict[tuple[int, int], list[tuple[float, list[int]]]]:
  """{(model, epochs): [(learning rate, epochs of the cells it serves), ...]}: one run per
  (model, learning rate), as long as the longest setting that uses it."""
  runs: dict[tuple[int, float], list[int]] = {}
  for s in settings:
    runs.setdefault((s.model, s.learning_rate), []).append(s.epochs)
  groups: dict[tuple[int, int], list[tuple[float, list[int]]]] = {}
  for (model, lr), epochs in runs.items():
    groups.setdefault((model, max(epochs)), []).append((lr, sorted(epochs)))
  return dict(sorted(groups.items()))


# Relative cost of one member-step (MLPs vs the conv net, measured on the CPU) to order
# the groups longest first across the workers.
_STEP_COST = {1: 0.02, 2: 0.025, 3: 0.03, 4: 1.0}


def run_table(config: UclConfig, data: StudyData, *,
              log: Callable[[str], None] | None = None) -> dict[str, Any]:
  """Train every group; returns {"cells": [...], "timing": {...}}.

  A group is one model, number of epochs and reduction; ``config.workers`` Python threads
  train groups concurrently (XLA runs each group's programs on its own thread pool; the
  results do not depend on the order), longest first.
  """
  plans_size = int(data.train_labels.shape[0])
  spe_samples = (plans_size // config.batch_size) * config.batch_size
  runs: dict[tuple[int, float, int, str], dict[str, Any]] = {}
  timing: dict[str, Any] = {"groups": []}
  tasks = []
  for (model, epochs), lrs in _groups(config.settings).items():
    for reduction in config.reductions:
      members = [Member(lr, seed, reduction) for lr, _ in lrs for seed in config.seeds]
      stops = sorted({e for _, cell_epochs in lrs for e in cell_epochs})
      tasks.append((model, epochs, reduction, lrs, members, stops))
  tasks.sort(key=lambda t: -_STEP_COST[t[0]] * t[1] * len(t[4]))
  began = time.perf_counter()

  def train(task):
    model, epochs, reduction, lrs, members, stops = task
    if log:
      log(f"model {model}: {len(members)} runs × {epochs} epochs, reduction {reduction} "
          f"(learning rates {', '.join(f'{lr:g}' for lr, _ in lrs)}; seeds {list(config.seeds)})")
    start = time.perf_counter()
    curves = train_members(model, members, epochs, data, batch_size=config.batch_size,
                           eval_every=config.eval_every, eval_batch_size=config.eval_batch_size,
                           stops=stops, log=log)
    return {"model": model, "epochs": epochs, "reduction": reduction, "runs": len(members),
            "start_s": start - began, "end_s": time.perf_counter() - began}, members, curves

  workers = max(1, min(config.workers, len(tasks)))
  if workers == 1:
    done = [train(task) for task in tasks]
  else:
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
      done = list(pool.map(train, tasks))
  for record, members, curves in done:
    timing["groups"].append(record)
    for member, curve in zip(members, curves):
      runs[(record["model"], member.learning_rate, member.seed, member.reduction)] = curve
  cells = []
  for reduction in config.reductions:
    for s in config.settings:
      end = s.epochs * spe_samples
      seeds = []
      for seed in config.seeds:
        curve = runs[(s.model, s.learning_rate, seed, reduction)]
        keep = _at_or_before(curve["samples"], end) + 1
        cut = {key: curve[key][:keep] for key in
               ("samples", "train_accuracy", "test_accuracy", "test_loss", "train_loss")}
        within = lambda at: at if at is not None and at <= end else None  # noqa: E731
        seeds.append({"seed": seed, **cut, "diverged_at": within(curve["diverged_at"]),
                      "stopped_at": within(curve["stopped_at"]),
                      "blow_up": blow_up(cut["samples"], cut["train_loss"], cut["test_loss"],
                                         cut["test_accuracy"])})
      samples = seeds[0]["samples"]
      median = {key: _median_curve([sd[key] for sd in seeds])
                for key in ("train_accuracy", "test_accuracy")}
      finals = [sd["test_accuracy"][-1] for sd in seeds]
      failed = sum(sd["diverged_at"] is not None or sd["blow_up"] is not None for sd in seeds)
      fit = classify_fit(samples, median["train_accuracy"], median["test_accuracy"],
                         samples_per_epoch=spe_samples, diverged=failed * 2 > len(seeds),
                         rising=config.rising, gap=config.gap, drop=config.drop,
                         underfit_below=config.underfit_below)
      cells.append({
          "model": s.model, "setting": s.setting, "reduction": reduction,
          "epochs": s.epochs, "learning_rate": s.learning_rate, "reported": s.reported,
          "test_accuracy": float(statistics.median(finals)), "seeds": finals,
          "seed_numbers": list(config.seeds),
          "train_accuracy": float(statistics.median(sd["train_accuracy"][-1] for sd in seeds)),
          "reproduces": reproduces(s.reported, finals,
                                   range_margin=config.reproduce_range_margin,
                                   median_margin=config.reproduce_median_margin),
          "fit": fit,
          "curves": {"samples": samples, "median": median, "seeds": seeds}})
  model4 = [g for g in timing["groups"] if g["model"] == 4]
  # model 4's groups ran from the first one's start to the last one's end (concurrently
  # with each other and, on another worker, perhaps with MLP groups)
  timing["model4_wall_s"] = (max(g["end_s"] for g in model4) - min(g["start_s"] for g in model4)
                             if model4 else 0.0)
  timing["workers"] = workers
  timing["samples_per_epoch"] = spe_samples
  timing["test_size"] = int(data.test_labels.shape[0])
  return {"cells": cells, "timing": timing}


def _score(cells: Sequence[dict[str, Any]]) -> dict[str, Any]:
  misses = [100 * abs(c["test_accuracy"] - c["reported"]) for c in cells]
  return {"reproduced": sum(c["reproduces"] for c in cells), "cells": len(cells),
          "mean_abs_miss_points": float(np.mean(misses)),
          "max_abs_miss_points": float(np.max(misses)),
          "per_model": {m: sum(c["reproduces"] for c in cells if c["model"] == m)
                        for m in sorted({c["model"] for c in cells})}}


def better_reduction(scores: dict[str, dict[str, Any]]) -> str:
  """The reduction with more reproduced cells; ties: the smaller mean |miss|."""
  return min(scores, key=lambda r: (-scores[r]["reproduced"], scores[r]["mean_abs_miss_points"]))


def _pct(value: float) -> str:
  return f"{value:.4f}"


def _figure(workdir: pathlib.Path, cells: Sequence[dict[str, Any]], reduction: str,
            name: str) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, axes = plt.subplots(4, 3, figsize=(13, 14))
  for cell in cells:
    ax = axes[cell["model"] - 1][cell["setting"] - 1]
    curves = cell["curves"]
    x = np.asarray(curves["samples"]) / 1000
    for sd in curves["seeds"]:
      ax.plot(x, sd["test_accuracy"], color="tab:blue", alpha=0.25, lw=0.8)
      ax.plot(x, sd["train_accuracy"], color="tab:orange", alpha=0.25, lw=0.8, ls="--")
    ax.plot(x, curves["median"]["test_accuracy"], color="tab:blue", lw=1.6, label="test")
    ax.plot(x, curves["median"]["train_accuracy"], color="tab:orange", lw=1.6, ls="--",
            label="train (20%)")
    ax.axhline(cell["reported"], color="black", ls=":", lw=1.2, label="reported")
    mark = "✓" if cell["reproduces"] else "✗"
    ax.set_title(f"model {cell['model']}, setting {cell['setting']}: {cell['epochs']} ep, "
                 f"lr {cell['learning_rate']:g}\nours {cell['test_accuracy']:.4f} vs "
                 f"{cell['reported']:.4f} {mark} ({cell['fit']['label']})", fontsize=9)
    ax.set_xlabel("training samples (thousands)", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
  axes[0][0].legend(fontsize=7, loc="lower right")
  fig.suptitle(f"UCL COMPGI22 cw2: accuracy every 20,000 samples, loss reduction "
               f"\"{reduction}\" (thin: seeds, thick: median)", fontsize=11)
  fig.tight_layout(rect=(0, 0, 1, 0.98))
  fig.savefig(workdir / name, dpi=90)
  plt.close(fig)


def _fit_lists(cells: Sequence[dict[str, Any]]) -> dict[str, list[str]]:
  lists: dict[str, list[str]] = {}
  for c in cells:
    lists.setdefault(c["fit"]["label"], []).append(f"M{c['model']}S{c['setting']}")
  return lists


def summarize(cells: Sequence[dict[str, Any]], timing: dict[str, Any], config: UclConfig,
              *, profile: str, load: Sequence[float] | None) -> dict[str, Any]:
  """The report lines and verdicts (every number from ``cells`` and ``timing``)."""
  by = {r: [c for c in cells if c["reduction"] == r] for r in config.reductions}
  scores = {r: _score(cs) for r, cs in by.items()}
  best = better_reduction(scores)
  index = {(c["model"], c["setting"], c["reduction"]): c for c in cells}
  spe = timing["samples_per_epoch"]
  n_seeds = len(config.seeds)
  test_size = timing["test_size"]
  lines = [
      f"Models 1-4 × settings 1-3 of SPEC B, plain SGD (batch {config.batch_size}), Xavier-"
      f"uniform weights, zero biases, raw [0, 1] pixels, gradients from the hand-written VJPs "
      f"of `hw.ops`; {n_seeds} seed{'s' if n_seeds > 1 else ''} "
      f"({', '.join(map(str, config.seeds))}) per cell, loss reduction "
      f"{' and '.join(f'`{r}`' for r in config.reductions)}. Training on all {spe:,} MNIST "
      f"training images; every {config.eval_every:,} samples accuracy on a fixed "
      f"{100 * config.train_eval_fraction:.0f}% of them and on the {test_size:,} test images.",
      "",
      f"A cell reproduces when the reported number lies within the seeds' range widened by "
      f"{100 * config.reproduce_range_margin:.0f} points, or the median is within "
      f"{100 * config.reproduce_median_margin:.0f} points of it. Table: median final test "
      f"accuracy [min-max over seeds].",
      "",
      "| model | setting | epochs, lr | reported | "
      + " | ".join(f"ours, `{r}` | ✓" for r in config.reductions) + " |",
      "|---|---|---|---|" + "---|---|" * len(config.reductions),
  ]
  for s in config.settings:
    row = f"| {s.model} | {s.setting} | {s.epochs}, {s.learning_rate:g} | {_pct(s.reported)} |"
    for r in config.reductions:
      c = index[(s.model, s.setting, r)]
      spread = (f" [{_pct(min(c['seeds']))}-{_pct(max(c['seeds']))}]" if n_seeds > 1 else "")
      row += f" **{_pct(c['test_accuracy'])}**{spread} | {'✓' if c['reproduces'] else '✗'} |"
    lines.append(row)
  lines += [""]
  for r in config.reductions:
    sc = scores[r]
    per_model = ", ".join(f"model {m}: {k}/3" for m, k in sc["per_model"].items())
    lines.append(f"- `{r}`: **{sc['reproduced']} of {sc['cells']}** cells reproduce ({per_model}); "
                 f"the medians miss the reported numbers by {sc['mean_abs_miss_points']:.2f} "
                 f"points on average, {sc['max_abs_miss_points']:.2f} at most.")
  met = scores[best]["reproduced"] >= config.target_cells
  lines += ["", f"Better reduction: **`{best}`** ({scores[best]['reproduced']} of 12; target "
                f"≥ {config.target_cells}: {'met' if met else 'not met'})."]
  if len(config.reductions) > 1:
    per_model_best = {m: max(config.reductions, key=lambda r: scores[r]["per_model"][m])
                      for m in scores[best]["per_model"]}
    mixed = [m for m, r in per_model_best.items()
             if scores[r]["per_model"][m] > scores[best]["per_model"][m]]
    if mixed:
      mixed_total = sum(scores[r]["per_model"][m] for m, r in per_model_best.items())
      lines.append(
          "Per model the other reduction does better for "
          + ", ".join(f"model {m} (`{per_model_best[m]}`: {scores[per_model_best[m]]['per_model'][m]}/3 "
                      f"vs {scores[best]['per_model'][m]}/3)" for m in mixed)
          + ": the reported table is not consistent with one reduction throughout; with each "
          f"model's better reduction {mixed_total} of 12 cells reproduce.")
  else:
    lines.append(f"(This profile runs only `{best}`; {config.notes})" if config.notes else "")
  failing = [c for c in by[best] if not c["reproduces"]]
  if failing:
    lines += ["", f"Cells that do not reproduce with `{best}`, from their curves:"]
    for c in failing:
      other = next((index[(c["model"], c["setting"], r)] for r in config.reductions if r != best),
                   None)
      c["explanation"] = explain(c, other, spe)
      lines.append(f"- model {c['model']}, setting {c['setting']} (ours {_pct(c['test_accuracy'])} "
                   f"vs {_pct(c['reported'])}): {c['explanation']}")
  for c in cells:
    if not c["reproduces"] and "explanation" not in c:
      other = next((index[(c["model"], c["setting"], r)] for r in config.reductions
                    if r != c["reduction"]), None)
      c["explanation"] = explain(c, other, spe)
  lines += [
      "", "Under- and overfitting, decided on the median train (20% subset) and test accuracy "
      f"curves: **underfit** when the training accuracy gained ≥ {100 * config.rising:.1f} "
      f"points over the last epoch (still rising) or ended below "
      f"{100 * config.underfit_below:.0f}%; **overfit** when the final train − test gap is ≥ "
      f"{100 * config.gap:.0f} points, or the test accuracy ended ≥ {100 * config.drop:.1f} "
      "points below its best while the training accuracy did not fall; **diverged** when, in "
      "most seeds, the training loss became NaN or blew up (rose above its value at "
      "initialisation while the test accuracy ended below 20%).", ""]
  fits = {r: _fit_lists(by[r]) for r in config.reductions}
  for r in config.reductions:
    parts = [f"{label}: {', '.join(names)}" for label, names in sorted(fits[r].items())]
    lines.append(f"- `{r}`: " + "; ".join(parts) + ".")
  if not any(c["fit"]["overfit"] for c in by[best]):
    widest = max(by[best], key=lambda c: c["fit"]["final_gap"])
    lines.append(f"\nNo `{best}` run overfits by this rule: the widest final train − test gap is "
                 f"{100 * widest['fit']['final_gap']:.2f} points (M{widest['model']}"
                 f"S{widest['setting']}), and the test accuracy ends at most "
                 f"{100 * max(c['fit']['test_drop_from_best'] for c in by[best]):.2f} points below "
                 "its best.")
  lines += ["", "Per cell with the better reduction (gain over the last epoch, final gap):", "",
            "| cell | fit | train gain, last epoch | test gain, last epoch | train − test | "
            "test below best |", "|---|---|---|---|---|---|"]
  for c in by[best]:
    f = c["fit"]
    lines.append(f"| M{c['model']}S{c['setting']} | {f['label']} | "
                 f"{100 * f['train_gain_last_epoch']:+.2f} | {100 * f['test_gain_last_epoch']:+.2f} | "
                 f"{100 * f['final_gap']:+.2f} | {100 * f['test_drop_from_best']:.2f} |")
  m4_wall = timing["model4_wall_s"]
  m4_runs = sum(g["runs"] * g["epochs"] for g in timing["groups"] if g["model"] == 4)
  load_text = (f"; load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1/5/15 min) "
               f"at the end on {timing['cpu_count']} cores" if load else "")
  if m4_wall > 0:
    theirs = STUDENT_MODEL4_SECONDS / 35
    lines += [
        "", f"Time: model 4's runs ({m4_runs} run-epochs: its settings × "
        f"{len(config.reductions)} reduction(s) × {n_seeds} seed(s), settings 2 and 3 sharing "
        f"one run) took **{m4_wall:.0f} s** of wall time (first start to last end, "
        f"{timing['workers']} worker thread(s)); the whole table {timing['train_wall_s']:.0f} s "
        f"wall, {timing['train_cpu_s']:.0f} s CPU{load_text}. The student's loop-based numpy "
        f"code took about 10 hours for model 4: **{STUDENT_MODEL4_SECONDS / m4_wall:.0f}×** our "
        f"model-4 wall time; per epoch of one run {theirs:.0f} s (10 h / 35 epochs, if it was "
        f"one run per setting) vs {m4_wall / m4_runs:.1f} s here "
        f"(**{theirs / (m4_wall / m4_runs):.0f}×**)."]
  else:
    lines += ["", f"Time: {timing['train_wall_s']:.0f} s wall, {timing['train_cpu_s']:.0f} s CPU"
              f"{load_text}."]
  lines += ["", "SPEC B's derivations: ∂loss/∂z = softmax(z) − y is the backward rule of "
            "`hw.ops.softmax_cross_entropy` (checked by `hw verify` and `hw paper`), model 1's "
            "gradients are `hw.ops.linear`'s (dW = Xᵀ dZ, db = Σ dZ), and a conv layer's "
            "gradients w.r.t. its filter and its 4-D input are `hw.ops.conv2d`'s (module "
            "docstring of `hw/ops/convolution.py`); this study trains with exactly those."]
  headline = (f"{scores[best]['reproduced']}/12 cells (`{best}`)"
              + (", " + ", ".join(f"`{r}` {scores[r]['reproduced']}/12" for r in config.reductions
                                  if r != best) if len(config.reductions) > 1 else ""))
  return {"summary": lines, "meets_target": met, "headline": headline, "scores": scores,
          "better_reduction": best,
          "fit_lists": fits}


def load_data(data_dir: str | None, config: UclConfig) -> tuple[StudyData, str]:
  from hw import data as hw_data
  dataset = hw_data.load_dataset("mnist", data_dir=data_dir)
  return StudyData.from_arrays(dataset.train.images, dataset.train.labels, dataset.test.images,
                               dataset.test.labels, fraction=config.train_eval_fraction,
                               subset_seed=config.subset_seed), dataset.source


def run(workdir, *, profile: str, data_dir: str | None, config: UclConfig | None = None,
        data: StudyData | None = None) -> dict[str, Any]:
  """The study: train the table, write the figures, return the results dict."""
  import os
  config = config or UclConfig()
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  source = "given arrays"
  if data is None:
    data, source = load_data(data_dir, config)
  log = lambda text: print(f"[ucl] {text}", flush=True)  # noqa: E731
  wall, cpu = time.perf_counter(), time.process_time()
  table = run_table(config, data, log=log)
  cells, timing = table["cells"], table["timing"]
  timing["train_wall_s"] = time.perf_counter() - wall
  timing["train_cpu_s"] = time.process_time() - cpu
  try:
    load = os.getloadavg()
  except OSError:
    load = None
  timing["load_average_at_end"] = list(load) if load else None
  timing["cpu_count"] = os.cpu_count()
  summary = summarize(cells, timing, config, profile=profile, load=load)
  figures = []
  for reduction in config.reductions:
    name = f"ucl_curves_{reduction}.png"
    _figure(workdir, [c for c in cells if c["reduction"] == reduction], reduction, name)
    figures.append(name)
  return {
      "summary": summary["summary"], "figures": figures, "meets_target": summary["meets_target"],
      "headline": summary["headline"], "cells": cells, "scores": summary["scores"],
      "better_reduction": summary["better_reduction"], "fit_lists": summary["fit_lists"],
      "timing": timing,
      "config": {**{k: v for k, v in dataclasses.asdict(config).items() if k != "settings"},
                 "settings": [s._asdict() for s in config.settings]},
      "data": {"source": source, "train": int(data.train_labels.shape[0]),
               "train_subset": int(data.subset_labels.shape[0]),
               "test": int(data.test_labels.shape[0])},
  }
