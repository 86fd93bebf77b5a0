"""Getting MNIST, Fashion-MNIST and CIFAR-10 through tensorflow-datasets without TensorFlow.

TensorFlow is not a dependency of ``hw``, and ``tfds.load`` / ``tfds.data_source(...,
download=True)`` need it to *prepare* these data sets (their image feature encodes the
decoded numpy images to PNG with ``tf.image.encode_png``). Two TF-free routes remain:

1. A copy already prepared in the ``array_record`` file format in the tfds data dir
   (``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``) is read with ``tfds.data_source``
   (records decoded with PIL).
2. Otherwise tfds's ``DownloadManager`` fetches the original files from the URLs that
   tfds registers for the data set, verifies their size and SHA-256 against tfds's own
   checksum list, and caches them in ``<tfds data dir>/downloads``; the files are then
   decoded by :mod:`hw.data.idx` / :mod:`hw.data.cifar`, exactly like a local copy.

Without network tfds retries for minutes, so route 2 first checks, within
``PROBE_TIMEOUT_S`` seconds per host, that the download servers answer (TLS handshake
or HTTP HEAD), and fails with a :class:`DataError` when they do not.

A prepared copy that cannot be read without TensorFlow (the ``tfrecord`` format that
``tfds.load`` writes by default, or another version than the installed tfds reads) is
not silently replaced by a second download: unless the original files are already in
tfds's download cache, :func:`load_with_tfds` raises a DataError that names the copy,
its format and the ways forward.
"""
from __future__ import annotations

import json
import os
import socket
import ssl
import tarfile
import threading
import urllib.parse
from pathlib import Path

import numpy as np

from hw.data import cifar, local
from hw.data.containers import Dataset, make_split
from hw.data.errors import DataError, DataUnavailable

PROBE_TIMEOUT_S = 3.0
_IMAGE_SHAPES = {"mnist": (28, 28, 1), "fashion_mnist": (28, 28, 1), "cifar10": (32, 32, 3)}


def tfds_data_dir() -> Path:
  """``$TFDS_DATA_DIR``, else tfds's default (``~/tensorflow_datasets``)."""
  from tensorflow_datasets.core import constants  # pylint: disable=import-outside-toplevel
  return Path(os.environ.get("TFDS_DATA_DIR") or constants.DATA_DIR).expanduser()


def registered_url_infos(name: str) -> dict:
  """{url: tfds UrlInfo(size, sha256 checksum, filename)} that tfds registers for ``name``."""
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
  from tensorflow_datasets.core.download import checksums  # pylint: disable=import-outside-toplevel
  return checksums.load_url_infos(Path(tfds.__file__).parent / "url_checksums" / f"{name}.txt")


def _talks(url: str, timeout: float) -> bool:
  """Whether the server of ``url`` answers within ``timeout`` seconds.

  A bare TCP connect is not enough: intercepting proxies accept connections to any
  address. So an https server must complete a verified TLS handshake and an http
  server must answer a HEAD request. Runs in a daemon thread, so that a slow DNS lookup
  (which ignores socket timeouts) cannot hold the caller longer than ``timeout`` either.
  """
  host, port = _address(url)
  answered = []

  def attempt():
    try:
      with socket.create_connection((host, port), timeout=timeout) as sock:
        if urllib.parse.urlsplit(url).scheme == "https":
          with ssl.create_default_context().wrap_socket(sock, server_hostname=host):
            pass
        else:
          sock.sendall(f"HEAD / HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
          if not sock.recv(16):
            return
      answered.append(True)
    except (OSError, ValueError):
      pass

  thread = threading.Thread(target=attempt, daemon=True)
  thread.start()
  thread.join(timeout)
  return bool(answered)


def unreachable_hosts(urls, *, timeout: float | None = None) -> list[str]:
  """The "host:port" of the URLs whose servers do not answer within the timeout.

  Args:
    urls: download URLs; one probe per distinct scheme, host and port.
    timeout: seconds per probe; default ``PROBE_TIMEOUT_S``.
  """
  timeout = PROBE_TIMEOUT_S if timeout is None else timeout
  first_url_per_server = {}
  for url in urls:
    parts = urllib.parse.urlsplit(url)
    first_url_per_server.setdefault((parts.scheme, *_address(url)), url)
  return [f"{host}:{port}" for (_, host, port), url in sorted(first_url_per_server.items())
          if not _talks(url, timeout)]


def _address(url: str) -> tuple[str, int]:
  parts = urllib.parse.urlsplit(url)
  return parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)


