"""Published MedMNIST v2 test-set results, and tables that set our own result beside them.

The numbers
-----------
:data:`PUBLISHED` holds the 2D benchmark of

    Jiancheng Yang, Rui Shi, Donglai Wei, Zequan Liu, Lin Zhao, Bilian Ke, Hanspeter Pfister,
    Bingbing Ni. "MedMNIST v2 - A large-scale lightweight benchmark for 2D and 3D biomedical
    image classification." Scientific Data 10, 41 (2023). doi:10.1038/s41597-022-01721-8.
    Table 3 (the twelve 2D datasets; test split; ACC and AUC as defined in
    :func:`tinycnn.metrics.medmnist_scores`).

for all twelve 2D datasets and seven methods: ResNet-18 and ResNet-50 trained on 28×28 images
("(28)") and on images resized to 224×224 ("(224)"), and the AutoML tools auto-sklearn,
AutoKeras and Google AutoML Vision.

Where each number was checked (every value was read from a stored copy of a source, none is
from memory):

* [site] The project's own site, the "Benchmarking Performance on MedMNIST2D" tables of
  https://medmnist.com/v2 as stored in the repository ``MedMNIST/medmnist.github.io`` (file
  ``v2.html``, commit 6f5bc1a): the 2021 version of the page, all seven rows.
* [paper] The published paper's Table 3 as transcribed (and, per its notes, checked twice
  against the PDF text) in ``dhudsmith/textbook_priors``, file
  ``data/literature/benchmarks.yaml``: the rows ResNet-18 (224), ResNet-50 (224), auto-sklearn,
  AutoKeras and Google AutoML Vision, all twelve datasets.
* [current site] https://medmnist.com/v2 as copied in
  ``habib-analyst/MedMNIST_v2_Reproducibility_Benchmark`` (``configs/benchmark-references.json``):
  the ResNet-50 (224) row, all twelve datasets; identical to [paper].
* [copies] Other independent copies of the paper's numbers: all seven methods on PathMNIST,
  OCTMNIST, TissueMNIST, OrganAMNIST, PneumoniaMNIST and RetinaMNIST; the ChestMNIST AUCs;
  ResNet-18 (28) on DermaMNIST and BreastMNIST.

AutoKeras and Google AutoML Vision agree in [site] and [paper] on every cell, auto-sklearn on
all but one. ResNet-18 (28) and ResNet-50 (28) come from [site]; wherever [copies] cover them
(every dataset except ChestMNIST ACC, BloodMNIST, OrganCMNIST, OrganSMNIST, and ResNet-50 (28)
on DermaMNIST and BreastMNIST) they agree.

The 2021 site differs from the paper in the two "(224)" rows (e.g. ResNet-18 (224) on PathMNIST,
AUC/ACC 0.989/0.909 in the paper, 0.990/0.905 on the 2021 site; ResNet-50 (224) on BloodMNIST
and OrganAMNIST) and in one auto-sklearn cell (BloodMNIST ACC, 0.878 in the paper, 0.877 on the
2021 site). The paper's values are used: [current site] and [copies] agree with [paper] on every
such cell they cover. Three of these cells rest on [paper] alone: auto-sklearn BloodMNIST ACC,
and ResNet-18 (224) ACC on BloodMNIST (0.963; site 0.964) and OrganCMNIST (0.920; site 0.917).

Using the tables
----------------
::

    from tinycnn.metrics import medmnist_scores
    from tinycnn.published import comparison_table
    scores = medmnist_scores("binary-class", y_test, probs)        # {"acc": ..., "auc": ...}
    print(comparison_table("pneumoniamnist", scores))

:func:`comparison_table` gives plain monospace text (for a terminal or a log file);
:func:`markdown_table` gives the same rows as GitHub Markdown (for a README or a notebook).
"""

from __future__ import annotations

import math
import numbers
import textwrap
from collections.abc import Mapping

__all__ = [
    "CITATION",
    "DATASETS",
    "DISPLAY_NAMES",
    "METHODS",
    "PUBLISHED",
    "comparison_table",
    "markdown_table",
]

#: The short citation printed under every table.
CITATION = (
    'Source: Yang et al., "MedMNIST v2 - A large-scale lightweight benchmark for 2D and 3D '
    'biomedical image classification", Scientific Data 10, 41 (2023), Table 3 (test set).'
)

#: The methods, in the order of the paper's table.
METHODS = (
    "ResNet-18 (28)",
    "ResNet-18 (224)",
    "ResNet-50 (28)",
    "ResNet-50 (224)",
    "auto-sklearn",
    "AutoKeras",
    "Google AutoML Vision",
)

