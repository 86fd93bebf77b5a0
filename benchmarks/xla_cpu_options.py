"""``python -m benchmarks.xla_cpu_options``: XLA:CPU's options for the dense layers, measured.

For each candidate setting (XLA_FLAGS of XLA:CPU, or a variant of the dense layer's code)
one worker process is started with that setting (XLA_FLAGS must be set before JAX is
imported). Each worker builds (a) the Q4.4 train step of ``benchmarks.run`` (the
``hw.nn.models`` MLP 784–1000–10 on ``hw.ops``, jitted SGD step of
``benchmarks.models_autodiff.JaxTrainer``) and (b) the dense layers' forward+backward at
the MLP's shapes (fc1 with its ReLU, no dX; fc2 with dX), and first checks correctness:
the loss and the parameters after one step from the same initial parameters and batch,
and the layers' outputs and gradients, against the default setting's (largest relative
difference max|a − b| / max|b| over each array). A setting whose results differ by more
than ``WRONG_RELATIVE`` (float32 reassociation noise is ~1e-6) is marked WRONG, one whose
worker crashes FAILED; neither is ever recommended.

Then it times the settings in interleaved rounds: each round runs every setting once, in
an order rotated by one each round, so load changes hit all settings alike. Reported:
median times and per-round speed-ups vs the default (default time / setting time, > 1 is
faster) with their interquartile range. Writes ``<out>/xla_cpu_dense.md`` and ``.json``.

Examples:
  python -m benchmarks.xla_cpu_options --out docs/results      # all settings (~4 min)
  python -m benchmarks.xla_cpu_options --quick --settings default,fast_math --out /tmp/x
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time
from typing import Any, Sequence

REPO = pathlib.Path(__file__).resolve().parents[1]
WRONG_RELATIVE = 1e-4     # float32 reassociation changes results by ~1e-6 relative
MIN_ROUNDS_TO_JUDGE = 5   # fewer rounds: no setting is called faster or slower
PERTURBATION = 1e-3       # --perturb: the relative error injected to show the check can fail


@dataclasses.dataclass(frozen=True)
class Setting:
  """One candidate: XLA flags (set before JAX starts) and/or a variant of the dense code."""
  name: str
  flags: str = ""            # XLA_FLAGS of the worker ("" = XLA's defaults)
  layout: str = "xw"         # "xw": Y = X W; "wtxt": Y = (Wᵀ Xᵀ)ᵀ (and the backward alike)
  fused_relu: bool = False   # fc1 as one custom_vjp relu(X W + b) instead of linear, relu
  precision: str | None = None   # jax_default_matmul_precision
  note: str = ""

  @property
  def code_variant(self) -> bool:
    return self.layout != "xw" or self.fused_relu or self.precision is not None

  def describe(self) -> str:
    parts = [f"`XLA_FLAGS={self.flags}`"] if self.flags else []
    if self.layout == "wtxt":
      parts.append("code: Y = (Wᵀ Xᵀ)ᵀ, dX = (W dYᵀ)ᵀ, dW = (dYᵀ X)ᵀ")
    if self.fused_relu:
      parts.append("code: fc1 as one custom_vjp relu(X W + b) (ReLU mask from the output)")
    if self.precision:
      parts.append(f"code: `jax.default_matmul_precision('{self.precision}')`")
    return "; ".join(parts) or "XLA's defaults, hw.ops.linear then hw.ops.relu"


ONEDNN_DOT = "--xla_cpu_use_onednn=true --xla_cpu_experimental_onednn_fusion_type=dot"
SETTINGS = [
    Setting("default", note="jaxlib's defaults: the dots become YNNPACK library fusions "
                            "(`__ynn_fusion`), bias/ReLU separate loop fusions"),
    Setting("default_control", note="the default again, in its own process: the noise "
                                    "floor of comparing two processes; a setting must beat "
                                    "this control's spread to count as faster or slower"),
    Setting("onednn", "--xla_cpu_use_onednn=true",
            note="oneDNN thunks for matmul fusions"),
    Setting("onednn_dot", ONEDNN_DOT,
            note="oneDNN library fusion of dots and what follows them; jaxlib 0.10.2 is "
                 "known to compute a dot followed by a broadcast multiply wrongly there"),
    Setting("ynn_dot", "--xla_cpu_experimental_ynn_fusion_type=dot",
            note="YNNPACK library fusion grown around each dot"),
    Setting("ynn_dot_eltwise", "--xla_cpu_experimental_ynn_fusion_type=dot,eltwise",
            note="YNNPACK fusions of dots and elementwise ops"),
    Setting("xnn_dot", "--xla_cpu_experimental_xnn_fusion_type=dot",
            note="XNNPACK library fusion of dots instead of YNNPACK"),
    Setting("no_xnnpack", "--xla_cpu_use_xnnpack=false", note="XNNPACK off"),
    Setting("one_thread",
            "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
            note="single-threaded (as `benchmarks.run --jax-threads 1`)"),
    Setting("fast_math", "--xla_cpu_enable_fast_math=true", note="unsafe fast math"),
    Setting("vector512", "--xla_cpu_prefer_vector_width=512",
            note="512-bit vectors in XLA's own (LLVM) code; default 256"),
    Setting("layout_wtxt", layout="wtxt", note="transposed formulation of every product"),
    Setting("fused_relu", fused_relu=True, note="bias + ReLU in the matmul's custom_vjp"),
    Setting("fused_relu_ynn", "--xla_cpu_experimental_ynn_fusion_type=dot,eltwise",
            fused_relu=True, note="the fused op with YNNPACK epilogue fusion"),
    Setting("precision_highest", precision="highest",
            note="explicit float32 (HIGHEST) matmul precision"),
]
BY_NAME = {s.name: s for s in SETTINGS}
# Flags of this jaxlib considered and not measured (from XLA_FLAGS=--help of jaxlib 0.10.2).
NOT_MEASURED = {
    "xla_cpu_use_thunk_runtime": "help text: 'Deprecated.' (the thunk runtime is the only one)",
    "xla_cpu_enable_concurrency_optimized_scheduler": "help text: '[Deprecated, do not use].'",
}


# ---- the worker: one process per setting ------------------------------------------------

def _variant_ops(layout: str):
  """(linear, linear_relu) custom_vjps in the given layout, with hw.ops.linear's formulas."""
  import jax
  import jax.numpy as jnp

  def mm(a, b):   # a @ b, or the same product formed as (bᵀ aᵀ)ᵀ
    return a @ b if layout == "xw" else (b.T @ a.T).T

  def grads(x, w, g):
    return mm(g, w.T), mm(x.T, g), g.sum(axis=0)

  @jax.custom_vjp
  def linear(x, w, b):
    return mm(x, w) + b

  linear.defvjp(lambda x, w, b: (mm(x, w) + b, (x, w)),
                lambda res, g: grads(*res, g))

  @jax.custom_vjp
  def linear_relu(x, w, b):
    return jnp.maximum(mm(x, w) + b, 0)

  def linear_relu_fwd(x, w, b):
    y = jnp.maximum(mm(x, w) + b, 0)
    return y, (x, w, y)

  def linear_relu_bwd(res, dy):
    x, w, y = res
    return grads(x, w, jnp.where(y > 0, dy, 0))

  linear_relu.defvjp(linear_relu_fwd, linear_relu_bwd)
  return linear, linear_relu


