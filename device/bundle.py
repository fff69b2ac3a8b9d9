"""The model bundle: a folder with ``model.tflite`` and ``model.json``.

A trained beat model travels as a folder. ``model.tflite`` is the full-int8
LSTM autoencoder; ``model.json`` carries everything the device needs to cut
beats exactly as in training, to feed the model and to judge its output.
This module is the one description of that JSON (the table below), its
loader and its checks; the converter writes it with :func:`write_meta` and
the device reads it with :func:`load_bundle`.

``model.json`` (schema version 2)
---------------------------------

=========================  =====================================================
key                        meaning
=========================  =====================================================
``schema_version``         int, ``SCHEMA_VERSION``; any other value is refused
``kind``                   ``"beatguard.lstm_autoencoder"``
``model_file``             ``"model.tflite"``
``model_sha256``           hex SHA-256 of ``model.tflite``
``model_bytes``            size of ``model.tflite`` in bytes
``chain``                  ``ChainConfig.to_dict()`` of the training chain
                           (sample rate, filters, window seconds and points,
                           normalization)
``input``                  ``shape`` ``[1, points, 1]``, ``dtype`` ``"int8"``,
                           ``scale``, ``zero_point`` and ``channels``
                           (``["window"]``)
``output``                 same keys as ``input`` for the reconstruction,
                           and ``offset``: the reconstruction is
                           ``scale * (int8 - zero_point) - offset``
``score``                  ``kind`` ``"mse"``: a beat's shape error is the mean
                           over time steps of the squared difference between
                           the window and its dequantized int8 reconstruction
``decision``               :class:`~beatguard.device.decision.DecisionSettings`
                           (``threshold``, ``log_sd``,
                           ``reference_log_errors``, ``history_beats``,
                           ``history_accept``, ``timing_weight``,
                           ``timing_dead_zone``, ``timing_scale``): how shape
                           error and prematurity make the anomaly score
``threshold``              the decision's threshold on that score (a copy of
                           ``decision.threshold``, for people reading the file)
``calibration``            ``method``, ``target_false_alarm_rate``,
                           ``beats`` (held-out beats used), ``log_median``,
                           ``log_sd``, ``float_log_median``,
                           ``float_log_sd``, ``observed_false_alarm_rate``
``training``               ``records``, ``minutes``, ``beats_total``,
                           ``beats_kept``, ``beats_dropped``,
                           ``beats_calibration``, ``epochs``, ``seed``,
                           ``parameters``
``tools``                  versions of beatguard, TensorFlow, tf_keras, numpy
``created_utc``            ISO 8601 time the bundle was written
=========================  =====================================================

Bundles of schema version 1 (two input channels, window and prematurity;
a standardized score) are refused: their int8 window channel was not
faithful to the float model on some records, so they are retrained.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from beatguard.device.decision import DecisionSettings, prematurity
from beatguard.device.errors import (
    BundleCorrupt,
    BundleMismatch,
    BundleNotFound,
    OutputError,
)
from beatguard.device.types import Beat

if TYPE_CHECKING:
    from beatguard.device.chain import ChainConfig

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
KIND = "beatguard.lstm_autoencoder"
MODEL_FILE = "model.tflite"
META_FILE = "model.json"
CHANNELS = ("window",)
SCORE_KINDS = ("mse",)

_REQUIRED_KEYS = (
    "schema_version",
    "kind",
    "model_file",
    "model_sha256",
    "chain",
    "input",
    "output",
    "score",
    "decision",
    "threshold",
    "calibration",
    "training",
)


@dataclass(frozen=True)
class Quantization:
    """How a tensor's int8 values map to real numbers.

    ``real = scale * (int8 - zero_point) - offset``. The offset is 0 for the
    input; for the output it undoes the constant the converter added to the
    last layer so that its outputs are positive (see
    ``beatguard.convert.tflite.output_offset``).
    """

    shape: tuple[int, ...]
    dtype: str
    scale: float
    zero_point: int
    offset: float = 0.0

    def quantize(self, values: NDArray[np.floating]) -> NDArray[np.int8]:
        """Real values to int8 with this tensor's scale and zero point, clipped.

        Parameters
        ----------
        values : NDArray[np.floating], any shape

        Returns
        -------
        NDArray[np.int8], same shape
            ``round((values + offset) / scale) + zero_point`` clipped to
            [-128, 127].
        """
        shifted = np.asarray(values, np.float64) + self.offset
        q = np.round(shifted / self.scale) + self.zero_point
        return np.clip(q, -128, 127).astype(np.int8)

    def dequantize(self, values: NDArray[np.integer]) -> NDArray[np.float64]:
        """int8 values to real numbers: ``scale * (values - zero_point) - offset``."""
        real = self.scale * (np.asarray(values, np.float64) - self.zero_point)
        return real - self.offset

    def to_dict(self, channels: Sequence[str] = CHANNELS) -> dict[str, Any]:
        """The JSON form used in ``model.json``."""
        return {
            "shape": list(self.shape),
            "dtype": self.dtype,
            "scale": float(self.scale),
            "zero_point": int(self.zero_point),
            "offset": float(self.offset),
            "channels": list(channels),
        }


def model_inputs(windows: NDArray[np.floating]) -> NDArray[np.float32]:
    """Beat windows as model inputs.

    Parameters
    ----------
    windows : NDArray[np.floating], shape (n, points)
        Normalized beat windows from the signal chain.

    Returns
    -------
    NDArray[np.float32], shape (n, points, 1)
    """
    windows = np.asarray(windows, np.float32)
    if windows.ndim != 2:
        raise ValueError(f"windows must be (n, points), got shape {windows.shape}")
    return windows[:, :, None]


def beats_to_inputs(beats: Sequence[Beat]) -> NDArray[np.float32]:
    """Model inputs for chain beats, shape (n, points, 1) float32."""
    if len(beats) == 0:
        raise ValueError("no beats to turn into model inputs")
    return model_inputs(np.stack([np.asarray(b.window, np.float32) for b in beats]))


def beats_prematurity(beats: Sequence[Beat]) -> NDArray[np.float64]:
    """:func:`~beatguard.device.decision.prematurity` of chain beats, shape (n,)."""
    rr = np.array([b.rr_before_s for b in beats], np.float64)
    avg = np.array([b.rr_avg_s for b in beats], np.float64)
    return prematurity(rr, avg)


def mse(
    inputs: NDArray[np.floating], outputs: NDArray[np.floating]
) -> NDArray[np.float64]:
    """Per-beat shape error: mean squared residual over the window's steps.

    Parameters
    ----------
    inputs, outputs : NDArray[np.floating], shape (n, points, 1)
        What the model was given and what it reconstructed (real values).

    Returns
    -------
    NDArray[np.float64], shape (n,)
    """
    res = np.asarray(outputs, np.float64) - np.asarray(inputs, np.float64)
    return np.mean(res * res, axis=(1, 2))


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Bundle:
    """A loaded, checked model bundle.

    Attributes
    ----------
    folder : Path
    model_path : Path
        The ``model.tflite`` file, whose hash matched ``model.json``.
    meta : dict
        The whole of ``model.json``.
    """

    folder: Path
    model_path: Path
    meta: dict

    @property
    def threshold(self) -> float:
        """Score above which a beat is anomalous (int8 model scores)."""
        return float(self.meta["threshold"])

    @property
    def input_quantization(self) -> Quantization:
        return _quantization(self.meta["input"], "input", self.folder)

    @property
    def output_quantization(self) -> Quantization:
        return _quantization(self.meta["output"], "output", self.folder)

    @property
    def decision(self) -> DecisionSettings:
        """The calibrated decision rule (checked at load)."""
        return DecisionSettings.from_dict(self.meta["decision"])

    @property
    def points(self) -> int:
        return int(self.meta["input"]["shape"][1])

    def chain_config(self) -> ChainConfig:
        """The signal chain settings the model was trained with."""
        from beatguard.device.chain import ChainConfig

        try:
            return ChainConfig.from_dict(self.meta["chain"])
        except (TypeError, ValueError, KeyError) as err:
            raise BundleMismatch(
                f"{self.folder / META_FILE}: chain settings unusable: {err}"
            ) from err


def load_bundle(folder: str | Path) -> Bundle:
    """Load a bundle folder and check its files, hash and schema.

    Parameters
    ----------
    folder : str or Path
        Folder holding ``model.tflite`` and ``model.json``.

    Returns
    -------
    Bundle

    Raises
    ------
    BundleNotFound
        The folder, ``model.json`` or ``model.tflite`` is missing.
    BundleCorrupt
        ``model.json`` is not valid JSON, or the model's SHA-256 differs
        from the one recorded.
    BundleMismatch
        The schema version, kind or a required key does not match this
        version of beatguard, or the recorded shapes are inconsistent.
    """
    folder = Path(folder)
    meta_path = folder / META_FILE
    if folder.exists() and not folder.is_dir():
        raise BundleNotFound(
            f"{folder}: a file, not a model bundle folder (give the folder that "
            "holds model.tflite and model.json)"
        )
    if not folder.is_dir():
        raise BundleNotFound(f"{folder}: model bundle folder does not exist")
    if not meta_path.is_file():
        raise BundleNotFound(f"{meta_path}: missing (not a model bundle folder?)")
    meta = _read_meta(meta_path)
    _check_schema(meta, meta_path)
    model_path = folder / str(meta["model_file"])
    if not model_path.is_file():
        raise BundleNotFound(f"{model_path}: missing from the model bundle")
    digest = sha256_of(model_path)
    if digest != meta["model_sha256"]:
        raise BundleCorrupt(
            f"{model_path}: SHA-256 {digest[:12]}... does not match "
            f"{str(meta['model_sha256'])[:12]}... in {META_FILE} (file altered?)"
        )
    bundle = Bundle(folder=folder, model_path=model_path, meta=meta)
    _check_shapes(bundle, meta_path)
    log.debug("loaded model bundle %s (threshold %.4g)", folder, bundle.threshold)
    return bundle


def write_meta(folder: str | Path, meta: dict) -> Path:
    """Write ``model.json`` after filling in the model's hash and size.

    Parameters
    ----------
    folder : str or Path
        Bundle folder that already holds ``model.tflite``.
    meta : dict
        Every key of the schema table except ``model_sha256`` and
        ``model_bytes``, which are computed here.

    Returns
    -------
    Path
        The written ``model.json``.

    Raises
    ------
    BundleNotFound
        ``model.tflite`` is not in the folder.
    BundleMismatch
        The resulting JSON does not pass the checks of :func:`load_bundle`.
    OutputError
        ``model.json`` cannot be written (a full disk).
    """
    folder = Path(folder)
    model_path = folder / MODEL_FILE
    if not model_path.is_file():
        raise BundleNotFound(f"{model_path}: write the model before its JSON")
    meta = dict(meta)
    meta.setdefault("schema_version", SCHEMA_VERSION)
    meta.setdefault("kind", KIND)
    meta.setdefault("model_file", MODEL_FILE)
    meta["model_sha256"] = sha256_of(model_path)
    meta["model_bytes"] = model_path.stat().st_size
    meta_path = folder / META_FILE
    _check_schema(meta, meta_path)
    tmp = meta_path.with_suffix(".json.tmp")
    text = json.dumps(meta, indent=2, sort_keys=False) + "\n"
    write_file(tmp, lambda path: path.write_text(text), name=meta_path)
    tmp.replace(meta_path)
    load_bundle(folder)
    return meta_path


def write_file(
    path: Path, write: Callable[[Path], object], name: Path | None = None
) -> None:
    """``write(path)``; a failure removes the partial file and names it.

    ``name`` is the file the message names when ``path`` is a temporary
    one. Raises ``OutputError`` ("could not be written", with the reason).
    """
    try:
        write(path)
    except OSError as err:
        path.unlink(missing_ok=True)
        raise OutputError(
            f"{name or path}: could not be written ({err.strerror or err})"
        ) from err


def _read_meta(meta_path: Path) -> dict:
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, UnicodeDecodeError) as err:
        raise BundleCorrupt(f"{meta_path}: unreadable: {err}") from err
    except json.JSONDecodeError as err:
        raise BundleCorrupt(
            f"{meta_path}: not valid JSON (line {err.lineno}: {err.msg})"
        ) from err
    if not isinstance(meta, dict):
        raise BundleCorrupt(f"{meta_path}: top level must be a JSON object")
    return meta


def _check_schema(meta: dict, meta_path: Path) -> None:
    version = meta.get("schema_version")
    if version != SCHEMA_VERSION:
        raise BundleMismatch(
            f"{meta_path}: schema version {version!r}, this beatguard reads "
            f"version {SCHEMA_VERSION}; train and convert the model again with "
            "this version"
        )
    if meta.get("kind") != KIND:
        raise BundleMismatch(f"{meta_path}: kind {meta.get('kind')!r}, want {KIND!r}")
    missing = [key for key in _REQUIRED_KEYS if key not in meta]
    if missing:
        raise BundleMismatch(f"{meta_path}: missing keys {', '.join(missing)}")
    if meta["score"].get("kind") not in SCORE_KINDS:
        raise BundleMismatch(
            f"{meta_path}: score kind {meta['score'].get('kind')!r} unknown"
        )
    threshold = meta["threshold"]
    if not isinstance(threshold, int | float) or not math.isfinite(threshold):
        raise BundleMismatch(f"{meta_path}: threshold {threshold!r} is not a number")
    try:
        decision = DecisionSettings.from_dict(meta["decision"])
    except (KeyError, TypeError, ValueError) as err:
        raise BundleMismatch(f"{meta_path}: decision settings unusable: {err}") from err
    if decision.threshold != threshold:
        raise BundleMismatch(
            f"{meta_path}: threshold {threshold} differs from the decision's "
            f"{decision.threshold}"
        )


def _quantization(spec: dict, which: str, folder: Path) -> Quantization:
    try:
        return Quantization(
            shape=tuple(int(v) for v in spec["shape"]),
            dtype=str(spec["dtype"]),
            scale=float(spec["scale"]),
            zero_point=int(spec["zero_point"]),
            offset=float(spec.get("offset", 0.0)),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise BundleMismatch(
            f"{folder / META_FILE}: {which} quantization unusable: {err}"
        ) from err


def _check_shapes(bundle: Bundle, meta_path: Path) -> None:
    inp, out = bundle.input_quantization, bundle.output_quantization
    for which, q in (("input", inp), ("output", out)):
        if len(q.shape) != 3 or q.shape[0] != 1 or q.shape[2] != len(CHANNELS):
            raise BundleMismatch(
                f"{meta_path}: {which} shape {list(q.shape)}, want "
                f"[1, points, {len(CHANNELS)}]"
            )
        if q.dtype != "int8":
            raise BundleMismatch(f"{meta_path}: {which} dtype {q.dtype}, want int8")
        if not (q.scale > 0 and math.isfinite(q.scale)):
            raise BundleMismatch(f"{meta_path}: {which} scale {q.scale} not positive")
    if inp.shape != out.shape:
        raise BundleMismatch(
            f"{meta_path}: input shape {list(inp.shape)} differs from output "
            f"shape {list(out.shape)}"
        )
    points = bundle.meta["chain"].get("window_points")
    if points is not None and int(points) != inp.shape[1]:
        raise BundleMismatch(
            f"{meta_path}: chain window_points {points} but model takes "
            f"{inp.shape[1]} points"
        )
