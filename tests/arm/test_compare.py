"""The ARM check's comparisons: scores byte for byte, runtime logs exactly."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

ARM_DIR = Path(__file__).resolve().parents[2] / "benchmarks" / "arm"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"arm_{name}", ARM_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


fixed_beats = _load("fixed_beats")
pty_run = _load("pty_run")


def _scores_file(path: Path, scores: np.ndarray) -> Path:
    path.write_bytes(np.asarray(scores, "<f8").tobytes())
    return path


def test_equal_score_files_compare_equal_beat_by_beat(tmp_path):
    scores = np.linspace(0.1, 9.0, 600)
    a = _scores_file(tmp_path / "a.bin", scores)
    b = _scores_file(tmp_path / "b.bin", scores.copy())
    assert fixed_beats.compare_scores(a, b) == (600, [])


def test_one_ulp_difference_is_reported_at_its_beat(tmp_path):
    scores = np.linspace(0.1, 9.0, 600)
    other = scores.copy()
    other[417] = np.nextafter(other[417], np.inf)
    a = _scores_file(tmp_path / "a.bin", scores)
    b = _scores_file(tmp_path / "b.bin", other)
    assert fixed_beats.compare_scores(a, b) == (600, [417])
    assert fixed_beats.main(["compare", str(a), str(b)]) == 1


def test_score_files_of_different_lengths_are_refused(tmp_path):
    a = _scores_file(tmp_path / "a.bin", np.ones(600))
    b = _scores_file(tmp_path / "b.bin", np.ones(599))
    with pytest.raises(ValueError, match="holds 600 scores but"):
        fixed_beats.compare_scores(a, b)


def test_written_scores_keep_their_bytes_and_hex_text(tmp_path):
    scores = np.array([0.25, 1.0 / 3.0, 7.5])
    recon = np.arange(3 * 4 * 2, dtype=np.float64).reshape(3, 4, 2)
    out = tmp_path / "s.bin"
    fixed_beats.write_scores(out, scores, recon, [10, 400, 777])
    assert np.array_equal(np.frombuffer(out.read_bytes(), "<f8"), scores)
    assert out.with_suffix(".recon.bin").read_bytes() == recon.astype("<f8").tobytes()
    second = out.with_suffix(".hex").read_text().splitlines()[1].split()
    assert second[:3] == ["1", "400", np.array([1.0 / 3.0], "<f8").tobytes().hex()]


def _kernels(machine: str, **changes) -> dict:
    record = {
        "machine": machine,
        "interpreter": "tflite-runtime",
        "version": "2.14.0",
        "numpy": "1.26.4",
        "delegated_ops": [],
    }
    return {**record, **changes}


def _with_kernels(path: Path, kernels: dict) -> Path:
    path.with_suffix(".kernels.json").write_text(json.dumps(kernels))
    return path


def test_equal_bytes_from_like_kernels_pass(tmp_path):
    scores = np.linspace(0.1, 9.0, 600)
    a = _with_kernels(_scores_file(tmp_path / "a.bin", scores), _kernels("x86_64"))
    b = _with_kernels(_scores_file(tmp_path / "b.bin", scores), _kernels("aarch64"))
    assert fixed_beats.main(["compare", str(a), str(b)]) == 0


def test_equal_bytes_from_unlike_kernels_fail_and_say_what_differs(tmp_path, caplog):
    scores = np.linspace(0.1, 9.0, 600)
    x86 = _kernels("x86_64", delegated_ops=["5 FULLY_CONNECTED"])
    a = _with_kernels(_scores_file(tmp_path / "a.bin", scores), x86)
    b = _with_kernels(_scores_file(tmp_path / "b.bin", scores), _kernels("aarch64"))
    assert fixed_beats.main(["compare", str(a), str(b)]) == 1
    assert "NOT LIKE FOR LIKE: delegated_ops: ['5 FULLY_CONNECTED'] on x86_64" in (
        caplog.text
    )


def test_score_files_without_a_kernel_record_are_not_like_for_like(tmp_path):
    scores = np.linspace(0.1, 9.0, 600)
    a = _scores_file(tmp_path / "a.bin", scores)
    b = _with_kernels(_scores_file(tmp_path / "b.bin", scores), _kernels("aarch64"))
    assert fixed_beats.like_for_like(None, fixed_beats._kernels(b)) == [
        "a side has no .kernels.json: cannot tell what ran it"
    ]
    assert fixed_beats.main(["compare", str(a), str(b)]) == 1


def test_a_version_difference_is_named():
    unlike = fixed_beats.like_for_like(
        _kernels("x86_64"), _kernels("aarch64", version="2.13.0")
    )
    assert unlike == ["version: 2.14.0 on x86_64, 2.13.0 on aarch64"]


def _ops(lstm: np.ndarray, dense: np.ndarray) -> dict:
    return {"0 UNIDIRECTIONAL_SEQUENCE_LSTM 39": lstm, "5 FULLY_CONNECTED 51": dense}


def test_first_differing_op_is_the_earliest_in_execution_order():
    lstm = np.zeros((600, 1, 64, 16), np.int8)
    dense = np.zeros((600, 1, 64, 2), np.int8)
    other = dense.copy()
    other[3, 0, 10, 1] = 1
    other[3, 0, 11, 0] = -1
    other[250, 0, 0, 0] = 1
    first = fixed_beats.first_differing_op(_ops(lstm, dense), _ops(lstm, other))
    assert first == {
        "op": "5 FULLY_CONNECTED 51",
        "values_differing": 3,
        "values": 600 * 64 * 2,
        "beats_differing": 2,
        "max_steps": 1,
    }
    changed_lstm = lstm.copy()
    changed_lstm[0, 0, 0, 0] = 5
    first = fixed_beats.first_differing_op(_ops(lstm, dense), _ops(changed_lstm, other))
    assert first["op"] == "0 UNIDIRECTIONAL_SEQUENCE_LSTM 39"
    assert first["max_steps"] == 5


def test_equal_op_outputs_have_no_first_difference():
    lstm = np.arange(600 * 16, dtype=np.int64).reshape(600, 16).astype(np.int8)
    dense = np.ones((600, 2), np.int8)
    assert fixed_beats.first_differing_op(_ops(lstm, dense), _ops(lstm, dense)) is None


def test_op_outputs_of_a_beat_do_not_depend_on_the_beats_before_it(
    bundle_106, tmp_path
):
    """Every op's int8 outputs, beat by beat, with LSTM state reset between."""
    from beatguard.device.bundle import load_bundle
    from beatguard.device.types import Beat

    points = load_bundle(bundle_106).input_quantization.shape[1]
    windows = np.random.default_rng(7).normal(size=(3, points)).astype(np.float32)
    beats = [
        Beat(
            sample=1000 * (i + 1),
            window=w,
            rr_before_s=0.8 - 0.2 * i,
            rr_avg_s=0.8,
            emitted_at_sample=1000 * (i + 1) + 200,
        )
        for i, w in enumerate(windows)
    ]
    together = fixed_beats.op_outputs(bundle_106, beats, "auto")
    last_alone = fixed_beats.op_outputs(bundle_106, beats[2:], "auto")
    assert list(together) == list(last_alone)
    assert len(together) >= 2
    for key in together:
        assert together[key].shape[0] == 3
        assert together[key][2].tobytes() == last_alone[key][0].tobytes()
    final = together[list(together)[-1]]
    assert final.shape[1:] == (1, points, 1)
    assert final.dtype == np.int8


