"""The measured effect of each tool against overfitting, one at a time, on the real BreastMNIST.

    python benchmarks/regularization_study.py                    # BreastMNIST, seeds 0 1 2
    python benchmarks/regularization_study.py --dataset retinamnist --seeds 0 1 2 3 4

Every variant is the baseline recipe of ``recipe_search.py`` (``BASELINE``: 20 epochs, Adam 1e-3
with the cosine schedule, shifts of 2, standardised, binary tasks oversampled; "default recipe"
below) with one thing changed (and "combined", the changes that helped, together). Reports
validation and test AUC/ACC, mean ± std over the seeds, with the official protocol (weights of the
best validation-AUC epoch); the test columns are shown, never used to choose. Writes
benchmarks/results/<dataset>_regularization.json and .md with the command.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from tinycnn.io import atomic_write_text
from tinycnn.medmnist_job import train, with_overrides

from recipe_search import BASELINE          # benchmarks/ is on the path when this script runs

RESULTS = Path(__file__).resolve().parent / "results"

VARIANTS = {                       # each: BASELINE with this change
    "default recipe": {},
    "+ dropout 0.5": {"dropout": 0.5},
    "+ weight decay 1e-3 (AdamW)": {"weight_decay": 1e-3},
    "+ early stopping (patience 5)": {"early_stopping": 5},
    "class weights instead of oversampling": {"class_weight": "balanced", "oversample": "never"},
    "no oversampling": {"oversample": "never"},
    "step schedule (MedMNIST) instead of cosine": {"schedule": "step"},
    "constant learning rate": {"schedule": "none"},
    "no augmentation (shift 0)": {"shift": 0},
    "no standardisation": {"normalize": False},
}


def run(dataset, changes, seeds):
    recipe = with_overrides(BASELINE, **changes)
    runs = []
    for seed in seeds:
        r = train(dataset, recipe, seed=seed, verbose=0, write=False)
        runs.append({"seed": seed, "best_epoch": r["best_epoch"], "val": r["val"], "test": r["test"],
                     "epochs_run": len(r["history"]["loss"]), "seconds": r["seconds"]})
    return {"recipe": asdict(recipe), "runs": runs}


def summary(runs, split, key):
    values = np.array([r[split][key] for r in runs])
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="breastmnist")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args = parser.parse_args(argv)
    command = "python benchmarks/regularization_study.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))

    results = {}
    for name in args.variants:
        results[name] = run(args.dataset, VARIANTS[name], args.seeds)
        print(f"{name:30s} val AUC {summary(results[name]['runs'], 'val', 'auc')[0]:.3f}  "
              f"test AUC {summary(results[name]['runs'], 'test', 'auc')[0]:.3f}", flush=True)
    baseline = summary(results[args.variants[0]]["runs"], "val", "auc")[0]
    helped = {k: v for name in args.variants[1:] for k, v in VARIANTS[name].items()
              if summary(results[name]["runs"], "val", "auc")[0] > baseline}
    if len(helped) > 1:     # the changes that raised the *validation* AUC, together (none: the default stays)
        results["combined: " + ", ".join(f"{k}={v}" for k, v in helped.items())] = run(args.dataset, helped, args.seeds)

    doc = {"command": command, "dataset": args.dataset, "seeds": args.seeds,
           "measured": datetime.now(timezone.utc).isoformat(timespec="seconds"), "variants": results}
    RESULTS.mkdir(exist_ok=True)
    stem = f"{args.dataset}_regularization"
    atomic_write_text(RESULTS / f"{stem}.json", json.dumps(doc, indent=1))
    table = markdown(doc)
    atomic_write_text(RESULTS / f"{stem}.md", table)
    print(table)
    return 0


def markdown(doc) -> str:
    lines = [f"# Tools against overfitting on {doc['dataset']} (mean ± std over seeds {doc['seeds']})", "",
             f"Measured {doc['measured']} with:", "", f"    {doc['command']}", "",
             "Each row is the baseline recipe of `recipe_search.py` (cosine schedule) with one change; choices are made on the "
             "**validation** AUC (the test columns are reported, not used to choose).", "",
             "| variant | val AUC | val ACC | test AUC | test ACC | epochs run |", "|---|---:|---:|---:|---:|---:|"]
    for name, result in doc["variants"].items():
        cells = [f"{m:.3f} ± {s:.3f}" for m, s in (summary(result["runs"], split, key) for split, key in
                 (("val", "auc"), ("val", "acc"), ("test", "auc"), ("test", "acc")))]
        epochs = np.mean([r["epochs_run"] for r in result["runs"]])
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {epochs:.1f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
