"""End to end on a pseudo-terminal: ``beatguard simulate`` replays the last 25
minutes of MIT-BIH record 106 into ``beatguard run``, with a model trained on
its first 5 minutes; the SQLite log is checked against an offline scoring of
the same record with the same model, and against the reference annotations.

Each test starts real processes (the simulator and the runtime) and talks to
them only through the pty, signals and the SQLite file.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from beatguard.device.evaluation import match_beats
from beatguard.device.eventlog import read_table
from beatguard.device.records import read_record
from beatguard.device.scorer import Scorer
from beatguard.device.types import Quality
from beatguard.train.evaluate import score_record

FS_HZ = 360.0
START_MINUTE = 5
START = START_MINUTE * 60 * 360
CLI = [sys.executable, "-m", "beatguard.cli"]
_STARTED: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _no_process_outlives_its_test():
    """Kill any simulator or runtime a failing test left running."""
    yield
    while _STARTED:
        proc = _STARTED.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def _simulate(tmp_path: Path, *args: str) -> tuple[subprocess.Popen, str]:
    """Start the board simulator; return it and its stable port path."""
    link = tmp_path / "board"
    sim = subprocess.Popen(
        [*CLI, "simulate", *args, "--link", str(link)],
        stdout=subprocess.PIPE,
        stderr=open(tmp_path / "simulate.log", "w"),
        text=True,
    )
    _STARTED.append(sim)
    first = sim.stdout.readline().strip()
    assert first == str(link), (tmp_path / "simulate.log").read_text()
    return sim, first


def _run(tmp_path: Path, port: str, bundle: Path, events: Path, *args: str):
    run = subprocess.Popen(
        [*CLI, "run", "--port", port, "--model", str(bundle), "--events", str(events)]
        + ["--no-buzzer", "--no-status", *args],
        stdout=subprocess.PIPE,
        stderr=open(tmp_path / "run.log", "a"),
        text=True,
    )
    _STARTED.append(run)
    return run


def _wait(proc: subprocess.Popen, timeout_s: float, what: str) -> int:
    try:
        return proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"{what} did not finish within {timeout_s} s")


def _beats(events: Path, session: int = 1) -> list[sqlite3.Row]:
    return read_table(events, "beats", session)


def _offline(record, bundle: Path):
    """Beats and labels of the personal evaluation for the same span and model."""
    scored = score_record(record, bundle, START)
    return scored.samples.tolist(), scored.anomalous.astype(int).tolist()


def _pvc_se_ppv(record, rows, lost_spans=()) -> tuple[float, float]:
    """PVC sensitivity and positive predictivity of the logged labels.

    Stretches the runtime could not see are left out, for reference beats
    and detections alike: each span lost on the link (``lost_spans``, stream
    samples), widened by a beat window before it and by the detector's 2 s
    of relearning after it.
    """
    ref = record.annotations.beats()
    det = np.array([r["sample"] + START for r in rows])
    flagged = np.array([r["anomalous"] for r in rows], bool)
    keep_ref = ref.samples >= START
    keep_det = np.ones(len(det), bool)
    for at, lost in lost_spans:
        a, b = START + at - round(0.7 * FS_HZ), START + at + lost + round(2 * FS_HZ)
        keep_ref &= (ref.samples < a) | (ref.samples >= b)
        keep_det &= (det < a) | (det >= b)
    is_v = np.array([s == "V" for s in ref.symbols])[keep_ref]
    det, flagged = det[keep_det], flagged[keep_det]
    match = match_beats(ref.samples[keep_ref], det, FS_HZ, skip_s=START_MINUTE * 60)
    tp = int(np.sum(is_v[match.ref_index] & flagged[match.det_index]))
    return tp / int(np.sum(is_v)), tp / int(np.sum(flagged))


@pytest.fixture(scope="module")
def record_106(mitdb):
    return read_record(mitdb / "106")


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory, mitdb, bundle_106):
    """The clean end-to-end run at 60x; its event log path."""
    tmp_path = tmp_path_factory.mktemp("clean")
    events = tmp_path / "events.sqlite"
    sim, port = _simulate(
        tmp_path, str(mitdb / "106"), "--start-minute", "5", "--speed", "60"
    )
    run = _run(tmp_path, port, bundle_106, events, "--no-reconnect")
    assert _wait(run, 120, "beatguard run") == 0, (tmp_path / "run.log").read_text()
    assert _wait(sim, 30, "beatguard simulate") == 0
    return events


def test_logged_beats_and_labels_are_exactly_the_personal_evaluation_ones(
    clean_run, record_106, bundle_106
):
    rows = _beats(clean_run)
    samples, labels = _offline(record_106, bundle_106)
    assert len(rows) == len(samples)
    assert [r["sample"] + START for r in rows] == samples
    assert [r["anomalous"] for r in rows] == labels
    session = read_table(clean_run, "sessions")[0]
    assert session["end_reason"] == "end of stream" and session["fs_hz"] == FS_HZ


def test_faults_run_reconnects_logs_every_gap_and_keeps_pvc_figures(
    tmp_path, mitdb, record_106, bundle_106, clean_run
):
    events = tmp_path / "events.sqlite"
    sim, port = _simulate(
        tmp_path,
        str(mitdb / "106"),
        *("--start-minute", "5", "--speed", "60", "--seed", "3"),
        *("--corrupt-rate", "0.001", "--disconnects", "5"),
    )
    run = _run(tmp_path, port, bundle_106, events)
    _wait_while_running(sim, run, 120, tmp_path)
    _settle(events)
    run.send_signal(signal.SIGTERM)
    assert _wait(run, 30, "beatguard run") == 0, (tmp_path / "run.log").read_text()

    link = read_table(events, "link_events")
    kinds = [e["kind"] for e in link]
    assert kinds.count("disconnected") >= 5
    reconnects = [e for e in link if e["kind"] == "reconnected"]
    assert len(reconnects) == 5
    import json

    outages = [json.loads(e["details_json"])["outage_s"] for e in reconnects]
    assert max(outages) <= 2.0, outages
    assert sum(e["corrupt_frames"] for e in link) > 0
    gaps = [(e["sample"], e["lost_samples"]) for e in link if e["kind"] == "gap"]
    assert len(gaps) >= 5
    rows = _beats(events)
    config = Scorer(bundle_106).bundle.chain_config()
    before = round(config.window_before_s * FS_HZ)
    after = round(config.window_after_s * FS_HZ)
    for at, lost in gaps:
        straddling = [
            r["sample"]
            for r in rows
            if r["sample"] - before < at + lost and r["sample"] + after >= at
        ]
        assert straddling == [], (at, lost)
    # the clean run's figures over the same stretches, so that only the
    # faults' effect on the beats both runs saw is compared
    se, ppv = _pvc_se_ppv(record_106, rows, gaps)
    clean_se, clean_ppv = _pvc_se_ppv(record_106, _beats(clean_run), gaps)
    print(f"PVC Se {se:.4f} +P {ppv:.4f}; clean Se {clean_se:.4f} +P {clean_ppv:.4f}")
    assert abs(se - clean_se) <= 0.02 and abs(ppv - clean_ppv) <= 0.02, (
        se,
        clean_se,
        ppv,
        clean_ppv,
    )
    assert read_table(events, "sessions")[0]["end_reason"] == "stopped"


def test_thirty_seconds_of_leads_off_gives_one_event_and_no_alarm(
    tmp_path, mitdb, bundle_106
):
    events = tmp_path / "events.sqlite"
    sim, port = _simulate(
        tmp_path,
        str(mitdb / "106"),
        *("--start-minute", "5", "--minutes", "4", "--speed", "60"),
        *("--leads-off", "100:30"),
    )
    # alert on any single anomalous beat, so scoring during leads-off would show
    run = _run(
        tmp_path,
        port,
        bundle_106,
        events,
        *("--no-reconnect", "--run-beats", "1", "--record", str(tmp_path / "rec")),
    )
    assert _wait(run, 120, "beatguard run") == 0, (tmp_path / "run.log").read_text()
    sim.wait(30)
    a, b = round(100 * FS_HZ), round(130 * FS_HZ)
    # --record kept the stream, its leads-off flags and the runtime's labels
    recorded = read_record(tmp_path / "rec" / "beatguard-0001_000")
    assert len(recorded.counts) == 4 * 60 * 360
    assert np.flatnonzero(recorded.leads_off)[[0, -1]].tolist() == [a, b - 1]
    rows = _beats(events)
    assert recorded.annotations.samples.tolist() == [r["sample"] for r in rows]
    assert recorded.annotations.symbols == [
        "Q" if r["anomalous"] else "N" for r in rows
    ]
    quality = read_table(events, "quality_events")
    off = [q for q in quality if q["quality"] & Quality.LEADS_OFF]
    went_off = [
        q["sample"]
        for i, q in enumerate(quality)
        if q["quality"] & Quality.LEADS_OFF
        and (i == 0 or not quality[i - 1]["quality"] & Quality.LEADS_OFF)
    ]
    assert went_off == [a] and off
    alerts = read_table(events, "alerts")
    assert alerts, "with --run-beats 1 the record alarms outside leads-off"
    assert [x["sample"] for x in alerts if a <= x["sample"] < b] == []
    beats = [r["sample"] for r in _beats(events)]
    assert [s for s in beats if a <= s < b] == []
    assert min(s for s in beats if s >= b) - b <= 2 * FS_HZ


def test_kill_9_keeps_every_committed_beat_and_next_start_appends(
    tmp_path, mitdb, bundle_106
):
    events = tmp_path / "events.sqlite"
    sim, port = _simulate(
        tmp_path, str(mitdb / "106"), "--start-minute", "5", "--speed", "20"
    )
    run = _run(tmp_path, port, bundle_106, events)
    deadline = time.monotonic() + 120
    seen = 0
    while seen < 300 and time.monotonic() < deadline:
        time.sleep(0.2)
        if events.exists():
            seen = _count(events)
    assert seen >= 300, (tmp_path / "run.log").read_text()
    seen = _count(events)  # every row here was committed before the kill
    os.kill(run.pid, signal.SIGKILL)
    run.wait(10)
    sim.kill()
    sim.wait(10)

    db = sqlite3.connect(events)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    kept = db.execute("SELECT count(*) FROM beats WHERE session=1").fetchone()[0]
    ended = db.execute("SELECT ended_wall_s FROM sessions WHERE id=1").fetchone()[0]
    db.close()
    assert kept >= seen and ended is None

    sim2, port2 = _simulate(
        tmp_path,
        str(mitdb / "106"),
        *("--start-minute", "5", "--minutes", "1", "--speed", "60"),
    )
    run2 = _run(tmp_path, port2, bundle_106, events, "--no-reconnect")
    assert _wait(run2, 120, "second beatguard run") == 0
    sim2.wait(30)
    sessions = read_table(events, "sessions")
    assert [s["id"] for s in sessions] == [1, 2]
    assert len(_beats(events, 1)) == kept
    assert len(_beats(events, 2)) > 50


def test_sigint_ends_a_run_cleanly(tmp_path, mitdb, bundle_106):
    events = tmp_path / "events.sqlite"
    sim, port = _simulate(
        tmp_path, str(mitdb / "106"), "--start-minute", "5", "--speed", "10"
    )
    run = _run(tmp_path, port, bundle_106, events)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (events.exists() and _count(events)):
        time.sleep(0.2)
    run.send_signal(signal.SIGINT)
    assert _wait(run, 30, "beatguard run") == 0
    sim.kill()
    sim.wait(10)
    session = read_table(events, "sessions")[0]
    assert session["end_reason"] == "stopped" and session["ended_wall_s"] is not None
    assert "beats" in run.stdout.read()


def _wait_while_running(sim, run, timeout_s: float, tmp_path: Path) -> None:
    """Wait for the simulator to finish, failing at once if the runtime dies."""
    deadline = time.monotonic() + timeout_s
    while sim.poll() is None:
        if run.poll() is not None:
            sim.kill()
            pytest.fail(
                "beatguard run ended early:\n" + (tmp_path / "run.log").read_text()
            )
        if time.monotonic() > deadline:
            sim.kill()
            run.kill()
            pytest.fail(f"the simulator did not finish within {timeout_s} s")
        time.sleep(0.2)


def _count(events: Path) -> int:
    try:
        db = sqlite3.connect(f"file:{events}?mode=ro", uri=True, timeout=5)
        try:
            return db.execute("SELECT count(*) FROM beats").fetchone()[0]
        finally:
            db.close()
    except sqlite3.OperationalError:
        return 0


def _settle(events: Path, quiet_s: float = 1.5, timeout_s: float = 30.0) -> None:
    """Wait until the log stops growing (the runtime drained the link)."""
    deadline = time.monotonic() + timeout_s
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        n = _count(events)
        if n != last:
            last, since = n, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return
        time.sleep(0.2)


def test_text_mode_gives_the_binary_beats_and_a_minute_of_bangs_is_leads_off(
    tmp_path, mitdb, bundle_106, clean_run
):
    events = tmp_path / "events.sqlite"
    sim, port = _simulate(
        tmp_path,
        str(mitdb / "106"),
        *("--text", "--start-minute", "5", "--minutes", "5", "--speed", "60"),
        *("--leads-off", "200:60"),
    )
    run = _run(
        tmp_path,
        port,
        bundle_106,
        events,
        *("--text-fs-hz", "360", "--text-gain-counts-per-mv", "200"),
        *("--text-baseline-counts", "1024", "--text-adc-bits", "12"),
        *("--no-reconnect", "--run-beats", "1", "--cooldown-s", "0"),
    )
    assert _wait(run, 120, "beatguard run") == 0, (tmp_path / "run.log").read_text()
    sim.wait(30)
    a, b = round(200 * FS_HZ), round(260 * FS_HZ)
    text_rows = _beats(events)
    binary_rows = _beats(clean_run)
    before = a - round(FS_HZ)  # beats completed before the leads came off

    def _early(rows):
        return [(r["sample"], r["anomalous"]) for r in rows if r["sample"] < before]

    assert _early(text_rows) == _early(binary_rows)
    quality = read_table(events, "quality_events")
    went_off = [
        q["sample"]
        for i, q in enumerate(quality)
        if q["quality"] & Quality.LEADS_OFF
        and (i == 0 or not quality[i - 1]["quality"] & Quality.LEADS_OFF)
    ]
    assert went_off == [a]
    alerts = read_table(events, "alerts")
    assert [x["sample"] for x in alerts if a <= x["sample"] < b] == []
    assert [r["sample"] for r in text_rows if a <= r["sample"] < b] == []
    assert "Traceback" not in (tmp_path / "run.log").read_text()
