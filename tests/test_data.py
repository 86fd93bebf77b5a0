"""Tests of hw.data: file formats, folder resolution, errors, tfds routes, splits."""
from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import io
import pickle
import socket
import sys
import tarfile
import threading
import time

import numpy as np
import pytest

import hw.data as data
from hw.data import local, tfds_source

IDX_NAMES = local.IDX_FILES


@pytest.fixture(autouse=True)
def isolated_environment(request, tmp_path_factory, monkeypatch):
  """No HW_DATA_DIR (except for real-data tests), an empty tfds data dir, a fresh cache."""
  if request.node.get_closest_marker("real_data") is None:
    monkeypatch.delenv("HW_DATA_DIR", raising=False)
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path_factory.mktemp("tfds")))
  data.clear_cache()
  yield
  data.clear_cache()


def write_mnist(folder, *, compressed=True, num_train=6, num_test=4, seed=0):
  """Write tiny MNIST-format files; returns {"train": (pixels, labels), "test": ...}."""
  rng = np.random.default_rng(seed)
  folder.mkdir(parents=True, exist_ok=True)
  suffix = ".gz" if compressed else ""
  written = {}
  for split, count in (("train", num_train), ("test", num_test)):
    pixels = rng.integers(0, 256, (count, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, count).astype(np.uint8)
    data.write_idx(folder / (IDX_NAMES[f"{split}_images"] + suffix), pixels)
    data.write_idx(folder / (IDX_NAMES[f"{split}_labels"] + suffix), labels)
    written[split] = (pixels, labels)
  return written


def cifar_batches(records_per_batch=3, seed=0):
  """{file name: (pixels uint8 NHWC, labels)} for the six CIFAR-10 batch files."""
  rng = np.random.default_rng(seed)
  return {name: (rng.integers(0, 256, (records_per_batch, 32, 32, 3), dtype=np.uint8),
                 rng.integers(0, 10, records_per_batch).astype(np.uint8))
          for name in local.CIFAR_FILES}


def write_cifar(folder, batches):
  folder.mkdir(parents=True, exist_ok=True)
  for name, (pixels, labels) in batches.items():
    data.write_cifar_batch(folder / name, pixels, labels)


# --- file formats and local folders -------------------------------------------------------


@pytest.mark.parametrize("file_name", ["labels", "labels.gz"])
def test_idx_round_trip_and_gzip_detected_by_content(tmp_path, file_name):
  labels = np.arange(7, dtype=np.uint8)
  path = data.write_idx(tmp_path / file_name, labels)
  assert (path.read_bytes()[:2] == b"\x1f\x8b") == file_name.endswith(".gz")
  np.testing.assert_array_equal(data.read_idx(path, magic=2049), labels)
  # The name does not matter, only the content (tfds stores downloads under hashed names).
  renamed = path.rename(tmp_path / "hashed_name")
  np.testing.assert_array_equal(data.read_idx(renamed, magic=2049), labels)


@pytest.mark.parametrize("compressed", [True, False])
def test_mnist_loads_from_parent_folder(tmp_path, compressed):
  written = write_mnist(tmp_path / "mnist", compressed=compressed)
  dataset = data.load_dataset("mnist", data_dir=tmp_path)
  assert dataset.name == "mnist" and dataset.num_classes == 10
  assert str(tmp_path / "mnist") in dataset.source
  assert ("gzip" in dataset.source) == compressed and dataset.notes == ()
  for split in ("train", "test"):
    pixels, labels = written[split]
    got = getattr(dataset, split)
    assert got.images.dtype == np.float32 and got.labels.dtype == np.int32
    assert got.images.shape == (len(labels), 28, 28, 1)
    np.testing.assert_array_equal(got.images[..., 0], pixels.astype(np.float32) / 255)
    np.testing.assert_array_equal(got.labels, labels)
  assert not dataset.train.images.flags.writeable  # Cached and shared: read-only.


def test_folder_with_files_env_variable_and_cache(tmp_path, monkeypatch):
  write_mnist(tmp_path / "fashion-mnist", seed=1)
  direct = data.load_dataset("fashion_mnist", data_dir=tmp_path / "fashion-mnist")
  monkeypatch.setenv("HW_DATA_DIR", str(tmp_path))
  from_env = data.load_dataset("fashion_mnist")
  assert from_env is direct  # Same folder: served from the cache.
  data.clear_cache()
  assert data.load_dataset("fashion_mnist") is not direct


def test_mnist_folder_is_not_read_as_fashion_mnist(tmp_path):
  write_mnist(tmp_path / "mnist")
  with pytest.raises(data.DataError, match="no Fashion-MNIST files"):
    data.load_dataset("fashion_mnist", data_dir=tmp_path / "mnist")
  with pytest.raises(data.DataError, match="fashion-mnist/"):
    data.load_dataset("fashion_mnist", data_dir=tmp_path)


@pytest.mark.parametrize("layout", ["cifar10/cifar-10-batches-bin", "cifar-10-batches-bin",
                                    "cifar10"])
def test_cifar10_round_trip_nhwc(tmp_path, layout):
  batches = cifar_batches()
  write_cifar(tmp_path / layout, batches)
  dataset = data.load_dataset("cifar10", data_dir=tmp_path)
  train_pixels = np.concatenate([batches[f"data_batch_{i}.bin"][0] for i in range(1, 6)])
  assert dataset.train.images.shape == (15, 32, 32, 3)
  np.testing.assert_array_equal(dataset.train.images, train_pixels.astype(np.float32) / 255)
  np.testing.assert_array_equal(dataset.test.labels, batches["test_batch.bin"][1])
  assert data.cifar_lossy_note(dataset) is None


def test_cifar10_reference_pixel_order(tmp_path):
  """Record = label, 1024 R, 1024 G, 1024 B bytes, each plane row-major."""
  record = np.zeros(3073, np.uint8)
  record[0] = 7
  record[1 + 0 * 1024 + 1 * 32 + 2] = 11   # red,   row 1, column 2
  record[1 + 2 * 1024 + 31 * 32 + 0] = 22  # blue,  row 31, column 0
  record[1 + 1 * 1024 + 0] = 33            # green, row 0, column 0
  (tmp_path / "one.bin").write_bytes(record.tobytes())
  pixels, labels = data.read_cifar_batch(tmp_path / "one.bin")
  assert labels.tolist() == [7] and pixels.shape == (1, 32, 32, 3)
  assert pixels[0, 1, 2, 0] == 11 and pixels[0, 31, 0, 2] == 22 and pixels[0, 0, 0, 1] == 33
  assert int(pixels.sum()) == 66


def test_cifar10_lossy_jpeg_note_from_readme(tmp_path):
  write_cifar(tmp_path / "cifar10" / "cifar-10-batches-bin", cifar_batches())
  (tmp_path / "cifar10" / "README.md").write_text("Rebuilt from JPEG images (lossy).\n")
  dataset = data.load_dataset("cifar10", data_dir=tmp_path)
  note = data.cifar_lossy_note(dataset)
  assert note and "JPEG" in note and str(tmp_path / "cifar10" / "README.md") in note
  assert dataset.notes == (note,)


def test_unknown_name_and_missing_folder():
  with pytest.raises(ValueError, match="`name` must be one of"):
    data.load_dataset("svhn")
  with pytest.raises(data.DataError, match="not an existing folder"):
    data.load_dataset("mnist", data_dir="/nonexistent/hw-data")


def _truncate(path, keep):
  path.write_bytes(path.read_bytes()[:keep])


def _gzip_truncate(path):
  _truncate(path, len(path.read_bytes()) // 2)


def _rewrite_gz(path, change):
  raw = bytearray(gzip.decompress(path.read_bytes()))
  change(raw)
  path.write_bytes(gzip.compress(bytes(raw)))


CORRUPTIONS = {
    "truncated gzip": ("train-images-idx3-ubyte.gz", _gzip_truncate, "not a valid gzip"),
    "body shorter than header says": (
        "t10k-images-idx3-ubyte.gz", lambda p: _rewrite_gz(p, lambda b: b.__delitem__(-5)),
        "truncated"),
    "trailing bytes": ("t10k-labels-idx1-ubyte.gz",
                       lambda p: _rewrite_gz(p, lambda b: b.extend(b"x")), "trailing bytes"),
    "labels file in images place": (
        "train-images-idx3-ubyte.gz",
        lambda p: p.write_bytes((p.parent / "train-labels-idx1-ubyte.gz").read_bytes()),
        "magic number 2049"),
    "label out of range": ("train-labels-idx1-ubyte.gz",
                           lambda p: _rewrite_gz(p, lambda b: b.__setitem__(8, 10)),
                           "label 10 outside"),
    "count mismatch": (
        "t10k-labels-idx1-ubyte.gz",
        lambda p: data.write_idx(p, np.zeros(3, np.uint8)), "holds 4 images but"),
    "missing file": ("t10k-labels-idx1-ubyte.gz", lambda p: p.unlink(),
                     "missing t10k-labels-idx1-ubyte"),
}


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_corrupt_idx_files_raise_data_error_naming_the_file(tmp_path, case):
  file_name, corrupt, message = CORRUPTIONS[case]
  write_mnist(tmp_path)
  corrupt(tmp_path / file_name)
  with pytest.raises(data.DataError, match=message) as error:
    data.load_dataset("mnist", data_dir=tmp_path)
  shown = str(tmp_path / file_name) if case != "missing file" else str(tmp_path)
  assert shown in str(error.value)
  assert isinstance(error.value, ValueError)


@pytest.mark.parametrize("corrupt, message", [
    (lambda p: _truncate(p, 3073 * 2 + 100), "not a positive multiple"),
    (lambda p: p.write_bytes(b"\x0b" + p.read_bytes()[1:]), "label 11 outside"),
])
def test_corrupt_cifar_batch_raises_data_error(tmp_path, corrupt, message):
  write_cifar(tmp_path, cifar_batches())
  corrupt(tmp_path / "data_batch_3.bin")
  with pytest.raises(data.DataError, match=message) as error:
    data.load_dataset("cifar10", data_dir=tmp_path)
  assert str(tmp_path / "data_batch_3.bin") in str(error.value)


# --- tensorflow-datasets routes -----------------------------------------------------------


def _closed_local_port() -> int:
  with socket.socket() as sock:
    sock.bind(("127.0.0.1", 0))
    return sock.getsockname()[1]


def _forbid_download(monkeypatch):
  def fail(*args, **kwargs):
    raise AssertionError("tfds download must not be attempted")
  monkeypatch.setattr(tfds_source, "_download", fail)


def test_offline_without_data_fails_fast_with_instructions(monkeypatch, tmp_path):
  url = f"http://127.0.0.1:{_closed_local_port()}/train-images-idx3-ubyte.gz"
  real_infos = tfds_source.registered_url_infos("mnist")
  info = next(iter(real_infos.values()))
  monkeypatch.setattr(tfds_source, "registered_url_infos", lambda name: {url: info})
  _forbid_download(monkeypatch)
  monkeypatch.setenv("HW_DATA_DIR", str(tmp_path))  # A folder without MNIST.
  start = time.monotonic()
  with pytest.raises(data.DataError) as error:
    data.load_dataset("mnist")
  assert time.monotonic() - start < 5
  message = str(error.value)
  for expected in ("--data-dir", "HW_DATA_DIR", "train-images-idx3-ubyte", "unreachable",
                   "connect to the internet", str(tmp_path)):
    assert expected in message


def test_probe_gives_up_on_a_silent_server_within_its_timeout(monkeypatch):
  """A server that accepts the connection but never answers (as a blackholing proxy)."""
  monkeypatch.setattr(tfds_source, "PROBE_TIMEOUT_S", 0.5)
  with socket.socket() as silent:
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    port = silent.getsockname()[1]
    for url in (f"https://127.0.0.1:{port}/x", f"http://127.0.0.1:{port}/x"):
      start = time.monotonic()
      assert tfds_source.unreachable_hosts([url]) == [f"127.0.0.1:{port}"]
      assert time.monotonic() - start < 2


def test_registered_urls_are_the_ones_tfds_downloads_from():
  mnist = tfds_source.registered_url_infos("mnist")
  assert sorted(info.filename for info in mnist.values()) == sorted(
      f"{name}.gz" for name in IDX_NAMES.values())
  (cifar_url,) = tfds_source.registered_url_infos("cifar10")
  assert cifar_url.endswith("cifar-10-binary.tar.gz")


@pytest.mark.parametrize("name, shape", [("mnist", (28, 28, 1)), ("cifar10", (32, 32, 3))])
def test_prepared_tfds_copy_read_with_data_source_without_tensorflow(monkeypatch, name,
                                                                     shape):
  import tensorflow_datasets as tfds
  monkeypatch.setattr(tfds_source, "_has_prepared_array_record", lambda *args: True)
  _forbid_download(monkeypatch)
  with tfds.testing.mock_data(num_examples=5, policy=tfds.testing.MockPolicy.USE_CODE):
    dataset = data.load_dataset(name)
  assert dataset.source.startswith("tensorflow-datasets (prepared array_record copy")
  for split in (dataset.train, dataset.test):
    assert split.images.shape == (5,) + shape and split.images.dtype == np.float32
    assert 0 <= split.images.min() and split.images.max() <= 1
    assert split.labels.dtype == np.int32 and set(split.labels.tolist()) <= set(range(10))
  assert "tensorflow" not in sys.modules


def test_genuine_array_record_copy_read_without_tensorflow(monkeypatch, tmp_path):
  """A real prepared copy (array_record files + PNG records), no mock data source.

  Preparing it through tfds needs TensorFlow for one step only, encoding the numpy
  images to PNG; the test swaps in a PIL encoder for that step and a tiny generator for
  the download, then reads the copy through hw.data like any prepared copy.
  """
  import PIL.Image
  import tensorflow_datasets as tfds
  from tensorflow_datasets.core.features import image_feature
  from tensorflow_datasets.image_classification import mnist as mnist_lib

  def encode_png_with_pil(self, image):
    buffer = io.BytesIO()
    PIL.Image.fromarray(image[..., 0]).save(buffer, format="PNG")
    return buffer.getvalue()

  written = {split: write_mnist(tmp_path / "unused", seed=5)[split] for split in
             ("train", "test")}

  def examples(pixels, labels):
    for i, (image, label) in enumerate(zip(pixels, labels)):
      yield i, {"image": image[..., None], "label": int(label)}

  def tiny_split_generators(self, dl_manager):
    return {split: examples(*arrays) for split, arrays in written.items()}

  monkeypatch.setattr(image_feature._ImageEncoder, "_encode_image", encode_png_with_pil)
  monkeypatch.setattr(mnist_lib.MNIST, "_split_generators", tiny_split_generators)
  mnist_lib.MNIST.url_infos = None  # Its class property needs a package this venv lacks.
  try:
    tfds.builder("mnist", data_dir=str(tmp_path / "tfds")).download_and_prepare(
        file_format="array_record")
  finally:
    del mnist_lib.MNIST.url_infos
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
  _forbid_download(monkeypatch)
  dataset = data.load_dataset("mnist")
  assert dataset.source.startswith("tensorflow-datasets (prepared array_record copy")
  # tfds stores the examples shuffled (by key hash): compare as multisets.
  for split, (pixels, labels) in written.items():
    got = getattr(dataset, split)
    as_bytes = np.round(got.images[..., 0] * 255).astype(np.uint8)
    assert sorted(zip(got.labels.tolist(), (x.tobytes() for x in as_bytes))) == sorted(
        zip(labels.tolist(), (x.tobytes() for x in pixels)))
  assert "tensorflow" not in sys.modules


@pytest.fixture
def file_server(tmp_path):
  """A local HTTP server for the files in ``tmp_path / "served"``; yields (folder, url)."""
  folder = tmp_path / "served"
  folder.mkdir()
  handler = functools.partial(_QuietHandler, directory=str(folder))
  server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  yield folder, f"http://127.0.0.1:{server.server_port}"
  server.shutdown()
  server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
  def log_message(self, *args):
    pass


def _serve(monkeypatch, folder, base_url, file_names, *, corrupt_checksum=False):
  from tensorflow_datasets.core.download import checksums
  infos = {}
  for file_name in file_names:
    content = (folder / file_name).read_bytes()
    digest = "0" * 64 if corrupt_checksum else hashlib.sha256(content).hexdigest()
    infos[f"{base_url}/{file_name}"] = checksums.UrlInfo(
        size=len(content), checksum=digest, filename=file_name)
  monkeypatch.setattr(tfds_source, "registered_url_infos", lambda name: infos)


def test_tfds_download_route_verifies_caches_and_decodes(monkeypatch, file_server):
  folder, base_url = file_server
  written = write_mnist(folder)
  _serve(monkeypatch, folder, base_url, [f"{name}.gz" for name in IDX_NAMES.values()])
  dataset = data.load_dataset("mnist")
  assert dataset.source.startswith("tensorflow-datasets download from 127.0.0.1")
  np.testing.assert_array_equal(dataset.test.labels, written["test"][1])
  np.testing.assert_array_equal(dataset.train.images[..., 0],
                                written["train"][0].astype(np.float32) / 255)
  # Second time, offline: the checksum-named cached files are used without the probe.
  data.clear_cache()
  monkeypatch.setattr(tfds_source, "unreachable_hosts", lambda *args, **kwargs: ["offline"])
  np.testing.assert_array_equal(data.load_dataset("mnist").test.labels, written["test"][1])


def test_tfds_download_route_reads_cifar_archive(monkeypatch, file_server):
  folder, base_url = file_server
  batches = cifar_batches(records_per_batch=2)
  with tarfile.open(folder / "cifar-10-binary.tar.gz", "w:gz") as tar:
    for name, (pixels, labels) in batches.items():
      data.write_cifar_batch(folder / name, pixels, labels)
      tar.add(folder / name, arcname=f"cifar-10-batches-bin/{name}")
  _serve(monkeypatch, folder, base_url, ["cifar-10-binary.tar.gz"])
  dataset = data.load_dataset("cifar10")
  np.testing.assert_array_equal(dataset.test.images,
                                batches["test_batch.bin"][0].astype(np.float32) / 255)
  assert dataset.train.labels.shape == (10,)


def test_tfds_download_with_wrong_checksum_is_a_data_error(monkeypatch, file_server):
  folder, base_url = file_server
  write_mnist(folder)
  _serve(monkeypatch, folder, base_url, [f"{name}.gz" for name in IDX_NAMES.values()],
         corrupt_checksum=True)
  with pytest.raises(data.DataError, match="could not download mnist"):
    data.load_dataset("mnist")


# --- validation split ---------------------------------------------------------------------


def _toy_split(count=20):
  return data.ArraySplit(images=np.arange(count * 2, dtype=np.float32).reshape(count, 2),
                         labels=np.arange(count, dtype=np.int32))


def test_split_validation_is_a_deterministic_partition():
  split = _toy_split()
  train, validation = data.split_validation(split, fraction=0.25, seed=3)
  assert len(train) == 15 and len(validation) == 5
  assert sorted(train.labels.tolist() + validation.labels.tolist()) == list(range(20))
  np.testing.assert_array_equal(train.images[:, 0], 2 * train.labels)  # rows stay paired
  again_train, again_validation = data.split_validation(split, fraction=0.25, seed=3)
  np.testing.assert_array_equal(again_validation.labels, validation.labels)
  _, other = data.split_validation(split, fraction=0.25, seed=4)
  assert other.labels.tolist() != validation.labels.tolist()


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5, True, "0.1", 0.01])
def test_split_validation_rejects_bad_fraction(fraction):
  with pytest.raises(ValueError, match="fraction"):
    data.split_validation(_toy_split(), fraction=fraction)


