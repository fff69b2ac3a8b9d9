"""The beatguard wire protocol: COBS frames with a CRC, and their decoder.

The board sends two kinds of frame, each COBS-encoded and ended by a zero
byte (see ``PROTOCOL.md`` next to this file for the byte tables):

* an *announce* (type ``'A'``) at start and every few seconds: sample rate,
  ADC bits, gain, baseline, firmware version and the board's sample counter;
* a *sample frame* (type ``'S'``): the 16-bit sequence number of its first
  sample and up to 64 samples, each a 12-bit ADC value with the LO+ and LO-
  leads-off bits. A frame may repeat samples already sent (the firmware
  repeats the last 16 so up to three lost frames cost nothing); the decoder
  keeps the first copy of each sample.

A replay (the board simulator) ends with a third kind, the *end frame*
(type ``'E'``, the sequence number the next sample would have had): the
stream is complete and nothing follows, and samples lost at the very end
(in the last frames, which no later frame repeats) are counted from it. A
board never sends it, so a port that vanishes without it was lost.

:class:`FrameDecoder` turns bytes, split anywhere, into
:class:`~beatguard.device.types.SampleChunk` and
:class:`~beatguard.device.types.LinkEvent` objects with stream indices that
count samples since the session started, and counts what went wrong.
"""

from __future__ import annotations

import binascii
import logging
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from beatguard.device.errors import ProtocolError
from beatguard.device.types import LinkEvent, LinkEventKind, SampleChunk

log = logging.getLogger(__name__)

PROTOCOL_VERSION = 1
DELIMITER = 0x00
TYPE_ANNOUNCE = 0x41  # 'A'
TYPE_SAMPLES = 0x53  # 'S'
TYPE_END = 0x45  # 'E'

VALUE_MASK = 0x0FFF  # bits 0-11: ADC value
LO_PLUS_BIT = 0x1000  # bit 12: LO+ pin high (electrode off)
LO_MINUS_BIT = 0x2000  # bit 13: LO- pin high (electrode off)
LEADS_OFF_BITS = LO_PLUS_BIT | LO_MINUS_BIT
RESERVED_MASK = 0xC000  # bits 14-15: always zero; a frame with them set is corrupt

MAX_SAMPLES_PER_FRAME = 64
SEQ_MODULUS = 1 << 16
COUNTER_MODULUS = 1 << 32

#: Announce payload after the type byte: protocol version, sample rate in
#: millihertz, ADC bits, new samples per frame, samples per frame (window),
#: gain in hundredths of a count per millivolt, baseline in counts, firmware
#: major/minor/patch, and the board counter of the next sample it will send.
ANNOUNCE_LAYOUT = struct.Struct("<BIBBBIHBBBI")
SAMPLE_HEADER = struct.Struct("<H")
CRC_BYTES = 2

#: Longest COBS-encoded frame the decoder waits for before it discards the
#: bytes as garbage (an announce or a full sample frame is far shorter).
MAX_ENCODED_BYTES = 1 + 1 + 2 + 2 * MAX_SAMPLES_PER_FRAME + CRC_BYTES + 2

#: Printable bytes (and tab, CR, LF) that mark a fragment as text, e.g. the
#: boot messages of a board or a plain text sketch.
_TEXT_BYTES = frozenset(range(0x20, 0x7F)) | {0x09, 0x0A, 0x0D}


