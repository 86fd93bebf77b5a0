"""Tests of the binary task's files: the course's data.pkl, the restricted unpickler,
.npz files, discovery in a data folder, and the task's source and identity strings."""
from __future__ import annotations

import hashlib
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

import hw.data as data
from hw.data import binary

REPO = Path(__file__).resolve().parents[1]
REAL_SHA256 = "06c4d243c94f145105cf8e6d5959c4848f7935957401e6f6c6dc50aa39cb7061"
REAL_IDENTITY = "binary:sha256:010d99661428e52b"


@pytest.fixture(autouse=True)
def no_data_dir(request, monkeypatch):
  """No HW_DATA_DIR, except for the real-data tests (which read it first)."""
  if request.node.get_closest_marker("real_data") is None:
    monkeypatch.delenv("HW_DATA_DIR", raising=False)


def py2_array(array: np.ndarray) -> str:
  """One numpy array as Python 2 + numpy 1.x write it with protocol 0 (as in data.pkl)."""
  shape = "".join(f"I{size}\n" for size in array.shape)
  data_bytes = "".join(f"\\x{byte:02x}" for byte in array.tobytes())
  return ("cnumpy.core.multiarray\n_reconstruct\n(cnumpy\nndarray\n(I0\ntS'b'\ntR(I1\n("
          f"{shape}tcnumpy\ndtype\n(S'{array.dtype.str[1:]}'\nI0\nI1\ntR(I3\nS'<'\n"
          f"NNNI-1\nI-1\nI0\ntbI00\nS'{data_bytes}'\ntb")


def py2_pickle(features, targets) -> bytes:
  return f"({py2_array(np.asarray(features))}{py2_array(np.asarray(targets))}t.".encode()


def toy(count=8, dims=3, seed=0):
  rng = np.random.default_rng(seed)
  return rng.standard_normal((count, dims)), (np.arange(count) % 2).astype(np.int64)


def savez(path: Path, *args, **kwargs) -> Path:
  """np.savez to exactly ``path`` (np.savez appends .npz to a name without it)."""
  with path.open("wb") as file:
    np.savez(file, *args, **kwargs)
  return path


def write(path: Path, content) -> Path:
  path.write_bytes(content if isinstance(content, bytes) else pickle.dumps(content))
  return path


# --- the real file ------------------------------------------------------------------------


def _real_data_root() -> Path:
  """$HW_DATA_DIR, else ../shared/data beside the clone (as the Makefile); else skip."""
  value = os.environ.get("HW_DATA_DIR", "")
  for root in ([Path(value)] if value else []) + [REPO.parent / "shared" / "data"]:
    if (root / "eecs598-hw1" / "data.pkl").is_file():
      return root.resolve()
  reason = (f"real data: no eecs598-hw1/data.pkl in HW_DATA_DIR={value or '(unset)'} nor in "
            f"{REPO.parent / 'shared' / 'data'}")
  print(reason)
  pytest.skip(reason)


@pytest.mark.real_data
def test_real_eecs598_data_found_read_and_recognised(monkeypatch):
  root = _real_data_root()
  path = root / "eecs598-hw1" / "data.pkl"
  assert hashlib.sha256(path.read_bytes()).hexdigest() == REAL_SHA256
  assert data.find_binary_data(root) == path.resolve()
  assert data.find_binary_data(root / "eecs598-hw1") == path.resolve()
  assert data.find_binary_data(path) == path.resolve()
  monkeypatch.delenv("HW_DATA_DIR", raising=False)
  assert data.find_binary_data() is None  # No HW_DATA_DIR: no search.
  monkeypatch.setenv("HW_DATA_DIR", str(root))
  assert data.find_binary_data() == path.resolve()

  task = data.binary_task(data.find_binary_data())
  train, validation, test = task
  assert [len(part) for part in task] == [500, 250, 250]
  assert task.source == f"EECS 598 HW1 data.pkl ({path.resolve()})"
  assert task.identity == REAL_IDENTITY and task.path == path.resolve()
  assert train.images.shape == (500, 20) and train.images.dtype == np.float32
  labels = np.concatenate([train.labels, validation.labels, test.labels])
  assert labels.dtype == np.int32 and np.bincount(labels).tolist() == [460, 540]
  # The same arrays as a plain (unrestricted) unpickling of this known, checked file.
  with path.open("rb") as file:
    features, targets = pickle.load(file, encoding="latin1")
  np.testing.assert_array_equal(test.images, features[750:].astype(np.float32))
  np.testing.assert_array_equal(validation.labels, targets[500:750])

  # Sanity figure of the data README: logistic regression fitted on the 500 training rows
  # (Newton's method, no regularisation) classifies 93.6 % of the test rows correctly.
  def with_bias(split):
    return np.c_[split.images.astype(np.float64), np.ones(len(split))], split.labels
  (x, y), (x_test, y_test) = with_bias(train), with_bias(test)
  weights = np.zeros(x.shape[1])
  for _ in range(25):
    p = 1 / (1 + np.exp(-x @ weights))
    hessian = (x * (p * (1 - p))[:, None]).T @ x + 1e-9 * np.eye(x.shape[1])
    weights -= np.linalg.solve(hessian, x.T @ (p - y))
  assert ((x_test @ weights > 0) == y_test).mean() >= 0.92