def _layer_fns(setting: Setting):
  """(fc1(x, w, b) with its ReLU, fc2(x, w, b)) as the setting computes them."""
  from hw import ops
  if not (setting.layout != "xw" or setting.fused_relu):
    return (lambda x, w, b: ops.relu(ops.linear(x, w, b))), ops.linear
  linear, linear_relu = _variant_ops(setting.layout)
  if setting.fused_relu:
    return linear_relu, linear
  return (lambda x, w, b: ops.relu(linear(x, w, b))), linear


def _mlp_module(setting: Setting, hidden: int, num_classes: int):
  """The Q4.4 network: hw.nn.models' MLP, or for a code variant the same network (same
  parameter names, initialisers, hence the same initial parameters) on the variant ops."""
  import flax.linen as nn

  from benchmarks import architectures as arch
  from hw import nn as hnn
  module = arch.from_model("q4_4", "Q4.4 MLP", "mlp", {"hidden_sizes": (hidden,)}).module
  if not (setting.layout != "xw" or setting.fused_relu):
    return module
  fc1, fc2 = _layer_fns(setting)

  class VariantDense(nn.Module):
    features: int
    fn: Any

    @nn.compact
    def __call__(self, x):
      w = self.param("kernel", hnn.kernel_init(module.weight_scale),
                     (x.shape[-1], self.features))
      b = self.param("bias", nn.initializers.zeros, (self.features,))
      return self.fn(x, w, b)

  class VariantMLP(nn.Module):
    @nn.compact
    def __call__(self, x, *, train: bool):
      x = hnn.flatten(x)
      x = VariantDense(hidden, fc1, name="Dense_0")(x)
      return VariantDense(num_classes, fc2, name="Dense_1")(x)

  return VariantMLP()


def _hlo_libraries(hlo: str) -> dict[str, Any]:
  """How the compiled step computes its products (library fusions by kind, all dots), and
  a digest of its optimised HLO without source metadata (equal digests: XLA emitted the
  same program)."""
  counts: dict[str, Any] = {kind: hlo.count(f'"kind":"__{kind}_fusion"')
                            for kind in ("ynn", "xnn", "onednn")}
  counts["dot ops"] = hlo.count(" dot(")
  counts = {k: v for k, v in counts.items() if v}
  program = re.sub(r", metadata=\{[^}]*\}", "", hlo[hlo.find("\n%"):])
  counts["digest"] = hashlib.sha1(program.encode()).hexdigest()[:12]
  return counts


