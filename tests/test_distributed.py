"""Several processes (hw.engine.distributed): the settings, and two CPU processes on this machine
(a coordinator on 127.0.0.1, two forced CPU devices each) training the same as one process
with the same global batch, with only process 0 writing files."""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from flax import serialization

from hw.engine import distributed
from hw.engine.runtime import Runtime

ROOT = pathlib.Path(__file__).resolve().parents[1]

# A small MLP on the deterministic stand-in of the binary task (no download, no network).
TRAIN = ["train", "q2_4", "--set", "grid={}", "--set", "repeat_seeds=()", "--set",
         "model.hidden_sizes=(16,)", "--set", "epochs=3", "--set", "weight_scale=None",
         "--set", "learning_rate=0.3", "--set", "model.dropout_rate=0.2"]

# Ten classes of in-memory features: the top-1/top-5 errors on test are computed too.
TEN_CLASSES = textwrap.dedent("""
    import numpy as np
    from hw.engine.config import ExperimentConfig
    from hw.engine.experiment_data import Split, Splits

    def ten_classes():
      rng = np.random.default_rng(0)
      x = rng.standard_normal((300, 12)).astype(np.float32)
      y = np.abs(x[:, :10]).argmax(1).astype(np.int32)
      part = lambda a, b: Split(x[a:b], y[a:b])
      return (ExperimentConfig(name="ten", title="ten", dataset="synthetic", model="mlp",
                               model_kwargs={"hidden_sizes": (16,)}, optimizer="adam",
                               learning_rate=3e-3, batch_size=40, eval_batch_size=40,
                               epochs=2, weight_scale=None),
              Splits(part(0, 160), part(160, 230), part(230, 300), num_classes=10))
""")
TEN_KEYS = ("test_accuracy", "test_loss", "top1_error", "top5_error")

# Each process: `hw train` through the console script's main, then `hw reproduce` of a
# catalog of one grid experiment and one study twice (run, then found complete), all with
# the same flags;
# then the ten classes through hw.engine.experiment directly.
SCRIPT = TEN_CLASSES + textwrap.dedent("""
    import json, sys
    from experiments import cli as app
    from hw.engine import experiment
    from experiments import reproduce

    from experiments.studies.base import Study

    def toy_run(workdir, **kwargs):  # a one-process JAX program, as the real studies are
      import jax.numpy as jnp
      total = float(jnp.sum(jnp.arange(10.0)))
      return {"summary": [f"sum {total:g}"], "figures": [], "meets_target": total == 45.0}

    TOY = Study(name="toy", title="toy", run=toy_run, target=1.0)

    class Tiny:
      EXPERIMENTS = ("tiny", "toy")
      PROFILES = ("quick",)
      canonical_name = staticmethod(lambda text: text)
      get_config = staticmethod(lambda name, profile: TOY if name == "toy" else ExperimentConfig(
          name="tiny", title="tiny", dataset="binary", model="mlp",
          model_kwargs={"hidden_sizes": (8,)}, loss="logistic", optimizer="sgd",
          learning_rate=0.3, batch_size=100, epochs=2, weight_scale=None,
          normalize="standardize", grid={"learning_rate": [0.3, 0.1]}, jit_per_batch=True))

    train, flags = json.loads(sys.argv[1]), sys.argv[2:]
    codes = [app.main(train + ["--results-dir", "r"] + flags)]
    for _ in range(2):
      codes.append(reproduce.main(["--only", "tiny", "--only", "toy", "--results-dir", "rep"]
                                  + flags, catalog=Tiny()))
    print("CODES" + json.dumps(codes))
    config, splits = ten_classes()
    ten = experiment.train_and_evaluate(config, "ten", splits=splits, plot=False)
    print("TEN" + json.dumps([ten[key] for key in TEN_KEYS]))
""").replace("TEN_KEYS", repr(TEN_KEYS))


def _free_port() -> int:
  with socket.socket() as sock:
    sock.bind(("127.0.0.1", 0))
    return sock.getsockname()[1]


def _parameters(results_dir: pathlib.Path) -> list[np.ndarray]:
  (path,) = results_dir.glob("checkpoints/q2_4/*/checkpoint.msgpack")
  payload = serialization.msgpack_restore(path.read_bytes())
  leaves = []
  def walk(tree):
    for key in sorted(tree):
      walk(tree[key]) if isinstance(tree[key], dict) else leaves.append(np.asarray(tree[key]))
  walk(payload["state"]["params"])
  return leaves


