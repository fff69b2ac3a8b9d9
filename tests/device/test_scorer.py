"""The int8 scorer: quantization at the edges, no state between beats."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from beatguard.device.chain import beats_from_record
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


def test_same_beat_scored_twice_or_after_another_gets_identical_score(
    bundle_106, beats_106
):
    with Scorer(bundle_106) as scorer:
        beat = beats_106[5]
        first = scorer.score_beats([beat])
        again = scorer.score_beats([beat])
        odd = beats_106[6].window * -3.0
        scorer.score_windows(odd[None, :], np.array([2.0]))
        after_odd = scorer.score_beats([beat])
        in_batch = scorer.score_beats(beats_106[:10])
    assert first.tobytes() == again.tobytes() == after_odd.tobytes()
    assert in_batch[5].tobytes() == first[0].tobytes()


def test_inputs_use_model_scale_and_zero_point_and_outputs_are_dequantized(
    bundle_106, beats_106
):
    with Scorer(bundle_106) as scorer:
        q_in, q_out = scorer.input_quantization, scorer.output_quantization
        x = np.stack([beats_106[3].window, np.zeros(scorer.points)], axis=-1)
        rebuilt = scorer.reconstruct(x[None])[0]
    raw, (scale, zero_point) = _manual_run(bundle_106, q_in.quantize(x))
    assert (scale, zero_point) == pytest.approx((q_out.scale, q_out.zero_point))
    np.testing.assert_array_equal(
        rebuilt, scale * (raw.astype(np.float64) - zero_point)
    )


def test_out_of_range_inputs_are_clipped_not_wrapped(bundle_106, beats_106):
    with Scorer(bundle_106) as scorer:
        q_in = scorer.input_quantization
        huge = np.stack([beats_106[3].window * 1000.0, np.zeros(scorer.points)], -1)
        quantized = q_in.quantize(huge)
        assert quantized.min() == -128 and quantized.max() == 127
        signs = np.sign(huge[:, 0])
        big = np.abs(huge[:, 0]) > 200 * q_in.scale
        expected = np.where(signs[big] > 0, 127, -128)
        np.testing.assert_array_equal(quantized[big, 0], expected)
        rebuilt = scorer.reconstruct(huge[None])[0]
    raw, (scale, zero_point) = _manual_run(bundle_106, quantized)
    np.testing.assert_array_equal(
        rebuilt, scale * (raw.astype(np.float64) - zero_point)
    )


def test_score_beats_uses_windows_and_rr_prematurity(bundle_106, beats_106):
    with Scorer(bundle_106) as scorer:
        feature = scorer.bundle.prematurity
        rr = np.array([b.rr_before_s for b in beats_106])
        avg = np.array([b.rr_avg_s for b in beats_106])
        windows = np.stack([b.window for b in beats_106])
        by_beats = scorer.score_beats(beats_106)
        by_windows = scorer.score_windows(windows, feature.values(rr, avg))
        flags = scorer.is_anomalous(by_beats)
    assert by_beats.dtype == np.float64 and by_beats.shape == (len(beats_106),)
    np.testing.assert_array_equal(by_beats, by_windows)
    np.testing.assert_array_equal(flags, by_beats > scorer.threshold)


def test_wrong_window_length_is_refused(bundle_106):
    with Scorer(bundle_106) as scorer, pytest.raises(ValueError, match="shape"):
        scorer.score_windows(np.zeros((2, 40), np.float32))


def test_close_twice_is_harmless(bundle_106):
    scorer = Scorer(bundle_106)
    scorer.close()
    scorer.close()


def test_scorer_never_imports_tensorflow_when_litert_is_present(bundle_106):
    code = (
        "import sys, numpy as np\n"
        "from beatguard.device.scorer import Scorer\n"
        f"s = Scorer({str(bundle_106)!r})\n"
        "s.score_windows(np.random.default_rng(0).normal(size=(3, s.points)))\n"
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
        expected = ref.score_beats(beats_106[:20])
    with Scorer(bundle_106, interpreter=name) as scorer:
        assert scorer.interpreter_name == name
        np.testing.assert_allclose(scorer.score_beats(beats_106[:20]), expected)
