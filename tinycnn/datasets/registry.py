"""The twelve 2D MedMNIST datasets: what they are and where their files are published.

Pure data, no IO: one :class:`DatasetInfo` a dataset (task, channels, label names, official
sample counts, licence, and for every image size offered the file's download URL and MD5 digest),
collected in :data:`INFO`, with :func:`get_info` to look one up by name. Finding, downloading and
loading the files is :mod:`tinycnn.datasets.medmnist`.

Typical use::

    from tinycnn.datasets import get_info
    info = get_info("pneumoniamnist")
    print(info.labels, info.n_samples["train"])   # ('normal', 'pneumonia') 4708
    print(info.sizes)                             # (28, 64, 128, 224)
    print(info.file(64).filename)                 # pneumoniamnist_64.npz

**Image sizes.** MedMNIST's images are 28×28 (``pneumoniamnist.npz``). MedMNIST+ (the official
package from version 3.0) offers the same images, the same splits and the same labels at 64×64,
128×128 and 224×224 too, one file a size: ``pneumoniamnist_64.npz``, ``pneumoniamnist_128.npz``,
``pneumoniamnist_224.npz`` (the official rule: ``f"{flag}{size_flag}.npz"``, ``size_flag`` empty
at 28 and ``"_64"`` at 64). All twelve 2D datasets are offered at all four sizes; asking for
another size raises a ``ValueError`` that lists the sizes there are.

Every fact in :data:`INFO` (URLs, MD5 sums, sample counts, label names, tasks) is taken from the
official ``medmnist`` package, version 3.0.2 (``medmnist/info.py``: the keys ``url``/``MD5`` for
28×28, ``url_64``/``MD5_64``, ``url_128``/``MD5_128``, ``url_224``/``MD5_224`` for the larger
files), so a file downloaded with these URLs and checked against these digests is the same file
that package would download.
"""

import numbers
import types
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = [
    "DataFile",
    "DatasetInfo",
    "IMAGE_SIZE",
    "INFO",
    "SIZES",
    "SPLITS",
    "TASKS",
    "get_info",
]

#: The three splits of every dataset, in order.
SPLITS = ("train", "val", "test")

#: The task strings used by the official package.
TASKS = ("binary-class", "multi-class", "multi-label, binary-class", "ordinal-regression")

#: Height and width of MedMNIST's images: the default size, the one with no suffix in file names.
IMAGE_SIZE = 28

#: Every image size (height = width, in pixels) some official 2D file has: 28 (MedMNIST) and the
#: larger MedMNIST+ sizes. Which sizes one dataset offers is its :attr:`DatasetInfo.sizes`.
SIZES = (28, 64, 128, 224)


