"""Per-op forward and forward+backward timings at the shapes the benchmarked models use.

For each op and shape, interleaved: the ``hw.ops`` custom VJP, ``jax.vjp`` of the
standard lax / jax.nn / optax equivalent (what Flax layers use), and PyTorch autograd on
the CPU (NCHW). "f+b" is one call computing the output and the input gradients for a
fixed random cotangent, as a train step pays for them; "bwd" is f+b minus fwd.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from benchmarks import architectures as arch
from benchmarks import report, roofline, timing
from benchmarks.models_torch import torch
from hw import ops

F = torch.nn.functional if torch is not None else None
# A second, separately jitted copy of a conv case's autodiff program: autodiff against it
# is a tie by construction, so its per-round ratios show the measurement's own spread.
SELF_CONTROL = report.SELF_CONTROL


@dataclasses.dataclass
class JaxImpl:
  fn: Callable[..., jax.Array]   # fn(*diff_args, *other_args)
  diff_args: Sequence[np.ndarray]
  other_args: Sequence[np.ndarray] = ()


@dataclasses.dataclass
class OpCase:
  """One op at one shape: its JAX implementations by name and the PyTorch version."""
  op: str
  shape: str
  models: list[str]
  jax_impls: dict[str, JaxImpl]
  torch_impl: tuple[Callable[..., Any], list[np.ndarray], list[np.ndarray]] | None
  # torch_impl: (fn, diff_args, other_args) with arrays already in torch's layout
  torch_threads: Sequence[int] = ()   # set_num_threads settings, each measured
  flops: float | None = None   # nominal FLOPs of one forward + backward (conv, linear)


def jax_runners(impl: JaxImpl) -> tuple[timing.Runner, timing.Runner]:
  diff = [jnp.asarray(a) for a in impl.diff_args]
  other = [jnp.asarray(a) for a in impl.other_args]
  n_diff = len(diff)

  def forward(*args):
    return impl.fn(*args)

  def forward_backward(*args_and_ct):
    *args, cotangent = args_and_ct
    diff_args, other_args = args[:n_diff], args[n_diff:]
    out, vjp = jax.vjp(lambda *d: impl.fn(*d, *other_args), *diff_args)
    return out, vjp(cotangent)

  out_shape = jax.eval_shape(forward, *diff, *other)
  cotangent = jnp.asarray(np.random.default_rng(1).standard_normal(out_shape.shape),
                          dtype=out_shape.dtype)
  fwd, fb = jax.jit(forward), jax.jit(forward_backward)

  def run_fwd(steps: int) -> None:
    out = None
    for _ in range(steps):
      out = fwd(*diff, *other)
    jax.block_until_ready(out)

  def run_fb(steps: int) -> None:
    out = None
    for _ in range(steps):
      out = fb(*diff, *other, cotangent)
    jax.block_until_ready(out)

  return run_fwd, run_fb


def _torch_runners(fn, diff_args, other_args,
                   threads: int) -> tuple[timing.Runner, timing.Runner]:
  diff = [torch.from_numpy(np.ascontiguousarray(a)).requires_grad_(True) for a in diff_args]
  other = [torch.from_numpy(np.ascontiguousarray(a)) for a in other_args]
  with torch.no_grad():
    shape = fn(*diff, *other).shape
  cotangent = torch.from_numpy(
      np.random.default_rng(1).standard_normal(tuple(shape)).astype(np.float32))

  def run_fwd(steps: int) -> None:
    torch.set_num_threads(threads)
    with torch.no_grad():
      for _ in range(steps):
        fn(*diff, *other)

  def run_fb(steps: int) -> None:
    torch.set_num_threads(threads)
    for _ in range(steps):
      out = fn(*diff, *other)
      torch.autograd.grad(out, diff, cotangent)

  return run_fwd, run_fb


# ---- the ops: hw.ops, the standard JAX equivalent, torch --------------------------------

def _rand(rng, *shape):
  return rng.standard_normal(shape).astype(np.float32)


def _dims(shape) -> str:
  return "x".join(map(str, shape))


def _nchw(x: np.ndarray) -> np.ndarray:
  """torch's layout of an NHWC image batch; other arrays as they are."""
  return x.transpose(0, 3, 1, 2) if x.ndim == 4 else x


