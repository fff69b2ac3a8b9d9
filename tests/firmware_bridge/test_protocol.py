"""The binary codec: test vectors, byte splits, corruption, gaps and resets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from beatguard.device.errors import ProtocolError
from beatguard.device.types import LinkEvent, LinkEventKind, SampleChunk
from beatguard.firmware_bridge import protocol as p

VECTORS = json.loads(
    (Path(p.__file__).with_name("test_vectors.json")).read_text(encoding="utf-8")
)
ANNOUNCE = p.Announce(360.0, 11, 200.0, 1024, "1.0.0", 4, 12, 0)


def _announce(board_sample: int = 0) -> bytes:
    return p.encode_announce(
        p.Announce(360.0, 11, 200.0, 1024, "1.0.0", 4, 12, board_sample)
    )


def _stream(values: list[int], start: int = 0, window: int = 12, new: int = 4):
    """Wire frames for ``values`` as the firmware sends them (repeats included)."""
    frames = []
    for end in range(new, len(values) + 1, new):
        first = max(0, end - window)
        frames.append(p.encode_frame(start + first, values[first:end]))
    return frames


def _collect(items):
    chunks = [i for i in items if isinstance(i, SampleChunk)]
    events = [i for i in items if isinstance(i, LinkEvent)]
    return chunks, events


def _indexed(chunks) -> dict[int, float]:
    out = {}
    for c in chunks:
        for i, v in enumerate(c.counts):
            out[c.first_sample + i] = v
    return out


def test_crc_matches_the_standard_check_value_and_vectors():
    assert p.crc16_ccitt(b"123456789") == 0x29B1
    for case in VECTORS["crc16_ccitt_false"]:
        assert p.crc16_ccitt(bytes.fromhex(case["data_hex"])) == case["crc"]


def test_cobs_round_trips_the_vectors():
    for case in VECTORS["cobs"]:
        decoded = bytes.fromhex(case["decoded_hex"])
        encoded = bytes.fromhex(case["encoded_hex"])
        assert p.cobs_encode(decoded) == encoded
        assert p.cobs_decode(encoded) == decoded
        assert 0 not in encoded


@pytest.mark.parametrize("case", VECTORS["frames"], ids=lambda c: c["name"])
def test_python_codec_reproduces_each_frame_vector(case):
    wire = bytes.fromhex(case["wire_hex"])
    if case["type"] == "samples":
        assert (
            p.encode_frame(
                case["seq"], case["values"], case["lo_plus"], case["lo_minus"]
            )
            == wire
        )
        frame = p.decode_payload(wire[:-1])
        assert frame.seq == case["seq"]
        assert list(frame.values) == case["values"]
        assert list(frame.lo_plus) == case["lo_plus"]
        assert list(frame.lo_minus) == case["lo_minus"]
    else:
        ann = p.decode_payload(wire[:-1])
        assert round(ann.fs_hz * 1000) == case["fs_mhz"]
        assert ann.adc_bits == case["adc_bits"]
        assert round(ann.gain_counts_per_mv * 100) == case["gain_centi_counts_per_mv"]
        assert ann.baseline_counts == case["baseline_counts"]
        assert ann.firmware_version == case["firmware_version"]
        assert ann.board_sample == case["board_sample"]
        assert p.encode_announce(ann) == wire
    assert wire[-1] == 0 and 0 not in wire[:-1]


@pytest.mark.parametrize("case", VECTORS["invalid"], ids=lambda c: c["name"])
def test_invalid_vectors_are_rejected_with_a_reason(case):
    with pytest.raises(ProtocolError, match=case["reason"]):
        p.decode_payload(bytes.fromhex(case["wire_hex"])[:-1])


def test_decoder_gives_same_samples_for_any_byte_split():
    rng = np.random.default_rng(3)
    values = rng.integers(0, 4096, 2000).tolist()
    wire = _announce() + b"".join(_stream(values))
    whole, _ = _collect(p.FrameDecoder().feed(wire))
    dec = p.FrameDecoder()
    items = []
    pos = 0
    while pos < len(wire):
        step = int(rng.integers(1, 40))
        items += dec.feed(wire[pos : pos + step])
        pos += step
    split, events = _collect(items)
    assert [e.kind for e in events] == [LinkEventKind.ANNOUNCE]
    got = np.concatenate([c.counts for c in split])
    assert np.array_equal(got, values)
    assert np.array_equal(np.concatenate([c.counts for c in whole]), values)
    assert dec.stats.repeated_samples == 8 * (len(values) // 4) - 12


def test_end_frame_comes_after_every_sample_and_says_the_stream_is_complete():
    values = list(range(200, 240))
    wire = _announce() + b"".join(_stream(values)) + p.encode_end(len(values))
    dec = p.FrameDecoder()
    items = dec.feed(wire)
    chunks, events = _collect(items)
    assert [e.kind for e in events] == [
        LinkEventKind.ANNOUNCE,
        LinkEventKind.END_OF_STREAM,
    ]
    assert items[-1] is events[-1] and events[-1].at_sample == len(values)
    assert np.concatenate([c.counts for c in chunks]).tolist() == values
    assert p.encode_end(21600) == bytes.fromhex("064560549a2b00")


def test_samples_lost_in_the_last_frames_are_counted_from_the_end_frame():
    values = list(range(200, 240))
    frames = _stream(values)
    # The last two frames vanish: no later frame repeats their samples.
    wire = _announce() + b"".join(frames[:-2]) + b"\x00" + p.encode_end(len(values))
    chunks, events = _collect(p.FrameDecoder().feed(wire))
    got = np.concatenate([c.counts for c in chunks]).tolist()
    assert [e.kind for e in events] == [
        LinkEventKind.ANNOUNCE,
        LinkEventKind.GAP,
        LinkEventKind.END_OF_STREAM,
    ]
    gap, end = events[1], events[2]
    assert gap.at_sample == len(got) and len(got) + gap.lost_samples == len(values)
    assert gap.lost_samples == 8 and end.at_sample == len(values)


def test_end_frame_with_a_wrong_body_is_rejected():
    for body in (b"E", b"E\x01", b"E\x01\x02\x03"):
        bad = p.cobs_encode(body + p.crc16_ccitt(body).to_bytes(2, "little"))
        with pytest.raises(ProtocolError, match="end frame with a body"):
            p.decode_payload(bad)


def test_leads_off_bits_reach_the_chunk():
    wire = _announce() + p.encode_frame(0, [1, 2, 3], [False, True, False], None)
    wire += p.encode_frame(3, [4, 5], None, [False, True])
    chunks, _ = _collect(p.FrameDecoder().feed(wire))
    flags = np.concatenate([c.leads_off for c in chunks])
    assert flags.tolist() == [False, True, False, False, True]


def test_repeated_samples_cover_a_lost_frame_without_a_gap():
    values = list(range(100, 140))
    frames = _stream(values)
    del frames[3]  # one frame lost on the wire: its samples come again
    dec = p.FrameDecoder()
    chunks, events = _collect(dec.feed(_announce() + b"".join(frames)))
    assert [e.kind for e in events] == [LinkEventKind.ANNOUNCE]
    assert np.concatenate([c.counts for c in chunks]).tolist() == values
    assert dec.stats.recovered_samples == 4


def test_sequence_jump_gives_an_exact_gap_before_the_next_chunk():
    values = list(range(1000, 1100))
    frames = _stream(values)
    del frames[5:9]  # 16 samples of new data lost, more than the repeats cover
    dec = p.FrameDecoder()
    items = dec.feed(_announce() + b"".join(frames))
    gaps = [
        i for i in items if isinstance(i, LinkEvent) and i.kind is LinkEventKind.GAP
    ]
    assert len(gaps) == 1 and gaps[0].lost_samples == 8
    after = items[items.index(gaps[0]) + 1]
    assert isinstance(after, SampleChunk)
    assert after.first_sample == gaps[0].at_sample + 8
    got = _indexed(_collect(items)[0])
    assert all(got[k] == values[k] for k in got)  # stream index == board index
    assert dec.stats.lost_samples == 8


def test_corruption_is_counted_and_every_count_reaches_an_event():
    rng = np.random.default_rng(7)
    values = rng.integers(0, 2048, 36000).tolist()
    parts = []
    for i, frame in enumerate(_stream(values)):
        if i % 180 == 0:
            parts.append(_announce(i * 4))
        parts.append(frame)
    wire = bytearray(b"".join(parts))
    hit = rng.random(len(wire)) < 0.001
    for i in np.flatnonzero(hit):
        wire[i] ^= int(rng.integers(1, 256))
    dec = p.FrameDecoder()
    items = []
    for pos in range(0, len(wire), 97):
        items += dec.feed(bytes(wire[pos : pos + 97]))
    items += dec.flush()
    chunks, events = _collect(items)
    corrupt = [e for e in events if e.kind is LinkEventKind.CORRUPT]
    assert dec.stats.corrupt_frames > 0
    assert sum(e.corrupt_frames for e in corrupt) == dec.stats.corrupt_frames
    got = _indexed(chunks)
    assert all(got[k] == values[k] for k in got)  # no misplaced sample
    lost = sum(e.lost_samples for e in events if e.kind is LinkEventKind.GAP)
    assert len(got) + lost == len(values) - (len(values) - max(got) - 1)


def test_two_frames_merged_by_a_corrupted_delimiter_are_split_again():
    frames = _stream(list(range(200, 240)))
    merged = bytearray(frames[4])
    merged[-1] = 0x5A  # the delimiter became another byte: two frames in one
    wire = _announce() + b"".join(frames[:4]) + bytes(merged) + b"".join(frames[5:])
    dec = p.FrameDecoder()
    chunks, events = _collect(dec.feed(wire))
    assert [e.kind for e in events] == [LinkEventKind.ANNOUNCE]
    assert np.concatenate([c.counts for c in chunks]).tolist() == list(range(200, 240))
    assert dec.stats.merged_splits == 1 and dec.stats.corrupt_frames == 0


def test_samples_before_the_first_announce_are_held_until_it():
    values = list(range(50, 90))
    frames = _stream(values)
    dec = p.FrameDecoder()
    assert dec.feed(b"".join(frames[:3])) == []
    items = dec.feed(_announce(12) + b"".join(frames[3:]))
    chunks, events = _collect(items)
    assert events[0].kind is LinkEventKind.ANNOUNCE
    assert np.concatenate([c.counts for c in chunks]).tolist() == values


def test_board_reset_gives_reset_then_gap_with_the_boot_text():
    now = [0.0]
    dec = p.FrameDecoder(clock=lambda: now[0])
    dec.feed(_announce() + b"".join(_stream(list(range(400)))))
    now[0] = 1.5  # the board spent 1.5 s rebooting
    boot = b"\r\nets Jun  8 2016 rst:0x1 (POWERON_RESET),boot:0x13\r\n"
    items = dec.feed(boot + b"\x00" + _announce(0) + b"".join(_stream([7] * 40)))
    chunks, events = _collect(items)
    kinds = [e.kind for e in events]
    assert kinds == [LinkEventKind.BOARD_RESET, LinkEventKind.GAP]
    assert "POWERON_RESET" in events[0].message
    assert events[1].lost_samples == 540 and events[1].details["estimated"]
    assert chunks[0].first_sample == 400 + 540
    assert dec.stats.corrupt_frames == 0 and dec.stats.text_bytes == len(boot)


def test_outage_gap_is_exact_when_the_board_kept_counting():
    dec = p.FrameDecoder()
    values = list(range(3000))
    frames = _stream(values)
    dec.feed(_announce() + b"".join(frames[:100]))  # samples 0..399
    dec.feed(frames[100][:5])  # a partial frame when the port vanished
    dec.mark_outage(estimated_lost_samples=300)  # wall clock says about 300
    items = dec.feed(b"".join(frames[200:]))  # first frame after: samples 792..803
    chunks, events = _collect(items)
    assert events[0].kind is LinkEventKind.GAP
    assert events[0].lost_samples == 792 - 400
    got = _indexed(chunks)
    assert all(got[k] == values[k] for k in got)


def test_overlong_garbage_is_discarded_and_decoding_resumes():
    dec = p.FrameDecoder()
    junk = bytes(range(1, 256)) * 3
    items = dec.feed(junk + b"\x00" + _announce() + b"".join(_stream([5] * 16)))
    chunks, events = _collect(items)
    assert events[0].kind is LinkEventKind.ANNOUNCE
    assert sum(len(c) for c in chunks) == 16
    assert dec.stats.garbage_bytes >= len(junk)


def test_encode_frame_refuses_values_that_do_not_fit():
    with pytest.raises(ValueError, match="outside"):
        p.encode_frame(0, [4096])
    with pytest.raises(ValueError, match="1 to 64"):
        p.encode_frame(0, [])