#: The twelve 2D datasets, in the order of the paper's table, with their printed names.
DISPLAY_NAMES = {
    "pathmnist": "PathMNIST",
    "chestmnist": "ChestMNIST",
    "dermamnist": "DermaMNIST",
    "octmnist": "OCTMNIST",
    "pneumoniamnist": "PneumoniaMNIST",
    "retinamnist": "RetinaMNIST",
    "breastmnist": "BreastMNIST",
    "bloodmnist": "BloodMNIST",
    "tissuemnist": "TissueMNIST",
    "organamnist": "OrganAMNIST",
    "organcmnist": "OrganCMNIST",
    "organsmnist": "OrganSMNIST",
}

#: The dataset names (lower case, as in :data:`tinycnn.datasets.registry.INFO`), in paper order.
DATASETS = tuple(DISPLAY_NAMES)


def _row(*auc_acc: float) -> dict[str, tuple[float, float]]:
    """One dataset's results, given as the paper prints them: AUC then ACC, method by method.

    Stored the other way round, ``(acc, auc)``, as :data:`PUBLISHED` promises. Writing the
    numbers in the paper's own order keeps them easy to check against the table.
    """
    if len(auc_acc) != 2 * len(METHODS):
        raise AssertionError("one (AUC, ACC) pair per method is needed")
    pairs = zip(auc_acc[0::2], auc_acc[1::2])
    return {method: (acc, auc) for method, (auc, acc) in zip(METHODS, pairs)}


# Each line below is one method, "AUC, ACC", in the order of METHODS:
#   ResNet-18 (28), ResNet-18 (224), ResNet-50 (28), ResNet-50 (224),
#   auto-sklearn, AutoKeras, Google AutoML Vision.

#: ``PUBLISHED[dataset][method] == (acc, auc)``, the published test-set results.
PUBLISHED: dict[str, dict[str, tuple[float, float]]] = {
    "pathmnist": _row(
        0.983, 0.907,
        0.989, 0.909,
        0.990, 0.911,
        0.989, 0.892,
        0.934, 0.716,
        0.959, 0.834,
        0.944, 0.728,
    ),
    "chestmnist": _row(
        0.768, 0.947,
        0.773, 0.947,
        0.769, 0.947,
        0.773, 0.948,
        0.649, 0.779,
        0.742, 0.937,
        0.778, 0.948,
    ),
    "dermamnist": _row(
        0.917, 0.735,
        0.920, 0.754,
        0.913, 0.735,
        0.912, 0.731,
        0.902, 0.719,
        0.915, 0.749,
        0.914, 0.768,
    ),
    "octmnist": _row(
        0.943, 0.743,
        0.958, 0.763,
        0.952, 0.762,
        0.958, 0.776,
        0.887, 0.601,
        0.955, 0.763,
        0.963, 0.771,
    ),
    "pneumoniamnist": _row(
        0.944, 0.854,
        0.956, 0.864,
        0.948, 0.854,
        0.962, 0.884,
        0.942, 0.855,
        0.947, 0.878,
        0.991, 0.946,
    ),
    "retinamnist": _row(
        0.717, 0.524,
        0.710, 0.493,
        0.726, 0.528,
        0.716, 0.511,
        0.690, 0.515,
        0.719, 0.503,
        0.750, 0.531,
    ),
    "breastmnist": _row(
        0.901, 0.863,
        0.891, 0.833,
        0.857, 0.812,
        0.866, 0.842,
        0.836, 0.803,
        0.871, 0.831,
        0.919, 0.861,
    ),
    "bloodmnist": _row(
        0.998, 0.958,
        0.998, 0.963,
        0.997, 0.956,
        0.997, 0.950,
        0.984, 0.878,
        0.998, 0.961,
        0.998, 0.966,
    ),
    "tissuemnist": _row(
        0.930, 0.676,
        0.933, 0.681,
        0.931, 0.680,
        0.932, 0.680,
        0.828, 0.532,
        0.941, 0.703,
        0.924, 0.673,
    ),
    "organamnist": _row(
        0.997, 0.935,
        0.998, 0.951,
        0.997, 0.935,
        0.998, 0.947,
        0.963, 0.762,
        0.994, 0.905,
        0.990, 0.886,
    ),
    "organcmnist": _row(
        0.992, 0.900,
        0.994, 0.920,
        0.992, 0.905,
        0.993, 0.911,
        0.976, 0.829,
        0.990, 0.879,
        0.988, 0.877,
    ),
    "organsmnist": _row(
        0.972, 0.782,
        0.974, 0.778,
        0.972, 0.770,
        0.975, 0.785,
        0.945, 0.672,
        0.974, 0.813,
        0.964, 0.749,
    ),
}


# --------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------


def _dataset_key(dataset: str) -> str:
    if not isinstance(dataset, str):
        raise ValueError(f"dataset must be a dataset name such as 'pneumoniamnist'; got {dataset!r}")
    key = dataset.lower()
    if key not in PUBLISHED:
        raise ValueError(
            f"no published results for dataset {dataset!r}; known: {', '.join(PUBLISHED)}"
        )
    return key


