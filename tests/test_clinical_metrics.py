"""Tests for the clinical evaluation functions of tinycnn.metrics and plot.reliability_diagram.

Every expected value is computed here independently of the code under test: hand-worked cases,
and brute force written as plain Python loops (each threshold tried one by one, each sample
placed in its bin one by one, a hypothetical population of 1,000 people counted for Bayes'
rule, the bootstrap re-run as a simple loop with the seed semantics the docstring states).
Scores come from a handful of values so that ties are frequent.
"""

import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from matplotlib.figure import Figure

from tinycnn import plot
from tinycnn.metrics import (
    BootstrapCI,
    binary_operating_point,
    bootstrap_ci,
    clinical_report,
    expected_calibration_error,
    format_clinical_report,
    per_class_scores,
    ppv_npv_at_prevalence,
    reliability_curve,
    threshold_for_sensitivity,
    youden_threshold,
)

TIED = [0.0, 0.1, 0.25, 0.3, 0.5, 0.7, 0.75, 0.9, 1.0]


@st.composite
def binary_samples(draw, min_size=2, max_size=30):
    """(labels, scores) with at least one positive and one negative, scores from TIED."""
    n = draw(st.integers(min_size, max_size))
    y = draw(st.lists(st.sampled_from([0, 1]), min_size=n, max_size=n))
    y[0], y[1] = 0, 1
    s = draw(st.lists(st.sampled_from(TIED), min_size=n, max_size=n))
    return y, s


# ------------------------------------------------------------------------------------------
# Independent references
# ------------------------------------------------------------------------------------------


def loop_rates(labels, scores, t):
    """(sensitivity, specificity) of 'score >= t is positive', by counting in a loop."""
    tp = fn = tn = fp = 0
    for y, s in zip(labels, scores):
        if y == 1 and s >= t:
            tp += 1
        elif y == 1:
            fn += 1
        elif s >= t:
            fp += 1
        else:
            tn += 1
    sens = tp / (tp + fn) if tp + fn else float("nan")
    spec = tn / (tn + fp) if tn + fp else float("nan")
    return sens, spec


def loop_bins(confidences, outcomes, n_bins):
    """Per-bin lists of (confidence, outcome): bin m holds m/M < c <= (m+1)/M, c = 0 in bin 0."""
    members = [[] for _ in range(n_bins)]
    for c, o in zip(confidences, outcomes):
        for m in range(n_bins):
            low, high = m / n_bins, (m + 1) / n_bins
            if low < c <= high or (m == 0 and c == 0):
                members[m].append((c, o))
                break
    return members


def loop_ece(confidences, outcomes, n_bins):
    total = 0.0
    for bucket in loop_bins(confidences, outcomes, n_bins):
        if bucket:
            conf = sum(c for c, _ in bucket) / len(bucket)
            acc = sum(o for _, o in bucket) / len(bucket)
            total += len(bucket) / len(confidences) * abs(acc - conf)
    return total


def linear_quantile(sorted_values, q):
    """numpy's default ('linear') quantile by hand: position q·(n−1) between order statistics."""
    h = q * (len(sorted_values) - 1)
    lo = math.floor(h)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (h - lo) * (sorted_values[hi] - sorted_values[lo])


def loop_bootstrap(y, s, metric, resamples, level, seed):
    """The docstring's procedure, written as a plain loop."""
    rng = np.random.default_rng(seed)
    n = len(y)
    classes = set(np.asarray(y).ravel().tolist()) if np.ndim(y) == 1 else None
    values, redrawn = [], 0
    while len(values) < resamples:
        idx = rng.integers(0, n, size=n)
        if np.ndim(y) == 1:
            ok = set(y[i] for i in idx) == classes
        else:  # multi-label: each column keeps the values it has
            ok = all(set(y[idx, j].tolist()) == set(y[:, j].tolist()) for j in range(y.shape[1]))
        if not ok:
            redrawn += 1
            continue
        values.append(metric(y[idx], s[idx]))
    values.sort()
    return (linear_quantile(values, (1 - level) / 2), linear_quantile(values, (1 + level) / 2),
            redrawn)


def pairwise_auc(labels, scores):
    pos = [s for y, s in zip(labels, scores) if y == 1]
    neg = [s for y, s in zip(labels, scores) if y == 0]
    wins = sum(1.0 if p > q else 0.5 if p == q else 0.0 for p in pos for q in neg)
    return wins / (len(pos) * len(neg))


# ------------------------------------------------------------------------------------------
# Thresholds chosen on validation
# ------------------------------------------------------------------------------------------


