"""The ARM check's comparisons: scores byte for byte, runtime logs exactly."""

from __future__ import annotations

import importlib.util
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
