"""Training beats come from WFDB records and CSV captures through the chain."""

from __future__ import annotations

import numpy as np

from beatguard.device.records import read_record
from beatguard.train.dataset import personal_training_set


def test_csv_capture_gives_the_same_beats_as_its_wfdb_record(mitdb, tmp_path):
    record = read_record(mitdb / "106")
    stop = int(2 * 60 * record.fs_hz)
    csv = tmp_path / "capture.csv"
    np.savetxt(csv, record.counts[:stop], fmt="%d")
    options = {
        "fs_hz": record.fs_hz,
        "gain_counts_per_mv": record.gain_counts_per_mv,
        "baseline_counts": record.baseline_counts,
    }
    from_csv = personal_training_set([csv], 2.0, read_options=options)
    from_wfdb = personal_training_set([mitdb / "106"], 2.0)
    assert from_csv.summary["records"] == ["capture"]
    assert abs(len(from_csv.inputs) - len(from_wfdb.inputs)) <= 2
    n = min(len(from_csv.inputs), len(from_wfdb.inputs)) // 2
    np.testing.assert_allclose(from_csv.inputs[:n], from_wfdb.inputs[:n], atol=0.05)
