"""``beatguard run`` against the port faults a wearable meets: a port that is
not there (yet), a port another process holds, a board that reboots. Real
processes on real pseudo-terminals; checked through their output and log."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from beatguard.device.bundle import load_bundle
from beatguard.device.eventlog import read_table

CLI = [sys.executable, "-m", "beatguard.cli"]
START = 5 * 60 * 360


@pytest.fixture
def procs():
    started: list[subprocess.Popen] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def _simulate(procs, link: Path, record: Path, *args: str) -> subprocess.Popen:
    sim = subprocess.Popen(
        [*CLI, "simulate", str(record), "--link", str(link), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    procs.append(sim)
    assert sim.stdout.readline().strip() == str(link)
    return sim


def _run(procs, port: Path, bundle: Path, events: Path, log: Path, *args: str, **popen):
    run = subprocess.Popen(
        [*CLI, "run", "--port", str(port), "--model", str(bundle)]
        + ["--events", str(events), "--no-buzzer", "--no-status", *args],
        stdout=subprocess.PIPE,
        stderr=open(log, "w"),
        text=True,
        **popen,
    )
    procs.append(run)
    return run


def _beat_count(events: Path) -> int:
    if not events.exists():
        return 0
    try:
        return len(read_table(events, "beats"))
    except Exception:  # the file may be mid-creation
        return 0


def _until(condition, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def test_missing_port_without_reconnect_exits_with_one_clear_line(
    tmp_path, bundle_106, scaled
):
    port = tmp_path / "ttyNOPE"
    result = subprocess.run(
        [*CLI, "run", "--port", str(port), "--model", str(bundle_106)]
        + ["--events", str(tmp_path / "e.sqlite"), "--no-buzzer", "--no-reconnect"],
        capture_output=True,
        text=True,
        timeout=scaled(120),
    )
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("beatguard run:") and str(port) in last


def test_runtime_waits_for_a_port_that_appears_later(
    tmp_path, mitdb, bundle_106, procs, scaled
):
    link, events, log = tmp_path / "board", tmp_path / "e.sqlite", tmp_path / "run.log"
    run = _run(procs, link, bundle_106, events, log)
    assert _until(lambda: "waiting" in log.read_text(), scaled(60)), log.read_text()
    time.sleep(1.0)
    assert run.poll() is None  # still trying
    waiting_lines = [ln for ln in log.read_text().splitlines() if "waiting" in ln]
    assert len(waiting_lines) == 1  # said once, not once per attempt
    _simulate(procs, link, mitdb / "106", "--start-minute", "5", "--speed", "20")
    assert _until(lambda: _beat_count(events) > 20, scaled(60)), log.read_text()
    run.send_signal(signal.SIGTERM)
    assert run.wait(scaled(30)) == 0


def test_second_runtime_on_a_held_port_is_refused_and_the_first_goes_on(
    tmp_path, mitdb, bundle_106, procs, scaled
):
    link = tmp_path / "board"
    _simulate(procs, link, mitdb / "106", "--start-minute", "5", "--speed", "10")
    first = _run(procs, link, bundle_106, tmp_path / "a.sqlite", tmp_path / "a.log")
    assert _until(lambda: _beat_count(tmp_path / "a.sqlite") > 5, scaled(60))
    second = subprocess.run(
        [*CLI, "run", "--port", str(link), "--model", str(bundle_106)]
        + ["--events", str(tmp_path / "b.sqlite"), "--no-buzzer"],
        capture_output=True,
        text=True,
        timeout=scaled(120),
    )
    assert second.returncode == 1
    last = second.stderr.strip().splitlines()[-1]
    assert last.startswith("beatguard run:") and "busy" in last.lower(), last
    before = _beat_count(tmp_path / "a.sqlite")
    assert _until(lambda: _beat_count(tmp_path / "a.sqlite") > before + 5, scaled(30))
    assert first.poll() is None
    first.send_signal(signal.SIGINT)
    assert first.wait(scaled(30)) == 0


def test_board_resets_are_logged_and_never_scored_across(
    tmp_path, mitdb, bundle_106, procs, scaled
):
    link, events, log = tmp_path / "board", tmp_path / "e.sqlite", tmp_path / "run.log"
    sim = _simulate(
        procs,
        link,
        mitdb / "106",
        *("--start-minute", "5", "--minutes", "6", "--speed", "60"),
        *("--board-resets", "2"),
    )
    run = _run(procs, link, bundle_106, events, log, "--no-reconnect")
    sim.wait(scaled(120))
    assert run.wait(scaled(60)) == 0, log.read_text()
    link_events = read_table(events, "link_events")
    assert [e["kind"] for e in link_events].count("board_reset") == 2
    gaps = [(e["sample"], e["lost_samples"]) for e in link_events if e["kind"] == "gap"]
    assert len(gaps) >= 2
    beats = [r["sample"] for r in read_table(events, "beats")]
    config = load_bundle(bundle_106).chain_config()
    before = round(config.window_before_s * 360)
    after = round(config.window_after_s * 360)
    for at, lost in gaps:
        assert [s for s in beats if s - before < at + lost and s + after >= at] == []
    assert len(beats) > 300
    assert "Traceback" not in log.read_text()


def test_read_only_event_log_is_said_at_start_and_end_and_the_runtime_goes_on(
    tmp_path, mitdb, bundle_106, procs, scaled
):
    import os
    import shutil

    from beatguard.device.eventlog import EventLog

    events = tmp_path / "events.sqlite"
    EventLog(events).close()
    chattr = shutil.which("chattr")
    if os.geteuid() != 0:
        os.chmod(events, 0o444)
    elif chattr is None or subprocess.run([chattr, "+i", str(events)]).returncode:
        pytest.skip("running as root and cannot make a file immutable (chattr +i)")
    try:
        link, log = tmp_path / "board", tmp_path / "run.log"
        _simulate(
            procs,
            link,
            mitdb / "106",
            *("--start-minute", "5", "--minutes", "1", "--speed", "20"),
        )
        run = _run(procs, link, bundle_106, events, log, "--no-reconnect")
        assert run.wait(scaled(120)) == 1, log.read_text()
    finally:
        if os.geteuid() == 0 and chattr:
            subprocess.run([chattr, "-i", str(events)])
    about_log = [ln for ln in log.read_text().splitlines() if str(events) in ln]
    assert len(about_log) == 2 and "WITHOUT an event log" in about_log[0]
    assert about_log[1] == log.read_text().strip().splitlines()[-1]
    assert about_log[1].startswith(f"beatguard run: event log {events}: ")
    assert about_log[1].endswith("; the session ran without an event log")
    summary = run.stdout.read()
    beats = int(summary.split("beatguard run: ")[1].split(" beats")[0])
    assert beats > 50


def test_lost_port_without_reconnect_exits_1_in_one_line_and_a_finished_replay_0(
    tmp_path, mitdb, bundle_106, procs, scaled
):
    link = tmp_path / "board"
    finished, lost = tmp_path / "finished.sqlite", tmp_path / "lost.sqlite"
    replay = ("--start-minute", "5", "--minutes", "1", "--speed", "60")
    sim = _simulate(procs, link, mitdb / "106", *replay)
    run = _run(procs, link, bundle_106, finished, tmp_path / "a.log", "--no-reconnect")
    assert run.wait(scaled(120)) == 0, (tmp_path / "a.log").read_text()
    assert sim.wait(scaled(30)) == 0
    assert "port lost" not in (tmp_path / "a.log").read_text()
    assert read_table(finished, "sessions")[0]["end_reason"] == "end of stream"

    sim = _simulate(procs, link, mitdb / "106", "--start-minute", "5", "--speed", "5")
    log = tmp_path / "b.log"
    run = _run(procs, link, bundle_106, lost, log, "--no-reconnect")
    assert _until(lambda: _beat_count(lost) > 5, scaled(60)), log.read_text()
    sim.kill()  # the board's port vanishes mid-stream
    assert run.wait(scaled(60)) == 1, log.read_text()
    lines = [ln for ln in log.read_text().splitlines() if not ln.startswith("INFO")]
    about_loss = [ln for ln in lines if "port lost" in ln]
    assert len(about_loss) == 1 and about_loss[0].startswith("beatguard run: ")
    assert (
        str(link) in about_loss[0] and "before the end of the stream" in about_loss[0]
    )
    assert "(port lost)" in run.stdout.read()
    assert read_table(lost, "sessions")[0]["end_reason"] == "port lost"
    assert _beat_count(lost) > 5  # what was logged stays logged


def _file_size_limit(limit_bytes: int):
    """For ``preexec_fn``: no file of the process may grow past ``limit_bytes``.

    The kernel then refuses the write (EFBIG) just as a full disk does
    (ENOSPC); SIGXFSZ is ignored so the write fails instead of killing.
    """
    import resource

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    return apply


def test_full_disk_keeps_the_runtime_going_and_ends_it_with_status_1_and_the_count(
    tmp_path, mitdb, bundle_106, procs, scaled
):
    link, events, log = tmp_path / "board", tmp_path / "e.sqlite", tmp_path / "run.log"
    replay = ("--start-minute", "5", "--minutes", "3", "--speed", "30")
    sim = _simulate(procs, link, mitdb / "106", *replay)
    run = _run(
        procs,
        link,
        bundle_106,
        events,
        log,
        "--no-reconnect",
        preexec_fn=_file_size_limit(256_000),
    )
    assert run.wait(scaled(120)) == 1, log.read_text()
    assert sim.wait(scaled(30)) == 0
    summary = run.stdout.read()
    beats = int(summary.split("beatguard run: ")[1].split(" beats")[0])
    assert beats > 150 and "(end of stream)" in summary  # it kept going
    last = log.read_text().strip().splitlines()[-1]
    assert last.startswith(f"beatguard run: event log {events}: "), last
    assert last.endswith("rows could not be written (disk I/O error)"), last
    lost = int(last.split(": ")[-1].split(" rows")[0])
    written = len(read_table(events, "beats"))
    assert 0 < written < beats and lost >= beats - written
