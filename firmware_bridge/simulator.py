"""A board that replays an ECG record on a pseudo-terminal, with faults.

:class:`BoardSimulator` behaves like the beatguard firmware on an Uno: it
waits for a client to open its port (opening an Uno's port resets it), boots
for a quarter of a second, sends an announce and then sample frames at the
record's pace (or ``speed`` times faster), repeating the announce every two
seconds of record time. With ``text=True`` it prints one number per line
and ``!`` while leads are off, like the AD8232 example sketches. When the
record is over it sends the end of the stream (the end frame, or a line
holding ``EOT`` in text mode), which a board never does, so that a reader
can tell a finished replay from a lost port; then it waits until the reader
has taken every byte, or has closed the port, and closes its side (at most
``DRAIN_TIMEOUT_S`` seconds, however slow the reader).

Faults, all seeded:

* ``corrupt_rate``: each byte replaced by another with this probability;
* ``drop_rate``: each byte dropped with this probability;
* ``leads_off``: ``(start_s, duration_s)`` intervals of record time (from
  the first replayed sample) with LO+ and LO- set (``!`` lines in text
  mode); values are the record's, where a real AD8232 would drive its
  output towards a rail;
* ``disconnects`` / ``disconnect_every_s``: the port vanishes (the pty is
  closed, bytes in flight are lost, the ``link_path`` symlink is removed)
  for ``outage_s`` wall-clock seconds and comes back as a fresh pty; the
  board keeps sampling meanwhile, so those samples are lost and its
  sequence counter keeps counting (or, with ``outage_pauses_record``, the
  replay resumes where it stopped once a client is back);
* ``board_resets``: the board reboots: a burst of boot text, half a second
  of record time without samples, then an announce whose sample counter
  starts again at zero.

Pacing uses absolute deadlines on a monotonic clock: sample ``k`` is due at
``t0 + k / (fs_hz * speed)``, so scheduling jitter never accumulates.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import select
import struct
import termios
import threading
import time
import tty
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from beatguard.device.errors import RecordFormatError
from beatguard.firmware_bridge.protocol import (
    DELIMITER,
    MAX_SAMPLES_PER_FRAME,
    VALUE_MASK,
    Announce,
    encode_announce,
    encode_end,
    encode_frame,
)
from beatguard.firmware_bridge.textmode import END_LINE

log = logging.getLogger(__name__)

FIRMWARE_VERSION = "1.0.0"
#: Longest wait, wall-clock seconds, at the end of a replay for the client
#: to take the bytes still queued for it before the port is closed. A
#: reader that keeps reading, however slowly, is done far sooner; the wait
#: ends as soon as the queue is empty or the client has closed the port.
DRAIN_TIMEOUT_S = 120.0
BOOT_TEXT = b"\r\nbeatguard ad8232 board: reset\r\nclock 16 MHz, timer1 CTC\r\n"


@dataclass(frozen=True)
class Faults:
    """What goes wrong during a simulated run (see the module docstring).

    Attributes
    ----------
    corrupt_rate, drop_rate : float
        Probability per byte, 0 .. 1.
    leads_off : sequence of (start_s, duration_s)
        Intervals of record time from the first replayed sample, seconds.
    disconnects : int
        Port outages spread evenly over the run.
    disconnect_every_s : float, optional
        Or one outage every this many seconds of record time.
    outage_s : float
        Wall-clock seconds each outage lasts.
    board_resets : int
        Board reboots spread evenly over the run.
    reset_boot_s : float
        Record seconds the board spends rebooting (samples not sent).
    outage_pauses_record : bool
        Resume the replay where it stopped after an outage instead of
        losing the samples due meanwhile (so runs with and without outages
        cover the same beats; the board's counter then shows no jump and
        only bytes in flight are lost).
    """

    corrupt_rate: float = 0.0
    drop_rate: float = 0.0
    leads_off: Sequence[tuple[float, float]] = ()
    disconnects: int = 0
    disconnect_every_s: float | None = None
    outage_s: float = 1.0
    board_resets: int = 0
    reset_boot_s: float = 0.5
    outage_pauses_record: bool = False

    def __post_init__(self) -> None:
        for name in ("corrupt_rate", "drop_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within 0..1, not {value}")
        if self.disconnect_every_s is not None and self.disconnect_every_s <= 0:
            raise ValueError("disconnect_every_s must be positive")


@dataclass
class SimulatorStats:
    """What the simulator did, for tests and the final log line.

    Attributes
    ----------
    samples_sent : int
        Record samples put in frames or lines (first copies).
    samples_skipped : int
        Samples not sent: outages, reboots, or no client on the port.
    bytes_written, bytes_corrupted, bytes_dropped : int
    frames : int
    outages : list of (unplugged_t, plugged_t, path)
        Monotonic times each outage began and the new port appeared.
    resets : list of (time_t, sample)
        Monotonic time and record sample of each board reboot.
    """

    samples_sent: int = 0
    samples_skipped: int = 0
    bytes_written: int = 0
    bytes_corrupted: int = 0
    bytes_dropped: int = 0
    frames: int = 0
    outages: list = field(default_factory=list)
    resets: list = field(default_factory=list)


class PtyPort:
    """The master side of a pseudo-terminal, with an optional stable symlink.

    The slave is put in raw mode and left closed, so the master's poll says
    whether a client holds it (``POLLHUP`` while nobody does).
    """

    def __init__(self, link_path: str | Path | None = None) -> None:
        self.link_path = Path(link_path) if link_path else None
        master, slave = os.openpty()
        self.slave_path = os.ttyname(slave)
        tty.setraw(slave)
        os.close(slave)
        os.set_blocking(master, False)
        self._fd: int | None = master
        if self.link_path is not None:
            tmp = self.link_path.with_name(self.link_path.name + ".new")
            tmp.unlink(missing_ok=True)
            os.symlink(self.slave_path, tmp)
            os.replace(tmp, self.link_path)

    @property
    def path(self) -> str:
        """The name a client opens: the symlink if any, else the slave."""
        return str(self.link_path) if self.link_path else self.slave_path

    def has_client(self) -> bool:
        """True while some process holds the slave side open."""
        if self._fd is None:
            return False
        events = select.poll()
        events.register(self._fd, select.POLLOUT | select.POLLHUP)
        return not any(ev & select.POLLHUP for _, ev in events.poll(0))

    def write(self, data: bytes, stop: threading.Event) -> int:
        """Write all of ``data`` unless the client leaves or ``stop`` is set.

        Returns the number of bytes written (the rest was discarded: with no
        client there is nobody to receive them, as on a real UART).
        """
        view = memoryview(data)
        done = 0
        while done < len(view) and not stop.is_set() and self._fd is not None:
            try:
                done += os.write(self._fd, view[done:])
            except BlockingIOError:
                if not self.has_client():
                    break
                stop.wait(0.002)
            except OSError as err:
                if err.errno in (errno.EIO, errno.EBADF):
                    break
                raise
        return done

    def drain(self, timeout_s: float, stop: threading.Event) -> None:
        """Wait until the client has taken every byte written, or has left.

        The bytes still queued for the client are read on the slave side
        (``FIONREAD``; a pty master's ``TIOCOUTQ`` says 0 on Linux whatever
        is queued). The kernel moves bytes into that queue in the
        background, so it must stay empty for 0.3 s, not just once. Gives
        up after ``timeout_s`` seconds (a client that stopped reading), with
        a log line saying how many bytes it left.
        """
        deadline = time.monotonic() + timeout_s
        queued, empty_polls = 0, 0
        while empty_polls < 6 and self.has_client() and not stop.is_set():
            if time.monotonic() > deadline:
                log.warning(
                    "simulator: the client left %d bytes unread for %g s; "
                    "closing the port",
                    queued,
                    timeout_s,
                )
                return
            queued = self._queued_for_client()
            empty_polls = empty_polls + 1 if queued == 0 else 0
            stop.wait(0.05)

    def _queued_for_client(self) -> int:
        """Bytes written that the client has not read yet (0 if unknown)."""
        # Opened only for the count: held open, it would hide the client's
        # leaving from has_client().
        try:
            fd = os.open(self.slave_path, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError:
            return 0
        try:
            raw = fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0")
        finally:
            os.close(fd)
        return struct.unpack("i", raw)[0]

    def close(self) -> None:
        """Close the master (the client sees the port vanish); idempotent."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
        if self.link_path is not None and self.link_path.is_symlink():
            if os.readlink(self.link_path) == self.slave_path:
                self.link_path.unlink(missing_ok=True)


