"""The t-SNE optimiser (van der Maaten & Hinton 2008) with the exact O(N²) gradient.

Gradient descent with momentum and per-coordinate adaptive gains ("delta-bar-delta",
Jacobs 1988), as in the paper and its reference implementation::

    gains ← (gains + 0.2)  where sign(∂C/∂y) ≠ sign(update)   (still moving downhill)
            gains · 0.8    elsewhere;   then gains ← max(gains, min_gain)
    update ← μ_t update − η · gains ⊙ ∂C/∂y
    y ← y + update,   then re-centre y to zero mean

with momentum μ_t = 0.5 for t < ``momentum_switch`` and 0.8 after, and early
exaggeration: P is multiplied by α = 12 for the first 250 iterations (only the
attractive term, as in the paper). The gradient is :func:`hw.tsne.cost.kl_gradient`,
the formula that the backward rule of :func:`hw.tsne.tsne_kl` evaluates.
"""
from __future__ import annotations

import dataclasses
import functools
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from hw.tsne import affinities, cost


@dataclasses.dataclass(frozen=True)
class TsneConfig:
  """Hyper-parameters of :func:`embed`.

  Attributes:
    perplexity: target perplexity of the conditional affinities.
    iterations: gradient steps.
    learning_rate: η.
    early_exaggeration: α, the factor on P early on.
    exaggeration_iterations: how many first iterations use α.
    initial_momentum: μ before ``momentum_switch``.
    final_momentum: μ from ``momentum_switch`` on.
    momentum_switch: iteration at which μ switches.
    min_gain: lower bound of the gains.
    pca_components: PCA dimension of the inputs first (None: no PCA).
    init_scale: standard deviation of the Gaussian initial embedding.
    dims: embedding dimension.
    kernel: "student_t" (t-SNE) or "gaussian" (symmetric SNE).
    cost_every: record KL(P‖Q) every this many iterations.
    seed: seed of the initial embedding.
    dtype: float dtype of the optimisation ("float32" or "float64").
  """
  perplexity: float = 30.0
  iterations: int = 1000
  learning_rate: float = 200.0
  early_exaggeration: float = 12.0
  exaggeration_iterations: int = 250
  initial_momentum: float = 0.5
  final_momentum: float = 0.8
  momentum_switch: int = 250
  min_gain: float = 0.01
  pca_components: int | None = 50
  init_scale: float = 1e-4
  dims: int = 2
  kernel: str = "student_t"
  cost_every: int = 50
  seed: int = 0
  dtype: str = "float32"


class Embedding(NamedTuple):
  """Result of :func:`embed`.

  Attributes:
    y: (N, dims) the embedding (NumPy).
    kl: KL(P‖Q) of the final embedding (with the un-exaggerated P).
    kl_history: (iterations // cost_every,) KL(P‖Q) after every ``cost_every`` steps
      (with the un-exaggerated P, also during exaggeration).
    seconds: wall-clock time of PCA, P and the optimisation (after compilation).
    cpu_seconds: CPU time of this process over the same span (all threads): on a
      loaded machine, ``cpu_seconds / cores`` bounds what the run would take alone.
    affinity_seconds: the part of ``seconds`` spent on PCA and P.
    compile_seconds: time spent tracing and compiling.
  """
  y: np.ndarray
  kl: float
  kl_history: np.ndarray
  seconds: float
  cpu_seconds: float
  affinity_seconds: float
  compile_seconds: float


class _State(NamedTuple):
  y: jax.Array
  update: jax.Array
  gains: jax.Array


def _step(config: TsneConfig, p, iteration, state: _State) -> _State:
  exaggeration = jnp.where(iteration < config.exaggeration_iterations,
                           config.early_exaggeration, 1.0)
  momentum = jnp.where(iteration < config.momentum_switch, config.initial_momentum,
                       config.final_momentum)
  gradient = cost.kl_gradient(state.y, p, kernel=config.kernel, p_is_symmetric=True,
                              exaggeration=exaggeration.astype(p.dtype))
  same_sign = (gradient > 0) == (state.update > 0)
  gains = jnp.where(same_sign, state.gains * 0.8, state.gains + 0.2)
  gains = jnp.maximum(gains, config.min_gain)
  update = momentum * state.update - config.learning_rate * gains * gradient
  y = state.y + update
  return _State(y - jnp.mean(y, axis=0), update, gains)


