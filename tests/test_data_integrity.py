"""Integrity checks of hw.data beyond the file formats: CIFAR-10 record counts, labels out
of range, a tfds copy that needs TensorFlow, and the data sets' content identity."""
from __future__ import annotations

import json
import re
import shutil
import sys
import tarfile

import numpy as np
import pytest

import hw.data as data
from hw.data import cifar, local, tfds_source

STANDARD_BATCH_BYTES = 10_000 * 3073


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path_factory, monkeypatch):
  """No HW_DATA_DIR, an empty tfds data dir, a fresh cache."""
  monkeypatch.delenv("HW_DATA_DIR", raising=False)
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path_factory.mktemp("tfds")))
  data.clear_cache()
  yield
  data.clear_cache()


def write_cifar(folder, records=3, *, counts=None, seed=0):
  """Six batch files of ``records`` records (``counts`` overrides per file)."""
  rng = np.random.default_rng(seed)
  folder.mkdir(parents=True, exist_ok=True)
  for name in local.CIFAR_FILES:
    count = (counts or {}).get(name, records)
    data.write_cifar_batch(folder / name,
                           rng.integers(0, 256, (count, 32, 32, 3), dtype=np.uint8),
                           rng.integers(0, 10, count).astype(np.uint8))


def write_mnist(folder, *, compressed=True, seed=0, num_train=6, num_test=4):
  rng = np.random.default_rng(seed)
  folder.mkdir(parents=True, exist_ok=True)
  suffix = ".gz" if compressed else ""
  for split, count in (("train", num_train), ("test", num_test)):
    data.write_idx(folder / (local.IDX_FILES[f"{split}_images"] + suffix),
                   rng.integers(0, 256, (count, 28, 28), dtype=np.uint8))
    data.write_idx(folder / (local.IDX_FILES[f"{split}_labels"] + suffix),
                   rng.integers(0, 10, count).astype(np.uint8))


# --- CIFAR-10 record counts ---------------------------------------------------------------


def test_standard_batch_one_record_short_is_refused_with_sizes():
  counts = {f"/d/{name}": 10_000 for name in local.CIFAR_FILES}
  counts["/d/data_batch_3.bin"] = 9_999
  with pytest.raises(data.DataError) as error:
    cifar.check_batch_counts(counts)
  message = str(error.value)
  assert message.startswith("/d/data_batch_3.bin: 9,999 records (30,726,927 bytes)")
  assert "10,000 records (30,730,000 bytes)" in message and "other 5 file(s)" in message
  assert cifar.check_batch_counts({name: 10_000 for name in counts}) == ""


@pytest.mark.parametrize("count", [10_001, 20_000])
def test_batch_with_more_than_10000_records_is_refused(count):
  counts = {name: 10_000 for name in local.CIFAR_FILES}
  counts["test_batch.bin"] = count
  with pytest.raises(data.DataError, match=f"test_batch.bin: {count:,} records"):
    cifar.check_batch_counts(counts)
  with pytest.raises(data.DataError, match=f"test_batch.bin: {count:,} records"):
    cifar.check_batch_counts({name: count for name in counts})


def test_read_cifar_batch_with_9999_records_refused_as_a_standard_batch(tmp_path):
  path = tmp_path / "data_batch_1.bin"
  path.write_bytes(bytes(STANDARD_BATCH_BYTES - 3073))
  pixels, _ = data.read_cifar_batch(path)  # Any whole number of records, when not told.
  assert len(pixels) == 9_999
  with pytest.raises(data.DataError) as error:
    data.read_cifar_batch(path, expected_records=cifar.RECORDS_PER_BATCH)
  assert str(error.value) == (
      f"{path}: 9,999 records (30,726,927 bytes), expected 10,000 records (30,730,000 bytes) "
      f"(truncated or not a standard CIFAR-10 batch)")


def test_folder_with_one_batch_a_record_short_is_refused(tmp_path, monkeypatch):
  monkeypatch.setattr(cifar, "RECORDS_PER_BATCH", 4)  # "standard" = 4 records, for speed
  write_cifar(tmp_path, records=4, counts={"data_batch_3.bin": 3})
  with pytest.raises(data.DataError) as error:
    data.load_dataset("cifar10", data_dir=tmp_path)
  message = str(error.value)
  assert f"{tmp_path / 'data_batch_3.bin'}: 3 records (9,219 bytes)" in message
  assert "holds 4 records (12,292 bytes)" in message


def test_folder_with_batches_of_different_sizes_is_refused(tmp_path):
  write_cifar(tmp_path, records=3, counts={"test_batch.bin": 2})
  with pytest.raises(data.DataError, match=re.escape(
      f"{tmp_path / 'test_batch.bin'}: 2 records (6,146 bytes)")):
    data.load_dataset("cifar10", data_dir=tmp_path)


