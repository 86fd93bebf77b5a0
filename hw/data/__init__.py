"""Data for the experiments: MNIST, Fashion-MNIST, CIFAR-10 and the binary task.

Images come as float32 NHWC in [0, 1], labels as int32. See :func:`load_dataset` for
where the files are looked for, :func:`find_binary_data` and :func:`binary_task` for the
binary task. ``Dataset.identity`` and ``BinaryTask.identity`` name the data's content
(``"<name>:sha256:<16 hex>"``) for fingerprints.
"""
from hw.data.binary import (BinaryTask, binary_task, find_binary_data, load_binary_file,
                            load_binary_pickle, make_binary_standin)
from hw.data.cifar import read_cifar_batch, write_cifar_batch
from hw.data.containers import ArraySplit, Dataset, content_sha256
from hw.data.errors import DataError, DataUnavailable
from hw.data.idx import read_idx, write_idx
from hw.data.loading import DATASET_NAMES, cifar_lossy_note, clear_cache, load_dataset
from hw.data.splits import split_validation

__all__ = [
    "ArraySplit", "BinaryTask", "DATASET_NAMES", "DataError", "DataUnavailable", "Dataset",
    "binary_task",
    "cifar_lossy_note", "clear_cache", "content_sha256", "find_binary_data",
    "load_binary_file", "load_binary_pickle", "load_dataset", "make_binary_standin",
    "read_cifar_batch", "read_idx", "split_validation", "write_cifar_batch", "write_idx",
]
