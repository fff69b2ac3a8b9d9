"""Subcommands of the ``beatguard`` command, one module each."""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path


def finite_float(text: str) -> float:
    """Argparse type: a float that is neither NaN nor infinite.

    Raises
    ------
    argparse.ArgumentTypeError
        For text that is not a finite number (argparse prints one line).
    """
    try:
        value = float(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from err
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def writable_folder(path: str | Path, what: str) -> Path:
    """Create ``path`` if needed and check that files can be written in it.

    Called before long work (training, a capture) so that an output place
    that cannot be written fails at once, in one line, not at the end.

    Raises
    ------
    ConfigError
        The folder cannot be created or written.
    """
    from beatguard.device.errors import ConfigError

    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".beatguard-write-test"):
            pass
    except OSError as err:
        raise ConfigError(
            f"{what} {folder}: cannot write there ({err.strerror or err})"
        ) from err
    return folder