def test_uniformly_reduced_copy_is_accepted_and_says_so(tmp_path):
  write_cifar(tmp_path, records=3)
  dataset = data.load_dataset("cifar10", data_dir=tmp_path)
  assert dataset.source == (f"local CIFAR-10 binary batches in {tmp_path} (reduced copy: 3 "
                            f"records per file instead of 10,000)")


def test_size_not_a_multiple_of_the_record_names_file_and_sizes(tmp_path):
  write_cifar(tmp_path)
  path = tmp_path / "data_batch_5.bin"
  path.write_bytes(path.read_bytes()[:-1])
  with pytest.raises(data.DataError) as error:
    data.load_dataset("cifar10", data_dir=tmp_path)
  assert str(error.value).startswith(
      f"{path}: 9,218 bytes, not a positive multiple of the 3073-byte CIFAR-10 record "
      f"(2 whole records and 3,072 bytes more")


def test_tfds_archive_with_a_short_batch_is_refused(tmp_path):
  folder = tmp_path / "cifar-10-batches-bin"
  write_cifar(folder, records=3, counts={"data_batch_2.bin": 2})
  archive = tmp_path / "cifar-10-binary.tar.gz"
  with tarfile.open(archive, "w:gz") as tar:
    tar.add(folder, arcname="cifar-10-batches-bin")
  with pytest.raises(data.DataError, match=re.escape(
      f"{archive}:cifar-10-batches-bin/data_batch_2.bin: 2 records")):
    tfds_source._decode_downloads("cifar10", {"cifar-10-binary.tar.gz": archive}, "test")


# --- labels out of range ------------------------------------------------------------------


@pytest.mark.parametrize("file_name", ["data_batch_1.bin", "test_batch.bin"])
def test_cifar_label_out_of_range(tmp_path, file_name):
  write_cifar(tmp_path)
  path = tmp_path / file_name
  content = bytearray(path.read_bytes())
  content[3073] = 10  # label of record 1
  path.write_bytes(bytes(content))
  with pytest.raises(data.DataError, match=re.escape(
      f"{path}: record 1: label 10 outside 0..9")):
    data.load_dataset("cifar10", data_dir=tmp_path)


@pytest.mark.parametrize("file_name", ["train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte"])
def test_idx_label_out_of_range(tmp_path, file_name):
  write_mnist(tmp_path, compressed=False)
  path = tmp_path / file_name
  content = bytearray(path.read_bytes())
  content[8 + 2] = 255
  path.write_bytes(bytes(content))
  with pytest.raises(data.DataError, match=re.escape(f"{path}: label 255 outside 0..9")):
    data.load_dataset("mnist", data_dir=tmp_path)


# --- content identity ---------------------------------------------------------------------


def test_identity_depends_on_content_not_on_location_or_compression(tmp_path):
  write_mnist(tmp_path / "a", compressed=True)
  write_mnist(tmp_path / "b", compressed=False)
  first = data.load_dataset("mnist", data_dir=tmp_path / "a")
  assert re.fullmatch(r"mnist:sha256:[0-9a-f]{16}", first.identity)
  assert data.load_dataset("mnist", data_dir=tmp_path / "b").identity == first.identity
  assert "identity" in first.__dict__  # cached with the (cached) Dataset
  assert data.load_dataset("mnist", data_dir=tmp_path / "a") is first
  # Same files read as Fashion-MNIST: another data set, another identity.
  shutil.copytree(tmp_path / "a", tmp_path / "fashion_mnist")
  fashion = data.load_dataset("fashion_mnist", data_dir=tmp_path / "fashion_mnist")
  assert fashion.identity.startswith("fashion_mnist:sha256:")
  assert fashion.identity[-16:] != first.identity[-16:]


@pytest.mark.parametrize("change", ["one pixel", "one label", "other order", "more data"])
def test_identity_changes_with_any_change_of_content(tmp_path, change):
  write_mnist(tmp_path / "a", compressed=False)
  shutil.copytree(tmp_path / "a", tmp_path / "b")
  images = tmp_path / "b" / local.IDX_FILES["test_images"]
  labels = tmp_path / "b" / local.IDX_FILES["test_labels"]
  if change == "one pixel":
    content = bytearray(images.read_bytes())
    content[-1] ^= 1
    images.write_bytes(bytes(content))
  elif change == "one label":
    content = bytearray(labels.read_bytes())
    content[-1] = (content[-1] + 1) % 10
    labels.write_bytes(bytes(content))
  elif change == "other order":
    pixels = data.read_idx(images, magic=2051)
    data.write_idx(images, pixels[::-1].copy())
    data.write_idx(labels, data.read_idx(labels, magic=2049)[::-1].copy())
  else:
    write_mnist(tmp_path / "b", compressed=False, num_test=5)
  original = data.load_dataset("mnist", data_dir=tmp_path / "a").identity
  assert data.load_dataset("mnist", data_dir=tmp_path / "b").identity != original


