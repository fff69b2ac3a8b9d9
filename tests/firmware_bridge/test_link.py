"""The serial link on real pseudo-terminals, loop:// and socket:// ports."""

from __future__ import annotations

import logging
import socket
import threading
import time

import numpy as np
import pytest
import serial

from beatguard.device.errors import PortBusy, PortLost, PortNotFound
from beatguard.device.types import LinkEventKind, SampleChunk
from beatguard.firmware_bridge.link import SerialLink
from beatguard.firmware_bridge.protocol import Announce, encode_announce, encode_frame
from beatguard.firmware_bridge.simulator import BoardSimulator, Faults

START = 5 * 60 * 360  # record 106 replayed from minute 5


def _sim(mitdb, minutes=1.0, **kwargs) -> BoardSimulator:
    kwargs.setdefault("speed", 60.0)
    return BoardSimulator.from_record(
        mitdb / "106", start_minute=5.0, minutes=minutes, **kwargs
    )


def test_link_delivers_the_record_exactly_with_its_announce(drain, mitdb, record_106):
    sim = _sim(mitdb)
    with sim, SerialLink(sim.path) as link:
        got = drain(link, sim)
    expected = record_106[START : START + 60 * 360]
    assert np.array_equal(got.indices(), np.arange(len(expected)))
    assert np.array_equal(got.counts(), expected)
    assert link.fs_hz == 360.0 and link.baseline_counts == 1024
    assert link.gain_counts_per_mv == 200.0 and link.firmware_version == "1.0.0"
    assert got.kinds()[0] is LinkEventKind.ANNOUNCE
    assert LinkEventKind.GAP not in got.kinds()


def test_text_mode_link_gives_the_same_samples_as_binary(drain, mitdb, record_106):
    results = []
    for text_fs_hz in (None, 360.0):
        sim = _sim(mitdb, minutes=0.5, text=text_fs_hz is not None)
        with sim, SerialLink(sim.path, text_fs_hz=text_fs_hz) as link:
            results.append(drain(link, sim))
    binary, text = results
    assert np.array_equal(binary.indices(), text.indices())
    assert np.array_equal(binary.counts(), text.counts())
    assert len(text.counts()) == 30 * 360


def test_leads_off_intervals_reach_the_host_on_the_right_samples(drain, mitdb):
    sim = _sim(mitdb, text=True, faults=Faults(leads_off=[(10.0, 5.0), (30.0, 2.0)]))
    with sim, SerialLink(sim.path, text_fs_hz=360.0) as link:
        got = drain(link, sim)
    flags = got.leads_off()
    expected = np.zeros(60 * 360, dtype=bool)
    expected[3600:5400] = True
    expected[10800:11520] = True
    assert np.array_equal(flags, expected)
    assert np.isnan(got.counts()[flags]).all()
    assert LinkEventKind.CORRUPT not in got.kinds()


def test_corruption_and_drops_are_counted_and_samples_stay_in_place(
    drain, mitdb, record_106
):
    faults = Faults(corrupt_rate=0.001, drop_rate=0.0005)
    sim = _sim(mitdb, minutes=2.0, faults=faults, seed=4)
    with sim, SerialLink(sim.path) as link:
        got = drain(link, sim)
    idx = got.indices()
    assert np.array_equal(got.counts(), record_106[START + idx])
    corrupt = sum(e.corrupt_frames for _, e in got.of(LinkEventKind.CORRUPT))
    assert corrupt == link.stats.corrupt_frames > 0
    lost = sum(e.lost_samples for _, e in got.of(LinkEventKind.GAP))
    assert len(idx) + lost == 2 * 60 * 360
    assert link.stats.recovered_samples > 0


def test_vanished_port_is_reopened_within_two_seconds_with_exact_gaps(
    drain, mitdb, record_106, tmp_path, scaled
):
    stable = tmp_path / "ttyECG"
    faults = Faults(disconnects=3, outage_s=0.5)
    sim = _sim(mitdb, minutes=2.0, faults=faults, link_path=stable, speed=30.0)
    with sim, SerialLink(str(stable)) as link:
        got = drain(link, sim)
    assert len(sim.stats.outages) == 3
    reconnected = [t for t, _ in got.of(LinkEventKind.RECONNECTED)]
    assert len(reconnected) == 3
    for (_, plugged, _), seen in zip(sim.stats.outages, reconnected, strict=True):
        assert seen - plugged < scaled(2.0)
    assert got.kinds().count(LinkEventKind.DISCONNECTED) >= 3
    # Every sample sits at its record position: each gap was counted exactly.
    idx = got.indices()
    assert np.array_equal(got.counts(), record_106[START + idx])
    gaps = [e for _, e in got.of(LinkEventKind.GAP)]
    assert len(gaps) >= 3 and not any(e.details["estimated"] for e in gaps)