def test_threshold_for_sensitivity_by_hand():
    y = [1, 1, 1, 1, 0, 0]
    p = [0.9, 0.8, 0.7, 0.6, 0.95, 0.2]
    assert threshold_for_sensitivity(y, p, 0.75) == 0.7     # 3 of 4 positives at >= 0.7
    assert threshold_for_sensitivity(y, p, 0.76) == 0.6     # 3/4 < 0.76: all four needed
    assert threshold_for_sensitivity(y, p, 1.0) == 0.6
    assert threshold_for_sensitivity(y, p, 0.25) == 0.9
    assert threshold_for_sensitivity(y, p, 0.5) == 0.8
    # (N, 2) probabilities: the last column is p(positive)
    probs = np.stack([1 - np.array(p), p], axis=1)
    assert threshold_for_sensitivity(np.array(y)[:, None], probs, 0.75) == pytest.approx(0.7)


def test_threshold_for_sensitivity_with_tied_positives():
    # Two positives share 0.5: at t = 0.5 both count, so sensitivity jumps from 1/4 to 3/4.
    y = [1, 1, 1, 1, 0]
    p = [0.9, 0.5, 0.5, 0.1, 0.4]
    assert threshold_for_sensitivity(y, p, 0.5) == 0.5
    assert threshold_for_sensitivity(y, p, 0.75) == 0.5
    assert threshold_for_sensitivity(y, p, 0.8) == 0.1


@given(binary_samples(), st.sampled_from([0.1, 0.5, 0.8, 0.9, 0.95, 1.0]))
def test_threshold_for_sensitivity_is_the_largest_reaching_the_target(sample, target):
    y, s = sample
    t = threshold_for_sensitivity(y, s, target)
    # brute force: every distinct score, high to low; the first whose sensitivity reaches it
    expected = next(c for c in sorted(set(s), reverse=True) if loop_rates(y, s, c)[0] >= target)
    assert t == expected
    assert loop_rates(y, s, t)[0] >= target
    assert loop_rates(y, s, np.nextafter(t, np.inf))[0] < target   # any higher t misses it


