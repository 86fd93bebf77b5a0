"""``python -m benchmarks.gpu_check`` (``make gpu-check``): the first minutes on a GPU, in one
command that fits in 8 minutes on one GPU, compilation included.

It writes ``docs/results/gpu.md`` (and ``gpu.json`` beside it) naming the device, with:

1. ``hw verify``'s float32 rows on the device: every registry row's op and VJP in float32
   under ``jit`` against its autodiff reference (the automatic rows take the device's
   choices of :mod:`hw.backends`; the pinned rows their path);
2. Q5.3 (MNIST): wall time to 99% test accuracy with (a) hw.ops and (b) the autodiff twin
   (``benchmarks.models_autodiff``: the same layers as standard Flax layers, optax's loss),
   both through the same engine loop (Q5.3's optimiser, schedule, batch and
   augmentation; the test set evaluated after every epoch; compilation included);
3. VGG11-BN (CIFAR-10): seconds per epoch and test accuracy after each epoch that fits
   its share of the time (the learning-rate schedule is planned for ``--vgg-epochs``);
4. the a/b train-step throughput ratio per model on the device (``benchmarks.run``'s
   interleaved rounds, without the PyTorch column);
5. data parallel over every local device when there are several: seconds per epoch of
   Q5.3 on all of them against one.

Each part has a share of ``--budget-s`` and stops (saying so) when its share runs out.
``--tiny`` runs the same code at a tiny size on stand-in data (seconds, on the CPU too:
the default test suite runs it so that it cannot rot); its report says it is no GPU
measurement. Needs MNIST and CIFAR-10 under ``--data-dir`` or ``$HW_DATA_DIR`` (parts
whose data is missing are reported as not run).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import sys
import time
import traceback
from typing import Any, Callable, Sequence

import jax
import numpy as np
import optax

import experiments
from benchmarks import architectures as arch
from benchmarks import models_autodiff as jax_models
from benchmarks import run as bench_run
from hw import backends
from hw.engine import loop, objectives, steps
from hw.engine.experiment_data import Split, Splits, load_splits, normalization, to_device
from hw.nn import models
from hw.verification import registry
from hw.verification.verify import check_case

ROOT = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "docs" / "results" / "gpu.md"
TARGET = 0.99  # Q5.3's test accuracy to reach
AB_MODELS = ("q4_4", "q5_3", "q5_4", "q6_1", "q6_2", "vgg11")
# each part's share of the budget; a part gets its share of what the parts before it left
SHARES = {"verify": 0.2, "q5_3": 0.25, "vgg11": 0.3, "ab": 0.15, "data_parallel": 0.1}
TWIN_MODEL = "autodiff_twin"
TWIN_LOSS = "autodiff_softmax_cross_entropy"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--out", default=str(DEFAULT_OUT),
                      help="the report (default: %(default)s); the JSON goes beside it")
  parser.add_argument("--budget-s", type=float, default=480.0,
                      help="wall time of the whole check in seconds (default 480: 8 min)")
  parser.add_argument("--data-dir", default=None, help="default: $HW_DATA_DIR")
  parser.add_argument("--vgg-epochs", type=int, default=10,
                      help="epochs VGG11-BN's schedule is planned for (default 10)")
  parser.add_argument("--q5-epochs", type=int, default=12,
                      help="at most this many Q5.3 epochs to reach 99%% (default 12, as its "
                           "quick profile)")
  parser.add_argument("--tiny", action="store_true",
                      help="tiny sizes on stand-in data: a smoke test (seconds, any device)")
  return parser.parse_args(argv)


class _Stop(Exception):
  """Raised by a hook to end a training run early (target reached or time spent)."""

  def __init__(self, why: str):
    super().__init__(why)
    self.why = why


class _Watch(loop.Hook):
  """Records each epoch's seconds and validation (here: test) accuracy, and stops the run
  when ``target`` is reached or the run's ``deadline`` (perf_counter) has passed."""

  def __init__(self, began: float, deadline: float, target: float | None = None):
    self.began, self.deadline, self.target = began, deadline, target
    self.epochs: list[dict[str, float]] = []

  def on_epoch_end(self, epoch, state, record):
    elapsed = time.perf_counter() - self.began
    self.epochs.append({"epoch": epoch, "seconds": record["seconds"], "elapsed_s": elapsed,
                        "test_accuracy": record["val_accuracy"]})
    if self.target is not None and record["val_accuracy"] >= self.target:
      raise _Stop("reached")
    if time.perf_counter() > self.deadline:
      raise _Stop("out of time")


