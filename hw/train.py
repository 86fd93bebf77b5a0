"""Training, grid model selection and one test evaluation, with per-epoch checkpoints.

``train_and_evaluate(config, workdir)`` runs every point of ``config.grid`` on the
training split, selects the point with the best final validation accuracy, evaluates that
model once on the test split and writes ``<workdir>/<name>.json`` and ``<name>.png``.

Determinism and resumption: the initial parameters come from a key drawn by
``numpy.random.default_rng([seed, 0])``, epoch ``e``'s shuffling and dropout keys from
``default_rng([seed, e])``, so they are a pure function of (seed, epoch). Every completed epoch is checkpointed
(:mod:`hw.checkpoint`); rerunning an interrupted run resumes from the last complete
epoch and, on CPU, ends with exactly the numbers of an uninterrupted run.

Console output: a tqdm progress bar when stderr is a terminal (``HW_NO_PROGRESS=1`` turns
it off); otherwise one line per epoch (``HW_QUIET=1`` silences those).

Speed: all splits live on the device; for dense models an epoch is a few calls of a
jitted ``lax.scan`` over ``CHUNK_STEPS`` mini-batches (indexed by a permutation inside
the scan, state buffers donated), so Python runs once per chunk rather than once per
batch. For conv nets (``config.jit_per_batch`` None, the default, or True) a jitted step
is called per batch instead: XLA:CPU runs convolutions several times slower inside a
while loop. Measured with the hw models (2-core CPU, batch 100, ms per step, scan vs per
batch): BN net 16→32 3×3 210 vs 44, 32→64 3×3 615 vs 90; Q5.3 net (32 7×7) 18 vs 18;
MLP 784–1000–10 6.2 vs 7.4. Both paths give the same numbers up to float rounding.

Learning rate: ``lr_schedule="exponential"`` multiplies it by ``lr_decay`` after every
epoch; ``"cosine"`` decays it per step as ``lr·½(1 + cos(π t / T))`` to 0 at the last of
the ``T = epochs · steps`` steps (so the epoch count is part of that trajectory).

Augmentation ``augment="shift"``: every training image is translated by (dy, dx), each
uniform in {−2, …, 2} pixels, edge pixels filling the border; the offsets come from the
step's key (a pure function of (seed, epoch)), so resumption stays exact.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import json
import math
import os
import pathlib
import platform
import sys
import time
from typing import Any, Callable, Mapping, Sequence

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
import tqdm

from hw import checkpoint, models, ops
from hw.config import ExperimentConfig

CHUNK_STEPS = 100         # mini-batches per jitted scan call (progress-bar granularity)
TRAINING_CODE_VERSION = 1  # bump when a change alters the numbers, to invalidate checkpoints
# XLA's RngBitGenerator keys: on CPU they compile several times faster than threefry's
# unrolled hash (seconds per jitted function), and are equally deterministic.
PRNG_IMPL = "rbg"
LOSSES = ("softmax_cross_entropy", "logistic", "hinge")
OPTIMIZERS = ("sgd", "momentum", "nesterov", "rmsprop", "adam")
LR_SCHEDULES = ("exponential", "cosine")
AUGMENTATIONS = (None, "shift")
SHIFT_PIXELS = 2           # augment="shift": translations of up to ± this many pixels

EpochHook = Callable[[int, int, Mapping[str, Any]], None]


class TrainingDiverged(RuntimeError):
  """A non-finite loss; the message names the experiment, grid point and epoch."""


# ------------------------------------------------------------------------------- data


@dataclasses.dataclass(frozen=True)
class Split:
  images: np.ndarray  # float32 (N, ...) — images NHWC or features (N, D)
  labels: np.ndarray  # int32 (N,)


@dataclasses.dataclass(frozen=True)
class Splits:
  """Train / validation / test arrays of one experiment."""
  train: Split
  validation: Split
  test: Split
  num_classes: int
  source: str = "in-memory arrays"


def load_splits(config: ExperimentConfig, *, data_dir: str | os.PathLike | None = None,
                binary_data: str | os.PathLike | None = None) -> Splits:
  """The experiment's splits via :mod:`hw.data` (raises ``hw.data.DataError`` if missing).

  MNIST-like sets: the official test set, and ``validation_fraction`` of the official
  training set held out for model selection.
  ``"binary"``: ``hw.data.binary_task`` (500 / 250 / 250), labels in {0, 1}. Both use
  ``config.data_seed``, so ``config.seed`` changes the training only.
  """
  from hw import data  # imported lazily: training on given arrays needs no data module
  if config.dataset == "binary":
    train, validation, test = data.binary_task(binary_data, seed=config.data_seed)
    source = f"binary task ({binary_data or 'deterministic stand-in'})"
    return Splits(_split(train), _split(validation), _split(test), num_classes=2, source=source)
  dataset = data.load_dataset(config.dataset, data_dir=data_dir)
  train, validation = data.split_validation(
      dataset.train, fraction=config.validation_fraction, seed=config.data_seed)
  return Splits(_split(train), _split(validation), _split(dataset.test),
                num_classes=dataset.num_classes, source=dataset.source)


def _split(array_split: Any) -> Split:
  return Split(np.asarray(array_split.images, np.float32), np.asarray(array_split.labels, np.int32))


@dataclasses.dataclass(frozen=True)
class _DeviceSplit:
  images: jax.Array  # padded with zeros to a multiple of the evaluation batch
  labels: jax.Array
  size: int          # number of real examples


def _to_device(split: Split, normalize: tuple[float, float] | None, pad_to: int) -> _DeviceSplit:
  images = split.images.astype(np.float32)
  if normalize is not None:
    mean, std = normalize
    images = (images - mean) / std
  size = len(images)
  padded = -(-size // pad_to) * pad_to
  if padded != size:
    images = np.concatenate([images, np.zeros((padded - size,) + images.shape[1:], np.float32)])
    labels = np.concatenate([split.labels, np.zeros(padded - size, np.int32)])
  else:
    labels = split.labels
  return _DeviceSplit(jnp.asarray(images), jnp.asarray(labels, jnp.int32), size)


# ------------------------------------------------------------------------ grid & configs


def grid_points(config: ExperimentConfig) -> list[dict[str, Any]]:
  """Every combination of ``config.grid`` values, in order (one empty point without a grid)."""
  names = list(config.grid)
  for name in names:
    if not isinstance(config.grid[name], (list, tuple)) or not config.grid[name]:
      raise ValueError(f"grid[{name!r}] of {config.name!r} must be a non-empty list, "
                       f"got {config.grid[name]!r}")
  return [dict(zip(names, values)) for values in itertools.product(*config.grid.values())]


def point_config(config: ExperimentConfig, point: Mapping[str, Any]) -> ExperimentConfig:
  return config.replace(**point).replace(grid={})


def point_label(point: Mapping[str, Any]) -> str:
  return ", ".join(f"{k}={_plain(v)}" for k, v in point.items()) or "(single point)"


def _plain(value: Any) -> Any:
  """JSON-friendly (tuples become lists)."""
  return json.loads(json.dumps(value, default=str))


_NOT_IN_TRAINING = ("name", "title", "grid", "reported", "target", "notes", "epochs", "profile",
                    "eval_batch_size")


def fingerprint(config: ExperimentConfig, *, include_epochs: bool = False) -> str:
  """Hash of everything that determines the training trajectory.

  Epoch count is excluded by default, so a run extended from k to n epochs resumes; the
  whole-experiment fingerprint (``include_epochs=True``, plus grid) decides whether
  finished results are still current.
  """
  fields = config.to_dict()
  skip = set(_NOT_IN_TRAINING)
  if include_epochs:
    skip -= {"epochs", "grid", "name"}
  if config.lr_schedule == "cosine":
    skip.discard("epochs")  # the schedule's length shapes every step
  data = {k: v for k, v in fields.items() if k not in skip}
  data["_code_version"] = TRAINING_CODE_VERSION
  text = json.dumps(data, sort_keys=True, default=str)
  return hashlib.sha256(text.encode()).hexdigest()[:16]


# ------------------------------------------------------------------ losses & optimisers


def compute_loss(scores: jax.Array, labels: jax.Array, loss: str,
                 reduction: str = "mean") -> jax.Array:
  """The configured loss (a hand-written hw.ops loss) of scores (N, K) or (N,)."""
  if loss == "softmax_cross_entropy":
    return ops.softmax_cross_entropy(scores, labels, reduction=reduction)
  if loss == "logistic":
    return ops.logistic_loss(scores, labels, reduction=reduction)
  if loss == "hinge":
    return ops.hinge_loss(scores, labels, reduction=reduction)
  raise ValueError(f"unknown loss {loss!r}; expected one of {LOSSES}")


def correct_predictions(scores: jax.Array, labels: jax.Array) -> jax.Array:
  """1.0 where the prediction is right: argmax for (N, K) scores, sign for (N,) scores."""
  if scores.ndim == 1:
    return ((scores > 0) == (labels > 0)).astype(jnp.float32)
  return (jnp.argmax(scores, axis=-1) == labels).astype(jnp.float32)


def learning_rate_schedule(config: ExperimentConfig, steps_per_epoch: int) -> Any:
  """The learning rate as a constant or an optax schedule of the step count.

  "exponential": ``lr · lr_decay^⌊t / steps_per_epoch⌋``; "cosine": ``lr · ½(1 + cos(π t /
  T))`` with ``T = epochs · steps_per_epoch`` (0 from step T on).
  """
  if config.lr_schedule == "cosine":
    return optax.cosine_decay_schedule(config.learning_rate,
                                       decay_steps=config.epochs * steps_per_epoch)
  if config.lr_schedule != "exponential":
    raise ValueError(f"unknown lr_schedule {config.lr_schedule!r} in {config.name!r}; "
                     f"expected one of {LR_SCHEDULES}")
  if config.lr_decay == 1.0:
    return config.learning_rate
  return optax.exponential_decay(config.learning_rate, transition_steps=steps_per_epoch,
                                 decay_rate=config.lr_decay, staircase=True)


def epoch_learning_rate(config: ExperimentConfig, steps_per_epoch: int, epoch: int) -> float:
  """The learning rate at the first step of (1-based) ``epoch``."""
  schedule = learning_rate_schedule(config, steps_per_epoch)
  if callable(schedule):
    return float(schedule((epoch - 1) * steps_per_epoch))
  return float(schedule)


def make_optimizer(config: ExperimentConfig, steps_per_epoch: int) -> optax.GradientTransformation:
  """SGD / momentum / Nesterov / RMSProp / Adam with the learning rate of
  :func:`learning_rate_schedule`, and optional L2 weight decay (added to the gradient)."""
  learning_rate = learning_rate_schedule(config, steps_per_epoch)
  name = config.optimizer
  if name == "sgd":
    tx = optax.sgd(learning_rate)
  elif name in ("momentum", "nesterov"):
    tx = optax.sgd(learning_rate, momentum=config.momentum, nesterov=name == "nesterov")
  elif name == "rmsprop":
    tx = optax.rmsprop(learning_rate, decay=config.rmsprop_decay, eps=1e-8)
  elif name == "adam":
    tx = optax.adam(learning_rate)
  else:
    raise ValueError(f"unknown optimizer {name!r}; expected one of {OPTIMIZERS}")
  if config.weight_decay:
    tx = optax.chain(optax.add_decayed_weights(config.weight_decay), tx)
  return tx


# ------------------------------------------------------------------------- augmentation


def random_shift(images: jax.Array, *, key: jax.Array, pixels: int = SHIFT_PIXELS) -> jax.Array:
  """Translate each NHWC image by its own (dy, dx), uniform in {−pixels, …, pixels}².

  ``out[n, i, j] = P[n, i + pixels + dy_n, j + pixels + dx_n]`` where ``P`` is the image
  padded by ``pixels`` with its edge values (the background, for MNIST).
  """
  if images.ndim != 4:
    raise ValueError(f"augment='shift' needs NHWC images of rank 4, got shape {images.shape}")
  n, h, w, c = images.shape
  offsets = jax.random.randint(key, (n, 2), 0, 2 * pixels + 1)
  padded = jnp.pad(images, ((0, 0), (pixels, pixels), (pixels, pixels), (0, 0)), mode="edge")
  crop = lambda image, offset: jax.lax.dynamic_slice(image, (offset[0], offset[1], 0), (h, w, c))
  return jax.vmap(crop)(padded, offsets)


# ------------------------------------------------------------------------- jitted steps


def _make_train_chunk(model, tx, loss: str, augment: str | None = None):
  """(jit(state, images, labels, batch_index (S, B), key data (S, ...)) -> (state, losses,
  correct) scanning S steps, jit(state, images, labels, index (B,), key data) -> one step)."""

  def step(images, labels, state, inputs):
    index, key_data = inputs
    key = jax.random.wrap_key_data(key_data, impl=PRNG_IMPL)
    x = jnp.take(images, index, axis=0)
    y = jnp.take(labels, index, axis=0)
    if augment == "shift":
      x = random_shift(x, key=jax.random.fold_in(key, 1))

    def loss_fn(params):
      variables = {"params": params, "batch_stats": state["batch_stats"]}
      scores, updates = model.apply(variables, x, train=True, rngs={"dropout": key},
                                    mutable=["batch_stats"])
      return compute_loss(scores, y, loss), (scores, updates)

    (value, (scores, updates)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
    changes, opt_state = tx.update(grads, state["opt_state"], state["params"])
    new_state = {
        "params": optax.apply_updates(state["params"], changes),
        "batch_stats": updates.get("batch_stats", state["batch_stats"]),
        "opt_state": opt_state,
    }
    return new_state, (value, jnp.sum(correct_predictions(scores, y)))

  @functools.partial(jax.jit, donate_argnums=(0,))
  def train_chunk(state, images, labels, batch_index, keys):
    state, (losses, correct) = jax.lax.scan(
        functools.partial(step, images, labels), state, (batch_index, keys))
    return state, losses, correct

  @functools.partial(jax.jit, donate_argnums=(0,))
  def train_step(state, images, labels, index, key):
    state, (loss, correct) = step(images, labels, state, (index, key))
    return state, loss, correct

  return train_chunk, train_step


def _make_evaluate(model, loss: str, eval_batch: int):
  """jit(variables, images, labels, size) -> (mean loss, accuracy) over the first ``size``."""

  @jax.jit
  def evaluate(variables, images, labels, size):
    chunks = images.shape[0] // eval_batch
    xs = images.reshape((chunks, eval_batch) + images.shape[1:])
    ys = labels.reshape((chunks, eval_batch))
    valid = (jnp.arange(chunks * eval_batch) < size).reshape((chunks, eval_batch))

    def one(inputs):
      x, y, mask = inputs
      scores = model.apply(variables, x, train=False)
      per_example = compute_loss(scores, y, loss, reduction="none")
      return (jnp.sum(jnp.where(mask, per_example, 0.0)),
              jnp.sum(jnp.where(mask, correct_predictions(scores, y), 0.0)))

    loss_sums, correct = jax.lax.map(one, (xs, ys, valid))
    return jnp.sum(loss_sums) / size, jnp.sum(correct) / size

  return evaluate


@functools.cache
def _key_shape() -> tuple[int, ...]:
  return jax.eval_shape(lambda: jax.random.key_data(jax.random.key(0, impl=PRNG_IMPL))).shape


def _key_data(rng: np.random.Generator, count: int | None = None) -> np.ndarray:
  shape = _key_shape()
  return rng.integers(0, 2**32, size=shape if count is None else (count,) + shape, dtype=np.uint32)


def init_key(seed: int) -> jax.Array:
  """The parameter-initialisation key: a pure function of the seed."""
  return jax.random.wrap_key_data(_key_data(np.random.default_rng([seed, 0])), impl=PRNG_IMPL)


def epoch_plan(seed: int, epoch: int, size: int, steps: int,
               batch: int) -> tuple[np.ndarray, np.ndarray]:
  """Epoch ``epoch``'s (1-based) mini-batch indices (steps, batch) and per-step dropout key
  data (steps, ...): a pure function of (seed, epoch), drawn on the host from
  ``numpy.random.default_rng([seed, epoch])`` (no XLA compilation). The last
  ``size - steps * batch`` examples of the shuffled order are left out of the epoch."""
  rng = np.random.default_rng([seed, epoch])
  order = rng.permutation(size)[:steps * batch].astype(np.int32).reshape(steps, batch)
  return order, _key_data(rng, steps)


def _progress_enabled() -> bool:
  if os.environ.get("HW_NO_PROGRESS", "") not in ("", "0"):
    return False
  return sys.stderr.isatty()


_COMPILED: dict[tuple[Any, ...], tuple[Any, ...]] = {}


def _compiled(model, config: ExperimentConfig, steps: int) -> tuple[Any, ...]:
  """(init, train_chunk, evaluate, optimizer) jitted functions, reused across runs of the
  same model and training settings in one process (grid reruns, tests) to save compiles."""
  cache_key = (model, config.loss, config.optimizer, config.learning_rate, config.lr_decay,
               config.lr_schedule, config.epochs if config.lr_schedule == "cosine" else None,
               config.augment, config.momentum, config.weight_decay, config.rmsprop_decay,
               config.eval_batch_size, steps)
  if cache_key not in _COMPILED:
    if len(_COMPILED) >= 8:
      _COMPILED.clear()
    tx = make_optimizer(config, steps)
    _COMPILED[cache_key] = (jax.jit(functools.partial(model.init, train=False)),
                            _make_train_chunk(model, tx, config.loss, config.augment),
                            _make_evaluate(model, config.loss, config.eval_batch_size), tx)
  return _COMPILED[cache_key]


def uses_per_batch_steps(config: ExperimentConfig, model: Any) -> bool:
  """Whether training calls a jitted step per batch (True) or scans chunks of batches:
  ``config.jit_per_batch`` if set, else True exactly for conv nets (see the module doc)."""
  if config.jit_per_batch is None:
    return isinstance(model, models.ConvNet)
  return bool(config.jit_per_batch)


# ------------------------------------------------------------------- one grid point


def train_point(config: ExperimentConfig, train: _DeviceSplit, validation: _DeviceSplit,
                num_classes: int, directory: pathlib.Path, *, index: int = 0,
                label: str = "", on_epoch_end: EpochHook | None = None) -> dict[str, Any]:
  """Train one configuration for ``config.epochs`` epochs, resuming from its checkpoint.

  Returns a dict with the final ``state`` (params, batch_stats, opt_state), ``history``
  (one dict per epoch) and ``model``.

  Raises:
    TrainingDiverged: on a non-finite training or validation loss; the checkpoint of the
      last good epoch is left in place.
  """
  if config.epochs < 1:
    raise ValueError(f"epochs must be >= 1 in {config.name!r}, got {config.epochs}")
  if config.augment not in AUGMENTATIONS:
    raise NotImplementedError(f"config.augment={config.augment!r} of {config.name!r}: only "
                              f"{AUGMENTATIONS} are implemented (CIFAR's is the CIFAR-10 issue)")
  if config.loss not in LOSSES:
    raise ValueError(f"unknown loss {config.loss!r} in {config.name!r}; expected one of {LOSSES}")
  num_outputs = 1 if config.loss in ("logistic", "hinge") else num_classes
  model = models.create_model(config.model, num_outputs=num_outputs,
                              weight_scale=config.weight_scale, **config.model_kwargs)
  steps = train.size // config.batch_size
  if steps < 1:
    raise ValueError(f"batch_size {config.batch_size} exceeds the {train.size} training examples "
                     f"of {config.name!r}")
  init, (train_chunk, train_step), evaluate, tx = _compiled(model, config, steps)
  per_step = uses_per_batch_steps(config, model)
  key = init_key(config.seed)
  variables = init({"params": key, "dropout": key}, train.images[:config.batch_size])
  state = {"params": variables["params"], "batch_stats": variables.get("batch_stats", {}),
           "opt_state": tx.init(variables["params"])}
  print_name = f"{config.name} [{index}] {label}"
  point_fingerprint = fingerprint(config)
  history: list[dict[str, Any]] = []
  start_epoch = 1
  restored = checkpoint.load(directory, target=jax.device_get(state), fingerprint=point_fingerprint)
  if restored is not None:
    saved_state, saved_epoch, saved_history = restored
    if saved_epoch <= config.epochs:
      state = jax.tree_util.tree_map(jnp.asarray, saved_state)
      history, start_epoch = saved_history, saved_epoch + 1
      if saved_epoch:
        print(f"[train] {print_name}: resuming after epoch {saved_epoch} from {directory}")
    else:
      print(f"[train] {print_name}: checkpoint has {saved_epoch} > {config.epochs} epochs; "
            f"starting afresh")

  bar = tqdm.tqdm(total=(config.epochs - start_epoch + 1) * steps, desc=print_name[:60],
                  unit="batch", disable=not _progress_enabled(), leave=False)
  try:
    for epoch in range(start_epoch, config.epochs + 1):
      began = time.perf_counter()
      batch_index, step_keys = epoch_plan(config.seed, epoch, train.size, steps, config.batch_size)
      loss_sum, correct_sum = 0.0, 0.0
      if per_step:
        losses, corrects = [], []
        for i in range(steps):
          state, loss, correct = train_step(state, train.images, train.labels,
                                            batch_index[i], step_keys[i])
          losses.append(loss)
          corrects.append(correct)
          bar.update(1)
        loss_sum = float(np.sum(np.asarray(jnp.stack(losses), np.float64)))
        correct_sum = float(np.sum(np.asarray(jnp.stack(corrects), np.float64)))
      for start in range(0, 0 if per_step else steps, CHUNK_STEPS):
        stop = min(start + CHUNK_STEPS, steps)
        state, losses, correct = train_chunk(state, train.images, train.labels,
                                             batch_index[start:stop], step_keys[start:stop])
        loss_sum += float(np.sum(np.asarray(losses, np.float64)))
        correct_sum += float(np.sum(np.asarray(correct, np.float64)))
        bar.update(stop - start)
      val_loss, val_accuracy = (float(v) for v in evaluate(
          {"params": state["params"], "batch_stats": state["batch_stats"]},
          validation.images, validation.labels, validation.size))
      record = {
          "epoch": epoch,
          "learning_rate": epoch_learning_rate(config, steps, epoch),
          "train_loss": loss_sum / steps,
          "train_accuracy": correct_sum / (steps * config.batch_size),
          "val_loss": val_loss,
          "val_accuracy": val_accuracy,
          "seconds": time.perf_counter() - began,
      }
      if not (math.isfinite(record["train_loss"]) and math.isfinite(val_loss)):
        kept = (f"the last good checkpoint (epoch {epoch - 1}) is kept in {directory}"
                if epoch > 1 else "no epoch completed, so there is no checkpoint")
        raise TrainingDiverged(
            f"experiment {config.name!r}, grid point {index} ({label}): the loss became "
            f"non-finite in epoch {epoch} (train loss {record['train_loss']}, validation loss "
            f"{val_loss}) at learning rate {record['learning_rate']:g}; {kept}. Lower the "
            f"learning rate or the weight scale.")
      history.append(record)
      checkpoint.save(directory, state=state, epoch=epoch, history=history,
                      fingerprint=point_fingerprint)
      bar.set_postfix(loss=f"{record['train_loss']:.4f}", val=f"{val_accuracy:.4f}")
      if bar.disable and os.environ.get("HW_QUIET", "") in ("", "0"):
        print(f"[train] {print_name} epoch {epoch}/{config.epochs}: "
              f"loss {record['train_loss']:.4f} train acc {record['train_accuracy']:.4f} "
              f"val acc {val_accuracy:.4f} ({record['seconds']:.1f} s)", flush=True)
      if on_epoch_end is not None:
        on_epoch_end(index, epoch, record)
  finally:
    bar.close()
  return {"state": state, "history": history, "model": model, "evaluate": evaluate}


# ------------------------------------------------------------------- the whole experiment


def _select(points: Sequence[dict[str, Any]]) -> int:
  """Index of the best final validation accuracy (ties: lower validation loss, then first)."""
  return min(range(len(points)), key=lambda i: (-points[i]["val_accuracy"], points[i]["val_loss"], i))


def train_and_evaluate(config: ExperimentConfig, workdir: str | os.PathLike, *,
                       splits: Splits | None = None, data_dir: str | os.PathLike | None = None,
                       binary_data: str | os.PathLike | None = None,
                       on_epoch_end: EpochHook | None = None,
                       plot: bool = True) -> dict[str, Any]:
  """Run the grid, select on validation, evaluate the selected model once on test.

  Args:
    config: the experiment; ``config.grid`` maps a field (or ``model.<kwarg>``) to values.
    workdir: results go to ``workdir/<name>.json`` and ``<name>.png``; checkpoints to
      ``workdir/checkpoints/<name>/<point>-<fingerprint>/``.
    splits: arrays to use instead of loading ``config.dataset`` (tests, notebooks).
    data_dir, binary_data: passed to :func:`load_splits`.
    on_epoch_end: called as ``hook(point_index, epoch, record)`` after each epoch's
      checkpoint is written (raise from it to simulate an interruption).
    plot: write the learning-curve PNG.

  Returns:
    The results dict that is written as JSON (schema in :func:`_results`).
  """
  began = time.perf_counter()
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  if splits is None:
    splits = load_splits(config, data_dir=data_dir, binary_data=binary_data)
  pad = config.eval_batch_size
  train = _to_device(splits.train, config.normalize, 1)
  validation = _to_device(splits.validation, config.normalize, pad)
  test = _to_device(splits.test, config.normalize, pad)

  points = grid_points(config)
  grid_results, runs = [], {}
  for index, point in enumerate(points):
    run_config = point_config(config, point)
    directory = workdir / "checkpoints" / config.name / f"{index:02d}-{fingerprint(run_config)}"
    run = train_point(run_config, train, validation, splits.num_classes, directory, index=index,
                      label=point_label(point), on_epoch_end=on_epoch_end)
    final = run["history"][-1] if run["history"] else {}
    grid_results.append({
        "index": index, "params": _plain(point), "label": point_label(point),
        "epochs": len(run["history"]),
        "val_accuracy": final.get("val_accuracy", float("nan")),
        "val_loss": final.get("val_loss", float("nan")),
        "train_accuracy": final.get("train_accuracy", float("nan")),
        "train_loss": final.get("train_loss", float("nan")),
        "train_seconds": sum(r["seconds"] for r in run["history"]),
        "history": run["history"], "checkpoint": str(directory),
    })
    runs[index] = run
    best_so_far = _select(grid_results)
    runs = {best_so_far: runs[best_so_far]}  # keep only the current best model in memory

  best = _select(grid_results)
  run = runs[best]
  variables = {"params": run["state"]["params"], "batch_stats": run["state"]["batch_stats"]}
  test_loss, test_accuracy = (float(v) for v in run["evaluate"](variables, test.images,
                                                                 test.labels, test.size))
  results = _results(config, splits, grid_results, best, test_loss, test_accuracy,
                     wall=time.perf_counter() - began)
  path = workdir / f"{config.name}.json"
  tmp = path.with_suffix(".json.tmp")
  tmp.write_text(json.dumps(results, indent=1))
  os.replace(tmp, path)
  if plot:
    from hw import report
    report.plot_learning_curves(results, workdir / f"{config.name}.png")
  return results


def _results(config: ExperimentConfig, splits: Splits, grid: list[dict[str, Any]], best: int,
             test_loss: float, test_accuracy: float, *, wall: float) -> dict[str, Any]:
  """The results JSON.

  Schema: name, title, status ("complete"), config (ExperimentConfig as a dict),
  fingerprint, data {source, num_classes, train, validation, test (sizes)}, grid (one
  entry per point: index, params, label, epochs, final val/train accuracy and loss,
  train_seconds, history [per-epoch: epoch, learning_rate, train_loss, train_accuracy,
  val_loss, val_accuracy, seconds], checkpoint), selected {index, params, label,
  val_accuracy}, test_accuracy, test_loss, target, reported, meets_target,
  train_seconds (sum over all points and epochs, across resumptions), wall_time_s (this
  call), seconds_per_epoch (median over all epochs), platform.
  """
  seconds = [r["seconds"] for point in grid for r in point["history"]]
  selected = grid[best]
  return {
      "name": config.name, "title": config.title, "status": "complete",
      "config": _plain(config.to_dict()),
      "fingerprint": fingerprint(config, include_epochs=True),
      "data": {"source": splits.source, "num_classes": splits.num_classes,
               "train": len(splits.train.labels), "validation": len(splits.validation.labels),
               "test": len(splits.test.labels)},
      "grid": grid,
      "selected": {"index": best, "params": selected["params"], "label": selected["label"],
                   "val_accuracy": selected["val_accuracy"]},
      "test_accuracy": test_accuracy, "test_loss": test_loss,
      "target": config.target, "reported": list(config.reported),
      "meets_target": None if config.target is None else bool(test_accuracy >= config.target),
      "train_seconds": sum(seconds),
      "wall_time_s": wall,
      "seconds_per_epoch": float(np.median(seconds)) if seconds else None,
      "platform": {"backend": jax.default_backend(), "device": str(jax.devices()[0]),
                   "jax": jax.__version__, "flax": flax.__version__, "optax": optax.__version__,
                   "python": platform.python_version(), "machine": platform.machine(),
                   "cpus": os.cpu_count()},
  }


def main(argv: Sequence[str] | None = None) -> int:
  """``python -m hw.train q5.3 [--profile quick] [--workdir results] [--data-dir DIR]``."""
  import argparse

  from experiments import registry
  parser = argparse.ArgumentParser(prog="python -m hw.train",
                                   description="Train one experiment (see hw reproduce).")
  parser.add_argument("experiment", help="e.g. q5.3")
  parser.add_argument("--profile", choices=registry.PROFILES, default="quick")
  parser.add_argument("--workdir", default="results")
  parser.add_argument("--data-dir", default=None)
  parser.add_argument("--binary-data", default=None)
  args = parser.parse_args(argv)
  config = registry.get_config(args.experiment, args.profile)
  results = train_and_evaluate(config, args.workdir, data_dir=args.data_dir,
                               binary_data=args.binary_data)
  print(f"{config.name}: test accuracy {results['test_accuracy']:.4f} "
        f"(selected {results['selected']['label']})")
  return 0 if results["meets_target"] in (None, True) else 1


if __name__ == "__main__":
  sys.exit(main())