@pytest.mark.parametrize("text", [False, True], ids=["frames", "text"])
def test_end_of_a_replay_stops_a_link_without_reconnect_quietly(
    mitdb, caplog, scaled, text
):
    caplog.set_level(logging.WARNING, logger="beatguard.firmware_bridge.link")
    sim = _sim(mitdb, minutes=0.2, text=text)
    items = []
    text_fs_hz = 360.0 if text else None
    with sim, SerialLink(sim.path, text_fs_hz=text_fs_hz, reconnect=False) as link:
        deadline = time.monotonic() + scaled(30.0)
        while time.monotonic() < deadline:
            finished = not link.running
            item = link.get(timeout_s=0.1)  # raises if the link failed
            if item is None and finished:
                break
            if item is not None:
                items.append(item)
        assert not link.running
    assert items[-1].kind is LinkEventKind.END_OF_STREAM
    assert sum(len(i) for i in items if isinstance(i, SampleChunk)) == 12 * 360
    assert caplog.records == []


def test_port_lost_without_reconnect_raises_port_lost_after_the_last_item(
    mitdb, scaled
):
    sim = _sim(mitdb, minutes=1.0, speed=5.0)
    received, kinds = 0, []
    with sim, SerialLink(sim.path, reconnect=False) as link:
        deadline = time.monotonic() + scaled(30.0)
        while received < 2 * 360 and time.monotonic() < deadline:
            item = link.get(timeout_s=0.1)
            if isinstance(item, SampleChunk):
                received += len(item)
        sim.stop()  # the board's port closes mid-replay: unplugged
        with pytest.raises(PortLost, match="port lost before the end of the stream"):
            while time.monotonic() < deadline:
                item = link.get(timeout_s=0.1)
                if item is not None:
                    kinds.append(getattr(item, "kind", None))
    assert LinkEventKind.DISCONNECTED in kinds
    assert LinkEventKind.END_OF_STREAM not in kinds


def test_second_process_opening_the_port_gets_port_busy(mitdb, scaled):
    sim = _sim(mitdb, minutes=0.2, speed=1.0)
    with sim, SerialLink(sim.path) as first:
        with pytest.raises(PortBusy, match="busy"):
            SerialLink(sim.path).open()
        with pytest.raises(serial.SerialException):
            serial.Serial(sim.path, exclusive=True)
        assert first.get(timeout_s=scaled(2.0)) is not None


def test_port_that_never_appears_logs_once_then_gives_up(tmp_path, caplog, scaled):
    missing = str(tmp_path / "ttyACM9")
    with pytest.raises(PortNotFound, match="ttyACM9"):
        SerialLink(missing, reconnect=False).open()
    caplog.set_level(logging.INFO, logger="beatguard.firmware_bridge.link")
    link = SerialLink(missing, open_timeout_s=0.5).open()
    try:
        event = link.get(timeout_s=scaled(1.0))
        assert event.kind is LinkEventKind.PORT_ERROR and "not found" in event.message
        deadline = time.monotonic() + scaled(5.0)
        with pytest.raises(PortNotFound, match="gave up"):
            while time.monotonic() < deadline:
                link.get(timeout_s=0.1)
    finally:
        link.close()
    waiting = [r for r in caplog.records if "not found" in r.getMessage()]
    assert len(waiting) == 1  # "waiting for it": not one per try; get() says the rest


def test_board_reset_is_reported_with_its_boot_text(drain, mitdb, record_106, caplog):
    caplog.set_level(logging.INFO, logger="beatguard.firmware_bridge.link")
    sim = _sim(mitdb, faults=Faults(board_resets=1))
    with sim, SerialLink(sim.path) as link:
        got = drain(link, sim)
    resets = got.of(LinkEventKind.BOARD_RESET)
    assert len(resets) == 1 and "board reset" in resets[0][1].message
    assert any("boot text" in r.getMessage() for r in caplog.records)
    after = got.kinds()[got.kinds().index(LinkEventKind.BOARD_RESET) + 1]
    assert after is LinkEventKind.GAP
    reset_at = resets[0][1].at_sample
    before = got.indices()[got.indices() < reset_at]
    assert np.array_equal(got.counts()[: len(before)], record_106[START + before])
    assert max(got.indices()) > reset_at  # samples flow again after the reboot


def test_loop_url_port_is_read_through_serial_for_url(scaled):
    port = serial.serial_for_url("loop://", do_not_open=True, timeout=0.05)
    link = SerialLink("loop://", port_factory=lambda url, **kw: port).open()
    try:
        ann = Announce(250.0, 10, 225.28, 338, "1.0.0")
        port.write(encode_announce(ann) + encode_frame(0, [1, 2, 3, 4]))
        items = [link.get(timeout_s=scaled(2.0)), link.get(timeout_s=scaled(2.0))]
    finally:
        link.close()
    assert items[0].kind is LinkEventKind.ANNOUNCE and link.fs_hz == 250.0
    assert isinstance(items[1], SampleChunk) and items[1].counts.tolist() == [
        1,
        2,
        3,
        4,
    ]


