"""Shared test fixtures.

Tests that need the real MedMNIST files or Keras *skip* on a developer's machine that lacks them,
but *fail* when ``CI=true``: in CI a missing dependency is a broken set-up, not a reason to pass.
"""

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
