"""Choose the default `tinycnn train` recipe on the validation split only.

    python benchmarks/recipe_search.py               # the whole search (about 35 min on 2 cores)
    python benchmarks/recipe_search.py --resume      # reuse the runs already in the results file
    python benchmarks/recipe_search.py --per-dataset # stage 3: one recipe per dataset (about 25 min)

A small, stated search: every candidate below is trained on PneumoniaMNIST, BreastMNIST and
RetinaMNIST with seeds 0 and 1 (the official protocol: the weights of the epoch with the best
validation AUC), and is judged by its validation scores alone.

Candidates (stage 1): the baseline — the `tinycnn train` default before this search, stated in
full as ``BASELINE`` — and the baseline with one change each —
30 or 40 epochs, dropout 0.3 or 0.5 before the classifier, AdamW weight decay 0.05, random shifts
of up to 3 pixels, learning rate 3e-4, a constant learning rate instead of the cosine schedule.
Stage 2 ("combined"): the stage-1 changes whose selection score beat the baseline's, put
together (for a field changed by several of them, e.g. epochs, the value of the best-scoring
one); run only when at least two fields qualify.

Selection rule: a candidate's score is the mean over the three datasets of its mean validation
AUC over the two seeds. The highest score wins; candidates within 0.001 of it count as tied, and
the tie goes to the highest validation ACC averaged the same way. One recipe for all three
datasets (no choice per dataset).

**No test number is seen here.** ``train`` (the `tinycnn train` pipeline) scores the test split
as part of its run; :func:`validation_run` drops that result before anything is kept, printed or
written, so no test number of a candidate exists outside that call. The test set is
scored once, for the chosen recipe only, by ``benchmarks/medmnist_results.py``.

Stage 3 (``--per-dataset``), run after the test table of the one-recipe choice
(``benchmarks/medmnist_results.py``) showed BreastMNIST below the paper's ResNet-18 (28): the
decision to search further was taken knowing that, and is stated here. The search itself still
sees validation scores only. Each dataset chooses its own recipe among the stage-1/2 choice
(``CHOSEN``) and ``PER_DATASET``'s changes to it, by the same rule on that dataset alone (mean
validation AUC over seeds 0, 1 and 2; ties to ACC). Left-right flips are not tried on
PneumoniaMNIST — a mirrored chest X-ray puts the heart on the wrong side — a choice made from
the anatomy, not from scores. Writes ``recipe_per_dataset.json``/``.md``.

Writes benchmarks/results/recipe_search.json (every run: validation ACC/AUC, best epoch,
seconds; the scores and the choice) and .md, each with the command that produced it, after every
run (so an interrupted search resumes with ``--resume``). Needs the MedMNIST files
($TINYCNN_DATA or ~/.medmnist).
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from tinycnn.io import atomic_write_text
from tinycnn.medmnist_job import DEFAULT_RECIPE, Recipe, train, with_overrides

RESULTS = Path(__file__).resolve().parent / "results"
DATASETS = ("pneumoniamnist", "breastmnist", "retinamnist")
SEEDS = (0, 1)
TIE = 0.001                        # selection scores this close to the best count as tied

# The baseline of the search: the recipe that was the default when the search was run (stated in
# full, so the search reads the same after DEFAULT_RECIPE changes to its outcome).
BASELINE = Recipe(model="deeper", epochs=20, batch_size=32, learning_rate=0.001, shift=2, normalize=True,
                  dropout=0.0, weight_decay=0.0, class_weight=None, early_stopping=None, schedule="cosine",
                  oversample="binary")
CANDIDATES = {                     # stage 1: each is BASELINE with these changes
    "baseline (20 epochs, cosine, shift 2)": {},
    "epochs 30": {"epochs": 30},
    "epochs 40": {"epochs": 40},
    "dropout 0.3": {"dropout": 0.3},
    "dropout 0.5": {"dropout": 0.5},
    "weight decay 0.05 (AdamW)": {"weight_decay": 0.05},
    "shift 3": {"shift": 3},
    "learning rate 3e-4": {"learning_rate": 3e-4},
    "constant learning rate": {"schedule": "none"},
}

# Stage 3 (--per-dataset): the outcome of stages 1-2 (the baseline with a constant learning rate),
# stated in full, and the changes each dataset may choose from.
CHOSEN = Recipe(model="deeper", epochs=20, batch_size=32, learning_rate=0.001, shift=2, flip=False, normalize=True,
                dropout=0.0, weight_decay=0.0, class_weight=None, early_stopping=None, schedule="none",
                oversample="binary")
PER_DATASET = {
    "stage 1-2 choice (constant learning rate)": {},
    "flip": {"flip": True},
    "flip, 40 epochs": {"flip": True, "epochs": 40},
    "dropout 0.5": {"dropout": 0.5},
    "flip, dropout 0.5": {"flip": True, "dropout": 0.5},
    "weight decay 0.05 (AdamW)": {"weight_decay": 0.05},
    "learning rate 3e-4, 40 epochs": {"learning_rate": 3e-4, "epochs": 40},
}
PER_DATASET_SEEDS = (0, 1, 2)
NO_FLIP = {"pneumoniamnist"}       # a mirrored chest X-ray has its heart on the wrong side


def validation_run(dataset: str, recipe: Recipe, seed: int, root=None) -> dict:
    """Train ``recipe`` on ``dataset`` with ``seed`` and return only what selection may see: the
    validation ACC/AUC of the kept (best validation AUC) weights, the best epoch, the epochs run
    and the seconds. ``train`` also scores the test split; that number is dropped right here."""
    result = train(dataset, recipe, seed=seed, root=root, verbose=0, write=False)
    return {"val": {"acc": float(result["val"]["acc"]), "auc": float(result["val"]["auc"])},
            "best_epoch": int(result["best_epoch"]), "epochs_run": len(result["history"]["loss"]),
            "seconds": float(result["seconds"])}


def run_or_reuse(earlier: list[dict], dataset: str, recipe: Recipe, seed: int, root, label: str) -> dict:
    """The run of ``recipe`` on ``dataset`` with ``seed``: one of ``earlier`` (``--resume``) when it
    has it, else a new :func:`validation_run`; printed after ``label``."""
    old = [r for r in earlier if r["dataset"] == dataset and r["seed"] == seed and r["recipe"] == asdict(recipe)]
    run = old[0] if old else {"dataset": dataset, "seed": seed, "recipe": asdict(recipe),
                              **validation_run(dataset, recipe, seed, root=root)}
    print(f"{label} seed {seed}: val AUC {run['val']['auc']:.3f} ACC {run['val']['acc']:.3f} "
          f"(best epoch {run['best_epoch']}, {run['seconds']:.0f} s{', reused' if old else ''})", flush=True)
    return run


def dataset_means(runs: list[dict], datasets) -> dict:
    """{dataset: {"auc": mean, "acc": mean, "auc_std": ..., "acc_std": ...}} of the validation
    scores over the seeds (std with ddof=1; 0 for one seed)."""
    out = {}
    for dataset in datasets:
        mine = [r for r in runs if r["dataset"] == dataset]
        if not mine:
            raise ValueError(f"no runs on {dataset}")
        entry = {}
        for key in ("auc", "acc"):
            values = np.array([r["val"][key] for r in mine], dtype=np.float64)
            entry[key] = float(values.mean())
            entry[f"{key}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        out[dataset] = entry
    return out


def selection_score(runs: list[dict], datasets) -> dict:
    """The selection rule's numbers for one candidate: the mean over ``datasets`` of the per-dataset
    mean validation AUC (``"auc"``) and, for ties, of the validation ACC (``"acc"``)."""
    means = dataset_means(runs, datasets)
    return {"auc": float(np.mean([means[d]["auc"] for d in datasets])),
            "acc": float(np.mean([means[d]["acc"] for d in datasets]))}


def choose(scores: dict[str, dict], tie: float = TIE) -> str:
    """The winner among ``{name: {"auc": ..., "acc": ...}}``: the highest ``auc``; every candidate
    within ``tie`` of it is tied, and among those the highest ``acc`` wins (then the first listed)."""
    if not scores:
        raise ValueError("choose: no candidates")
    best_auc = max(s["auc"] for s in scores.values())
    tied = [name for name, s in scores.items() if s["auc"] >= best_auc - tie]
    return max(tied, key=lambda name: (scores[name]["acc"], -list(scores).index(name)))


def combination(scores: dict[str, dict], changes: dict[str, dict], baseline: str) -> dict:
    """Stage 2: the changes of the candidates that beat ``baseline``'s score, together; for a field
    changed by several, the value of the best-scoring one. ``{}`` when fewer than two fields qualify."""
    better = sorted((name for name in scores if name != baseline and scores[name]["auc"] > scores[baseline]["auc"]),
                    key=lambda name: scores[name]["auc"])          # ascending: the best is applied last
    combined = {}
    for name in better:
        combined.update(changes[name])
    return combined if len(combined) >= 2 else {}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=None, help=f"default {list(SEEDS)}")
    parser.add_argument("--candidates", nargs="+", default=list(CANDIDATES), choices=list(CANDIDATES),
                        help="stage-1 candidates to run (default: all; the first is the baseline of stage 2)")
    parser.add_argument("--no-combined", action="store_true", help="skip stage 2")
    parser.add_argument("--per-dataset", action="store_true",
                        help=f"stage 3: each dataset chooses among PER_DATASET (seeds {list(PER_DATASET_SEEDS)} "
                             "unless --seeds is given); writes recipe_per_dataset.json/.md")
    parser.add_argument("--resume", action="store_true",
                        help="reuse the runs in the results file that match a candidate's recipe, dataset and seed")
    parser.add_argument("--name", default=None,
                        help="base name of the result files (default recipe_search, or recipe_per_dataset)")
    parser.add_argument("--data", default=None, help="folder of the MedMNIST files (default: $TINYCNN_DATA, ~/.medmnist)")
    args = parser.parse_args(argv)
    command = "python benchmarks/recipe_search.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    if args.per_dataset:
        return per_dataset_search(args.datasets, args.seeds or list(PER_DATASET_SEEDS), args.data, args.resume,
                                  args.name or "recipe_per_dataset", command)
    args.seeds = args.seeds or list(SEEDS)
    args.name = args.name or "recipe_search"
    json_path, md_path = RESULTS / f"{args.name}.json", RESULTS / f"{args.name}.md"

    earlier = []
    if args.resume and json_path.exists():
        earlier = [run for cand in json.loads(json_path.read_text())["candidates"].values() for run in cand["runs"]]
    doc = {"command": command, "datasets": args.datasets, "seeds": args.seeds, "baseline": asdict(BASELINE),
           "rule": (f"mean over the datasets of the mean validation AUC over seeds {args.seeds}; within {TIE} of the "
                    "best counts as tied, ties go to the highest validation ACC averaged the same way"),
           "test_split": ("no test number of a candidate is kept, printed or written (validation_run drops it); "
                          "benchmarks/medmnist_results.py scores the chosen recipe on test"),
           "machine": f"{platform.machine()}, {platform.python_version()}, numpy {np.__version__}",
           "started": datetime.now(timezone.utc).isoformat(timespec="seconds"), "candidates": {}}

    def evaluate(name: str, changes: dict) -> None:
        recipe = with_overrides(BASELINE, **changes)
        entry = doc["candidates"][name] = {"changes": changes, "recipe": asdict(recipe), "runs": []}
        for dataset in args.datasets:
            for seed in args.seeds:
                entry["runs"].append(run_or_reuse(earlier, dataset, recipe, seed, args.data, f"{name:40s} {dataset:15s}"))
                save()
        entry["score"] = selection_score(entry["runs"], args.datasets)
        entry["per_dataset"] = dataset_means(entry["runs"], args.datasets)

    def save() -> None:
        scored = {name: c["score"] for name, c in doc["candidates"].items() if "score" in c}
        doc["chosen"] = choose(scored) if scored else None
        doc["measured"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        RESULTS.mkdir(exist_ok=True)
        atomic_write_text(json_path, json.dumps(doc, indent=1))
        atomic_write_text(md_path, markdown(doc))

    for name in args.candidates:
        evaluate(name, CANDIDATES[name])
    baseline = args.candidates[0]
    if not args.no_combined:
        scores = {name: doc["candidates"][name]["score"] for name in args.candidates}
        combined = combination(scores, CANDIDATES, baseline)
        if combined:
            evaluate("combined: " + ", ".join(f"{k}={v}" for k, v in combined.items()), combined)
    save()
    print(markdown(doc))
    return 0


def per_dataset_search(datasets, seeds, root, resume, name, command) -> int:
    """Stage 3: for each dataset, every ``PER_DATASET`` change to ``CHOSEN`` (flips not on
    ``NO_FLIP``), seeds ``seeds``, validation scores only; the dataset's choice by :func:`choose`
    on its own mean validation AUC (ties: ACC)."""
    json_path, md_path = RESULTS / f"{name}.json", RESULTS / f"{name}.md"
    earlier = []
    if resume and json_path.exists():
        earlier = [run for per in json.loads(json_path.read_text())["datasets"].values()
                   for cand in per.values() for run in cand["runs"]]
    doc = {"command": command, "seeds": seeds, "base": asdict(CHOSEN),
           "rule": (f"per dataset: the mean validation AUC over seeds {seeds}; within {TIE} of the best counts as "
                    "tied, ties go to the highest mean validation ACC"),
           "why": ("run after the test table of the one-recipe choice showed BreastMNIST below ResNet-18 (28); "
                   "the search itself sees validation scores only"),
           "test_split": ("no test number of a candidate is kept, printed or written (validation_run drops it); "
                          "benchmarks/medmnist_results.py scores each dataset's chosen recipe on test"),
           "machine": f"{platform.machine()}, {platform.python_version()}, numpy {np.__version__}",
           "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "datasets": {}, "chosen": {}}

    def save() -> None:
        doc["measured"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        RESULTS.mkdir(exist_ok=True)
        atomic_write_text(json_path, json.dumps(doc, indent=1))
        atomic_write_text(md_path, per_dataset_markdown(doc))

    for dataset in datasets:
        per = doc["datasets"][dataset] = {}
        for label, changes in PER_DATASET.items():
            if dataset in NO_FLIP and changes.get("flip"):
                continue
            recipe = with_overrides(CHOSEN, **changes)
            entry = per[label] = {"changes": changes, "recipe": asdict(recipe), "runs": []}
            for seed in seeds:
                entry["runs"].append(run_or_reuse(earlier, dataset, recipe, seed, root, f"{dataset:15s} {label:42s}"))
                save()
            entry["score"] = selection_score(entry["runs"], [dataset])
            entry["per_dataset"] = dataset_means(entry["runs"], [dataset])
        doc["chosen"][dataset] = choose({label: c["score"] for label, c in per.items()})
        save()
    print(per_dataset_markdown(doc))
    return 0


def per_dataset_markdown(doc) -> str:
    lines = ["# Choosing a recipe per dataset on the validation split (stage 3)", "",
             f"Measured {doc['measured']} on {doc['machine']} with:", "", f"    {doc['command']}", "",
             f"Why: {doc['why']}. Every candidate is the stage-1/2 choice `{json.dumps(doc['base'])}` "
             f"([`recipe_search.md`](recipe_search.md)) with the change named, seeds {doc['seeds']}, the weights of "
             "the epoch with the best validation AUC. Left-right flips are not tried on PneumoniaMNIST (a mirrored "
             "chest X-ray puts the heart on the wrong side). Only validation scores are kept: no test number of any "
             "candidate is recorded, printed or used.", "", f"Rule: {doc['rule']}.", ""]
    for dataset, per in doc["datasets"].items():
        chosen = doc["chosen"].get(dataset)
        lines += [f"## {dataset}", ""]
        if chosen:
            lines += [f"**Chosen: {chosen}** — `{json.dumps(per[chosen]['changes'])}` applied to the stage-1/2 "
                      "choice.", ""]
        lines += ["| candidate | mean val AUC | mean val ACC | each run: val AUC / ACC (best epoch) |",
                  "|---|---:|---:|---|"]
        for label, c in per.items():
            runs = "; ".join(f"seed {r['seed']}: {r['val']['auc']:.3f} / {r['val']['acc']:.3f} (epoch {r['best_epoch']})"
                             for r in c["runs"])
            mark = "**" if label == chosen else ""
            if "score" in c:
                lines.append(f"| {mark}{label}{mark} | {c['score']['auc']:.4f} | {c['score']['acc']:.4f} | {runs} |")
            else:
                lines.append(f"| {label} (running) | | | {runs} |")
        lines.append("")
    return "\n".join(lines)


def markdown(doc) -> str:
    datasets = doc["datasets"]
    done = {name: c for name, c in doc["candidates"].items() if "score" in c}
    lines = ["# Choosing the default recipe on the validation split", "",
             f"Measured {doc['measured']} on {doc['machine']} with:", "", f"    {doc['command']}", "",
             f"Every candidate is the baseline recipe `{json.dumps(doc['baseline'])}` with the change named, trained "
             f"on {', '.join(datasets)} with seeds {doc['seeds']} (weights of the epoch with the best validation "
             "AUC). Only validation scores are kept: no test number of any candidate is recorded, printed or used "
             "(`validation_run` drops it).", "",
             f"Rule: {doc['rule']}.", ""]
    if doc.get("chosen"):
        lines += [f"**Chosen: {doc['chosen']}** — `{json.dumps(doc['candidates'][doc['chosen']]['changes'])}` "
                  "applied to the baseline.", ""]
    header = " | ".join(f"{d} val AUC | {d} val ACC" for d in datasets)
    lines += [f"| candidate | score (mean val AUC) | mean val ACC | {header} |",
              "|---|---:|---:|" + "---:|---:|" * len(datasets)]
    for name, c in done.items():
        cells = " | ".join(f"{c['per_dataset'][d]['auc']:.3f} ± {c['per_dataset'][d]['auc_std']:.3f} | "
                           f"{c['per_dataset'][d]['acc']:.3f} ± {c['per_dataset'][d]['acc_std']:.3f}" for d in datasets)
        mark = "**" if name == doc.get("chosen") else ""
        lines.append(f"| {mark}{name}{mark} | {c['score']['auc']:.4f} | {c['score']['acc']:.4f} | {cells} |")
    lines += ["", "Every run (validation split):", "",
              "| candidate | dataset | seed | val AUC | val ACC | best epoch | epochs run | seconds |",
              "|---|---|---:|---:|---:|---:|---:|---:|"]
    for name, c in doc["candidates"].items():
        lines += [f"| {name} | {r['dataset']} | {r['seed']} | {r['val']['auc']:.3f} | {r['val']['acc']:.3f} | "
                  f"{r['best_epoch']} | {r['epochs_run']} | {r['seconds']:.0f} |" for r in c["runs"]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
