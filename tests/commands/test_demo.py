"""``beatguard demo``'s ECG strips: every peak and every beat mark inside its row.

The strips are drawn from the bundled record 208x with the beats the device
chain finds in it (every third marked anomalous), as the demo draws them
from its event log. One slow test runs the whole demo for its event log.
"""

from __future__ import annotations

import json
import re
import sqlite3

import matplotlib
import numpy as np
import pytest

from beatguard import bundled_record_path
from beatguard.commands import demo
from beatguard.device.chain import ChainConfig, beats_from_record
from beatguard.device.records import read_record

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def strip_input():
    record = read_record(bundled_record_path())
    first = int(2 * 60 * record.fs_hz)  # the demo's training minutes
    found = beats_from_record(record, ChainConfig.for_record(record), first)
    samples = np.array([b.sample - first for b in found], np.int64)
    beats = {"sample": samples, "anomalous": np.arange(len(samples)) % 3 == 0}
    return record.millivolts(), beats, first, record.fs_hz


@pytest.mark.parametrize("offset_s", [0.0, 60.0, 120.0])
def test_strip_rows_hold_every_peak_and_every_mark_glyph(strip_input, offset_s):
    import matplotlib.pyplot as plt

    mv, beats, first, fs_hz = strip_input
    fig = demo._strip_figure(mv, beats, first, fs_hz, offset_s)
    fig.canvas.draw()  # lays the figure out: the axes get their final size
    marks = 0
    for ax in [a for a in fig.axes if a.get_visible()]:
        bottom, top = ax.get_ylim()
        ecg, *mark_lines = ax.get_lines()
        assert bottom < np.nanmin(ecg.get_ydata())
        assert np.nanmax(ecg.get_ydata()) < top
        for line in mark_lines:
            xy = np.column_stack([line.get_xdata(), line.get_ydata()])
            if not len(xy):
                continue
            y_px = ax.transData.transform(xy)[:, 1]
            half_px = line.get_markersize() / 2 * fig.dpi / 72
            assert y_px.max() + half_px <= ax.bbox.y1  # the glyph is inside
            assert (line.get_ydata() > _tips(mv, line.get_xdata(), fs_hz)).all()
            marks += len(xy)
    plt.close(fig)
    assert marks > 50


def _tips(mv: np.ndarray, t_s: np.ndarray, fs_hz: float) -> np.ndarray:
    """The ECG's highest point within 50 ms of each mark's time."""
    r = np.round(np.asarray(t_s) * fs_hz).astype(int)
    half = round(0.05 * fs_hz)
    return np.array([mv[k - half : k + half + 1].max() for k in r])


@pytest.mark.slow
def test_demo_logs_its_settings_like_run_and_leaves_no_wal_files(
    beatguard_cli, tmp_path
):
    out = tmp_path / "demo"
    result = beatguard_cli("demo", "--out", str(out), "--speed", "60")
    assert result.returncode == 0, result.stderr[-3000:]
    events = out / "events.sqlite"
    db = sqlite3.connect(events)
    (stored,) = db.execute("SELECT settings_json FROM sessions").fetchone()
    db.close()
    settings = json.loads(stored)
    assert settings["model"]["dir"] == str(out / "model")
    assert settings["events"]["path"] == str(events)
    assert settings["link"]["reconnect"] is False
    assert settings["buzzer"]["enabled"] is False
    assert settings["alerts"]["run_beats"] > 0
    assert not any(out.glob("events.sqlite-*"))
    # The summary states what the bundled record holds: many beats, PVCs
    # among them, alerts, and a clean simulated link.
    rows = dict(
        re.split(r"\s{2,}", line.strip(), maxsplit=1)
        for line in result.stdout.splitlines()
        if not line.startswith(" ") and re.search(r"\S\s{2,}\S", line)
    )
    beats = int(rows["beats scored"])
    anomalous = int(rows["anomalous beats"].split()[0])
    assert beats > 250 and 0 < anomalous < beats // 2
    assert int(rows["alerts"].split()[0]) > 0
    assert rows["link faults"] == "0 gaps, 0 corrupt frames, 0 lost samples"
    for png in ("score_over_time", "ecg_strip_1", "ecg_strip_2", "ecg_strip_3"):
        assert (out / f"{png}.png").stat().st_size > 10_000
