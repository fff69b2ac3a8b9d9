"""``beatguard simulate`` and BoardSimulator: the pty, the record, the faults."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest

from beatguard.device.errors import RecordFormatError
from beatguard.device.types import LinkEventKind
from beatguard.firmware_bridge.link import SerialLink
from beatguard.firmware_bridge.simulator import BoardSimulator, Faults

START = 29 * 60 * 360


def _simulate(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "beatguard.cli", "simulate", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _read_cli_replay(proc: subprocess.Popen, drain):
    """Read what a ``beatguard simulate`` process sends until it has ended."""
    path = proc.stdout.readline().strip()
    assert path.startswith("/dev/pts/")

    class Process:  # what ``drain`` needs to know: has the board finished?
        finished = threading.Event()

    watcher = threading.Thread(
        target=lambda: (proc.wait(), Process.finished.set()), daemon=True
    )
    watcher.start()
    with SerialLink(path) as link:
        return drain(link, Process)


def test_cli_prints_the_pty_first_and_exits_when_the_record_ends(
    mitdb, record_106, drain
):
    proc = _simulate(str(mitdb / "106"), "--start-minute", "29", "--speed", "40")
    got = _read_cli_replay(proc, drain)
    assert proc.returncode == 0, proc.stderr.read()
    expected = record_106[START:]
    assert np.array_equal(got.counts(), expected)
    assert f"sent {len(expected)} samples" in proc.stderr.read()


def test_cli_replays_a_one_column_csv_capture_at_the_rate_given(
    record_106, drain, tmp_path, scaled
):
    capture = tmp_path / "capture.csv"
    expected = record_106[START:]
    capture.write_text("\n".join(str(v) for v in expected) + "\n")
    refused = _simulate(str(capture))
    assert refused.wait(timeout=scaled(30)) == 1
    assert refused.stderr.read().strip().splitlines() == [
        f"beatguard simulate: {capture}: no time column; give the sample rate (--fs-hz)"
    ]
    proc = _simulate(
        *(str(capture), "--fs-hz", "360", "--gain", "200", "--baseline", "1024"),
        *("--speed", "40"),
    )
    got = _read_cli_replay(proc, drain)
    assert proc.returncode == 0, proc.stderr.read()
    assert np.array_equal(got.counts(), expected)


def test_cli_link_option_prints_the_stable_path_and_removes_it_at_the_end(
    mitdb, tmp_path, scaled
):
    stable = tmp_path / "ttyECG0"
    proc = _simulate(
        str(mitdb / "106"),
        "--start-minute",
        "29.9",
        "--speed",
        "20",
        "--link",
        str(stable),
        "--no-wait",
    )
    assert proc.stdout.readline().strip() == str(stable)
    assert os.readlink(stable).startswith("/dev/pts/")
    assert proc.wait(timeout=scaled(30)) == 0
    assert not stable.exists() and not stable.is_symlink()


def test_cli_stops_cleanly_on_sigterm_like_run(mitdb, tmp_path, scaled):
    stable = tmp_path / "ttyECG1"
    proc = _simulate(str(mitdb / "106"), "--link", str(stable))
    proc.stdout.readline()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=scaled(10)) == 0
    assert not stable.is_symlink()
    assert "sent 0 samples" in proc.stderr.read().splitlines()[-1]


def test_cli_rejects_a_bad_leads_off_interval_in_one_line(mitdb, scaled):
    proc = _simulate(str(mitdb / "106"), "--leads-off", "12-30")
    assert proc.wait(timeout=scaled(30)) == 2
    assert "START_S:DURATION_S" in proc.stderr.read()


def test_cli_names_a_missing_record(tmp_path, scaled):
    proc = _simulate(str(tmp_path / "nope"))
    assert proc.wait(timeout=scaled(30)) == 1
    err = proc.stderr.read().strip().splitlines()
    assert len(err) == 1 and "nope" in err[0]


def test_start_minute_past_the_end_is_refused(mitdb):
    with pytest.raises(RecordFormatError, match="nothing to replay"):
        BoardSimulator.from_record(mitdb / "106", start_minute=31)


def test_outages_that_do_not_fit_the_replay_are_refused(mitdb):
    with pytest.raises(ValueError, match="do not fit"):
        BoardSimulator.from_record(
            mitdb / "106",
            start_minute=29,
            speed=100,
            faults=Faults(disconnects=5, outage_s=1.0),
        )


def test_byte_faults_hit_about_the_asked_share_of_bytes(mitdb, drain):
    faults = Faults(corrupt_rate=0.01, drop_rate=0.005)
    sim = BoardSimulator.from_record(
        mitdb / "106", start_minute=28, speed=60, faults=faults, seed=9
    )
    with sim, SerialLink(sim.path) as link:
        got = drain(link, sim)
    n = sim.stats.bytes_written + sim.stats.bytes_dropped
    for count, rate in (
        (sim.stats.bytes_corrupted, 0.01),
        (sim.stats.bytes_dropped, 0.005),
    ):
        sd = np.sqrt(n * rate * (1 - rate))
        assert abs(count - n * rate) < 5 * sd
    assert link.stats.corrupt_frames > 0
    assert got.of(LinkEventKind.CORRUPT)


def test_simulator_waits_for_a_client_and_stop_event_ends_the_wait(mitdb, scaled):
    stop = threading.Event()
    sim = BoardSimulator.from_record(mitdb / "106", stop_event=stop).start()
    assert not sim.join(timeout_s=0.3)  # nobody opened the port: nothing sent
    assert sim.stats.bytes_written == 0
    stop.set()
    assert sim.join(timeout_s=scaled(5.0))
    sim.stop()


def test_cli_port_option_writes_frames_to_a_real_serial_device(mitdb, record_106):
    """A pty's slave stands in for a UART; the test reads the other end."""
    from beatguard.firmware_bridge.protocol import FrameDecoder

    master, slave = os.openpty()
    device = os.ttyname(slave)
    proc = _simulate(
        str(mitdb / "106"), "--start-minute", "29.9", "--speed", "20", "--port", device
    )
    assert proc.stdout.readline().strip() == device
    dec = FrameDecoder()
    items = []
    os.set_blocking(master, False)
    while proc.poll() is None or items == []:
        try:
            items += dec.feed(os.read(master, 65536))
        except BlockingIOError:
            threading.Event().wait(0.01)
    try:
        while True:
            items += dec.feed(os.read(master, 65536))
    except (BlockingIOError, OSError):
        pass
    os.close(master)
    os.close(slave)
    assert proc.returncode == 0, proc.stderr.read()
    counts = np.concatenate([i.counts for i in items if hasattr(i, "counts")])
    expected = record_106[int(29.9 * 60 * 360) :]
    assert np.array_equal(counts, expected[: len(counts)])
    assert len(counts) == len(expected)


def test_a_slow_reader_gets_the_whole_replay_and_its_end_before_the_port_closes(
    mitdb, record_106, scaled
):
    """A reader taking 2.5 kB/s leaves about 8 s of bytes queued at the end."""
    from beatguard.firmware_bridge.protocol import FrameDecoder

    sim = BoardSimulator.from_record(
        mitdb / "106", start_minute=5.0, minutes=0.1, speed=100.0
    ).start()
    fd = os.open(sim.path, os.O_RDONLY | os.O_NOCTTY)
    dec, items = FrameDecoder(), []
    try:
        while True:
            try:
                data = os.read(fd, 256)
            except OSError:  # EIO: the simulator closed its side
                break
            if not data:
                break
            items += dec.feed(data)
            threading.Event().wait(0.1)
    finally:
        os.close(fd)
    assert sim.join(timeout_s=scaled(30.0))
    counts = np.concatenate([i.counts for i in items if hasattr(i, "counts")])
    assert np.array_equal(counts, record_106[5 * 60 * 360 :][: 36 * 60])
    assert items[-1].kind is LinkEventKind.END_OF_STREAM