def test_youden_threshold_by_hand():
    y = [0, 0, 0, 1, 1, 1]
    p = [0.1, 0.4, 0.6, 0.35, 0.8, 0.9]
    # t=0.8: 2/3 - 0 = .667; t=0.6: 2/3 - 1/3; t=0.35: 1 - 1/3 = .667; tie -> larger, 0.8
    assert youden_threshold(y, p) == 0.8
    assert youden_threshold([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 0.3   # perfect split: J = 1


@given(binary_samples())
def test_youden_threshold_matches_brute_force(sample):
    y, s = sample
    best_t, best_j = None, -2.0
    for c in sorted(set(s), reverse=True):      # high to low: strict > keeps the largest on ties
        sens, spec = loop_rates(y, s, c)
        if sens + spec - 1 > best_j + 1e-12:
            best_t, best_j = c, sens + spec - 1
    assert youden_threshold(y, s) == best_t


def test_threshold_errors_name_the_argument():
    with pytest.raises(ValueError, match="no positive"):
        threshold_for_sensitivity([0, 0], [0.1, 0.2])
    with pytest.raises(ValueError, match="sensitivity"):
        threshold_for_sensitivity([0, 1], [0.1, 0.2], 0.0)
    with pytest.raises(ValueError, match="sensitivity"):
        threshold_for_sensitivity([0, 1], [0.1, 0.2], 1.5)
    with pytest.raises(TypeError, match="sensitivity"):
        threshold_for_sensitivity([0, 1], [0.1, 0.2], True)
    with pytest.raises(ValueError, match="p_val"):
        threshold_for_sensitivity([0, 1], [0.1, np.nan])
    with pytest.raises(ValueError, match="y_val"):
        threshold_for_sensitivity([0, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match="same number"):
        youden_threshold([0, 1, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match="only one class"):
        youden_threshold([1, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match="p_val"):
        youden_threshold([0, 1], np.zeros((2, 3)))


# ------------------------------------------------------------------------------------------
# Operating point, and PPV / NPV by Bayes' rule
# ------------------------------------------------------------------------------------------


def test_binary_operating_point_by_hand():
    y = [1, 1, 1, 0, 0, 0, 0, 1]
    p = [0.9, 0.6, 0.3, 0.7, 0.2, 0.1, 0.6, 0.6]
    op = binary_operating_point(y, p, 0.6)   # >= 0.6: samples 0, 1, 3, 6, 7
    assert (op["tp"], op["fp"], op["tn"], op["fn"]) == (3, 2, 2, 1)
    assert (op["n"], op["positives"], op["negatives"]) == (8, 4, 4)
    assert op["sensitivity"] == 3 / 4 and op["specificity"] == 2 / 4
    assert op["ppv"] == 3 / 5 and op["npv"] == 2 / 3
    assert op["accuracy"] == 5 / 8 and op["prevalence"] == 4 / 8
    assert op["threshold"] == 0.6


def test_binary_operating_point_undefined_ratios_are_nan():
    op = binary_operating_point([0, 1, 1], [0.1, 0.2, 0.3], 0.5)     # nobody called positive
    assert math.isnan(op["ppv"]) and op["sensitivity"] == 0 and op["npv"] == 1 / 3
    op = binary_operating_point([1, 1], [0.1, 0.9], 0.5)             # no negatives at all
    assert math.isnan(op["specificity"]) and math.isnan(op["npv"]) is False
    with pytest.raises(TypeError, match="threshold"):
        binary_operating_point([0, 1], [0.1, 0.9], "0.5")
    with pytest.raises(ValueError, match="threshold"):
        binary_operating_point([0, 1], [0.1, 0.9], np.inf)


def test_ppv_npv_at_prevalence_by_counting_a_population():
    # 1,000 people, prevalence 10 %: 100 ill, 900 well. Sensitivity 0.9 finds 90 of the ill;
    # specificity 0.8 clears 720 of the well, so 180 healthy people are called positive.
    ppv, npv = ppv_npv_at_prevalence(0.9, 0.8, 0.1)
    assert ppv == pytest.approx(90 / (90 + 180))
    assert npv == pytest.approx(720 / (720 + 10))
    # the same test where half the people are ill
    ppv, npv = ppv_npv_at_prevalence(0.9, 0.8, 0.5)
    assert ppv == pytest.approx(450 / (450 + 100)) and npv == pytest.approx(400 / (400 + 50))


@given(binary_samples(min_size=4), st.sampled_from(TIED[1:-1]))
def test_bayes_at_the_observed_prevalence_equals_the_counted_ppv_and_npv(sample, t):
    y, s = sample
    op = binary_operating_point(y, s, t)
    ppv, npv = ppv_npv_at_prevalence(op["sensitivity"], op["specificity"], op["prevalence"])
    for got, counted in ((ppv, op["ppv"]), (npv, op["npv"])):
        if math.isnan(counted):
            assert math.isnan(got)
        else:
            assert got == pytest.approx(counted, abs=1e-12)


def test_ppv_npv_at_prevalence_vectorised_and_edge_cases():
    prevalence = np.array([0.0, 0.01, 0.1, 0.5, 1.0])
    ppv, npv = ppv_npv_at_prevalence(0.95, 0.9, prevalence)
    assert ppv.shape == npv.shape == (5,)
    assert ppv[0] == 0 and npv[0] == 1 and ppv[-1] == 1 and npv[-1] == 0
    assert np.all(np.diff(ppv) > 0) and np.all(np.diff(npv) < 0)    # PPV rises, NPV falls
    for pi, a, b in zip(prevalence, ppv, npv):
        assert (a, b) == pytest.approx(ppv_npv_at_prevalence(0.95, 0.9, float(pi)))
    ppv, npv = ppv_npv_at_prevalence(0.0, 1.0, 0.3)                  # never positive
    assert math.isnan(ppv) and npv == pytest.approx(0.7)
    with pytest.raises(ValueError, match="prevalence"):
        ppv_npv_at_prevalence(0.9, 0.9, 1.2)
    with pytest.raises(ValueError, match="sensitivity"):
        ppv_npv_at_prevalence(np.nan, 0.9, 0.1)
    with pytest.raises(ValueError, match="specificity"):
        ppv_npv_at_prevalence(0.9, "high", 0.1)
    with pytest.raises(TypeError, match="sensitivity"):
        ppv_npv_at_prevalence(True, 0.9, 0.1)


# ------------------------------------------------------------------------------------------
# Calibration
# ------------------------------------------------------------------------------------------


def test_ece_binary_by_hand():
    y = [0, 0, 1, 0]
    p = [0.05, 0.15, 0.95, 0.85]       # one sample in each of bins 0, 1, 9, 8
    expected = (0.05 + 0.15 + 0.05 + 0.85) / 4
    assert expected_calibration_error(y, p) == pytest.approx(expected)
    # (N, 2) probabilities give the same (the last column is p(positive))
    probs = np.stack([1 - np.array(p), p], axis=1)
    assert expected_calibration_error(y, probs) == pytest.approx(expected)
    # one bin: |mean outcome - mean p| = |1/4 - 0.5|
    assert expected_calibration_error(y, p, bins=1) == pytest.approx(0.25)


def test_bin_edges_follow_the_definition():
    # 0.3 belongs to (0.2, 0.3], 0 to the first bin, 1 to the last
    curve = reliability_curve([0, 1, 1, 0], [0.3, 0.0, 1.0, 0.2], bins=10)
    assert curve["count"].tolist() == [1, 1, 1, 0, 0, 0, 0, 0, 0, 1]   # 0.0, 0.2, 0.3, 1.0
    assert curve["confidence"][2] == 0.3 and curve["confidence"][1] == 0.2
    assert curve["edges"].tolist() == [m / 10 for m in range(11)]
    assert math.isnan(curve["confidence"][4]) and math.isnan(curve["accuracy"][4])
    assert curve["kind"] == "positive"


@given(st.integers(1, 40), st.sampled_from([1, 2, 3, 5, 10, 15]), st.integers(0, 2**16))
def test_reliability_curve_and_ece_binary_match_loops(n, n_bins, seed):
    rng = np.random.default_rng(seed)
    p = rng.choice(TIED + [0.05, 0.55, 0.95], size=n)
    y = rng.integers(0, 2, size=n)
    curve = reliability_curve(y, p, n_bins)
    for m, bucket in enumerate(loop_bins(p, y, n_bins)):
        assert curve["count"][m] == len(bucket)
        if bucket:
            assert curve["confidence"][m] == pytest.approx(sum(c for c, _ in bucket) / len(bucket))
            assert curve["accuracy"][m] == pytest.approx(sum(o for _, o in bucket) / len(bucket))
    assert expected_calibration_error(y, p, n_bins) == pytest.approx(loop_ece(p, y, n_bins))


def test_ece_top_label_by_hand():
    probs = np.array([[0.7, 0.2, 0.1],    # predicts 0, right; confidence 0.7
                      [0.1, 0.6, 0.3],    # predicts 1, wrong;             0.6
                      [0.2, 0.2, 0.6],    # predicts 2, right;             0.6
                      [0.4, 0.4, 0.2]])   # tie 0/1 -> 0, wrong;           0.4
    y = [0, 2, 2, 1]
    # bins of 0.1: 0.7 in (0.6, 0.7]; 0.6, 0.6 in (0.5, 0.6]; 0.4 in (0.3, 0.4]
    expected = (1 * abs(1 - 0.7) + 2 * abs(0.5 - 0.6) + 1 * abs(0 - 0.4)) / 4
    assert expected_calibration_error(y, probs) == pytest.approx(expected)
    assert reliability_curve(y, probs)["kind"] == "top-label"
    # binary inputs with kind="top-label": confidence max(p, 1-p), prediction p > 0.5
    y2, p2 = [1, 0, 0], [0.8, 0.3, 0.6]      # right (0.8), right (0.7), wrong (0.6)
    assert expected_calibration_error(y2, p2, kind="top-label") == pytest.approx(
        (abs(1 - 0.8) + abs(1 - 0.7) + abs(0 - 0.6)) / 3)


@given(st.integers(1, 30), st.integers(3, 5), st.integers(0, 2**16))
def test_top_label_ece_matches_loops(n, n_classes, seed):
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(n_classes), size=n)
    y = rng.integers(0, n_classes, size=n)
    conf, correct = [], []
    for row, label in zip(probs, y):
        best = 0
        for k in range(n_classes):
            if row[k] > row[best]:
                best = k
        conf.append(row[best])
        correct.append(1.0 if best == label else 0.0)
    assert expected_calibration_error(y, probs, 10) == pytest.approx(loop_ece(conf, correct, 10))


def test_perfectly_calibrated_bins_have_zero_ece():
    # in the bin of 0.25: 1 of 4 positive; in the bin of 0.75: 3 of 4
    y = [1, 0, 0, 0, 1, 1, 1, 0]
    p = [0.25] * 4 + [0.75] * 4
    assert expected_calibration_error(y, p) == pytest.approx(0.0, abs=1e-15)


def test_calibration_bad_input():
    with pytest.raises(ValueError, match="y_prob"):
        expected_calibration_error([0, 1], [0.5, 1.5])       # a logit, not a probability
    with pytest.raises(ValueError, match="sum to 1"):
        expected_calibration_error([0, 1], [[0.5, 0.6], [0.5, 0.5]])
    with pytest.raises(ValueError, match="kind"):
        expected_calibration_error([0, 1], [0.5, 0.5], kind="max")
    with pytest.raises(ValueError, match="top-label"):
        expected_calibration_error([0, 1, 2], np.full((3, 3), 1 / 3), kind="positive")
    with pytest.raises(ValueError, match="bins"):
        expected_calibration_error([0, 1], [0.5, 0.5], bins=0)
    with pytest.raises(TypeError, match="bins"):
        expected_calibration_error([0, 1], [0.5, 0.5], bins=2.5)
    with pytest.raises(ValueError, match="y_true"):
        expected_calibration_error([0, 3], [0.5, 0.5])
    with pytest.raises(ValueError, match="same number"):
        expected_calibration_error([0, 1, 1], [0.5, 0.5])


# ------------------------------------------------------------------------------------------
# Per-class scores
# ------------------------------------------------------------------------------------------


def test_per_class_scores_against_a_hand_worked_confusion_matrix():
    y_true = [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]
    y_pred = [0, 0, 1, 2, 1, 1, 0, 2, 2, 1]
    # confusion matrix [true, pred]:
    #      0  1  2
    # 0 [  2  1  1 ]
    # 1 [  1  2  0 ]
    # 2 [  0  1  2 ]
    scores = per_class_scores(y_true, y_pred)
    assert scores["confusion_matrix"].tolist() == [[2, 1, 1], [1, 2, 0], [0, 1, 2]]
    assert scores["precision"] == pytest.approx([2 / 3, 2 / 4, 2 / 3])   # column sums 3, 4, 3
    assert scores["recall"] == pytest.approx([2 / 4, 2 / 3, 2 / 3])      # row sums 4, 3, 3
    f1 = [2 * 2 / (2 * 2 + 1 + 2), 2 * 2 / (2 * 2 + 2 + 1), 2 * 2 / (2 * 2 + 1 + 1)]
    assert scores["f1"] == pytest.approx(f1)
    assert scores["support"].tolist() == [4, 3, 3]
    assert scores["macro_f1"] == pytest.approx(sum(f1) / 3)


def test_per_class_scores_from_probabilities_and_undefined_values():
    probs = np.array([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.5, 0.5, 0.0], [0.1, 0.8, 0.1]])
    scores = per_class_scores([0, 1, 1, 1], probs)        # predictions 0, 1, 0 (tie), 1
    assert scores["confusion_matrix"].tolist() == [[1, 0, 0], [1, 2, 0], [0, 0, 0]]
    assert scores["precision"][:2] == pytest.approx([1 / 2, 1.0])
    assert math.isnan(scores["precision"][2])             # class 2 never predicted
    assert math.isnan(scores["recall"][2])                # ... and never present
    assert math.isnan(scores["f1"][2]) and math.isnan(scores["macro_f1"])
    # a class present but never predicted: precision NaN, recall 0, F1 0
    scores = per_class_scores([0, 1, 2], [0, 1, 1])
    assert math.isnan(scores["precision"][2]) and scores["recall"][2] == 0 and scores["f1"][2] == 0
    with pytest.raises(ValueError, match="n_classes"):
        per_class_scores([0, 1], probs[:2], n_classes=2)
    with pytest.raises(ValueError, match="y_pred"):
        per_class_scores([0, 1], [0, -1])


# ------------------------------------------------------------------------------------------
# Bootstrap intervals
# ------------------------------------------------------------------------------------------


def test_bootstrap_auc_matches_a_plain_loop_with_the_documented_seed_semantics():
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, size=60)
    s = np.round(rng.random(60) + 0.4 * y, 1)             # rounded: many ties
    ci = bootstrap_ci(y, s, "auc", resamples=200, level=0.9, seed=3)
    low, high, redrawn = loop_bootstrap(y, s, pairwise_auc, 200, 0.9, 3)
    assert ci.low == pytest.approx(low, abs=1e-12) and ci.high == pytest.approx(high, abs=1e-12)
    assert ci.redrawn == redrawn == 0
    assert ci.estimate == pytest.approx(pairwise_auc(y, s))
    assert (ci.level, ci.resamples) == (0.9, 200)
    assert isinstance(ci, BootstrapCI) and ci.low <= ci.estimate <= ci.high


def test_bootstrap_redraws_resamples_that_lack_a_class_and_counts_them():
    # one positive among six: a resample misses it with probability (5/6)^6 = 0.33
    y = np.array([0, 0, 0, 0, 0, 1])
    s = np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.7])
    ci = bootstrap_ci(y, s, "auc", resamples=300, seed=11)
    low, high, redrawn = loop_bootstrap(y, s, pairwise_auc, 300, 0.95, 11)
    assert ci.redrawn == redrawn and 60 < redrawn < 250   # about 300 · 0.33 / 0.67 = 150
    assert (ci.low, ci.high) == pytest.approx((low, high))
    assert ci.resamples == 300


