"""``python -m benchmarks.malloc_tunables``: training speed under glibc's malloc tunables.

On XLA:CPU a conv net's train step allocates and frees its activation buffers every step,
and glibc hands them back to the kernel, so the next step takes a page fault for every
4 KiB it touches again (q6.2's 15-epoch run: 574 million minor faults, 19% of its CPU
time in the kernel). ``GLIBC_TUNABLES=glibc.malloc.hugetlb=1`` (glibc ≥ 2.35) lets malloc
use transparent huge pages. Tunables are read when a process starts, so each setting
trains in its own worker process: a few epochs of an experiment's quick config
(:func:`hw.engine.loop.train`) on random data of its input shape; rounds interleaved, the order
rotated each round. Reports the median seconds per epoch (the first, compiling epoch left
out), and per epoch of the whole worker (compiling epoch included) its minor page
faults and kernel and user CPU time; checks that every setting gives the same
final loss to the bit (allocation must not change the numbers).
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import resource
import subprocess
import sys

import numpy as np

from benchmarks import machine, timing

SETTINGS = {"default": "", "hugetlb": "glibc.malloc.hugetlb=1"}  # GLIBC_TUNABLES


def _worker(model: str, epochs: int, images: int) -> dict:
  from experiments import catalog as registry
  from hw.engine import loop
  from hw.engine.experiment_data import Split, to_device
  config = registry.get_config(model, "quick").replace(epochs=epochs)
  shape = (32, 32, 3) if config.dataset == "cifar10" else (28, 28, 1)
  rng = np.random.default_rng(0)
  x = rng.random((images + 500,) + shape, dtype=np.float32)
  y = rng.integers(0, 10, images + 500).astype(np.int32)
  data = loop.TrainingData(to_device(Split(x[:images], y[:images]), config.normalize, 1),
                           to_device(Split(x[images:], y[images:]), config.normalize,
                                     config.eval_batch_size))
  before = resource.getrusage(resource.RUSAGE_SELF)
  programs = loop.programs_for(config, 10, images)
  _, history = loop.train(config, data, programs=programs)
  after = resource.getrusage(resource.RUSAGE_SELF)
  return {"epoch_s": [record["seconds"] for record in history[1:]],
          "minor_faults": after.ru_minflt - before.ru_minflt,
          "user_s": after.ru_utime - before.ru_utime, "sys_s": after.ru_stime - before.ru_stime,
          "final_loss": history[-1]["train_loss"]}


def _run_worker(setting: str, model: str, epochs: int, images: int) -> dict:
  env = dict(os.environ)
  env.pop("GLIBC_TUNABLES", None)
  if SETTINGS[setting]:
    env["GLIBC_TUNABLES"] = SETTINGS[setting]
  command = [sys.executable, "-m", "benchmarks.malloc_tunables", "--worker", model,
             "--epochs", str(epochs), "--images", str(images)]
  done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
  if done.returncode:
    raise SystemExit(f"worker {setting}/{model} failed (exit {done.returncode}):\n{done.stderr}")
  return json.loads(done.stdout.strip().splitlines()[-1])


def _table(model: str, runs: dict[str, list[dict]]) -> list[str]:
  base = [float(np.median(r["epoch_s"])) for r in runs["default"]]
  lines = [f"### {model}", "",
           "| setting | s/epoch (median) | speed-up vs default per round, median [IQR] | "
           "minor faults per epoch | kernel CPU s per epoch | user CPU s per epoch | final loss |",
           "|---|---|---|---|---|---|---|"]
  for setting, results in runs.items():
    seconds = [float(np.median(r["epoch_s"])) for r in results]
    low, mid, high = timing.quartiles(timing.ratio_per_round(base, seconds))
    epochs = len(results[0]["epoch_s"]) + 1
    lines.append(
        f"| {setting} | {np.median(seconds):.2f} | {mid:.2f} [{low:.2f}–{high:.2f}] | "
        f"{np.median([r['minor_faults'] for r in results]) / epochs:,.0f} | "
        f"{np.median([r['sys_s'] for r in results]) / epochs:.2f} | "
        f"{np.median([r['user_s'] for r in results]) / epochs:.2f} | "
        f"{results[0]['final_loss']!r} |")
  return lines


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog="python -m benchmarks.malloc_tunables",
                                   description=__doc__.split("\n\n")[0])
  parser.add_argument("--models", default="q6_2,q5_4", help="experiment ids (default: %(default)s)")
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--epochs", type=int, default=5, help="per worker; the first is not timed")
  parser.add_argument("--images", type=int, default=1000, help="training images per epoch")
  parser.add_argument("--out", default=None, help="folder for malloc_tunables.md")
  parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.epochs < 2 or args.rounds < 1 or args.images < 1:
    parser.error(f"--epochs must be ≥ 2 and --rounds, --images ≥ 1 (got {args.epochs}, "
                 f"{args.rounds}, {args.images})")
  if args.worker:
    print(json.dumps(_worker(args.worker, args.epochs, args.images)))
    return 0
  facts = machine.facts()
  lines = ["# glibc malloc tunables and XLA:CPU training speed", "",
           f"Command: `python -m benchmarks.malloc_tunables --models {args.models} --rounds "
           f"{args.rounds} --epochs {args.epochs} --images {args.images}`  ",
           f"Date (UTC): {facts['date_utc']}; CPU: {facts['cpu_model']}, {os.cpu_count()} cores; "
           f"load average at start {machine.load_average()}", "",
           __doc__.split("\n\n", 1)[1].strip(), ""]
  same = True
  for model in args.models.split(","):
    runs: dict[str, list[dict]] = {setting: [] for setting in SETTINGS}
    for round_ in range(args.rounds):
      order = list(SETTINGS)[round_ % len(SETTINGS):] + list(SETTINGS)[:round_ % len(SETTINGS)]
      for setting in order:
        runs[setting].append(_run_worker(setting, model, args.epochs, args.images))
        print(f"{model} round {round_ + 1} {setting}: "
              f"{np.median(runs[setting][-1]['epoch_s']):.2f} s/epoch", flush=True)
    losses = {r["final_loss"] for results in runs.values() for r in results}
    same &= len(losses) == 1
    lines += _table(model, runs) + ["", "Same final loss in every run: "
                                    + ("yes" if len(losses) == 1 else f"NO: {sorted(losses)}"), ""]
  lines.append(f"Load average at end: {machine.load_average()}")
  text = "\n".join(lines) + "\n"
  print(text)
  if args.out:
    path = pathlib.Path(args.out) / "malloc_tunables.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
  return 0 if same else 1


if __name__ == "__main__":
  sys.exit(main())