def _run(machine: str, beats: list, alerts: list | None = None) -> dict:
    return {"machine": machine, "beats": beats, "alerts": alerts or [], "wall_s": 1}


def test_runs_with_the_same_beats_labels_and_alerts_agree():
    beats = [[2000, 0, 0, 0.5], [2290, 1, 0, 4.25]]
    a = _run("x86_64", beats, [["run", 2290]])
    b = _run("aarch64", [list(row) for row in beats], [["run", 2290]])
    assert pty_run.compare_runs(a, b) == []


def test_a_flipped_label_is_a_difference():
    a = _run("x86_64", [[2000, 0, 0, 0.5], [2290, 1, 0, 4.25]])
    b = _run("aarch64", [[2000, 0, 0, 0.5], [2290, 0, 0, 4.25]])
    (problem,) = pty_run.compare_runs(a, b)
    assert problem.startswith("beats differ: 2 on x86_64, 2 on aarch64")
    assert "[2290, 1, 0]" in problem.replace("(", "[").replace(")", "]")


def test_a_score_difference_alone_is_reported_as_such():
    a = _run("x86_64", [[2000, 0, 0, 0.5]])
    b = _run("aarch64", [[2000, 0, 0, 0.5000000000000001]])
    assert pty_run.compare_runs(a, b) == ["1 of 1 logged scores differ"]
