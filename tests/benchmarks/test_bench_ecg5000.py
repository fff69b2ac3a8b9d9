"""The ECG5000 benchmark: its fixed split, validation folds and plain-MSE score."""

from __future__ import annotations

import importlib.util
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from beatguard.device.records import read_ucr

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_ecg5000.py"


def _load():
    spec = importlib.util.spec_from_file_location("bench_ecg5000_under_test", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


bench = _load()


def test_split_takes_half_of_each_class_the_same_way_every_time(ecg5000):
    labels = read_ucr(ecg5000).labels
    mask = bench.stratified_split(labels)
    for cls in np.unique(labels):
        assert mask[labels == cls].sum() == (labels == cls).sum() // 2
    np.testing.assert_array_equal(mask, bench.stratified_split(labels))


def test_validation_folds_split_the_training_normals_once_each():
    folds = bench.validation_folds(146)
    assert len(folds) == bench.VALIDATION_FOLDS
    np.testing.assert_array_equal(np.sort(np.concatenate(folds)), np.arange(146))
    sizes = [len(fold) for fold in folds]
    assert max(sizes) - min(sizes) <= 1
    for again, fold in zip(bench.validation_folds(146), folds, strict=True):
        np.testing.assert_array_equal(again, fold)


def test_ucr_beats_become_one_channel_windows_of_the_chosen_points(ecg5000):
    beats = read_ucr(ecg5000).beats[:5]
    inputs = bench.ucr_inputs(beats, 64)
    assert inputs.shape == (5, 64, 1) and inputs.dtype == np.float32
    np.testing.assert_allclose(inputs[:, 0, 0], beats[:, 0], rtol=1e-6)
    np.testing.assert_allclose(inputs[:, -1, 0], beats[:, -1], rtol=1e-6)


@pytest.mark.slow
def test_fit_holds_out_the_last_fifth_and_scores_with_the_int8_bundle(
    ecg5000, tmp_path
):
    data = read_ucr(ecg5000)
    normal = data.beats[data.labels == 1][:60]
    anomalous = data.beats[data.labels != 1][:20]
    config = replace(bench.CHOSEN, fit_steps=60)
    result, settings = bench.fit_ours(normal, config, seed=0)
    np.testing.assert_array_equal(
        result.calibration_inputs, bench.ucr_inputs(normal[48:], config.points)
    )
    assert len(result.fit_inputs) == 48
    beats = np.concatenate([normal[48:], anomalous])
    truth = np.r_[np.zeros(12, bool), np.ones(20, bool)]
    figures = bench.score_ours(result, settings, beats, truth, tmp_path)
    meta = json.loads((tmp_path / "model.json").read_text())
    assert meta["calibration"]["scores"] == "int8"
    assert meta["input"]["shape"] == [1, config.points, 1]
    assert figures["model_bytes"] == (tmp_path / "model.tflite").stat().st_size
    parity = meta["parity"]["reconstruction_rms_int8_vs_float"]
    assert figures["parity_rms"] == parity <= meta["parity"]["limit"]
    assert 0.0 <= figures["auc"] <= 1.0 and 0.0 <= figures["auc_float"] <= 1.0