def test_bootstrap_acc_is_close_to_the_binomial_normal_approximation():
    rng = np.random.default_rng(0)
    n = 2000
    y = rng.integers(0, 2, size=n)
    right = rng.random(n) < 0.8                           # 80 % of predictions correct
    score = np.where(right, y, 1 - y) * 0.6 + 0.2         # 0.8 for predicted 1, 0.2 for 0
    ci = bootstrap_ci(y, score, "acc", resamples=1000, seed=0)
    acc = np.mean(right)
    half = 1.96 * math.sqrt(acc * (1 - acc) / n)
    assert ci.estimate == pytest.approx(acc)
    assert ci.low == pytest.approx(acc - half, abs=0.004)
    assert ci.high == pytest.approx(acc + half, abs=0.004)


def test_bootstrap_perfect_and_multiclass_and_callable():
    y = np.array([0, 0, 0, 1, 1, 1])
    ci = bootstrap_ci(y, [0.1, 0.2, 0.3, 0.7, 0.8, 0.9], resamples=50)
    assert (ci.estimate, ci.low, ci.high) == (1.0, 1.0, 1.0)
    # multi-class AUC: every class must be in every resample
    rng = np.random.default_rng(1)
    y3 = np.repeat([0, 1, 2], 4)
    probs = rng.dirichlet(np.ones(3), size=12)
    ci = bootstrap_ci(y3, probs, "auc", resamples=100, seed=5, task="multi-class")

    def macro_auc(labels, scores):
        return np.mean([pairwise_auc((labels == c).astype(int), scores[:, c]) for c in range(3)])

    low, high, redrawn = loop_bootstrap(y3, probs, macro_auc, 100, 0.95, 5)
    assert (ci.low, ci.high, ci.redrawn) == (pytest.approx(low), pytest.approx(high), redrawn)
    # a function as the metric; a Generator as the seed
    mean_score = bootstrap_ci(y, np.arange(6.0), lambda t, s: float(np.mean(s)), resamples=100,
                              seed=np.random.default_rng(2))
    low, high, _ = loop_bootstrap(y, np.arange(6.0), lambda t, s: float(np.mean(s)), 100, 0.95, 2)
    assert (mean_score.low, mean_score.high) == pytest.approx((low, high))
    assert mean_score.estimate == 2.5


