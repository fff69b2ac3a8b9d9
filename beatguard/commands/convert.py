"""``beatguard convert DIR``: quantize a trained model to a full-int8 bundle.

Reads the run folder written by ``beatguard train``, converts the model to
full int8 TFLite, checks its ops, re-calibrates the threshold on int8
scores and writes ``model.tflite`` and ``model.json`` (into ``DIR`` unless
``--out`` says otherwise). The folder is then usable by
``beatguard run --model DIR``.
"""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_folder", metavar="DIR", help="output of beatguard train")
    parser.add_argument("--out", default=None, help="bundle folder (default: DIR)")
    parser.add_argument(
        "--interpreter",
        default="auto",
        choices=("auto", "ai-edge-litert", "tflite-runtime", "tensorflow"),
        help="TFLite interpreter for the int8 re-calibration",
    )


def run(args: argparse.Namespace) -> int:
    from beatguard.commands import writable_folder
    from beatguard.convert.bundle_writer import convert_run
    from beatguard.device.bundle import load_bundle

    if args.out:
        writable_folder(args.out, "--out")
    folder = convert_run(args.run_folder, args.out, interpreter=args.interpreter)
    meta = load_bundle(folder).meta
    print(
        json.dumps(
            {
                "bundle": str(folder),
                "model_bytes": meta["model_bytes"],
                "threshold": meta["threshold"],
                "calibration_beats": meta["calibration"]["beats"],
                "sha256": meta["model_sha256"],
            }
        )
    )
    return 0
