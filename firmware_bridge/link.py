"""The serial link to a board: a reader thread that owns the port.

:class:`SerialLink` opens a port with pyserial (``serial_for_url``, so
``/dev/ttyACM0``, ``loop://`` and ``socket://host:port`` all work), decodes
what arrives with :class:`~beatguard.firmware_bridge.protocol.FrameDecoder`
(or :class:`~beatguard.firmware_bridge.textmode.TextDecoder` when the user
gives a text-mode sample rate) and hands out
:class:`~beatguard.device.types.SampleChunk` and
:class:`~beatguard.device.types.LinkEvent` objects through :meth:`get`.

What it does when things go wrong, each with one log line:

* **Port not there at start** (board unplugged, wrong name): with
  ``reconnect`` it logs once and keeps looking (every 0.1 s at first, then
  at most every ``retry_max_s``), and gives up with ``PortNotFound`` after
  ``open_timeout_s`` if one is set; without ``reconnect`` it raises
  ``PortNotFound`` from :meth:`open`.
* **Port held by another process** (the link locks the port exclusively
  where pyserial supports it, so a second reader fails instead of stealing
  bytes): :meth:`open` raises ``PortBusy``. If it happens while reopening
  after a loss, the link logs it once and keeps trying.
* **Port vanished** (USB unplugged, simulator outage): a ``DISCONNECTED``
  event, then reopening with the same back-off; on success a
  ``RECONNECTED`` event and, before the next chunk, a ``GAP``. The gap is
  first estimated from wall-clock time (seconds since the last byte times
  the sample rate) and then made exact by the next frame's sequence
  counter when the board kept counting (see ``FrameDecoder.mark_outage``);
  in text mode it stays an estimate. Without ``reconnect`` the reader
  stops instead, and :meth:`get` raises ``PortLost`` once every item
  before the loss has been taken.
* **End of a replay** (the board simulator's end frame, or its ``EOT``
  line in text mode): an ``END_OF_STREAM`` event. Without ``reconnect``
  the link then closes the port and stops, and :meth:`get` returns None
  once every item has been taken; with it, the port closing next is
  handled like any loss (the link waits for it to come back). A real
  board never ends its stream.
* **Board reset** (boot text, then a new announce): the decoder emits
  ``BOARD_RESET`` and an estimated ``GAP``; the link logs the boot text.
* **Permission denied** and other open errors: :meth:`open` raises
  ``LinkError`` naming the port and the reason.

Corrupt frames and lost samples are counted by the decoder (``stats``) and
logged here as a summary at most every ``summary_every_s`` seconds.
"""

from __future__ import annotations

import errno
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import serial

from beatguard.device.errors import LinkError, PortBusy, PortLost, PortNotFound
from beatguard.device.types import LinkEvent, LinkEventKind, SampleChunk
from beatguard.firmware_bridge.protocol import Announce, FrameDecoder
from beatguard.firmware_bridge.textmode import TextDecoder

log = logging.getLogger(__name__)

_NOT_FOUND = {errno.ENOENT, errno.ENODEV, errno.ENXIO, errno.EIO}
_BUSY = {errno.EBUSY, errno.EAGAIN, errno.EWOULDBLOCK}
_DENIED = {errno.EACCES, errno.EPERM}

Item = SampleChunk | LinkEvent