def test_bootstrap_multilabel_redraw_rule_and_the_too_one_sided_error():
    y = np.array([[0, 1], [1, 0], [0, 0], [1, 1], [0, 1], [1, 0]])
    s = np.linspace(0.05, 0.95, 12).reshape(6, 2)
    ci = bootstrap_ci(y, s, "auc", resamples=80, seed=4, task="multi-label, binary-class")
    low, high, redrawn = loop_bootstrap(
        y, s, lambda t, sc: np.mean([pairwise_auc(t[:, j], sc[:, j]) for j in range(2)]),
        80, 0.95, 4)
    assert (ci.low, ci.high, ci.redrawn) == (pytest.approx(low), pytest.approx(high), redrawn)
    # eight labels with one positive each: nearly every resample misses one
    rare = np.zeros((8, 8), dtype=int)
    np.fill_diagonal(rare, 1)
    with pytest.raises(ValueError, match="too few samples"):
        bootstrap_ci(rare, rare * 0.9, "auc", resamples=20, task="multi-label, binary-class")


def test_bootstrap_bad_input():
    y, s = [0, 1, 0, 1], [0.1, 0.9, 0.2, 0.8]
    with pytest.raises(ValueError, match="metric"):
        bootstrap_ci(y, s, "f1")
    with pytest.raises(TypeError, match="metric"):
        bootstrap_ci(y, s, 3)
    with pytest.raises(ValueError, match="level"):
        bootstrap_ci(y, s, level=1.0)
    with pytest.raises(ValueError, match="resamples"):
        bootstrap_ci(y, s, resamples=0)
    with pytest.raises(TypeError, match="seed"):
        bootstrap_ci(y, s, seed=1.5)
    with pytest.raises(ValueError, match="task"):
        bootstrap_ci(y, s, task="binary")
    with pytest.raises(ValueError, match="only one class"):
        bootstrap_ci([1, 1, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="same number"):
        bootstrap_ci(y, s[:3])
    with pytest.raises(ValueError, match="finite number"):
        bootstrap_ci(y, s, lambda t, sc: float("nan"))


# ------------------------------------------------------------------------------------------
# The report
# ------------------------------------------------------------------------------------------


def _binary_split(seed, n):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    p = np.clip(rng.normal(0.35 + 0.3 * y, 0.18), 0, 1)
    return y[:, None], np.stack([1 - p, p], axis=1)      # MedMNIST shapes: (N, 1) and (N, 2)


def test_clinical_report_binary_is_json_and_agrees_with_the_parts():
    y_val, p_val = _binary_split(0, 300)
    y_test, p_test = _binary_split(1, 400)
    report = clinical_report("binary-class", y_val, p_val, y_test, p_test, sensitivity=0.9,
                             prevalence=0.05, resamples=200, seed=3)
    assert json.loads(json.dumps(report, allow_nan=False)) == report
    assert report["test"]["auc"] == pytest.approx(pairwise_auc(y_test[:, 0], p_test[:, 1]))
    t = threshold_for_sensitivity(y_val, p_val, 0.9)
    point = report["operating_points"]["sensitivity_target"]
    assert point["threshold"] == t and point["validation"]["sensitivity"] >= 0.9
    assert point["test"] == binary_operating_point(y_test, p_test, t)
    assert report["operating_points"]["youden"]["threshold"] == youden_threshold(y_val, p_val)
    se, sp = point["test"]["sensitivity"], point["test"]["specificity"]
    ppv, npv = ppv_npv_at_prevalence(se, sp, 0.05)
    assert report["at_prevalence"] == {"prevalence": 0.05, "ppv": ppv, "npv": npv,
                                       "from": "sensitivity_target operating point on test"}
    ci = bootstrap_ci(y_test, p_test, "auc", resamples=200, seed=3)
    assert (report["test_ci"]["auc"]["low"], report["test_ci"]["auc"]["high"]) == (ci.low, ci.high)
    assert report["calibration"]["ece"] == pytest.approx(expected_calibration_error(y_test, p_test))
    assert sum(report["calibration"]["count"]) == 400
    assert None in report["calibration"]["confidence"] or all(report["calibration"]["count"])
    text = format_clinical_report(report)
    assert f"{report['test']['auc']:.3f}" in text and "PPV" in text and "ECE" in text


def test_clinical_report_multiclass_and_multilabel():
    rng = np.random.default_rng(2)
    y = np.repeat(np.arange(4), 25)
    probs = rng.dirichlet(np.ones(4), size=100)
    probs[np.arange(100), y] += 1.0
    probs /= probs.sum(axis=1, keepdims=True)
    report = clinical_report("multi-class", y, probs, y, probs, resamples=50)
    json.dumps(report, allow_nan=False)
    scores = per_class_scores(y, probs)
    assert report["per_class"]["f1"] == pytest.approx(scores["f1"].tolist())
    assert report["macro_f1"] == pytest.approx(scores["macro_f1"])
    assert report["calibration"]["kind"] == "top-label" and "operating_points" not in report
    assert "class 3" in format_clinical_report(report)

    y_ml = rng.integers(0, 2, size=(60, 3))
    s_ml = rng.random((60, 3))
    report = clinical_report("multi-label, binary-class", y_ml, s_ml, y_ml, s_ml, resamples=30)
    assert set(report) == {"task", "n_validation", "n_test", "validation", "test", "test_ci",
                           "per_label", "not_applicable"}
    json.dumps(report, allow_nan=False)


def test_a_multilabel_report_gives_each_label_and_says_what_it_leaves_out():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, size=(40, 3))
    s = np.round(rng.random((40, 3)), 1)                   # one decimal: ties, and scores of exactly 0.5
    report = clinical_report("multi-label, binary-class", y, s, y, s, resamples=20)
    for j in range(3):
        assert report["per_label"]["auc"][j] == pytest.approx(pairwise_auc(y[:, j], s[:, j]))
        right = sum(1 for i in range(40) if (s[i, j] > 0.5) == (y[i, j] == 1))   # official rule: > 0.5
        assert report["per_label"]["acc"][j] == pytest.approx(right / 40)
        assert report["per_label"]["positives"][j] == sum(int(v) for v in y[:, j])
    assert not {"operating_points", "at_prevalence", "calibration", "per_class"} & set(report)
    for left_out in ("threshold", "PPV/NPV", "calibration", "per-class"):
        assert left_out in report["not_applicable"]
    text = format_clinical_report(report, names=["effusion", "mass", "nodule"])
    assert f"mass: AUC {report['per_label']['auc'][1]:.3f}" in text and "not computed:" in text