@dataclass(frozen=True)
class DataFile:
    """One official file: a dataset at one image size, where to download it, and its digest.

    Attributes:
        name: the dataset's name, e.g. ``"pneumoniamnist"``.
        size: the images' height and width in pixels, e.g. ``64``.
        url: where the official file can be downloaded.
        md5: the official file's MD5 digest (32 lower-case hex digits).
    """

    name: str
    size: int
    url: str
    md5: str

    @property
    def stem(self) -> str:
        """``"pneumoniamnist"`` at 28×28, ``"pneumoniamnist_64"`` at 64×64: the official package's
        ``f"{flag}{size_flag}"``, which names the file and the evaluation files of its scores."""
        return self.name if self.size == IMAGE_SIZE else f"{self.name}_{self.size}"

    @property
    def filename(self) -> str:
        """``"pneumoniamnist.npz"`` at 28×28, ``"pneumoniamnist_64.npz"`` at 64×64."""
        return f"{self.stem}.npz"


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
        url: where the official 28×28 file can be downloaded.
        md5: the official 28×28 file's MD5 digest (32 lower-case hex digits).
        license: the data licence.
        larger: the MedMNIST+ files, ``{size: (url, md5)}`` for each larger size offered
            (64, 128, 224). :meth:`file` gives the file of any size, :attr:`sizes` lists them.
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
    larger: Mapping[int, tuple[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Read-only views, so that nobody changes the shared registry by accident.
        object.__setattr__(self, "n_samples", types.MappingProxyType(dict(self.n_samples)))
        object.__setattr__(self, "larger", types.MappingProxyType(dict(self.larger)))

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
        """The 28×28 file's name, e.g. ``"pneumoniamnist.npz"`` (any size: ``file(size).filename``)."""
        return f"{self.name}.npz"

    @property
    def sizes(self) -> tuple[int, ...]:
        """The image sizes of the official files, smallest first, e.g. ``(28, 64, 128, 224)``."""
        return (IMAGE_SIZE, *sorted(self.larger))

    def file(self, size: int = IMAGE_SIZE) -> DataFile:
        """The official file of this dataset at ``size``×``size`` pixels (file name, URL, MD5).

        Raises:
            TypeError: ``size`` is not an int.
            ValueError: the official package offers no file of that size for this dataset; the
                message lists the sizes it does offer.
        """
        if not isinstance(size, numbers.Integral) or isinstance(size, bool):
            raise TypeError(f"size must be an int (pixels, e.g. 64), got {size!r}")
        size = int(size)
        if size == IMAGE_SIZE:
            return DataFile(self.name, size, self.url, self.md5)
        if size not in self.larger:
            offered = ", ".join(str(s) for s in self.sizes)
            raise ValueError(f"{self.name} has no {size}×{size} images: the official files are "
                             f"{offered} pixels wide")
        url, md5 = self.larger[size]
        return DataFile(self.name, size, url, md5)


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
        larger={
            64: ("https://zenodo.org/records/10519652/files/pathmnist_64.npz?download=1",
                 "55aa9c1e0525abe5a6b9d8343a507616"),
            128: ("https://zenodo.org/records/10519652/files/pathmnist_128.npz?download=1",
                  "ac42d08fb904d92c244187169d1fd1d9"),
            224: ("https://zenodo.org/records/10519652/files/pathmnist_224.npz?download=1",
                  "2c51a510bcdc9cf8ddb2af93af1eadec"),
        },
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
        larger={
            64: ("https://zenodo.org/records/10519652/files/chestmnist_64.npz?download=1",
                 "9de6cd0b934ebb5b7426cfba5efbae16"),
            128: ("https://zenodo.org/records/10519652/files/chestmnist_128.npz?download=1",
                  "db107e5590b27930b62dbaf558aebee3"),
            224: ("https://zenodo.org/records/10519652/files/chestmnist_224.npz?download=1",
                  "45bd33e6f06c3e8cdb481c74a89152aa"),
        },
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
        larger={
            64: ("https://zenodo.org/records/10519652/files/dermamnist_64.npz?download=1",
                 "b70a2f5635c6199aeaa28c31d7202e1f"),
            128: ("https://zenodo.org/records/10519652/files/dermamnist_128.npz?download=1",
                  "2defd784463fa5243564e855ed717de1"),
            224: ("https://zenodo.org/records/10519652/files/dermamnist_224.npz?download=1",
                  "8974907d8e169bef5f5b96bc506ae45d"),
        },
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
        larger={
            64: ("https://zenodo.org/records/10519652/files/octmnist_64.npz?download=1",
                 "e229e9440236b774d9f0dfef9d07bdaf"),
            128: ("https://zenodo.org/records/10519652/files/octmnist_128.npz?download=1",
                  "0a97e76651ace45c5d943ee3f65b63ae"),
            224: ("https://zenodo.org/records/10519652/files/octmnist_224.npz?download=1",
                  "abc493b6d529d5de7569faaef2773ba3"),
        },
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
        larger={
            64: ("https://zenodo.org/records/10519652/files/pneumoniamnist_64.npz?download=1",
                 "8f4eceb4ccffa70c672198ea285246c6"),
            128: ("https://zenodo.org/records/10519652/files/pneumoniamnist_128.npz?download=1",
                  "05b46931834c231683c68f40c47b2971"),
            224: ("https://zenodo.org/records/10519652/files/pneumoniamnist_224.npz?download=1",
                  "d6a3c71de1b945ea11211b03746c1fe1"),
        },
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
        larger={
            64: ("https://zenodo.org/records/10519652/files/retinamnist_64.npz?download=1",
                 "afda852cc34dcda56f86ad2b2457dbcc"),
            128: ("https://zenodo.org/records/10519652/files/retinamnist_128.npz?download=1",
                  "e48e916a24454daf90583d4e6efb1a18"),
            224: ("https://zenodo.org/records/10519652/files/retinamnist_224.npz?download=1",
                  "eae7e3b6f3fcbda4ae613ebdcbe35348"),
        },
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
        larger={
            64: ("https://zenodo.org/records/10519652/files/breastmnist_64.npz?download=1",
                 "742edef2a1fd1524b2efff4bd7ba9364"),
            128: ("https://zenodo.org/records/10519652/files/breastmnist_128.npz?download=1",
                  "363e4b3f8d712e9b5de15470a2aaadf1"),
            224: ("https://zenodo.org/records/10519652/files/breastmnist_224.npz?download=1",
                  "b56378a6eefa9fed602bb16d192d4c8b"),
        },
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
        larger={
            64: ("https://zenodo.org/records/10519652/files/bloodmnist_64.npz?download=1",
                 "2b94928a2ae4916078ca51e05b6b800b"),
            128: ("https://zenodo.org/records/10519652/files/bloodmnist_128.npz?download=1",
                  "adace1e0ed228fccda1f39692059dd4c"),
            224: ("https://zenodo.org/records/10519652/files/bloodmnist_224.npz?download=1",
                  "b718ff6835fcbdb22ba9eacccd7b2601"),
        },
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
        larger={
            64: ("https://zenodo.org/records/10519652/files/tissuemnist_64.npz?download=1",
                 "123ece2eba09d0aa5d698fda57103344"),
            128: ("https://zenodo.org/records/10519652/files/tissuemnist_128.npz?download=1",
                  "61b955355d7425a89687b06cca3ce0c2"),
            224: ("https://zenodo.org/records/10519652/files/tissuemnist_224.npz?download=1",
                  "b077128c4a949f0a4eb01517f9037b9c"),
        },
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
        larger={
            64: ("https://zenodo.org/records/10519652/files/organamnist_64.npz?download=1",
                 "2dcccc29b88e6da5a01161ef20cda288"),
            128: ("https://zenodo.org/records/10519652/files/organamnist_128.npz?download=1",
                  "eeae80d0a227a8d099027e1b3cfd3b60"),
            224: ("https://zenodo.org/records/10519652/files/organamnist_224.npz?download=1",
                  "50747347e05c87dd3aaf92c49f9f3170"),
        },
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
        larger={
            64: ("https://zenodo.org/records/10519652/files/organcmnist_64.npz?download=1",
                 "3ce34a8724ea6f548e6db4744d03b6a9"),
            128: ("https://zenodo.org/records/10519652/files/organcmnist_128.npz?download=1",
                  "773c1f009daa3fe5d9a2a201b2a7ed94"),
            224: ("https://zenodo.org/records/10519652/files/organcmnist_224.npz?download=1",
                  "050f5e875dc056f6768abf94ec9995d1"),
        },
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
        larger={
            64: ("https://zenodo.org/records/10519652/files/organsmnist_64.npz?download=1",
                 "53a6d115339d874c25e309a994ff46d3"),
            128: ("https://zenodo.org/records/10519652/files/organsmnist_128.npz?download=1",
                  "ded0c5fa01a95dc4978b956f613e9b8e"),
            224: ("https://zenodo.org/records/10519652/files/organsmnist_224.npz?download=1",
                  "b354719e553fbbb2513d5533f52a4cb1"),
        },
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