def _metric(values: Mapping, name: str, what: str, *, allow_missing: bool) -> float | None:
    """``values[name]`` (also accepting the upper-case key) as a finite float in [0, 1]."""
    for key in (name, name.upper()):
        if key in values:
            value = values[key]
            break
    else:
        if allow_missing:
            return None
        raise ValueError(f"{what} must have an {name!r} entry; got keys {sorted(map(str, values))}")
    if isinstance(value, (bool,)) or not isinstance(value, numbers.Real):
        raise ValueError(f"{what}[{name!r}] must be a number; got {value!r}")
    value = float(value)
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{what}[{name!r}] must be a finite number in [0, 1]; got {value!r}")
    return value


def _rows(
    dataset: str, ours: Mapping, ours_label: str, ours_std: Mapping | None
) -> tuple[str, list[tuple[str, str, str]]]:
    """The title and the (label, ACC text, AUC text) rows shared by both table formats."""
    key = _dataset_key(dataset)
    if not isinstance(ours, Mapping):
        raise ValueError(f"ours must be a mapping like {{'acc': 0.87, 'auc': 0.95}}; got {ours!r}")
    if ours_std is not None and not isinstance(ours_std, Mapping):
        raise ValueError(f"ours_std must be a mapping like {{'acc': 0.01}} or None; got {ours_std!r}")
    if not str(ours_label).strip():
        raise ValueError("ours_label must not be empty")

    cells = []
    for name in ("acc", "auc"):
        mean = _metric(ours, name, "ours", allow_missing=False)
        std = None
        if ours_std is not None:
            std = _metric(ours_std, name, "ours_std", allow_missing=True)
        cells.append(f"{mean:.3f}" if std is None else f"{mean:.3f} ± {std:.3f}")

    rows = [(str(ours_label), cells[0], cells[1])]
    for method in METHODS:
        if method in PUBLISHED[key]:  # a cell that could not be verified is simply absent
            acc, auc = PUBLISHED[key][method]
            rows.append((method, f"{acc:.3f}", f"{auc:.3f}"))
    return f"{DISPLAY_NAMES[key]} (test set)", rows


def comparison_table(
    dataset: str,
    ours: Mapping[str, float],
    ours_label: str = "tinycnn",
    ours_std: Mapping[str, float] | None = None,
) -> str:
    """Our test result beside the published ones, as a plain-text (monospace) table.

    Parameters
    ----------
    dataset : a dataset name such as ``"pneumoniamnist"`` (case does not matter).
    ours : ``{"acc": ..., "auc": ...}``, e.g. the dict :func:`tinycnn.metrics.medmnist_scores`
        returns, or the mean over several runs.
    ours_label : the name of our row.
    ours_std : optional ``{"acc": ..., "auc": ...}`` standard deviations; our row then reads
        ``mean ± std``. A metric missing from it is printed without one.

    Returns
    -------
    str: a title line, a header, our row, the published rows in the paper's order, and a line
    citing the source. All numbers have three decimals, as in the paper.

    Raises
    ------
    ValueError: unknown dataset, or ``ours``/``ours_std`` not holding numbers in [0, 1].
    """
    title, rows = _rows(dataset, ours, ours_label, ours_std)
    header = ("Method", "ACC", "AUC")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]

    def line(row) -> str:
        return (
            f"{row[0]:<{widths[0]}}  {row[1]:>{widths[1]}}  {row[2]:>{widths[2]}}".rstrip()
        )

    rule = "-" * (sum(widths) + 4)
    out = [title, line(header), rule, line(rows[0]), rule]
    out += [line(row) for row in rows[1:]]
    out += [rule, textwrap.fill(CITATION, width=max(len(rule), 78))]
    return "\n".join(out)


def markdown_table(
    dataset: str,
    ours: Mapping[str, float],
    ours_label: str = "tinycnn",
    ours_std: Mapping[str, float] | None = None,
) -> str:
    """The same content as :func:`comparison_table`, as GitHub Markdown.

    Our row comes first and is set in bold; the citation follows the table as a paragraph.
    Parameters, return value and errors are as for :func:`comparison_table`.
    """
    title, rows = _rows(dataset, ours, ours_label, ours_std)

    def cell(text: str) -> str:
        return text.replace("|", r"\|")

    out = [f"**{title}**", "", "| Method | ACC | AUC |", "| :--- | ---: | ---: |"]
    for i, (label, acc, auc) in enumerate(rows):
        label = cell(label)
        if i == 0:
            label, acc, auc = f"**{label}**", f"**{acc}**", f"**{auc}**"
        out.append(f"| {label} | {acc} | {auc} |")
    out += ["", CITATION]
    return "\n".join(out)
