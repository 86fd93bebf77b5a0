"""A log-sum-exp and a layer norm, each a ``jax.custom_vjp`` with a hand-derived rule,
registered for ``hw verify --module vjp_demo.ops``."""
import functools

import jax
import jax.numpy as jnp
import numpy as np

import hw.testing
from hw.testing import Case, cases
from vjp_demo import references


def _lse_cases(key):
  rng = cases.numpy_rng(key)
  return [Case("random", (cases.normal(rng, 3, 5),)),
          Case("batch-of-one-prime", (cases.normal(rng, 1, 7),)),
          Case("large", (cases.normal(rng, 2, 5, offset=1e3),)),
          Case("ties", (np.zeros((2, 4)),))]


@hw.testing.register(reference=references.logsumexp, cases=_lse_cases)
@jax.custom_vjp
def logsumexp(x):
  """``log Σ exp x`` over the last axis; backward ``dx = dy · softmax(x)``."""
  m = jnp.max(x, axis=-1, keepdims=True)
  return jnp.log(jnp.sum(jnp.exp(x - m), axis=-1)) + m[..., 0]


def _lse_fwd(x):
  y = logsumexp(x)
  return y, (x, y)


def _lse_bwd(res, dy):
  x, y = res
  return (dy[..., None] * jnp.exp(x - y[..., None]),)


logsumexp.defvjp(_lse_fwd, _lse_bwd)


def _ln_cases(key):
  rng = cases.numpy_rng(key)
  n = lambda *s, **kw: cases.normal(rng, *s, **kw)
  return [Case("random", (n(4, 6), n(6), n(6)), differentiable=(0, 1, 2)),
          Case("batch-of-one-odd", (n(1, 5), n(5), n(5)), differentiable=(0, 1, 2)),
          Case("offset", (n(3, 7, offset=30.0), n(7), n(7)), differentiable=(0, 1, 2))]


@hw.testing.register(reference=references.layer_norm, cases=_ln_cases)
@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def layer_norm(x, gamma, beta, eps=1e-5):
  """Layer norm over the last axis; backward derived by hand."""
  mean = jnp.mean(x, axis=-1, keepdims=True)
  var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
  return gamma * (x - mean) / jnp.sqrt(var + eps) + beta


def _ln_fwd(x, gamma, beta, eps):
  mean = jnp.mean(x, axis=-1, keepdims=True)
  inv = 1.0 / jnp.sqrt(jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True) + eps)
  xhat = (x - mean) * inv
  return gamma * xhat + beta, (xhat, inv, gamma)


def _ln_bwd(eps, res, dy):
  xhat, inv, gamma = res
  n = xhat.shape[-1]
  dxhat = dy * gamma
  dx = inv / n * (n * dxhat - jnp.sum(dxhat, -1, keepdims=True)
                  - xhat * jnp.sum(dxhat * xhat, -1, keepdims=True))
  lead = tuple(range(dy.ndim - 1))
  return dx, jnp.sum(dy * xhat, axis=lead), jnp.sum(dy, axis=lead)


layer_norm.defvjp(_ln_fwd, _ln_bwd)