def _twin_loss(scores, labels, *, reduction="mean"):
  per_example = optax.softmax_cross_entropy_with_integer_labels(scores, labels)
  if reduction == "none":
    return per_example
  return per_example.sum() if reduction == "sum" else per_example.mean()


def _twin(*, num_outputs: int, weight_scale: float | None, model: str, **model_kwargs) -> Any:
  """The autodiff twin of ``hw.nn.models.create_model(model, **model_kwargs)``: the same
  layer list as standard Flax layers (benchmarks.models_autodiff)."""
  module = models.create_model(model, num_outputs=num_outputs, weight_scale=weight_scale,
                               **model_kwargs)
  return jax_models.AutodiffNet(tuple(arch.layers_from_module(module)))


def _register_twin() -> None:
  """The twin and optax's loss in the engine's registries (once per process)."""
  if TWIN_MODEL not in list(models.MODELS):
    models.MODELS.register(TWIN_MODEL, _twin, "benchmarks: the autodiff twin of a network")
  if TWIN_LOSS not in list(objectives.LOSSES):
    objectives.LOSSES.register(TWIN_LOSS, objectives.Loss(_twin_loss),
                               "benchmarks: optax's softmax cross-entropy (autodiff)")


def _stand_in(shape: tuple[int, ...], train: int, test: int) -> Splits:
  """Learnable made-up data: the class is the brightest of ten horizontal bands."""
  rng = np.random.default_rng(0)
  images = rng.random((train + test,) + shape, dtype=np.float32)
  bands = np.array_split(np.arange(shape[0]), 10)
  labels = np.argmax([images[:, rows].mean(axis=(1, 2, 3)) for rows in bands], axis=0)
  labels = labels.astype(np.int32)
  split = lambda a, b: Split(images[a:b], labels[a:b])
  return Splits(split(0, train), split(train, train + test), split(train, train + test),
                num_classes=10, source="stand-in", stand_in=True)


def _train(config, splits: Splits, *, deadline: float, target: float | None = None,
           devices: int | None = 1) -> dict[str, Any]:
  """Train ``config`` through the engine with the test split as validation; the epochs
  it ran, why it stopped, its wall time (compilation included)."""
  config = config.replace(devices=devices)
  normalize = normalization(config.normalize, splits.train)
  data = loop.TrainingData(to_device(splits.train, normalize, 1),
                           to_device(splits.test, normalize, config.eval_batch_size))
  began = time.perf_counter()
  watch = _Watch(began, deadline, target)
  why = "all epochs ran"
  try:
    programs = loop.programs_for(config, splits.num_classes, data.train.size)
    loop.train(config, data, programs=programs, hooks=[watch])
  except _Stop as stop:
    why = stop.why
  return {"epochs": watch.epochs, "stopped": why, "wall_s": time.perf_counter() - began,
          "devices": steps.device_count(config)}


# ------------------------------------------------------------------------------ the parts

def part_verify(tiny: bool, deadline: float) -> dict[str, Any]:
  """hw verify's float32 row of every registry row, on the device."""
  names = ["linear", "conv2d[lax]"] if tiny else list(registry.REGISTRY)
  rows = []
  for name in names:
    if time.perf_counter() > deadline:
      rows.append({"row": name, "status": "not run (out of time)", "detail": ""})
      continue
    spec = registry.REGISTRY[name]
    cases = list(spec.make_cases(registry.case_key(0, name)))
    result = check_case(spec, cases[spec.float32_case], finite_differences=False, float32=True)
    ok = result.passed and result.float32 == "pass"
    detail = result.error or "; ".join(result.failures) or f"float32 {result.float32}"
    rows.append({"row": name, "status": "pass" if ok else "FAIL", "detail": detail})
  return {"rows": rows, "passed": sum(r["status"] == "pass" for r in rows),
          "failed": sum(r["status"] == "FAIL" for r in rows)}