def _has_prepared_array_record(name: str, data_dir: Path) -> bool:
  if not (data_dir / name).is_dir():
    return False  # Nothing prepared; also spares tfds's warnings about the missing folder.
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
  try:
    builder = tfds.builder(name, data_dir=os.fspath(data_dir))
    if not builder.is_prepared():
      return False
    formats = [builder.info.file_format, *builder.info.alternative_file_formats]
  except Exception:  # pylint: disable=broad-except  # e.g. a corrupt dataset_info.json
    return False  # Described by _unreadable_prepared_copies.
  return tfds.core.FileFormat.ARRAY_RECORD in formats


def _unreadable_prepared_copies(name: str, data_dir: Path) -> list[tuple[Path, str]]:
  """The prepared copies of ``name`` under ``data_dir``: (folder, "<folder> (version V,
  F format)").

  Called when none is readable here, so each one listed needs TensorFlow or another
  tfds version. A version folder counts when it holds a ``dataset_info.json``
  (``<data_dir>/<name>/<version>/``, or ``<name>/<config>/<version>/``).
  """
  copies = []
  for info in sorted([*(data_dir / name).glob("*/dataset_info.json"),
                      *(data_dir / name).glob("*/*/dataset_info.json")]):
    if any(part.startswith("incomplete.") for part in info.relative_to(data_dir).parts):
      continue  # An interrupted preparation, which tfds itself ignores.
    try:
      content = json.loads(info.read_text())
      # tfds versions before file_format existed wrote tfrecord without saying so.
      file_format = content.get("fileFormat") or "tfrecord"
      version = content.get("version", info.parent.name)
      copies.append((info.parent, f"{info.parent} (version {version}, {file_format} format)"))
    except (OSError, ValueError, AttributeError) as error:
      copies.append((info.parent, f"{info.parent} (unreadable dataset_info.json: {error})"))
  return copies


def _unreadable_copy_error(name: str, data_dir: Path, copies: list[tuple[Path, str]],
                          searched: str) -> DataError:
  try:
    import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
    wanted = f"version {tfds.builder_cls(name).VERSION}"
  except Exception:  # pylint: disable=broad-except
    wanted = "the version the installed tensorflow-datasets reads"
  names = ", ".join(f"{base}[.gz]" if name != "cifar10" else base
                    for base in local.expected_file_names(name))
  return DataError(
      f"cannot load {local.DISPLAY_NAMES[name]}: no local copy{searched}; tensorflow-datasets "
      f"holds a prepared copy in {'; '.join(text for _, text in copies)}, but hw reads "
      f"only array_record copies of {wanted} (tfds can read tfrecord copies only with "
      f"TensorFlow, which hw does not use), and the original "
      f"files are not in tfds's download cache {data_dir / 'downloads'}. Not downloading "
      f"{name} again. Either pass --data-dir (data_dir=...) or set HW_DATA_DIR to a folder "
      f"with the standard files ({names}); or convert the copy where TensorFlow is installed "
      f"(tfds convert_format --dataset_version_dir={copies[-1][0]} "
      f"--out_file_format=array_record); or move it out of {data_dir / name} to let "
      f"tensorflow-datasets download the original files.")


def _read_prepared(name: str, data_dir: Path) -> Dataset:
  """Read a prepared array_record copy with ``tfds.data_source`` (no TensorFlow)."""
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
  sources = tfds.data_source(name, split=["train", "test"], data_dir=os.fspath(data_dir),
                             download=False)
  splits = {}
  for split, source in zip(("train", "test"), sources):
    examples = [source[i] for i in range(len(source))]
    pixels = np.stack([np.asarray(example["image"], dtype=np.uint8) for example in examples])
    labels = np.asarray([example["label"] for example in examples])
    if pixels.shape[1:] != _IMAGE_SHAPES[name] or labels.min() < 0 or labels.max() >= 10:
      raise DataError(
          f"tensorflow-datasets {name} {split} in {data_dir}: images {pixels.shape[1:]} "
          f"(expected {_IMAGE_SHAPES[name]}), labels in [{labels.min()}, {labels.max()}]")
    splits[split] = make_split(pixels, labels)
  return Dataset(name=name, train=splits["train"], test=splits["test"], num_classes=10,
                 source=f"tensorflow-datasets (prepared array_record copy in {data_dir})")


