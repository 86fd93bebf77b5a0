"""`hw paper`: the worked numbers of assignments C and D, and the write-up errors it flags."""
from __future__ import annotations

import json
import re

import jax.numpy as jnp
import numpy as np
import pytest

import hw.ops
from experiments import paper


@pytest.fixture(scope="module")
def lines():
  return {(line.section, line.quantity): line for line in paper.all_lines()}


def _computed(lines, section, prefix):
  """The computed value of the line named ``prefix`` (exact name first, else by prefix)."""
  if (section, prefix) in lines:
    return np.asarray(lines[(section, prefix)].computed, float)
  (line,) = [l for (s, q), l in lines.items() if s == section and q.startswith(prefix)]
  return np.asarray(line.computed, float)


def test_conv1d_regression_numbers(lines):
  sec = "C 1-D conv"
  # Derived by hand: y_hat = [2+2+9+1, 4+3+12+1]; residual [12, 16]; dL/dw_j = sum_i r_i x_{i+j}.
  np.testing.assert_allclose(_computed(lines, sec, "y_hat"), [14, 20], atol=1e-12)
  np.testing.assert_allclose(_computed(lines, sec, "L"), 200, atol=1e-12)
  np.testing.assert_allclose(_computed(lines, sec, "dL/dw"), [44, 72, 100], atol=1e-12)
  np.testing.assert_allclose(_computed(lines, sec, "dL/db"), 28, atol=1e-12)
  np.testing.assert_allclose(_computed(lines, sec, "w after"), [1.56, 0.28, 2.0], atol=1e-12)
  np.testing.assert_allclose(_computed(lines, sec, "b after"), 0.72, atol=1e-12)
  np.testing.assert_allclose(_computed(lines, sec, "y_hat after"), [8.84, 12.68], atol=1e-12)
  np.testing.assert_allclose(_computed(lines, sec, "L after"), 61.064, atol=1e-12)


def test_chain_rule_against_finite_differences(lines):
  s = lambda v: 1 / (1 + np.exp(-v))
  f = lambda x, y: (x ** 2 + s(y)) / (3 * x + y - s(x))
  h = 1e-6
  fd_x = (f(1 + h, 0) - f(1 - h, 0)) / (2 * h)
  fd_y = (f(1, h) - f(1, -h)) / (2 * h)
  np.testing.assert_allclose(_computed(lines, "D chain rule", "df/dx"), fd_x, atol=1e-8)
  np.testing.assert_allclose(_computed(lines, "D chain rule", "df/dy"), fd_y, atol=1e-8)
  np.testing.assert_allclose([fd_x, fd_y], [0.064645, -0.181186], atol=1e-6)


def test_convolution_5x5(lines):
  sec = "D 5x5 convolution"
  assert float(_computed(lines, sec, "F11")) == 109.0
  np.testing.assert_array_equal(_computed(lines, sec, "d(sum F)"),
                                [[4, 7, 10, 6, 3], [9, 17, 25, 16, 8], [11, 23, 34, 23, 11],
                                 [7, 16, 24, 17, 8], [2, 6, 9, 7, 3]])


def test_image_gradient_does_not_depend_on_the_unknown_pixels():
  import jax
  kernel = jnp.asarray(paper.FILTER, jnp.float32).reshape(3, 3, 1, 1)
  grad = lambda img: jax.grad(lambda v: hw.ops.conv2d(v, kernel).sum())(img).reshape(5, 5)
  rng = np.random.default_rng(0)
  a = grad(jnp.asarray(rng.standard_normal((1, 5, 5, 1)), jnp.float32))
  b = grad(jnp.zeros((1, 5, 5, 1), jnp.float32))
  np.testing.assert_array_equal(a, b)


def test_softmax_regression_write_up_is_wrong_and_correct_formula_matches(lines):
  sec = "D softmax regression"
  wrong, right = sorted((l for (s, _), l in lines.items() if s == sec), key=lambda l: l.quantity)
  assert "correct formula" in wrong.quantity or "correct formula" in right.quantity
  correct = right if "correct formula" in right.quantity else wrong
  write_up = wrong if correct is right else right
  assert correct.verdict == "matches"
  assert write_up.verdict == "WRONG in the write-up"
  np.testing.assert_allclose(write_up.computed, correct.computed, atol=1e-12)
  assert np.max(np.abs(np.asarray(write_up.reported) - np.asarray(write_up.computed))) > 0.1


def test_logit_gradient_and_tsne_formula_match_autodiff(lines):
  assert lines[("B softmax cross-entropy", "dloss/dz = softmax(z) - y")].verdict == "matches"
  (tsne,) = [l for (s, _), l in lines.items() if s == "D t-SNE"]
  assert tsne.verdict == "matches"
  assert np.max(np.abs(np.asarray(tsne.computed))) > 1e-3  # not a trivially zero gradient


def test_every_line_agrees_with_its_independent_computation(lines):
  assert all(line.library_ok for line in lines.values())


def test_printout_flags_exactly_the_write_up_errors(capsys):
  assert paper.main([]) == 0
  out = capsys.readouterr().out
  blocks = re.split(r"\n  (?=\S)", out)  # one block per quantity
  flagged = [block for block in blocks if "WRONG in the write-up" in block]
  assert len(flagged) == 1 and "write-up formula -y_i x_j (1 - y_hat_i)" in flagged[0]
  assert "right value:" in out
  assert "write-up wrong on 1" in out


def test_json_output(capsys):
  assert paper.main(["--json"]) == 0
  report = json.loads(capsys.readouterr().out)
  assert report["library_ok"] is True and report["write_up_errors"] == 1
  verdicts = {(l["section"], l["quantity"]): l["verdict"] for l in report["lines"]}
  assert verdicts[("C 1-D conv", "dL/dw")] == "matches"
  assert verdicts[("D chain rule", "df/dx at (1, 0)")] == "matches"


def test_a_wrong_library_op_makes_paper_fail(monkeypatch, capsys):
  real = hw.ops.conv1d
  monkeypatch.setattr(hw.ops, "conv1d", lambda x, w, b=None: real(x, w, b) * 1.001)
  assert paper.main([]) == 1
  assert "LIBRARY DISAGREES" in capsys.readouterr().out


def test_a_wrong_reported_number_is_flagged():
  line = paper.Line("C 1-D conv", "w after SGD", [1.56, 0.28, 3.0], [1.56, 0.28, 2.0],
                    [1.56, 0.28, 2.0])
  assert line.verdict == "WRONG in the write-up" and line.library_ok


def test_progress_lines_go_to_stderr_not_into_the_table(capsys):
  for argv in ([], ["--json"]):
    assert paper.main(argv) == 0
    captured = capsys.readouterr()
    progress = [line for line in captured.err.splitlines() if line.startswith("[paper] ")]
    assert len(progress) == len(paper.CHECKS), captured.err
    assert progress[0].startswith(f"[paper] 1/{len(paper.CHECKS)} C 1-D conv: ")
    assert any("write-up wrong on 1" in line for line in progress)
    assert all("hw.ops agrees" in line and line.endswith(" s)") for line in progress)
    assert "[paper]" not in captured.out
  json.loads(captured.out)   # the JSON output is still nothing but JSON
