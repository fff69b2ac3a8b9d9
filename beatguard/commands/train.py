"""``beatguard train RECORD... --minutes M --out DIR``: train a personal model.

Cuts the first minutes of each record with the device chain, trains the
LSTM autoencoder on them without labels (dropping the worst-rebuilt beats
and refitting), calibrates the threshold and writes a run folder that
``beatguard convert DIR`` turns into a model bundle.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from beatguard.commands import (
    add_read_arguments,
    number,
    positive,
    positive_int,
    read_options,
    whole,
    writable_folder,
)
from beatguard.device.chain import ChainConfig


def min_window_points(chain: ChainConfig) -> int:
    """Fewest beat-window points that show the band-passed ECG faithfully.

    The window resamples the ECG band-passed below ``bandpass_high_hz``
    over ``window_before_s + window_after_s``; its points must be at most
    half a period of that edge apart (Nyquist), or a QRS aliases into a few
    blurred points. With the defaults, 2 x 40 Hz x 0.7 s + 1 = 57.
    """
    span_s = chain.window_before_s + chain.window_after_s
    return math.ceil(round(2 * chain.bandpass_high_hz * span_s, 6)) + 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from beatguard.train.fit import TrainSettings

    chain = ChainConfig()
    settings = TrainSettings()
    min_points = min_window_points(chain)
    span_s = chain.window_before_s + chain.window_after_s
    parser.add_argument("records", nargs="+", metavar="RECORD", help="record paths")
    parser.add_argument(
        "--minutes",
        type=positive,
        default=5.0,
        help="training minutes from each start",
    )
    parser.add_argument("--out", required=True, help="run folder to write")
    add_fit_arguments(parser)
    parser.add_argument(
        "--false-alarm-rate",
        type=number(above=0, below=0.5),
        default=None,
        help="target share of normal beats above the threshold, between 0 and 0.5 "
        f"(default: {settings.target_false_alarm_rate:g})",
    )
    parser.add_argument(
        "--units",
        type=positive_int,
        default=None,
        help="LSTM units of encoder and decoder "
        f"(default: {settings.spec.encoder_units})",
    )
    parser.add_argument(
        "--window-points",
        type=number(int, low=min_points),
        default=None,
        help=f"points per beat window, at least {min_points}: fewer points over "
        f"the {span_s:g} s window would sample the {chain.bandpass_high_hz:g} Hz "
        "band-passed ECG below its Nyquist rate and blur each QRS into a few "
        f"points (default: {chain.window_points})",
    )
    add_read_arguments(parser)


def add_fit_arguments(parser: argparse.ArgumentParser) -> None:
    """``--epochs``, ``--first-pass-epochs`` and ``--seed`` (train, evaluate)."""
    from beatguard.train.fit import TrainSettings

    s = TrainSettings()
    parser.add_argument(
        "--epochs",
        type=positive_int,
        default=None,
        help=f"final-fit epochs, run as given (default: {s.epochs}, more for few "
        f"beats: at least {s.min_fit_steps} gradient steps)",
    )
    parser.add_argument(
        "--first-pass-epochs",
        type=positive_int,
        default=None,
        help=f"outlier-pass epochs, run as given (default: {s.first_pass_epochs}, "
        f"more for few beats: at least {s.first_pass_min_steps} gradient steps)",
    )
    parser.add_argument("--seed", type=whole, default=0, help="random seed")


def fit_settings(args: argparse.Namespace):
    """TrainSettings from the flags of :func:`add_fit_arguments`."""
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
    return settings


def settings_from_args(args: argparse.Namespace):
    """TrainSettings from the command-line flags (defaults where not given)."""
    from dataclasses import replace

    settings = fit_settings(args)
    if args.false_alarm_rate is not None:
        settings = replace(settings, target_false_alarm_rate=args.false_alarm_rate)
    if args.units is not None:
        spec = replace(
            settings.spec, encoder_units=args.units, decoder_units=args.units
        )
        settings = replace(settings, spec=spec)
    return settings


def _remove_empty(folders: list[Path]) -> None:
    """Remove ``folders`` (deepest first) while they are empty; keep the rest."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


def run(args: argparse.Namespace) -> int:
    from beatguard.train.personal import train_personal

    out = Path(args.out)
    created = [folder for folder in (out, *out.parents) if not folder.exists()]
    writable_folder(out, "--out")
    overrides = {}
    if args.window_points is not None:
        overrides["window_points"] = args.window_points
    try:
        result = train_personal(
            args.records,
            out,
            minutes=args.minutes,
            settings=settings_from_args(args),
            chain_overrides=overrides,
            read_options=read_options(args),
        )
    except BaseException:
        _remove_empty(created)
        raise
    print(json.dumps({"out": str(args.out), **result.summary()}))
    print(f"next: beatguard convert {args.out}")
    return 0
