"""Subcommands of the ``beatguard`` command, one module each."""

from __future__ import annotations

import argparse
import math


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
