"""``beatguard evaluate personal RECORD... --train-minutes 5 --json OUT``.

For each annotated record: train on its first minutes without labels,
convert to int8, score the remaining minutes as the device would, and
measure PVC detection against the reference beats (150 ms matching),
together with the float model, the median-beat template distance and a
tutorial-shaped dense autoencoder on the same beats. Writes the figures as
JSON and PNG plots next to it.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from pathlib import Path

from beatguard.commands import positive, require_annotated_wfdb, writable_folder
from beatguard.commands.train import add_fit_arguments, fit_settings

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "records", nargs="+", metavar="RECORD", help="annotated records"
    )
    parser.add_argument(
        "--train-minutes",
        type=positive,
        default=5.0,
        help="minutes at the start of each record to train on",
    )
    parser.add_argument("--json", required=True, help="figures file to write")
    parser.add_argument(
        "--work-dir",
        default=None,
        help="where runs, bundles and plots go (default: next to --json)",
    )
    add_fit_arguments(parser)
    parser.add_argument(
        "--no-plots", action="store_true", help="skip the PNG report plots"
    )
    parser.add_argument(
        "--interpreter",
        default="auto",
        choices=("auto", "ai-edge-litert", "tflite-runtime", "tensorflow"),
        help="TFLite interpreter of the int8 scores",
    )


def run(args: argparse.Namespace) -> int:
    from beatguard.train.evaluate import evaluate_record

    out_json = Path(args.json)
    writable_folder(out_json.parent, "--json")
    for path in args.records:
        require_annotated_wfdb(path)
    work = writable_folder(
        Path(args.work_dir)
        if args.work_dir
        else out_json.parent / (out_json.stem + "_runs"),
        "--work-dir",
    )
    settings = fit_settings(args)
    results = {}
    evaluations = []
    for path in args.records:
        ev = evaluate_record(
            path,
            work,
            train_minutes=args.train_minutes,
            settings=settings,
            interpreter=args.interpreter,
        )
        results[ev.name] = ev.figures
        evaluations.append(ev)
        if not args.no_plots:
            from beatguard.train.report import plot_record

            for png in plot_record(ev, work):
                log.info("wrote %s", png)
    total = _total(results)
    out = {"records": results, "total": total, "train_minutes": args.train_minutes}
    out_json.write_text(json.dumps(_finite(out), indent=2) + "\n")
    for name, fig in results.items():
        print(
            f"{name}: AUC int8 {fig['auc_int8']:.4f} float {fig['auc_float']:.4f} "
            f"shape only {fig['auc_int8_shape']:.4f} "
            f"template {fig['auc_template']:.4f} "
            f"(with decision {fig['auc_template_decision']:.4f}) "
            f"dense {fig['auc_dense_ae']:.4f} | "
            f"Se {fig['se']:.3f} +P {fig['ppv']:.3f} FA/h "
            f"{fig['false_alarms_per_hour']:.1f} | {fig['model_bytes']} B, "
            f"dropped {fig['dropped_beats']}"
        )
    print(f"total: Se {total['se']:.3f} +P {total['ppv']:.3f}; wrote {out_json}")
    return 0


def _total(results: dict) -> dict:
    tp = sum(r["pvc_detected"] for r in results.values())
    ref = sum(r["pvc_reference"] for r in results.values())
    flagged = sum(r["flagged"] for r in results.values())
    return {
        "se": tp / ref if ref else math.nan,
        "ppv": tp / flagged if flagged else math.nan,
        "pvc_reference": ref,
        "pvc_detected": tp,
        "flagged": flagged,
    }


def _finite(value):
    """JSON has no NaN: write null for a figure that is undefined."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
