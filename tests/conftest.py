"""Shared test fixtures.

Tests that need the real MedMNIST files or Keras *skip* on a developer's machine that lacks them,
but *fail* when ``CI=true``: in CI a missing dependency is a broken set-up, not a reason to pass.
"""

import importlib.util
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

REPO = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() == "true"

# Hypothesis: no per-example deadline (the machine is shared and noisy); derandomized in CI so a
# run is reproducible from its log.
settings.register_profile(
    "default", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "ci", deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("ci" if IN_CI else "default")


def missing(what: str) -> None:
    """Fail in CI, skip elsewhere, with a message that says what is missing."""
    if IN_CI:
        pytest.fail(f"{what} is missing, and CI=true requires it", pytrace=False)
    pytest.skip(f"{what} is missing")


def _medmnist_dir() -> Path | None:
    candidates = []
    if os.environ.get("TINYCNN_DATA"):
        candidates.append(Path(os.environ["TINYCNN_DATA"]))
    candidates.append(REPO.parent / "shared" / "medmnist")
    for folder in candidates:
        if (folder / "pneumoniamnist.npz").is_file():
            return folder
    return None


@pytest.fixture(scope="session")
def medmnist_dir() -> Path:
    """The folder holding the real official MedMNIST files (``$TINYCNN_DATA`` or ../shared/medmnist)."""
    folder = _medmnist_dir()
    if folder is None:
        missing("the real MedMNIST files ($TINYCNN_DATA or ../shared/medmnist)")
    return folder


def load_script(path: Path, name: str | None = None):
    """A script that is not part of the package (``benchmarks/*.py``, ``tutorials/run.py``), imported
    by path."""
    spec = importlib.util.spec_from_file_location(name or Path(path).stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def keras():
    """Keras with the TensorFlow backend (skip, or fail in CI, without them)."""
    try:
        import keras
        import tensorflow  # noqa: F401  (the backend)
    except ImportError:
        missing("Keras with the TensorFlow backend (pip install -e \".[keras]\")")
    return keras


@pytest.fixture
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No $TINYCNN_DATA and a fresh empty $HOME: only the folders a test names are searched, and the
    real ~/.medmnist is never touched."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.delenv("TINYCNN_DATA", raising=False)
    monkeypatch.setenv("HOME", str(home))
    return home
