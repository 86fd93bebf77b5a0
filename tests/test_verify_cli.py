"""`hw verify`: output structure, exit codes, and proof that it can fail."""
from __future__ import annotations

import dataclasses
import json

import jax
import jax.numpy as jnp

from hw.verification import references as ref
from hw.verification import verify
from hw.verification.verify import check_case
from hw.verification.registry import REGISTRY, case_key

SOME_OPS = "relu,squared_error,max_pool"


def _run_json(capsys, argv, **kwargs):
  code = verify.main(["--json", *argv], **kwargs)
  return code, json.loads(capsys.readouterr().out)


def test_json_structure_and_success(capsys):
  code, report = _run_json(capsys, ["--ops", SOME_OPS, "--cases"])
  assert code == 0
  assert report["passed"] is True
  # An op name selects its automatic row and one row per implementation path.
  assert [entry["op"] for entry in report["ops"]] == [
      "relu", "squared_error", "max_pool", "max_pool[blocks]", "max_pool[windows]"]
  assert [(entry["function"], entry["algorithm"]) for entry in report["ops"]] == [
      ("relu", "automatic"), ("squared_error", "automatic"), ("max_pool", "automatic"),
      ("max_pool", "blocks"), ("max_pool", "windows")]
  for entry in report["ops"]:
    assert entry["status"] == "pass"
    assert entry["cases"] == len(entry["case_results"]) > 0
    assert entry["max_rel_err"] <= 1e-10
    assert set(entry["finite_differences"]) == {"pass", "fail", "n.a."}
    assert sum(entry["finite_differences"].values()) == entry["cases"]
    assert entry["float32_jit"] == "pass"
  for max_pool in report["ops"][3:]:
    assert max_pool["finite_differences"]["n.a."] >= 1  # the tie cases


def test_table_lists_every_requested_row(capsys):
  assert verify.main(["--ops", "relu,avg_pool[windows]"]) == 0
  out = capsys.readouterr().out
  rows = [line.split()[0] for line in out.splitlines()[2:4]]
  assert rows == ["relu", "avg_pool[windows]"]
  assert "max rel err" in out and "all rows pass" in out
  assert "op[path]: that implementation path pinned" in out
  assert "2 ops in 2 rows (1 pinned implementation paths)" in out


def test_unknown_op_is_an_error(capsys):
  assert verify.main(["--ops", "no_such_op"]) == 2
  assert "no_such_op" in capsys.readouterr().err
  assert verify.main(["--ops", "conv2d[fft]"]) == 2
  assert "conv2d[fft]" in capsys.readouterr().err


def test_select_orders_rows_as_requested():
  assert verify.select(REGISTRY, ["max_pool[windows]", "relu"]) == ["max_pool[windows]", "relu"]
  assert verify.select(REGISTRY, ["conv2d[lax]", "conv2d"]) == [
      "conv2d[lax]", "conv2d", "conv2d[shift]", "conv2d[shift_lax]", "conv2d[im2col]",
      "conv2d[lax_im2col]", "conv2d[lax_matmul_dw]", "conv2d[winograd]", "conv2d[dense]"]
  assert verify.select(REGISTRY, []) == list(REGISTRY)


@jax.custom_vjp
def _tanh_with_doubled_gradient(x):
  return jnp.tanh(x)


def _fwd(x):
  y = jnp.tanh(x)
  return y, y


def _bwd(y, dy):
  return (2.0 * (1.0 - y * y) * dy,)


_tanh_with_doubled_gradient.defvjp(_fwd, _bwd)


def test_broken_vjp_is_reported_as_failing(capsys):
  broken = dataclasses.replace(REGISTRY["tanh"], op=_tanh_with_doubled_gradient)
  code, report = _run_json(capsys, [], registry={"tanh": broken})
  assert code == 1
  assert report["passed"] is False
  (entry,) = report["ops"]
  assert entry["status"] == "FAIL"
  assert entry["max_rel_err"] > 0.5
  assert entry["finite_differences"]["fail"] == entry["cases"]
  assert entry["float32_jit"] == "FAIL"


def test_wrong_forward_is_reported_as_failing(capsys):
  broken = dataclasses.replace(REGISTRY["relu"], op=lambda x: ref.relu(x) + 1e-6)
  code, report = _run_json(capsys, [], registry={"relu": broken})
  assert code == 1
  assert report["ops"][0]["status"] == "FAIL"


def test_crashing_op_is_reported_not_raised(capsys):
  def crashes(x):
    raise RuntimeError("boom")
  broken = dataclasses.replace(REGISTRY["sigmoid"], op=crashes)
  code, report = _run_json(capsys, [], registry={"sigmoid": broken})
  assert code == 1
  assert any("boom" in failure for failure in report["ops"][0]["failures"])


def _case(op_name, case_name):
  spec = REGISTRY[op_name]
  (case,) = [c for c in spec.make_cases(case_key(0, op_name)) if c.name == case_name]
  return spec, case


def test_relu_gradient_at_zero_is_enforced():
  """jnp.maximum(x, 0) gives relu'(0) = 1/2; the contract says 0."""
  spec, case = _case("relu", "exact-zeros")
  assert check_case(spec, case).passed
  assert not check_case(spec, case, op=lambda x: jnp.maximum(x, 0.0)).passed


def test_max_pool_tie_rule_is_enforced():
  """Splitting the gradient among tied maxima (jnp.max's rule) is not first-arg-max routing."""
  spec, case = _case("max_pool[blocks]", "ties-integers")

  def split_ties_max_pool(x, window=2, stride=None, *, algorithm=None):
    n, h, w, c = x.shape
    blocks = x[:, :h // 2 * 2, :w // 2 * 2].reshape(n, h // 2, 2, w // 2, 2, c)
    return jnp.max(blocks, axis=(2, 4))
  assert check_case(spec, case).passed
  assert not check_case(spec, case, op=split_ties_max_pool).passed


def test_chart_of_the_worst_errors(tmp_path):
  chart = tmp_path / "errors.png"
  assert verify.main(["--ops", "relu", "--chart", str(chart)]) == 0
  assert chart.stat().st_size > 5000
