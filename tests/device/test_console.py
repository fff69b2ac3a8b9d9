"""The console status is one line with heart rate, beats, anomalies and signal."""

from __future__ import annotations

import math

from beatguard.device.console import Status, format_status
from beatguard.device.types import Quality


def test_status_line_shows_rate_counts_share_and_signal():
    line = format_status(
        Status(
            hr_bpm=72.4,
            beats=1834,
            scored_beats=1800,
            anomalous_beats=45,
            alerts=2,
            link="ok",
            elapsed_s=754.0,
        )
    )
    assert "\n" not in line
    assert "HR  72 bpm" in line
    assert "beats 1834" in line
    assert "abnormal 45 (2.5%)" in line
    assert "alerts 2" in line and "signal good" in line and "link ok" in line
    assert line.startswith(" 12:34")


def test_status_line_before_any_beat_and_with_leads_off():
    line = format_status(Status(hr_bpm=math.nan, quality=Quality.LEADS_OFF))
    assert "HR --- bpm" in line and "abnormal 0 (0.0%)" in line
    assert "LEADS OFF" in line
    noisy = format_status(Status(quality=Quality.NOISY | Quality.SATURATED))
    assert "signal saturated, noisy" in noisy


def test_status_line_ends_with_the_last_alert():
    line = format_status(Status(last_alert="run of 3 abnormal beats"))
    assert line.endswith("last: run of 3 abnormal beats")
