"""Tests for tinycnn.published: the published MedMNIST v2 numbers and the comparison tables.

The only published numbers written here are the three anchors stated in the issue; everything
else is checked for shape, order and formatting, not against a copy of the module's own data.
"""

import math
import re

import numpy as np
import pytest

from tinycnn import metrics
from tinycnn.datasets import INFO
from tinycnn.published import PUBLISHED, comparison_table, markdown_table

# (dataset, method) -> (ACC, AUC), from the issue text.
ANCHORS = {
    ("pneumoniamnist", "ResNet-18 (28)"): (0.854, 0.944),
    ("breastmnist", "ResNet-18 (28)"): (0.863, 0.901),
    ("retinamnist", "ResNet-18 (28)"): (0.524, 0.717),
}

# The methods the issue requires, in the order the paper lists them.
REQUIRED_METHODS = [
    "ResNet-18 (28)",
    "ResNet-50 (28)",
    "auto-sklearn",
    "AutoKeras",
    "Google AutoML Vision",
]


def _row(text: str, label: str) -> str:
    """The one line of a plain-text table that starts with ``label``."""
    rows = [line for line in text.splitlines() if line.startswith(label + " ") or line == label]
    assert len(rows) == 1, f"expected one row for {label!r}, found {rows}"
    return rows[0]


def _md_row(text: str, label: str) -> list[str]:
    """The cells of the Markdown table row whose first cell is ``label`` (bold or not)."""
    for line in text.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if cells[0].strip("*") == label:
                return [c.strip("*") for c in cells]
    raise AssertionError(f"no Markdown row for {label!r} in\n{text}")


# --------------------------------------------------------------------------------------------
# The data
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("key", "expected"), list(ANCHORS.items()))
def test_anchors_from_the_issue(key, expected):
    dataset, method = key
    assert PUBLISHED[dataset][method] == pytest.approx(expected, abs=1e-9)


def test_every_2d_dataset_of_the_registry_is_covered():
    assert set(PUBLISHED) == set(INFO)
    assert all(name == name.lower() for name in PUBLISHED)


@pytest.mark.parametrize("dataset", sorted(INFO))
def test_each_dataset_has_the_required_methods_as_acc_auc_pairs(dataset):
    results = PUBLISHED[dataset]
    for method in REQUIRED_METHODS:
        assert method in results, f"{dataset}: {method} missing"
    for method, pair in results.items():
        assert isinstance(pair, tuple) and len(pair) == 2, (method, pair)
        for value in pair:
            assert isinstance(value, float)
            assert 0.0 < value <= 1.0
            # The paper prints three decimals.
            assert value == pytest.approx(round(value, 3), abs=1e-12)


def test_methods_are_stored_in_paper_order():
    for dataset, results in PUBLISHED.items():
        order = [m for m in results if m in REQUIRED_METHODS]
        assert order == REQUIRED_METHODS, dataset


def test_a_random_guesser_is_beaten_on_auc_everywhere():
    # Every published method is far from chance; a swapped (ACC, AUC) pair on a multi-label
    # dataset (ChestMNIST ACC is ~0.95, AUC ~0.75) or a typo like 0.0944 would show up as an
    # implausible value somewhere.
    for dataset, results in PUBLISHED.items():
        for method, (acc, auc) in results.items():
            assert auc > 0.6, (dataset, method)
            assert acc > 0.15, (dataset, method)


# --------------------------------------------------------------------------------------------
# comparison_table
# --------------------------------------------------------------------------------------------


def test_comparison_table_has_our_numbers_to_three_decimals_and_the_anchor_row():
    text = comparison_table("pneumoniamnist", {"acc": 0.87654, "auc": 0.93219})
    ours = _row(text, "tinycnn")
    assert re.search(r"\b0\.877\b.*\b0\.932\b", ours), ours  # ACC first, then AUC
    anchor = _row(text, "ResNet-18 (28)")
    assert re.search(r"\b0\.854\b.*\b0\.944\b", anchor), anchor
    header = _row(text, "Method")
    assert header.index("ACC") < header.index("AUC")


def test_comparison_table_mean_and_std():
    text = comparison_table(
        "breastmnist", {"acc": 0.81, "auc": 0.8999}, ours_label="my CNN",
        ours_std={"acc": 0.0123, "auc": 0.0049},
    )
    ours = _row(text, "my CNN")
    assert "0.810 ± 0.012" in ours
    assert "0.900 ± 0.005" in ours
    assert re.search(r"\b0\.863\b.*\b0\.901\b", _row(text, "ResNet-18 (28)"))


