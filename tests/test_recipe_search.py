"""benchmarks/recipe_search.py: the selection rule on hand-worked scores, and no test number of a
candidate in what the search keeps (real BreastMNIST)."""

import json
from pathlib import Path

import pytest

from tinycnn.medmnist_job import train, with_overrides

from .conftest import load_script

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "recipe_search.py"


@pytest.fixture(scope="module")
def search():
    return load_script(SCRIPT)


def test_highest_mean_auc_wins_and_ties_go_to_acc(search):
    scores = {"a": {"auc": 0.9000, "acc": 0.80}, "b": {"auc": 0.9008, "acc": 0.79},
              "c": {"auc": 0.9015, "acc": 0.70}, "d": {"auc": 0.8990, "acc": 0.99}}
    # best 0.9015 (c); b is within 0.001 of it, a (0.0015 below) and d are not; b has the higher ACC
    assert search.choose(scores) == "b"
    assert search.choose(scores, tie=0.0) == "c"
    assert search.choose(scores, tie=0.01) == "d"       # all tied: the highest ACC
    with pytest.raises(ValueError):
        search.choose({})


def test_score_is_the_mean_over_datasets_of_the_mean_over_seeds(search):
    runs = [{"dataset": "x", "val": {"auc": 0.8, "acc": 0.5}}, {"dataset": "x", "val": {"auc": 0.9, "acc": 0.7}},
            {"dataset": "y", "val": {"auc": 0.6, "acc": 0.4}}]
    # x: 0.85 / 0.6, y: 0.6 / 0.4 -> (0.85 + 0.6) / 2, (0.6 + 0.4) / 2 (not the mean of the three runs)
    assert search.selection_score(runs, ["x", "y"]) == pytest.approx({"auc": 0.725, "acc": 0.5})
    with pytest.raises(ValueError, match="no runs on z"):
        search.selection_score(runs, ["x", "z"])


def test_combination_takes_the_changes_that_beat_the_baseline(search):
    changes = {"base": {}, "e30": {"epochs": 30}, "e40": {"epochs": 40}, "d": {"dropout": 0.3}, "w": {"shift": 3}}
    scores = {"base": {"auc": 0.90}, "e30": {"auc": 0.93}, "e40": {"auc": 0.92}, "d": {"auc": 0.91},
              "w": {"auc": 0.89}}
    assert search.combination(scores, changes, "base") == {"epochs": 30, "dropout": 0.3}   # e30 beats e40
    scores["d"]["auc"] = 0.89
    assert search.combination(scores, changes, "base") == {}        # one field only: nothing to combine


def test_a_candidate_run_keeps_validation_numbers_only(search, medmnist_dir, tmp_path, monkeypatch):
    recipe = with_overrides(search.BASELINE, epochs=2)          # what the candidate below trains
    kept = search.validation_run("breastmnist", recipe, seed=0, root=medmnist_dir)
    assert set(kept) == {"val", "best_epoch", "epochs_run", "seconds"}
    full = train("breastmnist", recipe, seed=0, root=medmnist_dir, verbose=0, write=False)
    assert kept["val"] == pytest.approx(full["val"]) and kept["best_epoch"] == full["best_epoch"]

    monkeypatch.setattr(search, "RESULTS", tmp_path)
    monkeypatch.setattr(search, "CANDIDATES", {"tiny": {"epochs": 2}})
    search.main(["--datasets", "breastmnist", "--seeds", "0", "--no-combined", "--data", str(medmnist_dir)])
    doc = json.loads((tmp_path / "recipe_search.json").read_text())
    (run,) = doc["candidates"]["tiny"]["runs"]
    assert run["val"] == pytest.approx(full["val"]) and doc["chosen"] == "tiny"

    def keys(node):
        if isinstance(node, dict):
            return set(node) | set().union(*map(keys, node.values()))
        return set().union(*map(keys, node)) if isinstance(node, list) else set()
    assert "test" not in keys(doc)
    md = (tmp_path / "recipe_search.md").read_text()
    assert "test AUC" not in md and "test ACC" not in md


def test_the_per_dataset_stage_chooses_on_each_dataset_s_validation_alone(search, tmp_path, monkeypatch):
    """Stage 3 with a stand-in for training (hand-written validation scores): each dataset gets its
    own winner, flips are never tried on PneumoniaMNIST, and no test number is kept."""
    val = {("breastmnist", "plain"): [0.90, 0.92], ("breastmnist", "flip"): [0.93, 0.93],
           ("breastmnist", "slow"): [0.91, 0.91], ("pneumoniamnist", "plain"): [0.99, 0.99],
           ("pneumoniamnist", "slow"): [0.98, 0.99]}
    changes = {"plain": {}, "flip": {"flip": True}, "slow": {"learning_rate": 3e-4}}
    trained = []

    def fake_run(dataset, recipe, seed, root=None):
        name = next(n for n, c in changes.items() if with_overrides(search.CHOSEN, **c) == recipe)
        trained.append((dataset, name, seed))
        return {"val": {"auc": val[dataset, name][seed], "acc": 0.5}, "best_epoch": 1, "epochs_run": 2, "seconds": 0.0}
    monkeypatch.setattr(search, "validation_run", fake_run)
    monkeypatch.setattr(search, "RESULTS", tmp_path)
    monkeypatch.setattr(search, "PER_DATASET", changes)
    search.main(["--per-dataset", "--datasets", "breastmnist", "pneumoniamnist", "--seeds", "0", "1"])
    doc = json.loads((tmp_path / "recipe_per_dataset.json").read_text())
    assert doc["chosen"] == {"breastmnist": "flip", "pneumoniamnist": "plain"}
    assert ("pneumoniamnist", "flip", 0) not in trained and len(trained) == 10
    assert doc["datasets"]["breastmnist"]["slow"]["score"]["auc"] == pytest.approx(0.91)
    assert doc["datasets"]["breastmnist"]["flip"]["recipe"]["flip"] is True
    md = (tmp_path / "recipe_per_dataset.md").read_text()
    assert "**Chosen: flip** — `{\"flip\": true}`" in md and "test AUC" not in md

    trained.clear()                                   # --resume trains nothing it already has
    search.main(["--per-dataset", "--datasets", "breastmnist", "pneumoniamnist", "--seeds", "0", "1", "--resume"])
    assert trained == []


