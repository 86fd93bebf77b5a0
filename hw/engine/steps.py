"""The compiled programs of training: the train step, a scan over chunks of steps and the
evaluation, jitted together by :func:`compile_programs` into one :class:`Programs` that the
caller passes on (to :func:`hw.engine.loop.train`, ``init_state``, ``evaluate``).

The programs depend only on their :class:`ProgramKey` (:func:`hw.engine.config.compile_key` of
the config, the classes, the steps per epoch, the backend and the devices; the learning rate is
a traced optimiser hyper-parameter), so epochs and grid points of the same shape reuse them: a
:class:`ProgramCache` (one per experiment, no global one) hands out the programs of a key. Stepping: an epoch is either scanned chunks of mini-batches or one jitted call per
mini-batch; :func:`per_batch_stepping` picks per backend and model (XLA:CPU runs
convolutions several times slower inside a while loop, see ``docs/results/bench.md``).
Both compute the same steps up to float rounding. On the CPU a conv net without batch norm,
stepped per batch, computes each step as two executions side by side, one per half of the
batch (:func:`side_by_side`, :func:`hw.backends.batch_halves`), and one update of the sum of
their gradients: the same loss and gradient, rounded in another order.

Data parallel: with ``config.devices`` > 1 (None: every local device) the same programs are
jitted over a one-axis :class:`jax.sharding.Mesh` (axis ``"batch"``): parameters, optimiser
state and the data arrays replicated, each mini-batch's indices (and so its images) split
along the batch axis. The step still computes over the global batch, so the loss, the
gradients and the batch-norm statistics are those of the whole batch (XLA inserts the
all-reduces); only the order of the float sums differs from one device. With one device no
mesh is made and the programs are exactly the single-device ones.

Several processes: the mesh holds ``config.devices`` devices of every process; the replicated
arrays are global arrays made from each process's identical copy, and :meth:`Programs.feed`
builds each step's global index array from this process's share of it, so each process's
devices gather only their part of the batch. All of that is :class:`hw.engine.runtime.Runtime`'s
job; with one process :meth:`Programs.feed` and :meth:`Programs.place` place arrays as plain
single-process JAX does.
"""
from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import functools
from typing import Any, Callable, NamedTuple

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from hw import backends, metrics
from hw.engine import augmentations, objectives, randomness, update_rules
from hw.engine.config import ExperimentConfig, compile_key
from hw.engine.runtime import Runtime
from hw.nn import models

CHUNK_STEPS = 100  # mini-batches per jitted scan call
BATCH_AXIS = "batch"  # the mesh axis the mini-batches are split along


@flax.struct.dataclass
class TrainState:
  params: Any
  batch_stats: Any
  opt_state: Any

  def variables(self) -> dict[str, Any]:
    return {"params": self.params, "batch_stats": self.batch_stats}


def is_conv_net(model: Any) -> bool:
  return isinstance(model, (models.ConvNet, models.VGG))


def per_batch_stepping(config: ExperimentConfig, model: Any, backend: str) -> bool:
  """One jitted call per batch (True) or scanned chunks: ``config.jit_per_batch`` if set;
  else the backend's choice for conv nets (:mod:`hw.backends`: per batch on the
  CPU, scans on GPU/TPU); other models scan."""
  return backends.per_batch_stepping(config.jit_per_batch, is_conv_net(model), backend)


def steps_in_halves(config: ExperimentConfig, model: Any, mesh_devices: int = 1) -> bool:
  """Whether ``config``'s per-batch training step computes ``model``'s two half-batch
  gradients side by side on this backend (:func:`hw.backends.batch_halves`: conv nets
  without batch norm stepped per batch, one device)."""
  return backends.batch_halves(
      is_conv_net=is_conv_net(model), batch_norm=bool(getattr(model, "batch_norm", False)),
      per_batch=per_batch_stepping(config, model, backends.name()),
      batch_size=config.batch_size, mesh_devices=mesh_devices)