def _output_and_grads(fn, diff, other):
  """fn's output and the gradients of its differentiated arguments for a cotangent of 1s."""
  import jax
  import jax.numpy as jnp
  out, vjp = jax.vjp(lambda *d: fn(*d, *other), *diff)
  return [out, *vjp(jnp.ones_like(out))]


class _NumpyInit:
  """A Flax module whose ``init`` draws the parameters with NumPy (seed 1; kernels
  N(0, 1/fan_in), biases N(0, 1/100)): the same initial parameters in every worker, with
  nothing compiled (XLA's flags could change how JAX's initialisers compute them, and
  compiling them takes seconds). ``apply`` is the module's."""

  def __init__(self, module):
    self.module, self.apply = module, module.apply

  def init(self, rngs, images, *, train):
    import jax
    import jax.numpy as jnp
    import numpy as np
    shapes = jax.eval_shape(lambda: self.module.init(rngs, images, train=train))
    draw = np.random.default_rng(1)
    return jax.tree_util.tree_map(
        lambda a: jnp.asarray((draw.standard_normal(a.shape) / np.sqrt(
            a.shape[0] if a.ndim == 2 else 100)).astype(a.dtype)), shapes)


class Worker:
  """Builds everything for one setting in this process; ``measure()`` times one round."""

  def __init__(self, setting: Setting, config: dict[str, Any], results_path: str):
    import jax
    import jax.numpy as jnp
    import numpy as np
    if setting.precision:
      jax.config.update("jax_default_matmul_precision", setting.precision)
    from benchmarks import architectures as arch
    from benchmarks import models_autodiff as jax_models
    from benchmarks import op_timings, timing
    self.timing = timing
    batch, hidden, classes = config["batch"], config["hidden"], arch.NUM_CLASSES
    rng = np.random.default_rng(0)
    images = rng.random((batch, *arch.IMAGE_SHAPE), dtype=np.float32)
    labels = rng.integers(0, classes, batch).astype(np.int32)
    x, y = jnp.asarray(images), jnp.asarray(labels)
    trainer = jax_models.JaxTrainer(_NumpyInit(_mlp_module(setting, hidden, classes)),
                                    jax_models.hw_loss, x, y)
    results: dict[str, np.ndarray] = {}
    hlo = trainer._step.lower(trainer._state, x, y).compile().as_text()
    trainer.run(1)   # one step from the initial parameters: the correctness check
    results["step_loss"] = np.float32(trainer.last_loss)
    for i, leaf in enumerate(jax.tree_util.tree_leaves(trainer._state[0])):
      results[f"step_param_{i}"] = np.array(leaf)

    # the dense layers at the MLP's shapes: fc1 (+ReLU) without dX, fc2 with dX
    fc1, fc2 = _layer_fns(setting)
    d = int(np.prod(arch.IMAGE_SHAPE))
    w1, b1 = (rng.standard_normal((d, hidden)) * 0.05).astype(np.float32), \
        rng.standard_normal(hidden).astype(np.float32)
    h = rng.standard_normal((batch, hidden)).astype(np.float32)
    w2, b2 = (rng.standard_normal((hidden, classes)) * 0.05).astype(np.float32), \
        rng.standard_normal(classes).astype(np.float32)
    cases = {"fc1": op_timings.JaxImpl(lambda w, b, x: fc1(x, w, b), [w1, b1],
                                       [images.reshape(batch, d)]),
             "fc2": op_timings.JaxImpl(fc2, [h, w2, b2])}
    self.runners = {"step": trainer.run}
    for name, impl in cases.items():
      self.runners[name] = op_timings.jax_runners(impl)[1]
      diff = [jnp.asarray(a) for a in impl.diff_args]
      other = [jnp.asarray(a) for a in impl.other_args]
      for i, leaf in enumerate(jax.jit(_output_and_grads, static_argnums=0)(
          impl.fn, diff, other)):
        results[f"{name}_{i}"] = np.array(leaf)
    if config.get("perturb"):   # the test hook: a deliberately wrong result
      results = {k: v * np.float32(1 + PERTURBATION) for k, v in results.items()}
    np.savez(results_path, **results)
    self.hlo_libraries = _hlo_libraries(hlo)
    self.target_s = config["seconds"]
    self.steps: dict[str, int] = {}

  def calibrate(self) -> dict[str, int]:
    for name, run in self.runners.items():
      run(2)
      share = 1.0 if name == "step" else 0.5   # ops: half the step's measurement time
      self.steps[name] = self.timing.calibrate(run, target_s=self.target_s * share)
    return self.steps

  def measure(self) -> dict[str, float]:
    result = {}
    for name, run in self.runners.items():
      steps = self.steps[name]
      wall, cpu = time.perf_counter(), time.process_time()
      run(steps)
      result[f"{name}_s"] = (time.perf_counter() - wall) / steps
      result[f"{name}_cpu_s"] = (time.process_time() - cpu) / steps
    return result