def test_the_results_table_names_each_dataset_s_own_recipe():
    """benchmarks/medmnist_results.py's markdown: a dataset with its own recipe says which fields
    differ from the default and where they were chosen; the mean ± std are those of the runs."""
    from dataclasses import asdict

    from tinycnn.medmnist_job import DEFAULT_RECIPE, Recipe

    results = load_script(SCRIPT.parent / "medmnist_results.py")
    runs = [{"dataset": d, "seed": s, "best_epoch": 3, "val": {"acc": 0.9, "auc": 0.9},
             "test": {"acc": acc, "auc": auc}, "seconds": 1.0}
            for d, values in {"breastmnist": [(0.85, 0.90), (0.87, 0.92)], "pneumoniamnist": [(0.9, 0.97), (0.9, 0.97)]}.items()
            for s, (acc, auc) in enumerate(values)]
    doc = {"command": "python benchmarks/medmnist_results.py", "recipe": asdict(DEFAULT_RECIPE),
           "dataset_recipes": {"breastmnist": asdict(Recipe(flip=True, epochs=40))},
           "measured": "now", "machine": "here", "runs": runs}
    assert results.recipe_changes(doc) == {"breastmnist": {"epochs": 40, "flip": True}}
    md = results.markdown(doc, ["pneumoniamnist", "breastmnist"])
    assert 'breastmnist: its own, `{"epochs": 40, "flip": true}` applied to it' in md
    assert "| **tinycnn (its own recipe)** | **0.860 ± 0.014** | **0.910 ± 0.014** |" in md
    assert "| **tinycnn (default recipe)** | **0.900 ± 0.000** | **0.970 ± 0.000** |" in md
    assert "Target (ResNet-18 (28)): ACC ≥ 0.863 — missed by 0.003; AUC ≥ 0.901 — met" in md


def test_the_library_s_recipes_are_the_ones_the_committed_results_were_measured_with(search):
    """The recipes ``tinycnn train`` uses are those the committed search chose (stage 1-2 base,
    stage 3 changes), and the committed test table was measured with exactly these recipes: a change
    to DEFAULT_RECIPE or DATASET_RECIPES without a new search and a new table fails here."""
    from dataclasses import asdict

    from tinycnn.medmnist_job import DATASET_RECIPES, DEFAULT_RECIPE

    results = SCRIPT.parent / "results"
    per_dataset = json.loads((results / "recipe_per_dataset.json").read_text())
    assert per_dataset["base"] == asdict(DEFAULT_RECIPE)
    chosen = {name: with_overrides(DEFAULT_RECIPE, **search.PER_DATASET[label])
              for name, label in per_dataset["chosen"].items()}
    # a stage-3 winner equal to the base needs no entry of its own
    assert {n: r for n, r in chosen.items() if r != DEFAULT_RECIPE} == DATASET_RECIPES
    table = json.loads((results / "medmnist_default.json").read_text())
    assert table["recipe"] == asdict(DEFAULT_RECIPE)
    assert table["dataset_recipes"] == {name: asdict(r) for name, r in DATASET_RECIPES.items()}
    for run in table["runs"]:
        expected = DATASET_RECIPES.get(run["dataset"], DEFAULT_RECIPE)
        assert run["recipe"] == asdict(expected), run["dataset"]
    assert sorted({r["seed"] for r in table["runs"]}) == [0, 1, 2, 3, 4]


def test_the_readme_s_results_table_is_the_committed_table():
    """README.md's table of the main job's test results states, row by row, the mean ± std (ddof 1)
    of the committed runs and the paper's ResNet-18 (28) and AutoML rows."""
    import numpy as np

    from tinycnn import published
    from tinycnn.datasets import INFO

    readme = (SCRIPT.parents[1] / "README.md").read_text()
    table = json.loads((SCRIPT.parent / "results" / "medmnist_default.json").read_text())
    datasets = sorted({run["dataset"] for run in table["runs"]})
    assert datasets == ["breastmnist", "pneumoniamnist", "retinamnist"]
    for dataset in datasets:
        runs = [run for run in table["runs"] if run["dataset"] == dataset]
        acc, auc = (np.array([run["test"][k] for run in runs]) for k in ("acc", "auc"))
        resnet = published.PUBLISHED[dataset]["ResNet-18 (28)"]
        automl = published.PUBLISHED[dataset]["Google AutoML Vision"]
        row = (f"| {INFO[dataset].python_class} | {acc.mean():.3f} ± {acc.std(ddof=1):.3f} | "
               f"{auc.mean():.3f} ± {auc.std(ddof=1):.3f} | {resnet[0]:.3f} / {resnet[1]:.3f} | "
               f"{automl[0]:.3f} / {automl[1]:.3f} |")
        assert row in readme, row