def side_by_side(program: Callable, first: tuple, second: tuple) -> tuple[Any, Any]:
  """``(program(*first), program(*second))``, the two calls running at the same time: the
  first on a worker thread (which waits for its result), the second on the caller's.
  XLA:CPU runs two executions side by side on two cores better than two independent
  chains inside one program (:mod:`hw.backends`, "batch halves")."""
  pending = _worker().submit(lambda: jax.block_until_ready(program(*first)))
  try:
    second_result = program(*second)
  finally:
    first_result = pending.result()
  return first_result, second_result


@functools.cache
def _worker() -> concurrent.futures.ThreadPoolExecutor:
  return concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="hw-halves")


def device_count(config: ExperimentConfig) -> int:
  """How many devices ``config`` trains on: ``config.devices`` local devices (None: all of
  them) in each process, times the number of processes (:class:`hw.engine.runtime.Runtime`).

  Raises:
    ValueError: more devices than there are, or a batch that does not split evenly.
  """
  available = jax.local_device_count()
  local = available if config.devices is None else config.devices
  if local > available:
    raise ValueError(f"devices={local} in {config.name!r}, but this process has only "
                     f"{available} local {jax.default_backend()} device(s)")
  processes = Runtime.current().process_count
  count = local * processes
  over = f"{count} devices" if processes == 1 else f"{count} devices ({processes} processes)"
  for field in ("batch_size", "eval_batch_size"):
    if field == "eval_batch_size" and count == 1:
      break
    size = getattr(config, field)
    if size % count:
      divisor = (f"devices to a divisor of {size}" if processes == 1 else
                 f"devices (per process) to a divisor of {size // processes}")
      raise ValueError(f"{field} {size} of {config.name!r} does not divide evenly over "
                       f"{over} (data parallel splits every batch into equal "
                       f"shares); choose a {field} that is a multiple of {count} or set "
                       f"{divisor}")
  return count


