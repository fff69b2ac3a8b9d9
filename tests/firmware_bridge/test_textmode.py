"""Text mode: numbers and '!' lines, split anywhere, equal to the binary stream."""

from __future__ import annotations

import numpy as np

from beatguard.device.types import LinkEvent, LinkEventKind, SampleChunk
from beatguard.firmware_bridge.protocol import FrameDecoder
from beatguard.firmware_bridge.simulator import BoardSimulator
from beatguard.firmware_bridge.textmode import TextDecoder

FS_HZ = 360.0


def _samples(items) -> tuple[np.ndarray, np.ndarray, list[int]]:
    chunks = [i for i in items if isinstance(i, SampleChunk)]
    counts = np.concatenate([c.counts for c in chunks])
    flags = np.concatenate([c.leads_off for c in chunks])
    starts = [c.first_sample for c in chunks]
    return counts, flags, starts


def _lines(values, leads_off=None) -> bytes:
    leads_off = leads_off if leads_off is not None else [False] * len(values)
    return b"".join(
        b"!\r\n" if lo else b"%d\r\n" % v
        for v, lo in zip(values, leads_off, strict=True)
    )


def test_split_inside_numbers_and_a_fragment_first_line_give_every_sample():
    rng = np.random.default_rng(5)
    values = rng.integers(0, 2048, 5000)
    data = b"23\r\n" + _lines(values)  # "23": the tail of a line begun before
    dec = TextDecoder(FS_HZ)
    items = []
    pos = 0
    while pos < len(data):
        step = int(rng.integers(1, 9))
        items += dec.feed(data[pos : pos + step])
        pos += step
    counts, flags, _ = _samples(items)
    assert np.array_equal(counts, values)
    assert not flags.any()
    assert not [i for i in items if isinstance(i, LinkEvent)]


def test_bang_lines_are_leads_off_samples_not_errors():
    values = [500, 501, 0, 0, 0, 502]
    off = [False, False, True, True, True, False]
    dec = TextDecoder(FS_HZ)
    items = dec.feed(b"\n" + _lines(values, off)) + dec.flush()
    counts, flags, _ = _samples(items)
    assert flags.tolist() == off
    assert np.isnan(counts[2:5]).all() and counts[[0, 1, 5]].tolist() == [500, 501, 502]
    assert dec.stats.bad_lines == 0 and dec.stats.leads_off_samples == 3


def test_eot_line_ends_the_stream_after_the_lines_before_it():
    dec = TextDecoder(FS_HZ)
    items = dec.feed(b"\n" + _lines([500, 501, 0], [False, False, True]))
    items += dec.feed(b"oops\r\n\x04\r\n777\r\n")
    counts, flags, _ = _samples(items)
    assert counts[:2].tolist() == [500, 501] and flags.tolist() == [False] * 2 + [True]
    kinds = [i.kind for i in items if isinstance(i, LinkEvent)]
    assert kinds == [LinkEventKind.CORRUPT, LinkEventKind.END_OF_STREAM]
    assert items[-1].at_sample == 3  # the 777 after the end is not a sample


def test_a_minute_of_bang_lines_is_a_minute_of_leads_off():
    n = int(60 * FS_HZ)
    dec = TextDecoder(FS_HZ)
    items = dec.feed(b"\r\n" + b"!\r\n" * n) + dec.flush()
    counts, flags, _ = _samples(items)
    assert len(flags) == n and flags.all() and np.isnan(counts).all()
    assert not [i for i in items if isinstance(i, LinkEvent)]


def test_boot_text_lines_are_skipped_counted_and_reported_once_per_second():
    dec = TextDecoder(FS_HZ)
    boot = b"ets Jun  8 2016 00:22:57\r\nrst:0x1 (POWERON_RESET)\r\n"
    items = dec.feed(b"\r\n" + _lines([1, 2, 3]) + boot + _lines([4, 5]))
    items += dec.flush()
    counts, _, _ = _samples(items)
    assert counts.tolist() == [1, 2, 3, 4, 5]
    bad = [i for i in items if isinstance(i, LinkEvent)]
    assert [e.kind for e in bad] == [LinkEventKind.CORRUPT]
    assert bad[0].corrupt_frames == 2 and "POWERON_RESET" in bad[0].message


def test_outage_gives_an_estimated_gap_and_drops_the_partial_line():
    dec = TextDecoder(FS_HZ)
    dec.feed(b"\r\n" + _lines([10, 11, 12]) + b"10")
    dec.mark_outage(360)
    items = dec.feed(b"24\r\n" + _lines([13, 14]))
    assert isinstance(items[0], LinkEvent) and items[0].kind is LinkEventKind.GAP
    assert items[0].lost_samples == 360 and items[0].details["estimated"]
    counts, _, starts = _samples(items)
    assert counts.tolist() == [13, 14] and starts == [3 + 360]


def test_text_stream_of_record_106_equals_its_binary_stream(mitdb):
    """Both encodings of the same replay decode to identical samples and flags."""
    kwargs = dict(start_minute=5.0, minutes=3.0, faults=None)
    streams = {}
    for text in (False, True):
        sim = BoardSimulator.from_record(mitdb / "106", text=text, **kwargs)
        sim.port.close()  # only the encoder is used here, not the pty
        wire = sim.encode_replay()
        dec = TextDecoder(FS_HZ) if text else FrameDecoder()
        rng = np.random.default_rng(11)
        items, pos = [], 0
        while pos < len(wire):
            step = int(rng.integers(1, 64))
            items += dec.feed(wire[pos : pos + step])
            pos += step
        streams[text] = _samples(items)
    (bc, bf, _), (tc, tf, _) = streams[False], streams[True]
    assert len(bc) == 3 * 60 * 360
    assert np.array_equal(bc, tc) and np.array_equal(bf, tf)