def _q5_3_config(tiny: bool, epochs: int):
  config = experiments.get_config("q5_3", "quick").replace(grid={}, epochs=epochs)
  if tiny:  # a narrow 3×3 version: compiles in a fraction of the 7×7 net's time on a CPU
    config = config.replace(batch_size=16, eval_batch_size=16, epochs=1,
                            model_kwargs={"filters": 4, "filter_size": 3, "hidden_size": 8})
  return config


def part_q5_3(tiny: bool, deadline: float, data_dir: str | None, epochs: int) -> dict[str, Any]:
  """Wall time to 99% test accuracy, (a) hw.ops and (b) the autodiff twin."""
  _register_twin()
  config = _q5_3_config(tiny, epochs)
  splits = _stand_in((28, 28, 1), 64, 32) if tiny else load_splits(config, data_dir=data_dir)
  twin = config.replace(model=TWIN_MODEL, loss=TWIN_LOSS,
                        model_kwargs={"model": config.model, **config.model_kwargs})
  share = (deadline - time.perf_counter()) / 2
  runs = {}
  for label, variant in (("a", config), ("b", twin)):
    runs[label] = _train(variant, splits, deadline=time.perf_counter() + share, target=TARGET)
  return {"model": dict(config.model_kwargs), "batch_size": config.batch_size,
          "optimizer": config.optimizer, "stand_in": splits.stand_in, "runs": runs}


def part_vgg11(tiny: bool, deadline: float, data_dir: str | None, epochs: int) -> dict[str, Any]:
  """VGG11-BN: seconds per epoch and test accuracy after each epoch that fits."""
  config = experiments.get_config("vgg11", "full").replace(grid={}, epochs=epochs)
  if tiny:  # the same code on a small CIFAR conv net: VGG11 compiles for minutes on a CPU
    config = config.replace(model="cnn_bn", model_kwargs={"conv_blocks": ((4, 3),),
                                                          "hidden_size": 8},
                            batch_size=16, eval_batch_size=16, epochs=1)
  splits = _stand_in((32, 32, 3), 64, 32) if tiny else load_splits(config, data_dir=data_dir)
  result = _train(config, splits, deadline=deadline)
  return {"model": config.model, "planned_epochs": config.epochs,
          "batch_size": config.batch_size, "stand_in": splits.stand_in, **result}


def part_ab(tiny: bool, deadline: float) -> dict[str, Any]:
  """The a/b train-step throughput ratio per model (benchmarks.run.bench_model)."""
  rows = []
  for name in ("q4_4",) if tiny else AB_MODELS:
    if time.perf_counter() > deadline:
      rows.append({"model": name, "status": "not run (out of time)"})
      continue
    architecture = arch.load(name)
    batch = 4 if tiny else 100
    rng = np.random.default_rng(0)
    images = rng.standard_normal((batch,) + architecture.image_shape).astype(np.float32)
    labels = rng.integers(0, arch.NUM_CLASSES, batch).astype(np.int32)
    result = bench_run.bench_model(architecture, images, labels, rounds=1 if tiny else 5,
                                   target_s=0.01 if tiny else 0.2, torch_threads=())
    rows.append({"model": name, "status": "measured", "batch": batch,
                 "a_over_b": result["ratios"]["a/b"],
                 "step_ms": result["step_ms"]})
  return {"rows": rows}