@functools.partial(jax.jit, static_argnames=("config",))
def _optimise(config: TsneConfig, p, y0):
  kl_fn = cost.tsne_kl if config.kernel == "student_t" else cost.sne_kl
  chunks = config.iterations // config.cost_every

  def chunk(state, chunk_index):
    start = chunk_index * config.cost_every
    state = jax.lax.fori_loop(
        0, config.cost_every, lambda i, s: _step(config, p, start + i, s), state)
    return state, kl_fn(state.y, p)

  state = _State(y0, jnp.zeros_like(y0), jnp.ones_like(y0))
  state, history = jax.lax.scan(chunk, state, jnp.arange(chunks))
  return state.y, history


@functools.partial(jax.jit, static_argnames=("perplexity",))
def _joint(x, perplexity):
  return affinities.joint_affinities(x, perplexity)


def prepare_affinities(x: np.ndarray, config: TsneConfig) -> jax.Array:
  """PCA (if configured), then the joint affinities P at ``config.perplexity``."""
  x = jnp.asarray(x, dtype=config.dtype).reshape(len(x), -1)
  if config.pca_components is not None and config.pca_components < x.shape[1]:
    x = affinities.pca(x, config.pca_components)
  return _joint(x, float(config.perplexity))


def embed(x: np.ndarray, config: TsneConfig = TsneConfig()) -> Embedding:
  """Embed the rows of ``x`` with t-SNE (or symmetric SNE, ``config.kernel``).

  Compilation happens first on zeros of the same shape and is timed separately, so
  ``seconds`` is the time of PCA + P + optimisation as a warm call would take.

  Args:
    x: (N, ...) data; each example is flattened.
    config: the hyper-parameters.

  Returns:
    An :class:`Embedding`.
  """
  if config.kernel not in cost.KERNELS:
    raise ValueError(f"`config.kernel` must be one of {cost.KERNELS}, got {config.kernel!r}")
  if config.iterations % config.cost_every:
    raise ValueError(f"`config.iterations` ({config.iterations}) must be a multiple of "
                     f"`config.cost_every` ({config.cost_every})")
  n = len(x)
  dtype = jnp.dtype(config.dtype)
  y0 = config.init_scale * jax.random.normal(jax.random.key(config.seed), (n, config.dims),
                                             dtype=dtype)
  input_width = int(np.prod(np.shape(x)[1:]))
  uses_pca = config.pca_components is not None and config.pca_components < input_width
  width = config.pca_components if uses_pca else input_width

  start = time.perf_counter()
  _optimise.lower(config, jnp.zeros((n, n), dtype), y0).compile()
  _joint.lower(jnp.zeros((n, width), dtype), float(config.perplexity)).compile()
  if uses_pca:
    affinities.pca(jnp.zeros((n, input_width), dtype), config.pca_components)
  compile_seconds = time.perf_counter() - start

  start, cpu_start = time.perf_counter(), time.process_time()
  p = jax.block_until_ready(prepare_affinities(x, config))
  affinity_seconds = time.perf_counter() - start
  y, history = _optimise(config, p, y0)
  y = np.asarray(jax.block_until_ready(y))
  seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
  history = np.asarray(history, dtype=np.float64)
  return Embedding(y=y, kl=float(history[-1]), kl_history=history, seconds=seconds,
                   cpu_seconds=cpu_seconds, affinity_seconds=affinity_seconds,
                   compile_seconds=compile_seconds)


def knn_accuracy(points: np.ndarray, labels: np.ndarray, k: int = 5) -> float:
  """Leave-one-out k-nearest-neighbour accuracy of ``labels`` in ``points``.

  Each point is classified by the majority label of its k nearest other points
  (Euclidean); a tie goes to the tied label whose nearest member is closest.

  Args:
    points: (N, d) coordinates.
    labels: (N,) integer labels.
    k: neighbours, 1 ≤ k < N.

  Returns:
    Fraction of points whose predicted label is their own.
  """
  points = np.asarray(points, dtype=np.float64)
  labels = np.asarray(labels)
  n = len(points)
  if not 1 <= k < n:
    raise ValueError(f"`k` must be in [1, N - 1] = [1, {n - 1}], got {k}")
  norms = np.sum(points ** 2, axis=1)
  distances = norms[:, None] + norms[None, :] - 2.0 * points @ points.T
  np.fill_diagonal(distances, np.inf)
  neighbours = np.argsort(distances, axis=1, kind="stable")[:, :k]
  neighbour_labels = labels[neighbours]
  correct = 0
  for i in range(n):
    values, counts = np.unique(neighbour_labels[i], return_counts=True)
    winners = set(values[counts == counts.max()])
    prediction = next(label for label in neighbour_labels[i] if label in winners)
    correct += prediction == labels[i]
  return float(correct / n)