def worker_main(setting_name: str, config: dict[str, Any], results_path: str) -> int:
  """The worker's loop: one JSON line per command ('calibrate', 'measure', 'quit')."""
  setting = BY_NAME[setting_name]
  began = time.perf_counter()
  worker = Worker(setting, config, results_path)
  print(json.dumps({"ready": True, "hlo_libraries": worker.hlo_libraries,
                    "setup_s": time.perf_counter() - began}), flush=True)
  for line in sys.stdin:
    command = line.strip()
    if command == "calibrate":
      print(json.dumps({"steps": worker.calibrate()}), flush=True)
    elif command == "measure":
      print(json.dumps(worker.measure()), flush=True)
    elif command == "quit":
      break
  return 0


# ---- the parent: start workers, interleave rounds, check, report -------------------------

class Proc:
  """A worker process for one setting, spoken to line by line."""

  def __init__(self, setting: Setting, config: dict[str, Any], workdir: pathlib.Path):
    self.setting = setting
    self.results_path = workdir / f"{setting.name}.npz"
    self.stderr_path = workdir / f"{setting.name}.stderr"
    env = dict(os.environ)
    env["XLA_FLAGS"] = setting.flags
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    config = dict(config, perturb=setting.name == config.get("perturb"))
    self._stderr = open(self.stderr_path, "w")
    self.proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.xla_cpu_options", "--worker", setting.name,
         "--worker-config", json.dumps(config), "--worker-results", str(self.results_path)],
        cwd=REPO, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=self._stderr, text=True)
    self.error: str | None = None

  def _fail(self) -> None:
    code = self.proc.wait()
    self._stderr.flush()
    lines = [l for l in self.stderr_path.read_text(errors="replace").splitlines() if l.strip()]
    self.error = f"worker exited with code {code}: {lines[-1][:200] if lines else 'no output'}"

  def reply(self) -> dict[str, Any] | None:
    line = self.proc.stdout.readline()
    if not line:
      self._fail()
      return None
    return json.loads(line)

  def ask(self, command: str) -> dict[str, Any] | None:
    if self.error:
      return None
    try:
      self.proc.stdin.write(command + "\n")
      self.proc.stdin.flush()
    except BrokenPipeError:
      self._fail()
      return None
    return self.reply()

  def close(self) -> None:
    if self.proc.poll() is None:
      try:
        self.proc.stdin.write("quit\n")
        self.proc.stdin.close()
      except BrokenPipeError:
        pass
      try:
        self.proc.wait(timeout=30)
      except subprocess.TimeoutExpired:
        self.proc.kill()
    self._stderr.close()


def quartile_stats(values: Sequence[float]) -> dict[str, float]:
  from benchmarks import timing
  q1, median, q3 = timing.quartiles(values)
  return {"median": median, "q1": q1, "q3": q3}


def max_relative_difference(results: dict[str, Any], reference: dict[str, Any]) -> dict[str, float]:
  """Per group ('step', 'fc1', 'fc2'): the largest max|a − b| / max|b| of its arrays."""
  import numpy as np
  groups: dict[str, float] = {}
  for key, want in reference.items():
    got = results[key]
    scale = float(np.max(np.abs(want))) or 1.0
    diff = float(np.max(np.abs(np.asarray(got, np.float64) - want))) / scale
    group = key.split("_")[0]
    groups[group] = max(groups.get(group, 0.0), diff)
  return groups


def check(procs: Sequence[Proc]) -> dict[str, dict[str, Any]]:
  """Each setting's results vs the default's: 'ok', 'WRONG' or 'FAILED'."""
  import numpy as np
  default = next(p for p in procs if p.setting.name == "default")
  if default.error:
    raise RuntimeError(f"the default setting failed: {default.error}")
  with np.load(default.results_path) as f:
    reference = {k: f[k] for k in f.files}
  verdicts = {}
  for p in procs:
    if p.error:
      verdicts[p.setting.name] = {"verdict": "FAILED", "error": p.error}
      continue
    with np.load(p.results_path) as f:
      diffs = max_relative_difference({k: f[k] for k in f.files}, reference)
    worst = max(diffs.values())
    verdicts[p.setting.name] = {"verdict": "WRONG" if worst > WRONG_RELATIVE else "ok",
                                "max_relative_difference": diffs, "worst": worst}
  return verdicts


