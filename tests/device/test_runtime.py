"""The runtime loop, run in-process on replayed MIT-BIH records with the real
int8 scorer, logs exactly the beats an offline pass scores, never scores
across a gap or while leads are off, and keeps going when its log fails."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time

import numpy as np
import pytest

from beatguard.device.alerts import AlertKind, AlertSettings
from beatguard.device.buzzer import PATTERNS, AlertBuzzer
from beatguard.device.eventlog import EventLog, read_table
from beatguard.device.recorder import StreamRecorder
from beatguard.device.records import read_record
from beatguard.device.replay import RecordSource
from beatguard.device.runtime import Runtime
from beatguard.device.scorer import Scorer
from beatguard.device.types import Quality
from beatguard.train.evaluate import score_record

FS_HZ = 360.0
START = 5 * 60 * 360  # the personal protocol scores from minute 5


@pytest.fixture(scope="module")
def record_106(mitdb):
    return read_record(mitdb / "106")


@pytest.fixture(scope="module")
def scorer(bundle_106):
    with Scorer(bundle_106) as s:
        yield s


def _run(source, scorer, tmp_path, name="events.sqlite", **kwargs):
    path = tmp_path / name
    log = EventLog(path)
    runtime = Runtime(
        source, scorer, scorer.bundle.chain_config(), event_log=log, **kwargs
    )
    summary = runtime.run()
    log.close(summary.end_reason)
    return summary, path, runtime


def _windows_touch(beats, a: int, b: int, config) -> list[int]:
    """R samples of beats whose window overlaps stream samples [a, b)."""
    before = round(config.window_before_s * FS_HZ)
    after = round(config.window_after_s * FS_HZ)
    return [s for s in beats if s - before < b and s + after >= a]


def test_logged_beats_and_labels_equal_the_personal_evaluation(
    record_106, scorer, bundle_106, tmp_path
):
    """The last 25 minutes, as ``beatguard evaluate personal`` scores them."""
    source = RecordSource(record_106, START, chunk_samples=29)
    summary, path, _ = _run(source, scorer, tmp_path)
    rows = read_table(path, "beats")
    offline = score_record(record_106, bundle_106, START)
    assert [r["sample"] + START for r in rows] == offline.samples.tolist()
    assert [r["anomalous"] for r in rows] == offline.anomalous.astype(int).tolist()
    np.testing.assert_array_equal([r["score"] for r in rows], offline.scores)
    assert summary.beats == len(rows) and summary.end_reason == "end of stream"
    assert summary.gaps == 0


def test_gap_resets_the_chain_and_no_beat_straddles_it(record_106, scorer, tmp_path):
    config = scorer.bundle.chain_config()
    gaps_s = [(60.0, 5.0), (150.0, 0.4)]
    source = RecordSource(record_106, START, START + 4 * 60 * 360, gaps=gaps_s)
    summary, path, _ = _run(source, scorer, tmp_path)
    beats = [r["sample"] for r in read_table(path, "beats")]
    assert summary.gaps == 2
    events = read_table(path, "link_events")
    logged = [(e["sample"], e["lost_samples"]) for e in events if e["kind"] == "gap"]
    assert logged == [(21600, 1800), (54000, 144)]
    for at, lost in logged:
        assert _windows_touch(beats, at, at + lost, config) == []
        # beats resume once the detector has relearnt (within 3 s)
        first_after = min(s for s in beats if s >= at + lost)
        assert first_after - (at + lost) <= 3 * FS_HZ
    # the first beat after a gap has no RR interval: the chain was reset
    rows = read_table(path, "beats")
    after_gap = [r for r in rows if r["sample"] >= 21600 + 1800][0]
    assert after_gap["rr_before_s"] is None


def test_thirty_seconds_of_leads_off_is_one_status_and_no_alarm(
    record_106, scorer, tmp_path
):
    off_a, off_b = START + 60 * 360, START + 90 * 360
    leads_off = np.zeros(len(record_106.counts), bool)
    leads_off[off_a:off_b] = True
    record = dataclasses.replace(record_106, leads_off=leads_off)
    # sensitive settings, so that any scoring during leads-off would alarm
    settings = AlertSettings(run_beats=1, pause_s=2.0, cooldown_s=0.0)
    source = RecordSource(record, START, START + 3 * 60 * 360)
    _, path, runtime = _run(source, scorer, tmp_path, alert_settings=settings)
    a, b = off_a - START, off_b - START
    quality = read_table(path, "quality_events")
    went_off = [q["sample"] for q in quality if q["quality"] & Quality.LEADS_OFF]
    assert went_off == [a]
    assert quality[[q["sample"] for q in quality].index(a)]["description"] == (
        "leads off"
    )
    alerts = read_table(path, "alerts")
    assert alerts, "these settings alarm on the signal outside the leads-off span"
    assert [x["sample"] for x in alerts if a <= x["sample"] < b + FS_HZ] == []
    beats = [r["sample"] for r in read_table(path, "beats")]
    assert [s for s in beats if a <= s < b] == []
    back_on = next(q["sample"] for q in quality if q["sample"] > a and not q["quality"])
    first_after = min(s for s in beats if s >= b)
    assert first_after - back_on <= 2 * FS_HZ
    assert runtime.status.quality == Quality.GOOD


def test_pause_in_the_signal_sounds_a_pause_alert(record_106, scorer, tmp_path):
    """Four seconds of flat baseline plus 3 counts (15 uV) of noise, no beats."""
    counts = record_106.counts.copy()
    a = START + 60 * 360
    baseline = np.median(record_106.counts[a - 4 * 360 : a])
    noise = np.random.default_rng(0).normal(0.0, 3.0, 4 * 360)
    counts[a : a + 4 * 360] = np.round(baseline + noise)
    record = dataclasses.replace(record_106, counts=counts)
    source = RecordSource(record, START, START + 2 * 60 * 360)
    _, path, _ = _run(source, scorer, tmp_path)
    beats = [r["sample"] for r in read_table(path, "beats")]
    last_before = max(s for s in beats if s < a - START)
    pauses = [x for x in read_table(path, "alerts") if x["kind"] == "pause"]
    assert [p["sample"] for p in pauses] == [last_before + 3 * 360]


def test_recording_holds_the_stream_and_the_runtime_labels(
    record_106, scorer, tmp_path
):
    def factory(**front_end):
        return StreamRecorder(tmp_path / "rec", "session", **front_end)

    stop = START + 2 * 60 * 360
    source = RecordSource(record_106, START, stop, gaps=[(30.0, 1.0)])
    _, path, _ = _run(source, scorer, tmp_path, recorder_factory=factory)
    back = read_record(tmp_path / "rec" / "session_000")
    assert len(back.counts) == stop - START
    lost = slice(30 * 360, 31 * 360)
    assert np.isnan(back.counts[lost]).all()
    kept = np.r_[0 : 30 * 360, 31 * 360 : stop - START]
    np.testing.assert_array_equal(
        back.counts[kept], record_106.counts[START:stop][kept]
    )
    rows = read_table(path, "beats")
    assert back.annotations.samples.tolist() == [r["sample"] for r in rows]
    assert back.annotations.symbols == ["Q" if r["anomalous"] else "N" for r in rows]


def test_full_event_log_keeps_the_alerts_sounding(record_106, scorer, tmp_path, caplog):
    caplog.set_level(logging.ERROR)
    path = tmp_path / "small.sqlite"
    log = EventLog(path, max_size_bytes=40_000, retry_s=3600.0)
    alerts = []
    runtime = Runtime(
        RecordSource(record_106, START),
        scorer,
        scorer.bundle.chain_config(),
        event_log=log,
        on_alert=alerts.append,
    )
    summary = runtime.run()
    assert log.failed and log.pending_rows > 0
    written = len(read_table(path, "beats"))
    assert 0 < written < summary.beats
    assert summary.alerts == len(alerts) > 0  # the policy kept working
    errors = [r for r in caplog.records if "event log" in r.getMessage()]
    assert len(errors) == 1 and "full" in errors[0].getMessage()
    log.close()


def test_alert_reaches_the_buzzer_pin(record_106, scorer, tmp_path, scaled):
    mock = pytest.importorskip("gpiozero.pins.mock")
    factory = mock.MockFactory()
    with AlertBuzzer(pin=18, pin_factory=factory) as buzzer:
        alerts = []
        settings = AlertSettings(cooldown_s=3600.0)
        source = RecordSource(record_106, START)
        _run(
            source,
            scorer,
            tmp_path,
            buzzer=buzzer,
            on_alert=alerts.append,
            alert_settings=settings,
        )
        assert alerts, "record 106 has runs and bursts of PVCs"
        last = alerts[-1].kind
        on_s, off_s, n = PATTERNS[last]
        wait_s = buzzer.duration_s(last) + 0.3
        start = time.monotonic()
        threading.Event().wait(wait_s)
        # Under emulation the pattern may still be playing: wait for its end.
        while (
            time.monotonic() - start < scaled(wait_s)
            and [s.state for s in factory.pin(18).states][-2 * n :] != [True, False] * n
        ):
            threading.Event().wait(0.01)
        levels = [s.state for s in factory.pin(18).states]
    # the last alert's pattern ends the pin's history: n beeps, then silence
    assert levels[-2 * n :] == [True, False] * n
    assert {a.kind for a in alerts} <= set(AlertKind)


def test_recording_that_cannot_be_written_leaves_monitoring_going(
    record_106, scorer, tmp_path
):
    (tmp_path / "file").write_text("")

    def factory(**front_end):
        return StreamRecorder(
            tmp_path / "file" / "rec", "session", segment_minutes=0.5, **front_end
        )

    stop = START + 2 * 60 * 360
    summary, path, _ = _run(
        RecordSource(record_106, START, stop),
        scorer,
        tmp_path,
        recorder_factory=factory,
    )
    assert summary.end_reason == "end of stream"
    assert summary.beats == len(read_table(path, "beats")) > 100
    assert len(summary.problems) == 1
    assert summary.problems[0].startswith("recording ")
    assert "could not be written (Not a directory)" in summary.problems[0]


def test_an_alert_is_logged_as_a_warning_only_when_nothing_else_shows_it(
    record_106, scorer, caplog
):
    caplog.set_level(logging.INFO, logger="beatguard.device.runtime")
    for on_alert, level in ((None, logging.WARNING), ([].append, logging.INFO)):
        caplog.clear()
        summary = Runtime(
            RecordSource(record_106, START),  # runs and bursts of PVCs
            scorer,
            scorer.bundle.chain_config(),
            on_alert=on_alert,
        ).run()
        said = [r for r in caplog.records if r.getMessage().startswith("ALERT at")]
        assert summary.alerts > 0 and len(said) == summary.alerts
        assert {r.levelno for r in said} == {level}
