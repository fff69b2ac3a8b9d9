"""The ``beatguard`` command: one subcommand per job, imported lazily.

Each subcommand lives in ``beatguard.commands.<name>`` and provides
``add_arguments(parser)`` and ``run(args) -> int``. Importing them lazily
keeps ``beatguard run`` on a Pi free of TensorFlow.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from beatguard import __version__
from beatguard.commands import DefaultsHelpFormatter
from beatguard.device.errors import BeatguardError

SUBCOMMANDS: dict[str, str] = {
    "train": "train a personal LSTM autoencoder on normal beats of records",
    "convert": "quantize a trained model to a full-int8 TFLite bundle",
    "evaluate": "measure QRS detection or personal-model beat scoring",
    "run": "the device runtime: serial port in, scored beats and alerts out",
    "simulate": "replay a record as a board would, on a pseudo-terminal",
    "capture": "record a board's stream as a WFDB record",
    "demo": "train, convert, simulate and run on the bundled record",
    "bench": "run the benchmark suite and write benchmarks/results.md",
}


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every subcommand that can be imported."""
    parser = argparse.ArgumentParser(
        prog="beatguard",
        description="Catch abnormal heartbeats on a worn ECG device: train a "
        "personal int8 model on a workstation, run it on a Raspberry Pi.",
        epilog="Run 'beatguard COMMAND --help' for the options of each command.",
        formatter_class=DefaultsHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=__version__)
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, help_text in SUBCOMMANDS.items():
        module = _command_module(name)
        if module is None:
            continue
        cmd = sub.add_parser(
            name,
            help=help_text,
            description=help_text,
            formatter_class=DefaultsHelpFormatter,
        )
        module.add_arguments(cmd)
        cmd.set_defaults(_run=module.run)
    return parser


def _command_module(name: str):
    try:
        return importlib.import_module(f"beatguard.commands.{name}")
    except ModuleNotFoundError as err:
        if err.name == f"beatguard.commands.{name}":
            return None
        raise


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``beatguard`` console command."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    logging.captureWarnings(True)
    try:
        return int(args._run(args) or 0)
    except BeatguardError as err:
        print(f"beatguard {args.command}: {err}", file=sys.stderr)
        return 1
    except (ValueError, OverflowError) as err:
        # A value no check caught before it reached a library: still one line
        # for the user; with -v the traceback is shown for a bug report.
        if args.verbose:
            raise
        print(
            f"beatguard {args.command}: invalid value: {err} (run with -v for details)",
            file=sys.stderr,
        )
        return 1
    except OSError as err:
        # A file or folder the command could not read or write (full disk,
        # read-only place): one line naming it; -v shows the traceback.
        if args.verbose:
            raise
        where = f"{err.filename}: " if err.filename else ""
        print(
            f"beatguard {args.command}: {where}{err.strerror or err}",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        print(f"beatguard {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
