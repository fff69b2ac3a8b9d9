"""The SQLite event log keeps every committed row, per session, and survives
a full disk without losing what it was given."""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import subprocess

import pytest

from beatguard.device.errors import EventLogError
from beatguard.device.eventlog import (
    SCHEMA,
    TABLES,
    EventLog,
    read_beats,
    read_table,
    schema_markdown,
)


def _clock():
    ticks = iter(range(1, 1_000_000))

    def clock():
        t = next(ticks)
        return 1_700_000_000.0 + t, float(t)

    return clock


def _add_beats(log: EventLog, samples, anomalous_every: int = 3) -> None:
    for i, sample in enumerate(samples):
        log.add_beat(
            sample=sample,
            score=0.01 * i,
            anomalous=i % anomalous_every == 0,
            quality=0,
            rr_before_s=float("nan") if i == 0 else 0.8,
            rr_avg_s=0.8,
            emitted_at_sample=sample + 90,
        )


def test_beats_round_trip_with_session_sample_score_and_label(tmp_path):
    path = tmp_path / "events.sqlite"
    with EventLog(
        path, {"port": "/dev/ttyTEST", "fs_hz": 360.0}, clock=_clock()
    ) as log:
        _add_beats(log, [100, 400, 700])
        assert log.pending_rows == 3
        assert log.commit()
        assert log.pending_rows == 0
    rows = read_beats(path)
    assert [(r["session"], r["sample"], r["anomalous"]) for r in rows] == [
        (1, 100, 1),
        (1, 400, 0),
        (1, 700, 0),
    ]
    assert [r["score"] for r in rows] == pytest.approx([0.0, 0.01, 0.02])
    assert rows[0]["rr_before_s"] is None  # NaN is stored as NULL
    assert rows[1]["emitted_at_sample"] == 490
    assert rows[0]["wall_s"] > 1_700_000_000 and rows[0]["mono_s"] > 0
    session = read_table(path, "sessions")[0]
    assert session["port"] == "/dev/ttyTEST"
    assert session["end_reason"] == "stopped"


def test_every_table_holds_wall_and_monotonic_time(tmp_path):
    path = tmp_path / "events.sqlite"
    with EventLog(path, clock=_clock()) as log:
        _add_beats(log, [10])
        log.add_alert("run", 10, "run of 3 abnormal beats", {"run_beats": 3})
        log.add_link_event("gap", 50, "lost 7 samples", lost_samples=7)
        log.add_quality_event(60, 1, "leads off")
        log.commit()
    for table in TABLES:
        rows = read_table(path, table)
        assert len(rows) == 1, table
        keys = rows[0].keys()
        assert any(k.endswith("wall_s") for k in keys), table
        assert any(k.endswith("mono_s") for k in keys), table
    assert read_table(path, "link_events")[0]["lost_samples"] == 7


def test_file_is_in_wal_mode_with_full_sync(tmp_path):
    path = tmp_path / "events.sqlite"
    with EventLog(path) as log:
        assert log._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


def test_closed_log_read_during_and_after_the_session_leaves_no_wal_files(tmp_path):
    path = tmp_path / "events.sqlite"
    with EventLog(path) as log:
        _add_beats(log, [1, 2])
        log.commit()
        assert len(read_beats(path)) == 2
    assert len(read_beats(path)) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.sqlite"]


def test_next_open_appends_a_new_session(tmp_path):
    path = tmp_path / "events.sqlite"
    for samples in ([1, 2], [3]):
        with EventLog(path) as log:
            _add_beats(log, samples)
            log.commit()
    assert [(r["session"], r["sample"]) for r in read_beats(path)] == [
        (1, 1),
        (1, 2),
        (2, 3),
    ]
    assert [r["sample"] for r in read_beats(path, session=2)] == [3]


def test_rows_not_yet_committed_are_written_by_close(tmp_path):
    path = tmp_path / "events.sqlite"
    log = EventLog(path)
    _add_beats(log, [5, 6])
    log.close()
    log.close()  # twice is fine
    assert len(read_beats(path)) == 2


