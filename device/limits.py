"""The values a number setting may take, checked in one place.

Used by the runtime's settings (flags and TOML, :mod:`beatguard.device.config`),
the alert policy's own checks and the commands' argparse types, so that a
limit is written once and says the same thing wherever a value breaks it.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """The values a number may take: finite, and within the bounds given.

    Attributes
    ----------
    low, high : float, optional
        Smallest and largest value allowed.
    above, below : float, optional
        Bounds the value must lie strictly beyond (``above=0``: positive).
    """

    low: float | None = None
    high: float | None = None
    above: float | None = None
    below: float | None = None

    def problem(self, value: float) -> str | None:
        """What is wrong with ``value`` ("must be more than 0"), or None."""
        if not math.isfinite(value):
            return "must be a finite number"
        if self.above is not None and not value > self.above:
            return f"must be more than {self.above:g}"
        if self.low is not None and value < self.low:
            return f"must be at least {self.low:g}"
        if self.below is not None and not value < self.below:
            return f"must be less than {self.below:g}"
        if self.high is not None and value > self.high:
            return f"must be at most {self.high:g}"
        return None

    def argparse_type(self, kind: type = float) -> Callable[[str], float]:
        """An argparse ``type``: text to ``kind`` (int or float), checked.

        Its ``argparse.ArgumentTypeError`` is one line, e.g. "must be at
        least 1, not 0".
        """

        def parse(text: str) -> float:
            try:
                value = kind(text)
            except ValueError as err:
                what = "a whole number" if kind is int else "a number"
                raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from err
            problem = self.problem(value)
            if problem is not None:
                raise argparse.ArgumentTypeError(f"{problem}, not {text}")
            return value

        parse.__name__ = kind.__name__
        return parse