class SerialLink:
    """A board's stream on a serial port, read by a background thread.

    Parameters
    ----------
    url_or_path : str
        Port device (``/dev/ttyACM0``, a pty or a udev symlink) or a pyserial
        URL (``loop://``, ``socket://host:port``).
    baud : int
        Line speed in bits per second (the firmware uses 115200).
    text_fs_hz : float, optional
        Read the plain text stream of the AD8232 example sketches at this
        sample rate instead of beatguard frames.
    reconnect : bool
        Wait for a missing port and reopen a vanished one; when False, a
        missing port raises and a vanished one ends the stream with
        ``PortLost``.
    stop_event : threading.Event, optional
        Stops the reader when set (as does :meth:`close`).
    open_timeout_s : float, optional
        With ``reconnect``, give up when the port has not appeared this long
        after :meth:`open`; None waits for ever.
    retry_min_s, retry_max_s : float
        First and longest wait between attempts to open the port, seconds.
    summary_every_s : float
        Shortest interval between two log lines about corrupt frames and
        lost samples.
    port_factory : callable, optional
        Makes an unopened pyserial port from ``(url, baudrate, timeout)``;
        ``serial.serial_for_url`` by default.
    clock : callable, optional
        Monotonic clock in seconds (for the wall-clock gap estimate).

    Examples
    --------
    >>> with SerialLink("/dev/ttyACM0") as link:          # doctest: +SKIP
    ...     item = link.get(timeout_s=0.5)
    """

    def __init__(
        self,
        url_or_path: str,
        baud: int = 115200,
        text_fs_hz: float | None = None,
        reconnect: bool = True,
        stop_event: threading.Event | None = None,
        *,
        open_timeout_s: float | None = None,
        retry_min_s: float = 0.1,
        retry_max_s: float = 1.0,
        summary_every_s: float = 10.0,
        port_factory: Callable[..., Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = str(url_or_path)
        self.baud = int(baud)
        self.text_fs_hz = text_fs_hz
        self.reconnect = reconnect
        self.open_timeout_s = open_timeout_s
        self.retry_min_s = retry_min_s
        self.retry_max_s = retry_max_s
        self.summary_every_s = summary_every_s
        self._factory = port_factory or serial.serial_for_url
        self._clock = clock
        self._external_stop = stop_event
        self._stop = threading.Event()
        self._queue: queue.SimpleQueue[Item] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._port: Any = None
        self._running = False
        self.error: LinkError | None = None
        self.connected = False
        self.decoder: FrameDecoder | TextDecoder
        if text_fs_hz is not None:
            self.decoder = TextDecoder(text_fs_hz)
        else:
            self.decoder = FrameDecoder(clock=clock)

    # Properties the runtime reads --------------------------------------------

    @property
    def announce(self) -> Announce | None:
        """The board's latest announce (None in text mode or before it)."""
        return getattr(self.decoder, "announce", None)

    @property
    def fs_hz(self) -> float | None:
        """Sample rate in hertz: the text-mode rate or the announced one."""
        if self.text_fs_hz is not None:
            return float(self.text_fs_hz)
        return self.announce.fs_hz if self.announce else None

    @property
    def adc_bits(self) -> int | None:
        """ADC resolution from the announce (None in text mode or before it)."""
        return self.announce.adc_bits if self.announce else None

    @property
    def gain_counts_per_mv(self) -> float | None:
        """Announced counts per millivolt (None if unknown or announced as 0)."""
        if self.announce is None or not self.announce.gain_counts_per_mv:
            return None
        return self.announce.gain_counts_per_mv

    @property
    def baseline_counts(self) -> int | None:
        """Announced ADC count of 0 mV (None in text mode or before it)."""
        return self.announce.baseline_counts if self.announce else None

    @property
    def firmware_version(self) -> str | None:
        """Announced firmware version (None in text mode or before it)."""
        return self.announce.firmware_version if self.announce else None

    @property
    def stats(self):
        """The decoder's running counts (``DecoderStats`` or ``TextStats``)."""
        return self.decoder.stats

    @property
    def running(self) -> bool:
        """True while the reader thread is alive."""
        return self._running

    # Life cycle ---------------------------------------------------------------

    def open(self) -> SerialLink:
        """Try the port once, then start the reader thread.

        Raises
        ------
        PortBusy
            If another process holds the port.
        PortNotFound
            If the port does not exist and ``reconnect`` is False.
        LinkError
            If the port cannot be opened for another reason (permission)
            and waiting would not help.
        """
        if self._thread is not None:
            return self
        self._last_data_t = self._clock()
        self._lost_t: float | None = None
        self._wait_started = self._clock()
        self._next_summary = self._clock() + self.summary_every_s
        self._summary_seen = (0, 0)
        self._delay_s = self.retry_min_s
        self._reported: str | None = None
        self._text_hint_done = False
        try:
            self._port = self._open_port()
            self.connected = True
            log.info("%s: opened at %d baud", self.url, self.baud)
        except PortNotFound as err:
            if not self.reconnect:
                raise
            self._reported = type(err).__name__
            log.warning("%s; waiting for it to appear", err)
            self._put_event(LinkEventKind.PORT_ERROR, f"{err}; waiting for it")
        self._running = True
        self._thread = threading.Thread(
            target=self._run, name=f"serial-link {self.url}", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop the reader and close the port (safe to call twice)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)
        self._close_port()

    def __enter__(self) -> SerialLink:
        return self.open()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def get(self, timeout_s: float = 0.5) -> Item | None:
        """Next chunk or event, or None when nothing came within ``timeout_s``.

        Raises
        ------
        LinkError
            Once the reader has stopped for good because of an error (the
            port never appeared within ``open_timeout_s``; ``PortLost``: it
            vanished without ``reconnect``) and every item before it has
            been taken.
        """
        try:
            return self._queue.get(timeout=timeout_s if self._running else 0.0)
        except queue.Empty:
            if not self._running and self.error is not None:
                raise self.error from None
            return None

    # Reader thread ------------------------------------------------------------

    def _stopping(self) -> bool:
        external = self._external_stop is not None and self._external_stop.is_set()
        return self._stop.is_set() or external

    def _wait(self, seconds: float) -> None:
        if self._external_stop is not None:
            deadline = self._clock() + seconds
            while not self._stopping() and self._clock() < deadline:
                self._stop.wait(min(0.05, seconds))
        else:
            self._stop.wait(seconds)

    def _run(self) -> None:
        try:
            while not self._stopping():
                if self._port is None:
                    if not self._reopen():
                        break
                    continue
                self._read_once()
        except Exception as err:  # keep the runtime informed, never die silently
            log.exception("%s: reader stopped by an unexpected error", self.url)
            self.error = LinkError(f"{self.url}: reader stopped: {err}")
        finally:
            self._close_port()
            for item in self.decoder.flush():
                self._queue.put(item)
            self._running = False

    def _read_once(self) -> None:
        try:
            waiting = self._port.in_waiting
            data = self._port.read(max(1, waiting))
        except (serial.SerialException, OSError) as err:
            self._on_lost(err)
            return
        if data:
            self._last_data_t = self._clock()
            for item in self.decoder.feed(data):
                self._on_item(item)
                self._queue.put(item)
                if _is_end(item) and not self.reconnect:
                    self._stop.set()  # the replay is complete: close the port
                    return
            self._maybe_hint_mode()
        self._maybe_summarize()

    def _on_lost(self, err: Exception) -> None:
        self._close_port()
        self._lost_t = self._clock()
        for item in self.decoder.flush():
            self._queue.put(item)
        why = str(err).splitlines()[0] if str(err) else type(err).__name__
        if self.reconnect:
            log.warning("%s: port lost (%s); reopening", self.url, why)
        else:
            # Not logged here: get() raises it and the caller says it once.
            self.error = PortLost(
                f"{self.url}: port lost before the end of the stream ({why})"
            )
            self._stop.set()
        self._put_event(LinkEventKind.DISCONNECTED, f"{self.url}: port lost ({why})")
        self._delay_s = self.retry_min_s
        self._wait_started = self._clock()

    def _reopen(self) -> bool:
        """One attempt to open the port; False when the reader should stop."""
        try:
            port = self._open_port()
        except LinkError as err:
            return self._on_open_failed(err)
        self._port = port
        self.connected = True
        self._reported = None
        self._delay_s = self.retry_min_s
        if self._lost_t is None:
            log.info("%s: opened at %d baud", self.url, self.baud)
            return True
        now = self._clock()
        outage_s = now - self._lost_t
        fs_hz = self.fs_hz or 0.0
        estimate = int(round((now - self._last_data_t) * fs_hz))
        self.decoder.mark_outage(estimate)
        log.info("%s: reopened after %.2f s", self.url, outage_s)
        self._put_event(
            LinkEventKind.RECONNECTED,
            f"{self.url}: reopened after {outage_s:.2f} s",
            details={"outage_s": outage_s, "estimated_lost_samples": estimate},
        )
        self._lost_t = None
        return True

    def _on_open_failed(self, err: LinkError) -> bool:
        waited_s = self._clock() - self._wait_started
        first_open = self._lost_t is None
        if (
            first_open
            and self.open_timeout_s is not None
            and waited_s >= self.open_timeout_s
        ):
            # Not logged here: get() raises it and the caller says it once.
            self.error = type(err)(
                f"{err}; gave up after waiting {self.open_timeout_s:g} s"
            )
            self._put_event(LinkEventKind.PORT_ERROR, str(self.error))
            return False
        condition = type(err).__name__
        if self._reported != condition:
            self._reported = condition
            log.warning("%s; retrying until it can be opened", err)
            self._put_event(LinkEventKind.PORT_ERROR, f"{err}; retrying")
        else:
            log.debug("%s", err)
        self._wait(self._delay_s)
        self._delay_s = min(self.retry_max_s, self._delay_s * 2)
        return True

    def _open_port(self) -> Any:
        """Open the port exclusively; raise a LinkError saying why not."""
        try:
            port = self._factory(
                self.url, baudrate=self.baud, timeout=0.05, do_not_open=True
            )
            try:
                port.exclusive = True
            except (AttributeError, ValueError):
                log.debug("%s: exclusive access not supported", self.url)
            port.open()
        except (serial.SerialException, OSError, ValueError) as err:
            raise classify_open_error(self.url, err) from err
        return port

    def _close_port(self) -> None:
        port, self._port = self._port, None
        self.connected = False
        if port is None:
            return
        try:
            port.close()
        except (serial.SerialException, OSError) as err:
            log.debug("%s: error while closing: %s", self.url, err)

    # Logging --------------------------------------------------------------------

    def _put_event(
        self, kind: LinkEventKind, message: str, details: dict | None = None
    ) -> None:
        self._queue.put(
            LinkEvent(
                kind,
                message,
                at_sample=self.decoder.next_sample,
                details=details or {},
            )
        )

    def _on_item(self, item: Item) -> None:
        if isinstance(item, SampleChunk):
            return
        if item.kind in (LinkEventKind.ANNOUNCE, LinkEventKind.END_OF_STREAM):
            log.info("%s: %s", self.url, item.message)
        elif item.kind is LinkEventKind.BOARD_RESET:
            log.warning("%s: %s", self.url, item.message)
        elif item.kind is LinkEventKind.GAP and item.details.get("reason") != (
            "sequence counter jumped"
        ):
            log.info("%s: %s", self.url, item.message)
        else:
            log.debug("%s: %s", self.url, item.message)

    def _maybe_summarize(self) -> None:
        now = self._clock()
        if now < self._next_summary:
            return
        self._next_summary = now + self.summary_every_s
        stats = self.decoder.stats
        corrupt = getattr(stats, "corrupt_frames", getattr(stats, "bad_lines", 0))
        seen = (corrupt, stats.lost_samples)
        if seen != self._summary_seen:
            self._summary_seen = seen
            log.warning(
                "%s: so far %d corrupt frame(s) or line(s), %d sample(s) lost",
                self.url,
                corrupt,
                stats.lost_samples,
            )

    def _maybe_hint_mode(self) -> None:
        """Say once when the board's bytes look like the other link mode."""
        stats = self.decoder.stats
        if self._text_hint_done:
            return
        if isinstance(self.decoder, FrameDecoder):
            if stats.frames_ok or stats.text_bytes < 1000:
                return
            message = (
                "the board sends text, not beatguard frames; if it runs a plain "
                "AD8232 sketch, give its sample rate to read text mode "
                "(beatguard run --text-fs-hz HZ, or text_fs_hz in [link])"
            )
        else:
            if stats.bad_lines < 20 or stats.bad_lines <= stats.samples:
                return
            message = (
                f"{stats.bad_lines} lines are not numbers and {stats.samples} are; "
                "if the board runs the beatguard firmware it sends frames, not "
                "text: leave out --text-fs-hz (text_fs_hz in [link])"
            )
        self._text_hint_done = True
        log.warning("%s: %s", self.url, message)


def _is_end(item: Item) -> bool:
    return isinstance(item, LinkEvent) and item.kind is LinkEventKind.END_OF_STREAM


def classify_open_error(url: str, err: BaseException) -> LinkError:
    """Turn a pyserial/OS error from opening ``url`` into a LinkError leaf."""
    code = getattr(err, "errno", None)
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    if code in _BUSY or "lock" in text.lower():
        return PortBusy(f"{url}: port is busy (another process holds it)")
    if code in _NOT_FOUND:
        return PortNotFound(f"{url}: port not found")
    if code in _DENIED:
        return LinkError(
            f"{url}: permission denied (is the user in the 'dialout' group?)"
        )
    return PortNotFound(f"{url}: cannot open ({text})")
