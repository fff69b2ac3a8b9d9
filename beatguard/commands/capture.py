"""``beatguard capture``: record a board's stream as a WFDB record.

The first step of the personal-model workflow: wear the electrodes at
rest, capture a few minutes, then ``beatguard train NAME --minutes M --out
DIR`` and ``beatguard convert DIR``. The record keeps the board's own ADC
counts, gain and baseline, a ``leads_off`` channel when a lead came off,
and NaN for samples lost on the link, so its sample indices are those of
the stream. Ctrl-C or SIGTERM stops early and still writes what arrived.
"""

from __future__ import annotations

import argparse
import logging
import threading
import time
from pathlib import Path

from beatguard.commands import (
    finite_float,
    non_negative,
    positive,
    positive_int,
    writable_folder,
)
from beatguard.device.config import ADC_BITS
from beatguard.device.errors import LinkError

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--port", required=True, help="serial port or pyserial URL of the board"
    )
    parser.add_argument(
        "--minutes",
        type=positive,
        required=True,
        help="how much to record, minutes",
    )
    parser.add_argument(
        "--out",
        required=True,
        metavar="NAME",
        help="record path without extension (captures/me writes captures/me.hea "
        "and captures/me.dat)",
    )
    parser.add_argument(
        "--baud", type=positive_int, default=115200, help="serial speed"
    )
    parser.add_argument(
        "--text-fs-hz",
        type=positive,
        default=None,
        help="read a plain-text AD8232 sketch at this sample rate (Hz; default: "
        "beatguard frames, whose rate the board announces)",
    )
    parser.add_argument(
        "--text-gain-counts-per-mv",
        type=positive,
        default=225.0,
        help="text mode: ADC counts per mV",
    )
    parser.add_argument(
        "--text-baseline-counts",
        type=finite_float,
        default=512.0,
        help="text mode: ADC count of 0 mV",
    )
    parser.add_argument(
        "--text-adc-bits",
        type=ADC_BITS.argparse_type(int),
        default=10,
        help="text mode: ADC bits, 0 to 24 (0: no saturation check)",
    )
    parser.add_argument(
        "--wait-s",
        type=non_negative,
        default=30.0,
        help="give up when the port has not appeared after this many seconds",
    )


def run(args: argparse.Namespace) -> int:
    from beatguard.commands.run import _stop_on_signals

    out = Path(args.out)
    writable_folder(out.parent, "capture folder")
    stop = threading.Event()
    with _stop_on_signals(stop):
        path, stats = capture(args, out, stop)
    print(
        f"beatguard capture: wrote {path} ({stats['minutes']:.2f} min, "
        f"{stats['samples']} samples at {stats['fs_hz']:g} Hz, "
        f"{stats['missing']} lost, {stats['leads_off']} with leads off)"
    )
    return 0


def capture(args: argparse.Namespace, out: Path, stop: threading.Event):
    """Read the port until ``args.minutes`` of stream arrived, then write."""
    import numpy as np

    from beatguard.device.recorder import StreamRecorder
    from beatguard.device.types import LinkEvent, LinkEventKind, SampleChunk
    from beatguard.firmware_bridge.link import SerialLink

    recorder: StreamRecorder | None = None
    front_end = {}
    if args.text_fs_hz is not None:
        front_end = {
            "fs_hz": args.text_fs_hz,
            "gain_counts_per_mv": args.text_gain_counts_per_mv,
            "baseline_counts": args.text_baseline_counts,
            "adc_bits": args.text_adc_bits,
        }
    target = None
    missing = leads_off = 0
    next_progress = time.monotonic() + 10.0
    with SerialLink(
        args.port,
        baud=args.baud,
        text_fs_hz=args.text_fs_hz,
        reconnect=True,
        stop_event=stop,
        open_timeout_s=args.wait_s,
    ) as link:
        while not stop.is_set():
            item = link.get(timeout_s=0.5)
            if item is None:
                if not link.running:
                    break
                continue
            if isinstance(item, LinkEvent):
                if item.kind is LinkEventKind.ANNOUNCE and recorder is None:
                    front_end = {
                        k: item.details[k]
                        for k in (
                            "fs_hz",
                            "gain_counts_per_mv",
                            "baseline_counts",
                            "adc_bits",
                        )
                    }
                missing += item.lost_samples
                continue
            if recorder is None:
                if "fs_hz" not in front_end:
                    logger.warning("samples before the board's announce dropped")
                    continue
                recorder = StreamRecorder(
                    out.parent,
                    out.name,
                    segment_minutes=None,
                    first_sample=item.first_sample,
                    **front_end,
                )
                target = item.first_sample + round(
                    args.minutes * 60 * front_end["fs_hz"]
                )
                logger.info("capturing %g min to %s", args.minutes, out)
            chunk = item
            if chunk.first_sample >= target:
                break
            if chunk.first_sample + len(chunk) > target:
                keep = target - chunk.first_sample
                chunk = SampleChunk(
                    chunk.counts[:keep], chunk.leads_off[:keep], chunk.first_sample
                )
            recorder.add_chunk(chunk)
            leads_off += int(np.count_nonzero(chunk.leads_off))
            if recorder.next_sample >= target:
                break
            if time.monotonic() >= next_progress:
                next_progress += 10.0
                logger.info(
                    "captured %.1f of %g min",
                    recorder.samples / front_end["fs_hz"] / 60,
                    args.minutes,
                )
    if recorder is None or recorder.samples == 0:
        raise LinkError(f"{args.port}: no samples arrived; nothing written")
    samples = recorder.samples
    path = recorder.flush()
    return path, {
        "samples": samples,
        "fs_hz": front_end["fs_hz"],
        "minutes": samples / front_end["fs_hz"] / 60,
        "missing": missing,
        "leads_off": leads_off,
    }
