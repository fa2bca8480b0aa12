"""Tests for tinycnn.metrics.

The reference numbers are computed here from the definitions, independently of the code under
test: AUC by counting every (positive, negative) pair in a double loop, accuracy by counting
correct predictions in a loop. Scores are drawn from a handful of values so that ties (between
samples, and with the 0.5 threshold) are frequent: ties are where rank-based AUC code goes wrong.
"""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinycnn.metrics import TASKS, accuracy, auc, confusion_matrix, medmnist_scores, roc_curve

# Few distinct values, so ties are common; 0.25, 0.5 and 0.75 are also the thresholds tried.
TIED_VALUES = [0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0]
tied_scores = st.sampled_from(TIED_VALUES)
thresholds = st.sampled_from([0.25, 0.5, 0.75])


# ------------------------------------------------------------------------------------------
# Independent reference definitions
# ------------------------------------------------------------------------------------------


def pairwise_auc(labels, scores):
    """(#pairs pos > neg + 0.5 * #pairs pos == neg) / (P * N), by an explicit double loop."""
    positives = [s for y, s in zip(labels, scores) if y == 1]
    negatives = [s for y, s in zip(labels, scores) if y == 0]
    wins = 0.0
    for p in positives:
        for n in negatives:
            if p > n:
                wins += 1.0
            elif p == n:
                wins += 0.5
    return wins / (len(positives) * len(negatives))


def loop_accuracy(truth, predictions):
    correct = 0
    for t, p in zip(truth, predictions):
        if t == p:
            correct += 1
    return correct / len(truth)


def first_argmax(row):
    """Index of the largest value, the lowest index winning a tie (as np.argmax does)."""
    best = 0
    for i, value in enumerate(row):
        if value > row[best]:
            best = i
    return best


def as_label_form(labels, form):
    """The same 0/1 labels in the forms a caller may pass."""
    if form == "list":
        return list(labels)
    if form == "bool":
        return np.array(labels, dtype=bool)
    if form == "float":
        return np.array(labels, dtype=np.float32)
    if form == "uint8 column":  # MedMNIST stores labels as (N, 1) uint8
        return np.array(labels, dtype=np.uint8).reshape(-1, 1)
    raise AssertionError(form)


label_forms = st.sampled_from(["list", "bool", "float", "uint8 column"])


# ------------------------------------------------------------------------------------------
# Strategies
# ------------------------------------------------------------------------------------------


@st.composite
def binary_cases(draw, max_size=30):
    """(labels, scores): 0/1 labels holding both classes, tied scores of the same length."""
    extra = draw(st.lists(st.integers(0, 1), max_size=max_size - 2))
    labels = draw(st.permutations([0, 1] + extra))
    scores = draw(st.lists(tied_scores, min_size=len(labels), max_size=len(labels)))
    return labels, scores


@st.composite
def multi_class_cases(draw):
    """(labels, score_rows, C): every one of the C classes occurs at least once."""
    n_classes = draw(st.integers(2, 5))
    extra = draw(st.lists(st.integers(0, n_classes - 1), max_size=20))
    labels = draw(st.permutations(list(range(n_classes)) + extra))
    row = st.lists(tied_scores, min_size=n_classes, max_size=n_classes)
    rows = draw(st.lists(row, min_size=len(labels), max_size=len(labels)))
    return labels, rows, n_classes


@st.composite
def multi_label_cases(draw):
    """(label_rows, score_rows): N x L, each label column holding both 0 and 1."""
    n_labels = draw(st.integers(1, 4))
    n = draw(st.integers(2, 20))
    columns = []
    for _ in range(n_labels):
        extra = draw(st.lists(st.integers(0, 1), min_size=n - 2, max_size=n - 2))
        columns.append(draw(st.permutations([0, 1] + extra)))
    label_rows = [[columns[j][i] for j in range(n_labels)] for i in range(n)]
    row = st.lists(tied_scores, min_size=n_labels, max_size=n_labels)
    score_rows = draw(st.lists(row, min_size=n, max_size=n))
    return label_rows, score_rows


# ------------------------------------------------------------------------------------------
# auc and roc_curve
# ------------------------------------------------------------------------------------------


@given(binary_cases(), label_forms)
def test_auc_equals_pairwise_definition_with_ties(case, form):
    labels, scores = case
    got = auc(as_label_form(labels, form), np.array(scores))
    assert isinstance(got, float)
    assert got == pytest.approx(pairwise_auc(labels, scores), abs=1e-12)