def make_mesh(config: ExperimentConfig) -> Mesh | None:
  """The one-axis device mesh ``config`` trains on; None for a single device. With several
  processes: the first ``config.devices`` local devices of every process, process by process."""
  count = device_count(config)
  if count == 1:
    return None
  runtime = Runtime.current()
  backends.check_data_parallel(count // runtime.process_count, repr(config.name))
  return Mesh(np.asarray(runtime.mesh_devices(count // runtime.process_count)), (BATCH_AXIS,))


class ProgramKey(NamedTuple):
  """What a set of programs is compiled for; programs of equal keys are interchangeable."""
  compile_key: str          # hw.engine.config.compile_key of the config
  jit_per_batch: bool | None
  num_classes: int
  steps_per_epoch: int      # the optimiser's schedule counts steps
  backend: str
  device_count: int

  @classmethod
  def of(cls, config: ExperimentConfig, num_classes: int, steps_per_epoch: int) -> "ProgramKey":
    return cls(compile_key(config), config.jit_per_batch, num_classes, steps_per_epoch,
               jax.default_backend(), device_count(config))


@dataclasses.dataclass
class Programs:
  """The jitted functions of one :class:`ProgramKey`, and how often each was traced."""
  key: ProgramKey
  model: Any
  init: Callable
  step: Callable      # (state, images, labels, index (B,), key data) -> (state, loss, correct);
                      # jitted, or in halves two jitted calls side by side and a jitted update
  chunk: Callable     # the same over (S, B) indices, scanned
  evaluate: Callable  # (variables, images, labels, size) -> (mean loss, accuracy, top-k errors)
  per_batch: bool
  traces: collections.Counter = dataclasses.field(default_factory=collections.Counter)
  mesh: Mesh | None = None  # the data-parallel mesh; None on one device
  runtime: Runtime = dataclasses.field(default_factory=Runtime.current)

  @property
  def device_count(self) -> int:
    return 1 if self.mesh is None else self.mesh.size

  @property
  def replicated(self) -> NamedSharding | None:
    return None if self.mesh is None else NamedSharding(self.mesh, PartitionSpec())

  def place(self, tree: Any) -> Any:
    """``tree`` replicated over the mesh (unchanged on one device; see
    :meth:`hw.engine.runtime.Runtime.replicate`)."""
    if self.mesh is None:
      return tree
    return self.runtime.replicate(self.replicated, tree)

  def feed(self, index: np.ndarray, keys: np.ndarray) -> tuple[Any, Any]:
    """A step's (or chunk's) batch indices (their last axis is the batch) and keys as the
    programs take them (:meth:`hw.engine.runtime.Runtime.step_inputs`)."""
    if self.mesh is None:
      return index, keys
    along = NamedSharding(self.mesh, PartitionSpec(*([None] * (index.ndim - 1) + [BATCH_AXIS])))
    return self.runtime.step_inputs(along, self.replicated, index, keys)


def compile_programs(config: ExperimentConfig, num_classes: int, steps: int) -> Programs:
  """The programs that train ``config`` on ``num_classes`` classes, ``steps`` mini-batches per
  epoch (jitted lazily: each compiles at its first call)."""
  loss = objectives.LOSSES[config.loss]
  model = models.create_model(config.model, num_outputs=loss.num_outputs(num_classes),
                              weight_scale=config.weight_scale, **config.model_kwargs)
  tx = update_rules.make_optimizer(config, steps)
  augment = augmentations.AUGMENTATIONS[config.augment] if config.augment else None
  traces: collections.Counter = collections.Counter()
  mesh = make_mesh(config)
  halves = steps_in_halves(config, model, 1 if mesh is None else mesh.size)
  if mesh is None:
    split_batch = lambda x, axis=0: x
  else:
    replicated = NamedSharding(mesh, PartitionSpec())
    along = lambda axis: NamedSharding(mesh, PartitionSpec(*([None] * axis + [BATCH_AXIS])))

    def jit(fn, *, donate_argnums=(), batch_args=()):
      shardings = tuple(along(axis) if axis is not None else replicated for axis in batch_args)
      return jax.jit(fn, donate_argnums=donate_argnums, in_shardings=shardings,
                     out_shardings=replicated)

    def split_batch(x, axis=0):
      return jax.lax.with_sharding_constraint(x, along(axis))

  def batch(images, labels, index, key):
    """The mini-batch ``index`` of (images, labels), its images augmented from ``key``."""
    x, y = jnp.take(images, index, axis=0), jnp.take(labels, index, axis=0)
    x, y = split_batch(x), split_batch(y)
    if augment is not None:
      x = augment(x, key=jax.random.fold_in(key, 1))
    return x, y

  def step(images, labels, state, inputs):
    index, key_data = inputs
    key = randomness.wrap(key_data)
    x, y = batch(images, labels, index, key)

    def loss_fn(params):
      variables = {"params": params, "batch_stats": state.batch_stats}
      scores, updates = model.apply(variables, x, train=True, rngs={"dropout": key},
                                    mutable=["batch_stats"])
      return loss.fn(scores, y, reduction="mean"), (scores, updates)

    (value, (scores, updates)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    new_state = updated(state, grads, updates.get("batch_stats", state.batch_stats))
    return new_state, (value, jnp.sum(metrics.correct_predictions(scores, y)))

  def updated(state, grads, batch_stats):
    changes, opt_state = tx.update(grads, state.opt_state, state.params)
    return TrainState(params=optax.apply_updates(state.params, changes),
                      batch_stats=batch_stats, opt_state=opt_state)

  def half_gradients(params, batch_stats, images, labels, index, key_data, part):
    """One half of a step in halves: the gradient of the half's share of the batch's mean
    loss (its loss sum / the batch size), that share and the half's correct predictions.
    ``part`` (0, 1) picks the half's key, ``jax.random.split(key)[part]``, for its
    augmentation and dropout masks; no batch norm, so no batch statistics to update."""
    traces["half"] += 1
    key = jax.random.split(randomness.wrap(key_data))[part]
    x, y = batch(images, labels, index, key)

    def share_fn(params):
      scores = model.apply({"params": params, "batch_stats": batch_stats}, x, train=True,
                           rngs={"dropout": key})
      return loss.fn(scores, y, reduction="sum") / config.batch_size, scores

    (share, scores), grads = jax.value_and_grad(share_fn, has_aux=True)(params)
    return grads, share, jnp.sum(metrics.correct_predictions(scores, y))

  def finish_halves(state, first, second):
    """The update from the two halves' :func:`half_gradients`: their sum is the batch's."""
    traces["step"] += 1
    (first_grads, first_share, first_correct), (second_grads, second_share, second_correct) = (
        first, second)
    grads = jax.tree_util.tree_map(jnp.add, first_grads, second_grads)
    return (updated(state, grads, state.batch_stats), first_share + second_share,
            first_correct + second_correct)

  def chunk(state, images, labels, batch_index, keys):
    traces["chunk"] += 1
    state, (losses, correct) = jax.lax.scan(functools.partial(step, images, labels), state,
                                            (batch_index, keys))
    return state, losses, correct

  def single_step(state, images, labels, index, key):
    traces["step"] += 1
    state, (value, correct) = step(images, labels, state, (index, key))
    return state, value, correct

  def evaluate(variables, images, labels, size):
    traces["evaluate"] += 1
    batch = config.eval_batch_size
    chunks = images.shape[0] // batch
    xs = split_batch(images.reshape((chunks, batch) + images.shape[1:]), 1)
    ys = split_batch(labels.reshape((chunks, batch)), 1)
    valid = (jnp.arange(chunks * batch) < size).reshape((chunks, batch))

    def one(inputs):
      x, y, mask = inputs
      scores = model.apply(variables, x, train=False)
      per_example = loss.fn(scores, y, reduction="none")
      misses = {f"top{k}_error": jnp.sum(mask & ~hits)
                for k, hits in metrics.top_k_hits_by_k(scores, y).items()}
      return (jnp.sum(jnp.where(mask, per_example, 0.0)),
              jnp.sum(jnp.where(mask, metrics.correct_predictions(scores, y), 0.0)), misses)

    loss_sums, correct, misses = jax.lax.map(one, (xs, ys, valid))
    return (jnp.sum(loss_sums) / size, jnp.sum(correct) / size,
            {name: jnp.sum(counts) / size for name, counts in misses.items()})

  if mesh is None:
    chunk = jax.jit(chunk, donate_argnums=(0,))
    single_step = (_step_in_halves(jax.jit(half_gradients),
                                   jax.jit(finish_halves, donate_argnums=(0,)))
                   if halves else jax.jit(single_step, donate_argnums=(0,)))
    evaluate = jax.jit(evaluate)
  else:  # (state, images, labels, indices, keys): the indices' batch axis is split
    chunk = jit(chunk, donate_argnums=(0,), batch_args=(None, None, None, 1, None))
    single_step = jit(single_step, donate_argnums=(0,), batch_args=(None, None, None, 0, None))
    evaluate = jit(evaluate, batch_args=(None, None, None, None))
  return Programs(key=ProgramKey.of(config, num_classes, steps), model=model,
                  init=jax.jit(functools.partial(model.init, train=False)), step=single_step, chunk=chunk, evaluate=evaluate, traces=traces,
                  per_batch=per_batch_stepping(config, model, jax.default_backend()),
                  mesh=mesh)


def _step_in_halves(half_gradients: Callable, finish: Callable) -> Callable:
  """A train step ``(state, images, labels, index, key data) -> (state, loss, correct)`` whose
  two halves of ``index`` run :func:`side_by_side` through the jitted ``half_gradients``,
  then the jitted ``finish`` sums them and updates ``state``."""

  def step(state, images, labels, index, key_data):
    middle = index.shape[0] // 2
    first, second = side_by_side(
        half_gradients, (state.params, state.batch_stats, images, labels, index[:middle],
                         key_data, 0),
        (state.params, state.batch_stats, images, labels, index[middle:], key_data, 1))
    return finish(state, first, second)

  return step


class ProgramCache:
  """The programs of up to ``size`` keys, least recently used dropped first: one per
  experiment, so that its grid points and seeds compile each shape once."""

  def __init__(self, size: int = 8):
    self.size = size
    self._programs: collections.OrderedDict[ProgramKey, Programs] = collections.OrderedDict()

  def get(self, config: ExperimentConfig, num_classes: int, steps: int) -> Programs:
    key = ProgramKey.of(config, num_classes, steps)
    if key in self._programs:
      self._programs.move_to_end(key)
    else:
      self._programs[key] = compile_programs(config, num_classes, steps)
      while len(self._programs) > self.size:
        self._programs.popitem(last=False)
    return self._programs[key]

  def __len__(self) -> int:
    return len(self._programs)
