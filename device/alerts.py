"""Alert policy: which scored beats and rhythms deserve a person's attention.

Every anomalous beat is logged by the runtime; this module decides when the
*pattern* of beats is worth sounding the buzzer for. It knows five alerts:

========== ===============================================================
kind       raised when
========== ===============================================================
run        ``run_beats`` consecutive scored beats are anomalous
burden     at least ``burden_share`` of the last ``burden_window_beats``
           scored beats are anomalous
low_hr     the heart rate over ``hr_window_s`` stays below ``hr_low_bpm``
           for ``hr_hold_s``
high_hr    the same, above ``hr_high_bpm``
pause      no beat for ``pause_s`` seconds while the signal is good
========== ===============================================================

Each kind has its own cool-down (``cooldown_s``): after an alert of a kind,
the next one of that kind waits at least that long. Time is counted in
stream samples (indices since the session started) and converted with the
sample rate, so the policy needs no clock and tests are exact.

Nothing is scored or alarmed while the signal quality is bad: the policy is
told of quality changes (``on_quality``) and of link gaps (``reset``), holds
its rhythm and pattern state while the signal is unusable, and starts fresh
when it is good again. Leads off is a status for the user, never an alarm.
"""

from __future__ import annotations

import collections
import enum
import logging
import math
from dataclasses import dataclass, field

from beatguard.device.errors import ConfigError
from beatguard.device.limits import Limits
from beatguard.device.types import Beat, Quality

logger = logging.getLogger(__name__)


class AlertKind(enum.Enum):
    """The patterns and rhythms the policy alerts on."""

    RUN = "run"
    BURDEN = "burden"
    LOW_HR = "low_hr"
    HIGH_HR = "high_hr"
    PAUSE = "pause"


@dataclass(frozen=True)
class Alert:
    """One alert for the sinks (event log, buzzer, console).

    Attributes
    ----------
    kind : AlertKind
    sample : int
        Stream index at which the condition was met (the beat that completed
        the pattern, or the moment a pause became long enough).
    message : str
        One line for a person.
    details : dict
        Machine-readable figures (``run_beats``, ``share``, ``hr_bpm``,
        ``pause_s``).
    """

    kind: AlertKind
    sample: int
    message: str
    details: dict = field(default_factory=dict)


#: The values each alert setting may take; :class:`AlertSettings` checks
#: them, and the runtime's flags and TOML file refuse a value outside them.
ALERT_LIMITS: dict[str, Limits] = {
    "run_beats": Limits(low=1),
    "burden_share": Limits(above=0, high=1),
    "burden_window_beats": Limits(low=1),
    "hr_low_bpm": Limits(above=0),
    "hr_high_bpm": Limits(above=0),
    "hr_window_s": Limits(above=0),
    "hr_hold_s": Limits(low=0),
    "pause_s": Limits(above=0),
    "cooldown_s": Limits(low=0),
}


@dataclass(frozen=True)
class AlertSettings:
    """Thresholds of the alert policy; every field is a setting of ``run``.

    Attributes
    ----------
    run_beats : int
        Consecutive anomalous beats that make a run alert (3 is a triplet).
    burden_share : float
        Share (0..1] of anomalous beats among recent scored beats that makes
        a burden alert.
    burden_window_beats : int
        How many recent scored beats the burden is measured over.
    hr_low_bpm, hr_high_bpm : float
        Heart-rate limits in beats per minute.
    hr_window_s : float
        The heart rate is the mean over the beats of this many seconds.
    hr_hold_s : float
        How long the heart rate must stay out of its limits before an alert.
    pause_s : float
        Seconds without a beat (with good signal) that make a pause alert.
    cooldown_s : float
        Minimum seconds between two alerts of the same kind.
    """

    run_beats: int = 3
    burden_share: float = 0.3
    burden_window_beats: int = 60
    hr_low_bpm: float = 40.0
    hr_high_bpm: float = 150.0
    hr_window_s: float = 8.0
    hr_hold_s: float = 10.0
    pause_s: float = 3.0
    cooldown_s: float = 60.0

    def __post_init__(self) -> None:
        problems = []
        for name, limits in ALERT_LIMITS.items():
            value = getattr(self, name)
            problem = limits.problem(value)
            if problem is not None:
                problems.append(f"{name} {problem}, not {value}")
        if not self.hr_low_bpm < self.hr_high_bpm:
            problems.append(
                f"need hr_low_bpm < hr_high_bpm, not {self.hr_low_bpm} and "
                f"{self.hr_high_bpm}"
            )
        if problems:
            raise ConfigError("alert settings: " + "; ".join(problems))


