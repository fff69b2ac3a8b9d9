"""Turn a training run folder into a model bundle the device can load.

Steps: quantize the float model to full int8 (representative set: the
beats it was fitted on), check the graph's ops, write ``model.tflite``,
run the int8 model on the training beats to measure its own residual
spread and on the held-out beats to re-calibrate the threshold on int8
scores, check that int8 and float reconstructions agree, and write
``model.json`` with the SHA-256 of the model.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

import beatguard
from beatguard.convert.tflite import convert_int8
from beatguard.device.bundle import (
    CHANNELS,
    META_FILE,
    MODEL_FILE,
    PrematurityFeature,
    Quantization,
    standardized_mse,
    write_meta,
)
from beatguard.device.errors import ConversionError
from beatguard.device.scorer import Scorer, interpreter_class
from beatguard.train.fit import (
    calibrate_threshold,
    predict,
    prematurity_alarm_score,
    residual_spread,
)
from beatguard.train.keras_setup import tensorflow_and_keras
from beatguard.train.run import TrainingRun, load_run

log = logging.getLogger(__name__)

PARITY_RMS_LIMIT = 0.25
"""Largest RMS difference (model input units) between the int8 and the float
reconstructions of the training beats that the conversion accepts."""

REPRESENTATIVE_BEATS = 400


def convert_run(
    run_folder: str | Path,
    out_folder: str | Path | None = None,
    interpreter: str = "auto",
) -> Path:
    """Quantize a training run and write its model bundle.

    Parameters
    ----------
    run_folder : str or Path
        Output of ``beatguard train``.
    out_folder : str or Path, optional
        Bundle folder; the run folder itself when omitted.
    interpreter : str
        TFLite interpreter used for the int8 re-calibration.

    Returns
    -------
    Path
        The bundle folder (``model.tflite``, ``model.json``).

    Raises
    ------
    BundleNotFound, BundleCorrupt
        The run folder is incomplete or unreadable.
    RepresentativeDataError
        A training beat is non-finite or flat.
    ConversionError
        Conversion, the op check or the int8/float parity check failed.
    """
    started = time.perf_counter()
    run = load_run(run_folder)
    out = Path(out_folder) if out_folder is not None else run.folder
    out.mkdir(parents=True, exist_ok=True)
    representative = _spread_subset(run.fit_inputs, REPRESENTATIVE_BEATS)
    flatbuffer = convert_int8(run.model, run.spec, representative)
    (out / META_FILE).unlink(missing_ok=True)
    (out / MODEL_FILE).write_bytes(flatbuffer)
    in_q, out_q = _tensor_quantization(flatbuffer, interpreter)

    float_sd = np.asarray(run.info["residual_sd"], np.float64)
    meta = _meta(run, in_q, out_q, float_sd, float(run.info["float_threshold"]), {})
    write_meta(out, meta)
    with Scorer(out, interpreter=interpreter) as scorer:
        fit_int8 = scorer.reconstruct(run.fit_inputs)
        cal_int8 = scorer.reconstruct(run.calibration_inputs)
    floor = float(run.info["settings"]["residual_sd_floor"])
    int8_sd = residual_spread(run.fit_inputs, fit_int8, floor)
    cap = float(run.info["settings"]["window_z2_cap"])
    cal_scores = standardized_mse(run.calibration_inputs, cal_int8, int8_sd, cap)
    threshold, calibration = calibrate_threshold(
        cal_scores,
        float(run.info["settings"]["target_false_alarm_rate"]),
        float(run.info["settings"]["drop_z"]),
        prematurity_alarm_score(
            int8_sd,
            PrematurityFeature(**run.info["features"]["prematurity"]),
            float(run.info["settings"]["alarm_prematurity"]),
        ),
        float(run.info["settings"].get("separation_min", 1.0)),
    )
    parity = _parity(run, fit_int8)
    calibration["float_threshold"] = float(run.info["float_threshold"])
    calibration["alarm_prematurity"] = float(run.info["settings"]["alarm_prematurity"])
    calibration["scores"] = "int8"
    meta = _meta(run, in_q, out_q, int8_sd, threshold, calibration)
    meta["parity"] = parity
    write_meta(out, meta)
    log.info(
        "bundle %s: %d bytes, int8 threshold %.4g (float %.4g), %.1f s",
        out,
        (out / MODEL_FILE).stat().st_size,
        threshold,
        calibration["float_threshold"],
        time.perf_counter() - started,
    )
    return out


def _parity(run: TrainingRun, int8_outputs: NDArray[np.float64]) -> dict:
    float_outputs = predict(run.model, run.fit_inputs)
    rms = float(np.sqrt(np.mean((int8_outputs - float_outputs) ** 2)))
    log.info("int8 vs float reconstruction RMS difference %.4f", rms)
    if not rms <= PARITY_RMS_LIMIT:
        raise ConversionError(
            f"{run.folder}: int8 reconstructions differ from float by RMS "
            f"{rms:.3f} > {PARITY_RMS_LIMIT} (quantization ranges too wide?)"
        )
    return {"reconstruction_rms_int8_vs_float": rms, "limit": PARITY_RMS_LIMIT}


def _spread_subset(inputs: NDArray[np.float32], count: int) -> NDArray[np.float32]:
    if inputs.shape[0] <= count:
        return inputs
    index = np.linspace(0, inputs.shape[0] - 1, count).round().astype(int)
    return inputs[index]


def _tensor_quantization(
    flatbuffer: bytes, interpreter: str
) -> tuple[Quantization, Quantization]:
    _, cls = interpreter_class(interpreter)
    interp = cls(model_content=flatbuffer)
    found = []
    for detail in (interp.get_input_details()[0], interp.get_output_details()[0]):
        scale, zero_point = detail["quantization"]
        found.append(
            Quantization(
                shape=tuple(int(v) for v in detail["shape"]),
                dtype=np.dtype(detail["dtype"]).name,
                scale=float(scale),
                zero_point=int(zero_point),
            )
        )
    return found[0], found[1]


def _meta(
    run: TrainingRun,
    in_q: Quantization,
    out_q: Quantization,
    residual_sd: NDArray[np.float64],
    threshold: float,
    calibration: dict,
) -> dict:
    tf, keras = tensorflow_and_keras()
    summary = run.info["summary"]
    data = run.info["data"]
    return {
        "chain": run.info["chain"],
        "input": in_q.to_dict(CHANNELS),
        "output": out_q.to_dict(CHANNELS),
        "features": run.info["features"],
        "score": {
            "kind": "standardized_mse",
            "residual_sd": residual_sd.tolist(),
            "window_z2_cap": float(run.info["settings"]["window_z2_cap"]),
        },
        "threshold": float(threshold),
        "calibration": calibration,
        "training": {
            "records": data.get("records", []),
            "minutes": data.get("minutes"),
            "beats_total": summary["beats_total"],
            "beats_kept": summary["beats_kept"],
            "beats_dropped": summary["beats_dropped"],
            "beats_calibration": summary["beats_calibration"],
            "epochs": run.info["settings"]["epochs"],
            "seed": run.info["settings"]["seed"],
            "parameters": run.info["parameters"],
            "spec": run.info["settings"]["spec"],
        },
        "tools": {
            "beatguard": beatguard.__version__,
            "tensorflow": tf.__version__,
            "tf_keras": keras.__version__,
            "numpy": np.__version__,
        },
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
    }