@given(binary_cases())
def test_auc_of_negated_scores_is_one_minus_auc(case):
    labels, scores = case
    a = auc(labels, scores)
    assert auc(labels, [-s for s in scores]) == pytest.approx(1.0 - a, abs=1e-12)


@pytest.mark.parametrize(
    "labels, scores, expected",
    [
        # pos 0.35 beats 0.1, loses to 0.4; pos 0.8 beats both: 3 of 4 pairs.
        ([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], 3 / 4),
        # pos 0.5 ties neg 0.5 (1/2) and beats 0.2; pos 0.9 beats both: 3.5 of 4.
        ([0, 1, 0, 1], [0.5, 0.5, 0.2, 0.9], 3.5 / 4),
        ([0, 1, 0, 1], [0.3, 0.3, 0.3, 0.3], 1 / 2),  # all tied: chance
        ([1, 1, 0], [0.1, 0.2, 0.9], 0.0),  # every negative outscores every positive
        ([[0], [1]], [0.0, 1e-9], 1.0),  # (N, 1) labels; a tiny gap still counts
    ],
)
def test_auc_hand_computed(labels, scores, expected):
    assert auc(labels, scores) == pytest.approx(expected, abs=1e-12)


def trapezoid_area(x, y):
    area = 0.0
    for i in range(len(x) - 1):
        area += (x[i + 1] - x[i]) * (y[i + 1] + y[i]) / 2.0
    return area


@given(binary_cases())
def test_roc_curve_points_and_area(case):
    labels, scores = case
    fpr, tpr, thr = roc_curve(labels, scores)
    n_pos = sum(labels)
    n_neg = len(labels) - n_pos

    assert (fpr[0], tpr[0]) == (0.0, 0.0)
    assert (fpr[-1], tpr[-1]) == (1.0, 1.0)
    assert thr[0] == math.inf
    # One point per distinct score, thresholds in decreasing order.
    assert list(thr[1:]) == sorted(set(scores), reverse=True)
    assert len(fpr) == len(tpr) == len(thr)
    # Each point is (FPR, TPR) of the rule "positive iff score >= threshold".
    for f, t, th in zip(fpr, tpr, thr):
        true_pos = sum(1 for y, s in zip(labels, scores) if y == 1 and s >= th)
        false_pos = sum(1 for y, s in zip(labels, scores) if y == 0 and s >= th)
        assert t == pytest.approx(true_pos / n_pos)
        assert f == pytest.approx(false_pos / n_neg)
    # The trapezoid area is the AUC, ties included.
    area = trapezoid_area(fpr, tpr)
    assert area == pytest.approx(pairwise_auc(labels, scores), abs=1e-12)
    assert area == pytest.approx(auc(labels, scores), abs=1e-12)


def test_roc_curve_hand_computed():
    fpr, tpr, thr = roc_curve([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    np.testing.assert_allclose(thr, [np.inf, 0.8, 0.4, 0.35, 0.1])
    np.testing.assert_allclose(fpr, [0.0, 0.0, 0.5, 0.5, 1.0])
    np.testing.assert_allclose(tpr, [0.0, 0.5, 0.5, 1.0, 1.0])


# ------------------------------------------------------------------------------------------
# accuracy and confusion_matrix
# ------------------------------------------------------------------------------------------


@given(st.data())
def test_accuracy_matches_loop(data):
    n = data.draw(st.integers(1, 30))
    truth = data.draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))
    pred = data.draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))
    expected = loop_accuracy(truth, pred)
    assert accuracy(truth, pred) == pytest.approx(expected)
    # MedMNIST (N, 1) labels against (N,) predictions.
    assert accuracy(np.array(truth).reshape(-1, 1), np.array(pred)) == pytest.approx(expected)


def test_accuracy_hand_computed():
    assert accuracy([0, 1, 2, 2], [0, 2, 2, 1]) == 0.5


