"""Test-set results of the default `tinycnn train` recipe over several seeds, beside the published
MedMNIST v2 numbers.

    python benchmarks/medmnist_results.py                       # 3 datasets × seeds 0–4
    python benchmarks/medmnist_results.py --datasets breastmnist --seeds 0 1 2 --name breast_check

Each dataset's default recipe (``tinycnn.medmnist_job.default_recipe``) was chosen on the
validation split alone (``benchmarks/recipe_search.py``, and ``--per-dataset`` for the datasets
with a recipe of their own); this script is where its test scores are measured, once, for the
chosen recipe. Writes
benchmarks/results/medmnist_default.json (every run) and .md (mean ± std tables), each with the
command that produced it. Needs the MedMNIST files ($TINYCNN_DATA or ~/.medmnist).
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

from tinycnn import published
from tinycnn.io import atomic_write_text
from tinycnn.medmnist_job import DATASET_RECIPES, DEFAULT_RECIPE, default_recipe, train

RESULTS = Path(__file__).resolve().parent / "results"
TARGETS = {  # the bar set for this project: the paper's ResNet-18 (28)
    name: published.PUBLISHED[name]["ResNet-18 (28)"] for name in ("pneumoniamnist", "breastmnist", "retinamnist")
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(TARGETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--name", default="medmnist_default", help="base name of the result files")
    args = parser.parse_args(argv)
    command = "python benchmarks/medmnist_results.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))

    runs = []
    for dataset in args.datasets:
        for seed in args.seeds:
            result = train(dataset, default_recipe(dataset), seed=seed, verbose=0, write=False)
            run = {k: result[k] for k in ("dataset", "seed", "recipe", "best_epoch", "val", "test", "seconds")}
            runs.append(run)
            print(f"{dataset:15s} seed {seed}: test ACC {run['test']['acc']:.3f} AUC {run['test']['auc']:.3f} "
                  f"(best epoch {run['best_epoch']}, {run['seconds']:.0f} s)", flush=True)

    doc = {"command": command, "recipe": asdict(DEFAULT_RECIPE),
           "dataset_recipes": {name: asdict(recipe) for name, recipe in DATASET_RECIPES.items()},
           "measured": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "machine": f"{platform.machine()}, {platform.python_version()}, numpy {np.__version__}",
           "runs": runs}
    RESULTS.mkdir(exist_ok=True)
    atomic_write_text(RESULTS / f"{args.name}.json", json.dumps(doc, indent=1))
    atomic_write_text(RESULTS / f"{args.name}.md", markdown(doc, args.datasets))
    print(markdown(doc, args.datasets))
    return 0


def recipe_changes(doc) -> dict:
    """{dataset: the fields its own recipe changes in the default recipe} for the datasets with one."""
    return {name: {k: v for k, v in recipe.items() if doc["recipe"].get(k) != v}
            for name, recipe in doc.get("dataset_recipes", {}).items()}


def markdown(doc, datasets) -> str:
    lines = ["# Default `tinycnn train` recipes on MedMNIST (test set)", "",
             f"Measured {doc['measured']} on {doc['machine']} with:", "", f"    {doc['command']}", "",
             f"Recipe: `{json.dumps(doc['recipe'])}`, chosen on the validation split alone "
             "(`python benchmarks/recipe_search.py`, [`recipe_search.md`](recipe_search.md))"
             + "".join(f"; {name}: its own, `{json.dumps(changes)}` applied to it, chosen on its validation split "
                       "alone (`python benchmarks/recipe_search.py --per-dataset`, "
                       "[`recipe_per_dataset.md`](recipe_per_dataset.md))"
                       for name, changes in recipe_changes(doc).items() if name in datasets)
             + f"; seeds {sorted({r['seed'] for r in doc['runs']})}; weights of the epoch with the best validation "
             "AUC (the official protocol); mean ± std (ddof 1) over the seeds.", ""]
    for dataset in datasets:
        runs = [r for r in doc["runs"] if r["dataset"] == dataset]
        acc = np.array([r["test"]["acc"] for r in runs])
        auc = np.array([r["test"]["auc"] for r in runs])
        mean = {"acc": float(acc.mean()), "auc": float(auc.mean())}
        std = {"acc": float(acc.std(ddof=1)) if len(runs) > 1 else 0.0,
               "auc": float(auc.std(ddof=1)) if len(runs) > 1 else 0.0}
        label = "tinycnn (its own recipe)" if dataset in recipe_changes(doc) else "tinycnn (default recipe)"
        lines += [published.markdown_table(dataset, mean, ours_label=label, ours_std=std), ""]
        if dataset in TARGETS:
            t_acc, t_auc = TARGETS[dataset]
            verdict = lambda ours, target: "met" if ours >= target else f"missed by {target - ours:.3f}"  # noqa: E731
            lines += [f"Target (ResNet-18 (28)): ACC ≥ {t_acc:.3f} — {verdict(mean['acc'], t_acc)}; "
                      f"AUC ≥ {t_auc:.3f} — {verdict(mean['auc'], t_auc)} (mean over seeds).", ""]
        lines += ["| seed | best epoch | val ACC | val AUC | test ACC | test AUC | seconds |",
                  "|---:|---:|---:|---:|---:|---:|---:|"]
        lines += [f"| {r['seed']} | {r['best_epoch']} | {r['val']['acc']:.3f} | {r['val']['auc']:.3f} | "
                  f"{r['test']['acc']:.3f} | {r['test']['auc']:.3f} | {r['seconds']:.0f} |" for r in runs]
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
