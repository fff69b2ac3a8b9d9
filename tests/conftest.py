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
#: How many times longer than on a native machine a test may wait for a
#: process or a link event: 1 here, set by the ARM check under emulation
#: (10 to 300 times slower). Only waits for something that must happen are
#: stretched; a "nothing happens within t" check keeps its t.
TIME_SCALE = float(os.environ.get("BEATGUARD_TIME_SCALE", "1"))


@pytest.fixture(scope="session")
def scaled():
    """``scaled(seconds)``: an upper bound on a wait, times ``TIME_SCALE``."""

    def _scaled(seconds: float) -> float:
        return seconds * TIME_SCALE

    return _scaled


@pytest.fixture(scope="session")
def beatguard_cli():
    """``beatguard_cli(*argv)``: run ``beatguard ARGV...`` in a fresh process.

    Returns the ``subprocess.CompletedProcess`` with text stdout and stderr;
    it may run for up to 300 s (a training run).
    """
    import subprocess
    import sys

    def _run(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "beatguard.cli", *argv],
            capture_output=True,
            text=True,
            timeout=300,
        )

    return _run


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


@pytest.fixture(scope="session")
def bundle_106(mitdb, tmp_path_factory) -> Path:
    """A small int8 model bundle trained on the first 5 minutes of record 106.

    Made with ``beatguard train`` (few epochs, so it takes about a minute)
    and ``beatguard convert``. Set ``BEATGUARD_TEST_BUNDLE_106`` to the
    folder of one already made to skip the training while iterating.
    """
    import subprocess
    import sys

    reuse = os.environ.get("BEATGUARD_TEST_BUNDLE_106")
    if reuse:
        return Path(reuse)
    out = tmp_path_factory.mktemp("bundle_106")
    cli = [sys.executable, "-m", "beatguard.cli"]
    for argv in (
        ["train", str(mitdb / "106"), "--minutes", "5", "--out", str(out)]
        + ["--epochs", "5", "--first-pass-epochs", "3"],
        ["convert", str(out)],
    ):
        result = subprocess.run(cli + argv, capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, result.stderr[-3000:]
    return out
