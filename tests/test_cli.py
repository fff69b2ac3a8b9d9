"""The ``beatguard`` command starts and lists its subcommands."""

from __future__ import annotations

import subprocess
import sys


def test_beatguard_help_lists_subcommands():
    result = subprocess.run(
        [sys.executable, "-m", "beatguard.cli", "--help"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "usage: beatguard" in result.stdout


def test_unwritable_output_is_refused_in_one_line_before_any_training(mitdb):
    result = subprocess.run(
        [sys.executable, "-m", "beatguard.cli", "train", str(mitdb / "105")]
        + ["--minutes", "5", "--out", "/proc/beatguard-no-such-place"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("beatguard train: --out /proc/beatguard-no-such-place")
    assert "cannot write there" in lines[-1]
    assert "Traceback" not in result.stderr
    assert "training on" not in result.stderr  # refused before the model is fitted
