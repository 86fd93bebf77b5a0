"""``hw paper``: recompute every worked number of the write-ups (assignments C and D) with hw.ops.

Each line shows what the write-up reports, what ``hw.ops`` computes (float64), and a
verdict: "matches" or "WRONG in the write-up" with the right value. Every computed
number is also checked against an independent computation (the closed-form derivation
in NumPy, or autodiff of plain ``jnp``); a disagreement there is a bug in *our* library
and makes the exit code 1. A wrong write-up is a finding, printed, not an error.
While it runs, one progress line per check goes to stderr (the table to stdout).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

import hw.ops
from hw.metrics import top_k_error

LIBRARY_TOLERANCE = 1e-10


@dataclasses.dataclass
class Line:
  """One worked number.

  Attributes:
    section: where it comes from (e.g. "C 1-D conv").
    quantity: what it is.
    reported: the write-up's value, or the value of the formula it states on our example
      (None when the write-up gives nothing to compare).
    computed: what hw.ops computes.
    independent: the same quantity computed without hw.ops.
    tolerance: accepted |computed - reported| (half a unit of the reported last digit).
    note: a sentence for the reader.
  """
  section: str
  quantity: str
  reported: Any
  computed: Any
  independent: Any
  tolerance: float = 1e-9
  note: str = ""

  @property
  def library_ok(self) -> bool:
    computed, independent = np.asarray(self.computed, float), np.asarray(self.independent, float)
    scale = max(1.0, float(np.max(np.abs(independent))))
    return computed.shape == independent.shape and bool(
        np.max(np.abs(computed - independent), initial=0.0) <= LIBRARY_TOLERANCE * scale)

  @property
  def verdict(self) -> str:
    if self.reported is None:
      return "not reported"
    reported = np.asarray(self.reported, float)
    computed = np.asarray(self.computed, float)
    if reported.shape != computed.shape:
      return "WRONG in the write-up"
    ok = np.max(np.abs(reported - computed), initial=0.0) <= self.tolerance
    return "matches" if ok else "WRONG in the write-up"

  def to_json(self) -> dict:
    as_list = lambda v: None if v is None else np.asarray(v, float).round(12).tolist()
    return {"section": self.section, "quantity": self.quantity,
            "reported": as_list(self.reported), "computed": as_list(self.computed),
            "independent": as_list(self.independent), "verdict": self.verdict,
            "library_ok": self.library_ok, "note": self.note}


def _f(value) -> np.ndarray:
  return np.asarray(value, dtype=np.float64)


def conv1d_regression() -> list[Line]:
  """Assignment C: y_hat_i = sum_j w_j x_{i+j} + b, L = 1/2 ||y - y_hat||^2, one SGD step."""
  x, w, b, y, lr = _f([1, 2, 3, 4]), _f([2, 1, 3]), _f(1.0), _f([2, 4]), 0.01

  def predict(w, b):
    return hw.ops.conv1d(jnp.asarray(x).reshape(1, 4, 1), w.reshape(3, 1, 1),
                         jnp.reshape(b, (1,))).reshape(2)

  def loss(w, b):
    return hw.ops.squared_error(predict(w, b), jnp.asarray(y))

  y_hat, value = predict(jnp.asarray(w), jnp.asarray(b)), loss(jnp.asarray(w), jnp.asarray(b))
  grad_w, grad_b = jax.grad(loss, argnums=(0, 1))(jnp.asarray(w), jnp.asarray(b))
  w_new, b_new = w - lr * _f(grad_w), b - lr * _f(grad_b)
  y_hat_new, value_new = predict(jnp.asarray(w_new), jnp.asarray(b_new)), loss(
      jnp.asarray(w_new), jnp.asarray(b_new))

  # By hand: windows X[i, j] = x[i + j]; residual r = y_hat - y; dL/dw = X^T r, dL/db = sum r.
  windows = np.stack([x[i:i + 3] for i in range(2)])
  hand_y = windows @ w + b
  hand_r = hand_y - y
  hand_gw, hand_gb = windows.T @ hand_r, hand_r.sum()
  hand_w, hand_b = w - lr * hand_gw, b - lr * hand_gb
  hand_y2 = windows @ hand_w + hand_b
  sec = "C 1-D conv"
  return [
      Line(sec, "y_hat", [14, 20], y_hat, hand_y),
      Line(sec, "L", 200, value, 0.5 * np.sum(hand_r ** 2)),
      Line(sec, "dL/dw", [44, 72, 100], grad_w, hand_gw),
      Line(sec, "dL/db", 28, grad_b, hand_gb),
      Line(sec, "w after SGD (lr 0.01)", [1.56, 0.28, 2], w_new, hand_w, tolerance=5e-9,
           note="w3 = 3 - 0.01*100 = 2"),
      Line(sec, "b after SGD", 0.72, b_new, hand_b, tolerance=5e-9),
      Line(sec, "y_hat after SGD", [8.84, 12.68], y_hat_new, hand_y2, tolerance=5e-9),
      Line(sec, "L after SGD", 61.064, value_new, 0.5 * np.sum((hand_y2 - y) ** 2),
           tolerance=5e-9),
  ]


def chain_rule() -> list[Line]:
  """Assignment D: f(x, y) = (x^2 + s(y)) / (3x + y - s(x)) at (1, 0), s the sigmoid."""
  def f(x, y):
    return (x ** 2 + hw.ops.sigmoid(y)) / (3 * x + y - hw.ops.sigmoid(x))

  point = (jnp.asarray(1.0), jnp.asarray(0.0))
  dfdx, dfdy = jax.grad(f, argnums=(0, 1))(*point)
  s = lambda v: 1 / (1 + np.exp(-v))
  num, den = 1 + s(0.0), 3 - s(1.0)
  hand_dx = (2 * den - num * (3 - s(1.0) * (1 - s(1.0)))) / den ** 2
  hand_dy = (s(0.0) * (1 - s(0.0)) * den - num) / den ** 2
  sec = "D chain rule"
  return [
      Line(sec, "f(1, 0)", None, f(*point), num / den),
      Line(sec, "df/dx at (1, 0)", 0.0646, dfdx, hand_dx, tolerance=5e-5),
      Line(sec, "df/dy at (1, 0)", -0.181, dfdy, hand_dy, tolerance=5e-4),
  ]


FILTER = [[4, 3, 3], [5, 5, 5], [2, 4, 3]]
PATCH = [[4, 5, 2], [3, 3, 2], [4, 3, 4]]
REPORTED_IMAGE_GRADIENT = [[4, 7, 10, 6, 3], [9, 17, 25, 16, 8], [11, 23, 34, 23, 11],
                           [7, 16, 24, 17, 8], [2, 6, 9, 7, 3]]


def convolution_5x5() -> list[Line]:
  """Assignment D: 5x5 image, 3x3 filter, stride 1, VALID; F11 and the image gradient."""
  kernel = _f(FILTER).reshape(3, 3, 1, 1)
  f11 = hw.ops.conv2d(jnp.asarray(_f(PATCH)).reshape(1, 3, 3, 1), jnp.asarray(kernel))
  # Only the top-left patch is known; the gradient w.r.t. the image does not depend on
  # the image, so any completion (zeros here) gives the same matrix.
  image = np.zeros((5, 5))
  image[:3, :3] = PATCH
  upstream = jnp.ones((1, 3, 3, 1))
  image_grad = jax.grad(lambda img: jnp.sum(
      hw.ops.conv2d(img, jnp.asarray(kernel)) * upstream))(jnp.asarray(image).reshape(1, 5, 5, 1))
  hand_grad = np.zeros((5, 5))
  for i in range(3):
    for j in range(3):
      hand_grad[i:i + 3, j:j + 3] += _f(FILTER)  # each output adds the filter where it looked
  flipped = float(np.sum(_f(PATCH) * _f(FILTER)[::-1, ::-1]))
  sec = "D 5x5 convolution"
  return [
      Line(sec, "F11 (correlation, no kernel flip)", 109, f11.reshape(()),
           float(np.sum(_f(PATCH) * _f(FILTER))),
           note=f"with a flipped kernel (true convolution) F11 would be {flipped:g}; the other "
                "eight reported outputs need the rest of the image, which the write-up lacks"),
      Line(sec, "d(sum F)/d image (all-ones upstream)", REPORTED_IMAGE_GRADIENT,
           image_grad.reshape(5, 5), hand_grad),
  ]


def softmax_regression() -> list[Line]:
  """Assignment D: dl/dW for l = -sum_i y_i log softmax(Wx)_i on one example."""
  x = _f([1.0, 2.0, -1.0])
  weights = _f([[0.1, 0.2, 0.3], [0.0, -0.1, 0.2], [0.3, 0.1, -0.2], [-0.2, 0.4, 0.1]])
  label = 1
  y = np.eye(4)[label]

  def loss(w):
    logits = hw.ops.linear(jnp.asarray(x)[None, :], w.T)
    return hw.ops.softmax_cross_entropy(logits, jnp.asarray([label]), reduction="sum")

  autodiff = _f(jax.grad(loss)(jnp.asarray(weights)))
  y_hat = _f(hw.ops.softmax(jnp.asarray(weights @ x)))
  write_up = -y[:, None] * x[None, :] * (1 - y_hat)[:, None]
  correct = np.outer(y_hat - y, x)

  def plain_loss(w):  # plain jnp, no hw.ops
    return -jax.nn.log_softmax(w @ jnp.asarray(x))[label]
  plain = _f(jax.grad(plain_loss)(jnp.asarray(weights)))
  sec = "D softmax regression"
  return [
      Line(sec, "dl/dW, write-up formula -y_i x_j (1 - y_hat_i) vs autodiff", write_up,
           autodiff, plain, tolerance=1e-9,
           note=f"max |write-up - autodiff| = {np.max(np.abs(write_up - autodiff)):.4f}: the "
                "formula keeps only the true-class row and drops y_hat_i x_j for i != label"),
      Line(sec, "dl/dW, correct formula (y_hat - y) x^T vs autodiff", correct, autodiff, plain,
           tolerance=1e-12,
           note=f"max |(y_hat - y) x^T - autodiff| = {np.max(np.abs(correct - autodiff)):.1e}"),
  ]


def softmax_cross_entropy_logit_gradient() -> list[Line]:
  """Assignment B: d loss / d z = softmax(z) - y for softmax cross-entropy."""
  z = _f([[0.5, -1.2, 2.0, 0.1], [1.5, 0.3, -0.7, 0.0]])
  labels = np.array([2, 0])
  autodiff = jax.grad(lambda v: hw.ops.softmax_cross_entropy(
      v, jnp.asarray(labels), reduction="sum"))(jnp.asarray(z))
  formula = _f(jax.nn.softmax(jnp.asarray(z), axis=-1)) - np.eye(4)[labels]
  return [Line("B softmax cross-entropy", "dloss/dz = softmax(z) - y", formula, autodiff,
               formula, tolerance=1e-12)]


def tsne_gradient() -> list[Line]:
  """Assignment D: dC/dy_i = 4 sum_j (p_ij - q_ij)(y_i - y_j)(1 + |y_i - y_j|^2)^-1."""
  rng = np.random.default_rng(0)
  n = 6
  embedding = rng.standard_normal((n, 2))
  affinity = rng.random((n, n))
  p = affinity + affinity.T
  np.fill_diagonal(p, 0.0)
  p /= p.sum()
  off_diagonal = ~np.eye(n, dtype=bool)

  def kl_cost(y):
    kernel = 1.0 / (1.0 + jnp.sum((y[:, None, :] - y[None, :, :]) ** 2, axis=-1))
    kernel = jnp.where(off_diagonal, kernel, 0.0)
    q = kernel / jnp.sum(kernel)
    safe = jnp.where(off_diagonal, q, 1.0)
    return jnp.sum(jnp.where(off_diagonal, p * (jnp.log(jnp.where(off_diagonal, p, 1.0))
                                                - jnp.log(safe)), 0.0))

  autodiff = _f(jax.grad(kl_cost)(jnp.asarray(embedding)))
  diff = embedding[:, None, :] - embedding[None, :, :]
  kernel = np.where(off_diagonal, 1.0 / (1.0 + np.sum(diff ** 2, axis=-1)), 0.0)
  q = kernel / kernel.sum()
  formula = 4 * np.sum(((p - q) * kernel)[:, :, None] * diff, axis=1)
  return [Line("D t-SNE", "dC/dy_i formula vs autodiff of KL(P||Q), 6 points in 2-D", formula,
               autodiff, formula, tolerance=1e-12,
               note="the write-up's own answer is garbled; this is the formula assignment D "
                    "states")]


def top_k_example() -> list[Line]:
  """Assignment D: top-k error on a small example, against counting by hand."""
  scores = _f([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5], [0.6, 0.1, 0.3]])
  labels = np.array([1, 1, 0, 1])
  # By hand: ranks of the true class: 0, 1, 2, 2 -> top-1 misses 3 of 4, top-2 misses 2.
  return [
      Line("D top-k error", "top-1 error (4 samples)", None, top_k_error(scores, labels, 1), 0.75),
      Line("D top-k error", "top-2 error (4 samples)", None, top_k_error(scores, labels, 2), 0.5),
      Line("D top-k error", "top-3 error (4 samples)", None, top_k_error(scores, labels, 3), 0.0),
  ]


CHECKS: tuple[Callable[[], list[Line]], ...] = (
    conv1d_regression, chain_rule, convolution_5x5, softmax_regression,
    softmax_cross_entropy_logit_gradient, tsne_gradient, top_k_example)


def all_lines(progress: Callable[[str], None] | None = None) -> list[Line]:
  """Every worked number, check by check; ``progress`` gets one line per check as it
  finishes (its sections, how many numbers, its verdicts, the seconds it took)."""
  lines: list[Line] = []
  with jax.enable_x64(True):
    for index, check in enumerate(CHECKS):
      began = time.perf_counter()
      found = check()
      lines += found
      if progress is not None:
        sections = ", ".join(dict.fromkeys(line.section for line in found))
        wrong = sum(line.verdict.startswith("WRONG") for line in found)
        library = ("hw.ops agrees" if all(line.library_ok for line in found)
                   else "LIBRARY DISAGREES")
        numbers = f"{len(found)} number" + ("s" if len(found) != 1 else "")
        progress(f"[paper] {index + 1}/{len(CHECKS)} {sections}: {numbers}, "
                 f"{library}, write-up wrong on {wrong} ({time.perf_counter() - began:.1f} s)")
  return lines


def _show(value) -> str:
  if value is None:
    return "-"
  array = np.asarray(value, float)
  if array.ndim == 0:
    return f"{float(array):.6g}"
  return np.array2string(array, precision=6, suppress_small=True, max_line_width=200,
                         separator=", ").replace("\n", "")


def format_lines(lines: Sequence[Line]) -> str:
  out = []
  section = None
  for line in lines:
    if line.section != section:
      section = line.section
      out.append(f"\n[{section}]")
    verdict = line.verdict
    if verdict.startswith("WRONG"):
      verdict += f" (right value: {_show(line.computed)})"
    if not line.library_ok:
      verdict += f"  LIBRARY DISAGREES with independent computation {_show(line.independent)}"
    out.append(f"  {line.quantity}")
    out.append(f"    reported: {_show(line.reported)}")
    out.append(f"    computed: {_show(line.computed)}")
    out.append(f"    verdict:  {verdict}")
    if line.note:
      out.append(f"    note:     {line.note}")
  return "\n".join(out).lstrip("\n")


def main(argv: Sequence[str] | None = None) -> int:
  """Entry point of ``hw paper``: 0 when hw.ops agrees with every independent computation."""
  parser = argparse.ArgumentParser(prog="hw paper", description=__doc__.splitlines()[0])
  parser.add_argument("--json", action="store_true", help="print the lines as JSON")
  args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
  lines = all_lines(progress=lambda line: print(line, file=sys.stderr, flush=True))
  library_ok = all(line.library_ok for line in lines)
  wrong = [line for line in lines if line.verdict.startswith("WRONG")]
  if args.json:
    print(json.dumps({"library_ok": library_ok, "write_up_errors": len(wrong),
                      "lines": [line.to_json() for line in lines]}, indent=2))
  else:
    print(format_lines(lines))
    print(f"\n{len(lines)} numbers; write-up wrong on {len(wrong)}: "
          + ("; ".join(f"{l.section}: {l.quantity}" for l in wrong) or "none"))
    print("hw.ops agrees with every independent computation" if library_ok
          else "hw.ops DISAGREES with an independent computation (see LIBRARY DISAGREES)")
  return 0 if library_ok else 1


if __name__ == "__main__":
  sys.exit(main())