def test_comparison_table_partial_std_prints_only_what_is_given():
    text = comparison_table("retinamnist", {"acc": 0.5, "auc": 0.7}, ours_std={"auc": 0.01})
    ours = _row(text, "tinycnn")
    assert "0.700 ± 0.010" in ours
    assert ours.count("±") == 1


def test_comparison_table_rows_ours_first_then_paper_order_and_a_citation():
    text = comparison_table("RetinaMNIST", {"acc": 0.5, "auc": 0.7})  # case does not matter
    lines = text.splitlines()
    position = {label: next(i for i, l in enumerate(lines) if l.startswith(label + " "))
                for label in ["tinycnn", *REQUIRED_METHODS]}
    assert sorted(position, key=position.get) == ["tinycnn", *REQUIRED_METHODS]
    assert re.search(r"\b0\.524\b.*\b0\.717\b", _row(text, "ResNet-18 (28)"))
    footer = " ".join(lines[position[REQUIRED_METHODS[-1]] + 1:])
    footer = " ".join(footer.split())
    assert "Yang et al." in footer and "Scientific Data" in footer and "2023" in footer
    assert "RetinaMNIST" in lines[0]


def test_comparison_table_takes_medmnist_scores_output():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    score = np.clip(0.3 * y + 0.7 * rng.random(200), 0, 1)
    scores = metrics.medmnist_scores("binary-class", y, np.c_[1 - score, score])
    text = comparison_table("pneumoniamnist", scores)
    ours = _row(text, "tinycnn")
    assert f"{scores['acc']:.3f}" in ours and f"{scores['auc']:.3f}" in ours


@pytest.mark.parametrize(
    ("dataset", "ours", "std"),
    [
        ("cifar10", {"acc": 0.5, "auc": 0.5}, None),
        ("pneumoniamnist", {"acc": 0.5}, None),
        ("pneumoniamnist", {"acc": 0.5, "auc": 1.5}, None),
        ("pneumoniamnist", {"acc": math.nan, "auc": 0.5}, None),
        ("pneumoniamnist", {"acc": "0.5", "auc": 0.5}, None),
        ("pneumoniamnist", [0.5, 0.5], None),
        ("pneumoniamnist", {"acc": 0.5, "auc": 0.5}, {"acc": -0.1}),
    ],
)
def test_bad_inputs_raise_value_error(dataset, ours, std):
    with pytest.raises(ValueError):
        comparison_table(dataset, ours, ours_std=std)
    with pytest.raises(ValueError):
        markdown_table(dataset, ours, ours_std=std)


# --------------------------------------------------------------------------------------------
# markdown_table
# --------------------------------------------------------------------------------------------


def test_markdown_table_same_content_as_github_markdown():
    text = markdown_table("pneumoniamnist", {"acc": 0.87654, "auc": 0.93219},
                          ours_std={"acc": 0.01, "auc": 0.002})
    table = [line for line in text.splitlines() if line.startswith("|")]
    header = [c.strip() for c in table[0].strip("|").split("|")]
    assert header == ["Method", "ACC", "AUC"]
    assert re.fullmatch(r"\|(\s*:?-{3,}:?\s*\|){3}", table[1].replace(" ", "")), table[1]
    assert _md_row(text, "tinycnn") == ["tinycnn", "0.877 ± 0.010", "0.932 ± 0.002"]
    assert _md_row(text, "ResNet-18 (28)") == ["ResNet-18 (28)", "0.854", "0.944"]
    assert "Scientific Data" in text and "Yang et al." in text
    # Every row has exactly the three cells of the header.
    assert all(line.count("|") == 4 for line in table)


def test_markdown_table_escapes_a_pipe_in_our_label():
    text = markdown_table("breastmnist", {"acc": 0.8, "auc": 0.9}, ours_label="CNN | aug")
    row = next(line for line in text.splitlines() if "CNN" in line)
    assert r"CNN \| aug" in row
    assert row.replace(r"\|", "").count("|") == 4


def test_plain_and_markdown_tables_list_the_same_rows():
    ours = {"acc": 0.7, "auc": 0.8}
    plain = comparison_table("organcmnist", ours)
    md = markdown_table("organcmnist", ours)
    for method in PUBLISHED["organcmnist"]:
        cells = _md_row(md, method)
        assert re.search(rf"\b{cells[1]}\b.*\b{cells[2]}\b", _row(plain, method))
