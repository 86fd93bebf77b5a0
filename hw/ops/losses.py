"""Loss layers. PLACEHOLDER: plain JAX, to be replaced."""
import jax
import jax.numpy as jnp


def _reduce(v, reduction):
  return {"mean": jnp.mean, "sum": jnp.sum, "none": lambda a: a}[reduction](v)


def softmax_cross_entropy(logits, labels, *, reduction="mean"):
  logp = jax.nn.log_softmax(logits)
  return _reduce(-jnp.take_along_axis(logp, labels[..., None], -1)[..., 0], reduction)


def _pm1(labels):
  return jnp.where(labels > 0, 1.0, -1.0)


def logistic_loss(scores, labels, *, reduction="mean"):
  return _reduce(jax.nn.softplus(-_pm1(labels) * scores), reduction)


def hinge_loss(scores, labels, *, reduction="mean"):
  return _reduce(jnp.maximum(0.0, 1.0 - _pm1(labels) * scores), reduction)


def squared_error(pred, target):
  return 0.5 * jnp.sum((pred - target) ** 2)
