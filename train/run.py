"""The training run folder: what ``beatguard train`` leaves for ``convert``.

A run folder holds

==================  ==========================================================
file                content
==================  ==========================================================
``keras_model.h5``  the float ``tf_keras`` autoencoder
``training.json``   settings, chain configuration, the decision calibrated
                    on the float model, calibration and training summaries
``beats.npz``       ``fit_inputs`` (beats the model was fitted on) and
                    ``calibration_inputs`` (held-out beats, in time order,
                    for the decision), float32 ``(n, points, 1)``
==================  ==========================================================

``beatguard convert`` adds ``model.tflite`` and ``model.json`` to the same
folder, which then is a model bundle.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from beatguard.device.bundle import write_file
from beatguard.device.errors import BundleCorrupt, BundleNotFound
from beatguard.train.fit import FitResult, TrainSettings
from beatguard.train.keras_setup import tensorflow_and_keras
from beatguard.train.models import LstmAutoencoderSpec, step_clock_layer

log = logging.getLogger(__name__)

KERAS_FILE = "keras_model.h5"
TRAINING_FILE = "training.json"
BEATS_FILE = "beats.npz"


@dataclass
class TrainingRun:
    """A training run read back from its folder.

    Attributes
    ----------
    folder : Path
    model : tf_keras.Model
    spec : LstmAutoencoderSpec
    info : dict
        The whole of ``training.json``.
    fit_inputs, calibration_inputs : NDArray[np.float32]
        Shape (n, points, 1).
    """

    folder: Path
    model: object
    spec: LstmAutoencoderSpec
    info: dict
    fit_inputs: NDArray[np.float32]
    calibration_inputs: NDArray[np.float32]


def save_run(
    folder: str | Path,
    result: FitResult,
    settings: TrainSettings,
    chain: dict,
    data: dict,
) -> Path:
    """Write a training run folder.

    Parameters
    ----------
    folder : str or Path
        Created if missing; existing run files are replaced.
    result : FitResult
    settings : TrainSettings
    chain : dict
        ``ChainConfig.to_dict()`` of the chain that cut the beats.
    data : dict
        Where the beats came from (records, minutes, beats per record).

    Returns
    -------
    Path
        The folder.

    Raises
    ------
    OutputError
        A file cannot be written (a full disk); it is not left half written.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_file(
        folder / KERAS_FILE, lambda path: path.write_bytes(_h5_bytes(result.model))
    )
    write_file(
        folder / BEATS_FILE,
        lambda path: np.savez_compressed(
            path,
            fit_inputs=result.fit_inputs,
            calibration_inputs=result.calibration_inputs,
        ),
    )
    _, keras = tensorflow_and_keras()
    info = {
        "settings": settings.to_dict(),
        "chain": chain,
        "float_decision": result.decision.to_dict(),
        "calibration": result.calibration,
        "summary": result.summary(),
        "data": data,
        "parameters": int(result.model.count_params()),
        "tf_keras": keras.__version__,
    }
    text = json.dumps(info, indent=2) + "\n"
    write_file(folder / TRAINING_FILE, lambda path: path.write_text(text))
    log.info("training run written to %s", folder)
    return folder


def _h5_bytes(model) -> bytes:
    """The model as HDF5 bytes, made in memory.

    h5py writing straight to a file that cannot grow (a full disk) fails in
    its destructors, with tracebacks and at times a crash, so the file is
    written in one plain write instead.
    """
    import io

    import h5py

    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as h5:
        model.save(h5)
    return buffer.getvalue()


def load_run(folder: str | Path) -> TrainingRun:
    """Read a training run folder.

    Raises
    ------
    BundleNotFound
        The folder or one of its files is missing.
    BundleCorrupt
        A file is unreadable.
    """
    folder = Path(folder)
    for name in (KERAS_FILE, TRAINING_FILE, BEATS_FILE):
        if not (folder / name).is_file():
            raise BundleNotFound(
                f"{folder / name}: missing (is {folder} a beatguard train output?)"
            )
    try:
        info = json.loads((folder / TRAINING_FILE).read_text())
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise BundleCorrupt(
            f"{folder / TRAINING_FILE}: training run unreadable: not JSON ({err})"
        ) from err
    _, keras = tensorflow_and_keras()
    try:
        model = keras.models.load_model(
            folder / KERAS_FILE,
            compile=False,
            custom_objects={"StepClock": step_clock_layer()},
        )
        with np.load(folder / BEATS_FILE) as beats:
            fit_inputs = beats["fit_inputs"].astype(np.float32)
            cal_inputs = beats["calibration_inputs"].astype(np.float32)
        spec = LstmAutoencoderSpec(**info["settings"]["spec"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        reason = str(err)
        if "pickle" in reason:  # numpy's advice to load it unsafely is not ours
            reason = f"{BEATS_FILE} holds Python objects, not beat arrays"
        raise BundleCorrupt(f"{folder}: training run unreadable: {reason}") from err
    return TrainingRun(folder, model, spec, info, fit_inputs, cal_inputs)
