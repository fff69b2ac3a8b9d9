"""Personal evaluation: the device's beats, matched and measured."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from beatguard.device.chain import beats_from_record
from beatguard.device.records import read_record
from beatguard.train.evaluate import (
    chain_config_for,
    roc_auc,
    roc_curve,
    score_record,
    template_distance,
)


def test_roc_auc_of_perfect_reversed_and_tied_scores():
    labels = np.array([0, 0, 1, 1], bool)
    assert roc_auc(labels, np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    assert roc_auc(labels, np.array([0.9, 0.8, 0.2, 0.1])) == 0.0
    assert roc_auc(labels, np.ones(4)) == 0.5
    assert np.isnan(roc_auc(np.zeros(4, bool), np.arange(4.0)))
    fpr, tpr = roc_curve(labels, np.array([0.1, 0.2, 0.8, 0.9]))
    assert fpr[-1] == tpr[-1] == 1.0 and tpr[2] == 1.0 and fpr[2] == 0.0


def test_template_distance_is_zero_for_the_median_beat():
    train = np.array([[0.0, 1.0], [0.0, 3.0], [0.0, 2.0]])
    np.testing.assert_allclose(
        template_distance(train, [[0.0, 2.0], [1.0, 2.0]]), [0, 0.5]
    )


def test_score_record_scores_what_a_fresh_chain_from_the_start_emits(mitdb, bundle_106):
    record = read_record(mitdb / "106")
    start = int(25 * 60 * record.fs_hz)
    scored = score_record(record, bundle_106, start)
    config = chain_config_for(
        record, json.loads((bundle_106 / "model.json").read_text())["chain"]
    )
    expected = beats_from_record(record, config, start_sample=start)
    np.testing.assert_array_equal(scored.samples, [b.sample for b in expected])
    assert scored.samples.min() >= start
    assert scored.scores.shape == scored.anomalous.shape == (len(expected),)
    np.testing.assert_array_equal(scored.anomalous, scored.scores > scored.threshold)


@pytest.mark.slow
def test_evaluate_personal_writes_figures_and_plots(mitdb, tmp_path):
    out = tmp_path / "personal.json"
    cmd = [sys.executable, "-m", "beatguard.cli", "evaluate", "personal"]
    cmd += [str(mitdb / "106"), "--train-minutes", "5", "--json", str(out)]
    cmd += ["--epochs", "8", "--first-pass-epochs", "4"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(out.read_text())
    rec = figures["records"]["106"]
    for key in (
        "auc_int8",
        "auc_float",
        "auc_int8_shape",
        "auc_template",
        "auc_template_decision",
        "auc_dense_ae",
        "se",
        "ppv",
        "false_alarms_per_hour",
        "model_bytes",
        "dropped_beats",
    ):
        assert rec[key] is not None, key
    assert 0.0 <= rec["auc_int8"] <= 1.0
    assert 0.0 <= rec["auc_int8_shape"] <= 1.0
    assert rec["pvc_reference"] > 400  # 106 has 460 PVCs after minute 5
    assert set(figures["total"]) >= {"se", "ppv"}
    runs = tmp_path / "personal_runs"
    for kind in ("scores", "beats", "roc"):
        png = runs / f"106_{kind}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