def part_data_parallel(tiny: bool, deadline: float, data_dir: str | None) -> dict[str, Any]:
  """Q5.3 on every local device against one: seconds of epoch 2 (epoch 1 compiles)."""
  count = jax.local_device_count()
  if count < 2:
    return {"devices": count, "status": f"not run: {count} local device"}
  config = _q5_3_config(tiny, 2).replace(epochs=2)
  batch = -(-config.batch_size // count) * count  # the next multiple of the device count
  config = config.replace(batch_size=batch, eval_batch_size=batch)
  splits = _stand_in((28, 28, 1), 2 * batch, batch) if tiny else load_splits(
      config, data_dir=data_dir)
  share = (deadline - time.perf_counter()) / 2
  runs = {}
  for devices in (1, count):
    runs[str(devices)] = _train(config, splits, deadline=time.perf_counter() + share,
                                devices=devices)
  return {"devices": count, "status": "measured", "runs": runs}


# ------------------------------------------------------------------------------ the report

def _device() -> dict[str, Any]:
  device = jax.devices()[0]
  return {"platform": device.platform, "kind": getattr(device, "device_kind", str(device)),
          "count": jax.local_device_count(), "jax": jax.__version__,
          "backend_choices": backends.describe()}


def _time_to_target(run: dict[str, Any]) -> str:
  if run["stopped"] == "reached":
    last = run["epochs"][-1]
    return f"{last['elapsed_s']:.1f} s (epoch {last['epoch']}, {last['test_accuracy']:.2%})"
  best = max((e["test_accuracy"] for e in run["epochs"]), default=float("nan"))
  return f"not reached ({run['stopped']}; best {best:.2%} in {len(run['epochs'])} epochs)"


def render(result: dict[str, Any]) -> str:
  device = result["device"]
  lines = [f"# GPU check: {device['kind']} ({device['platform']}, {device['count']} local "
           f"device(s))", ""]
  if result["tiny"] or device["platform"] == "cpu":
    lines += ["**Not a GPU measurement.** This report was written on "
              f"{device['platform']} ({device['kind']})"
              + (" at the tiny size on stand-in data (`--tiny`)" if result["tiny"] else "")
              + ": it checks that the command runs, its numbers say nothing about a GPU.", ""]
  lines += [f"`python -m benchmarks.gpu_check{' --tiny' if result['tiny'] else ''}`, "
            f"{result['finished']}, {result['wall_s']:.0f} s of a {result['budget_s']:.0f} s "
            f"budget; jax {device['jax']}; backend choices: conv2d "
            f"`{device['backend_choices']['conv2d']}`, conv nets per batch "
            f"{device['backend_choices']['conv_nets_per_batch']}.", ""]
  parts = result["parts"]

  lines += ["## hw verify, float32 rows on the device", ""]
  verify = parts["verify"]
  if "error" in verify:
    lines += [f"Failed: {verify['error']}", ""]
  else:
    lines += [f"{verify['passed']} pass, {verify['failed']} fail of {len(verify['rows'])} rows.",
              "", "| row | status | detail |", "|---|---|---|"]
    lines += [f"| {r['row']} | {r['status']} | {r['detail']} |" for r in verify["rows"]]
    lines.append("")

  lines += [f"## Q5.3: wall time to {TARGET:.0%} test accuracy (compilation included)", ""]
  q5 = parts["q5_3"]
  if "error" in q5:
    lines += [f"Not run: {q5['error']}", ""]
  else:
    lines += [f"Model {q5['model']}, batch {q5['batch_size']}, {q5['optimizer']}; test set "
              f"evaluated after every epoch{' (stand-in data)' if q5['stand_in'] else ''}.", "",
              "| | time to target | seconds per epoch |", "|---|---|---|"]
    for label, what in (("a", "(a) hw.ops"), ("b", "(b) autodiff twin")):
      run = q5["runs"][label]
      seconds = ", ".join(f"{e['seconds']:.1f}" for e in run["epochs"])
      lines.append(f"| {what} | {_time_to_target(run)} | {seconds} |")
    lines.append("")

  lines += ["## VGG11-BN on CIFAR-10", ""]
  vgg = parts["vgg11"]
  if "error" in vgg:
    lines += [f"Not run: {vgg['error']}", ""]
  else:
    lines += [f"Model {vgg['model']}, batch {vgg['batch_size']}, schedule planned for "
              f"{vgg['planned_epochs']} epochs; ran {len(vgg['epochs'])} ({vgg['stopped']})"
              f"{' (stand-in data)' if vgg['stand_in'] else ''}.", "",
              "| epoch | seconds | test accuracy |", "|---|---|---|"]
    lines += [f"| {e['epoch']} | {e['seconds']:.1f} | {e['test_accuracy']:.2%} |"
              for e in vgg["epochs"]]
    lines.append("")

  lines += ["## a/b train-step throughput per model (hw.ops over autodiff; > 1: hw.ops faster)",
            ""]
  ab = parts["ab"]
  if "error" in ab:
    lines += [f"Not run: {ab['error']}", ""]
  else:
    lines += ["| model | batch | a/b median (IQR) | step ms a / b |", "|---|---|---|---|"]
    for row in ab["rows"]:
      if row["status"] != "measured":
        lines.append(f"| {row['model']} | | {row['status']} | |")
        continue
      r = row["a_over_b"]
      lines.append(f"| {row['model']} | {row['batch']} | {r['median']:.2f} ({r['q1']:.2f}–"
                   f"{r['q3']:.2f}) | {row['step_ms']['a']:.2f} / {row['step_ms']['b']:.2f} |")
    lines.append("")

  lines += ["## Data parallel over every local device", ""]
  dp = parts["data_parallel"]
  if "error" in dp:
    lines += [f"Not run: {dp['error']}", ""]
  elif dp["status"] != "measured":
    lines += [f"{dp['status']}.", ""]
  else:
    lines += ["| devices | seconds of epoch 2 | test accuracy |", "|---|---|---|"]
    for devices, run in dp["runs"].items():
      last = run["epochs"][-1] if run["epochs"] else None
      lines.append(f"| {devices} | {last['seconds']:.1f} | {last['test_accuracy']:.2%} |"
                   if last else f"| {devices} | not run ({run['stopped']}) | |")
    lines.append("")
  return "\n".join(lines)


def run_check(args: argparse.Namespace, log: Callable[[str], None] = print) -> dict[str, Any]:
  """Every part in turn, each within its share of the budget; a part that fails is
  reported with its error and the others still run."""
  began = time.perf_counter()
  data_dir = args.data_dir or os.environ.get("HW_DATA_DIR")
  calls = {
      "verify": lambda deadline: part_verify(args.tiny, deadline),
      "q5_3": lambda deadline: part_q5_3(args.tiny, deadline, data_dir, args.q5_epochs),
      "vgg11": lambda deadline: part_vgg11(args.tiny, deadline, data_dir, args.vgg_epochs),
      "ab": lambda deadline: part_ab(args.tiny, deadline),
      "data_parallel": lambda deadline: part_data_parallel(args.tiny, deadline, data_dir),
  }
  parts = {}
  for index, (name, call) in enumerate(calls.items()):
    start = time.perf_counter()
    left = args.budget_s - (start - began)
    share = left * SHARES[name] / sum(SHARES[n] for n in list(calls)[index:])
    deadline = start + share
    log(f"[gpu-check] {name} (up to {share:.0f} s)")
    try:
      parts[name] = call(deadline)
    except Exception as error:  # reported in its section; the other parts still run
      traceback.print_exc()
      parts[name] = {"error": f"{type(error).__name__}: {str(error)[:300]}"}
    parts[name]["seconds"] = time.perf_counter() - start
  return {"device": _device(), "tiny": args.tiny, "budget_s": args.budget_s,
          "wall_s": time.perf_counter() - began, "parts": parts,
          "finished": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def main(argv: Sequence[str] | None = None) -> int:
  args = parse_args(argv)
  result = run_check(args)
  out = pathlib.Path(args.out)
  out.parent.mkdir(parents=True, exist_ok=True)
  out.write_text(render(result) + "\n")
  out.with_suffix(".json").write_text(json.dumps(result, indent=1, default=str) + "\n")
  print(f"[gpu-check] wrote {out} and {out.with_suffix('.json').name} "
        f"({result['wall_s']:.0f} s)")
  failed = [name for name, part in result["parts"].items() if "error" in part]
  failed += ["verify"] if result["parts"]["verify"].get("failed") else []
  return 1 if failed else 0


if __name__ == "__main__":
  sys.exit(main())