def test_cifar_identity_and_split_hash(tmp_path):
  write_cifar(tmp_path / "one")
  write_cifar(tmp_path / "two")
  one = data.load_dataset("cifar10", data_dir=tmp_path / "one")
  assert one.identity == data.load_dataset("cifar10", data_dir=tmp_path / "two").identity
  assert one.identity.startswith("cifar10:sha256:")
  assert one.train.content_sha256 == data.content_sha256(one.train.images, one.train.labels)
  assert len(one.train.content_sha256) == 64
  write_cifar(tmp_path / "three", seed=1)
  assert data.load_dataset("cifar10", data_dir=tmp_path / "three").identity != one.identity


def test_content_sha256_covers_dtype_and_shape():
  values = np.arange(6, dtype=np.int32)
  assert data.content_sha256(values) == data.content_sha256(values.copy())
  assert data.content_sha256(values) != data.content_sha256(values.reshape(2, 3))
  assert data.content_sha256(values) != data.content_sha256(values.astype(np.uint32))
  assert data.content_sha256(values[::2]) == data.content_sha256(values[::2].copy())
  assert data.content_sha256(values[:0]) != data.content_sha256(values[:0].reshape(0, 1))


# --- a tfds copy that needs TensorFlow ----------------------------------------------------


def _fake_prepared_copy(root, name="mnist", version="3.0.1", file_format="tfrecord"):
  folder = root / name / version
  folder.mkdir(parents=True)
  info = {"name": name, "version": version}
  if file_format is not None:
    info["fileFormat"] = file_format
  (folder / "dataset_info.json").write_text(json.dumps(info))
  suffix = file_format or "tfrecord"
  for split in ("train", "test"):
    (folder / f"{name}-{split}.{suffix}-00000-of-00001").write_bytes(b"not read")
  return folder


def _no_network(monkeypatch):
  def fail(*args, **kwargs):
    raise AssertionError("no download or probe may be attempted")
  monkeypatch.setattr(tfds_source, "_download", fail)
  monkeypatch.setattr(tfds_source, "unreachable_hosts", fail)


@pytest.mark.parametrize("name, version, file_format", [
    ("mnist", "3.0.1", "tfrecord"),
    ("mnist", "3.0.1", None),           # written before tfds recorded the format
    ("cifar10", "3.0.2", "tfrecord"),
    ("fashion_mnist", "1.0.0", "array_record"),  # another version than tfds reads
])
def test_tfds_copy_unreadable_without_tensorflow_is_reported_not_downloaded_again(
    tmp_path, monkeypatch, name, version, file_format):
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
  folder = _fake_prepared_copy(tmp_path, name, version, file_format)
  _no_network(monkeypatch)
  with pytest.raises(data.DataError) as error:
    data.load_dataset(name)
  message = str(error.value)
  for expected in (f"{folder} (version {version}, {file_format or 'tfrecord'} format)",
                   "TensorFlow", f"Not downloading {name} again", "HW_DATA_DIR",
                   "--data-dir", "convert_format", str(tmp_path / "downloads")):
    assert expected in message, expected
  assert "tensorflow" not in sys.modules


def test_interrupted_tfds_preparation_is_ignored(tmp_path, monkeypatch):
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
  _fake_prepared_copy(tmp_path, version="incomplete.ABC_3.0.1")
  monkeypatch.setattr(tfds_source, "unreachable_hosts", lambda *args, **kwargs: ["offline"])
  with pytest.raises(data.DataError, match="cannot download it"):
    data.load_dataset("mnist")


def test_cached_original_files_are_used_despite_an_unreadable_copy(tmp_path, monkeypatch):
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
  _fake_prepared_copy(tmp_path)
  write_mnist(tmp_path / "originals")
  monkeypatch.setattr(tfds_source, "_all_downloads_cached", lambda *args: True)
  monkeypatch.setattr(tfds_source, "_download", lambda name, infos, directory: {
      f"{base}.gz": tmp_path / "originals" / f"{base}.gz"
      for base in local.IDX_FILES.values()})
  monkeypatch.setattr(tfds_source, "unreachable_hosts", lambda *args, **kwargs: ["offline"])
  dataset = data.load_dataset("mnist")
  assert dataset.train.images.shape == (6, 28, 28, 1)