class SerialPortOut:
    """A real serial port the simulator writes to (pyserial, exclusive).

    For a board stand-in on real wires: a USB-serial adapter looped to the
    Pi's UART, or a null-modem cable. A UART cannot tell whether anybody
    listens, so :meth:`has_client` is always True, and the port cannot be
    "unplugged" (outage faults need a pseudo-terminal).

    Raises
    ------
    PortNotFound, PortBusy, LinkError
        If the port cannot be opened.
    """

    def __init__(self, device: str, baud: int = 115200) -> None:
        import serial

        from beatguard.firmware_bridge.link import classify_open_error

        self.slave_path = device
        self.link_path = None
        try:
            self._port = serial.Serial(device, baud, write_timeout=1.0, exclusive=True)
        except (serial.SerialException, OSError) as err:
            raise classify_open_error(device, err) from err

    @property
    def path(self) -> str:
        """The device written to."""
        return self.slave_path

    def has_client(self) -> bool:
        """Always True: a UART sends whether or not anybody listens."""
        return True

    def write(self, data: bytes, stop: threading.Event) -> int:
        """Write ``data``; returns the bytes written."""
        import serial

        try:
            return self._port.write(data) or 0
        except serial.SerialTimeoutException:
            return 0

    def drain(self, timeout_s: float, stop: threading.Event) -> None:
        """Wait until the bytes have left the UART."""
        self._port.flush()

    def close(self) -> None:
        """Close the port (idempotent)."""
        self._port.close()