def test_format_clinical_report_brief_shows_only_the_test_rows_and_uses_names():
    y_val, p_val = _binary_split(0, 300)
    y_test, p_test = _binary_split(1, 400)
    report = clinical_report("binary-class", y_val, p_val, y_test, p_test, prevalence=0.1, resamples=50)
    full = format_clinical_report(report)
    brief = format_clinical_report(report, brief=True)
    assert full.count("validation  sensitivity") == 2 and "validation  sensitivity" not in brief
    assert brief.count("test        sensitivity") == 2 == full.count("test        sensitivity")
    assert "seed 0" in brief and "50 bootstrap resamples" in brief
    y = np.repeat(np.arange(3), 10)
    probs = np.eye(3)[y] * 0.7 + 0.1
    named = format_clinical_report(clinical_report("multi-class", y, probs, y, probs, resamples=10),
                                   names=["a", "b", "c"])
    assert "c: precision 1.000  recall 1.000  F1 1.000  (n=10)" in named


def test_clinical_report_bad_input():
    y, p = _binary_split(0, 50)
    with pytest.raises(ValueError, match="task"):
        clinical_report("binary", y, p, y, p)
    with pytest.raises(ValueError, match="prevalence"):
        clinical_report("binary-class", y, p, y, p, prevalence=2.0)
    with pytest.raises(TypeError, match="seed"):
        clinical_report("binary-class", y, p, y, p, seed=np.random.default_rng(0))
    with pytest.raises(ValueError, match="report"):
        format_clinical_report({"auc": 0.9})


