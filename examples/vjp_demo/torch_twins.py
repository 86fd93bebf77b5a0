"""PyTorch twins of the planted rules (``vjp_demo.planted``), for ``torch.autograd.gradcheck``.

``PLANTED[name]`` and ``CORRECT[name]`` are ``torch.autograd.Function`` subclasses with the
same forward and the same (wrong or right) backward as the JAX rule of that name, in
float64. Each backward recomputes what it needs from the saved inputs with torch ops, so
it is itself differentiable (``gradgradcheck``), except where the JAX rule is not (a
``stop_gradient``, a host callback). Needs PyTorch; nothing else in ``vjp_demo`` imports it.
"""
from __future__ import annotations

import numpy as np
import torch

LN_EPS = 1e-5


def _logsumexp(x):
  return torch.logsumexp(x, dim=-1)


def _lse_function(name: str, dx):
  """A log-sum-exp whose backward is ``dx(x, dy)`` (``dy`` broadcast over the last axis)."""
  def forward(ctx, x):
    ctx.save_for_backward(x)
    return _logsumexp(x)

  def backward(ctx, dy):
    (x,) = ctx.saved_tensors
    return dx(x, dy[..., None])
  return type(name, (torch.autograd.Function,),
              {"forward": staticmethod(forward), "backward": staticmethod(backward)})


def _host_noise(shape):
  """1 + 1e-12 N(0, 1) from an unseeded host generator: two calls differ."""
  return torch.from_numpy(1.0 + 1e-12 * np.random.default_rng().standard_normal(shape))


def _unjittable_dx(x, dy):
  if float(dy.detach().abs().max()) == 0.0:  # the JAX rule's Python branch on a value
    return torch.zeros_like(x)
  return dy * torch.softmax(x, -1)


def _host_softmax_dx(x, dy):
  """Softmax computed on the host in NumPy over the whole array (the JAX host callback)."""
  e = np.exp(x.detach().numpy() - x.detach().numpy().max())
  return dy * torch.from_numpy(e / e.sum())


_LSE = {
    "lse_unnormalised": lambda x, dy: dy * torch.exp(x),
    "lse_scaled_1e-7": lambda x, dy: dy * torch.softmax(x, -1) * (1 + 1e-7),
    "lse_nondeterministic": lambda x, dy: dy * torch.softmax(x, -1) * _host_noise(x.shape),
    "lse_affine_in_cotangent": lambda x, dy: dy * torch.softmax(x, -1) + 1e-9 * x,
    "lse_unjittable": _unjittable_dx,
    "lse_wrong_under_vmap": _host_softmax_dx,
}


# -- layer norm ---------------------------------------------------------------------------

def _layer_norm(x, gamma, beta):
  mean = x.mean(-1, keepdim=True)
  var = (x - mean).square().mean(-1, keepdim=True)
  return gamma * (x - mean) / torch.sqrt(var + LN_EPS) + beta


def _ln_grads(xhat, inv, gamma, dy, axis=-1):
  """dx = inv/n (n dx̂ − Σ dx̂ − x̂ Σ dx̂·x̂) with dx̂ = dy γ (sums over ``axis``); dγ, dβ."""
  n = xhat.shape[axis]
  dxhat = dy * gamma
  dx = inv / n * (n * dxhat - dxhat.sum(axis, keepdim=True)
                  - xhat * (dxhat * xhat).sum(axis, keepdim=True))
  return dx, (dy * xhat).sum(0), dy.sum(0)


def _ln_stats(x, cancelling=False):
  mean = x.mean(-1, keepdim=True)
  var = ((x * x).mean(-1, keepdim=True) - mean * mean if cancelling
         else (x - mean).square().mean(-1, keepdim=True))
  inv = 1.0 / torch.sqrt(var + LN_EPS)
  return (x - mean) * inv, inv


def _ln_function(name: str, grads):
  """A layer norm whose backward is ``grads(x, gamma, dy)`` -> (dx, dgamma, dbeta)."""
  def forward(ctx, x, gamma, beta):
    ctx.save_for_backward(x, gamma)
    return _layer_norm(x, gamma, beta)

  def backward(ctx, dy):
    x, gamma = ctx.saved_tensors
    return grads(x, gamma, dy)
  return type(name, (torch.autograd.Function,),
              {"forward": staticmethod(forward), "backward": staticmethod(backward)})


def _ln_right(x, gamma, dy):
  return _ln_grads(*_ln_stats(x), gamma, dy)


_LN = {
    "ln_wrong_axis": lambda x, gamma, dy: _ln_grads(*_ln_stats(x), gamma, dy, axis=0),
    "ln_float32_cancellation": lambda x, gamma, dy: _ln_grads(
        *_ln_stats(x, cancelling=True), gamma, dy),
    "ln_float32_gradient": lambda x, gamma, dy: tuple(
        g.to(torch.float32) for g in _ln_right(x, gamma, dy)),
}

# -- relu and sigmoid ---------------------------------------------------------------------


def _elementwise_function(name: str, forward_value, dx):
  def forward(ctx, x):
    ctx.save_for_backward(x)
    return forward_value(x)

  def backward(ctx, dy):
    (x,) = ctx.saved_tensors
    return dx(x, dy)
  return type(name, (torch.autograd.Function,),
              {"forward": staticmethod(forward), "backward": staticmethod(backward)})


def _sigmoid_stopped_dx(x, dy):
  s = torch.sigmoid(x).detach()  # right value, no second derivative (JAX: stop_gradient)
  return dy * s * (1 - s)


def _sigmoid_dx(x, dy):
  s = torch.sigmoid(x)
  return dy * s * (1 - s)


PLANTED: dict[str, type[torch.autograd.Function]] = {
    **{name: _lse_function(name, dx) for name, dx in _LSE.items()},
    **{name: _ln_function(name, grads) for name, grads in _LN.items()},
    "relu_one_at_zero": _elementwise_function(
        "relu_one_at_zero", torch.relu, lambda x, dy: dy * (x >= 0)),
    "sigmoid_no_second_order": _elementwise_function(
        "sigmoid_no_second_order", torch.sigmoid, _sigmoid_stopped_dx),
}

_LSE_OK = _lse_function("logsumexp", lambda x, dy: dy * torch.softmax(x, -1))
_LN_OK = _ln_function("layer_norm", _ln_right)
_RELU_OK = _elementwise_function("relu", torch.relu, lambda x, dy: dy * (x > 0))
_SIGMOID_OK = _elementwise_function("sigmoid", torch.sigmoid, _sigmoid_dx)

# The correct rule for each planted one (false-alarm control), as in ``planted.CORRECT``.
CORRECT: dict[str, type[torch.autograd.Function]] = {
    name: (_LSE_OK if name.startswith("lse") else _LN_OK if name.startswith("ln") else
           _RELU_OK if name.startswith("relu") else _SIGMOID_OK)
    for name in PLANTED}


def inputs(args) -> tuple[torch.Tensor, ...]:
  """The planted set's float64 NumPy inputs as leaf tensors that require a gradient."""
  return tuple(torch.from_numpy(np.array(a, dtype=np.float64)).requires_grad_() for a in args)
