"""The device runtime loop: samples in, scored beats, alerts and log rows out.

``Runtime`` consumes a *source*: any object with ``get(timeout_s)`` that
returns ``SampleChunk``, ``LinkEvent`` or None (nothing yet), such as the
serial link of ``beatguard.firmware_bridge`` (whose reader thread owns the
port) or a record replayed in-process. The loop

1. builds the signal chain when the board announces itself (sample rate,
   ADC bits, gain, baseline) on top of the model's own chain settings,
2. feeds each chunk to the chain, scores the beats it completes with the
   int8 scorer, and hands beats, quality changes and link events to the
   alert policy and the sinks (event log, buzzer, recorder, callbacks),
3. commits the event log once per pass that produced rows (a pass takes
   in every chunk already queued), so a beat's row is durable a few
   milliseconds after its last sample arrived,
4. treats a gap in the stream (samples lost, port reconnected, board
   reset) as the end of one stretch of signal: beats whose windows were
   complete are scored, the chain and the policy are reset, and no beat
   straddles the gap.

The chain only emits beats whose windows are free of quality flags, so
nothing is scored while the leads are off or the signal is unusable; the
policy is told of every quality change and says nothing meanwhile.

``stop_event`` ends the loop cleanly (the command sets it on SIGINT and
SIGTERM); so does a source whose ``running`` attribute turns False once it
has nothing more to give (the end of a replay), as "end of stream". A
source whose ``get`` raises ``LinkError`` once it has given everything (the
link, when the port vanishes without reconnection) ends the loop too, as
"port lost", and the summary's ``problems`` say why.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from beatguard.device.alerts import Alert, AlertPolicy, AlertSettings
from beatguard.device.chain import ChainConfig, SignalChain
from beatguard.device.console import Status
from beatguard.device.errors import ConfigError, LinkError, PortLost
from beatguard.device.eventlog import EventLog
from beatguard.device.recorder import (
    LABEL_ANOMALOUS,
    LABEL_NORMAL,
    StreamRecorder,
)
from beatguard.device.types import (
    Beat,
    LinkEvent,
    LinkEventKind,
    Quality,
    QualityEvent,
    SampleChunk,
)

logger = logging.getLogger(__name__)

#: Link events after which the stream does not continue where it left off.
GAP_KINDS = frozenset(
    {
        LinkEventKind.GAP,
        LinkEventKind.DISCONNECTED,
        LinkEventKind.RECONNECTED,
        LinkEventKind.BOARD_RESET,
    }
)

#: Seconds the chain's detector needs after a reset before it reports beats.
RELEARN_S = 2.0

#: Announce fields that describe the board's front end. ``adc_zero_counts``
#: (a signed converter's zero) comes only from replayed records: a board's
#: wire values are unsigned, with rails at 0 and ``2**adc_bits - 1``.
FRONT_END_KEYS = (
    "fs_hz",
    "adc_bits",
    "gain_counts_per_mv",
    "baseline_counts",
    "adc_zero_counts",
)


class Source(Protocol):
    """Where samples come from (the serial link, or a replayed record)."""

    def get(self, timeout_s: float) -> SampleChunk | LinkEvent | None: ...


class BeatScorer(Protocol):
    """The int8 model, as the runtime uses it."""

    threshold: float

    def score_beats(self, beats: Sequence[Beat]) -> NDArray[np.float64]: ...

    def is_anomalous(self, scores: NDArray[np.float64]) -> NDArray[np.bool_]: ...


@dataclass
class RunSummary:
    """What a session did, for the command's closing lines.

    Attributes
    ----------
    beats, anomalous_beats, alerts : int
    samples : int
        Stream samples processed.
    gaps : int
        Times the stream restarted (samples lost, reconnections, resets).
    corrupt_frames, lost_samples : int
        Totals from the link events.
    end_reason : str
    alert_kinds : dict
        Alerts raised per kind.
    problems : list of str
        What went wrong that the user must be told at the end (the port was
        lost, ...), one line each; empty after a clean session.
    """

    beats: int = 0
    anomalous_beats: int = 0
    alerts: int = 0
    samples: int = 0
    gaps: int = 0
    corrupt_frames: int = 0
    lost_samples: int = 0
    end_reason: str = ""
    alert_kinds: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


class Runtime:
    """Runs the chain, the scorer, the alert policy and the sinks on a source.

    Parameters
    ----------
    source : Source
        Gives ``SampleChunk`` / ``LinkEvent`` items in stream order.
    scorer : BeatScorer
        Scores beats; ``is_anomalous`` applies the model's threshold.
    chain_config : ChainConfig
        The chain settings the model was trained with (window, filters,
        normalization). Sample rate, ADC bits, gain and baseline are taken
        from the board's announce, or from ``front_end`` when the source
        does not announce itself (plain-text sketches).
    alert_settings : AlertSettings, optional
    event_log : EventLog, optional
        Receives every beat, alert, link event and quality change.
    buzzer : object with ``sound(alert)``, optional
    recorder_factory : callable, optional
        ``(fs_hz, gain_counts_per_mv, baseline_counts, adc_bits,
        first_sample) -> StreamRecorder``; called once the front end is
        known, to keep the raw stream and beat labels as WFDB.
    stop_event : threading.Event, optional
        Set it to end ``run`` cleanly.
    front_end : dict, optional
        ``fs_hz``, ``adc_bits``, ``gain_counts_per_mv``, ``baseline_counts``
        for a source that sends samples without an announce.
    on_alert : callable, optional
        ``(alert) -> None``, called as each alert is raised.
    on_status : callable, optional
        ``(Status) -> None``, called every ``status_interval_s`` seconds.
    on_committed : callable, optional
        ``(beats, mono_s) -> None`` after beat rows were committed, with the
        monotonic time the commit returned (latency measurements).
    poll_s : float
        How long one ``source.get`` waits for an item.
    max_batch_samples : int
        Most samples merged from chunks that queued up while the loop was
        busy (see ``_next_item``); large enough that after a stall (a slow
        fsync, a busy CPU) one pass and one commit take in what queued.
    clock : callable
        Monotonic clock in seconds (status timing).
    """

    def __init__(
        self,
        source: Source,
        scorer: BeatScorer,
        chain_config: ChainConfig,
        alert_settings: AlertSettings | None = None,
        event_log: EventLog | None = None,
        buzzer: Any = None,
        recorder_factory: Callable[..., StreamRecorder] | None = None,
        stop_event: threading.Event | None = None,
        front_end: dict | None = None,
        on_alert: Callable[[Alert], None] | None = None,
        on_status: Callable[[Status], None] | None = None,
        status_interval_s: float = 1.0,
        on_committed: Callable[[list[Beat], float], None] | None = None,
        poll_s: float = 0.2,
        max_batch_samples: int = 8192,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self.scorer = scorer
        self.model_chain_config = chain_config
        self.alert_settings = alert_settings or AlertSettings()
        self.event_log = event_log
        self.buzzer = buzzer
        self.recorder_factory = recorder_factory
        self.recorder: StreamRecorder | None = None
        self.stop_event = stop_event or threading.Event()
        self.front_end = dict(front_end or {})
        self.on_alert = on_alert
        self.on_status = on_status
        self.status_interval_s = float(status_interval_s)
        self.on_committed = on_committed
        self.poll_s = float(poll_s)
        self.max_batch_samples = int(max_batch_samples)
        self.clock = clock
        self.chain: SignalChain | None = None
        self.policy: AlertPolicy | None = None
        self.status = Status()
        self.summary = RunSummary()
        self._next_sample: int | None = None  # stream index expected next
        self._gap = False
        self._leads_off = False
        self._uncommitted_beats: list[Beat] = []
        self._held: SampleChunk | LinkEvent | None = None
        self._status_due = clock()

    # The loop ---------------------------------------------------------------

    def run(self) -> RunSummary:
        """Process items until ``stop_event`` is set or the source finishes.

        Returns
        -------
        RunSummary
        """
        reason = "stopped"
        try:
            reason = self._loop()
        except LinkError as err:
            reason = "port lost" if isinstance(err, PortLost) else "link error"
            self.summary.problems.append(str(err))
        finally:
            self._finish(reason)
        return self.summary

    def _loop(self) -> str:
        """Take items until stopped or the source has finished; say which."""
        while not self.stop_event.is_set():
            # Asked before get(): a source that had stopped by then has
            # handed out its last item (or raised its error) in that get.
            finished = not getattr(self.source, "running", True)
            item = self._next_item()
            if item is None:
                if finished:
                    return "end of stream"
            elif isinstance(item, LinkEvent):
                self._on_link_event(item)
            else:
                self._on_chunk(item)
            self._commit()
            self._maybe_status()
        return "stopped"

    def _next_item(self) -> SampleChunk | LinkEvent | None:
        """The next item; chunks already waiting back to back are merged.

        When the loop falls behind (a slow commit, a busy CPU), the chunks
        queued meanwhile are fed to the chain as one, which costs far less
        than one call each and so catches up quickly; the chain gives the
        same beats for any chunking.
        """
        item, self._held = self._held, None
        if item is None:
            item = self.source.get(timeout_s=self.poll_s)
        if not isinstance(item, SampleChunk):
            return item
        parts = [item]
        size = len(item)
        while size < self.max_batch_samples:
            try:
                more = self.source.get(timeout_s=0.0)
            except LinkError:
                break  # these samples first; the link raises it again next time
            if more is None:
                break
            last = parts[-1]
            if not (
                isinstance(more, SampleChunk)
                and more.first_sample == last.first_sample + len(last)
            ):
                self._held = more
                break
            parts.append(more)
            size += len(more)
        if len(parts) == 1:
            return item
        return SampleChunk(
            np.concatenate([p.counts for p in parts]),
            np.concatenate([p.leads_off for p in parts]),
            item.first_sample,
        )

    def _finish(self, reason: str) -> None:
        if self.chain is not None:
            self._handle_beats(self.chain.finish().beats)
        self._commit()
        if self.recorder is not None:
            self.recorder.close()
            if self.recorder.failure:
                self.summary.problems.append(self.recorder.failure)
        self.summary.end_reason = reason
        self.status.link = "stopped"
        if self.on_status is not None:
            self.on_status(self.status)
        logger.info(
            "session ended (%s): %d beats, %d abnormal, %d alerts",
            reason,
            self.summary.beats,
            self.summary.anomalous_beats,
            self.summary.alerts,
        )

    # Link events ------------------------------------------------------------

    def _on_link_event(self, event: LinkEvent) -> None:
        s = self.summary
        s.corrupt_frames += event.corrupt_frames
        s.lost_samples += event.lost_samples
        if self.event_log is not None:
            self.event_log.add_link_event(
                event.kind.value,
                event.at_sample,
                event.message,
                event.lost_samples,
                event.corrupt_frames,
                event.details,
            )
        # the link logs its own events (rate-limited); here they go to the log
        logger.debug("link: %s", event.message)
        if event.kind is LinkEventKind.ANNOUNCE:
            self._on_announce(event.details)
        if event.kind in GAP_KINDS:
            self._gap = True
        self.status.link = {
            LinkEventKind.DISCONNECTED: "disconnected, reopening",
            LinkEventKind.PORT_ERROR: "port unavailable",
            LinkEventKind.END_OF_STREAM: "stream ended",
        }.get(event.kind, "ok")

    def _on_announce(self, details: dict) -> None:
        front_end = {k: details[k] for k in FRONT_END_KEYS if k in details}
        if "fs_hz" not in front_end:
            logger.warning("announce without a sample rate ignored: %s", details)
            return
        if self.chain is not None and front_end == self.front_end:
            return
        if self.chain is not None:
            logger.warning("the board changed its front end: %s", front_end)
            self._gap = True
        self.front_end.update(front_end)
        self._build_chain()

    def _build_chain(self) -> None:
        fe = self.front_end
        model = self.model_chain_config
        try:
            config = dataclasses.replace(
                model,
                fs_hz=float(fe["fs_hz"]),
                adc_bits=int(fe.get("adc_bits", model.adc_bits)),
                gain_counts_per_mv=float(
                    fe.get("gain_counts_per_mv", model.gain_counts_per_mv)
                ),
                baseline_counts=float(fe.get("baseline_counts", model.baseline_counts)),
                adc_zero_counts=fe.get("adc_zero_counts"),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise ConfigError(f"board front end {fe} unusable: {err}") from err
        self.chain = SignalChain(config)
        next_sample = self._next_sample or 0
        self.chain.reset(next_sample=next_sample)
        self.policy = AlertPolicy(
            config.fs_hz,
            self.alert_settings,
            detection_delay_s=self.chain.delay_s,
            warmup_s=RELEARN_S,
        )
        self.policy.reset(next_sample)
        if self.event_log is not None:
            self.event_log.update_session(fs_hz=config.fs_hz)
        if self.recorder is None and self.recorder_factory is not None:
            self.recorder = self.recorder_factory(
                fs_hz=config.fs_hz,
                gain_counts_per_mv=config.gain_counts_per_mv,
                baseline_counts=config.baseline_counts,
                adc_bits=config.adc_bits,
                first_sample=next_sample,
            )
        logger.info(
            "signal chain at %g Hz, %d-bit ADC, %g counts/mV; look-ahead %.2f s",
            config.fs_hz,
            config.adc_bits,
            config.gain_counts_per_mv,
            self.chain.delay_s,
        )

    # Samples ----------------------------------------------------------------

    def _on_chunk(self, chunk: SampleChunk) -> None:
        if self.chain is None:
            if "fs_hz" not in self.front_end:
                fs_hz = getattr(self.source, "fs_hz", None)
                if fs_hz is None:
                    logger.warning(
                        "samples before the board announced its sample rate; "
                        "dropped %d",
                        len(chunk),
                    )
                    return
                self.front_end["fs_hz"] = fs_hz
            self._next_sample = chunk.first_sample
            self._build_chain()
        if self._next_sample is None:  # the first samples since the announce
            self.chain.reset(next_sample=chunk.first_sample)
            self.policy.reset(chunk.first_sample)
            self._gap = False
        elif self._gap or chunk.first_sample != self._next_sample:
            self._restart_at(chunk.first_sample)
        self._next_sample = chunk.first_sample + len(chunk)
        if self.recorder is not None:
            self.recorder.add_chunk(chunk)
        out = self.chain.process(chunk.counts, chunk.leads_off)
        for event in out.quality_events:
            self._on_quality(event)
        self._handle_beats(out.beats)
        last = self._next_sample - 1
        self.summary.samples += len(chunk)
        self.status.elapsed_s = self._next_sample / self.chain.config.fs_hz
        for alert in self.policy.tick(last):
            self._on_alert(alert)

    def _restart_at(self, first_sample: int) -> None:
        """A gap: finish what is complete, forget the rest, start again."""
        before = self._next_sample
        finished = self.chain.finish().beats
        self._handle_beats(finished)
        self.chain.reset(next_sample=first_sample)
        self.policy.reset(first_sample)
        self.policy.on_quality(first_sample, Quality.GOOD)
        self._gap = False
        self.summary.gaps += 1
        logger.info(
            "stream restarts at sample %d (was expecting %s); chain reset",
            first_sample,
            before,
        )

    def _on_quality(self, event: QualityEvent) -> None:
        self.policy.on_quality(event.sample, event.quality)
        self.status.quality = event.quality
        if self.event_log is not None:
            self.event_log.add_quality_event(
                event.sample, int(event.quality), event.quality.describe()
            )
        leads_off = bool(event.quality & Quality.LEADS_OFF)
        if leads_off and not self._leads_off:
            logger.warning("leads off at sample %d: check the electrodes", event.sample)
        elif self._leads_off and not leads_off:
            logger.info("leads back on at sample %d", event.sample)
        self._leads_off = leads_off

    # Beats --------------------------------------------------------------------

    def _handle_beats(self, beats: list[Beat]) -> None:
        if not beats:
            return
        scores = np.asarray(self.scorer.score_beats(beats), dtype=np.float64)
        labels = np.asarray(self.scorer.is_anomalous(scores), dtype=bool)
        for beat, score, anomalous in zip(beats, scores, labels, strict=True):
            self._on_beat(beat, float(score), bool(anomalous))

    def _on_beat(self, beat: Beat, score: float, anomalous: bool) -> None:
        s = self.summary
        s.beats += 1
        s.anomalous_beats += anomalous
        self.status.beats = s.beats
        self.status.scored_beats = s.beats
        self.status.anomalous_beats = s.anomalous_beats
        if self.event_log is not None:
            self.event_log.add_beat(
                beat.sample,
                score,
                anomalous,
                int(self.policy.quality),
                beat.rr_before_s,
                beat.rr_avg_s,
                beat.emitted_at_sample,
            )
            self._uncommitted_beats.append(beat)
        if self.recorder is not None:
            self.recorder.add_beat(
                beat.sample, LABEL_ANOMALOUS if anomalous else LABEL_NORMAL
            )
        for alert in self.policy.on_beat(beat, anomalous):
            self._on_alert(alert)
        self.status.hr_bpm = self.policy.hr_bpm
        if math.isnan(self.status.hr_bpm) and beat.rr_avg_s == beat.rr_avg_s:
            self.status.hr_bpm = 60.0 / beat.rr_avg_s

    def _on_alert(self, alert: Alert) -> None:
        s = self.summary
        s.alerts += 1
        s.alert_kinds[alert.kind.value] = s.alert_kinds.get(alert.kind.value, 0) + 1
        self.status.alerts = s.alerts
        self.status.last_alert = alert.message
        # Said once: by whoever on_alert hands it to (a console), else here.
        logger.log(
            logging.INFO if self.on_alert is not None else logging.WARNING,
            "ALERT at sample %d: %s",
            alert.sample,
            alert.message,
        )
        if self.event_log is not None:
            self.event_log.add_alert(
                alert.kind.value, alert.sample, alert.message, alert.details
            )
        if self.buzzer is not None:
            self.buzzer.sound(alert)
        if self.on_alert is not None:
            self.on_alert(alert)

    # Sinks ----------------------------------------------------------------------

    def _commit(self) -> None:
        if self.event_log is None or not self.event_log.pending_rows:
            return
        if self.event_log.commit() and self._uncommitted_beats:
            if self.on_committed is not None:
                self.on_committed(self._uncommitted_beats, time.monotonic())
            self._uncommitted_beats = []

    def _maybe_status(self) -> None:
        now = self.clock()
        if self.on_status is None or now < self._status_due:
            return
        self._status_due = now + self.status_interval_s
        self.on_status(self.status)
