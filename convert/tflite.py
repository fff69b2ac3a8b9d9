"""Full-int8 TFLite conversion of the LSTM autoencoder, with its checks.

The float Keras model is rebuilt with a fixed batch of one (the device
scores one beat at a time), its weights copied, and converted with
post-training full-integer quantization: int8 weights and activations,
int8 input and output tensors, ranges from a representative set of the
training beats. The representative set is validated first (a non-finite or
flat window is refused with its index, never fed to the converter), and the
converted graph must contain ``UNIDIRECTIONAL_SEQUENCE_LSTM`` and no
``WHILE`` loop or Flex (TensorFlow) op; otherwise conversion fails loudly.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import numpy as np
from numpy.typing import NDArray

from beatguard.device.errors import ConversionError, RepresentativeDataError
from beatguard.device.scorer import interpreter_class
from beatguard.train.keras_setup import tensorflow_and_keras
from beatguard.train.models import LstmAutoencoderSpec, build_lstm_autoencoder

log = logging.getLogger(__name__)

REQUIRED_OP = "UNIDIRECTIONAL_SEQUENCE_LSTM"
FORBIDDEN_OPS = ("WHILE",)
FLAT_SPREAD = 1e-6


def validate_representative(
    inputs: NDArray[np.floating], points: int, channels: int
) -> NDArray[np.float32]:
    """Check the representative set before the converter sees it.

    Parameters
    ----------
    inputs : NDArray[np.floating], shape (n, points, channels)
        Model inputs of training beats.
    points, channels : int
        What the model takes.

    Returns
    -------
    NDArray[np.float32], shape (n, points, channels)

    Raises
    ------
    RepresentativeDataError
        Empty set, wrong shape, or a window (channel 0) that is non-finite
        or flat (peak-to-peak below 1e-6), naming the first bad index.
    """
    x = np.asarray(inputs, np.float32)
    if x.ndim != 3 or x.shape[1:] != (points, channels) or x.shape[0] == 0:
        raise RepresentativeDataError(
            f"representative set has shape {x.shape}, want (n>0, {points}, {channels})"
        )
    finite = np.all(np.isfinite(x), axis=(1, 2))
    if not finite.all():
        index = int(np.flatnonzero(~finite)[0])
        raise RepresentativeDataError(
            f"representative window {index} has non-finite values"
        )
    spread = np.ptp(x[:, :, 0], axis=1)
    flat = spread < FLAT_SPREAD
    if flat.any():
        index = int(np.flatnonzero(flat)[0])
        raise RepresentativeDataError(
            f"representative window {index} is flat (peak-to-peak "
            f"{float(spread[index]):.2g})"
        )
    return x


def graph_ops(tflite_bytes: bytes) -> list[str]:
    """Names of the ops in a TFLite flatbuffer, in execution order.

    The op list comes from the interpreter's op details (its
    ``_get_ops_details`` method, the only op listing the TFLite Python API
    offers), which is what the device will run.
    """
    _, interpreter = interpreter_class("auto")
    interp = interpreter(model_content=tflite_bytes)
    return [op["op_name"] for op in interp._get_ops_details()]


def check_ops(tflite_bytes: bytes) -> list[str]:
    """Refuse a graph the device must not run.

    Returns
    -------
    list of str
        The graph's op names.

    Raises
    ------
    ConversionError
        No ``UNIDIRECTIONAL_SEQUENCE_LSTM``, or a ``WHILE`` or Flex op.
    """
    ops = graph_ops(tflite_bytes)
    bad = sorted(
        {op for op in ops if op in FORBIDDEN_OPS or op.upper().startswith("FLEX")}
    )
    if bad:
        raise ConversionError(
            f"converted graph has {', '.join(bad)} ops (the LSTM did not fuse; "
            "is the model built with tf_keras?)"
        )
    if REQUIRED_OP not in ops:
        found = ", ".join(sorted(set(ops)))
        raise ConversionError(f"converted graph has no {REQUIRED_OP} op (ops: {found})")
    return ops


def convert_float(
    model, spec: LstmAutoencoderSpec, dynamic_range: bool = False
) -> bytes:
    """Float32 (or dynamic-range int8-weight) TFLite model, for comparisons.

    The device runs the full-int8 model; these variants exist so benchmarks
    can measure what full-int8 quantization buys in size and speed.

    Parameters
    ----------
    model : tf_keras.Model
    spec : LstmAutoencoderSpec
    dynamic_range : bool
        Quantize weights to int8 and keep float activations.

    Returns
    -------
    bytes

    Raises
    ------
    ConversionError
        The converter failed or the LSTM did not fuse.
    """
    tf, _ = tensorflow_and_keras()
    fixed = build_lstm_autoencoder(spec, batch_size=1)
    fixed.set_weights(model.get_weights())
    converter = tf.lite.TFLiteConverter.from_keras_model(fixed)
    if dynamic_range:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    try:
        flatbuffer = converter.convert()
    except Exception as err:  # the converter raises many unrelated types
        raise ConversionError(f"TFLite float conversion failed: {err}") from err
    check_ops(flatbuffer)
    return bytes(flatbuffer)


OUTPUT_OFFSET_MARGIN = 0.02
"""Share of the reconstructions' float range added below their minimum by
:func:`output_offset`, so calibration keeps the output range above 0."""


def output_offset(model, representative: NDArray[np.floating]) -> float:
    """The constant that makes every reconstruction of ``representative`` positive.

    The int8 model's last layer (the per-step dense ``rebuild``) rounds its
    int32 accumulator to the int8 output with a right shift. TFLite's
    reference kernels (aarch64) round an exact half away from zero, the x86
    kernels round it up: for a negative value landing exactly on a half the
    two differ by one output step, which made ``tflite-runtime`` 2.14 scores
    differ between a Pi and a PC in about 0.13 % of outputs. With this
    offset added to the layer's bias the calibrated output range starts at
    0 (output zero point -128), so a value that would be negative is below
    the int8 range and clamps to -128 whichever way it was rounded; the
    scorer subtracts the offset after dequantizing (``model.json``,
    ``output.offset``). Found and measured by ``benchmarks/arm/final_layer.py``.

    Parameters
    ----------
    model : tf_keras.Model
    representative : NDArray[np.floating], shape (n, points, channels)

    Returns
    -------
    float
        ``max(0, -min) + OUTPUT_OFFSET_MARGIN * (max - min)`` of the float
        reconstructions.
    """
    out = np.asarray(
        model.predict(np.asarray(representative, np.float32), verbose=0), np.float64
    )
    low, high = float(out.min()), float(out.max())
    return max(0.0, -low) + OUTPUT_OFFSET_MARGIN * (high - low)


def with_output_offset(model, spec: LstmAutoencoderSpec, offset: float):
    """A copy of the autoencoder whose reconstructions are ``offset`` higher."""
    shifted = build_lstm_autoencoder(spec)
    shifted.set_weights(model.get_weights())
    rebuild = shifted.get_layer("rebuild")
    kernel, bias = rebuild.get_weights()
    rebuild.set_weights([kernel, (bias + offset).astype(bias.dtype)])
    return shifted


def convert_int8(
    model, spec: LstmAutoencoderSpec, representative: NDArray[np.floating]
) -> bytes:
    """Quantize the float autoencoder to a full-int8 TFLite model.

    Parameters
    ----------
    model : tf_keras.Model
        Trained float autoencoder (any batch size).
    spec : LstmAutoencoderSpec
        Its shape.
    representative : NDArray[np.floating], shape (n, points, channels)
        Training beats that set the activation ranges; validated first.

    Returns
    -------
    bytes
        The ``model.tflite`` flatbuffer, already op-checked.

    Raises
    ------
    RepresentativeDataError
        See :func:`validate_representative`.
    ConversionError
        The converter failed or the graph fails :func:`check_ops`.
    """
    tf, _ = tensorflow_and_keras()
    rep = validate_representative(representative, spec.points, spec.channels)
    started = time.perf_counter()
    fixed = build_lstm_autoencoder(spec, batch_size=1)
    fixed.set_weights(model.get_weights())

    def representative_dataset() -> Iterator[list[NDArray[np.float32]]]:
        for i in range(rep.shape[0]):
            yield [rep[i : i + 1]]

    converter = tf.lite.TFLiteConverter.from_keras_model(fixed)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_dataset
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    log.info("converting to full int8 with %d representative beats", rep.shape[0])
    try:
        flatbuffer = converter.convert()
    except Exception as err:  # the converter raises many unrelated types
        raise ConversionError(f"TFLite int8 conversion failed: {err}") from err
    ops = check_ops(flatbuffer)
    log.info(
        "int8 model: %d bytes, %d ops (%s) in %.1f s",
        len(flatbuffer),
        len(ops),
        ", ".join(sorted(set(ops))),
        time.perf_counter() - started,
    )
    return bytes(flatbuffer)