def run_rounds(procs: Sequence[Proc], rounds: int) -> dict[str, list[dict[str, float]]]:
  """Round r measures every live worker once, the order rotated by r."""
  times: dict[str, list[dict[str, float]]] = {p.setting.name: [] for p in procs}
  for r in range(rounds):
    live = [p for p in procs if not p.error]
    shift = r % max(len(live), 1)
    for p in live[shift:] + live[:shift]:
      reply = p.ask("measure")
      if reply is not None:
        times[p.setting.name].append(reply)
    print(f"[xla] round {r + 1}/{rounds} done", file=sys.stderr, flush=True)
  return times


def summarise(times: dict[str, list[dict[str, float]]]) -> dict[str, dict[str, Any]]:
  """Median ms per quantity and per-round speed-ups vs the default (rounds both completed)."""
  base = times["default"]
  summary = {}
  for name, rows in times.items():
    if not rows:
      continue
    entry: dict[str, Any] = {}
    for quantity in ("step", "fc1", "fc2"):
      entry[f"{quantity}_ms"] = quartile_stats([r[f"{quantity}_s"] * 1e3 for r in rows])
      entry[f"{quantity}_cpu_ms"] = quartile_stats([r[f"{quantity}_cpu_s"] * 1e3 for r in rows])
      pairs = list(zip(base, rows))
      entry[f"{quantity}_speedup"] = quartile_stats(
          [b[f"{quantity}_s"] / r[f"{quantity}_s"] for b, r in pairs])
      entry[f"{quantity}_cpu_speedup"] = quartile_stats(
          [b[f"{quantity}_cpu_s"] / r[f"{quantity}_cpu_s"] for b, r in pairs])
    entry["rounds"] = len(rows)
    summary[name] = entry
  return summary


def classify(entry: dict[str, Any] | None, verdict: dict[str, Any],
             quantity: str = "step", control: dict[str, Any] | None = None) -> str:
  """'wrong' | 'failed' | 'too few rounds' | 'faster' / 'slower' (the IQRs of the per-round
  speed-ups by wall time and by CPU time both above / both below 1 and beyond the
  control's IQR, if a control was measured) | 'no clear effect'."""
  if verdict["verdict"] != "ok":
    return verdict["verdict"].lower()
  if entry["rounds"] < MIN_ROUNDS_TO_JUDGE:
    return "too few rounds"
  keys = (f"{quantity}_speedup", f"{quantity}_cpu_speedup")
  if all(entry[k]["q1"] > max(1.0, control[k]["q3"] if control else 1.0) for k in keys):
    return "faster"
  if all(entry[k]["q3"] < min(1.0, control[k]["q1"] if control else 1.0) for k in keys):
    return "slower"
  return "no clear effect"


def _is_code_variant(s: dict[str, Any]) -> bool:
  return s["layout"] != "xw" or s["fused_relu"] or s["precision"] is not None


def _ms(stats: dict[str, float]) -> str:
  return f"{stats['median']:.3f}"


def _ratio(stats: dict[str, float]) -> str:
  return f"{stats['median']:.2f} [{stats['q1']:.2f}–{stats['q3']:.2f}]"


def _load(values) -> str:
  return "/".join(f"{v:.1f}" for v in values) if values else "unknown"


