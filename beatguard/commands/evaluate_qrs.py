"""``beatguard evaluate qrs``: QRS detection Se and +P on annotated records.

Each record is run through a fresh signal chain exactly as training and the
device run it; the detected R peaks are matched against the reference beat
annotations (150 ms window, first 5 minutes not scored, rhythm and comment
marks ignored). The result goes to the console as a table and, with
``--json``, to a file::

    {"records": {"106": {"se": 0.998, "ppv": 0.999, "tp": .., "fn": ..,
                         "fp": ..}, ...},
     "total": {"se": .., "ppv": .., "tp": .., "fn": .., "fp": ..},
     "settings": {...}}

Fractions, not percent. ``--invert``, ``--resample-hz`` and ``--notch``
run the robustness variants (swapped electrodes, another sample rate,
mains notch on).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

from beatguard.commands import (
    finite_float,
    non_negative,
    positive,
    require_annotated_wfdb,
    whole,
    writable_folder,
)
from beatguard.device.chain import ChainConfig, beats_from_record
from beatguard.device.evaluation import match_beats
from beatguard.device.records import Record, read_record

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "records",
        nargs="+",
        metavar="RECORD",
        help="WFDB record paths with .atr annotations (e.g. ../shared/data/mitdb/106)",
    )
    parser.add_argument(
        "--json",
        type=Path,
        metavar="OUT",
        help="write results here (default: only printed)",
    )
    parser.add_argument("--channel", type=whole, default=0, help="signal number")
    parser.add_argument(
        "--skip-s",
        type=non_negative,
        default=300.0,
        help="seconds at the start not scored (300 s is the EC57 convention)",
    )
    parser.add_argument(
        "--tolerance-s",
        type=positive,
        default=0.15,
        help="largest distance of a match in seconds",
    )
    parser.add_argument(
        "--invert", action="store_true", help="multiply the signal by -1 first"
    )
    parser.add_argument(
        "--resample-hz",
        type=positive,
        metavar="HZ",
        help="resample the records (and annotations) to this rate first "
        "(default: their own rate)",
    )
    parser.add_argument(
        "--notch",
        type=finite_float,
        choices=(50.0, 60.0),
        help="run the chain with a mains notch at 50 or 60 Hz (default: none)",
    )


def run(args: argparse.Namespace) -> int:
    if args.json:
        writable_folder(args.json.parent, "--json")
    for path in args.records:
        require_annotated_wfdb(path)
    settings = {
        "skip_s": args.skip_s,
        "tolerance_s": args.tolerance_s,
        "invert": args.invert,
        "resample_hz": args.resample_hz,
        "notch_hz": args.notch,
        "channel": args.channel,
    }
    results: dict[str, dict] = {}
    chain_settings = None
    for path in args.records:
        record = _prepare(read_record(path, channel=args.channel), args)
        config = ChainConfig.for_record(record, path, notch_hz=args.notch)
        chain_settings = config.to_dict()
        results[record.name] = evaluate_record(
            record, config, args.skip_s, args.tolerance_s
        )
    total = _total(results)
    settings["chain"] = chain_settings
    print(format_table(results, total))
    if args.json:
        out = {"records": results, "total": total, "settings": settings}
        args.json.write_text(json.dumps(out, indent=2) + "\n")
        log.info("wrote %s", args.json)
    return 0


def _prepare(record: Record, args: argparse.Namespace) -> Record:
    if args.invert:
        record = record.inverted()
    if args.resample_hz:
        record = record.resampled(args.resample_hz)
    return record


def evaluate_record(
    record: Record, config: ChainConfig, skip_s: float = 300.0, tolerance_s=0.15
) -> dict:
    """Se, +P and counts of one record through a fresh chain.

    Returns
    -------
    dict
        ``se``, ``ppv`` (fractions), ``tp``, ``fn``, ``fp``, ``pvc_tp`` and
        ``pvc_fn`` (reference ``V`` beats found and missed), ``seconds``
        (time spent in the chain).
    """
    started = time.perf_counter()
    beats = beats_from_record(record, config)
    seconds = time.perf_counter() - started
    reference = record.annotations.beats()
    detected = np.array([b.sample for b in beats], dtype=np.int64)
    match = match_beats(
        reference.samples, detected, record.fs_hz, tolerance_s, skip_s=skip_s
    )
    symbols = np.asarray(reference.symbols)
    return {
        "se": match.se,
        "ppv": match.ppv,
        "tp": match.tp,
        "fn": match.fn,
        "fp": match.fp,
        "pvc_tp": int(np.sum(symbols[match.ref_index] == "V")),
        "pvc_fn": int(np.sum(symbols[match.unmatched_ref] == "V")),
        "seconds": round(seconds, 3),
    }


def _total(results: dict[str, dict]) -> dict:
    tp = sum(r["tp"] for r in results.values())
    fn = sum(r["fn"] for r in results.values())
    fp = sum(r["fp"] for r in results.values())
    return {
        "se": tp / (tp + fn) if tp + fn else float("nan"),
        "ppv": tp / (tp + fp) if tp + fp else float("nan"),
        "tp": tp,
        "fn": fn,
        "fp": fp,
    }


def format_table(results: dict[str, dict], total: dict) -> str:
    """The results as a fixed-width table for the console."""
    lines = [f"{'record':>8} {'Se':>7} {'+P':>7} {'TP':>6} {'FN':>5} {'FP':>5}"]
    rows = [*results.items(), ("total", total)]
    for name, r in rows:
        lines.append(
            f"{name:>8} {r['se']:7.4f} {r['ppv']:7.4f} "
            f"{r['tp']:6d} {r['fn']:5d} {r['fp']:5d}"
        )
    return "\n".join(lines)
