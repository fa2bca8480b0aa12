"""The twelve 2D MedMNIST datasets at 28×28: what they are and where they are published.

Pure data, no IO: one :class:`DatasetInfo` a dataset (task, channels, label names, official
sample counts, download URL, MD5 digest, licence), collected in :data:`INFO`, with
:func:`get_info` to look one up by name. Finding, downloading and loading the files is
:mod:`tinycnn.datasets.medmnist`.

Typical use::

    from tinycnn.datasets import get_info
    info = get_info("pneumoniamnist")
    print(info.labels, info.n_samples["train"])   # ('normal', 'pneumonia') 4708

Every fact in :data:`INFO` (URLs, MD5 sums, sample counts, label names, tasks) is taken from the
official ``medmnist`` package, version 3.0.2 (``medmnist/info.py``), so a file downloaded with
these URLs and checked against these digests is the same file that package would download.
"""

import types
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "DatasetInfo",
    "IMAGE_SIZE",
    "INFO",
    "SPLITS",
    "TASKS",
    "get_info",
]

#: The three splits of every dataset, in order.
SPLITS = ("train", "val", "test")

#: The task strings used by the official package.
TASKS = ("binary-class", "multi-class", "multi-label, binary-class", "ordinal-regression")

#: Height and width of every image at the resolution this registry describes.
IMAGE_SIZE = 28


@dataclass(frozen=True)
class DatasetInfo:
    """Facts about one MedMNIST dataset, as the official package records them.

    Attributes:
        name: the file's stem, e.g. ``"pneumoniamnist"``.
        python_class: the class name in the official package, e.g. ``"PneumoniaMNIST"``.
        description: one short sentence (ours, shorter than the official text).
        task: one of :data:`TASKS`.
        n_channels: 1 for grey images, 3 for RGB.
        labels: the label names; ``labels[i]`` is the name of class (or flag) ``i``.
        n_samples: official image counts, ``{"train": ..., "val": ..., "test": ...}``.
        url: where the official file can be downloaded.
        md5: the official file's MD5 digest (32 lower-case hex digits).
        license: the data licence.
    """

    name: str
    python_class: str
    description: str
    task: str
    n_channels: int
    labels: tuple[str, ...]
    n_samples: Mapping[str, int]
    url: str
    md5: str
    license: str = "CC BY 4.0"

    def __post_init__(self) -> None:
        # A read-only view, so that nobody changes the shared registry by accident.
        object.__setattr__(self, "n_samples", types.MappingProxyType(dict(self.n_samples)))

    @property
    def n_classes(self) -> int:
        """The number of classes (single-label tasks) or of 0/1 flags (multi-label)."""
        return len(self.labels)

    @property
    def is_multilabel(self) -> bool:
        """True when an image can carry several labels at once (ChestMNIST)."""
        return self.task.startswith("multi-label")

    @property
    def filename(self) -> str:
        """The file's name, e.g. ``"pneumoniamnist.npz"``."""
        return f"{self.name}.npz"


_ORGAN_LABELS = (
    "bladder",
    "femur-left",
    "femur-right",
    "heart",
    "kidney-left",
    "kidney-right",
    "liver",
    "lung-left",
    "lung-right",
    "pancreas",
    "spleen",
)