def findings(result: dict[str, Any]) -> str:
  """The 'what helped and what not' paragraph, generated from the measurements."""
  summary, verdicts, settings = result["summary"], result["correctness"], result["settings"]
  control = summary.get("default_control")
  groups: dict[str, list[str]] = {}
  for s in settings:
    if s["name"] in ("default", "default_control"):
      continue
    entry = summary.get(s["name"])
    kind = classify(entry, verdicts[s["name"]], control=control)
    if kind in ("faster", "slower", "no clear effect", "too few rounds"):
      sp = entry["step_speedup"]
      text = f"`{s['name']}` ({sp['median']:.2f}× [{sp['q1']:.2f}–{sp['q3']:.2f}])"
    elif kind == "wrong":
      where = ", ".join(f"{group} {diff:.1e}" for group, diff in
                        verdicts[s["name"]]["max_relative_difference"].items())
      text = f"`{s['name']}` (max relative difference: {where})"
      diffs = verdicts[s["name"]]["max_relative_difference"]
      if diffs["step"] > WRONG_RELATIVE and max(diffs["fc1"], diffs["fc2"]) <= WRONG_RELATIVE:
        text += (" — the dense layers alone match the default; the train step, which "
                 "also scales the gradients by the learning rate, does not")
    else:
      text = f"`{s['name']}` ({verdicts[s['name']]['error']})"
    groups.setdefault(kind, []).append(text)
  sentences = []
  rounds = summary["default"]["rounds"]
  judged = rounds >= MIN_ROUNDS_TO_JUDGE
  if control:
    c, cc = control["step_speedup"], control["step_cpu_speedup"]
    sentences.append(f"The control (the default in a second process) measured "
                     f"{c['median']:.2f}× [{c['q1']:.2f}–{c['q3']:.2f}] by wall time and "
                     f"{cc['median']:.2f}× [{cc['q1']:.2f}–{cc['q3']:.2f}] by CPU time on the "
                     f"step: differences within that are noise, and a setting counts as "
                     f"faster or slower only beyond it.")
  if not judged:
    sentences.append(f"Only {rounds} round(s), fewer than {MIN_ROUNDS_TO_JUDGE}: no speed "
                     f"verdicts.")
  elif groups.get("faster"):
    sentences.append("Faster train step than the default (the IQRs of the per-round "
                     "speed-ups by wall and by CPU time both above 1"
                     + (" and the control's" if control else "") + "): "
                     + ", ".join(groups["faster"]) + ".")
  else:
    sentences.append("No setting made the train step reliably faster than the default "
                     "(none had the IQRs of its per-round speed-ups by wall and by CPU time "
                     "both above 1" + (" and the control's" if control else "") + ").")
  if groups.get("slower"):
    sentences.append("Slower (both IQRs below 1" + (" and the control's" if control else "")
                     + "): " + ", ".join(groups["slower"]) + ".")
  if groups.get("no clear effect"):
    sentences.append("No clear effect (within 1" + (" or the control's spread" if control
                                                      else "") + "): " + ", ".join(groups["no clear effect"])
                     + ".")
  if groups.get("wrong"):
    sentences.append("WRONG results, never to be used whatever their speed: "
                     + ", ".join(groups["wrong"]) + ".")
  for layer, what in (("fc1", "fc1 (784→hidden with its ReLU, no dX)"),
                      ("fc2", "fc2 (hidden→10, with dX)")) if judged else ():
    by_kind: dict[str, list[str]] = {}
    for s in settings:
      if s["name"] not in ("default", "default_control") and s["name"] in summary:
        kind = classify(summary[s["name"]], verdicts[s["name"]], layer, control)
        sp = summary[s["name"]][f"{layer}_speedup"]
        by_kind.setdefault(kind, []).append(f"`{s['name']}` ({sp['median']:.2f}×)")
    if "too few rounds" in by_kind:
      continue
    parts = [f"{label}: " + ", ".join(by_kind[kind])
             for kind, label in (("faster", "faster"), ("slower", "slower"))
             if by_kind.get(kind)]
    sentences.append(f"The dense layer {what} alone, forward+backward, correct settings "
                     "only: " + ("; ".join(parts) if parts else "none faster or slower")
                     + (f"; no clear effect for the other {len(by_kind['no clear effect'])}"
                        if by_kind.get("no clear effect") else "") + ".")
  hlo = result["hlo_libraries"]
  same = [s for s in settings if s["name"] not in ("default", "default_control")
          and hlo.get(s["name"], {}).get("digest") == hlo.get("default", {}).get("digest")]
  flags = [f"`{s['name']}`" for s in same if not _is_code_variant(s)]
  code = [f"`{s['name']}`" for s in same if _is_code_variant(s)]
  if flags:
    sentences.append("XLA emitted the same optimised HLO as for the default under "
                     + ", ".join(flags) + " (same library fusions; any difference is in "
                     "code generation or the runtime, or there is none).")
  if code:
    sentences.append("The code variant(s) " + ", ".join(code) + " compiled to the same "
                     "optimised HLO as the default (hw.ops.linear, then hw.ops.relu): XLA "
                     "already makes the same program of both formulations.")
  if groups.get("failed"):
    sentences.append("FAILED (the worker crashed): " + ", ".join(groups["failed"]) + ".")
  ok = [s["name"] for s in settings if s["name"] not in ("default", "default_control")
        and verdicts[s["name"]]["verdict"] == "ok" and s["name"] in summary]
  faster = [n for n in ok if classify(summary[n], verdicts[n], control=control) == "faster"]
  if not judged:
    pass
  elif faster:
    best = max(faster, key=lambda n: summary[n]["step_speedup"]["median"])
    sentences.append(f"Recommended (correct, and the fastest of the reliably faster): "
                     f"`{best}` ({summary[best]['step_speedup']['median']:.2f}×).")
  elif ok:
    best = max(ok, key=lambda n: summary[n]["step_speedup"]["median"])
    sentences.append(f"Highest median step speed-up among the correct settings: `{best}` "
                     f"({summary[best]['step_speedup']['median']:.2f}×), not a reliable "
                     f"gain, so the default stays.")
  return " ".join(sentences)


