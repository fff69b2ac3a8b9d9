"""Replay a record as a runtime source, without a board or a serial port.

``RecordSource`` hands out a record's samples as ``SampleChunk`` objects
(after an ``ANNOUNCE`` event carrying the record's front end), in the same
stream-index convention as the serial link: index 0 is the first sample
replayed. It serves to run the device runtime over a stored record
(re-scoring a capture with a new model, tests) exactly as it would run on
a live stream, as fast as the runtime can take it.

Gaps can be replayed too: ``gaps`` lists ``(at_s, lost_s)`` pairs, each
dropping ``lost_s`` seconds of samples at ``at_s`` seconds into the replay
and announcing it with a ``GAP`` event, as the link does when the board's
sequence counter jumps.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from beatguard.device.records import Record
from beatguard.device.types import LinkEvent, LinkEventKind, SampleChunk


class RecordSource:
    """A record as a stream of chunks and link events.

    Parameters
    ----------
    record : Record
    start_sample : int
        First record sample replayed (stream index 0).
    stop_sample : int, optional
        Record sample where the replay stops (exclusive; default the end).
    chunk_samples : int
        Samples per chunk (a board frame holds a few; the link hands out
        what arrived).
    gaps : sequence of (at_s, lost_s)
        Stretches to drop, each announced by a ``GAP`` event.

    Attributes
    ----------
    running : bool
        False once every item has been handed out.
    """

    def __init__(
        self,
        record: Record,
        start_sample: int = 0,
        stop_sample: int | None = None,
        chunk_samples: int = 36,
        gaps: Sequence[tuple[float, float]] = (),
    ) -> None:
        self.record = record
        self.fs_hz = record.fs_hz
        self.start = int(start_sample)
        self.stop = len(record.counts) if stop_sample is None else int(stop_sample)
        self.chunk_samples = int(chunk_samples)
        self.gaps = sorted(
            (round(at_s * record.fs_hz), round(lost_s * record.fs_hz))
            for at_s, lost_s in gaps
        )
        self.running = True
        self._items = self._generate()

    def _generate(self):
        r = self.record
        yield LinkEvent(
            LinkEventKind.ANNOUNCE,
            f"replaying record {r.name} from sample {self.start}",
            details={
                "fs_hz": r.fs_hz,
                "adc_bits": r.adc_bits,
                "gain_counts_per_mv": r.gain_counts_per_mv,
                "baseline_counts": r.baseline_counts,
                "adc_zero_counts": r.adc_zero_counts,
            },
        )
        leads_off = (
            np.zeros(len(r.counts), bool) if r.leads_off is None else r.leads_off
        )
        gaps = list(self.gaps)
        index = 0  # stream index
        n = self.stop - self.start
        while index < n:
            if gaps and index >= gaps[0][0]:
                _, lost = gaps.pop(0)
                lost = min(lost, n - index)
                yield LinkEvent(
                    LinkEventKind.GAP,
                    f"{lost} samples lost",
                    at_sample=index,
                    lost_samples=lost,
                )
                index += lost
                continue
            end = min(n, index + self.chunk_samples)
            if gaps:
                end = min(end, max(gaps[0][0], index + 1))
            a, b = self.start + index, self.start + end
            yield SampleChunk(r.counts[a:b].copy(), leads_off[a:b].copy(), index)
            index = end

    def get(self, timeout_s: float = 0.0) -> SampleChunk | LinkEvent | None:
        """The next item, or None (and ``running`` False) at the end."""
        item = next(self._items, None)
        if item is None:
            self.running = False
        return item
