"""The int8 scorer: quantization at the edges, no state between beats."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from beatguard.device.bundle import beats_prematurity, load_bundle
from beatguard.device.chain import beats_from_record
from beatguard.device.decision import BeatDecision
from beatguard.device.records import read_record
from beatguard.device.scorer import Scorer, interpreter_class


@pytest.fixture(scope="module")
def beats_106(mitdb, bundle_106):
    record = read_record(mitdb / "106")
    with Scorer(bundle_106) as scorer:
        config = scorer.bundle.chain_config()
    start = int(10 * 60 * record.fs_hz)
    return beats_from_record(record, config, start, start + int(60 * record.fs_hz))


def _manual_run(bundle_dir, quantized):
    _, cls = interpreter_class("auto")
    interp = cls(model_path=str(bundle_dir / "model.tflite"))
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    interp.set_tensor(inp["index"], quantized[None])
    interp.invoke()
    return interp.get_tensor(out["index"])[0], out["quantization"]


def test_same_beat_scored_twice_or_after_another_gets_identical_error(
    bundle_106, beats_106
):
    with Scorer(bundle_106) as scorer:
        beat = beats_106[5]
        first = scorer.shape_errors([beat])
        again = scorer.shape_errors([beat])
        scorer.errors_of_windows(beats_106[6].window * -3.0)
        after_odd = scorer.shape_errors([beat])
        in_batch = scorer.shape_errors(beats_106[:10])
    assert first.tobytes() == again.tobytes() == after_odd.tobytes()
    assert in_batch[5].tobytes() == first[0].tobytes()


def test_reconstruction_does_not_depend_on_the_beat_before(bundle_106, beats_106):
    with Scorer(bundle_106) as scorer:
        x = np.asarray(beats_106[2].window, np.float32)[None, :, None]
        alone = scorer.reconstruct(x)
        scorer.reconstruct(-5.0 * x)
        after = scorer.reconstruct(x)
    assert alone.tobytes() == after.tobytes()


def test_inputs_use_model_scale_and_zero_point_and_outputs_are_dequantized(
    bundle_106, beats_106
):
    with Scorer(bundle_106) as scorer:
        q_in, q_out = scorer.input_quantization, scorer.output_quantization
        x = np.asarray(beats_106[3].window, np.float32)[:, None]
        rebuilt = scorer.reconstruct(x[None])[0]
    raw, (scale, zero_point) = _manual_run(bundle_106, q_in.quantize(x))
    assert (scale, zero_point) == pytest.approx((q_out.scale, q_out.zero_point))
    np.testing.assert_array_equal(
        rebuilt, scale * (raw.astype(np.float64) - zero_point) - q_out.offset
    )


def test_output_range_starts_at_zero_so_rounding_ties_cannot_differ(bundle_106):
    # A positive output range has zero point -128: a value that would round
    # differently on another kernel family is below the range and clamps.
    with Scorer(bundle_106) as scorer:
        q_out = scorer.output_quantization
    assert q_out.zero_point == -128 and q_out.offset > 0


def test_out_of_range_inputs_are_clipped_not_wrapped(bundle_106, beats_106):
    with Scorer(bundle_106) as scorer:
        q_in = scorer.input_quantization
        huge = np.asarray(beats_106[3].window, np.float64)[:, None] * 1000.0
        quantized = q_in.quantize(huge)
        assert quantized.min() == -128 and quantized.max() == 127
        signs = np.sign(huge[:, 0])
        big = np.abs(huge[:, 0]) > 200 * q_in.scale
        expected = np.where(signs[big] > 0, 127, -128)
        np.testing.assert_array_equal(quantized[big, 0], expected)
        rebuilt = scorer.reconstruct(huge[None])[0]
    raw, (scale, zero_point) = _manual_run(bundle_106, quantized)
    offset = scorer.output_quantization.offset
    np.testing.assert_array_equal(
        rebuilt, scale * (raw.astype(np.float64) - zero_point) - offset
    )


def test_score_beats_is_the_bundle_decision_on_int8_errors_and_rr(
    bundle_106, beats_106
):
    with Scorer(bundle_106) as scorer:
        errors = scorer.shape_errors(beats_106)
        windows = np.stack([b.window for b in beats_106])
        by_windows = scorer.errors_of_windows(windows)
        scores = scorer.score_beats(beats_106)
        flags = scorer.is_anomalous(scores)
        scorer.reset_reference()
        again = scorer.score_beats(beats_106)
    np.testing.assert_array_equal(errors, by_windows)
    decision = BeatDecision(load_bundle(bundle_106).decision)
    expected, expected_flags = decision.judge(errors, beats_prematurity(beats_106))
    assert scores.dtype == np.float64 and scores.shape == (len(beats_106),)
    assert scores.tobytes() == expected.tobytes() == again.tobytes()
    np.testing.assert_array_equal(flags, expected_flags)
    np.testing.assert_array_equal(flags, scores > scorer.threshold)


def test_wrong_window_length_is_refused(bundle_106):
    with Scorer(bundle_106) as scorer, pytest.raises(ValueError, match="shape"):
        scorer.errors_of_windows(np.zeros((2, 40), np.float32))


def test_close_twice_is_harmless(bundle_106):
    scorer = Scorer(bundle_106)
    scorer.close()
    scorer.close()


def test_scorer_never_imports_tensorflow_when_litert_is_present(bundle_106):
    code = (
        "import sys, numpy as np\n"
        "from beatguard.device.scorer import Scorer\n"
        f"s = Scorer({str(bundle_106)!r})\n"
        "s.errors_of_windows(np.random.default_rng(0).normal(size=(3, s.points)))\n"
        "assert s.interpreter_name == 'ai-edge-litert', s.interpreter_name\n"
        "assert 'tensorflow' not in sys.modules\n"
        "assert 'tf_keras' not in sys.modules\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.parametrize("name", ["ai-edge-litert", "tensorflow"])
def test_each_installed_interpreter_gives_the_same_scores(bundle_106, beats_106, name):
    pytest.importorskip(name.replace("-", "_"), reason=f"{name} is not installed")
    with Scorer(bundle_106, interpreter="ai-edge-litert") as ref:
        expected = ref.shape_errors(beats_106[:20])
    with Scorer(bundle_106, interpreter=name) as scorer:
        assert scorer.interpreter_name == name
        np.testing.assert_allclose(scorer.shape_errors(beats_106[:20]), expected)