def test_split_validation_rejects_bad_split_and_seed():
  with pytest.raises(ValueError, match="`split`"):
    data.split_validation((np.zeros(3), np.zeros(3)))
  with pytest.raises(ValueError, match="`seed`"):
    data.split_validation(_toy_split(), seed=0.5)


# --- binary task --------------------------------------------------------------------------


def test_binary_standin_shapes_and_determinism():
  train, validation, test = data.binary_task()
  assert [len(part) for part in (train, validation, test)] == [500, 250, 250]
  for part in (train, validation, test):
    assert part.images.shape[1:] == (20,) and part.images.dtype == np.float32
    assert part.labels.dtype == np.int32 and set(part.labels.tolist()) <= {0, 1}
  labels = np.concatenate([train.labels, validation.labels, test.labels])
  assert 480 <= labels.sum() <= 520  # 500 per class before the 1 % label flips.
  features, again_labels = data.make_binary_standin(0)
  np.testing.assert_array_equal(features[:500], train.images)
  np.testing.assert_array_equal(again_labels, labels)
  other_train, _, _ = data.binary_task(seed=1)
  assert not np.array_equal(other_train.images, train.images)


def test_binary_standin_follows_its_documented_recipe():
  features, labels = data.make_binary_standin(0)
  informative, redundant = features[:, :5], features[:, 5:10]
  # Class means sit on two hypercube vertices {-1, +1}^5 (1 % of labels flipped).
  mean_gap = informative[labels == 1].mean(0) - informative[labels == 0].mean(0)
  assert np.all((np.abs(mean_gap) < 0.25) | (np.abs(np.abs(mean_gap) - 2) < 0.25))
  # Redundant features are exact linear combinations of the informative ones.
  mixing, *_ = np.linalg.lstsq(informative, redundant, rcond=None)
  np.testing.assert_allclose(informative @ mixing, redundant, atol=1e-4)
  assert np.linalg.matrix_rank(features.astype(np.float64), tol=1e-3) == 15