@pytest.mark.no_network
@pytest.mark.timeout(240)
def test_two_processes_train_like_one_and_only_process_0_writes(tmp_path, capsys, monkeypatch):
  """Two processes with two CPU devices each (4 in the mesh) against one process on one."""
  from experiments import cli as app
  from hw.engine import experiment
  # all three on the deterministic stand-in data (no target): the subprocesses get no HW_*
  # variables, and `make test` exports HW_DATA_DIR, which would pick the course data here
  monkeypatch.delenv("HW_DATA_DIR", raising=False)
  env = {key: value for key, value in os.environ.items()
         if not key.startswith(("HW_", "XLA_FLAGS", "SLURM_", "JAX_"))}
  env.update(JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT), HW_NO_PROGRESS="1",
             XLA_FLAGS="--xla_force_host_platform_device_count=2")
  flags = ["--coordinator", f"127.0.0.1:{_free_port()}", "--num-processes", "2"]
  processes = []
  for index in range(2):
    cwd = tmp_path / f"process{index}"
    cwd.mkdir()
    processes.append(subprocess.Popen(
        [sys.executable, "-c", SCRIPT, json.dumps(TRAIN), *flags, "--process-id", str(index)],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
  try:  # meanwhile the one-process reference, here, with the same global batch
    assert app.main([*TRAIN, "--devices", "1", "--results-dir", str(tmp_path / "one")]) == 0
    scope: dict = {}
    exec(TEN_CLASSES, scope)
    config, splits = scope["ten_classes"]()
    ten = experiment.train_and_evaluate(config.replace(devices=1), tmp_path / "ten", splits=splits,
                                        plot=False)
    outputs = [process.communicate(timeout=180) for process in processes]
  finally:
    for process in processes:  # a hang fails the test instead of blocking the suite
      if process.poll() is None:
        process.kill()
        process.communicate()
  for process, (out, err) in zip(processes, outputs):
    assert process.returncode == 0, err[-3000:]
    codes = json.loads(next(line for line in out.splitlines() if line.startswith("CODES"))[5:])
    assert codes == [0, 0, 0], (codes, err[-3000:])
    line = next(line for line in out.splitlines() if line.startswith("TEN"))
    assert json.loads(line[3:]) == pytest.approx([ten[key] for key in TEN_KEYS], rel=1e-5)
  reference = capsys.readouterr().out
  accuracy = next(line for line in reference.splitlines() if "test accuracy" in line)
  for out, _ in outputs:  # both processes computed the same test accuracy
    assert accuracy.split("(")[0] in out, (accuracy, out)

  first, second = tmp_path / "process0", tmp_path / "process1"
  assert [p.name for p in second.iterdir()] == []  # process 1 wrote nothing at all
  one = json.loads((tmp_path / "one" / "q2_4.json").read_text())
  two = json.loads((first / "r" / "q2_4.json").read_text())
  assert (one["platform"]["device_count"], two["platform"]["device_count"]) == (1, 4)
  assert two["platform"]["process_count"] == 2
  for key in ("train_accuracy", "val_accuracy"):
    assert ([r[key] for r in one["grid"][0]["history"]]
            == [r[key] for r in two["grid"][0]["history"]]), key
  assert one["test_accuracy"] == two["test_accuracy"]
  for a, b in zip(_parameters(tmp_path / "one"), _parameters(first / "r"), strict=True):
    assert np.max(np.abs(a - b)) <= 1e-5 * np.max(np.abs(a)), (a, b)
  lines = (first / "r" / "q2_4.metrics.jsonl").read_text().splitlines()
  assert len(lines) == 3
  tiny = json.loads((first / "rep" / "tiny.json").read_text())
  assert tiny["status"] == "complete" and len(tiny["grid"]) == 2
  state = json.loads((first / "rep" / "reproduce_state.json").read_text())
  assert state["experiments"]["tiny"]["message"] == "finished earlier; not retrained"
  # the study: run once, by process 0 alone (process 1 waited and wrote nothing)
  toy = json.loads((first / "rep" / "toy.json").read_text())
  assert toy["status"] == "complete" and toy["summary"] == ["sum 45"]
  assert toy["meets_target"] is True
  assert state["experiments"]["toy"]["status"] == "complete"
  assert state["experiments"]["toy"]["message"] == "finished earlier; not rerun"
  assert "toy: run by process 0" in outputs[1][0]
  assert (first / "rep" / "REPORT.md").exists()


@pytest.mark.no_network
@pytest.mark.timeout(120)
@pytest.mark.parametrize("process1, message0, message1, code1", [
    (["--seed", "1"], "differs between process 0 and process(es) 1",
     "differs between process 0 and process(es) 1", 1),
    (["--binary-data", "/nonexistent/data.npz"],
     "process 1 failed (DataError: binary data file /nonexistent/data.npz does not exist)",
     "binary data file /nonexistent/data.npz does not exist", 2)],
    ids=["different-seed", "missing-data"])
def test_processes_that_differ_or_fail_all_stop_with_an_error(process1, message0, message1,
                                                              code1, tmp_path):
  """A different seed in one process, or data one process cannot load: both stop with the
  reason, at once, instead of waiting for each other in a collective (exit 1; 2, bad
  input, for the process whose own data is missing)."""
  env = {key: value for key, value in os.environ.items()
         if not key.startswith(("HW_", "XLA_FLAGS", "SLURM_", "JAX_"))}
  env.update(JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT), HW_NO_PROGRESS="1")
  port = _free_port()
  processes = [subprocess.Popen(
      [sys.executable, "-m", "experiments", *TRAIN, "--results-dir", str(tmp_path / f"r{index}"),
       "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--process-id",
       str(index), *(process1 if index else [])], cwd=tmp_path, env=env,
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for index in range(2)]
  try:
    outputs = [process.communicate(timeout=90) for process in processes]
  finally:
    for process in processes:
      if process.poll() is None:
        process.kill()
        process.communicate()
  for process, (_, err), message, code in zip(processes, outputs, (message0, message1),
                                             (1, code1)):
    assert process.returncode == code, err[-3000:]
    assert message in err, err[-3000:]
  assert not (tmp_path / "r0" / "q2_4.json").exists()
  assert not (tmp_path / "r1").exists()


def _args(**flags):
  values = {"coordinator": None, "num_processes": None, "process_id": None,
            "distributed": None}
  return argparse.Namespace(**{**values, **flags})


def test_settings_come_from_flags_then_the_environment():
  assert distributed.settings_from(_args(), {}) is None
  environ = {"HW_COORDINATOR": "node1:1234", "HW_NUM_PROCESSES": "4", "HW_PROCESS_ID": "3"}
  assert distributed.settings_from(_args(), environ) == distributed.Settings("node1:1234", 4, 3)
  assert (distributed.settings_from(_args(process_id="1"), environ)
          == distributed.Settings("node1:1234", 4, 1))
  assert distributed.settings_from(_args(distributed="auto"), {}) == distributed.Settings(
      auto=True)
  assert distributed.settings_from(_args(), {"HW_DISTRIBUTED": "auto", "HW_PROCESS_ID": "2"}) \
      == distributed.Settings(process_id=2, auto=True)
  one = {"HW_COORDINATOR": "h:1", "HW_NUM_PROCESSES": "1", "HW_PROCESS_ID": "0"}
  assert distributed.settings_from(_args(), one) is None  # one process: nothing to set up


@pytest.mark.parametrize("flags, environ, message", [
    ({"coordinator": "node1"}, {}, "--coordinator 'node1'"),
    ({"coordinator": "h:0", "num_processes": "2", "process_id": "0"}, {}, "--coordinator 'h:0'"),
    ({"coordinator": "h:1", "num_processes": "two", "process_id": "0"}, {},
     "--num-processes 'two'"),
    ({"coordinator": "h:1", "num_processes": "2", "process_id": "2"}, {}, "--process-id '2'"),
    ({"coordinator": "h:1", "num_processes": "2", "process_id": "-1"}, {}, "--process-id '-1'"),
    ({}, {"HW_NUM_PROCESSES": "0"}, "HW_NUM_PROCESSES '0'"),
    ({"process_id": "1"}, {}, "without --coordinator and --num-processes"),
    ({}, {"HW_DISTRIBUTED": "yes"}, "HW_DISTRIBUTED 'yes'"),
])
def test_bad_settings_name_the_flag_and_value(flags, environ, message):
  with pytest.raises(distributed.SettingsError, match=message.replace("(", r"\(")):
    distributed.settings_from(_args(**flags), environ)


@pytest.mark.parametrize("command", ["train", "reproduce"])
def test_bad_settings_exit_2_before_any_training(command, tmp_path, capsys, monkeypatch):
  from experiments import cli as app
  monkeypatch.delenv("HW_COORDINATOR", raising=False)
  argv = [command, *(["q2_4"] if command == "train" else []), "--results-dir", str(tmp_path),
          "--num-processes", "2", "--coordinator", "localhost:70000", "--process-id", "0"]
  assert app.main(argv) == 2
  assert "--coordinator 'localhost:70000'" in capsys.readouterr().err
  assert list(tmp_path.iterdir()) == []


def test_one_process_runtime_is_the_plain_one_process_step():
  runtime = Runtime()
  assert runtime.writer and not runtime.several and not Runtime(1, 2).writer
  with pytest.raises(KeyError, match="missing"):  # its own error, as it is
    runtime.together(lambda: {}["missing"], "loading the data")
  assert runtime.together(lambda: 3, "loading the data") == 3
  runtime.agree("anything", "the configuration")  # nothing to compare with
  assert runtime.from_writer(lambda: b"bytes") == b"bytes"
  assert runtime.json_from_writer(lambda: {"done": True}) == {"done": True}
  index, keys = np.arange(6).reshape(2, 3), np.zeros((2, 4), np.uint32)
  assert runtime.step_inputs(None, None, index, keys) == (index, keys)  # as they are