class BoardSimulator:
    """Replay ADC counts as a board would, in a background thread.

    Parameters
    ----------
    counts : array of int, shape (n,)
        ADC counts 0 .. 4095 (see :meth:`from_record` for records).
    fs_hz : float
        Sample rate of ``counts``.
    adc_bits : int
        Announced ADC resolution.
    gain_counts_per_mv : float
        Announced counts per millivolt (0: unknown).
    baseline_counts : int
        Announced count of 0 mV.
    leads_off : array of bool, shape (n,), optional
        Leads-off flags of the record itself (NaN samples, saved captures).
    speed : float
        Replay this many times faster than real time.
    text : bool
        Send text lines instead of frames.
    faults : Faults
    link_path : str or Path, optional
        Keep a symlink here to the current pty slave (removed while the
        port is "unplugged"), like udev's stable name for a board.
    new_per_frame, window : int
        Samples added and carried by each frame (the rest are repeats).
    announce_every_s : float
        Record seconds between announces.
    boot_s : float
        Wall-clock seconds between a client opening the port and the first
        byte (an Uno reset by DTR runs its bootloader meanwhile).
    wait_for_client : bool
        Start only when a client opens the port (else stream at once).
    seed : int
        Seed of the fault generator.
    stop_event : threading.Event, optional
        Stops the run when set.
    serial_port : str, optional
        Write to this real serial port instead of a new pseudo-terminal
        (no outage faults; see :class:`SerialPortOut`).
    baud : int
        Line speed of ``serial_port``.
    clock : callable returning seconds
        Monotonic clock for the deadlines.
    """

    def __init__(
        self,
        counts: NDArray,
        fs_hz: float,
        *,
        adc_bits: int = 12,
        gain_counts_per_mv: float = 0.0,
        baseline_counts: int = 0,
        leads_off: NDArray[np.bool_] | None = None,
        speed: float = 1.0,
        text: bool = False,
        faults: Faults | None = None,
        link_path: str | Path | None = None,
        new_per_frame: int = 4,
        window: int = 16,
        announce_every_s: float = 2.0,
        boot_s: float = 0.25,
        wait_for_client: bool = True,
        seed: int = 0,
        stop_event: threading.Event | None = None,
        serial_port: str | None = None,
        baud: int = 115200,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        counts = np.asarray(counts)
        if counts.ndim != 1 or len(counts) == 0:
            raise ValueError("counts must be a non-empty 1-D array")
        if counts.min() < 0 or counts.max() > VALUE_MASK:
            raise ValueError(f"counts must lie within 0..{VALUE_MASK}")
        if not 1 <= new_per_frame <= window <= MAX_SAMPLES_PER_FRAME:
            raise ValueError("need 1 <= new_per_frame <= window <= 64")
        if not speed > 0 or not fs_hz > 0:
            raise ValueError("speed and fs_hz must be positive")
        self.counts = counts.astype(np.int64)
        self.fs_hz = float(fs_hz)
        self.faults = faults or Faults()
        self.leads_off = self._leads_off_flags(leads_off)
        self.adc_bits = adc_bits
        self.gain_counts_per_mv = gain_counts_per_mv
        self.baseline_counts = int(baseline_counts)
        self.speed = float(speed)
        self.text = text
        self.link_path = link_path
        self.new_per_frame = new_per_frame
        self.window = window
        self.announce_every = max(1, int(round(announce_every_s * fs_hz)))
        self.boot_s = boot_s
        self.wait_for_client = wait_for_client
        self.stop_event = stop_event or threading.Event()
        self._clock = clock
        self._rng = np.random.default_rng(seed)
        self.stats = SimulatorStats()
        self._outage_plan = self._outage_samples(len(self.counts))
        if serial_port is not None and self._outage_plan:
            raise ValueError("port outages need a pseudo-terminal, not a real port")
        self.port: PtyPort | SerialPortOut
        if serial_port is not None:
            self.port = SerialPortOut(serial_port, baud)
        else:
            self.port = PtyPort(link_path)
        self._thread: threading.Thread | None = None
        self._counter_base = 0  # record index whose board counter is 0
        self._next_announce = self.announce_every
        self.finished = threading.Event()
        self.started_mono_s: float | None = None  # clock time of record sample 0

    @classmethod
    def from_record(
        cls,
        path: str | Path,
        *,
        channel: int = 0,
        read_options: dict[str, Any] | None = None,
        start_minute: float = 0.0,
        minutes: float | None = None,
        **kwargs,
    ) -> BoardSimulator:
        """A simulator for one channel of a record, from ``start_minute``.

        NaN samples are sent as 0 with the leads-off flag (a board cannot
        send NaN). Counts outside 0 .. 4095 are shifted by the ADC zero when
        the header gives one. ``read_options`` are ``read_record``'s for CSV
        captures (``fs_hz``, ``gain_counts_per_mv``, ``baseline_counts``).

        Raises
        ------
        RecordNotFound, RecordFormatError, SampleRateError
            If the record cannot be read, is shorter than ``start_minute``,
            or its counts do not fit 12 bits.
        """
        from beatguard.device.records import read_record

        record = read_record(path, channel=channel, **(read_options or {}))
        first = int(round(start_minute * 60 * record.fs_hz))
        last = len(record.counts)
        if minutes is not None:
            last = min(last, first + int(round(minutes * 60 * record.fs_hz)))
        if first >= last:
            raise RecordFormatError(
                f"{path}: record lasts {record.duration_s / 60:.1f} min, "
                f"nothing to replay from minute {start_minute:g}"
            )
        counts = record.counts[first:last]
        missing = ~np.isfinite(counts)
        baseline = record.baseline_counts
        offset = _wire_offset(record, counts[~missing], path)
        wire = np.where(missing, 0, np.round(counts + offset)).astype(np.int64)
        flags = missing.copy()
        if record.leads_off is not None:
            flags |= record.leads_off[first:last]
        return cls(
            wire,
            record.fs_hz,
            adc_bits=record.adc_bits or 12,
            gain_counts_per_mv=record.gain_counts_per_mv,
            baseline_counts=int(round(baseline + offset)),
            leads_off=flags,
            **kwargs,
        )

    def encode_replay(self) -> bytes:
        """All bytes of a fault-free replay at once, without pacing.

        The same bytes the run writes when nothing goes wrong: the opening
        marker, the announce, then frames with periodic announces (or
        lines), then the end of the stream. Useful for files, decoder tests
        and benchmarks.
        """
        self._next_announce = self.announce_every
        body = self._encode_batch(0, len(self.counts))
        return self._marker() + self._announce(0) + body + self._end(len(self.counts))

    # Life cycle ----------------------------------------------------------------

    @property
    def path(self) -> str:
        """Where a client connects: the symlink if given, else the pty slave."""
        return self.port.path

    def start(self) -> BoardSimulator:
        """Run in a background thread; returns self."""
        self._thread = threading.Thread(target=self.run, name="board-simulator")
        self._thread.daemon = True
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the run and close the port (safe to call twice)."""
        self.stop_event.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)
        self.port.close()

    def join(self, timeout_s: float | None = None) -> bool:
        """Wait for the end of the record; True if the run has finished."""
        return self.finished.wait(timeout_s)

    def __enter__(self) -> BoardSimulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # The run -------------------------------------------------------------------

    def run(self) -> None:
        """Replay the whole record (blocking), then close the port."""
        try:
            self._run()
        finally:
            self.port.close()
            self.finished.set()
            s = self.stats
            log.info(
                "simulator done: %d samples sent, %d skipped, %d bytes "
                "(%d corrupted, %d dropped), %d outage(s), %d reset(s)",
                s.samples_sent,
                s.samples_skipped,
                s.bytes_written,
                s.bytes_corrupted,
                s.bytes_dropped,
                len(s.outages),
                len(s.resets),
            )

    def _run(self) -> None:
        if self.wait_for_client and not self._wait_for_client():
            return
        n = len(self.counts)
        outages = list(self._outage_plan)
        resets = self._reset_samples(n)
        rate = self.fs_hz * self.speed
        t0 = self._clock()
        self.started_mono_s = t0
        self._write(self._marker() + self._announce(0))
        next_k = 0
        self._next_announce = self.announce_every
        had_client = True
        while next_k < n and not self.stop_event.is_set():
            if outages and next_k >= outages[0]:
                outages.pop(0)
                next_k = self._outage(next_k, t0, rate)
                t0 = self.started_mono_s
                had_client = False
                continue
            if resets and next_k >= resets[0]:
                resets.pop(0)
                next_k = self._board_reset(next_k)
                self._next_announce = next_k + self.announce_every
                continue
            # Everything due by now, up to the next fault, in one write.
            limit = min([n, *outages[:1], *resets[:1]])
            due = min(limit, int((self._clock() - t0) * rate) + 1)
            end = min(limit, self._frame_end(next_k))
            if due < end:
                self._wait_until(t0 + (end - 1) / rate)
                continue
            end = max(end, min(limit, (due // self.new_per_frame) * self.new_per_frame))
            client = self.port.has_client()
            if client and not had_client:
                self._write(self._marker() + self._announce(next_k))
            had_client = client
            if client:
                self._write(self._encode_batch(next_k, end))
                self.stats.samples_sent += end - next_k
            else:
                self.stats.samples_skipped += end - next_k
            next_k = end
        if not self.stop_event.is_set():
            # Sent as is: the end is the simulator's word, not the line's.
            end = self._end(next_k - self._counter_base)
            self.stats.bytes_written += self.port.write(end, self.stop_event)
            self.port.drain(timeout_s=DRAIN_TIMEOUT_S, stop=self.stop_event)

    def _marker(self) -> bytes:
        """What ends the garbage a client may have seen before our data.

        Frames: a lone delimiter. Text: a line end, so the stream opens
        with a (here empty) fragment of a line, as when a host joins a
        free-running board mid-line; the text decoder drops that first line.
        """
        return b"\r\n" if self.text else b"\x00"

    def _end(self, next_counter: int) -> bytes:
        """The end of the stream: the end frame, or the ``EOT`` line.

        The end frame follows a lone delimiter, so that a last frame whose
        own delimiter was lost cannot swallow it.
        """
        if self.text:
            return END_LINE + b"\r\n"
        return bytes([DELIMITER]) + encode_end(next_counter)

    def _encode_batch(self, start: int, end: int) -> bytes:
        """Frames (or lines) for samples ``start .. end-1``, with announces."""
        if self.text:
            return self._encode(start, end)
        parts = []
        k = start
        while k < end:
            stop = min(end, self._frame_end(k))
            if self._next_announce <= k:
                parts.append(self._announce(k))
                self._next_announce += self.announce_every
            parts.append(self._encode(k, stop))
            k = stop
        return b"".join(parts)

    def _frame_end(self, k: int) -> int:
        step = self.new_per_frame
        return (k // step + 1) * step

    def _wait_until(self, deadline: float) -> None:
        delay = deadline - self._clock()
        if delay > 0:
            self.stop_event.wait(delay)

    def _wait_for_client(self) -> bool:
        log.info("simulator waiting for a client on %s", self.path)
        while not self.port.has_client():
            if self.stop_event.wait(0.02):
                return False
        return not self.stop_event.wait(self.boot_s)

    # Encoding ------------------------------------------------------------------

    def _announce(self, k: int) -> bytes:
        if self.text:
            return b""
        return encode_announce(
            Announce(
                fs_hz=self.fs_hz,
                adc_bits=self.adc_bits,
                gain_counts_per_mv=self.gain_counts_per_mv,
                baseline_counts=self.baseline_counts,
                firmware_version=FIRMWARE_VERSION,
                new_per_frame=self.new_per_frame,
                window=self.window,
                board_sample=k - self._counter_base,
            )
        )

    def _encode(self, start: int, end: int) -> bytes:
        if self.text:
            return b"".join(
                b"!\r\n" if self.leads_off[k] else b"%d\r\n" % self.counts[k]
                for k in range(start, end)
            )
        first = max(self._counter_base, end - self.window)
        lo = self.leads_off[first:end]
        self.stats.frames += 1
        return encode_frame(
            first - self._counter_base, self.counts[first:end].tolist(), lo, lo
        )

    def _write(self, data: bytes) -> None:
        if not data:
            return
        data = self._apply_faults(data)
        self.stats.bytes_written += self.port.write(data, self.stop_event)

    def _apply_faults(self, data: bytes) -> bytes:
        f = self.faults
        if not (f.corrupt_rate or f.drop_rate):
            return data
        arr = np.frombuffer(data, dtype=np.uint8).copy()
        if f.corrupt_rate:
            hit = self._rng.random(len(arr)) < f.corrupt_rate
            if hit.any():
                flip = self._rng.integers(1, 256, size=int(hit.sum()), dtype=np.uint8)
                arr[hit] ^= flip
                self.stats.bytes_corrupted += int(hit.sum())
        if f.drop_rate:
            keep = self._rng.random(len(arr)) >= f.drop_rate
            self.stats.bytes_dropped += int((~keep).sum())
            arr = arr[keep]
        return arr.tobytes()

    # Faults --------------------------------------------------------------------

    def _leads_off_flags(self, record_flags: NDArray[np.bool_] | None) -> NDArray:
        n = len(self.counts)
        flags = np.zeros(n, dtype=bool)
        if record_flags is not None:
            flags |= np.asarray(record_flags, dtype=bool)[:n]
        for start_s, duration_s in self.faults.leads_off:
            a = max(0, int(round(start_s * self.fs_hz)))
            b = min(n, int(round((start_s + duration_s) * self.fs_hz)))
            flags[a:b] = True
        return flags

    def _outage_samples(self, n: int) -> list[int]:
        """Record samples at which the port is unplugged.

        The board keeps sampling during an outage, so each one costs
        ``outage_s * fs_hz * speed`` samples; the outages are placed so
        that the streamed stretches between them are of equal length.

        Raises
        ------
        ValueError
            If the outages would leave less than a second between them.
        """
        f = self.faults
        lost = int(round(f.outage_s * self.fs_hz * self.speed)) + self.new_per_frame
        if f.outage_pauses_record:
            lost = 0
        if f.disconnect_every_s is not None:
            step = int(round(f.disconnect_every_s * self.fs_hz))
            return list(range(step, n, step + lost))
        count = f.disconnects
        segment = (n - count * lost) // (count + 1)
        if count and segment < self.fs_hz:
            raise ValueError(
                f"{count} outage(s) of {f.outage_s:g} s at {self.speed:g}x do not "
                f"fit a replay of {n / self.fs_hz:.0f} s"
            )
        return [(i + 1) * segment + i * lost for i in range(count)]

    def _reset_samples(self, n: int) -> list[int]:
        count = self.faults.board_resets
        return [n * (2 * i + 1) // (2 * count + 1) for i in range(count)]

    def _outage(self, k: int, t0: float, rate: float) -> int:
        """Unplug the port for ``outage_s``; return the next sample to send.

        The board keeps sampling meanwhile, so the samples due during the
        outage are lost; with ``Faults.outage_pauses_record`` the replay
        instead waits for a client on the new port and resumes where it
        stopped (``started_mono_s`` moves on by the pause), so only the
        bytes in flight are lost.
        """
        unplugged = self._clock()
        log.info("simulator: port unplugged at record sample %d", k)
        self.port.close()
        self.stop_event.wait(self.faults.outage_s)
        self.port = PtyPort(self.link_path)
        plugged = self._clock()
        self.stats.outages.append((unplugged, plugged, self.port.slave_path))
        log.info("simulator: port back as %s", self.port.slave_path)
        if self.faults.outage_pauses_record:
            while not self.port.has_client() and not self.stop_event.wait(0.02):
                pass
            self.stop_event.wait(0.1)  # let the client's open flush its input
            self.started_mono_s = t0 + (self._clock() - unplugged)
            return k
        resume = min(len(self.counts), int((plugged - t0) * rate) + 1)
        resume = max(k, self._frame_end(resume - 1) - self.new_per_frame)
        self.stats.samples_skipped += resume - k
        return resume

    def _board_reset(self, k: int) -> int:
        """Reboot: boot text, samples lost while booting, counter from zero."""
        self.stats.resets.append((self._clock(), k))
        log.info("simulator: board reset at record sample %d", k)
        self._write(BOOT_TEXT)
        boot = int(round(self.faults.reset_boot_s * self.fs_hz))
        resume = min(len(self.counts), k + boot)
        self.stats.samples_skipped += resume - k
        self._counter_base = resume
        self._write(self._marker() + self._announce(resume))
        return resume


def _wire_offset(record, counts: NDArray, path: str | Path) -> float:
    """Counts to add so the record fits the 12-bit wire values."""
    if len(counts) == 0:
        return 0.0
    low, high = float(np.min(counts)), float(np.max(counts))
    if low >= 0 and high <= VALUE_MASK:
        return 0.0
    zero = record.adc_zero_counts if record.adc_zero_counts is not None else 0.0
    bits = min(record.adc_bits or 12, 12)
    offset = (1 << (bits - 1)) - zero
    if low + offset < 0 or high + offset > VALUE_MASK:
        raise RecordFormatError(
            f"{path}: counts span {low:g}..{high:g}, which does not fit the "
            "12-bit values of the wire protocol"
        )
    return offset
