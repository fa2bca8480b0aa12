"""Execute the tutorial notebooks in place and stamp them, or check that the committed ones are fresh.

    python tutorials/run.py                      # run every numbered notebook, save outputs + stamp
    python tutorials/run.py tutorials/04_*.ipynb # just these
    python tutorials/run.py --check              # no execution: is every committed notebook fresh?

A notebook is committed *with* its outputs so it reads well on a repository page. To make sure those
outputs are not stale, executing a notebook writes a stamp into its metadata::

    metadata["tinycnn"] = {"code_sha256": <hash of every code cell's source>, "seconds": <run time>}

``--check`` (and ``tests/test_tutorials.py`` in CI) recomputes the hash from the committed code
cells: if anyone edits code without re-running the notebook, the hash no longer matches and CI
fails. The same test also executes every notebook from scratch under the time budget.

Notebooks run with the ``tutorials/`` folder as working directory and need the real MedMNIST files
(``$TINYCNN_DATA`` or ``~/.medmnist``), like the rest of the project.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BUDGET_SECONDS = 120          # each tutorial must run top to bottom within this on 2 cores
CELL_TIMEOUT = 300


def notebooks() -> list[Path]:
    """The numbered tutorials, in order: ``01_*.ipynb``, ``02_*.ipynb``, ..."""
    return sorted(HERE.glob("[0-9][0-9]_*.ipynb"))


def code_hash(nb) -> str:
    """SHA-256 over the source of every code cell, in order (markdown edits do not need a re-run)."""
    digest = hashlib.sha256()
    for cell in nb.cells:
        if cell.cell_type == "code":
            digest.update(cell.source.encode("utf-8"))
            digest.update(b"\0")
    return digest.hexdigest()


def execute(path: Path, timeout: int = CELL_TIMEOUT):
    """Run a notebook top to bottom in a fresh kernel; returns ``(executed notebook, seconds)``."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    client.execute()
    return nb, time.perf_counter() - start


def stamp(nb, seconds: float) -> None:
    nb.metadata["tinycnn"] = {"code_sha256": code_hash(nb), "seconds": round(seconds, 1)}


def problems(nb) -> list[str]:
    """Why a committed notebook is not fresh (an empty list when it is)."""
    found = []
    recorded = nb.metadata.get("tinycnn", {}).get("code_sha256")
    if recorded is None:
        found.append("never executed by tutorials/run.py (no metadata.tinycnn stamp)")
    elif recorded != code_hash(nb):
        found.append("code changed since the outputs were produced; re-run `python tutorials/run.py`")
    counts = [cell.get("execution_count") for cell in nb.cells if cell.cell_type == "code"]
    if counts != list(range(1, len(counts) + 1)):
        found.append(f"code cells were not run once, top to bottom, in one kernel: execution counts {counts}")
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                found.append(f"cell {i} has an error output: {out.get('ename')}: {out.get('evalue')}")
    if not any("image/png" in out.get("data", {}) for cell in nb.cells for out in cell.get("outputs", [])):
        found.append("no figure (image/png output) in the notebook")
    return found


def main(argv=None) -> int:
    import nbformat

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", type=Path, help="notebooks (default: every numbered tutorial)")
    parser.add_argument("--check", action="store_true", help="only check the committed notebooks are fresh")
    args = parser.parse_args(argv)
    paths = [p.resolve() for p in args.paths] or notebooks()
    failed = False
    for path in paths:
        if args.check:
            found = problems(nbformat.read(path, as_version=4))
            failed |= bool(found)
            print(f"{path.name}: {'fresh' if not found else '; '.join(found)}")
            continue
        nb, seconds = execute(path)
        stamp(nb, seconds)
        sys.path.insert(0, str(HERE.parent))
        from tinycnn.io import atomic_write_text
        atomic_write_text(path, nbformat.writes(nb) + "\n")
        over = " (OVER the budget)" if seconds > BUDGET_SECONDS else ""
        failed |= bool(over)
        print(f"{path.name}: executed in {seconds:.1f} s{over}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
