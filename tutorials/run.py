"""Execute the tutorial notebooks in place and stamp them, or check that the committed ones are fresh.

    python tutorials/run.py                      # run every numbered notebook, save outputs + stamp
    python tutorials/run.py tutorials/04_*.ipynb # just these
    python tutorials/run.py --check              # no execution: is every committed notebook fresh?

A notebook is committed *with* its outputs so it reads well on a repository page. Its outputs are
only worth reading if they came from the code beside them *and* from the library as it is now, so
executing a notebook writes a stamp into its metadata::

    metadata["tinycnn"] = {"code_sha256":    <hash of every code cell's source, in order>,
                           "library_sha256": <hash of every tinycnn/**/*.py, sorted by path>,
                           "seconds":        <run time>}

``--check`` (and ``tests/test_tutorials.py``) recomputes both hashes. A notebook is stale when
its code cells changed since it was executed ("code changed"), or when anything in ``tinycnn/``
changed since it was executed ("tinycnn/ changed"): either way, re-run it. Markdown edits need no
re-run. The notebooks assert every claim they make next to the number that backs it, so executing
one (here, or in the slow test, which runs every notebook from scratch in CI) fails as soon as a
claim stops being true.

Notebooks run with the ``tutorials/`` folder as working directory and need the real MedMNIST files
(``$TINYCNN_DATA`` or ``~/.medmnist``), like the rest of the project. Some need an optional
extra (``REQUIRES``); without it they stop in their first cell with a message that says so.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
LIBRARY = HERE.parent / "tinycnn"
BUDGET_SECONDS = 120          # each tutorial must run top to bottom within this on 2 cores
CELL_TIMEOUT = 300

#: Notebooks that cannot run without an optional extra: {notebook: (pip extra, modules it brings)}.
REQUIRES = {"08_tinycnn_vs_keras.ipynb": ("keras", ("keras", "tensorflow"))}


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


def library_hash(root: Path = LIBRARY) -> str:
    """SHA-256 over every ``*.py`` file under ``root`` (``tinycnn/``): its path, then its contents,
    file after file sorted by path."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py"), key=lambda p: p.relative_to(root).as_posix()):
        digest.update(path.relative_to(root).as_posix().encode("utf-8") + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def missing_requirement(path: Path) -> str | None:
    """What a notebook needs and this Python lacks (``'keras (pip install -e ".[keras]")'``), or None."""
    extra, modules = REQUIRES.get(path.name, (None, ()))
    lacking = [name for name in modules if importlib.util.find_spec(name) is None]
    return f'{" and ".join(lacking)} (pip install -e ".[{extra}]")' if lacking else None


def execute(path: Path, timeout: int = CELL_TIMEOUT):
    """Run a notebook top to bottom in a fresh kernel; returns ``(executed notebook, seconds)``.

    Raises ``nbclient.exceptions.CellExecutionError`` at the first cell that raises — a failed
    ``assert`` included — with that cell's source and traceback in the message."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    client.execute()
    return nb, time.perf_counter() - start


def stamp(nb, seconds: float, library: str | None = None) -> None:
    """Record what the outputs came from: the code cells, the library (now, unless given), the run time."""
    nb.metadata["tinycnn"] = {"code_sha256": code_hash(nb), "library_sha256": library or library_hash(),
                              "seconds": round(seconds, 1)}


def problems(nb, library: str | None = None) -> list[str]:
    """Why a committed notebook is not fresh (an empty list when it is). ``library``: the current
    :func:`library_hash`, if already computed."""
    found = []
    recorded = nb.metadata.get("tinycnn", {})
    if "code_sha256" not in recorded:
        found.append("never executed by tutorials/run.py (no metadata.tinycnn stamp)")
    else:
        if recorded["code_sha256"] != code_hash(nb):
            found.append("code changed since the outputs were produced; re-run `python tutorials/run.py`")
        if "library_sha256" not in recorded:
            found.append("executed before run.py recorded the library (no library_sha256); re-run it")
        elif recorded["library_sha256"] != (library or library_hash()):
            found.append("tinycnn/ changed since it was executed; re-run `python tutorials/run.py`")
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
        library = library_hash()                  # the library as it is now
        if args.check:
            found = problems(nbformat.read(path, as_version=4), library)
            failed |= bool(found)
            print(f"{path.name}: {'fresh' if not found else '; '.join(found)}")
            continue
        lacking = missing_requirement(path)
        if lacking:
            failed = True
            print(f"{path.name}: not executed, it needs {lacking}")
            continue
        try:
            nb, seconds = execute(path)
        except Exception as err:                  # a cell raised (a claim's assert failed?): say which
            failed = True
            print(f"{path.name}: FAILED, nothing saved\n{err}")
            continue
        if library_hash() != library:
            failed = True
            print(f"{path.name}: tinycnn/ changed while it ran; nothing saved, run it again")
            continue
        stamp(nb, seconds, library)
        sys.path.insert(0, str(HERE.parent))
        from tinycnn.io import atomic_write_text
        atomic_write_text(path, nbformat.writes(nb) + "\n")
        over = " (OVER the budget)" if seconds > BUDGET_SECONDS else ""
        failed |= bool(over)
        print(f"{path.name}: executed in {seconds:.1f} s{over}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
