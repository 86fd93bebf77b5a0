"""Eleven planted wrong backward rules (and their correct twins), for measuring what a
gradient checker catches. ``PLANTED[name]`` is a ``Planted`` with the wrong function,
the plain-JAX reference, the inputs and what is wrong; ``CORRECT`` holds the correct
versions of the same ops on the same inputs (a checker must pass those).

Every function is a ``jax.custom_vjp`` whose forward pass is right.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from vjp_demo import references
from vjp_demo.ops import layer_norm, logsumexp


@dataclasses.dataclass(frozen=True)
class Planted:
  name: str
  f: Callable
  reference: Callable
  args: Callable[[], tuple]      # fresh float64 NumPy inputs
  what: str
  kinks: str | None = None       # reason finite differences do not apply at these inputs


def _rng():
  return np.random.default_rng(0)


def _lse_args():
  return (_rng().standard_normal((3, 5)),)


def _lse_vec_args():
  return (_rng().standard_normal(6),)


def _ln_args(offset=0.0):
  rng = _rng()
  return (offset + rng.standard_normal((4, 4)), rng.standard_normal(4), rng.standard_normal(4))


def _with_bwd(fwd_value: Callable, bwd: Callable, save=lambda *a: a, nondiff=()):
  """A custom_vjp with forward ``fwd_value`` and backward ``bwd(residuals, dy)``."""
  f = jax.custom_vjp(fwd_value, nondiff_argnums=nondiff)

  def fwd(*args):
    return fwd_value(*args), save(*args)
  f.defvjp(fwd, bwd)
  return f


# -- log-sum-exp ------------------------------------------------------------------------

def _softmax(x):
  return jnp.exp(x - references.logsumexp(x)[..., None])


lse_unnormalised = _with_bwd(
    references.logsumexp, lambda r, dy: (dy[..., None] * jnp.exp(r[0]),))

lse_scaled_1e7 = _with_bwd(
    references.logsumexp, lambda r, dy: (dy[..., None] * _softmax(r[0]) * (1 + 1e-7),))


def _nondet_noise(shape):
  def host():
    return np.asarray(1.0 + 1e-12 * np.random.default_rng().standard_normal(shape))
  return jax.pure_callback(host, jax.ShapeDtypeStruct(shape, jnp.float64))


lse_nondeterministic = _with_bwd(
    references.logsumexp,
    lambda r, dy: (dy[..., None] * _softmax(r[0]) * _nondet_noise(r[0].shape),))

lse_affine_in_cotangent = _with_bwd(  # a leaked regulariser: not linear in dy
    references.logsumexp, lambda r, dy: (dy[..., None] * _softmax(r[0]) + 1e-9 * r[0],))


def _python_branch_bwd(r, dy):
  x = r[0]
  if float(jnp.max(jnp.abs(dy))) == 0.0:  # converts a traced value: breaks under jit
    return (jnp.zeros_like(x),)
  return (dy[..., None] * _softmax(x),)


lse_unjittable = _with_bwd(references.logsumexp, _python_branch_bwd)


def _host_softmax(x):
  e = np.exp(x - x.max())
  return e / e.sum()  # right for one vector; sums over the whole batch when batched


def _callback_bwd(r, dy):
  x = r[0]
  s = jax.pure_callback(_host_softmax, jax.ShapeDtypeStruct(x.shape, x.dtype), x,
                        vmap_method="expand_dims")
  return (dy[..., None] * s,)


lse_wrong_under_vmap = _with_bwd(references.logsumexp, _callback_bwd)

# -- layer norm -------------------------------------------------------------------------


def _ln_save(x, gamma, beta):
  mean = jnp.mean(x, axis=-1, keepdims=True)
  inv = 1.0 / jnp.sqrt(jnp.mean(jnp.square(x - mean), -1, keepdims=True) + 1e-5)
  return x, (x - mean) * inv, inv, gamma


def _ln_bwd_from(xhat, inv, gamma, dy, axis=-1):
  n = xhat.shape[axis]
  dxhat = dy * gamma
  dx = inv / n * (n * dxhat - jnp.sum(dxhat, axis, keepdims=True)
                  - xhat * jnp.sum(dxhat * xhat, axis, keepdims=True))
  return dx, jnp.sum(dy * xhat, 0), jnp.sum(dy, 0)


def _ln_wrong_axis(r, dy):
  x, xhat, inv, gamma = r
  return _ln_bwd_from(xhat, inv, gamma, dy, axis=0)  # square input: shapes still fit


def _ln_unstable(r, dy):
  x, _, _, gamma = r
  mean = jnp.mean(x, -1, keepdims=True)
  var = jnp.mean(x * x, -1, keepdims=True) - mean * mean  # cancels in float32
  inv = 1.0 / jnp.sqrt(var + 1e-5)
  return _ln_bwd_from((x - mean) * inv, inv, gamma, dy)


def _ln_float32_grads(r, dy):
  x, xhat, inv, gamma = r
  return tuple(g.astype(jnp.float32) for g in _ln_bwd_from(xhat, inv, gamma, dy))


def _ln_ref(x, gamma, beta):
  return references.layer_norm(x, gamma, beta)


ln_wrong_axis = _with_bwd(_ln_ref, _ln_wrong_axis, save=_ln_save)
ln_float32_cancellation = _with_bwd(_ln_ref, _ln_unstable, save=_ln_save)
ln_float32_gradient = _with_bwd(_ln_ref, _ln_float32_grads, save=_ln_save)

# -- relu and sigmoid ---------------------------------------------------------------------

relu_one_at_zero = _with_bwd(references.relu, lambda r, dy: (jnp.where(r[0] >= 0, dy, 0.0),))


def _sigmoid_stopped(r, dy):
  s = jax.lax.stop_gradient(jax.nn.sigmoid(r[0]))  # right value, no second derivative
  return (dy * s * (1 - s),)


sigmoid_no_second_order = _with_bwd(references.sigmoid, _sigmoid_stopped)


def _relu_args():
  x = _rng().standard_normal((3, 4))
  x[0, :2] = 0.0
  x[2, 3] = 0.0
  return (x,)


def _sigmoid_args():
  return (_rng().standard_normal((3, 4)),)


_KINK = "exact zeros: relu has a kink at 0"

PLANTED: dict[str, Planted] = {p.name: p for p in [
    Planted("lse_unnormalised", lse_unnormalised, references.logsumexp, _lse_args,
            "dx = dy·exp(x): forgets to divide by Σexp"),
    Planted("lse_scaled_1e-7", lse_scaled_1e7, references.logsumexp, _lse_args,
            "dx off by a factor 1 + 1e-7"),
    Planted("lse_nondeterministic", lse_nondeterministic, references.logsumexp, _lse_args,
            "dx carries 1e-12 relative host-side noise: two runs differ"),
    Planted("lse_affine_in_cotangent", lse_affine_in_cotangent, references.logsumexp,
            _lse_args, "dx + 1e-9·x: a leaked term, not linear in dy"),
    Planted("lse_unjittable", lse_unjittable, references.logsumexp, _lse_args,
            "backward branches on a traced value in Python: fails under jit"),
    Planted("lse_wrong_under_vmap", lse_wrong_under_vmap, references.logsumexp,
            _lse_vec_args, "host callback normalises over the whole batch under vmap"),
    Planted("ln_wrong_axis", ln_wrong_axis, _ln_ref, _ln_args,
            "dx reduces over the batch axis (shapes fit: square input)"),
    Planted("ln_float32_cancellation", ln_float32_cancellation, _ln_ref,
            lambda: _ln_args(offset=300.0),
            "variance as E[x²] − E[x]²: cancels catastrophically in float32"),
    Planted("ln_float32_gradient", ln_float32_gradient, _ln_ref, _ln_args,
            "gradients returned as float32 for float64 inputs"),
    Planted("relu_one_at_zero", relu_one_at_zero, references.relu, _relu_args,
            "gradient 1 at exactly 0 (the contract, as jax.nn.relu, is 0)", kinks=_KINK),
    Planted("sigmoid_no_second_order", sigmoid_no_second_order, references.sigmoid,
            _sigmoid_args, "stop_gradient in the rule: right first order, wrong second"),
]}


def _correct_ln(x, gamma, beta):
  return layer_norm(x, gamma, beta)


_relu_ok = _with_bwd(references.relu, lambda r, dy: (jnp.where(r[0] > 0, dy, 0.0),))
_sigmoid_ok = _with_bwd(
    references.sigmoid, lambda r, dy: (dy * jax.nn.sigmoid(r[0]) * (1 - jax.nn.sigmoid(r[0])),))

# The correct rule for each planted one, on the same inputs (false-alarm control).
CORRECT: dict[str, Planted] = {
    name: dataclasses.replace(p, f=(logsumexp if name.startswith("lse") else
                                    _correct_ln if name.startswith("ln") else
                                    _relu_ok if name.startswith("relu") else _sigmoid_ok),
                              what="correct rule")
    for name, p in PLANTED.items()}
