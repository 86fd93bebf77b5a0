"""Measure which planted wrong backward rules each gradient checker detects.

    PYTHONPATH=.:examples python examples/compare.py   # prints the Markdown table

Every tool gets the same float64 inputs (``vjp_demo.planted``). "Detected" means the
call raised (an assertion or any other error); the correct twin of every rule is run
too, and a raise there is a false alarm. Tools:

* ``check_vjp``: ``hw.testing.check_vjp(f, *args, reference=..., order=2)``, and without
  a reference (finite differences and structure checks only);
* ``check_grads``: ``jax.test_util.check_grads(f, args, order, modes=["rev"])`` (forward
  mode does not apply to a ``custom_vjp``), orders 1 and 2;
* ``chex``: ``chex.assert_numerical_grads(f, args, order, modes=["rev"])`` (it calls
  ``check_grads`` with an absolute tolerance of 0.01 × the first input's size), orders 1
  and 2. With its default modes it raises ``TypeError`` on every ``custom_vjp``, correct
  or not (it applies forward mode), so ``modes=["rev"]`` is passed;
* ``gradcheck`` (only when PyTorch is installed): ``torch.autograd.gradcheck(fn, inputs)``
  with its defaults on the ``torch.autograd.Function`` twin of each rule
  (``vjp_demo.torch_twins``: same forward, same wrong or right backward, float64 tensors
  made from the same arrays); then that plus ``torch.autograd.gradgradcheck`` (finite
  differences of the backward against its own derivative: the analogue of order 2); then
  both with ``check_batched_grad=True`` (the backward under ``vmap`` over a batch of
  cotangents, not of inputs). "Detected" there also counts a ``False`` return.
  ``gradgradcheck`` draws random cotangents: torch is seeded with 0 before each call.
"""
from __future__ import annotations

import argparse
import importlib.util
import time

import chex
import jax
from jax import test_util

import hw.testing
from vjp_demo.planted import CORRECT, PLANTED


def _check_vjp(order, with_reference):
  def run(p):
    hw.testing.check_vjp(p.f, *p.args(), reference=p.reference if with_reference else None,
                         kinks=p.kinks, order=order)
  return run


def _check_grads(order):
  def run(p):
    with jax.enable_x64(True):
      test_util.check_grads(p.f, p.args(), order=order, modes=["rev"])
  return run


def _chex(order):
  def run(p):
    with jax.enable_x64(True):
      chex.assert_numerical_grads(p.f, p.args(), order=order, modes=["rev"])
  return run


def _gradcheck(order, batched):
  """gradcheck (order 1), then gradgradcheck (order 2), on the rule's PyTorch twin."""
  import torch  # only with PyTorch installed: see TOOLS
  from vjp_demo import torch_twins
  twin_of = {**{PLANTED[n].f: torch_twins.PLANTED[n] for n in PLANTED},
             **{CORRECT[n].f: torch_twins.CORRECT[n] for n in CORRECT}}
  checks = [torch.autograd.gradcheck] + ([torch.autograd.gradgradcheck] if order == 2 else [])
  options = {"check_batched_grad": True} if batched else {}

  def run(p):
    twin = twin_of[p.f]
    for check in checks:
      torch.manual_seed(0)  # gradgradcheck draws its cotangents with torch's generator
      if not check(twin.apply, torch_twins.inputs(p.args()), **options):
        raise AssertionError(f"{check.__name__} returned False")
  return run


TOOLS = {
    "check_vjp (reference, order 2)": _check_vjp(2, True),
    "check_vjp (no reference, order 2)": _check_vjp(2, False),
    "check_grads (order 1)": _check_grads(1),
    "check_grads (order 2)": _check_grads(2),
    "chex.assert_numerical_grads (rev, order 1)": _chex(1),
    "chex.assert_numerical_grads (rev, order 2)": _chex(2),
}
if importlib.util.find_spec("torch") is not None:
  TOOLS.update({
      "gradcheck (defaults)": _gradcheck(1, batched=False),
      "gradcheck + gradgradcheck": _gradcheck(2, batched=False),
      "gradcheck + gradgradcheck (check_batched_grad)": _gradcheck(2, batched=True),
  })


def raises(run, p) -> bool:
  try:
    run(p)
  except Exception:  # noqa: BLE001 - any raise counts as a detection
    return True
  return False


def measure() -> dict:
  results = {}
  for tool, run in TOOLS.items():
    start = time.perf_counter()
    detected = {name: raises(run, p) for name, p in PLANTED.items()}
    false_alarms = {name: raises(run, p) for name, p in CORRECT.items()}
    results[tool] = {"detected": detected, "false_alarms": false_alarms,
                     "seconds": time.perf_counter() - start}
  return results


def markdown(results) -> str:
  tools = list(results)
  lines = ["| planted bug | " + " | ".join(tools) + " |",
           "|---|" + "---|" * len(tools)]
  for name, p in PLANTED.items():
    lines.append(f"| `{name}`: {p.what} | " + " | ".join(
        "detected" if results[t]["detected"][name] else "—" for t in tools) + " |")
  lines.append("| **detected** | " + " | ".join(
      f"**{sum(results[t]['detected'].values())}/{len(PLANTED)}**" for t in tools) + " |")
  lines.append("| false alarms on the correct rules | " + " | ".join(
      f"{sum(results[t]['false_alarms'].values())}/{len(CORRECT)}"
      + (" (" + ", ".join(n for n, v in results[t]["false_alarms"].items() if v) + ")"
         if any(results[t]["false_alarms"].values()) else "") for t in tools) + " |")
  return "\n".join(lines)


def main():
  argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
  print(markdown(measure()))


if __name__ == "__main__":
  main()
