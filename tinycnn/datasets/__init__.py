"""MedMNIST datasets: the registry, loading and downloading, and preprocessing.

See :mod:`tinycnn.datasets.medmnist` and :mod:`tinycnn.datasets.preprocessing`.
"""

from .medmnist import (
    INFO,
    SPLITS,
    TASKS,
    DatasetInfo,
    DownloadError,
    MedMNIST,
    Split,
    default_root,
    download,
    file_md5,
    get_info,
    load,
    load_file,
    search_folders,
)
from .preprocessing import labels_1d, random_flip, random_shift, standardize, to_float

__all__ = [
    "INFO",
    "SPLITS",
    "TASKS",
    "DatasetInfo",
    "DownloadError",
    "MedMNIST",
    "Split",
    "default_root",
    "download",
    "file_md5",
    "get_info",
    "labels_1d",
    "load",
    "load_file",
    "random_flip",
    "random_shift",
    "search_folders",
    "standardize",
    "to_float",
]