def _pickle(path, content):
  path.write_bytes(pickle.dumps(content))
  return path


def test_user_pickle_is_split_in_order(tmp_path):
  features = np.arange(24, dtype=np.float64).reshape(8, 3)
  targets = np.array([1, -1, -1, 1, 1, -1, 1, -1])
  train, validation, test = data.binary_task(_pickle(tmp_path / "d.pkl", (features, targets)))
  assert [len(part) for part in (train, validation, test)] == [4, 2, 2]
  np.testing.assert_array_equal(test.images, features[6:].astype(np.float32))
  assert train.labels.tolist() == [1, 0, 0, 1] and train.labels.dtype == np.int32
  column_targets = (targets[:, None] > 0).astype(int)
  _, validation, _ = data.binary_task(_pickle(tmp_path / "c.pkl", [features, column_targets]))
  assert validation.labels.tolist() == [1, 0]


BAD_PICKLES = {
    "not a pickle": (b"definitely not a pickle", "not a readable pickle"),
    "dict": ({"features": 1}, "expected a pickled pair"),
    "triple": ((np.zeros((8, 2)), np.zeros(8), 1), "tuple of length 3"),
    "length mismatch": ((np.zeros((8, 2)), np.zeros(7)), r"shapes \(8, 2\) and \(7,\)"),
    "1-D features": ((np.zeros(8), np.zeros(8)), "expected features"),
    "too few": ((np.zeros((3, 2)), np.zeros(3)), "N >= 4"),
    "bad targets": ((np.zeros((8, 2)), np.arange(8) % 3), "targets must all be in"),
    "NaN": ((np.full((8, 2), np.nan), np.zeros(8)), "NaN"),
    "strings": ((np.array([["a"] * 2] * 8), np.zeros(8)), "numeric"),
}