_ALL_INFO = (
    DatasetInfo(
        name="pathmnist",
        python_class="PathMNIST",
        description="Colorectal cancer histology patches (H&E stain), 9 tissue types.",
        task="multi-class",
        n_channels=3,
        labels=(
            "adipose",
            "background",
            "debris",
            "lymphocytes",
            "mucus",
            "smooth muscle",
            "normal colon mucosa",
            "cancer-associated stroma",
            "colorectal adenocarcinoma epithelium",
        ),
        n_samples={"train": 89996, "val": 10004, "test": 7180},
        url="https://zenodo.org/records/10519652/files/pathmnist.npz?download=1",
        md5="a8b06965200029087d5bd730944a56c1",
    ),
    DatasetInfo(
        name="chestmnist",
        python_class="ChestMNIST",
        description="Frontal chest X-rays (NIH ChestX-ray14), 14 disease flags per image.",
        task="multi-label, binary-class",
        n_channels=1,
        labels=(
            "atelectasis",
            "cardiomegaly",
            "effusion",
            "infiltration",
            "mass",
            "nodule",
            "pneumonia",
            "pneumothorax",
            "consolidation",
            "edema",
            "emphysema",
            "fibrosis",
            "pleural",
            "hernia",
        ),
        n_samples={"train": 78468, "val": 11219, "test": 22433},
        url="https://zenodo.org/records/10519652/files/chestmnist.npz?download=1",
        md5="02c8a6516a18b556561a56cbdd36c4a8",
    ),
    DatasetInfo(
        name="dermamnist",
        python_class="DermaMNIST",
        description="Dermatoscopic images of pigmented skin lesions (HAM10000), 7 diagnoses.",
        task="multi-class",
        n_channels=3,
        labels=(
            "actinic keratoses and intraepithelial carcinoma",
            "basal cell carcinoma",
            "benign keratosis-like lesions",
            "dermatofibroma",
            "melanoma",
            "melanocytic nevi",
            "vascular lesions",
        ),
        n_samples={"train": 7007, "val": 1003, "test": 2005},
        url="https://zenodo.org/records/10519652/files/dermamnist.npz?download=1",
        md5="0744692d530f8e62ec473284d019b0c7",
        license="CC BY-NC 4.0",
    ),
    DatasetInfo(
        name="octmnist",
        python_class="OCTMNIST",
        description="Retinal optical coherence tomography (OCT) scans, 4 diagnoses.",
        task="multi-class",
        n_channels=1,
        labels=(
            "choroidal neovascularization",
            "diabetic macular edema",
            "drusen",
            "normal",
        ),
        n_samples={"train": 97477, "val": 10832, "test": 1000},
        url="https://zenodo.org/records/10519652/files/octmnist.npz?download=1",
        md5="c68d92d5b585d8d81f7112f81e2d0842",
    ),
    DatasetInfo(
        name="pneumoniamnist",
        python_class="PneumoniaMNIST",
        description="Paediatric chest X-rays, pneumonia against normal.",
        task="binary-class",
        n_channels=1,
        labels=("normal", "pneumonia"),
        n_samples={"train": 4708, "val": 524, "test": 624},
        url="https://zenodo.org/records/10519652/files/pneumoniamnist.npz?download=1",
        md5="28209eda62fecd6e6a2d98b1501bb15f",
    ),
    DatasetInfo(
        name="retinamnist",
        python_class="RetinaMNIST",
        description="Retina fundus images (DeepDRiD), diabetic retinopathy graded 0 to 4.",
        task="ordinal-regression",
        n_channels=3,
        labels=("0", "1", "2", "3", "4"),
        n_samples={"train": 1080, "val": 120, "test": 400},
        url="https://zenodo.org/records/10519652/files/retinamnist.npz?download=1",
        md5="bd4c0672f1bba3e3a89f0e4e876791e4",
    ),
    DatasetInfo(
        name="breastmnist",
        python_class="BreastMNIST",
        description="Breast ultrasound images, malignant against normal or benign.",
        task="binary-class",
        n_channels=1,
        labels=("malignant", "normal, benign"),
        n_samples={"train": 546, "val": 78, "test": 156},
        url="https://zenodo.org/records/10519652/files/breastmnist.npz?download=1",
        md5="750601b1f35ba3300ea97c75c52ff8f6",
    ),
    DatasetInfo(
        name="bloodmnist",
        python_class="BloodMNIST",
        description="Microscope images of normal blood cells, 8 cell types.",
        task="multi-class",
        n_channels=3,
        labels=(
            "basophil",
            "eosinophil",
            "erythroblast",
            "immature granulocytes(myelocytes, metamyelocytes and promyelocytes)",
            "lymphocyte",
            "monocyte",
            "neutrophil",
            "platelet",
        ),
        n_samples={"train": 11959, "val": 1712, "test": 3421},
        url="https://zenodo.org/records/10519652/files/bloodmnist.npz?download=1",
        md5="7053d0359d879ad8a5505303e11de1dc",
    ),
    DatasetInfo(
        name="tissuemnist",
        python_class="TissueMNIST",
        description="Human kidney cortex cells (BBBC051), 8 cell types.",
        task="multi-class",
        n_channels=1,
        labels=(
            "Collecting Duct, Connecting Tubule",
            "Distal Convoluted Tubule",
            "Glomerular endothelial cells",
            "Interstitial endothelial cells",
            "Leukocytes",
            "Podocytes",
            "Proximal Tubule Segments",
            "Thick Ascending Limb",
        ),
        n_samples={"train": 165466, "val": 23640, "test": 47280},
        url="https://zenodo.org/records/10519652/files/tissuemnist.npz?download=1",
        md5="ebe78ee8b05294063de985d821c1c34b",
    ),
    DatasetInfo(
        name="organamnist",
        python_class="OrganAMNIST",
        description="Abdominal CT, axial slices, 11 organs.",
        task="multi-class",
        n_channels=1,
        labels=_ORGAN_LABELS,
        n_samples={"train": 34561, "val": 6491, "test": 17778},
        url="https://zenodo.org/records/10519652/files/organamnist.npz?download=1",
        md5="68e3f8846a6bd62f0c9bf841c0d9eacc",
    ),
    DatasetInfo(
        name="organcmnist",
        python_class="OrganCMNIST",
        description="Abdominal CT, coronal slices, 11 organs.",
        task="multi-class",
        n_channels=1,
        labels=_ORGAN_LABELS,
        n_samples={"train": 12975, "val": 2392, "test": 8216},
        url="https://zenodo.org/records/10519652/files/organcmnist.npz?download=1",
        md5="b9ceb9546e10131b32923c5bbeaea2b1",
    ),
    DatasetInfo(
        name="organsmnist",
        python_class="OrganSMNIST",
        description="Abdominal CT, sagittal slices, 11 organs.",
        task="multi-class",
        n_channels=1,
        labels=_ORGAN_LABELS,
        n_samples={"train": 13932, "val": 2452, "test": 8827},
        url="https://zenodo.org/records/10519652/files/organsmnist.npz?download=1",
        md5="9ab87b696fb54e2a387ebe992d6ed5f1",
    ),
)

#: Registry of the twelve 2D datasets: name -> :class:`DatasetInfo`.
INFO: dict[str, DatasetInfo] = {info.name: info for info in _ALL_INFO}


def get_info(name: str) -> DatasetInfo:
    """Return the registry entry for ``name`` (case does not matter).

    Raises:
        ValueError: if ``name`` is not one of the twelve 2D datasets.
    """
    key = name.lower()
    if key not in INFO:
        known = ", ".join(INFO)
        raise ValueError(f"unknown MedMNIST dataset {name!r}; known 2D datasets: {known}")
    return INFO[key]