def _weighted_case(op: str, shape: str, x: np.ndarray, params: list[np.ndarray], hw_fn,
                   ref_fn, torch_fn, torch_x, torch_params, *, input_grad: bool) -> OpCase:
  """A layer ``y = f(x, w, b or None)`` as hw, autodiff and torch implementations.

  ``input_grad=False`` for a first layer, whose input (the images) needs no dX: the input
  is then passed after the parameters, as a non-differentiated argument.
  """
  def unpack(args):
    x, w, *b = args if input_grad else (args[-1], *args[:-1])
    return x, w, (b[0] if b else None)

  def split(x, params):
    return ([x] + params, []) if input_grad else (params, [x])

  def on_unpacked(fn):
    return lambda *args: fn(*unpack(args))

  diff, other = split(x, params)
  torch_impl = (None if torch is None else
                (on_unpacked(torch_fn), *split(torch_x, torch_params)))
  return OpCase(op, shape + ("" if input_grad else ", no dX"), [],
                {"hw": JaxImpl(on_unpacked(hw_fn), diff, other),
                 "autodiff": JaxImpl(on_unpacked(ref_fn), diff, other)}, torch_impl)


def conv_case(x_shape, layer: arch.Conv, rng, *, input_grad: bool = True) -> OpCase:
  k, c, f = layer.kernel_size, x_shape[-1], layer.features
  x, w, b = _rand(rng, *x_shape), _rand(rng, k, k, c, f) * 0.1, _rand(rng, f)
  pad = layer.padding
  params = [w, b] if layer.use_bias else [w]
  torch_pad = 0 if pad == "VALID" else "same"

  def ref_fn(x, w, b):
    y = lax.conv_general_dilated(x, w, (1, 1), pad, dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return y if b is None else y + b

  case = _weighted_case(
      "conv2d", f"x {_dims(x_shape)}, w {k}x{k}x{c}x{f}, {pad}", x, params,
      lambda x, w, b: ops.conv2d(x, w, b, padding=pad), ref_fn,
      lambda x, w, b: F.conv2d(x, w, b, padding=torch_pad),
      _nchw(x), [w.transpose(3, 2, 0, 1)] + params[1:], input_grad=input_grad)
  # the same autodiff program jitted a second time: how far a tie spreads (SELF_CONTROL)
  case.jax_impls[SELF_CONTROL] = dataclasses.replace(case.jax_impls["autodiff"])
  return case


def _pool_case(x_shape, layer: arch.MaxPool, rng) -> OpCase:
  k = layer.window
  x = _rand(rng, *x_shape)
  n, h, w, c = x_shape

  def ref_fn(x):   # what flax.linen.max_pool does: reduce_window, autodiff -> select_and_scatter
    return lax.reduce_window(x, -jnp.inf, lax.max, (1, k, k, 1), (1, k, k, 1), "VALID")

  def reshape_fn(x):   # max over a reshaped (N, H/k, k, W/k, k, C) view, autodiff
    ho, wo = h // k, w // k
    return x[:, :ho * k, :wo * k].reshape(n, ho, k, wo, k, c).max(axis=(2, 4))

  impls = {"hw": JaxImpl(lambda x: ops.max_pool(x, k), [x]),
           "autodiff": JaxImpl(ref_fn, [x]),
           "autodiff-reshape": JaxImpl(reshape_fn, [x])}
  torch_impl = None
  if torch is not None:
    torch_impl = (lambda x: F.max_pool2d(x, k), [_nchw(x)], [])
  return OpCase("max_pool", f"x {_dims(x_shape)}, window {k}", [], impls,
                torch_impl)


def _bn_case(x_shape, layer: arch.BatchNorm, rng) -> OpCase:
  eps = layer.epsilon
  c = x_shape[-1]
  x, g, b = _rand(rng, *x_shape), _rand(rng, c), _rand(rng, c)
  axes = tuple(range(len(x_shape) - 1))

  def ref_fn(x, g, b):   # as flax.linen.BatchNorm in training mode
    mean = x.mean(axes)
    var = jnp.maximum((x * x).mean(axes) - mean * mean, 0.0)
    return (x - mean) * (g * lax.rsqrt(var + eps)) + b

  torch_impl = None
  if torch is not None:
    torch_impl = (lambda x, g, b: F.batch_norm(x, None, None, g, b, training=True, eps=eps),
                  [_nchw(x), g, b], [])
  return OpCase("batch_norm", f"x {_dims(x_shape)}", [],
                {"hw": JaxImpl(lambda x, g, b: ops.batch_norm(x, g, b, eps=eps), [x, g, b]),
                 "autodiff": JaxImpl(ref_fn, [x, g, b])}, torch_impl)


def _dropout_case(x_shape, layer: arch.Dropout, rng) -> OpCase:
  """Train-time dropout: drawing the mask dominates (a fixed key: the cost is the same)."""
  rate = layer.rate
  x = _rand(rng, *x_shape)
  key = np.asarray(jax.random.key_data(jax.random.PRNGKey(0)))   # raw threefry key data

  def ref_fn(x, key):   # as flax.linen.Dropout
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return lax.select(keep, x / (1.0 - rate), jnp.zeros_like(x))

  torch_impl = None
  if torch is not None:
    torch_impl = (lambda x: F.dropout(x, rate, training=True), [_nchw(x)], [])
  return OpCase("dropout", f"x {_dims(x_shape)}, rate {rate:g}", [],
                {"hw": JaxImpl(lambda x, key: ops.dropout(x, key=key, rate=rate, train=True),
                               [x], [key]),
                 "autodiff": JaxImpl(ref_fn, [x], [key])}, torch_impl)


def _linear_case(x_shape, layer: arch.Dense, rng, *, input_grad: bool = True) -> OpCase:
  d, f = x_shape[-1], layer.features
  x, w, b = _rand(rng, *x_shape), _rand(rng, d, f) * 0.05, _rand(rng, f)
  params = [w, b] if layer.use_bias else [w]

  def ref_fn(x, w, b):
    y = x @ w
    return y if b is None else y + b

  return _weighted_case(
      "linear", f"x {_dims(x_shape)}, w {d}x{f}", x, params, ops.linear, ref_fn,
      lambda x, w, b: F.linear(x, w, b), x, [np.ascontiguousarray(w.T)] + params[1:],
      input_grad=input_grad)


def _loss_case(logits_shape, rng) -> OpCase:
  logits = _rand(rng, *logits_shape)
  labels = rng.integers(0, logits_shape[-1], logits_shape[0]).astype(np.int32)
  torch_impl = None
  if torch is not None:
    torch_impl = (lambda z, y: F.cross_entropy(z, y), [logits], [labels.astype(np.int64)])
  return OpCase(
      "softmax_cross_entropy", f"logits {_dims(logits_shape)}", [],
      {"hw": JaxImpl(lambda z, y: ops.softmax_cross_entropy(z, y), [logits], [labels]),
       "autodiff": JaxImpl(
           lambda z, y: optax.softmax_cross_entropy_with_integer_labels(z, y).mean(),
           [logits], [labels])},
      torch_impl)


OPS = ("conv2d", "max_pool", "batch_norm", "dropout", "softmax_cross_entropy", "linear")


def cases_for(architectures: Sequence[arch.Architecture], *, batch: int,
              ops: Sequence[str] = OPS, seed: int = 0) -> list[OpCase]:
  """One case per distinct (op, shape) met in the architectures' layers, in order."""
  rng = np.random.default_rng(seed)
  cases: dict[tuple[str, str], OpCase] = {}
  for architecture in architectures:
    for layer, shape, input_grad in arch.trace_with_input_grads(architecture, batch):
      if layer == "loss":
        case = _loss_case(shape, rng)
      elif isinstance(layer, arch.Conv):
        case = conv_case(shape, layer, rng, input_grad=input_grad)
      elif isinstance(layer, arch.MaxPool):
        case = _pool_case(shape, layer, rng)
      elif isinstance(layer, arch.BatchNorm):
        case = _bn_case(shape, layer, rng)
      elif isinstance(layer, arch.Dense):
        case = _linear_case(shape, layer, rng, input_grad=input_grad)
      elif isinstance(layer, arch.Dropout):
        case = _dropout_case(shape, layer, rng)
      else:
        continue
      case.flops = roofline.layer_flops(layer, shape, input_grad=input_grad) or None
      if case.op not in ops:
        continue
      case = cases.setdefault((case.op, case.shape), case)
      if architecture.name not in case.models:
        case.models.append(architecture.name)
  return list(cases.values())


def measure(case: OpCase, *, rounds: int, target_s: float) -> dict[str, Any]:
  """Interleaved fwd and f+b timings of every implementation of one case (milliseconds)."""
  runners: dict[str, timing.Runner] = {}
  for name, impl in case.jax_impls.items():
    runners[f"{name}/fwd"], runners[f"{name}/fb"] = jax_runners(impl)
  torch_names = []
  if case.torch_impl is not None:
    for threads in case.torch_threads or [1]:
      name = f"torch{threads}t"
      torch_names.append(name)
      runners[f"{name}/fwd"], runners[f"{name}/fb"] = _torch_runners(*case.torch_impl, threads)
  cpu: dict[str, list[float]] = {}
  times = timing.interleaved(runners, rounds=rounds, target_s=target_s, warmup_steps=1,
                             cpu_times=cpu)
  impls: dict[str, dict[str, float]] = {}
  for key, values in times.items():
    name, kind = key.split("/")
    impls.setdefault(name, {})[f"{kind}_ms"] = timing.quartiles(values)[1] * 1e3
    impls[name][f"{kind}_cpu_ms"] = timing.quartiles(cpu[key])[1] * 1e3
  if torch_names:   # "torch": the faster thread setting of each round
    for kind in ("fwd", "fb"):
      times[f"torch/{kind}"] = [min(v) for v in zip(*(times[f"{n}/{kind}"] for n in torch_names))]
      impls.setdefault("torch", {})[f"{kind}_ms"] = timing.quartiles(times[f"torch/{kind}"])[1] * 1e3
      impls["torch"][f"{kind}_cpu_ms"] = min(impls[n][f"{kind}_cpu_ms"] for n in torch_names)
  for values in impls.values():
    values["bwd_ms"] = max(values["fb_ms"] - values["fwd_ms"], 0.0)
    if "fb_cpu_ms" in values:
      values["bwd_cpu_ms"] = max(values["fb_cpu_ms"] - values["fwd_cpu_ms"], 0.0)
  # speed-up of hw over each alternative, per round (>1: hw is faster)
  speedups = {}
  for name in impls:
    if name in ("hw", SELF_CONTROL) or (name.startswith("torch") and name != "torch"):
      continue
    speedups[name] = _ratio_stats(times[f"{name}/fb"], times["hw/fb"])
  result = {"op": case.op, "shape": case.shape, "models": case.models, "impls": impls,
            "speedup_of_hw_fb": speedups, "flops": case.flops}
  if SELF_CONTROL in impls:
    result["autodiff_self"] = _ratio_stats(times["autodiff/fb"], times[f"{SELF_CONTROL}/fb"])
  return result


def _ratio_stats(slower: Sequence[float], faster: Sequence[float]) -> dict[str, float]:
  q1, med, q3 = timing.quartiles(timing.ratio_per_round(slower, faster))
  return {"median": med, "q1": q1, "q3": q3}