def crc16_ccitt(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no xor).

    The check value of ``b"123456789"`` is ``0x29B1``.
    """
    return binascii.crc_hqx(data, 0xFFFF)


def cobs_encode(data: bytes) -> bytes:
    """Consistent Overhead Byte Stuffing: ``data`` without any zero byte.

    The result is one byte longer than ``data`` for inputs under 254 bytes
    and carries no delimiter; the sender appends ``0x00``.
    """
    out = bytearray()
    block = bytearray()
    for byte in data:
        if byte == 0:
            out.append(len(block) + 1)
            out += block
            block.clear()
            continue
        block.append(byte)
        if len(block) == 254:
            out.append(255)
            out += block
            block.clear()
    out.append(len(block) + 1)
    out += block
    return bytes(out)


def cobs_decode(data: bytes) -> bytes:
    """Undo :func:`cobs_encode` (``data`` without its delimiter).

    Raises
    ------
    ProtocolError
        If ``data`` holds a zero byte or a code points past its end.
    """
    out = bytearray()
    i = 0
    n = len(data)
    while i < n:
        code = data[i]
        if code == 0:
            raise ProtocolError("COBS block code 0 inside a frame")
        end = i + code
        if end > n:
            raise ProtocolError(f"COBS block of {code - 1} bytes runs past the frame")
        block = data[i + 1 : end]
        if 0 in block:
            raise ProtocolError("zero byte inside a COBS frame")
        out += block
        i = end
        if code < 255 and i < n:
            out.append(0)
    return bytes(out)


@dataclass(frozen=True)
class Announce:
    """What a board says about itself.

    Attributes
    ----------
    fs_hz : float
        Sample rate in hertz (sent in millihertz: the timer's true rate).
    adc_bits : int
        ADC resolution in bits.
    gain_counts_per_mv : float
        ADC counts per millivolt at the electrodes; 0 when unknown.
    baseline_counts : int
        ADC count of 0 mV.
    firmware_version : str
        ``"major.minor.patch"``.
    new_per_frame : int
        Samples each sample frame adds to the stream.
    window : int
        Samples each sample frame carries (``window - new_per_frame`` repeated).
    board_sample : int
        Board counter (samples since boot, modulo 2**32) of the next sample.
    protocol_version : int
    """

    fs_hz: float
    adc_bits: int
    gain_counts_per_mv: float
    baseline_counts: int
    firmware_version: str
    new_per_frame: int = 4
    window: int = 16
    board_sample: int = 0
    protocol_version: int = PROTOCOL_VERSION

    def details(self) -> dict:
        """The announce as plain values for ``LinkEvent.details``."""
        return {
            "fs_hz": self.fs_hz,
            "adc_bits": self.adc_bits,
            "gain_counts_per_mv": self.gain_counts_per_mv,
            "baseline_counts": self.baseline_counts,
            "firmware_version": self.firmware_version,
            "new_per_frame": self.new_per_frame,
            "window": self.window,
            "board_sample": self.board_sample,
        }


@dataclass(frozen=True)
class SampleFrame:
    """One decoded sample frame.

    Attributes
    ----------
    seq : int
        Board counter of the first sample modulo 2**16.
    words : tuple[int, ...]
        The sample words as sent (value in bits 0-11, LO+ bit 12, LO- bit 13).
    """

    seq: int
    words: tuple[int, ...]

    @property
    def values(self) -> tuple[int, ...]:
        """ADC counts, 0 .. 4095."""
        return tuple(w & VALUE_MASK for w in self.words)

    @property
    def lo_plus(self) -> tuple[bool, ...]:
        """The LO+ pin with each sample (True: electrode off)."""
        return tuple(bool(w & LO_PLUS_BIT) for w in self.words)

    @property
    def lo_minus(self) -> tuple[bool, ...]:
        """The LO- pin with each sample (True: electrode off)."""
        return tuple(bool(w & LO_MINUS_BIT) for w in self.words)


@dataclass(frozen=True)
class EndOfStream:
    """The end frame: a replay is complete and nothing more will come.

    ``seq`` is the 16-bit sequence number the next sample would have had,
    so a receiver can count samples lost after the last frame it decoded.
    """

    seq: int


def _finish(payload: bytes) -> bytes:
    crc = crc16_ccitt(payload).to_bytes(CRC_BYTES, "little")
    return cobs_encode(payload + crc) + bytes([DELIMITER])


def encode_announce(announce: Announce) -> bytes:
    """The complete wire bytes (COBS, CRC, delimiter) of an announce.

    Raises
    ------
    ValueError
        If a field does not fit its wire width.
    """
    major, minor, patch = (int(p) for p in announce.firmware_version.split("."))
    try:
        body = ANNOUNCE_LAYOUT.pack(
            announce.protocol_version,
            round(announce.fs_hz * 1000),
            announce.adc_bits,
            announce.new_per_frame,
            announce.window,
            round(announce.gain_counts_per_mv * 100),
            announce.baseline_counts,
            major,
            minor,
            patch,
            announce.board_sample % COUNTER_MODULUS,
        )
    except struct.error as err:
        raise ValueError(f"announce field out of range: {err}") from err
    return _finish(bytes([TYPE_ANNOUNCE]) + body)


def encode_frame(
    first_sample: int,
    counts: Sequence[int],
    lo_plus: Sequence[bool] | None = None,
    lo_minus: Sequence[bool] | None = None,
) -> bytes:
    """The complete wire bytes of a sample frame.

    Parameters
    ----------
    first_sample : int
        Board counter of ``counts[0]`` (sent modulo 2**16).
    counts : sequence of int, length 1 .. 64
        ADC values, 0 .. 4095.
    lo_plus, lo_minus : sequence of bool, optional
        Leads-off pins per sample; all False when omitted.

    Raises
    ------
    ValueError
        If there are no samples or too many, or a value is outside 0 .. 4095.
    """
    n = len(counts)
    if not 1 <= n <= MAX_SAMPLES_PER_FRAME:
        raise ValueError(
            f"a frame carries 1 to {MAX_SAMPLES_PER_FRAME} samples, not {n}"
        )
    lo_plus = lo_plus if lo_plus is not None else [False] * n
    lo_minus = lo_minus if lo_minus is not None else [False] * n
    words = []
    for value, plus, minus in zip(counts, lo_plus, lo_minus, strict=True):
        value = int(value)
        if not 0 <= value <= VALUE_MASK:
            raise ValueError(f"sample value {value} outside 0..{VALUE_MASK}")
        words.append(
            value | (LO_PLUS_BIT if plus else 0) | (LO_MINUS_BIT if minus else 0)
        )
    body = SAMPLE_HEADER.pack(first_sample % SEQ_MODULUS) + struct.pack(
        f"<{n}H", *words
    )
    return _finish(bytes([TYPE_SAMPLES]) + body)


def encode_end(next_sample: int) -> bytes:
    """The complete wire bytes of the end frame (sent after a replay's last frame).

    Parameters
    ----------
    next_sample : int
        Board counter of the sample that would come next, that is one past
        the last sample sent (sent modulo 2**16).
    """
    return _finish(bytes([TYPE_END]) + SAMPLE_HEADER.pack(next_sample % SEQ_MODULUS))


def decode_payload(encoded: bytes) -> Announce | SampleFrame | EndOfStream:
    """Decode one frame's bytes (between delimiters, still COBS-encoded).

    Raises
    ------
    ProtocolError
        With the reason: bad COBS, bad CRC, unknown type, wrong length,
        reserved bits set or an unsupported protocol version.
    """
    raw = cobs_decode(encoded)
    if len(raw) < 1 + CRC_BYTES:
        raise ProtocolError(f"frame of {len(raw)} bytes is too short")
    payload, crc_bytes = raw[:-CRC_BYTES], raw[-CRC_BYTES:]
    if crc16_ccitt(payload) != int.from_bytes(crc_bytes, "little"):
        raise ProtocolError("CRC mismatch")
    kind, body = payload[0], payload[1:]
    if kind == TYPE_SAMPLES:
        return _decode_samples(body)
    if kind == TYPE_ANNOUNCE:
        return _decode_announce(body)
    if kind == TYPE_END:
        if len(body) != SAMPLE_HEADER.size:
            raise ProtocolError(f"end frame with a body of {len(body)} bytes")
        (seq,) = SAMPLE_HEADER.unpack(body)
        return EndOfStream(seq)
    raise ProtocolError(f"unknown frame type 0x{kind:02x}")


def _decode_samples(body: bytes) -> SampleFrame:
    n, odd = divmod(len(body) - SAMPLE_HEADER.size, 2)
    if odd or not 1 <= n <= MAX_SAMPLES_PER_FRAME:
        raise ProtocolError(f"sample frame body of {len(body)} bytes")
    if max(body[SAMPLE_HEADER.size + 1 :: 2]) >= 0x40:  # bits 14-15 of a word
        raise ProtocolError("reserved sample bits set")
    (seq,) = SAMPLE_HEADER.unpack_from(body)
    return SampleFrame(seq=seq, words=struct.unpack_from(f"<{n}H", body, 2))


def _decode_announce(body: bytes) -> Announce:
    if len(body) != ANNOUNCE_LAYOUT.size:
        raise ProtocolError(f"announce body of {len(body)} bytes")
    (
        version,
        fs_mhz,
        bits,
        new,
        window,
        gain_c,
        baseline,
        major,
        minor,
        patch,
        count,
    ) = ANNOUNCE_LAYOUT.unpack(body)
    if version != PROTOCOL_VERSION:
        raise ProtocolError(
            f"protocol version {version}, this host speaks {PROTOCOL_VERSION}"
        )
    if (
        fs_mhz == 0
        or not 1 <= bits <= 12
        or not 1 <= new <= window <= MAX_SAMPLES_PER_FRAME
    ):
        raise ProtocolError("announce with impossible values")
    return Announce(
        fs_hz=fs_mhz / 1000.0,
        adc_bits=bits,
        gain_counts_per_mv=gain_c / 100.0,
        baseline_counts=baseline,
        firmware_version=f"{major}.{minor}.{patch}",
        new_per_frame=new,
        window=window,
        board_sample=count,
        protocol_version=version,
    )


@dataclass
class DecoderStats:
    """Running counts of a decoder (all since it was created or reset).

    Attributes
    ----------
    frames_ok : int
        Frames that passed COBS, CRC and layout checks.
    corrupt_frames : int
        Fragments between delimiters that failed (each counts once).
    lost_samples : int
        Samples reported missing in GAP events (exact or estimated).
    gaps : int
        GAP events emitted.
    repeated_samples : int
        Samples received again in a later frame and ignored (redundancy).
    recovered_samples : int
        Samples delivered from the repeated part of a frame because their
        first frame was lost.
    resyncs : int
        Times decoding resumed on a good frame after corrupt bytes.
    garbage_bytes : int
        Bytes discarded (corrupt fragments, overlong runs, text).
    text_bytes : int
        Of those, bytes that looked like text (boot messages).
    samples : int
        Samples delivered.
    announces : int
    board_resets : int
    merged_splits : int
        Fragments split back into two frames after their delimiter was
        corrupted (the first frame is recovered, the second checked alone).
    """

    frames_ok: int = 0
    corrupt_frames: int = 0
    lost_samples: int = 0
    gaps: int = 0
    repeated_samples: int = 0
    recovered_samples: int = 0
    resyncs: int = 0
    garbage_bytes: int = 0
    text_bytes: int = 0
    samples: int = 0
    announces: int = 0
    board_resets: int = 0
    merged_splits: int = 0


class ItemCollector:
    """Collects the samples and events of one ``feed`` call into items.

    Consecutive samples become one :class:`SampleChunk`; an event closes the
    chunk before it, so items keep their order on the wire.
    """

    def __init__(self) -> None:
        self.items: list[SampleChunk | LinkEvent] = []
        self._start = 0
        self._values: list[float] = []
        self._lo: list[bool] = []

    def event(self, event: LinkEvent) -> None:
        self._close_chunk()
        self.items.append(event)

    def samples(self, start: int, values: Sequence[float], lo: Sequence[bool]) -> None:
        if self._values and start != self._start + len(self._values):
            self._close_chunk()
        if not self._values:
            self._start = start
        self._values.extend(values)
        self._lo.extend(lo)

    def finish(self) -> list[SampleChunk | LinkEvent]:
        self._close_chunk()
        return self.items

    def _close_chunk(self) -> None:
        if not self._values:
            return
        self.items.append(
            SampleChunk(
                counts=np.asarray(self._values, dtype=np.float64),
                leads_off=np.asarray(self._lo, dtype=np.bool_),
                first_sample=self._start,
            )
        )
        self._values, self._lo = [], []


class FrameDecoder:
    """Incremental decoder of the binary protocol.

    Feed it bytes as they arrive, split anywhere; it returns the complete
    items they finish. Stream indices (``SampleChunk.first_sample``,
    ``LinkEvent.at_sample``) count samples since the first sample this
    decoder delivered.

    * Lost samples (the sequence counter jumped) give a ``GAP`` event with
      the exact count, before the chunk that follows them.
    * Corrupt fragments are counted; a ``CORRUPT`` event with the count
      since the previous one is emitted at most once per second of stream
      (and before any ``GAP``), so the log holds every count without a row
      per frame. :meth:`flush` returns a pending count.
    * Samples that arrive before the first announce are held and released
      after it, since their sample rate is unknown until then.
    * A later announce whose board counter went backwards means the board
      rebooted: a ``BOARD_RESET`` event, then a ``GAP`` whose size is
      estimated from the wall-clock time since the last sample frame.
    * The end frame gives an ``END_OF_STREAM`` event, after any pending
      ``CORRUPT`` count and after a ``GAP`` for samples lost in the last
      frames (counted from the end frame's sequence number).
    * After :meth:`mark_outage` (the port was lost and reopened) the next
      frame's sequence number gives the exact gap when the board kept
      counting; the caller's wall-clock estimate only picks among the
      16-bit wrap-arounds (exact for outages below about 90 s at 360 Hz).

    The decoder adds no delay: a frame's samples are returned by the
    ``feed`` call that receives its delimiter.

    Parameters
    ----------
    clock : callable returning seconds, optional
        Monotonic clock used only to estimate gaps after a board reset.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.reset()

    def reset(self) -> None:
        """Forget everything: a new session starts at stream index 0."""
        self.stats = DecoderStats()
        self.announce: Announce | None = None
        self._buf = bytearray()
        self._next_pos: int | None = None  # unwrapped board index of next sample
        self._counter_offset = 0  # board counter minus unwrapped index
        self._stream = 0  # stream index of the next sample
        self._pending_gap: tuple[int, str, bool] | None = None
        self._outage_estimate: int | None = None
        self._pending_corrupt = 0
        self._last_corrupt_emit = 0
        self._last_bad = ""
        self._last_text = b""
        self._held: list[tuple[tuple | None, list[float], list[bool]]] = []
        self._last_frame_time: float | None = None
        self._after_bad = False

    # Public interface --------------------------------------------------------

    def feed(self, data: bytes) -> list[SampleChunk | LinkEvent]:
        """Decode ``data``; return the chunks and events it completes."""
        out = ItemCollector()
        self._buf += data
        if DELIMITER not in data:
            self._check_overlong(out)
            return out.finish()
        parts = self._buf.split(b"\x00")
        self._buf = bytearray(parts.pop())
        for part in parts:
            if part:
                self._handle(bytes(part), out)
        self._check_overlong(out)
        return out.finish()

    def flush(self) -> list[SampleChunk | LinkEvent]:
        """Return a pending ``CORRUPT`` count (call at end of stream)."""
        out = ItemCollector()
        self._emit_corrupt(out)
        return out.finish()

    def mark_outage(self, estimated_lost_samples: int) -> None:
        """Say that bytes were lost (port closed and reopened).

        The partial frame in the buffer is discarded; the next sample frame
        is placed using its sequence number, with ``estimated_lost_samples``
        (from wall-clock time) choosing among the 16-bit wrap-arounds. A
        ``GAP`` is emitted before the next chunk in any case.
        """
        self.stats.garbage_bytes += len(self._buf)
        self._buf.clear()
        if self._next_pos is None:
            return  # nothing was received yet, so there is nothing to break
        self._outage_estimate = max(0, int(estimated_lost_samples))

    @property
    def next_sample(self) -> int:
        """Stream index the next delivered sample will have."""
        return self._stream

    # Frame handling ------------------------------------------------------------

    def _check_overlong(self, out: ItemCollector) -> None:
        if len(self._buf) > MAX_ENCODED_BYTES:
            self._bad(bytes(self._buf), "no delimiter within the longest frame")
            self._buf.clear()

    def _handle(self, part: bytes, out: ItemCollector) -> None:
        try:
            frame = decode_payload(part)
        except ProtocolError as err:
            if not self._split_merged(part, out):
                self._bad(part, str(err))
            return
        self._accept(frame, out)

    def _split_merged(self, part: bytes, out: ItemCollector) -> bool:
        """Recover two frames whose delimiter was corrupted into another byte.

        The first frame's COBS code chain then ends on the byte that was the
        delimiter; each place the chain lands is tried as the split point.
        Returns True if a frame was recovered (the rest is handled as a new
        fragment).
        """
        pos = part[0]
        while pos < len(part) - 1:
            try:
                first = decode_payload(part[:pos])
            except ProtocolError:
                pos += part[pos]
                continue
            self.stats.merged_splits += 1
            self._accept(first, out)
            self._handle(part[pos + 1 :], out)
            return True
        return False

    def _accept(
        self, frame: Announce | SampleFrame | EndOfStream, out: ItemCollector
    ) -> None:
        self.stats.frames_ok += 1
        if self._after_bad:
            self.stats.resyncs += 1
            self._after_bad = False
        if isinstance(frame, Announce):
            self._on_announce(frame, out)
        elif isinstance(frame, EndOfStream):
            self._on_end(frame, out)
        else:
            self._on_samples(frame, out)

    def _on_end(self, frame: EndOfStream, out: ItemCollector) -> None:
        self._emit_corrupt(out)
        if self._next_pos is not None and self.announce is not None:
            lost = _signed16(frame.seq - self._next_pos)
            if lost > 0:
                self._next_pos += lost
                self._emit_gap(lost, "lost in the last frames", False, out)
        out.event(end_of_stream_event(self._stream))

    def _bad(self, part: bytes, reason: str) -> None:
        self.stats.garbage_bytes += len(part)
        self._after_bad = True
        if len(part) >= 4 and all(b in _TEXT_BYTES for b in part):
            self.stats.text_bytes += len(part)
            self._last_text = part
            return
        self.stats.corrupt_frames += 1
        self._pending_corrupt += 1
        self._last_bad = reason

    def _on_announce(self, ann: Announce, out: ItemCollector) -> None:
        self.stats.announces += 1
        previous = self.announce
        self.announce = ann
        if previous is None:
            self._first_announce(ann, out)
            return
        expected = self._board_counter()
        if expected is not None:
            behind = (expected - ann.board_sample) % COUNTER_MODULUS
            if previous.window < behind < COUNTER_MODULUS // 2:
                why = f"sample counter went back by {behind}"
                self._board_reset(ann, out, why)
            elif self._outage_estimate is not None:
                ahead = (ann.board_sample - expected) % COUNTER_MODULUS
                if ahead < COUNTER_MODULUS // 2:
                    self._outage_estimate = ahead
        if _params(previous) != _params(ann):
            out.event(self._announce_event(ann, "board announced new settings"))

    def _first_announce(self, ann: Announce, out: ItemCollector) -> None:
        out.event(self._announce_event(ann, "board announced itself"))
        if self._next_pos is None:
            self._next_pos = ann.board_sample
            self._counter_offset = 0
        else:
            delta = _signed16(ann.board_sample - self._next_pos)
            self._counter_offset = ann.board_sample - delta - self._next_pos
        held, self._held = self._held, []
        for gap, values, lo in held:
            self._pending_gap = gap
            self._deliver(values, lo, out)

    def _announce_event(self, ann: Announce, why: str) -> LinkEvent:
        text = (
            f"{why}: {ann.fs_hz:g} Hz, {ann.adc_bits}-bit ADC, "
            f"{ann.gain_counts_per_mv:g} counts/mV, baseline {ann.baseline_counts}, "
            f"firmware {ann.firmware_version}"
        )
        return LinkEvent(
            LinkEventKind.ANNOUNCE, text, at_sample=self._stream, details=ann.details()
        )

    def _board_reset(self, ann: Announce, out: ItemCollector, why: str) -> None:
        self.stats.board_resets += 1
        boot = self._last_text.decode("ascii", "replace").strip()
        message = f"board reset ({why})"
        if boot:
            message += f"; boot text: {boot[:60]!r}"
        out.event(
            LinkEvent(
                LinkEventKind.BOARD_RESET,
                message,
                at_sample=self._stream,
                details={"boot_text": boot, **ann.details()},
            )
        )
        self._last_text = b""
        self._next_pos = ann.board_sample
        self._counter_offset = 0
        estimate = self._wall_clock_estimate() + ann.board_sample
        self._pending_gap = (estimate, "board reset", True)
        self._outage_estimate = None

    def _wall_clock_estimate(self) -> int:
        if self._last_frame_time is None or self.announce is None:
            return 0
        elapsed_s = max(0.0, self._clock() - self._last_frame_time)
        return int(round(elapsed_s * self.announce.fs_hz))

    def _board_counter(self) -> int | None:
        if self._next_pos is None:
            return None
        return (self._next_pos + self._counter_offset) % COUNTER_MODULUS

    def _on_samples(self, frame: SampleFrame, out: ItemCollector) -> None:
        self._last_frame_time = self._clock()
        n = len(frame.words)
        if self._next_pos is None:
            self._next_pos = frame.seq
            self._counter_offset = 0
        start = self._place(frame.seq, n, out)
        if start is None:
            return
        skip = max(0, self._next_pos - start)
        self.stats.repeated_samples += skip
        if self.announce is not None and skip:
            fresh_from = n - self.announce.new_per_frame
            self.stats.recovered_samples += max(0, fresh_from - skip)
        fresh = frame.words[skip:]
        values = [w & VALUE_MASK for w in fresh]
        lo = [w & LEADS_OFF_BITS != 0 for w in fresh]
        if start + skip > self._next_pos:
            lost = start + skip - self._next_pos
            if self._pending_gap is None:
                self._pending_gap = (lost, "sequence counter jumped", False)
        self._next_pos = start + n
        if self.announce is None:
            gap, self._pending_gap = self._pending_gap, None
            self._held.append((gap, values, lo))
            self._trim_held()
            return
        self._deliver(values, lo, out)

    def _place(self, seq: int, n: int, out: ItemCollector) -> int | None:
        """Unwrapped board index of a frame's first sample, or None to drop it."""
        assert self._next_pos is not None
        diff = (seq - self._next_pos) % SEQ_MODULUS
        if self._outage_estimate is not None:
            estimate, self._outage_estimate = self._outage_estimate, None
            candidates = [diff - SEQ_MODULUS] + [
                diff + k * SEQ_MODULUS for k in range(estimate // SEQ_MODULUS + 2)
            ]
            candidates = [c for c in candidates if c + n > 0]
            best = min(candidates, key=lambda c: abs(c - estimate))
            if self._pending_gap is None:
                self._pending_gap = (max(0, best), "port reopened", False)
            return self._next_pos + best
        delta = _signed16(diff)
        if delta + n <= 0:
            if delta < -MAX_SAMPLES_PER_FRAME * 2:
                self._sequence_restart(seq, out)
                return self._next_pos
            self.stats.repeated_samples += n
            return None
        return self._next_pos + delta

    def _sequence_restart(self, seq: int, out: ItemCollector) -> None:
        self.stats.board_resets += 1
        out.event(
            LinkEvent(
                LinkEventKind.BOARD_RESET,
                f"sequence counter went back to {seq} without an announce: board reset",
                at_sample=self._stream,
            )
        )
        self._pending_gap = (self._wall_clock_estimate(), "board reset", True)
        self._next_pos = seq
        self._counter_offset = 0

    def _trim_held(self) -> None:
        total = sum(len(v) for _, v, _ in self._held)
        while total > SEQ_MODULUS // 4 and self._held:
            _, values, _ = self._held.pop(0)
            total -= len(values)
            log.warning("no announce yet: dropped %d held samples", len(values))

    def _deliver(self, values: list[float], lo: list[bool], out: ItemCollector) -> None:
        if self._pending_gap is not None:
            lost, why, estimated = self._pending_gap
            self._pending_gap = None
            self._emit_corrupt(out)
            self._emit_gap(lost, why, estimated, out)
        elif (
            self._pending_corrupt
            and self._stream - self._last_corrupt_emit >= self._corrupt_period()
        ):
            self._emit_corrupt(out)
        out.samples(self._stream, values, lo)
        self._stream += len(values)
        self.stats.samples += len(values)

    def _corrupt_period(self) -> float:
        return self.announce.fs_hz if self.announce is not None else 360.0

    def _emit_corrupt(self, out: ItemCollector) -> None:
        if not self._pending_corrupt:
            return
        count, self._pending_corrupt = self._pending_corrupt, 0
        self._last_corrupt_emit = self._stream
        out.event(
            LinkEvent(
                LinkEventKind.CORRUPT,
                f"{count} corrupt frame(s) dropped (last: {self._last_bad})",
                at_sample=self._stream,
                corrupt_frames=count,
            )
        )

    def _emit_gap(
        self, lost: int, why: str, estimated: bool, out: ItemCollector
    ) -> None:
        self.stats.gaps += 1
        self.stats.lost_samples += lost
        kind = "about " if estimated else ""
        out.event(
            LinkEvent(
                LinkEventKind.GAP,
                f"{kind}{lost} samples lost ({why})",
                at_sample=self._stream,
                lost_samples=lost,
                details={"reason": why, "estimated": estimated},
            )
        )
        self._stream += lost


def end_of_stream_event(at_sample: int) -> LinkEvent:
    """The event a decoder gives for the end of a replay (frame or text)."""
    return LinkEvent(
        LinkEventKind.END_OF_STREAM,
        "the board ended the stream (end of the replay)",
        at_sample=at_sample,
    )


def _signed16(value: int) -> int:
    value %= SEQ_MODULUS
    return value - SEQ_MODULUS if value >= SEQ_MODULUS // 2 else value


def _params(ann: Announce) -> tuple:
    return (ann.fs_hz, ann.adc_bits, ann.gain_counts_per_mv, ann.baseline_counts)
