"""``python -m benchmarks.gpu_check --tiny`` runs on the CPU (so the GPU check cannot rot)
and writes a report that names the device and says it is no GPU measurement."""
from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_report(tmp_path_factory):
  from benchmarks import gpu_check
  out = tmp_path_factory.mktemp("gpu") / "gpu.md"
  code = gpu_check.main(["--tiny", "--out", str(out), "--budget-s", "240"])
  return code, out.read_text(), json.loads(out.with_suffix(".json").read_text())


def test_the_tiny_check_runs_every_part_and_writes_the_report(tiny_report):
  code, text, result = tiny_report
  assert code == 0, [part.get("error") for part in result["parts"].values()]
  assert set(result["parts"]) == {"verify", "q5_3", "vgg11", "ab", "data_parallel"}
  assert not any("error" in part for part in result["parts"].values())
  assert result["parts"]["verify"]["failed"] == 0 and result["parts"]["verify"]["passed"] >= 2
  runs = result["parts"]["q5_3"]["runs"]
  assert set(runs) == {"a", "b"} and all(run["epochs"] for run in runs.values())
  assert result["parts"]["vgg11"]["epochs"][0]["seconds"] > 0
  ratio = result["parts"]["ab"]["rows"][0]["a_over_b"]["median"]
  assert ratio > 0
  for heading in ("## hw verify, float32 rows on the device", "## Q5.3: wall time to 99%",
                  "## VGG11-BN on CIFAR-10", "## a/b train-step throughput",
                  "## Data parallel over every local device"):
    assert heading in text


def test_a_report_written_off_a_gpu_says_so_and_names_the_device(tiny_report):
  _, text, result = tiny_report
  import jax
  device = jax.devices()[0]
  assert result["device"]["platform"] == device.platform
  assert text.startswith(f"# GPU check: {result['device']['kind']} ({device.platform}")
  assert "**Not a GPU measurement.**" in text and "(`--tiny`)" in text
  assert result["device"]["backend_choices"]["backend"] == device.platform


def test_a_failing_part_is_reported_and_the_others_still_run(monkeypatch, tmp_path):
  from benchmarks import gpu_check

  def broken(*args, **kwargs):
    raise RuntimeError("no data here")
  monkeypatch.setattr(gpu_check, "part_vgg11", broken)
  for name in ("part_verify", "part_q5_3", "part_ab", "part_data_parallel"):
    monkeypatch.setattr(gpu_check, name, lambda *a, **k: {"error": "skipped in this test"})
  out = tmp_path / "gpu.md"
  assert gpu_check.main(["--tiny", "--out", str(out)]) == 1
  text = out.read_text()
  assert "## VGG11-BN on CIFAR-10\n\nNot run: RuntimeError: no data here" in text


DATA_PARALLEL = textwrap.dedent("""
    import json, time
    from benchmarks import gpu_check
    part = gpu_check.part_data_parallel(True, time.perf_counter() + 120, None)
    print("RESULT" + json.dumps(part))
""")


def test_the_data_parallel_part_on_two_devices():
  env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
         "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT)}
  done = subprocess.run([sys.executable, "-c", DATA_PARALLEL], env=env, capture_output=True,
                        text=True, timeout=300, cwd=ROOT)
  assert done.returncode == 0, done.stderr[-3000:]
  line = next(l for l in done.stdout.splitlines() if l.startswith("RESULT"))
  part = json.loads(line[len("RESULT"):])
  assert part["status"] == "measured" and set(part["runs"]) == {"1", "2"}
  assert [run["devices"] for run in part["runs"].values()] == [1, 2]
  assert all(len(run["epochs"]) == 2 for run in part["runs"].values())
