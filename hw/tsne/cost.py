"""The t-SNE and symmetric-SNE costs KL(P‖Q) with hand-derived backward passes.

For an embedding ``Y`` (N, d) with squared distances ``dᵢⱼ = ‖yᵢ − yⱼ‖²`` and a kernel
``K(d)``, the low-dimensional affinities are ``qᵢⱼ = Kᵢⱼ / Z`` with
``Z = Σ_{k≠l} K_kl`` (the diagonal never counts), and the cost is::

    C(Y, P) = KL(P‖Q) = Σ_{i≠j} pᵢⱼ log(pᵢⱼ / qᵢⱼ)       (0 log 0 = 0)

* t-SNE (van der Maaten & Hinton 2008): Student-t, ``K = (1 + d)⁻¹``;
* symmetric SNE: Gaussian, ``K = exp(−d)``.

Derivation of ∂C/∂Y. Write ``log qᵢⱼ = log Kᵢⱼ − log Z`` and ``S = Σ_{i≠j} pᵢⱼ``
(S = 1 for a proper P, but the rule below holds for any P ≥ 0)::

    C = Σ p log p − Σ_{i≠j} pᵢⱼ log Kᵢⱼ + S log Z.

Let ``wᵢⱼ = −d log K/dd`` at ``dᵢⱼ``: ``w = (1 + d)⁻¹ = K`` for Student-t and ``w = 1``
for the Gaussian. Then ``∂(−log Kᵢⱼ)/∂dᵢⱼ = wᵢⱼ`` and
``∂(log Z)/∂dᵢⱼ = −Kᵢⱼwᵢⱼ/Z = −qᵢⱼwᵢⱼ``, so ``∂C/∂dᵢⱼ = (pᵢⱼ − S qᵢⱼ) wᵢⱼ``. Each
``dᵢⱼ`` with i ≠ j depends on ``yᵢ`` through ``∂dᵢⱼ/∂yᵢ = 2(yᵢ − yⱼ)``, and ``yᵢ`` also
appears in ``dⱼᵢ`` (same value, weight ``pⱼᵢ``); q and w are symmetric. Summing::

    ∂C/∂yᵢ = 4 Σⱼ (p̄ᵢⱼ − S qᵢⱼ) wᵢⱼ (yᵢ − yⱼ),    p̄ = (P + Pᵀ)/2.

For the symmetric P of t-SNE (p̄ = P, S = 1) this is the paper's
``4 Σⱼ (pᵢⱼ − qᵢⱼ)(yᵢ − yⱼ)(1 + ‖yᵢ − yⱼ‖²)⁻¹``, and ``4 Σⱼ (pᵢⱼ − qᵢⱼ)(yᵢ − yⱼ)`` for
the Gaussian. In matrix form, with ``Mᵢⱼ = (p̄ᵢⱼ − S qᵢⱼ) wᵢⱼ`` (zero diagonal),
``∂C/∂Y = 4 (diag(M𝟙) − M) Y``.

∂C/∂P (q does not depend on P): ``∂C/∂pᵢⱼ = log pᵢⱼ + 1 − log qᵢⱼ`` for i ≠ j and
pᵢⱼ > 0; at pᵢⱼ = 0, where ``p log p`` has an infinite one-sided slope, the rule
returns ``−log qᵢⱼ`` (the derivative of ``p log p`` taken as 0 there, as autodiff of
``where(p > 0, p log p, 0)`` does); 0 on the diagonal, which the cost ignores.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from hw.ops import _checks

KERNELS = ("student_t", "gaussian")


def squared_distances(y: jax.Array) -> jax.Array:
  """``dᵢⱼ = Σ_k (y_ik − y_jk)²`` from explicit differences, one coordinate at a time.

  Exactly 0 on the diagonal. Summing the d coordinates in a Python loop keeps every
  intermediate (N, N): an (N, N, d) array with a tiny minor axis is ~10× slower on CPU.
  """
  return sum(jnp.square(y[:, k, None] - y[None, :, k]) for k in range(y.shape[1]))


def _off_diagonal(n: int) -> jax.Array:
  return ~jnp.eye(n, dtype=bool)


class _Parts(NamedTuple):
  """Pairwise quantities of an embedding (all zero on the diagonal).

  ``q = scaled / total`` with ``scaled`` the kernel times a constant (1 for Student-t;
  ``exp(shift)`` for the Gaussian, so that it cannot underflow), ``log_kernel_scaled``
  its logarithm, ``weight`` = −d log K / dd.
  """
  q: jax.Array
  weight: jax.Array
  log_kernel_scaled: jax.Array
  total: jax.Array


def _parts(y: jax.Array, kernel: str) -> _Parts:
  off = _off_diagonal(y.shape[0])
  distances = squared_distances(y)
  if kernel == "student_t":
    weight = jnp.where(off, 1.0 / (1.0 + distances), 0.0)
    scaled = weight
    log_kernel_scaled = -jnp.log1p(distances)
  else:
    weight = off.astype(y.dtype)
    shift = jnp.min(jnp.where(off, distances, jnp.inf))  # exp(−(d − shift)) ≤ 1 off the diagonal
    log_kernel_scaled = -(distances - shift)
    scaled = jnp.where(off, jnp.exp(log_kernel_scaled), 0.0)
  total = jnp.sum(scaled)
  return _Parts(q=scaled / total, weight=weight, log_kernel_scaled=log_kernel_scaled,
                total=total)


def _log_q(parts: _Parts) -> jax.Array:
  off = _off_diagonal(parts.q.shape[0])
  return jnp.where(off, parts.log_kernel_scaled - jnp.log(parts.total), 0.0)


def _kl_value(p, log_q):
  off = _off_diagonal(p.shape[0])
  positive = off & (p > 0)
  p_log_p = jnp.where(positive, p * jnp.log(jnp.where(positive, p, 1.0)), 0.0)
  return jnp.sum(p_log_p) - jnp.sum(jnp.where(off, p * log_q, 0.0))


def gradient_from_parts(y, p_symmetric, q, weight, *, attraction, repulsion) -> jax.Array:
  """``4 Σⱼ (attraction · p̄ᵢⱼ − repulsion · qᵢⱼ) wᵢⱼ (yᵢ − yⱼ)`` as ``4 (diag(M𝟙) − M) Y``.

  With ``p̄ = (P + Pᵀ)/2``, ``attraction = 1`` and ``repulsion = Σ p`` this is ∂KL/∂Y
  (module docstring); t-SNE's early exaggeration uses ``attraction = α``,
  ``repulsion = 1``. ``q`` and ``weight`` are zero on the diagonal, so ``Mᵢᵢ`` is
  ``attraction · p̄ᵢᵢ``, and its two contributions ``Mᵢᵢ yᵢ − Mᵢᵢ yᵢ`` cancel.
  """
  m = (attraction * p_symmetric - repulsion * q) * weight
  return 4.0 * (jnp.sum(m, axis=1, keepdims=True) * y - m @ y)


def kl_gradient(y: jax.Array, p: jax.Array, *, kernel: str = "student_t",
                exaggeration=1.0, p_is_symmetric: bool = False) -> jax.Array:
  """The t-SNE update direction ``4 Σⱼ (α p̄ᵢⱼ − qᵢⱼ) wᵢⱼ (yᵢ − yⱼ)`` (no autodiff).

  For a P that sums to one and α = 1 this equals ∂KL(P‖Q)/∂Y, the gradient the
  ``custom_vjp`` of :func:`tsne_kl` / :func:`sne_kl` returns (same code,
  :func:`gradient_from_parts`). With α > 1 it is van der Maaten & Hinton's
  early-exaggeration gradient, which multiplies the attractive term only.

  Args:
    y: (N, d) embedding.
    p: (N, N) joint probabilities summing to one.
    kernel: "student_t" (t-SNE) or "gaussian" (symmetric SNE).
    exaggeration: α, the factor on P.
    p_is_symmetric: skip forming ``(P + Pᵀ)/2`` (one pass over P) when P is known to
      be symmetric, as t-SNE's joint P is.

  Returns:
    (N, d) array.
  """
  _checks.check_choice("kernel", kernel, KERNELS)
  parts = _parts(y, kernel)
  p_symmetric = p if p_is_symmetric else 0.5 * (p + p.T)
  return gradient_from_parts(y, p_symmetric, parts.q, parts.weight,
                             attraction=exaggeration, repulsion=1.0)


def _check_args(y, p):
  _checks.check_rank("y", y, 2, "(N, d)")
  _checks.check_floating("y", y)
  if y.shape[0] < 2:
    raise ValueError(f"`y` must hold at least 2 points (N >= 2), got {_checks.describe(y)}")
  _checks.check_rank("p", p, 2, "(N, N)")
  _checks.check_same_dtype("p", p, "y", y)
  _checks.check_shape("p", p, (y.shape[0], y.shape[0]), "(N, N) with N the rows of `y`")


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _kl(y, p, kernel):
  return _kl_value(p, _log_q(_parts(y, kernel)))


def _kl_fwd(y, p, kernel):
  parts = _parts(y, kernel)
  log_q = _log_q(parts)
  return _kl_value(p, log_q), (y, p, log_q, parts.q, parts.weight)


def _kl_bwd(kernel, residuals, g):
  del kernel  # the kernel's shape is already in w (the weights)
  y, p, log_q, q, weight = residuals
  off = _off_diagonal(y.shape[0])
  total = jnp.sum(jnp.where(off, p, 0.0))
  dy = gradient_from_parts(y, 0.5 * (p + p.T), q, weight, attraction=g, repulsion=g * total)
  positive = off & (p > 0)
  dlog_p = jnp.where(positive, jnp.log(jnp.where(positive, p, 1.0)) + 1.0, 0.0)
  dp = g * jnp.where(off, dlog_p - log_q, 0.0)
  return dy, dp


_kl.defvjp(_kl_fwd, _kl_bwd)


def tsne_kl(y: jax.Array, p: jax.Array) -> jax.Array:
  """t-SNE's cost ``KL(P‖Q)`` with the Student-t kernel ``qᵢⱼ ∝ (1 + ‖yᵢ − yⱼ‖²)⁻¹``.

  Backward (derived in the module docstring), with ``p̄ = (P + Pᵀ)/2`` and ``S = Σ P``
  off the diagonal::

      ∂C/∂yᵢ = 4 Σⱼ (p̄ᵢⱼ − S qᵢⱼ)(yᵢ − yⱼ)(1 + ‖yᵢ − yⱼ‖²)⁻¹
      ∂C/∂pᵢⱼ = log pᵢⱼ + 1 − log qᵢⱼ  (i ≠ j; −log qᵢⱼ where pᵢⱼ = 0; 0 on the diagonal)

  Args:
    y: (N, d) embedding, N ≥ 2, floating point.
    p: (N, N) non-negative affinities, same dtype; the diagonal is ignored. t-SNE's P
      is symmetric and sums to one, where the first formula is the paper's.

  Returns:
    Scalar of the dtype of ``y``.
  """
  _check_args(y, p)
  return _kl(y, p, "student_t")


def sne_kl(y: jax.Array, p: jax.Array) -> jax.Array:
  """Symmetric SNE's cost ``KL(P‖Q)`` with the Gaussian kernel ``qᵢⱼ ∝ exp(−‖yᵢ − yⱼ‖²)``.

  Backward (module docstring; w = 1 for the Gaussian)::

      ∂C/∂yᵢ = 4 Σⱼ (p̄ᵢⱼ − S qᵢⱼ)(yᵢ − yⱼ)
      ∂C/∂pᵢⱼ = log pᵢⱼ + 1 − log qᵢⱼ  (as for :func:`tsne_kl`)

  log Z is computed with a shift, so far-apart points do not underflow Q to zero.

  Args:
    y: (N, d) embedding, N ≥ 2, floating point.
    p: (N, N) non-negative affinities, same dtype; the diagonal is ignored.

  Returns:
    Scalar of the dtype of ``y``.
  """
  _check_args(y, p)
  return _kl(y, p, "gaussian")
