"""The stream recorder writes WFDB records whose indices are stream indices,
and the record replay hands out a record as the link would."""

from __future__ import annotations

import numpy as np

from beatguard.device.recorder import StreamRecorder
from beatguard.device.records import read_record
from beatguard.device.replay import RecordSource
from beatguard.device.types import LinkEvent, LinkEventKind, SampleChunk


def _drain(source):
    items = []
    while (item := source.get(0.0)) is not None:
        items.append(item)
    return items


def test_replay_covers_the_span_in_order_after_an_announce(mitdb):
    record = read_record(mitdb / "106")
    source = RecordSource(record, start_sample=1000, stop_sample=5000, chunk_samples=7)
    items = _drain(source)
    assert not source.running
    assert items[0].kind is LinkEventKind.ANNOUNCE
    assert items[0].details["fs_hz"] == 360.0
    chunks = [i for i in items if isinstance(i, SampleChunk)]
    assert chunks[0].first_sample == 0
    assert all(
        a.first_sample + len(a) == b.first_sample
        for a, b in zip(chunks, chunks[1:], strict=False)
    )
    counts = np.concatenate([c.counts for c in chunks])
    np.testing.assert_array_equal(counts, record.counts[1000:5000])


def test_replay_gap_drops_the_samples_and_announces_them(mitdb):
    record = read_record(mitdb / "106")
    source = RecordSource(record, stop_sample=3600, gaps=[(2.0, 1.5)])
    items = _drain(source)
    gaps = [
        i for i in items if isinstance(i, LinkEvent) and i.kind is LinkEventKind.GAP
    ]
    assert [(g.at_sample, g.lost_samples) for g in gaps] == [(720, 540)]
    after = next(
        i for i in items if isinstance(i, SampleChunk) and i.first_sample >= 720
    )
    assert after.first_sample == 1260
    assert sum(len(i) for i in items if isinstance(i, SampleChunk)) == 3600 - 540


def test_recording_round_trips_counts_gaps_leads_off_and_labels(tmp_path, mitdb):
    record = read_record(mitdb / "106")
    counts = record.counts[:5000]
    leads_off = np.zeros(5000, bool)
    leads_off[3000:3400] = True
    rec = StreamRecorder(tmp_path, "me", 360.0, 200.0, 1024.0, 11, segment_minutes=None)
    rec.add_chunk(SampleChunk(counts[:1000], leads_off[:1000], 0))
    rec.add_chunk(SampleChunk(counts[1500:5000], leads_off[1500:5000], 1500))
    rec.add_beat(370, "N")
    rec.add_beat(4000, "Q")
    path = rec.flush()
    back = read_record(path)
    assert back.fs_hz == 360.0 and back.gain_counts_per_mv == 200.0
    assert len(back.counts) == 5000
    np.testing.assert_array_equal(back.counts[:1000], counts[:1000])
    assert np.isnan(back.counts[1000:1500]).all()  # the gap
    np.testing.assert_array_equal(back.counts[1500:], counts[1500:])
    np.testing.assert_array_equal(back.leads_off, leads_off)
    assert back.annotations.samples.tolist() == [370, 4000]
    assert back.annotations.symbols == ["N", "Q"]


def test_recording_is_split_into_segments_with_their_own_labels(tmp_path, mitdb):
    record = read_record(mitdb / "106")
    rec = StreamRecorder(
        tmp_path, "s", 360.0, 200.0, 1024.0, 11, segment_minutes=0.1, hold_s=1.0
    )
    segment = 36 * 60  # 0.1 min at 360 Hz
    for start in range(0, 5000, 500):
        stop = min(start + 500, 5000)
        rec.add_chunk(
            SampleChunk(record.counts[start:stop], np.zeros(stop - start, bool), start)
        )
        if start <= segment + 10 < stop:
            rec.add_beat(segment + 10, "N")  # known only after its chunk
    # s_001 ends at 4320 and is written once the stream passed 4320 + 360
    assert [p.name for p in rec.written] == ["s_000", "s_001"]
    rec.close()
    rec.close()
    assert [p.name for p in rec.written] == ["s_000", "s_001", "s_002"]
    first, second, third = (read_record(p) for p in rec.written)
    assert len(first.counts) == len(second.counts) == segment
    assert len(third.counts) == 5000 - 2 * segment
    np.testing.assert_array_equal(second.counts, record.counts[segment : 2 * segment])
    assert second.annotations.samples.tolist() == [10]


def test_segment_that_cannot_be_written_stops_the_recording_in_one_line(
    tmp_path, mitdb, caplog
):
    record = read_record(mitdb / "106")
    folder = tmp_path / "rec"
    rec = StreamRecorder(
        folder, "s", 360.0, 200.0, 1024.0, 11, segment_minutes=0.1, hold_s=1.0
    )
    chunks = [
        SampleChunk(record.counts[a : a + 500], np.zeros(500, bool), a)
        for a in range(0, 10_000, 500)
    ]
    for chunk in chunks[:6]:
        rec.add_chunk(chunk)
    assert [p.name for p in rec.written] == ["s_000"]
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()
    folder.write_text("")  # the folder is gone; a file is in its place
    for chunk in chunks[6:]:
        rec.add_chunk(chunk)
        rec.add_beat(chunk.first_sample, "N")
    rec.close()
    assert [p.name for p in rec.written] == ["s_000"]
    assert rec.failure.startswith(f"recording {folder / 's'}: stopped")
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and rec.failure in errors[0].getMessage()