def render(result: dict[str, Any]) -> str:
  from benchmarks import report
  m = result["machine"]
  summary, verdicts = result["summary"], result["correctness"]
  lines = [
      "# XLA:CPU options for the dense layers (Q4.4 MLP)", "",
      f"Command: `{result['command']}`  ",
      f"Date (UTC): {m['date_utc']}; wall time {result['wall_s']:.0f} s  ",
      f"CPU: {m['cpu_model']}, {m['cpu_count']} cores; load average (1/5/15 min) at start "
      f"{_load(m['load_average_at_start'])}, at end {_load(result['load_average_at_end'])}  ",
      f"Software: Python {m['python']}, jax {m['jax']} (jaxlib {m['jaxlib']}, backend "
      f"{m['jax_backend']})", "",
      f"Workload: (a) one jitted SGD train step of the hw.ops MLP 784–{result['config']['hidden']}"
      f"–10 (`hw.nn.models` 'mlp', `benchmarks.models_autodiff.JaxTrainer`, as "
      f"`benchmarks.run`; initial parameters drawn by NumPy, the same in every process), "
      f"batch {result['config']['batch']}, float32; (b) the dense layers' "
      f"forward+backward at its shapes: fc1 = relu(x W₁ + b₁), x {result['config']['batch']}"
      f"×784, W₁ 784×{result['config']['hidden']}, no dX; fc2 = h W₂ + b₂, W₂ "
      f"{result['config']['hidden']}×10, with dX. One worker process per setting (XLA_FLAGS "
      f"set before JAX starts); {result['config']['rounds']} interleaved rounds (each runs "
      f"every setting once, order rotated each round), ~{result['config']['seconds']:g} s "
      f"per step measurement.",
  ]
  if m["load_average_at_start"] and m["load_average_at_start"][0] > (m["cpu_count"] or 1):
    lines += ["", f"**Noise warning:** the load average ({m['load_average_at_start'][0]:.1f}) "
              f"exceeded the core count ({m['cpu_count']}): other processes shared the CPU, so "
              f"the absolute times are inflated and noisy; the per-round speed-ups (each "
              f"round measures all settings back to back) are the figures to read."]
  lines += ["", "## Settings", ""]
  hlo = result["hlo_libraries"]

  def kernels(name: str) -> str:
    counts = hlo.get(name, {})
    text = ", ".join(f"{k} {v}" for k, v in counts.items() if k != "digest") or "–"
    if name != "default" and counts and counts["digest"] == hlo["default"]["digest"]:
      text += "; same HLO as default"
    return text

  lines.append(report.markdown_table(
      ["setting", "what", "note", "library fusions and dots in the compiled step"],
      [[s["name"], s["description"], s["note"], kernels(s["name"])]
       for s in result["settings"]]))
  lines += ["", "## Results", "",
            "Times: median wall ms per call. Speed-up: default time / setting time per "
            "round, median [IQR]; > 1 is faster than the default; CPU speed-up the same "
            "with the CPU time of the worker process (all its threads), which other "
            "processes on the machine disturb less. Correctness: largest relative "
            f"difference (max|a − b| / max|b|) of the loss and updated parameters after one "
            f"step, and of the layers' outputs and gradients, vs the default; > "
            f"{WRONG_RELATIVE:g} is WRONG.", ""]
  rows = []
  for s in result["settings"]:
    name, verdict, entry = s["name"], verdicts[s["name"]], summary.get(s["name"])
    if verdict["verdict"] == "FAILED":
      correct = f"FAILED: {verdict['error']}"
    else:
      d = verdict["max_relative_difference"]
      correct = (f"{verdict['verdict']} (step {d.get('step', 0):.1e}, fc1 "
                 f"{d.get('fc1', 0):.1e}, fc2 {d.get('fc2', 0):.1e})")
    if entry is None:
      rows.append([name] + ["–"] * 9 + [correct])
      continue
    cells = [name]
    for quantity in ("step", "fc1", "fc2"):
      cells += [_ms(entry[f"{quantity}_ms"]), _ratio(entry[f"{quantity}_speedup"]),
                _ratio(entry[f"{quantity}_cpu_speedup"])]
    rows.append(cells + [correct])
  lines.append(report.markdown_table(
      ["setting", "step ms", "step speed-up", "step CPU speed-up", "fc1 f+b ms",
       "fc1 speed-up", "fc1 CPU speed-up", "fc2 f+b ms", "fc2 speed-up", "fc2 CPU speed-up",
       "correctness vs default"], rows))
  lines += ["", "## What helped and what not", "", result["findings"], "",
            "Flags of this jaxlib considered and not measured:", ""]
  lines += [f"- `{flag}`: {why}" for flag, why in NOT_MEASURED.items()]
  return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(prog="python -m benchmarks.xla_cpu_options",
                                   description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--settings", default=",".join(BY_NAME),
                      help="comma-separated settings (default: all: %(default)s)")
  parser.add_argument("--rounds", type=int, default=None,
                      help="interleaved rounds (default 20; 2 with --quick)")
  parser.add_argument("--seconds", type=float, default=None,
                      help="target wall time of one step measurement (default 0.2; 0.02 "
                           "with --quick); each layer's measurement half of it")
  parser.add_argument("--batch", type=int, default=100, help="batch size (default 100)")
  parser.add_argument("--hidden", type=int, default=1000, help="hidden width (default 1000)")
  parser.add_argument("--quick", action="store_true", help="few, short rounds: a smoke test")
  parser.add_argument("--perturb", default=None, metavar="SETTING",
                      help=f"test hook: multiply SETTING's results by 1 + {PERTURBATION:g} "
                           f"before the correctness check (it must then be marked WRONG)")
  parser.add_argument("--out", default="results", help="output folder (default: %(default)s)")
  parser.add_argument("--render", metavar="JSON", default=None,
                      help="measure nothing: rewrite <out>/xla_cpu_dense.md from the "
                           "xla_cpu_dense.json of an earlier run")
  parser.add_argument("--worker", help=argparse.SUPPRESS)
  parser.add_argument("--worker-config", help=argparse.SUPPRESS)
  parser.add_argument("--worker-results", help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  args.rounds = args.rounds or (2 if args.quick else 20)
  args.seconds = args.seconds or (0.02 if args.quick else 0.2)
  args.setting_list = [s for s in args.settings.split(",") if s]
  unknown = set(args.setting_list) - set(BY_NAME)
  if unknown:
    parser.error(f"--settings: unknown {sorted(unknown)}; choose from {list(BY_NAME)}")
  if "default" not in args.setting_list:
    args.setting_list.insert(0, "default")
  if args.perturb and args.perturb not in args.setting_list:
    parser.error("--perturb must name one of the measured settings")
  return args


def main(argv: Sequence[str] | None = None) -> int:
  args = parse_args(argv)
  if args.worker:
    return worker_main(args.worker, json.loads(args.worker_config), args.worker_results)
  if args.render:
    result = json.loads(pathlib.Path(args.render).read_text())
    return write_report(result, pathlib.Path(args.out), json_too=False)
  from benchmarks import machine
  began = time.perf_counter()
  facts = machine.facts()
  config = {"batch": args.batch, "hidden": args.hidden, "seconds": args.seconds,
            "rounds": args.rounds, "perturb": args.perturb}
  settings = [BY_NAME[name] for name in args.setting_list]
  with tempfile.TemporaryDirectory(prefix="hw-xla-") as workdir:
    procs = []
    try:
      for setting in settings:   # two at a time: compiling is CPU-bound, 2 cores
        procs.append(Proc(setting, config, pathlib.Path(workdir)))
        if len(procs) % 2 == 0:
          for p in procs[-2:]:
            p.ready = p.reply()
      hlo = {}
      for p in procs:
        if not hasattr(p, "ready"):
          p.ready = p.reply()
        if p.ready:
          hlo[p.setting.name] = p.ready["hlo_libraries"]
        status = f"ready after {p.ready['setup_s']:.0f} s" if p.ready else p.error
        print(f"[xla] {p.setting.name}: {status}", file=sys.stderr, flush=True)
      verdicts = check(procs)
      for p in procs:
        p.ask("calibrate")
      times = run_rounds(procs, args.rounds)
    finally:
      for p in procs:
        p.close()
  for name, verdict in verdicts.items():   # a worker that died while being timed
    if verdict["verdict"] != "FAILED" and next(p for p in procs if p.setting.name == name).error:
      verdicts[name] = {"verdict": "FAILED",
                        "error": next(p for p in procs if p.setting.name == name).error}
  result = {
      "command": "python -m benchmarks.xla_cpu_options "
                 + " ".join(sys.argv[1:] if argv is None else argv),
      "machine": facts, "config": config,
      "settings": [dict(dataclasses.asdict(s), description=s.describe() + (
          f"; **results perturbed by 1 + {PERTURBATION:g} (--perturb, a test of the check)**"
          if s.name == args.perturb else "")) for s in settings],
      "hlo_libraries": hlo, "correctness": verdicts, "summary": summarise(times),
      "rounds": times, "load_average_at_end": machine.load_average(),
      "wall_s": time.perf_counter() - began,
  }
  return write_report(result, pathlib.Path(args.out))


def write_report(result: dict[str, Any], out: pathlib.Path, *, json_too: bool = True) -> int:
  """Writes <out>/xla_cpu_dense.md (with the findings generated from ``result``) and the
  measurements as <out>/xla_cpu_dense.json."""
  result["findings"] = findings(result)
  out.mkdir(parents=True, exist_ok=True)
  markdown = render(result)
  (out / "xla_cpu_dense.md").write_text(markdown)
  if json_too:
    (out / "xla_cpu_dense.json").write_text(json.dumps(result, indent=1, default=float))
  print(markdown)
  print(f"[xla] wrote {out / 'xla_cpu_dense.md'} ({result['wall_s']:.0f} s)", file=sys.stderr)
  return 0


if __name__ == "__main__":
  sys.exit(main())