@pytest.mark.real_data
def test_real_file_as_npz_has_the_same_identity(tmp_path):
  path = _real_data_root() / "eecs598-hw1" / "data.pkl"
  features, targets = data.load_binary_file(path)
  np.savez(tmp_path / "copy.npz", features=features.astype(np.float64), targets=targets)
  task = data.binary_task(tmp_path / "copy.npz")
  assert task.identity == REAL_IDENTITY
  assert task.source == f"binary data file {tmp_path / 'copy.npz'}"


# --- the restricted unpickler -------------------------------------------------------------


class _Payload:
  """Unpickling calls ``function(*args)`` (what a malicious pickle does)."""

  def __init__(self, function, *args):
    self.function, self.args = function, args

  def __reduce__(self):
    return self.function, self.args


def _marker_command(marker: Path) -> str:
  return f"touch {marker}"


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_pickle_calling_os_system_is_refused_and_never_run(tmp_path, protocol):
  marker = tmp_path / "pwned"
  path = write(tmp_path / "evil.pkl",
               pickle.dumps((_Payload(os.system, _marker_command(marker)), np.zeros(8)),
                            protocol=protocol))
  with pytest.raises(data.DataError) as error:
    data.binary_task(path)
  message = str(error.value)
  assert str(path) in message and f"{os.system.__module__}.system" in message
  assert "refused" in message and "nothing was run" in message
  assert not marker.exists()


def test_hand_written_os_system_global_is_refused(tmp_path):
  marker = tmp_path / "pwned"
  path = write(tmp_path / "evil.pkl", f"cos\nsystem\n(S'touch {marker}'\ntR.".encode())
  with pytest.raises(data.DataError, match=r"asks for os\.system") as error:
    data.load_binary_file(path)
  assert str(path) in str(error.value)
  assert not marker.exists()


@pytest.mark.parametrize("payload, refused", [
    (_Payload(eval, "__import__('os')"), "builtins.eval"),
    (_Payload(np.load, "x.npy"), "numpy.load"),
    (_Payload(getattr, np.zeros(1), "tofile"), "builtins.getattr"),
    (_Payload(shutil.rmtree, "/nonexistent"), "shutil.rmtree"),
])
def test_other_globals_are_refused(tmp_path, payload, refused):
  path = write(tmp_path / "evil.pkl", (np.zeros((8, 2)), payload))
  with pytest.raises(data.DataError, match=refused.replace(".", r"\.")):
    data.binary_task(path)


def test_payload_hidden_in_an_object_array_is_refused(tmp_path):
  marker = tmp_path / "pwned"
  hidden = np.empty(8, dtype=object)
  hidden[:] = 0
  hidden[3] = _Payload(os.system, _marker_command(marker))
  path = write(tmp_path / "evil.pkl", (np.zeros((8, 2)), hidden))
  with pytest.raises(data.DataError, match="refused"):
    data.binary_task(path)
  assert not marker.exists()