class AlertPolicy:
    """Turns scored beats, quality changes and the passing of time into alerts.

    The policy is a small state machine driven by the runtime, in stream
    order: ``on_beat`` for each beat (with its label, or ``None`` when it
    was not scored), ``tick`` as samples arrive (to notice pauses), and
    ``on_quality`` / ``reset`` for quality changes and link gaps.

    Parameters
    ----------
    fs_hz : float
        Sample rate of the stream, to turn stream indices into seconds.
    settings : AlertSettings
    detection_delay_s : float
        The signal chain's look-ahead: a beat at sample ``s`` is reported
        only once sample ``s + delay`` has arrived. ``tick`` waits this long
        before calling a pause, so a beat still in the detector is not
        mistaken for its absence.
    warmup_s : float
        Seconds the chain needs after a reset before it can report beats
        (its detector learning its thresholds); a pause after a reset is
        counted from the end of this warm-up.

    Attributes
    ----------
    quality : Quality
        The signal quality now in force.
    hr_bpm : float
        Heart rate over the last ``hr_window_s`` (NaN when unknown).
    """

    def __init__(
        self,
        fs_hz: float,
        settings: AlertSettings | None = None,
        detection_delay_s: float = 0.5,
        warmup_s: float = 0.0,
    ) -> None:
        if not fs_hz > 0:
            raise ConfigError(f"alert policy: fs_hz must be > 0, not {fs_hz}")
        self.fs_hz = float(fs_hz)
        self.settings = settings or AlertSettings()
        self.detection_delay_s = float(detection_delay_s)
        self.warmup_s = float(warmup_s)
        self.quality = Quality.GOOD
        self.hr_bpm = math.nan
        self._last_alert_sample: dict[AlertKind, int] = {}
        self.reset(0)

    # State -----------------------------------------------------------------

    def reset(self, at_sample: int) -> None:
        """Forget the rhythm and pattern state: the stream restarts at a gap.

        Parameters
        ----------
        at_sample : int
            Stream index where usable signal starts again; pauses are
            measured from here until the next beat. Cool-downs are kept, so
            a gap cannot make an alert sound twice in quick succession.
        """
        s = self.settings
        self._run_length = 0
        self._recent_labels: collections.deque[bool] = collections.deque(
            maxlen=s.burden_window_beats
        )
        self._beat_samples: collections.deque[int] = collections.deque()
        self._since_sample = int(at_sample) + round(self.warmup_s * self.fs_hz)
        self._last_beat_sample: int | None = None
        self._pause_alerted = False
        self._hr_out_since: dict[AlertKind, int | None] = {
            AlertKind.LOW_HR: None,
            AlertKind.HIGH_HR: None,
        }
        self.hr_bpm = math.nan

    def on_quality(self, sample: int, quality: Quality) -> None:
        """Take note of a change of signal quality at stream index ``sample``.

        Bad quality suspends the policy (no pause or rhythm alarm can be
        raised from a signal that cannot show beats); the return to good
        quality restarts it from ``sample``.
        """
        was_good = self.quality == Quality.GOOD
        self.quality = Quality(quality)
        if self.quality != Quality.GOOD:
            if was_good:
                logger.info(
                    "signal quality %s at sample %d", quality.describe(), sample
                )
            return
        if not was_good:
            logger.info("signal quality good again at sample %d", sample)
            self.reset(sample)

    # Events ----------------------------------------------------------------

    def on_beat(self, beat: Beat, anomalous: bool | None) -> list[Alert]:
        """Account for one beat and return the alerts it completes.

        Parameters
        ----------
        beat : Beat
        anomalous : bool or None
            The model's label, or ``None`` when the beat was not scored.
            An unscored beat still counts for the rhythm (heart rate,
            pauses) but neither extends nor breaks a run or a burden. While
            the quality is bad, beats count for nothing at all.

        Returns
        -------
        list of Alert
            Usually empty.
        """
        if self.quality != Quality.GOOD:
            return []
        settled = min(self._settled(beat.emitted_at_sample), beat.sample)
        alerts = self._check_pause(settled)
        alerts += self._pause_ended_by(beat)
        self._last_beat_sample = beat.sample
        self._pause_alerted = False
        self._beat_samples.append(beat.sample)
        if anomalous is not None:
            alerts += self._pattern_alerts(beat.sample, bool(anomalous))
        alerts += self._rate_alerts(beat.sample)
        return alerts

    def tick(self, now_sample: int) -> list[Alert]:
        """Check for a pause, given that samples up to ``now_sample`` arrived.

        Parameters
        ----------
        now_sample : int
            Index of the newest sample the runtime has processed.

        Returns
        -------
        list of Alert
            A pause alert, or nothing.
        """
        return self._check_pause(self._settled(now_sample))

    def _settled(self, now_sample: int) -> int:
        """Newest sample up to which the chain has reported every beat."""
        return now_sample - round(self.detection_delay_s * self.fs_hz)

    def _check_pause(self, settled: int) -> list[Alert]:
        if self.quality != Quality.GOOD or self._pause_alerted:
            return []
        since = (
            self._last_beat_sample
            if self._last_beat_sample is not None
            else self._since_sample
        )
        if settled - since < self.settings.pause_s * self.fs_hz:
            return []
        self._pause_alerted = True
        pause_s = (settled - since) / self.fs_hz
        return self._raise(
            AlertKind.PAUSE,
            since + round(self.settings.pause_s * self.fs_hz),
            f"pause: no heart beat for {self.settings.pause_s:g} s",
            {"pause_s": round(pause_s, 3), "last_beat_sample": since},
        )

    # Rules -----------------------------------------------------------------

    def _pause_ended_by(self, beat: Beat) -> list[Alert]:
        """A pause the ticks missed (too coarse) is still caught by its end."""
        if self._last_beat_sample is None or self._pause_alerted:
            return []
        gap = beat.sample - self._last_beat_sample
        if gap < self.settings.pause_s * self.fs_hz:
            return []
        self._pause_alerted = True
        return self._raise(
            AlertKind.PAUSE,
            beat.sample,
            f"pause: {gap / self.fs_hz:.1f} s between two heart beats",
            {
                "pause_s": round(gap / self.fs_hz, 3),
                "last_beat_sample": self._last_beat_sample,
            },
        )

    def _pattern_alerts(self, sample: int, anomalous: bool) -> list[Alert]:
        s = self.settings
        self._run_length = self._run_length + 1 if anomalous else 0
        self._recent_labels.append(anomalous)
        alerts = []
        if self._run_length >= s.run_beats:
            alerts += self._raise(
                AlertKind.RUN,
                sample,
                f"run of {self._run_length} abnormal beats",
                {"run_beats": self._run_length},
            )
        if len(self._recent_labels) == s.burden_window_beats:
            share = sum(self._recent_labels) / s.burden_window_beats
            if share >= s.burden_share:
                alerts += self._raise(
                    AlertKind.BURDEN,
                    sample,
                    f"{share:.0%} of the last {s.burden_window_beats} beats abnormal",
                    {"share": round(share, 4), "window_beats": s.burden_window_beats},
                )
        return alerts

    def _rate_alerts(self, sample: int) -> list[Alert]:
        s = self.settings
        window = round(s.hr_window_s * self.fs_hz)
        while self._beat_samples and self._beat_samples[0] < sample - window:
            self._beat_samples.popleft()
        covered = sample - self._since_sample >= window
        if not covered or len(self._beat_samples) < 2:
            self.hr_bpm = math.nan
            return []
        span_s = (self._beat_samples[-1] - self._beat_samples[0]) / self.fs_hz
        self.hr_bpm = 60.0 * (len(self._beat_samples) - 1) / span_s
        alerts = []
        for kind, out in (
            (AlertKind.LOW_HR, self.hr_bpm < s.hr_low_bpm),
            (AlertKind.HIGH_HR, self.hr_bpm > s.hr_high_bpm),
        ):
            if not out:
                self._hr_out_since[kind] = None
                continue
            since = self._hr_out_since[kind]
            if since is None:
                self._hr_out_since[kind] = since = sample
            if sample - since >= s.hr_hold_s * self.fs_hz:
                word = "low" if kind is AlertKind.LOW_HR else "high"
                alerts += self._raise(
                    kind,
                    sample,
                    f"heart rate {word}: {self.hr_bpm:.0f} bpm for "
                    f"{(sample - since) / self.fs_hz:.0f} s",
                    {"hr_bpm": round(self.hr_bpm, 1)},
                )
        return alerts

    def _raise(self, kind: AlertKind, sample: int, message: str, details: dict):
        last = self._last_alert_sample.get(kind)
        if last is not None and sample - last < self.settings.cooldown_s * self.fs_hz:
            return []
        self._last_alert_sample[kind] = sample
        return [Alert(kind, int(sample), message, details)]