def test_socket_url_reconnects_when_the_server_comes_back(scaled):
    server = socket.create_server(("127.0.0.1", 0))
    host, port = server.getsockname()
    ann = encode_announce(Announce(360.0, 11, 200.0, 1024, "1.0.0"))

    def serve() -> None:
        for session in range(2):
            conn, _ = server.accept()
            # pyserial drains a socket's input right after opening; nothing
            # tells the server when it has, so it waits.
            time.sleep(scaled(0.3))
            start = session * 400
            conn.sendall(ann[:0] if session else ann)
            conn.sendall(b"\x00" + encode_frame(start, list(range(start, start + 8))))
            time.sleep(scaled(0.2))
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    link = SerialLink(f"socket://{host}:{port}").open()
    got = []
    try:
        deadline = time.monotonic() + scaled(5.0)
        while time.monotonic() < deadline:
            item = link.get(timeout_s=0.1)
            if item is not None:
                got.append(item)
                if isinstance(item, SampleChunk) and item.first_sample > 0:
                    break
    finally:
        link.close()
        server.close()
    kinds = [getattr(i, "kind", "chunk") for i in got]
    assert LinkEventKind.DISCONNECTED in kinds and LinkEventKind.RECONNECTED in kinds
    second = got[-1]
    assert isinstance(second, SampleChunk) and second.first_sample == 400


def test_outage_that_pauses_the_record_costs_only_bytes_in_flight(
    drain, mitdb, record_106, tmp_path
):
    stable = tmp_path / "ttyECG"
    faults = Faults(disconnects=2, outage_s=0.3, outage_pauses_record=True)
    sim = _sim(mitdb, minutes=1.0, faults=faults, link_path=stable, speed=30.0)
    with sim, SerialLink(str(stable)) as link:
        got = drain(link, sim)
    assert got.kinds().count(LinkEventKind.RECONNECTED) == 2
    gaps = [e for _, e in got.of(LinkEventKind.GAP)]
    assert len(gaps) == 2 and all(e.details["reason"] == "port reopened" for e in gaps)
    idx = got.indices()
    assert np.array_equal(got.counts(), record_106[START + idx])
    # Only what was in flight is lost: far less than the 0.3 s outage at 30x.
    outage_samples = 0.3 * 30 * 360
    assert all(e.lost_samples < outage_samples / 3 for e in gaps)
    assert len(idx) + sum(e.lost_samples for e in gaps) == 60 * 360


def test_text_on_a_binary_link_gives_one_hint_about_text_mode(caplog):
    caplog.set_level(logging.WARNING, logger="beatguard.firmware_bridge.link")
    port = serial.serial_for_url("loop://", do_not_open=True, timeout=0.05)
    link = SerialLink(
        "loop://", port_factory=lambda url, **kw: port, summary_every_s=0.1
    ).open()
    try:
        for _ in range(5):
            port.write(b"".join(b"%d\r\n" % v for v in range(500, 800)))
            assert link.get(timeout_s=0.2) is None  # text is not beatguard frames
    finally:
        link.close()
    hints = [r for r in caplog.records if "give its sample rate" in r.getMessage()]
    assert len(hints) == 1 and link.stats.text_bytes > 1000


def test_frames_on_a_text_mode_link_give_one_hint_to_leave_text_mode(caplog, scaled):
    from beatguard.firmware_bridge.protocol import encode_frame

    caplog.set_level(logging.WARNING, logger="beatguard.firmware_bridge.link")
    port = serial.serial_for_url("loop://", do_not_open=True, timeout=0.05)
    link = SerialLink(
        "loop://", text_fs_hz=360.0, port_factory=lambda url, **kw: port
    ).open()

    def hints():
        return [r for r in caplog.records if "leave out --text-fs-hz" in r.getMessage()]

    try:
        for block in range(5):
            frames = b"".join(
                encode_frame(block * 1000 + k * 10, list(range(500, 510)))
                for k in range(100)
            )
            port.write(frames)
            link.get(timeout_s=0.2)
        deadline = time.monotonic() + scaled(5.0)  # the reader may lag behind
        while not hints() and time.monotonic() < deadline:
            link.get(timeout_s=0.1)
    finally:
        link.close()
    assert len(hints()) == 1  # once, without waiting for the periodic summary


def test_stop_event_ends_the_reader_and_close_can_be_called_twice(scaled):
    port = serial.serial_for_url("loop://", do_not_open=True, timeout=0.05)
    stop = threading.Event()
    link = SerialLink("loop://", stop_event=stop, port_factory=lambda u, **k: port)
    link.open()
    assert link.running
    stop.set()
    deadline = time.monotonic() + scaled(2.0)
    while link.running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not link.running and not port.is_open
    assert link.get(timeout_s=0.5) is None
    link.close()
    link.close()
