"""The op registry covers every op and every implementation path, and what it checks
catches a backward rule perturbed anywhere.

* every public op of ``hw.ops`` has a row; every name of ``hw.ops.ALGORITHMS`` (the
  ``algorithm=`` values of the conv and pooling ops) has a pinned row ``op[name]``;
* the automatic rows' cases land on the path their names say;
* scaling the output of any backward rule (every ``custom_vjp`` of hw.ops, and each
  dW / dX helper of each conv algorithm) by 1 + 1e-6 makes a registry case fail;
* the cases' seeds come from a stable hash of the row name.
"""
from __future__ import annotations

import inspect
import zlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import hw.ops
from hw.testing.mutation import custom_vjps
import hw.tsne
from hw.ops import convolution, pooling
from hw.testing._core import bind_case, fast_compilation
from hw.verification.verify import check_case
from hw.verification.registry import REGISTRY, case_key, rows_of

PERTURBATION = 1.0 + 1e-6


@pytest.fixture(scope="module", autouse=True)
def _fast_compilation():
  with fast_compilation():
    yield


# Custom-VJP functions outside hw.ops that the registry proves too.
BEYOND_OPS = {"tsne_kl": hw.tsne.tsne_kl, "sne_kl": hw.tsne.sne_kl}


def test_every_public_op_has_a_row_calling_it():
  assert {spec.function for spec in REGISTRY.values()} == set(hw.ops.__all__) | set(BEYOND_OPS)
  for spec in REGISTRY.values():
    assert spec.op is BEYOND_OPS.get(spec.function, getattr(hw.ops, spec.function, None)), spec.name
    assert spec.function in REGISTRY, f"{spec.name}: no automatic row {spec.function}"


def test_ops_with_an_algorithm_argument_are_exactly_those_listed():
  with_argument = {name for name in hw.ops.__all__
                   if "algorithm" in inspect.signature(getattr(hw.ops, name)).parameters}
  assert with_argument == set(hw.ops.ALGORITHMS)
  assert hw.ops.ALGORITHMS["conv2d"] == tuple(convolution.ALGORITHMS)
  # conv1d's kernels are 1 × K: every conv algorithm but the 3×3 Winograd one
  assert hw.ops.ALGORITHMS["conv1d"] == convolution.CONV1D_ALGORITHMS == tuple(
      a for a in convolution.ALGORITHMS if a != "winograd")
  for name in ("max_pool", "avg_pool", "adaptive_avg_pool", "adaptive_max_pool"):
    assert hw.ops.ALGORITHMS[name] == tuple(pooling.ALGORITHMS)


@pytest.mark.parametrize("name", sorted(hw.ops.ALGORITHMS))
def test_every_implementation_path_has_a_pinned_row(name):
  pinned = {REGISTRY[row].algorithm for row in rows_of(name)} - {None}
  assert pinned == set(hw.ops.ALGORITHMS[name])
  for algorithm in hw.ops.ALGORITHMS[name]:
    spec = REGISTRY[f"{name}[{algorithm}]"]
    assert spec.algorithm == algorithm and spec.function == name
    assert spec.make_cases(case_key(0, spec.name)), spec.name
  # The op's own validation names exactly these paths.
  op = getattr(hw.ops, name)
  spec = REGISTRY[name]
  case = spec.make_cases(case_key(0, name))[0]
  with pytest.raises(ValueError) as error:
    op(*case.args, **case.kwargs, algorithm="no-such-path")
  assert str(list(hw.ops.ALGORITHMS[name])) in str(error.value)


def _pair(value):
  return (value, value) if isinstance(value, int) else tuple(value)


def _automatic_choice(spec, case):
  """The path the automatic choice takes on ``case`` (from the ops' own choosers)."""
  x = case.args[0]
  if spec.function == "conv2d":
    return convolution._geometry(x, case.args[1], case.args[2], case.kwargs["stride"],
                                 case.kwargs["padding"]).algorithm
  if spec.function == "conv1d":
    n, length, c = x.shape
    return convolution._geometry(np.zeros((n, 1, length, c)), case.args[1][None],
                                 case.args[2], 1, "VALID").algorithm
  h, w = x.shape[1:3]
  if spec.function.startswith("adaptive"):
    oh, ow = _pair(case.args[1])
    windows = pooling._adaptive_windows(h, oh), pooling._adaptive_windows(w, ow)
  else:
    kh, kw = _pair(case.kwargs.get("window", 2))
    stride = case.kwargs.get("stride")
    sh, sw = (kh, kw) if stride is None else _pair(stride)
    windows = pooling._regular_windows(h, kh, sh), pooling._regular_windows(w, kw, sw)
  return pooling._resolve_algorithm(*windows, None, "")


@pytest.mark.parametrize("name", sorted(set(hw.ops.ALGORITHMS) - {"conv1d"}))
def test_automatic_rows_land_on_every_path_their_case_names_say(name):
  spec = REGISTRY[name]
  picked = set()
  for case in spec.make_cases(case_key(0, name)):
    assert case.name.startswith("picks-"), case.name
    algorithm = _automatic_choice(spec, case)
    assert case.name.startswith(f"picks-{algorithm}"), (case.name, algorithm)
    assert case.name[len(f"picks-{algorithm}"):][:1] in ("", "-")
    picked.add(algorithm)
  assert picked == set(hw.ops.ALGORITHMS[name])


def test_pinned_rows_hold_cases_their_path_accepts():
  for spec in REGISTRY.values():
    if spec.algorithm is None:
      continue
    for case in spec.make_cases(case_key(0, spec.name)):
      f, primals, extras = bind_case(spec.bind(), case, jnp.float32)
      jax.eval_shape(f, primals, extras)  # raises if the path cannot apply