# ------------------------------------------------------------------------------------------
# The reliability diagram
# ------------------------------------------------------------------------------------------


def test_reliability_diagram_draws_one_bar_per_non_empty_bin(tmp_path):
    y = [0, 0, 1, 0, 1, 1, 1]
    p = [0.05, 0.12, 0.15, 0.55, 0.58, 0.93, 0.99]       # bins 0, 1, 1, 5, 5, 9, 9
    fig = plot.reliability_diagram(y, p, bins=10)
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    ax = fig.axes[0]
    observed, gaps = ax.containers[0], ax.containers[1]
    assert len(observed) == len(gaps) == 4
    heights = [bar.get_height() for bar in observed]
    assert heights == pytest.approx([0.0, 0.5, 0.5, 1.0])
    assert [bar.get_x() for bar in observed] == pytest.approx([0.0, 0.1, 0.5, 0.9])
    # each gap bar spans observed frequency <-> mean confidence (0.05, 0.135, 0.565, 0.96)
    spans = [(bar.get_y(), bar.get_y() + bar.get_height()) for bar in gaps]
    expected = [(0.0, 0.05), (0.135, 0.5), (0.5, 0.565), (0.96, 1.0)]
    assert spans == [pytest.approx(s) for s in expected]
    assert all(bar.get_height() >= 0 for bar in gaps)
    assert f"ECE {expected_calibration_error(y, p):.3f}" in ax.get_legend().get_title().get_text()
    # five bins: 0.05, 0.12, 0.15 share the first
    assert len(plot.reliability_diagram(y, p, bins=5).axes[0].containers[0]) == 3
    written = plot.reliability_diagram(y, p, path=tmp_path / "rel.png")
    assert written == tmp_path / "rel.png" and written.stat().st_size > 1000


def test_reliability_diagram_into_given_axes_and_top_label():
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = Figure()
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2)
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.2, 0.2, 0.6]])
    returned = plot.reliability_diagram([0, 2, 2], probs, ax=right, title="three classes")
    assert returned is fig and len(right.containers[0]) == 2 and not left.containers
    assert right.get_ylabel() == "accuracy of the top class"
    with pytest.raises(ValueError, match="y_prob"):
        plot.reliability_diagram([0, 1], [0.2, 1.7])


def test_youden_ties_that_floats_break_still_go_to_the_largest_threshold():
    # 9 positives, 9 negatives. t=0.25: 4/9 - 0/9; t=0.1: 5/9 - 1/9 — equal J, but in floats
    # 5/9 - 1/9 is one ulp above 4/9. The documented rule sends the tie to the larger threshold.
    y = [0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1]
    s = [0.0, 0.1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.1, 0.0, 0.0, 0.0, 0.0, 0.25, 0.25, 0.25, 0.25]
    assert 5 / 9 - 1 / 9 != 4 / 9                      # the float trap this test is about
    assert youden_threshold(y, s) == 0.25