def test_full_disk_keeps_rows_in_memory_logs_one_line_and_recovers(tmp_path, caplog):
    path = tmp_path / "events.sqlite"
    log = EventLog(path, retry_s=0.0, max_size_bytes=64 * 1024)
    caplog.set_level(logging.ERROR, logger="beatguard.device.eventlog")
    written = 0
    for batch in range(200):
        _add_beats(log, range(batch * 50, batch * 50 + 50))
        if not log.commit():
            break
        written += 50
    assert log.failed, "the size cap was never reached"
    for batch in range(3):  # more rows and more failing commits
        _add_beats(log, range(10**6 + batch, 10**6 + batch + 1))
        assert not log.commit()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert str(path) in errors[0].getMessage()
    assert "full" in errors[0].getMessage()
    assert len(read_beats(path)) == written  # what was committed is intact
    # room again: the queued rows go in, in order
    log._db.execute("PRAGMA max_page_count=1000000")
    assert log.commit(force=True)
    samples = [r["sample"] for r in read_beats(path)]
    assert len(samples) == written + 50 + 3
    assert samples[-3:] == [10**6, 10**6 + 1, 10**6 + 2]
    log.close()


def test_rows_still_unwritten_at_close_are_counted_and_said_in_one_line(
    tmp_path, caplog
):
    path = tmp_path / "events.sqlite"
    log = EventLog(path, retry_s=0.0, max_size_bytes=64 * 1024)
    caplog.set_level(logging.ERROR, logger="beatguard.device.eventlog")
    for batch in range(200):
        _add_beats(log, range(batch * 50, batch * 50 + 50))
        if not log.commit():
            break
    assert log.failed and log.loss is None  # not lost yet: retried until close
    pending = log.pending_rows
    log.close()
    assert log.lost_rows == pending > 0
    assert log.loss == (
        f"event log {path}: {pending} rows could not be written "
        "(database or disk is full)"
    )
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 1


def test_missing_folder_is_created_and_unwritable_place_is_one_clear_error(tmp_path):
    path = tmp_path / "a" / "b" / "events.sqlite"
    EventLog(path).close()
    assert path.exists()
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    with pytest.raises(EventLogError, match=r"event log .*file/events.sqlite"):
        EventLog(not_a_dir / "events.sqlite")


def test_a_file_that_is_not_sqlite_is_refused_naming_it(tmp_path):
    path = tmp_path / "notes.sqlite"
    path.write_text("these are not the droids\n" * 100)
    with pytest.raises(EventLogError, match="notes.sqlite.*not a database"):
        EventLog(path)


@pytest.fixture
def read_only_file(tmp_path):
    """An event log file that this process cannot write.

    File modes do not stop root, so as root the file is made immutable with
    ``chattr +i`` (and skipped where the file system does not allow it).
    """
    path = tmp_path / "events.sqlite"
    EventLog(path).close()
    if os.geteuid() != 0:
        os.chmod(path, 0o444)
        yield path
        return
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", str(path)]).returncode:
        pytest.skip("running as root and cannot make a file immutable (chattr +i)")
    try:
        yield path
    finally:
        subprocess.run([chattr, "-i", str(path)])


def test_read_only_file_gives_one_clear_line(read_only_file):
    with pytest.raises(EventLogError) as info:
        EventLog(read_only_file)
    message = str(info.value)
    assert "\n" not in message
    assert str(read_only_file) in message and "readonly" in message


def test_schema_table_documents_every_column_of_every_table():
    md = schema_markdown()
    for table, column, _, meaning in SCHEMA:
        assert f"`{column}`" in md and meaning in md, (table, column)
    assert {t for t, *_ in SCHEMA} == set(TABLES)


def test_eventlog_md_repeats_the_schema_table():
    from pathlib import Path

    md = (Path(__file__).resolve().parents[2] / "device" / "EVENTLOG.md").read_text()
    assert schema_markdown() in md


@pytest.mark.parametrize("under", ["file", "file/logs"])
def test_event_log_under_a_regular_file_says_it_is_not_a_directory(tmp_path, under):
    (tmp_path / "file").write_text("")
    path = tmp_path / under / "events.sqlite"
    with pytest.raises(EventLogError) as caught:
        EventLog(path)
    assert str(caught.value) == f"event log {path}: cannot create (Not a directory)"
