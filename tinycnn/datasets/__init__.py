"""MedMNIST datasets: the registry, loading and downloading, and preprocessing.

- :mod:`tinycnn.datasets.registry`: the table of the twelve 2D datasets (:class:`DatasetInfo`,
  :data:`INFO`, :func:`get_info`, :data:`SPLITS`, :data:`TASKS`), with the official file of each
  image size, 28 and the MedMNIST+ 64, 128, 224 (:data:`SIZES`, :class:`DataFile`); pure data, no IO.
- :mod:`tinycnn.datasets.medmnist`: finding, downloading, checking and loading the files
  (:func:`load`, :func:`download`, :class:`MedMNIST`, :class:`DownloadError`...).
- :mod:`tinycnn.datasets.preprocessing`: scaling, standardising and augmenting the images.
"""

from .medmnist import (
    DownloadError,
    MedMNIST,
    Split,
    default_root,
    download,
    file_md5,
    load,
    load_file,
    search_folders,
)
from .preprocessing import labels_1d, random_flip, random_shift, standardize, to_float
from .registry import IMAGE_SIZE, INFO, SIZES, SPLITS, TASKS, DataFile, DatasetInfo, get_info

__all__ = [
    "IMAGE_SIZE",
    "INFO",
    "SIZES",
    "SPLITS",
    "TASKS",
    "DataFile",
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
