"""``beatguard train RECORD... --minutes M --out DIR``: train a personal model.

Cuts the first minutes of each record with the device chain, trains the
LSTM autoencoder on them without labels (dropping the worst-rebuilt beats
and refitting), calibrates the threshold and writes a run folder that
``beatguard convert DIR`` turns into a model bundle.
"""

from __future__ import annotations

import argparse
import json

from beatguard.commands import finite_float, writable_folder
from beatguard.device.errors import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("records", nargs="+", metavar="RECORD", help="record paths")
    parser.add_argument(
        "--minutes",
        type=finite_float,
        default=5.0,
        help="training minutes from each start",
    )
    parser.add_argument("--out", required=True, help="run folder to write")
    parser.add_argument("--epochs", type=int, default=None, help="final-fit epochs")
    parser.add_argument(
        "--first-pass-epochs", type=int, default=None, help="outlier-pass epochs"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument(
        "--false-alarm-rate",
        type=finite_float,
        default=None,
        help="target share of normal beats above the threshold",
    )
    parser.add_argument(
        "--units", type=int, default=None, help="LSTM units of encoder and decoder"
    )
    parser.add_argument(
        "--window-points", type=int, default=None, help="points per beat window"
    )
    parser.add_argument(
        "--fs-hz",
        type=finite_float,
        default=None,
        help="sample rate of CSV captures or UCR files that do not state one",
    )
    parser.add_argument(
        "--gain",
        type=finite_float,
        default=None,
        help="CSV/UCR values per millivolt (default: values are millivolts)",
    )
    parser.add_argument(
        "--baseline", type=finite_float, default=None, help="CSV/UCR value of 0 mV"
    )


def settings_from_args(args: argparse.Namespace):
    """TrainSettings from the command-line flags (defaults where not given)."""
    from dataclasses import replace

    from beatguard.train.fit import TrainSettings

    settings = TrainSettings(seed=args.seed)
    if args.epochs is not None:
        # Epochs given on the command line are run as given, however few
        # the beats (no minimum of gradient steps).
        settings = replace(settings, epochs=args.epochs, min_fit_steps=0)
    if args.first_pass_epochs is not None:
        settings = replace(
            settings, first_pass_epochs=args.first_pass_epochs, first_pass_min_steps=0
        )
    if args.false_alarm_rate is not None:
        if not 0 < args.false_alarm_rate < 0.5:
            raise ConfigError(
                f"--false-alarm-rate {args.false_alarm_rate} not in (0, 0.5)"
            )
        settings = replace(settings, target_false_alarm_rate=args.false_alarm_rate)
    if args.units is not None:
        spec = replace(
            settings.spec, encoder_units=args.units, decoder_units=args.units
        )
        settings = replace(settings, spec=spec)
    return settings


def _read_options(args: argparse.Namespace) -> dict:
    options = {
        "fs_hz": args.fs_hz,
        "gain_counts_per_mv": args.gain,
        "baseline_counts": args.baseline,
    }
    return {key: value for key, value in options.items() if value is not None}


def run(args: argparse.Namespace) -> int:
    from beatguard.train.personal import train_personal

    if args.minutes <= 0:
        raise ConfigError(f"--minutes {args.minutes} must be positive")
    writable_folder(args.out, "--out")
    overrides = {}
    if args.window_points is not None:
        overrides["window_points"] = args.window_points
    result = train_personal(
        args.records,
        args.out,
        minutes=args.minutes,
        settings=settings_from_args(args),
        chain_overrides=overrides,
        read_options=_read_options(args),
    )
    print(json.dumps({"out": str(args.out), **result.summary()}))
    print(f"next: beatguard convert {args.out}")
    return 0