@given(st.data())
def test_confusion_matrix_matches_loop(data):
    n_classes = data.draw(st.integers(1, 5))
    n = data.draw(st.integers(1, 30))
    truth = data.draw(st.lists(st.integers(0, n_classes - 1), min_size=n, max_size=n))
    pred = data.draw(st.lists(st.integers(0, n_classes - 1), min_size=n, max_size=n))
    give_size = data.draw(st.booleans())

    size = n_classes if give_size else max(max(truth), max(pred)) + 1
    expected = [[0] * size for _ in range(size)]
    for t, p in zip(truth, pred):
        expected[t][p] += 1

    got = confusion_matrix(truth, pred, n_classes=n_classes if give_size else None)
    assert got.dtype == np.int64
    assert got.tolist() == expected


def test_confusion_matrix_hand_computed():
    got = confusion_matrix(np.array([[0], [1], [2], [2]]), [0, 2, 2, 1], n_classes=4)
    assert got.tolist() == [[1, 0, 0, 0], [0, 0, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]]


# ------------------------------------------------------------------------------------------
# medmnist_scores
# ------------------------------------------------------------------------------------------


@given(binary_cases(), thresholds, st.sampled_from(["(N, 2)", "(N,)", "(N, 1)"]), st.data())
def test_medmnist_binary_matches_definitions(case, threshold, score_form, data):
    labels, positive = case
    if score_form == "(N, 2)":
        # The first column must be ignored, whatever it holds.
        other = data.draw(st.lists(tied_scores, min_size=len(labels), max_size=len(labels)))
        y_score = np.array([other, positive]).T
    elif score_form == "(N,)":
        y_score = np.array(positive)
    else:
        y_score = np.array(positive).reshape(-1, 1)
    y_true = np.array(labels, dtype=np.uint8).reshape(-1, 1)

    got = medmnist_scores("binary-class", y_true, y_score, threshold=threshold)

    predicted = [1 if s > threshold else 0 for s in positive]
    assert set(got) == {"acc", "auc"}
    assert got["acc"] == pytest.approx(loop_accuracy(labels, predicted))
    assert got["auc"] == pytest.approx(pairwise_auc(labels, positive), abs=1e-12)


@given(multi_class_cases(), st.sampled_from(["multi-class", "ordinal-regression"]), st.booleans())
def test_medmnist_multi_class_matches_definitions(case, task, column_labels):
    labels, rows, n_classes = case
    y_true = np.array(labels, dtype=np.uint8)
    if column_labels:
        y_true = y_true.reshape(-1, 1)

    got = medmnist_scores(task, y_true, np.array(rows))

    per_class = []
    for c in range(n_classes):
        one_vs_rest = [1 if y == c else 0 for y in labels]
        per_class.append(pairwise_auc(one_vs_rest, [row[c] for row in rows]))
    expected_auc = sum(per_class) / n_classes
    expected_acc = loop_accuracy(labels, [first_argmax(row) for row in rows])
    assert got["auc"] == pytest.approx(expected_auc, abs=1e-12)
    assert got["acc"] == pytest.approx(expected_acc)


@given(multi_label_cases(), thresholds)
def test_medmnist_multi_label_matches_definitions(case, threshold):
    label_rows, score_rows = case
    n_labels = len(label_rows[0])

    got = medmnist_scores(
        "multi-label, binary-class", np.array(label_rows), np.array(score_rows), threshold
    )

    aucs, accs = [], []
    for j in range(n_labels):
        truth = [row[j] for row in label_rows]
        scores = [row[j] for row in score_rows]
        aucs.append(pairwise_auc(truth, scores))
        accs.append(loop_accuracy(truth, [1 if s > threshold else 0 for s in scores]))
    assert got["auc"] == pytest.approx(sum(aucs) / n_labels, abs=1e-12)
    assert got["acc"] == pytest.approx(sum(accs) / n_labels)


def test_medmnist_multi_class_hand_computed():
    y_true = np.array([[0], [1], [2], [2]], dtype=np.uint8)
    y_score = np.array(
        [
            [0.6, 0.3, 0.1],
            [0.2, 0.5, 0.3],
            [0.1, 0.2, 0.7],
            [0.4, 0.4, 0.2],  # argmax tie between classes 0 and 1 -> 0 (wrong: truth is 2)
        ]
    )
    # One-vs-rest AUCs: class 0: 3/3; class 1: 3/3; class 2: positives 0.7, 0.2 against
    # negatives 0.1, 0.3 win 3 of 4 pairs. Macro mean (1 + 1 + 0.75) / 3.
    got = medmnist_scores("multi-class", y_true, y_score)
    assert got["auc"] == pytest.approx(2.75 / 3)
    assert got["acc"] == pytest.approx(3 / 4)


