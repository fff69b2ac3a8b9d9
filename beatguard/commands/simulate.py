"""``beatguard simulate RECORD``: replay a record as a board would.

Creates a pseudo-terminal, prints the path a client should open as the
first line on standard output, waits for a client (opening an Uno's port
resets it), then writes the record as beatguard frames (or text lines with
``--text``) at real-time pace or ``--speed`` times faster, with the faults
asked for, and exits when the record ends. SIGINT (Ctrl-C) and SIGTERM end
the replay early, cleanly (exit status 0), as they end ``beatguard run``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading

from beatguard.commands import (
    add_read_arguments,
    non_negative,
    positive,
    positive_int,
    read_options,
    share,
    whole,
)
from beatguard.device.errors import BeatguardError, ConfigError

log = logging.getLogger(__name__)


def _interval(text: str) -> tuple[float, float]:
    try:
        start, duration = (float(part) for part in text.split(":"))
    except ValueError as err:
        raise argparse.ArgumentTypeError(
            f"expected START_S:DURATION_S (e.g. 120:30), not {text!r}"
        ) from err
    if start < 0 or duration <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: start >= 0 and duration > 0")
    return start, duration


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "record",
        help="WFDB record (e.g. ../shared/data/mitdb/106) or CSV capture (one "
        "value column needs --fs-hz)",
    )
    parser.add_argument("--channel", type=whole, default=0, help="signal number")
    add_read_arguments(parser)
    parser.add_argument(
        "--start-minute", type=non_negative, default=0.0, help="replay from this minute"
    )
    parser.add_argument(
        "--minutes",
        type=positive,
        default=None,
        help="replay this many minutes (default: to the end of the record)",
    )
    parser.add_argument(
        "--speed", type=positive, default=1.0, help="times faster than real time"
    )
    parser.add_argument(
        "--text",
        action="store_true",
        help="send one number per line ('!' while leads are off), like the "
        "AD8232 example sketches, instead of beatguard frames",
    )
    parser.add_argument(
        "--link",
        metavar="PATH",
        help="keep a symlink here to the current pty (removed while unplugged; "
        "default: none, the pty's own name is printed)",
    )
    parser.add_argument(
        "--port",
        metavar="DEVICE",
        help="write to this real serial port (default: none, a new pseudo-terminal)",
    )
    parser.add_argument(
        "--baud", type=positive_int, default=115200, help="line speed of --port"
    )
    faults = parser.add_argument_group("faults")
    faults.add_argument(
        "--corrupt-rate",
        type=share,
        default=0.0,
        help="probability that a byte is replaced by another, 0 to 1",
    )
    faults.add_argument(
        "--drop-rate",
        type=share,
        default=0.0,
        help="probability that a byte is dropped, 0 to 1",
    )
    faults.add_argument(
        "--leads-off",
        type=_interval,
        action="append",
        default=[],
        metavar="START_S:DURATION_S",
        help="an electrode off for DURATION_S from START_S of the replay "
        "(repeatable; default: none)",
    )
    outages = faults.add_mutually_exclusive_group()
    outages.add_argument(
        "--disconnects", type=whole, default=0, help="port outages spread over the run"
    )
    outages.add_argument(
        "--disconnect-every",
        type=positive,
        metavar="S",
        help="a port outage every S seconds of record time, instead of "
        "--disconnects (default: none)",
    )
    faults.add_argument(
        "--outage-s",
        type=non_negative,
        default=1.0,
        help="wall seconds each outage lasts",
    )
    faults.add_argument(
        "--outage-pauses-record",
        action="store_true",
        help="resume the replay where it stopped after an outage instead of "
        "losing the samples due meanwhile (same beats as a run without outages)",
    )
    faults.add_argument(
        "--board-resets",
        type=whole,
        default=0,
        help="board reboots (boot text, counter from zero) spread over the run",
    )
    parser.add_argument("--seed", type=whole, default=0, help="seed of the faults")
    parser.add_argument(
        "--no-wait",
        action="store_true",
        help="stream at once instead of waiting for a client to open the port",
    )


def run(args: argparse.Namespace) -> int:
    from beatguard.commands.run import _stop_on_signals
    from beatguard.firmware_bridge.simulator import Faults

    try:
        faults = Faults(
            corrupt_rate=args.corrupt_rate,
            drop_rate=args.drop_rate,
            leads_off=tuple(args.leads_off),
            disconnects=args.disconnects,
            disconnect_every_s=args.disconnect_every,
            outage_s=args.outage_s,
            board_resets=args.board_resets,
            outage_pauses_record=args.outage_pauses_record,
        )
    except ValueError as err:
        raise ConfigError(str(err)) from err
    stop = threading.Event()
    if args.port and args.link:
        raise ConfigError("--link names a pseudo-terminal; it cannot go with --port")
    try:
        sim = _simulator(args, faults, stop)
    except BeatguardError:
        raise
    except ValueError as err:
        raise ConfigError(str(err)) from err
    with _stop_on_signals(stop):
        _replay(args, sim)
    return 0


def _replay(args: argparse.Namespace, sim) -> None:
    """Print the port, stream until the record ends or ``stop``, then the stats."""
    print(sim.path, flush=True)
    if args.text:
        # Plain text carries no announce: the reader must be told the front end.
        print(
            f"text mode: read it with beatguard run --text-fs-hz {sim.fs_hz:g} "
            f"--text-adc-bits {sim.adc_bits} --text-gain-counts-per-mv "
            f"{sim.gain_counts_per_mv:g} --text-baseline-counts {sim.baseline_counts}",
            file=sys.stderr,
            flush=True,
        )
    sim.start()
    while not sim.join(timeout_s=0.2):
        pass
    sim.stop()
    s = sim.stats
    print(
        f"sent {s.samples_sent} samples ({s.samples_skipped} skipped), "
        f"{s.bytes_written} bytes ({s.bytes_corrupted} corrupted, "
        f"{s.bytes_dropped} dropped), {len(s.outages)} outage(s), "
        f"{len(s.resets)} reset(s)",
        file=sys.stderr,
    )


def _simulator(args: argparse.Namespace, faults, stop: threading.Event):
    from beatguard.firmware_bridge.simulator import BoardSimulator

    return BoardSimulator.from_record(
        args.record,
        channel=args.channel,
        read_options=read_options(args),
        start_minute=args.start_minute,
        minutes=args.minutes,
        speed=args.speed,
        text=args.text,
        faults=faults,
        link_path=args.link,
        wait_for_client=not (args.no_wait or args.port),
        seed=args.seed,
        stop_event=stop,
        serial_port=args.port,
        baud=args.baud,
    )
