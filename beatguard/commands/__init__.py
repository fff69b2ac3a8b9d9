"""Subcommands of the ``beatguard`` command, one module each."""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path

from beatguard.device.limits import Limits


def number(kind: type = float, **limits: float) -> Callable[[str], float]:
    """Argparse type: a finite ``kind`` (int or float) within ``limits``.

    ``limits`` are those of :class:`~beatguard.device.config.Limits`
    (``low``, ``high`` inclusive; ``above``, ``below`` strict), e.g.
    ``number(int, low=1)``; a value outside them is refused by argparse in
    one line ("must be at least 1, not 0").
    """
    return Limits(**limits).argparse_type(kind)


#: Argparse types of the common kinds of number.
finite_float = number()  # any float but NaN and infinity
positive = number(above=0)  # seconds, minutes, hertz, speeds
non_negative = number(low=0)
share = number(low=0, high=1)  # a probability
whole = number(int, low=0)  # counts, seeds, signal numbers: 0, 1, 2, ...
positive_int = number(int, low=1)


def add_read_arguments(parser: argparse.ArgumentParser) -> None:
    """``--fs-hz``, ``--gain`` and ``--baseline``: how to read a CSV or UCR file.

    WFDB records carry their own; :func:`read_options` turns the flags into
    keyword arguments of ``read_record``.
    """
    parser.add_argument(
        "--fs-hz",
        type=positive,
        default=None,
        help="sample rate of CSV captures or UCR files that do not state one "
        "(no default: such a file is refused without it)",
    )
    parser.add_argument(
        "--gain",
        type=positive,
        default=None,
        help="CSV/UCR values per millivolt (default: values are millivolts)",
    )
    parser.add_argument(
        "--baseline",
        type=finite_float,
        default=None,
        help="CSV/UCR value of 0 mV (default: 0)",
    )


def read_options(args: argparse.Namespace) -> dict:
    """``read_record`` keywords from the flags of :func:`add_read_arguments`."""
    options = {
        "fs_hz": args.fs_hz,
        "gain_counts_per_mv": args.gain,
        "baseline_counts": args.baseline,
    }
    return {key: value for key, value in options.items() if value is not None}


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` with each option's default: "(default: 5)" after its help.

    A required option says "(required)" instead. Left out where there is
    nothing to show: a default of None or an empty list (the help then says
    what happens without the option), a flag that is off unless given, and a
    help that already names its default.
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if action.required and action.option_strings:
            return f"{text} (required)"
        if (
            not action.option_strings
            or default is None
            or default is False
            or default == []
            or default is argparse.SUPPRESS
            or "default" in text
        ):
            return text
        return f"{text} (default: %(default)s)"


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
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{what} {folder}: cannot write there (a file, not a folder)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".beatguard-write-test"):
            pass
    except OSError as err:
        raise ConfigError(
            f"{what} {folder}: cannot write there ({err.strerror or err})"
        ) from err
    return folder


def require_annotated_wfdb(path: str | Path) -> None:
    """Refuse, before any work, a record an evaluation cannot score.

    The evaluations match detected beats to reference beats, which only a
    WFDB record's ``.atr`` annotations give: a CSV capture has none, and a
    UCR file's beats are cut out of their recording.

    Raises
    ------
    RecordNotFound
        ``path`` is not a WFDB record.
    RecordFormatError
        The record has no ``.atr`` annotations.
    """
    from beatguard.device.errors import RecordFormatError, RecordNotFound
    from beatguard.device.records import is_wfdb

    if not is_wfdb(path):
        if not Path(path).exists():
            raise RecordNotFound(f"{path}: no such record or file")
        raise RecordFormatError(
            f"{path}: not a WFDB record; the evaluations need reference beats "
            "(a .hea/.dat record with its .atr annotations)"
        )
    if not Path(path).with_suffix(".atr").exists():
        raise RecordFormatError(
            f"{path}: no reference annotations (.atr) to evaluate against"
        )
