"""Per-layer profile of training steps (``tinycnn.profile``) for the benchmark models, saved.

    python benchmarks/maintainers/profile_layers.py --label now
        # prints the tables; writes benchmarks/maintainers/output/profile_now.{json,md}

For every model (seed, deeper) and batch size (32, 128) it runs ``tinycnn.profile`` on consecutive
batches of the real PneumoniaMNIST training images and records the time of every layer's forward
and backward pass, the optimizer update, the rest of the step, and the time and rate of the
matrix products. The files go to ``--out`` (default ``benchmarks/maintainers/output/``, which git
ignores); the numbers worth keeping are quoted in ``docs/performance.md`` with this command.
Needs the MedMNIST files ($TINYCNN_DATA or --data).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent        # benchmarks/maintainers
REPO = HERE.parents[1]
if str(REPO) not in sys.path:          # profile this checkout's tinycnn, installed or not
    sys.path.insert(0, str(REPO))
if str(HERE) not in sys.path:          # fusion_ab's loader of the training images
    sys.path.insert(0, str(HERE))

from fusion_ab import training_set  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--label", required=True, help="names the output files: profile_<label>.json and .md")
    parser.add_argument("--models", nargs="+", default=["seed", "deeper"])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[32, 128])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--data", default=None)
    parser.add_argument("--out", type=Path, default=HERE / "output",
                        help="folder for the files (default benchmarks/maintainers/output/)")
    args = parser.parse_args(argv)

    import tinycnn
    from tinycnn import zoo
    from tinycnn.profiling import profile

    x, y = training_set(args.data)
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    doc = {"label": args.label, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "command": "python benchmarks/maintainers/profile_layers.py " + " ".join(argv or sys.argv[1:]),
           "commit": commit, "tinycnn": tinycnn.__version__, "numpy": np.__version__,
           "machine": platform.processor() or platform.machine(), "profiles": []}
    lines = [f"# Per-layer profile: {args.label}", "",
             f"`{doc['command']}` — commit {commit}, {doc['date']}, PneumoniaMNIST training images, "
             f"mean of {args.steps} training steps (`tinycnn.profile`).", ""]
    for name in args.models:
        for batch in args.batch_sizes:
            model = zoo.MODELS[name](2, seed=0)
            model.compile("adam", "sparse_categorical_crossentropy")
            result = profile(model, x, y, batch_size=batch, steps=args.steps)
            print(f"\n{name} model, batch {batch}\n{result}", flush=True)
            doc["profiles"].append({"model": name, "batch_size": batch, **result.as_dict()})
            lines += [f"## {name} model, batch {batch}", "", "```", result.table(), "```", ""]
    args.out.mkdir(parents=True, exist_ok=True)
    from tinycnn.io import atomic_write_text
    atomic_write_text(args.out / f"profile_{args.label}.json", json.dumps(doc, indent=1) + "\n")
    atomic_write_text(args.out / f"profile_{args.label}.md", "\n".join(lines))
    print(f"\nwrote {args.out / f'profile_{args.label}.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