@pytest.mark.parametrize("case", sorted(BAD_PICKLES))
def test_bad_user_pickles_raise_data_error(tmp_path, case):
  content, message = BAD_PICKLES[case]
  path = tmp_path / "bad.pkl"
  if isinstance(content, bytes):
    path.write_bytes(content)
  else:
    _pickle(path, content)
  with pytest.raises(data.DataError, match=message) as error:
    data.binary_task(path)
  assert str(path) in str(error.value)


# --- real data (HW_DATA_DIR) --------------------------------------------------------------


def _require(name, root):
  if local.find_dataset_folder(name, root) is None:
    pytest.skip(f"real data: HW_DATA_DIR={root} holds no {name} files")


@pytest.mark.real_data
def test_real_mnist(hw_data_dir):
  _require("mnist", hw_data_dir)
  dataset = data.load_dataset("mnist", data_dir=hw_data_dir)
  assert dataset.train.images.shape == (60000, 28, 28, 1)
  assert dataset.test.images.shape == (10000, 28, 28, 1)
  assert np.bincount(dataset.test.labels).tolist() == [
      980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
  assert np.bincount(dataset.train.labels).tolist() == [
      5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
  assert dataset.train.images.min() == 0.0 and dataset.train.images.max() == 1.0


@pytest.mark.real_data
def test_real_cifar10(hw_data_dir):
  _require("cifar10", hw_data_dir)
  dataset = data.load_dataset("cifar10", data_dir=hw_data_dir)
  assert dataset.train.images.shape == (50000, 32, 32, 3)
  assert dataset.test.images.shape == (10000, 32, 32, 3)
  assert np.bincount(dataset.train.labels).tolist() == [5000] * 10
  assert np.bincount(dataset.test.labels).tolist() == [1000] * 10
  # Train image 0 starts with red 59, 43, 50 in the original; a JPEG copy only comes close.
  red = dataset.train.images[0, 0, :3, 0] * 255
  assert np.all(np.abs(red - [59, 43, 50]) <= 16)