def _all_downloads_cached(name: str, url_infos: dict, download_dir: Path) -> bool:
  """Whether tfds already holds every file, checksum-named, so no network is needed."""
  from tensorflow_datasets.core.download import resource  # pylint: disable=import-outside-toplevel
  try:
    return all(
        resource.is_locally_cached(
            download_dir / name / resource.get_dl_fname(url, info.checksum))
        for url, info in url_infos.items())
  except Exception:  # pylint: disable=broad-except
    return False  # tfds internals changed: fall back to probing and downloading.


def _download(name: str, url_infos: dict, download_dir: Path) -> dict[str, Path]:
  """{registered file name: downloaded path}, checksums verified by tfds."""
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
  manager = tfds.download.DownloadManager(
      download_dir=os.fspath(download_dir), dataset_name=name, url_infos=url_infos,
      force_checksums_validation=True)
  try:
    paths = manager.download({url: url for url in url_infos})
  except Exception as error:  # pylint: disable=broad-except
    raise DataError(f"tensorflow-datasets could not download {name}: {error}") from error
  return {url_infos[url].filename: Path(os.fspath(path)) for url, path in paths.items()}


def _decode_downloads(name: str, files: dict[str, Path], source: str) -> Dataset:
  if name == "cifar10":
    (archive,) = files.values()
    batches, locations = {}, {}
    try:
      with tarfile.open(archive, "r:*") as tar:
        for member in tar.getmembers():
          file_name = Path(member.name).name
          if member.isfile() and file_name in local.CIFAR_FILES:
            locations[file_name] = f"{archive}:{member.name}"
            batches[file_name] = cifar.parse_cifar_batch(
                tar.extractfile(member).read(), name=locations[file_name])
    except (tarfile.TarError, OSError, EOFError) as error:
      raise DataError(f"{archive}: not a readable tar archive: {error}") from error
    missing = [file for file in local.CIFAR_FILES if file not in batches]
    if missing:
      raise DataError(f"{archive}: missing {', '.join(missing)}")
    splits, reduced = local.cifar10_from_batches(batches, locations=locations)
    return Dataset(name=name, train=splits["train"], test=splits["test"], num_classes=10,
                   source=source + reduced)
  by_base_name = {file_name.removesuffix(".gz"): path for file_name, path in files.items()}
  try:
    paths = {key: by_base_name[base] for key, base in local.IDX_FILES.items()}
  except KeyError as error:
    raise DataError(f"tensorflow-datasets download of {name} lacks {error}") from error
  return local.load_idx_files(name, paths, source=source)


def load_with_tfds(name: str, *, searched: str = "") -> Dataset:
  """Load ``name`` through tensorflow-datasets (see the module docstring).

  Args:
    name: "mnist", "fashion_mnist" or "cifar10".
    searched: what was searched before, for the error message (e.g. HW_DATA_DIR).

  Raises:
    DataError: offline without a cached copy (within about ``PROBE_TIMEOUT_S`` seconds
      per download host), a prepared copy that needs TensorFlow (and no cached original
      files), or a failed or corrupt download.
  """
  data_dir = tfds_data_dir()
  if _has_prepared_array_record(name, data_dir):
    return _read_prepared(name, data_dir)
  url_infos = registered_url_infos(name)
  download_dir = data_dir / "downloads"
  if not _all_downloads_cached(name, url_infos, download_dir):
    copies = _unreadable_prepared_copies(name, data_dir)
    if copies:
      raise _unreadable_copy_error(name, data_dir, copies, searched)
    unreachable = unreachable_hosts(url_infos)
    if unreachable:
      names = ", ".join(f"{base}[.gz]" if name != "cifar10" else base
                        for base in local.expected_file_names(name))
      subfolders = " or ".join(f"{sub}/" for sub in local.SUBFOLDERS[name])
      raise DataUnavailable(
          f"cannot load {local.DISPLAY_NAMES[name]}: no local copy{searched}, and "
          f"tensorflow-datasets cannot download it ({', '.join(unreachable)} unreachable). "
          f"Pass --data-dir (data_dir=...) or set HW_DATA_DIR to a folder with the standard "
          f"files ({names}) or to its parent with a {subfolders} subfolder, or connect to "
          f"the internet so tensorflow-datasets can download them into {download_dir}.")
  files = _download(name, url_infos, download_dir)
  hosts = ", ".join(sorted({urllib.parse.urlsplit(url).netloc for url in url_infos}))
  return _decode_downloads(
      name, files,
      source=f"tensorflow-datasets download from {hosts} (checksums verified; cached in "
             f"{download_dir / name})")
