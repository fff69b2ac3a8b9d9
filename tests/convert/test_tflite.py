"""Int8 conversion: the representative set is checked, the graph op-checked."""

from __future__ import annotations

import json

import numpy as np
import pytest

from beatguard.convert.tflite import (
    REQUIRED_OP,
    check_ops,
    convert_int8,
    graph_ops,
    validate_representative,
)
from beatguard.device.bundle import sha256_of
from beatguard.device.errors import ConversionError, RepresentativeDataError
from beatguard.train.keras_setup import tensorflow_and_keras
from beatguard.train.models import LstmAutoencoderSpec, build_lstm_autoencoder

MAX_MODEL_BYTES = 32 * 1024


def _windows(n: int = 20, points: int = 64) -> np.ndarray:
    rng = np.random.default_rng(1)
    t = np.linspace(0, 1, points)
    beats = np.exp(-(((t - 0.35) / 0.03) ** 2))[None, :] * rng.uniform(0.8, 1.2, (n, 1))
    x = np.stack([beats, np.zeros_like(beats)], axis=-1)
    return (x + rng.normal(0, 0.01, x.shape)).astype(np.float32)


def test_nonfinite_representative_window_is_refused_with_its_index():
    x = _windows()
    x[7, 10, 0] = np.nan
    with pytest.raises(RepresentativeDataError, match="window 7 has non-finite"):
        validate_representative(x, 64, 2)


def test_flat_representative_window_is_refused_with_its_index():
    x = _windows()
    x[12, :, 0] = 0.25
    with pytest.raises(RepresentativeDataError, match="window 12 is flat"):
        validate_representative(x, 64, 2)


def test_representative_set_of_wrong_shape_is_refused():
    with pytest.raises(RepresentativeDataError, match="shape"):
        validate_representative(_windows(points=50), 64, 2)


def test_bad_representative_set_never_reaches_the_converter():
    spec = LstmAutoencoderSpec(points=64, channels=2, encoder_units=4, decoder_units=4)
    model = build_lstm_autoencoder(spec)
    x = _windows()
    x[3, 0, 0] = np.inf
    with pytest.raises(RepresentativeDataError, match="window 3"):
        convert_int8(model, spec, x)


def test_small_lstm_converts_to_fused_int8_graph():
    spec = LstmAutoencoderSpec(points=16, channels=2, encoder_units=4, decoder_units=4)
    model = build_lstm_autoencoder(spec)
    flatbuffer = convert_int8(model, spec, _windows(points=16))
    ops = graph_ops(flatbuffer)
    assert REQUIRED_OP in ops
    assert "WHILE" not in ops


def test_graph_with_while_loop_is_refused():
    tf, _ = tensorflow_and_keras()

    @tf.function(input_signature=[tf.TensorSpec([1, 8], tf.float32)])
    def loop(x):
        i = tf.constant(0)
        _, y = tf.while_loop(lambda i, y: i < 3, lambda i, y: (i + 1, y * 2.0), [i, x])
        return y

    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [loop.get_concrete_function()], loop
    )
    flatbuffer = converter.convert()
    assert "WHILE" in graph_ops(flatbuffer)
    with pytest.raises(ConversionError, match="WHILE"):
        check_ops(flatbuffer)


def test_bundle_model_is_fused_int8_and_within_32_kb(bundle_106):
    model = bundle_106 / "model.tflite"
    ops = check_ops(model.read_bytes())
    assert REQUIRED_OP in ops
    assert model.stat().st_size <= MAX_MODEL_BYTES
    meta = json.loads((bundle_106 / "model.json").read_text())
    assert meta["input"]["dtype"] == meta["output"]["dtype"] == "int8"
    assert meta["model_sha256"] == sha256_of(model)


def test_bundle_decision_is_recalibrated_on_int8_errors(bundle_106):
    from beatguard.device.bundle import mse
    from beatguard.device.scorer import Scorer
    from beatguard.train.fit import TrainSettings, calibrate_decision
    from beatguard.train.run import load_run

    meta = json.loads((bundle_106 / "model.json").read_text())
    calibration = meta["calibration"]
    assert calibration["scores"] == "int8"
    assert calibration["beats"] >= 10
    run = load_run(bundle_106)
    with Scorer(bundle_106) as scorer:
        int8_errors = mse(
            run.calibration_inputs, scorer.reconstruct(run.calibration_inputs)
        )
    expected, _ = calibrate_decision(int8_errors, TrainSettings())
    assert meta["decision"] == expected.to_dict()
    assert calibration["log_median"] != calibration["float_log_median"]
    parity = meta["parity"]
    assert parity["reconstruction_rms_int8_vs_float"] <= parity["limit"]
    assert parity["median_error_ratio_int8_vs_float"] <= parity["error_ratio_limit"]


def test_decoder_clock_converts_to_fused_int8_and_saved_runs_load_again(tmp_path):
    from beatguard.train.keras_setup import tensorflow_and_keras
    from beatguard.train.models import step_clock, step_clock_layer
    from beatguard.train.run import _h5_bytes

    spec = LstmAutoencoderSpec(
        points=16, channels=2, encoder_units=4, decoder_units=4, clock_channels=4
    )
    model = build_lstm_autoencoder(spec)
    clock = model.get_layer("clock")
    x = _windows(n=3, points=16)
    seen = clock(np.zeros((3, 16, 4), np.float32)).numpy()
    np.testing.assert_array_equal(
        seen[:, :, 4:], np.broadcast_to(step_clock(16, 4), (3, 16, 4))
    )
    ops = graph_ops(convert_int8(model, spec, _windows(points=16)))
    assert REQUIRED_OP in ops and "WHILE" not in ops
    path = tmp_path / "model.h5"
    path.write_bytes(_h5_bytes(model))
    _, keras = tensorflow_and_keras()
    again = keras.models.load_model(
        path, compile=False, custom_objects={"StepClock": step_clock_layer()}
    )
    np.testing.assert_array_equal(
        again.predict(x, verbose=0), model.predict(x, verbose=0)
    )


def test_step_clock_is_a_ramp_then_sines_over_the_window():
    from beatguard.train.models import step_clock

    clock = step_clock(64, 4)
    assert clock.shape == (64, 4) and clock.dtype == np.float32
    assert clock[0, 0] == -1.0 and clock[-1, 0] == 1.0
    np.testing.assert_allclose(clock[[0, -1], 1:], 0.0, atol=1e-6)
    assert clock[32, 1] == pytest.approx(1.0, abs=1e-3)
