"""``beatguard capture`` turns a board's stream into a WFDB record that the
chain (and so ``beatguard train``) reads like any other."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from beatguard.device.chain import ChainConfig, beats_from_record
from beatguard.device.records import read_record

CLI = [sys.executable, "-m", "beatguard.cli"]


def test_capture_writes_the_board_stream_as_a_record(tmp_path, mitdb):
    link = tmp_path / "board"
    sim = subprocess.Popen(
        [*CLI, "simulate", str(mitdb / "106"), "--start-minute", "2"]
        + ["--minutes", "1", "--speed", "20", "--leads-off", "10:2"]
        + ["--link", str(link)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert sim.stdout.readline().strip() == str(link)
        out = tmp_path / "captures" / "me"
        result = subprocess.run(
            [*CLI, "capture", "--port", str(link), "--minutes", "0.5"]
            + ["--out", str(out)],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        sim.kill()
        sim.wait(10)
    assert result.returncode == 0, result.stderr
    assert f"wrote {out}" in result.stdout
    record = read_record(out)
    original = read_record(mitdb / "106")
    start = 2 * 60 * 360
    assert record.fs_hz == 360.0 and record.gain_counts_per_mv == 200.0
    assert len(record.counts) == 30 * 360
    np.testing.assert_array_equal(
        record.counts, original.counts[start : start + 30 * 360]
    )
    assert record.leads_off is not None
    assert np.flatnonzero(record.leads_off)[[0, -1]].tolist() == [3600, 4319]
    beats = beats_from_record(record, ChainConfig.for_record(record))
    assert len(beats) > 25  # about 70 beats a minute, minus 2 s off


def test_capture_from_a_port_that_never_appears_is_one_clear_line(tmp_path):
    port = tmp_path / "no-such-board"
    result = subprocess.run(
        [*CLI, "capture", "--port", str(port), "--minutes", "1"]
        + ["--out", str(tmp_path / "x"), "--wait-s", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("beatguard capture:") and str(port) in last
    assert not (tmp_path / "x.hea").exists()
    gave_up = [line for line in result.stderr.splitlines() if "gave up" in line]
    assert gave_up == [last]
