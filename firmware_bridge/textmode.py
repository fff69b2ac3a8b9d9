"""The plain text stream of the common AD8232 example sketches.

Those sketches print one ADC reading per line (``512\\r\\n``) and a line
holding only ``!`` while LO+ or LO- says an electrode is off. They send no
sample rate, so the user gives it. :class:`TextDecoder` turns such bytes,
split anywhere, into the same :class:`~beatguard.device.types.SampleChunk`
and :class:`~beatguard.device.types.LinkEvent` objects as the binary
decoder:

* a number line is one sample;
* a ``!`` line is one sample with ``leads_off`` True and NaN counts;
* an empty line is ignored;
* a line holding only ``EOT`` (0x04), which the board simulator sends when
  its replay is complete (a sketch never does), gives an ``END_OF_STREAM``
  event; anything after it is ignored;
* any other line (boot text, a line garbled on the wire) is skipped and
  counted; a ``CORRUPT`` event with the count and an example line is
  emitted at most once per second of stream, and by :meth:`flush`.

Text carries no sequence counter, so lost lines cannot be detected; only a
reopened port gives a ``GAP`` (estimated by the caller from wall-clock
time). The first line after the decoder starts or after an outage is
dropped, since the port may have been opened in the middle of it.
"""

from __future__ import annotations

from dataclasses import dataclass

from beatguard.device.types import LinkEvent, LinkEventKind, SampleChunk
from beatguard.firmware_bridge.protocol import ItemCollector, end_of_stream_event

#: A line longer than this without a newline is not a sample line.
MAX_LINE_BYTES = 64
#: The line that ends a replay (ASCII end of transmission).
END_LINE = b"\x04"
_NAN = float("nan")


@dataclass
class TextStats:
    """Running counts of a :class:`TextDecoder`.

    Attributes
    ----------
    samples : int
        Lines delivered as samples (numbers and ``!``).
    leads_off_samples : int
        Of those, ``!`` lines.
    bad_lines : int
        Lines skipped because they are neither a number nor ``!``.
    lost_samples : int
        Samples reported missing in GAP events (estimates).
    gaps : int
    """

    samples: int = 0
    leads_off_samples: int = 0
    bad_lines: int = 0
    lost_samples: int = 0
    gaps: int = 0


class TextDecoder:
    """Incremental decoder of one-integer-per-line text.

    Parameters
    ----------
    fs_hz : float
        Sample rate of the sketch, in hertz (it does not say).
    skip_first_line : bool
        Drop the bytes up to the first newline: when the port is opened
        while the board is already printing, they are the tail of a line
        (``"23"`` of ``"1023"``) and would pass for a sample.
    """

    def __init__(self, fs_hz: float = 360.0, skip_first_line: bool = True) -> None:
        if not fs_hz > 0:
            raise ValueError(f"sample rate must be positive, not {fs_hz}")
        self.fs_hz = float(fs_hz)
        self._skip_first_line = skip_first_line
        self.reset()

    def reset(self) -> None:
        """Forget everything: a new session starts at stream index 0."""
        self.stats = TextStats()
        self._buf = bytearray()
        self._skipping = self._skip_first_line
        self._stream = 0
        self._pending_bad = 0
        self._last_bad = b""
        self._last_bad_emit = 0
        self._pending_gap: int | None = None

    @property
    def next_sample(self) -> int:
        """Stream index the next delivered sample will have."""
        return self._stream

    def feed(self, data: bytes) -> list[SampleChunk | LinkEvent]:
        """Decode ``data``; return the chunks and events it completes."""
        out = ItemCollector()
        self._buf += data
        if b"\n" not in data:
            if len(self._buf) > MAX_LINE_BYTES:
                self._bad_line(bytes(self._buf))
                self._buf.clear()
            return out.finish()
        lines = self._buf.split(b"\n")
        self._buf = bytearray(lines.pop())
        if self._skipping:
            lines.pop(0)
            self._skipping = False
        values: list[float] = []
        lo: list[bool] = []
        ended = False
        for raw in lines:
            line = raw.strip()
            if line == END_LINE:
                ended = True
                break
            if line.isdigit() and len(line) <= 6:
                values.append(float(line))
                lo.append(False)
            elif line == b"!":
                values.append(_NAN)
                lo.append(True)
                self.stats.leads_off_samples += 1
            elif line:
                self._bad_line(line)
        self._deliver(values, lo, out)
        if ended:
            self._buf.clear()
            self._emit_bad(out)
            out.event(end_of_stream_event(self._stream))
        return out.finish()

    def flush(self) -> list[SampleChunk | LinkEvent]:
        """Return a pending ``CORRUPT`` count (call at end of stream)."""
        out = ItemCollector()
        self._emit_bad(out)
        return out.finish()

    def mark_outage(self, estimated_lost_samples: int) -> None:
        """Say that bytes were lost: a ``GAP`` of the estimate comes next.

        The partial line in the buffer and the first line after it are
        dropped.
        """
        self._buf.clear()
        self._skipping = True
        self._pending_gap = max(0, int(estimated_lost_samples))

    def _bad_line(self, line: bytes) -> None:
        self.stats.bad_lines += 1
        self._pending_bad += 1
        self._last_bad = line[:MAX_LINE_BYTES]

    def _deliver(self, values: list[float], lo: list[bool], out: ItemCollector) -> None:
        due = self._stream - self._last_bad_emit >= self.fs_hz
        if self._pending_bad and (due or self._pending_gap is not None):
            self._emit_bad(out)
        if not values:
            return
        if self._pending_gap is not None:
            lost, self._pending_gap = self._pending_gap, None
            self.stats.gaps += 1
            self.stats.lost_samples += lost
            out.event(
                LinkEvent(
                    LinkEventKind.GAP,
                    f"about {lost} samples lost (port reopened)",
                    at_sample=self._stream,
                    lost_samples=lost,
                    details={"reason": "port reopened", "estimated": True},
                )
            )
            self._stream += lost
        out.samples(self._stream, values, lo)
        self._stream += len(values)
        self.stats.samples += len(values)

    def _emit_bad(self, out: ItemCollector) -> None:
        if not self._pending_bad:
            return
        count, self._pending_bad = self._pending_bad, 0
        self._last_bad_emit = self._stream
        example = self._last_bad.decode("ascii", "replace")
        out.event(
            LinkEvent(
                LinkEventKind.CORRUPT,
                f"{count} line(s) that are not samples skipped (last: {example!r})",
                at_sample=self._stream,
                corrupt_frames=count,
                details={"example": example},
            )
        )