def test_conv1d_automatic_row_takes_the_narrow_shift_lax_path():
  spec = REGISTRY["conv1d"]
  assert {_automatic_choice(spec, c) for c in spec.make_cases(case_key(0, "conv1d"))} == {
      "shift_lax"}


# ---------------------------------------------------------------- perturbed backward rules

def _fails(spec, case):
  result = check_case(spec, case, finite_differences=False)
  return not result.passed and not result.error and result.grad_rel_err > 1e-8


_CONV_HELPERS = {
    "kernel_grad": {"im2col": "_kernel_grad_im2col", "matmul": "_kernel_grad_matmul",
                    "lax": "_kernel_grad_lax", "winograd": "_kernel_grad_winograd",
                    "dense": "_kernel_grad_dense"},
    "input_grad": {"col2im": "_input_grad_col2im", "lax": "_input_grad_transposed_conv",
                   "winograd": "_input_grad_winograd", "dense": "_input_grad_dense"},
}


@pytest.mark.parametrize("part", sorted(_CONV_HELPERS))
@pytest.mark.parametrize("algorithm", list(convolution.ALGORITHMS))
def test_perturbed_conv_helper_fails_the_rows_of_its_path(part, algorithm, monkeypatch):
  """dW or dX of one conv algorithm scaled by 1 + 1e-6: the pinned rows of that algorithm
  (conv2d and conv1d) and the automatic conv2d case that picks it fail."""
  helper = _CONV_HELPERS[part][getattr(convolution.ALGORITHMS[algorithm], part)]
  original = getattr(convolution, helper)
  monkeypatch.setattr(convolution, helper, lambda *args: original(*args) * PERTURBATION)
  for row in (f"conv2d[{algorithm}]", f"conv1d[{algorithm}]"):
    if row not in REGISTRY:  # conv1d has no Winograd row (its kernels are 1 × K)
      continue
    spec = REGISTRY[row]
    assert _fails(spec, spec.make_cases(case_key(0, row))[0]), row
  spec = REGISTRY["conv2d"]
  (case,) = [c for c in spec.make_cases(case_key(0, "conv2d"))
             if c.name == f"picks-{algorithm}"]
  assert _fails(spec, case)


def _custom_vjp_objects():
  return custom_vjps("hw.ops")


def _perturb_bwd(monkeypatch, fn):
  original = fn.bwd

  def perturbed(*args):
    return tuple(None if g is None else g * PERTURBATION for g in original(*args))
  monkeypatch.setattr(fn, "bwd", perturbed)


@pytest.fixture(scope="module")
def first_case_using():
  """custom_vjp label -> the first (row, case) of the registry whose VJP runs its bwd."""
  objects = _custom_vjp_objects()
  found = {}
  with pytest.MonkeyPatch.context() as patch:
    current = {}
    for label, fn in objects.items():
      def recording(*args, _bwd=fn.bwd, _label=label):
        found.setdefault(_label, current["at"])
        return _bwd(*args)
      patch.setattr(fn, "bwd", recording)
    for row, spec in REGISTRY.items():
      for case in spec.make_cases(case_key(0, row)):
        if len(found) == len(objects):
          return found
        current["at"] = (row, case)
        f, primals, extras = bind_case(spec.bind(), case, jnp.float32)

        def pullback(p, e, f=f):
          out, vjp = jax.vjp(lambda *q: f(q, e), *p)
          return vjp(jnp.ones_like(out))
        jax.make_jaxpr(pullback)(primals, extras)  # traces the backward rules
  return found


@pytest.mark.parametrize("label", sorted(_custom_vjp_objects()))
def test_perturbed_backward_rule_fails_a_registry_case(label, first_case_using, monkeypatch):
  assert label in first_case_using, f"no registry case runs the backward rule of {label}"
  row, case = first_case_using[label]
  _perturb_bwd(monkeypatch, _custom_vjp_objects()[label])
  assert _fails(REGISTRY[row], case), (row, case.name)


@pytest.mark.parametrize("name", ["max_pool", "avg_pool", "adaptive_avg_pool",
                                  "adaptive_max_pool"])
@pytest.mark.parametrize("algorithm", list(pooling.ALGORITHMS))
def test_perturbed_pooling_path_fails_its_pinned_row(name, algorithm, monkeypatch):
  kind = "max" if "max" in name else "avg"
  _perturb_bwd(monkeypatch, getattr(pooling, f"_{kind}_pool_{algorithm}"))
  spec = REGISTRY[f"{name}[{algorithm}]"]
  assert _fails(spec, spec.make_cases(case_key(0, spec.name))[0])


# ------------------------------------------------------------------------------- seeds

def test_case_key_is_a_stable_hash_of_the_row_name():
  key = case_key(0, "conv2d[shift]")
  expected = jax.random.fold_in(jax.random.key(0), zlib.crc32(b"conv2d[shift]"))
  np.testing.assert_array_equal(jax.random.key_data(key), jax.random.key_data(expected))
  # Fixed across runs, processes and platforms: the bits this row has always had here.
  np.testing.assert_array_equal(jax.random.key_data(case_key(0, "relu")),
                                np.array([3919123694, 822693330], np.uint32))
  keys = {tuple(np.asarray(jax.random.key_data(case_key(0, row))).tolist())
          for row in REGISTRY}
  assert len(keys) == len(REGISTRY)


def test_rows_of_selects_an_op_and_its_paths():
  assert rows_of("conv2d") == ["conv2d"] + [f"conv2d[{a}]" for a in convolution.ALGORITHMS]
  assert rows_of("conv2d[lax]") == ["conv2d[lax]"]
  assert rows_of("relu") == ["relu"]
  assert rows_of("conv") == []
