"""Per-beat inference latency of the beat models under each TFLite interpreter.

Models, all made from one LSTM autoencoder trained on the first 5 minutes
of MIT-BIH record 106 (default training settings):

- ``lstm_int8``: the full-int8 bundle model the device runs;
- ``lstm_float``: the same network as a float32 TFLite model;
- ``lstm_dynamic``: int8 weights, float activations (dynamic range);
- ``dense_float``: the tutorial-shaped dense autoencoder baseline (float32),
  trained on the same beats' windows.

Each model scores the same 300 real beats of record 106 (minutes 5 on) one
at a time as the device does (reset variables, set input, invoke, read
output), ``runs`` times; a figure's median and p99 are over every beat of
every run, and ``runs`` holds each run's median. Interpreters:
``ai-edge-litert`` and TensorFlow's ``tf.lite.Interpreter`` here, and
``tflite-runtime`` where it is installed.

Making the models needs TensorFlow; measuring needs only an interpreter.
On a machine with only ``tflite-runtime`` (and numpy), run
``--prepare DIR`` elsewhere, copy DIR, and run ``--models DIR
--interpreter tflite-runtime`` there.

Run: ``.venv/bin/python benchmarks/bench_inference.py [--runs 5]
[--interpreter all|ai-edge-litert|tflite-runtime|tensorflow]``.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import logging
import statistics
import time
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
MITDB = REPO.parent / "shared" / "data" / "mitdb"
MODELS = ("lstm_int8", "lstm_float", "lstm_dynamic", "dense_float")
INTERPRETER_MODULES = {
    "ai-edge-litert": "ai_edge_litert.interpreter",
    "tflite-runtime": "tflite_runtime.interpreter",
    "tensorflow": "tensorflow",
}
BEATS = 300
#: Where the models are kept for machines without TensorFlow.
PREPARED = REPO / "benchmarks" / "out" / "inference"


def prepare(folder: Path) -> Path:
    """Train, convert and write the four models and the beats to score."""
    from beatguard.convert.bundle_writer import convert_run
    from beatguard.convert.tflite import convert_float
    from beatguard.device.bundle import load_bundle
    from beatguard.device.records import read_record
    from beatguard.train.evaluate import chain_config_for
    from beatguard.train.keras_setup import tensorflow_and_keras
    from beatguard.train.models import build_dense_autoencoder
    from beatguard.train.personal import train_personal
    from beatguard.train.run import load_run

    folder.mkdir(parents=True, exist_ok=True)
    run_dir = folder / "run"
    train_personal([MITDB / "106"], run_dir, minutes=5.0)
    convert_run(run_dir)
    run = load_run(run_dir)
    bundle = load_bundle(run_dir)
    (folder / "lstm_int8.tflite").write_bytes((run_dir / "model.tflite").read_bytes())
    (folder / "lstm_float.tflite").write_bytes(convert_float(run.model, run.spec))
    (folder / "lstm_dynamic.tflite").write_bytes(
        convert_float(run.model, run.spec, dynamic_range=True)
    )
    tf, _ = tensorflow_and_keras()
    dense = build_dense_autoencoder(run.spec.points)
    dense.compile(optimizer="adam", loss="mae")
    windows = run.fit_inputs[:, :, 0]
    dense.fit(windows, windows, epochs=5, batch_size=64, verbose=0)
    converter = tf.lite.TFLiteConverter.from_keras_model(dense)
    (folder / "dense_float.tflite").write_bytes(converter.convert())

    from beatguard.device.bundle import beats_to_inputs
    from beatguard.device.chain import beats_from_record

    record = read_record(MITDB / "106")
    config = chain_config_for(record, bundle.meta["chain"])
    start = int(5 * 60 * record.fs_hz)
    beats = beats_from_record(record, config, start)[:BEATS]
    np.save(folder / "inputs.npy", beats_to_inputs(beats))
    return folder


def _interpreter(name: str):
    module = importlib.import_module(INTERPRETER_MODULES[name])
    return module.lite.Interpreter if name == "tensorflow" else module.Interpreter


def installed_interpreters() -> list[str]:
    names = []
    for name, module in INTERPRETER_MODULES.items():
        try:
            importlib.import_module(module)
        except ImportError:
            continue
        names.append(name)
    return names


def per_beat_seconds(model_path: Path, inputs: np.ndarray, interpreter: str) -> list:
    """Seconds per beat for each input, scored alone as the device does."""
    interp = _interpreter(interpreter)(model_path=str(model_path), num_threads=1)
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    out = interp.get_output_details()[0]
    shape = tuple(inp["shape"])
    scale, zero_point = inp["quantization"]
    if inp["dtype"] == np.int8:
        ready = np.clip(np.round(inputs / scale) + zero_point, -128, 127)
        ready = ready.astype(np.int8)
    else:
        ready = inputs.astype(np.float32)
    if len(shape) == 2:  # the dense model takes the window channel only
        ready = ready[:, :, 0]
    times = []
    for row in ready:
        start = time.perf_counter()
        interp.reset_all_variables()
        interp.set_tensor(inp["index"], row.reshape(shape))
        interp.invoke()
        interp.get_tensor(out["index"])
        times.append(time.perf_counter() - start)
    return times


def measure(folder: Path, interpreters: list[str], runs: int) -> dict:
    inputs = np.load(folder / "inputs.npy")
    figures, rows = {}, []
    for interpreter in interpreters:
        for model in MODELS:
            path = folder / f"{model}.tflite"
            per_run, pooled = [], []
            per_beat_seconds(path, inputs[:20], interpreter)  # warm-up
            for _ in range(runs):
                times = per_beat_seconds(path, inputs, interpreter)
                per_run.append(statistics.median(times) * 1e3)
                pooled.extend(times)
            median = float(np.median(pooled) * 1e3)
            p99 = float(np.percentile(pooled, 99) * 1e3)
            key = f"{model}@{interpreter}"
            figures[key] = {
                "median": median,
                "p99": p99,
                "unit": "ms/beat",
                "runs": [round(v, 4) for v in per_run],
                "model_bytes": path.stat().st_size,
            }
            rows.append(
                f"| {model} | {interpreter} | {path.stat().st_size} | "
                f"{median:.3f} | {p99:.3f} |"
            )
            log.info("%s: median %.3f ms, p99 %.3f ms", key, median, p99)
    table = "\n".join(
        [
            f"Per-beat inference latency, {len(inputs)} beats of record 106 one "
            f"at a time, {runs} runs, one thread",
            "",
            "| model | interpreter | bytes | median ms | p99 ms |",
            "|---|---|---|---|---|",
            *rows,
        ]
    )
    return {"figures": figures, "table_md": table}


def run(runs: int = 5, interpreter: str = "all", models_dir: str | None = None) -> dict:
    """Make the models (unless ``models_dir`` holds them) and time them.

    With TensorFlow installed the models are made afresh and kept in
    :data:`PREPARED`; without it (a Raspberry Pi) they are read from there,
    copied from a workstation that ran this benchmark.
    """
    names = installed_interpreters() if interpreter == "all" else [interpreter]
    command = f".venv/bin/python benchmarks/bench_inference.py --runs {runs}"
    if models_dir is None and importlib.util.find_spec("tensorflow") is None:
        if not (PREPARED / "inputs.npy").exists():
            raise RuntimeError(
                f"TensorFlow is not installed here to make the models and "
                f"{PREPARED} holds none: run this benchmark on a workstation "
                "and copy its benchmarks/out folder here"
            )
        models_dir = str(PREPARED)
    if models_dir is not None:
        result = measure(Path(models_dir), names, runs)
    else:
        result = measure(prepare(PREPARED), names, runs)
    return {"name": "inference", "command": command, **result}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--interpreter",
        default="all",
        choices=("all", *INTERPRETER_MODULES),
        help="interpreter to time (all: every installed one)",
    )
    parser.add_argument("--prepare", default=None, help="only write models here")
    parser.add_argument("--models", default=None, help="folder from --prepare")
    parser.add_argument("--json", default=None, help="also write the result here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    if args.prepare:
        prepare(Path(args.prepare))
        print(f"models written to {args.prepare}")
        return
    result = run(args.runs, args.interpreter, args.models)
    print(result["table_md"])
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