def test_medmnist_binary_uses_last_column():
    got = medmnist_scores("binary-class", [0, 1, 0], [[0.9, 0.1], [0.1, 0.9], [0.8, 0.2]])
    assert got == {"acc": 1.0, "auc": 1.0}


def test_medmnist_threshold_is_strict():
    # A score equal to the threshold is predicted negative (score > threshold), as officially.
    got = medmnist_scores("binary-class", [0, 1], [[0.5, 0.5], [0.2, 0.8]])
    assert got["acc"] == 1.0
    got = medmnist_scores("multi-label, binary-class", [[0, 1], [1, 0]], [[0.5, 0.9], [0.7, 0.5]])
    assert got["acc"] == 1.0
    # ... and the threshold argument is used.
    got = medmnist_scores("binary-class", [0, 1], [0.3, 0.8], threshold=0.2)
    assert got["acc"] == 0.5


def test_medmnist_argmax_tie_goes_to_lowest_class():
    got = medmnist_scores("multi-class", [0, 1], [[0.5, 0.5], [0.2, 0.8]])
    assert got["acc"] == 1.0


# ------------------------------------------------------------------------------------------
# Errors: each raises ValueError with a message that names the problem
# ------------------------------------------------------------------------------------------

ERROR_CASES = [
    # auc
    ("auc length", lambda: auc([0, 1, 1], [0.1, 0.2]), r"same number of samples.*3.*2"),
    ("auc empty", lambda: auc([], []), r"y_true is empty"),
    ("auc nan", lambda: auc([0, 1], [0.1, np.nan]), r"y_score must be finite"),
    ("auc inf", lambda: auc([0, 1], [0.1, np.inf]), r"y_score must be finite"),
    ("auc labels", lambda: auc([0, 2], [0.1, 0.2]), r"only 0/1 labels.*\[2\]"),
    ("auc all pos", lambda: auc([1, 1], [0.1, 0.2]), r"undefined.*only one class.*positive"),
    ("auc all neg", lambda: auc([0, 0], [0.1, 0.2]), r"undefined.*only one class.*negative"),
    ("auc 2-D score", lambda: auc([0, 1], [[0.1, 0.2], [0.3, 0.4]]), r"y_score must have shape"),
    ("auc strings", lambda: auc(["a", "b"], [0.1, 0.2]), r"y_true must hold numbers"),
    ("roc one class", lambda: roc_curve([1, 1, 1], [0.1, 0.2, 0.3]), r"only one class"),
    ("roc labels", lambda: roc_curve([0, 1, -1], [0.1, 0.2, 0.3]), r"only 0/1 labels"),
    # accuracy
    ("acc shape", lambda: accuracy([0, 1], [0, 1, 1]), r"same shape.*\(2,\).*\(3,\)"),
    ("acc empty", lambda: accuracy([], []), r"empty"),
    # confusion_matrix
    (
        "cm negative",
        lambda: confusion_matrix([0, -1], [0, 0]),
        r"y_true must hold class labels >= 0",
    ),
    (
        "cm too large",
        lambda: confusion_matrix([0, 1], [0, 3], n_classes=3),
        r"y_pred has class label 3, out of range \[0, 3\)",
    ),
    ("cm length", lambda: confusion_matrix([0, 1], [0, 1, 1]), r"same number of samples"),
    ("cm fraction", lambda: confusion_matrix([0.5, 1.0], [0, 1]), r"whole-number"),
    (
        "cm n_classes",
        lambda: confusion_matrix([0], [0], n_classes=0),
        r"n_classes must be a positive",
    ),
    # medmnist_scores
    (
        "task typo",
        lambda: medmnist_scores("multiclass", [0, 1], [[0.1, 0.9], [0.8, 0.2]]),
        r"unknown task 'multiclass'.*valid tasks",
    ),
    (
        "absent class",
        lambda: medmnist_scores("multi-class", [0, 1, 1], np.eye(3)),
        r"class 2 does not occur in y_true",
    ),
    (
        "one class only",
        lambda: medmnist_scores("ordinal-regression", [0, 0], np.eye(2)),
        r"every sample of y_true is class 0",
    ),
    (
        "class out of range",
        lambda: medmnist_scores("multi-class", [0, 1, 3], np.eye(3)),
        r"class label 3, out of range \[0, 3\)",
    ),
    (
        "class not whole",
        lambda: medmnist_scores("multi-class", [0, 1.5], np.eye(2)),
        r"whole-number class labels",
    ),
    (
        "multi-class 1-D score",
        lambda: medmnist_scores("multi-class", [0, 1], [0.2, 0.8]),
        r"shape \(N, C\).*got shape \(2,\)",
    ),
    (
        "multi-class length",
        lambda: medmnist_scores("multi-class", [0, 1, 1], np.eye(2)),
        r"same number of samples",
    ),
    (
        "multi-class nan",
        lambda: medmnist_scores("multi-class", [0, 1], [[np.nan, 1.0], [0.0, 1.0]]),
        r"y_score must be finite",
    ),
    (
        "binary 3 columns",
        lambda: medmnist_scores("binary-class", [0, 1], np.eye(3)[:2]),
        r"\(N, 2\).*got shape \(2, 3\)",
    ),
    (
        "binary labels",
        lambda: medmnist_scores("binary-class", [0, 2], [0.1, 0.9]),
        r"only 0/1 labels",
    ),
    (
        "binary one class",
        lambda: medmnist_scores("binary-class", [1, 1], [0.1, 0.9]),
        r"undefined.*only one class",
    ),
    (
        "multi-label shapes",
        lambda: medmnist_scores("multi-label, binary-class", np.eye(2), np.eye(3)[:2]),
        r"same shape.*\(2, 2\).*\(2, 3\)",
    ),
    (
        "multi-label 1-D",
        lambda: medmnist_scores("multi-label, binary-class", [0, 1], [0.1, 0.9]),
        r"y_true must have shape \(N, L\)",
    ),
    (
        "multi-label constant column",
        lambda: medmnist_scores("multi-label, binary-class", [[0, 1], [1, 1]], np.ones((2, 2))),
        r"undefined for label 1.*only one class",
    ),
    (
        "threshold nan",
        lambda: medmnist_scores("binary-class", [0, 1], [0.1, 0.9], threshold=float("nan")),
        r"threshold must be finite",
    ),
    (
        "threshold string",
        lambda: medmnist_scores("binary-class", [0, 1], [0.1, 0.9], threshold="0.5"),
        r"threshold must be a real number",
    ),
]