def test_codecs_encode_is_allowed_for_latin1_only(tmp_path):
  import _codecs
  path = write(tmp_path / "evil.pkl", (np.zeros((8, 2)), _Payload(_codecs.encode, "x", "rot13")))
  with pytest.raises(data.DataError, match="only latin-1"):
    data.binary_task(path)


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
@pytest.mark.parametrize("container", [tuple, list])
def test_numpy_pickles_of_every_protocol_load(tmp_path, protocol, container):
  features, targets = toy()
  path = write(tmp_path / "ok.pkl",
               pickle.dumps(container([features, targets]), protocol=protocol))
  got_features, got_labels = data.load_binary_file(path)
  np.testing.assert_array_equal(got_features, features.astype(np.float32))
  np.testing.assert_array_equal(got_labels, targets)


def test_python2_protocol0_pickle_loads(tmp_path):
  features, targets = toy()
  path = write(tmp_path / "py2.pkl", py2_pickle(features, 2 * targets - 1))
  task = data.binary_task(path)
  np.testing.assert_array_equal(task.train.images, features[:4].astype(np.float32))
  assert np.concatenate([part.labels for part in task]).tolist() == targets.tolist()


# --- npz files ----------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["named", "labels", "positional"])
def test_npz_files_load_like_pickles(tmp_path, how):
  features, targets = toy()
  path = tmp_path / "d.npz"
  if how == "named":
    np.savez(path, features=features, targets=targets)
  elif how == "labels":
    np.savez(path, features=features, labels=2 * targets - 1)
  else:
    np.savez(path, features, targets)
  from_npz = data.binary_task(path)
  from_pickle = data.binary_task(write(tmp_path / "d.pkl", (features, targets)))
  assert from_npz.identity == from_pickle.identity
  for a, b in zip(from_npz, from_pickle):
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.labels, b.labels)


def test_npz_with_an_object_array_is_refused_without_unpickling(tmp_path):
  marker = tmp_path / "pwned"
  hidden = np.empty(8, dtype=object)
  hidden[:] = _Payload(os.system, _marker_command(marker))
  np.savez(tmp_path / "evil.npz", features=np.zeros((8, 2)), targets=hidden)
  with pytest.raises(data.DataError, match="not a readable .npz"):
    data.binary_task(tmp_path / "evil.npz")
  assert not marker.exists()


# --- malformed files ----------------------------------------------------------------------


