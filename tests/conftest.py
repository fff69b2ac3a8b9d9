"""Shared fixtures: where the real ECG data lives, and skips when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(
    os.environ.get("BEATGUARD_SHARED_DATA", REPO.parent / "shared" / "data")
)
MITDB = SHARED_DATA / "mitdb"
ECG5000 = SHARED_DATA / "ecg5000" / "ECG5000_TRAIN.txt"


@pytest.fixture(scope="session")
def mitdb() -> Path:
    """Folder of the MIT-BIH records; skips the test when it is absent."""
    if not (MITDB / "106.hea").exists():
        pytest.skip(f"MIT-BIH records not found at {MITDB} (../shared/data absent)")
    return MITDB


@pytest.fixture(scope="session")
def ecg5000() -> Path:
    """The UCR ECG5000 training file; skips the test when it is absent."""
    if not ECG5000.exists():
        pytest.skip(f"ECG5000 not found at {ECG5000} (../shared/data absent)")
    return ECG5000
