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