def _truncated_pickle(path):
  full = pickle.dumps(toy(), protocol=2)
  path.write_bytes(full[:len(full) // 2])


def _truncated_npz(path):
  features, targets = toy()
  savez(path, features=features, targets=targets)
  path.write_bytes(path.read_bytes()[:200])


def _py2_truncated(path):
  full = py2_pickle(*toy())
  path.write_bytes(full[:len(full) - 40])


BAD_FILES = {
    "truncated pickle": (_truncated_pickle, "not a readable pickle"),
    "truncated Python 2 pickle": (_py2_truncated, "not a readable pickle"),
    "truncated npz": (_truncated_npz, "not a readable .npz"),
    "garbage": (lambda p: p.write_bytes(os.urandom(64) + b"\x00"), "not a readable pickle"),
    "empty": (lambda p: p.write_bytes(b""), "empty file"),
    "npy": (lambda p: np.save(open(p, "wb"), np.zeros(3)), "single .npy"),
    "npz wrong keys": (lambda p: savez(p, x=np.zeros((8, 2)), z=np.zeros(8)),
                       r"exactly the arrays 'features' and 'targets'.*\['x', 'z'\]"),
    "wrong shapes": (lambda p: write(p, (np.zeros((8, 2, 2)), np.zeros(8))),
                     r"shapes \(8, 2, 2\) and \(8,\)"),
    "targets 2-D": (lambda p: write(p, (np.zeros((8, 2)), np.zeros((8, 2)))),
                    r"shapes \(8, 2\) and \(8, 2\)"),
    "NaN": (lambda p: write(p, (np.where(np.eye(8, 2) > 0, np.nan, 0.0), np.zeros(8))),
            "NaN or infinite.*row 0, column 0"),
    "inf": (lambda p: write(p, (np.full((8, 2), -np.inf), np.zeros(8))), "NaN or infinite"),
    "beyond float32": (lambda p: write(p, (np.eye(8, 2) * 1e39, np.zeros(8))),
                       r"feature 1e\+39 at row 0, column 0 exceeds the float32 range"),
    "labels 0..2": (lambda p: write(p, (np.zeros((8, 2)), np.arange(8) % 3)),
                    r"targets must all be in .*\[0\.0, 1\.0, 2\.0\]"),
    "labels -1, 0, 1": (lambda p: write(p, (np.zeros((8, 2)), np.arange(8) % 3 - 1)),
                        "targets must all be in"),
    "labels fractional": (lambda p: write(p, (np.zeros((8, 2)), np.full(8, 0.5))),
                          "targets must all be in"),
    "labels NaN": (lambda p: write(p, (np.zeros((8, 2)), np.full(8, np.nan))),
                   "targets contain NaN"),
    "complex features": (lambda p: write(p, (np.zeros((8, 2), complex), np.zeros(8))),
                         "numeric arrays; the features are not"),
    "npz labels 7": (lambda p: savez(p, features=np.zeros((8, 2)), targets=np.full(8, 7)),
                     "targets must all be in"),
    "npz NaN": (lambda p: savez(p, features=np.full((8, 2), np.nan), targets=np.zeros(8)),
                "NaN"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_malformed_files_raise_data_error_naming_the_file(tmp_path, case):
  make, message = BAD_FILES[case]
  path = tmp_path / "bad.bin"
  make(path)
  with pytest.raises(data.DataError, match=message) as error:
    data.binary_task(path)
  assert str(path) in str(error.value)
  assert isinstance(error.value, ValueError)


def test_missing_file_and_folder(tmp_path):
  with pytest.raises(data.DataError, match="does not exist") as error:
    data.binary_task(tmp_path / "absent.pkl")
  assert str(tmp_path / "absent.pkl") in str(error.value)
  with pytest.raises(data.DataError, match="is a folder"):
    data.binary_task(tmp_path)


# --- discovery, source and identity -------------------------------------------------------


def test_find_binary_data_in_a_data_folder(tmp_path, monkeypatch):
  assert data.find_binary_data() is None  # No HW_DATA_DIR.
  assert data.find_binary_data(tmp_path) is None  # A folder without the file.
  folder = tmp_path / "eecs598-hw1"
  folder.mkdir()
  npz = folder / "data.npz"
  np.savez(npz, *toy())
  assert data.find_binary_data(tmp_path) == npz
  pkl = write(folder / "data.pkl", toy())
  assert data.find_binary_data(tmp_path) == pkl  # data.pkl first.
  assert data.find_binary_data(folder) == pkl
  assert data.find_binary_data(npz) == npz  # A file is taken as it is.
  monkeypatch.setenv("HW_DATA_DIR", str(tmp_path))
  assert data.find_binary_data() == pkl
  # The stand-in stays the default of binary_task: no implicit search.
  assert data.binary_task().source == "deterministic stand-in (seed 0)"
  assert data.binary_task(data.find_binary_data()).source == f"binary data file {pkl}"


def test_find_binary_data_rejects_a_missing_folder(tmp_path, monkeypatch):
  with pytest.raises(data.DataError, match="data_dir .* is not an existing folder"):
    data.find_binary_data(tmp_path / "absent")
  monkeypatch.setenv("HW_DATA_DIR", str(tmp_path / "absent"))
  with pytest.raises(data.DataError, match="HW_DATA_DIR .* is not an existing folder"):
    data.find_binary_data()


def test_binary_task_source_and_identity(tmp_path, monkeypatch):
  standin = data.binary_task(seed=0)
  assert isinstance(standin, tuple) and len(standin) == 3 and standin.path is None
  assert standin.train is standin[0] and standin.test is standin[2]
  assert standin.source == "deterministic stand-in (seed 0)"
  assert standin.identity.startswith("binary:sha256:") and len(standin.identity) == 30
  assert data.binary_task(seed=0).identity == standin.identity
  assert data.binary_task(seed=1).identity != standin.identity
  assert data.binary_task(seed=1).source == "deterministic stand-in (seed 1)"
  copied = pickle.loads(pickle.dumps(standin))
  assert (copied.source, copied.identity, len(copied)) == (standin.source, standin.identity, 3)

  features, labels = data.make_binary_standin(0)
  path = write(tmp_path / "standin.pkl", (features.astype(np.float64), labels))
  from_file = data.binary_task(path, seed=123)  # seed unused with a file
  assert from_file.identity == standin.identity  # same content, same identity
  assert from_file.source == f"binary data file {path}" and from_file.path == path
  changed = features.astype(np.float64)
  changed[999, 19] += 1
  assert data.binary_task(write(tmp_path / "changed.pkl", (changed, labels))).identity != (
      standin.identity)
  # The course's file is recognised by its SHA-256, not by its name.
  digest = hashlib.sha256(path.read_bytes()).hexdigest()
  monkeypatch.setitem(binary.KNOWN_FILES, digest, "EECS 598 HW1 data.pkl")
  assert data.binary_task(path).source == f"EECS 598 HW1 data.pkl ({path})"
  renamed = tmp_path / "eecs598-hw1" / "data.pkl"
  renamed.parent.mkdir()
  renamed.write_bytes(write(tmp_path / "other.pkl", toy()).read_bytes())
  assert data.binary_task(renamed).source == f"binary data file {renamed}"


@pytest.mark.real_data
def test_load_splits_uses_the_course_file_under_the_data_folder():
  from hw.engine.config import ExperimentConfig
  from hw.engine.experiment_data import load_splits
  config = ExperimentConfig(name="b", title="b", dataset="binary", model="linear")
  splits = load_splits(config, data_dir=_real_data_root())
  assert "EECS 598 HW1 data.pkl" in splits.source and not splits.stand_in
  assert (len(splits.train.labels), len(splits.validation.labels), len(splits.test.labels)) == (
      500, 250, 250)


def _allocations_during(function) -> int:
  """Peak bytes Python/NumPy allocated (tracemalloc) while ``function`` ran."""
  import tracemalloc
  tracemalloc.start()
  try:
    function()
  except data.DataError:
    pass
  finally:
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
  return peak


@pytest.mark.parametrize("where", ["reconstruct", "state"])
def test_an_array_declared_out_of_proportion_to_the_file_is_refused_before_allocation(
    tmp_path, where):
  """A 300-byte pickle of allowed types that declares 10**9 elements (its _reconstruct
  shape, or the shape of its BUILD state) is refused with the file named, and nothing near
  that size is allocated."""
  import struct
  honest = pickle.dumps((np.zeros(4), np.zeros(4)), protocol=2)
  tiny = b"K\x00\x85" if where == "reconstruct" else b"K\x04\x85"
  assert tiny in honest
  crafted = honest.replace(tiny, b"J" + struct.pack("<i", 10 ** 9) + b"\x85", 1)
  path = tmp_path / "bomb.pkl"
  path.write_bytes(crafted)
  assert len(crafted) < 400
  with pytest.raises(data.DataError, match=rf"{path}: refused to unpickle: it declares an "
                                           rf"array of shape \(1000000000,\).*out of "
                                           rf"proportion to the file's {len(crafted)} bytes"):
    binary.load_binary_file(path)
  assert _allocations_during(lambda: binary.load_binary_file(path)) < 10 ** 6


def test_a_memo_index_out_of_proportion_to_the_file_is_refused(tmp_path):
  """LONG_BINPUT 2**26 in a 9-byte file would make the unpickler allocate a 512 MiB memo."""
  import struct
  path = tmp_path / "memo.pkl"
  path.write_bytes(b"\x80\x02N" + b"r" + struct.pack("<I", 2 ** 26) + b".")
  with pytest.raises(data.DataError, match=rf"{path}: refused to unpickle: it declares memo "
                                           rf"entry 67,108,864"):
    binary.load_binary_file(path)


def test_object_arrays_in_proportion_still_load(tmp_path):
  features, targets = np.random.default_rng(0).random((40, 3)), np.arange(40) % 2
  path = tmp_path / "objects.pkl"
  path.write_bytes(pickle.dumps((features.astype(object), targets.astype(object)), protocol=2))
  loaded, labels = binary.load_binary_file(path)
  np.testing.assert_allclose(loaded, features.astype(np.float32))
  assert (labels == targets).all()


def test_a_text_file_is_not_a_pickle_rather_than_an_oversized_one(tmp_path):
  path = tmp_path / "passwd"
  path.write_text("root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1::/usr/sbin:/bin/false\n")
  with pytest.raises(data.DataError, match=rf"{path}: not a readable pickle"):
    binary.load_binary_file(path)