@pytest.mark.parametrize(
    "call, message", [c[1:] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES]
)
def test_errors_name_the_problem(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_unknown_task_lists_every_valid_task():
    with pytest.raises(ValueError) as excinfo:
        medmnist_scores("regression", [0, 1], [0.1, 0.9])
    for task in ("binary-class", "multi-class", "multi-label, binary-class", "ordinal-regression"):
        assert repr(task) in str(excinfo.value)
    assert set(TASKS) == {
        "binary-class",
        "multi-class",
        "multi-label, binary-class",
        "ordinal-regression",
    }


def test_labels_where_the_task_belongs_get_a_short_error_that_names_the_order():
    """The official medmnist functions take the task last (getAUC(y_true, y_score, task)); the same
    call order here gets one line naming tinycnn's order, not the whole label array."""
    from tinycnn.metrics import bootstrap_ci, clinical_report

    y = np.tile([[0], [1]], (312, 1)).astype(np.uint8)         # 624 labels, like PneumoniaMNIST's test split
    p = np.full((624, 2), 0.5)
    calls = [(lambda: medmnist_scores(y, p, "binary-class"), "medmnist_scores(task, y_true, y_score)"),
             (lambda: clinical_report(y, p, y, p, "binary-class"), "clinical_report(task, y_val, p_val, y_test, p_test)")]
    for call, order in calls:
        with pytest.raises(ValueError) as info:
            call()
        message = str(info.value)
        assert f"got an array of shape (624, 1) (the task comes first: {order})" in message
        assert len(message) < 300 and "\n" not in message
    with pytest.raises(ValueError, match=r"got a list of 2 items \(the task comes first"):
        medmnist_scores([0, 1], [0.2, 0.8], "binary-class")
    with pytest.raises(ValueError, match=r"task must be one of 'binary-class'.*; got int 3$"):
        bootstrap_ci(y, p[:, 1], "auc", task=3)
    with pytest.raises(ValueError, match=r"got NoneType None$"):
        medmnist_scores(None, y, p)
