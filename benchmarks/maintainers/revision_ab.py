"""A/B test of two versions of the code: training steps of each git revision, taking turns.

    python benchmarks/maintainers/revision_ab.py HEAD~1 HEAD                 # before and after a change
    python benchmarks/maintainers/revision_ab.py HEAD WORKTREE --rounds 31   # the uncommitted change
    python benchmarks/maintainers/revision_ab.py HEAD HEAD                   # A/A: the noise floor
    python benchmarks/maintainers/revision_ab.py HEAD~1 HEAD --predict       # predict instead of training

``knob_ab.py`` compares values of one constant inside one process; a change to the code itself
needs two processes. Each revision is checked out into a temporary ``git worktree`` (``WORKTREE``
means the files as they are now) and gets one long-lived worker process that imports *that*
tinycnn, loads the real PneumoniaMNIST training images and builds the model once. The workers then
take turns, round after round: one runs ``--steps`` training steps while the other waits idle, so
the machine's slow drifts hit both alike, and neither pays its start-up inside the timing. Printed:
the median ms per step of each revision and the median of the per-round ratios (B / A; < 1: B is
faster). Both train the same model from the same seed on the same batches. ``--predict`` times
``predict`` (batch 256) on all the training images instead. The worktrees are removed at the end. Needs the MedMNIST files ($TINYCNN_DATA or --data).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent        # benchmarks/maintainers: this script and fusion_ab
REPO = HERE.parents[1]
WORKTREE = "WORKTREE"


def serve(data_root: str | None) -> None:
    """Worker: read ``{"model", "batch", "start", "steps"}`` lines from stdin, answer each with the
    mean ms per step of that many training steps — or, for ``{"model", "predict": true}``, with the
    ms that ``predict`` (batch 256) takes on all the training images. The model for each (model,
    batch) is built on first use with seed 0 and kept, so every round continues its training."""
    from tinycnn import zoo                     # first: the revision's tinycnn, from $PYTHONPATH

    sys.path.insert(0, str(HERE))
    from fusion_ab import step_ms, training_set   # (which would put this checkout first on the path)

    x, y = training_set(data_root)
    models = {}
    print(json.dumps({"ready": True, "tinycnn": zoo.__file__}), flush=True)
    for line in sys.stdin:
        job = json.loads(line)
        key = (job["model"], job.get("batch"))
        if key not in models:
            models[key] = zoo.MODELS[job["model"]](2, seed=0)
            models[key].compile("adam", "sparse_categorical_crossentropy")
            if job.get("predict"):
                models[key].predict(x[:1024])                                # warm-up: buffers, threads
            else:
                step_ms(models[key], x, y, job["batch"], 0, 3)
        if job.get("predict"):
            began = time.perf_counter()
            models[key].predict(x)
            print(json.dumps({"ms": (time.perf_counter() - began) * 1e3}), flush=True)
        else:
            print(json.dumps({"ms": step_ms(models[key], x, y, job["batch"], job["start"], job["steps"])}), flush=True)


class Worker:
    """One revision's checkout and its serving process."""

    def __init__(self, revision: str, data_root: str | None):
        self.revision, self.folder = revision, None
        source = REPO
        if revision != WORKTREE:
            self.folder = Path(tempfile.mkdtemp(prefix="tinycnn_ab_"))
            try:
                subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "--quiet",
                                str(self.folder / "tree"), revision], check=True)
            except BaseException:
                shutil.rmtree(self.folder, ignore_errors=True)
                raise
            source = self.folder / "tree"
        env = {**os.environ, "PYTHONPATH": str(source)}
        command = [sys.executable, str(HERE / "revision_ab.py"), "--serve"]
        if data_root:
            command += ["--data", data_root]
        self.process = subprocess.Popen(command, cwd=source, env=env, stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)
        try:
            imported = Path(self._answer()["tinycnn"]).resolve()
            if not imported.is_relative_to(source.resolve()):
                raise RuntimeError(f"revision_ab: the worker for {revision} imported {imported}, not {source}'s")
        except BaseException:
            self.close()
            raise

    def _answer(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"revision_ab: the worker for {self.revision} stopped (see its error above)")
        return json.loads(line)

    def ms(self, job: dict) -> float:
        self.process.stdin.write(json.dumps(job) + "\n")
        self.process.stdin.flush()
        return self._answer()["ms"]

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
        if self.folder is not None:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(self.folder / "tree")],
                           check=False, capture_output=True)
            shutil.rmtree(self.folder, ignore_errors=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a", nargs="?", help="baseline: a git revision, or WORKTREE for the files as they are")
    parser.add_argument("b", nargs="?", help="the other revision (or WORKTREE)")
    parser.add_argument("--models", nargs="+", default=["seed", "deeper"])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[32, 128])
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--predict", action="store_true",
                        help="time predict (batch 256) on all the training images instead of training steps")
    parser.add_argument("--data", default=None)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.data)
        return 0
    if args.a is None or args.b is None:
        parser.error("two revisions are needed (a git revision, or WORKTREE)")

    labels = [f"{args.a} (A)", f"{args.b} (B)"]
    workers = []
    try:
        for revision in (args.a, args.b):
            workers.append(Worker(revision, args.data))
        what = "predict (batch 256) on all the training images" if args.predict else f"{args.steps} training steps"
        print(f"{labels[0]} vs {labels[1]}: {args.rounds} rounds of {what} each, taking turns (A first in odd "
              f"rounds, B first in even ones); ms {'per predict' if args.predict else 'per step'}, median; "
              "B / A = median of the per-round ratios")
        configs = [(model, None) for model in args.models] if args.predict else \
            [(model, batch) for model in args.models for batch in args.batch_sizes]
        for model, batch in configs:
            times, start = ([], []), 0
            for r in range(args.rounds):
                job = {"model": model, "predict": True} if args.predict else \
                    {"model": model, "batch": batch, "start": start, "steps": args.steps}
                for i in ((0, 1) if r % 2 == 0 else (1, 0)):
                    times[i].append(workers[i].ms(job))
                start += args.steps * (batch or 0)
            ratio = np.median(np.array(times[1]) / np.array(times[0]))
            name = f"{model} predict" if args.predict else f"{model}/{batch}"
            print(f"{name}: A {np.median(times[0]):.2f}  B {np.median(times[1]):.2f}  B / A {ratio:.3f}", flush=True)
    finally:
        for worker in workers:
            worker.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
