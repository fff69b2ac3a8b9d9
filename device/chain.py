"""The one signal chain: ADC counts in, normalized beat windows out.

Both the device and the trainer run ECG through :class:`SignalChain`, so a
model sees beats cut exactly as the device cuts them. Stages, all causal
and streaming (state carried between chunks of any size):

1. ADC counts to millivolts (gain and baseline of the source);
2. optional mains notch (50 or 60 Hz) and a Butterworth band-pass
   (0.5-40 Hz by default) against baseline wander and muscle noise;
3. signal-quality flags per sample (:mod:`beatguard.device.quality`);
4. QRS detection (:mod:`beatguard.device.qrs`);
5. a beat window in seconds around R, resampled to a fixed number of
   points and normalized (:mod:`beatguard.device.windows`);
6. RR intervals.

Samples that are missing, at an ADC rail or taken with an electrode off
never reach a filter: the filters hold their state over them and restart
from the steady state of the next good sample. Beats whose window touches
a flagged sample are not emitted. Feeding a
record whole, sample by sample or in random chunks gives the same beats.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import statistics
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from beatguard.device.errors import ConfigError, SampleRateError
from beatguard.device.filters import (
    StreamingFilter,
    design_bandpass,
    design_notch,
    lowest_bandpass_fs_hz,
)
from beatguard.device.qrs import Detection, DetectorSettings, QRSDetector
from beatguard.device.quality import QualityMonitor, QualitySettings, flag_column
from beatguard.device.records import Record
from beatguard.device.types import Beat, Quality, QualityEvent
from beatguard.device.windows import NORMALIZATIONS, BeatWindower

log = logging.getLogger(__name__)

#: Number of recent RR intervals averaged into ``Beat.rr_avg_s``.
RR_MEMORY = 8

#: Samples further than this from 0 mV cannot come from an ECG front end (a
#: corrupt file, a wrong gain); they are kept out of the filters and flagged
#: SATURATED even when the ADC rails are unknown.
MAX_ABS_MV = 100.0


@dataclass(frozen=True)
class ChainConfig:
    """Everything that decides how the chain turns counts into beats.

    Stored in the model bundle, so the device cuts beats exactly as the
    model was trained on them.

    Attributes
    ----------
    fs_hz : float
        Sample rate of the source, hertz.
    gain_counts_per_mv : float
        ADC counts per millivolt.
    baseline_counts : float
        ADC count of 0 mV.
    adc_bits : int
        ADC resolution; 0 disables the saturation check.
    adc_zero_counts : float or None
        Count in the middle of the ADC range; None means an unsigned ADC
        (rails at 0 and ``2**adc_bits - 1``).
    notch_hz : float or None
        Mains notch frequency (50 or 60), or None for no notch.
    bandpass_low_hz, bandpass_high_hz : float
        Band-pass edges, hertz.
    window_before_s, window_after_s : float
        Beat window span before and after R, seconds.
    window_points : int
        Points of each beat window after resampling.
    normalization : str
        ``"relative"`` (default) or ``"zscore"``; see
        :mod:`beatguard.device.windows`.
    noise_max_mv : float
        RMS of the 25-40 Hz band above which the signal is NOISY, mV.
    flat_max_counts : float
        Largest 1 s range of counts still called a flat line.
    quality_hold_s : float
        How long a quality flag outlasts its cause, seconds.
    """

    fs_hz: float = 360.0
    gain_counts_per_mv: float = 200.0
    baseline_counts: float = 1024.0
    adc_bits: int = 11
    adc_zero_counts: float | None = None
    notch_hz: float | None = None
    bandpass_low_hz: float = 0.5
    bandpass_high_hz: float = 40.0
    window_before_s: float = 0.25
    window_after_s: float = 0.45
    window_points: int = 64
    normalization: str = "relative"
    noise_max_mv: float = 0.12
    flat_max_counts: float = 1.0
    quality_hold_s: float = 0.5

    def __post_init__(self) -> None:
        if not (self.fs_hz > 0 and math.isfinite(self.fs_hz)):
            raise ConfigError(f"sample rate {self.fs_hz} Hz is not usable")
        if self.fs_hz < self.min_fs_hz:
            raise SampleRateError(
                f"sampled at {self.fs_hz:g} Hz; the signal chain needs at least "
                f"{self.min_fs_hz} Hz"
            )
        if not self.gain_counts_per_mv or not math.isfinite(self.gain_counts_per_mv):
            raise ConfigError(f"gain {self.gain_counts_per_mv} counts/mV is not usable")
        if self.normalization not in NORMALIZATIONS:
            raise ConfigError(
                f"normalization {self.normalization!r} is not one of {NORMALIZATIONS}"
            )
        if self.notch_hz is not None and not 0 < self.notch_hz < self.fs_hz / 2:
            raise ConfigError(
                f"notch {self.notch_hz} Hz is impossible at {self.fs_hz} Hz"
            )

    @property
    def min_fs_hz(self) -> int:
        """Lowest sample rate, in hertz, at which every band-pass of the chain fits.

        The highest low edge decides: the chain's own band-pass, the QRS
        detector's band and the quality monitor's noise band.
        """
        lows = (
            self.bandpass_low_hz,
            DetectorSettings().band_hz[0],
            QualitySettings().noise_band_hz[0],
        )
        return max(lowest_bandpass_fs_hz(low) for low in lows)

    @property
    def rails_counts(self) -> tuple[float, float] | None:
        """Lowest and highest ADC count, or None when the ADC is unknown."""
        if not self.adc_bits:
            return None
        half = 2.0 ** (self.adc_bits - 1)
        zero = half if self.adc_zero_counts is None else self.adc_zero_counts
        return (zero - half, zero + half - 1)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able settings (for the model bundle)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ChainConfig:
        """Settings from :meth:`to_dict` output.

        Raises
        ------
        ConfigError
            For unknown keys or unusable values.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown signal-chain settings: {', '.join(unknown)}")
        for name, value in d.items():
            default = getattr(cls, name)  # every setting has a default
            wanted = str if isinstance(default, str) else (int, float)
            if (value is None and default is None) or (
                isinstance(value, wanted) and not isinstance(value, bool)
            ):
                continue
            kind = "text" if wanted is str else "a number"
            raise ConfigError(
                f"signal-chain setting {name} must be {kind}, not {value!r}"
            )
        return cls(**d)

    @classmethod
    def for_record(
        cls, record: Record, source: str | Path | None = None, **overrides: Any
    ) -> ChainConfig:
        """Settings matching a record's sample rate, gain, baseline and ADC.

        ``source`` is how a rate refusal names the record: the path the user
        gave; by default the record's name.

        Raises
        ------
        SampleRateError
            The record is sampled too slowly for the signal chain.
        ConfigError
            An override is not usable.
        """
        values: dict[str, Any] = {
            "fs_hz": record.fs_hz,
            "gain_counts_per_mv": record.gain_counts_per_mv,
            "baseline_counts": record.baseline_counts,
            "adc_bits": record.adc_bits,
            "adc_zero_counts": record.adc_zero_counts,
        }
        values.update(overrides)
        try:
            return cls(**values)
        except SampleRateError as err:
            raise SampleRateError(f"{source or record.name}: {err}") from err


@dataclass(frozen=True)
class ChainOutput:
    """What one call of :meth:`SignalChain.process` produced.

    Attributes
    ----------
    beats : list[Beat]
        Completed beats, in order of R sample.
    quality_events : list[QualityEvent]
        Changes of signal quality, in order of sample.
    """

    beats: list[Beat] = field(default_factory=list)
    quality_events: list[QualityEvent] = field(default_factory=list)


class SignalChain:
    """The streaming chain from ADC counts to normalized beats.

    Parameters
    ----------
    config : ChainConfig

    Notes
    -----
    Look-ahead: a beat is emitted when the last sample of its window has
    arrived and the detector has confirmed it. The detector confirms
    ordinary beats 0.35-0.43 s after R (0.47 s at the very most), so with
    the default window (0.45 s after R) 99.9 % of beats leave exactly when
    their window is complete (MIT-BIH 106). Beats found by the detector's
    search-back come later, when it fires. ``delay_s`` gives the documented
    worst case for ordinary beats.
    """

    def __init__(self, config: ChainConfig) -> None:
        self.config = c = config
        self._notch = (
            StreamingFilter(design_notch(c.fs_hz, c.notch_hz)) if c.notch_hz else None
        )
        self._bandpass = StreamingFilter(
            design_bandpass(c.fs_hz, c.bandpass_low_hz, c.bandpass_high_hz)
        )
        self._quality = QualityMonitor(
            c.fs_hz,
            c.gain_counts_per_mv,
            c.rails_counts,
            QualitySettings(
                noise_max_mv=c.noise_max_mv,
                flat_max_counts=c.flat_max_counts,
                hold_s=c.quality_hold_s,
            ),
        )
        self._detector = QRSDetector(c.fs_hz)
        self._windower = BeatWindower(
            c.fs_hz,
            c.window_before_s,
            c.window_after_s,
            c.window_points,
            c.normalization,
        )
        qs = self._quality.settings
        self._hindsight = {
            Quality.NOISY: int(round(qs.noise_window_s * c.fs_hz)),
            Quality.FLAT: int(round(qs.flat_window_s * c.fs_hz)),
            Quality.SATURATED: int(round(qs.saturation_min_s * c.fs_hz)),
        }
        self._min_rr = int(round(self._detector.settings.refractory_s * c.fs_hz))
        self.reset(0)

    @property
    def quality(self) -> Quality:
        """Quality flags in force at the newest sample."""
        return Quality(self._flags_now)

    @property
    def delay_s(self) -> float:
        """Worst-case seconds from an ordinary beat's R to its emission."""
        return max(self.config.window_after_s, self._detector.delay_s) + (
            1.0 / self.config.fs_hz
        )

    @property
    def next_sample(self) -> int:
        """Stream index the next sample fed will get."""
        return self._next_sample

    def reset(self, next_sample: int = 0) -> None:
        """Forget all state; later samples get indices from ``next_sample``.

        Call after a gap in the stream (samples lost, port reconnected).
        The detector relearns its thresholds over the next 2 s.
        """
        self._next_sample = int(next_sample)
        if self._notch is not None:
            self._notch.reset()
        self._bandpass.reset()
        self._quality.reset()
        self._detector.reset(self._next_sample)
        self._windower.reset(self._next_sample)
        self._pending: list[Detection] = []
        self._flags_now = 0
        self._prev_flags = 0
        self._last_r: int | None = None
        self._last_emitted_r: int | None = None
        self._rr_s: deque[float] = deque(maxlen=RR_MEMORY)

    def process(
        self,
        counts: NDArray[np.float64],
        leads_off: NDArray[np.bool_] | None = None,
    ) -> ChainOutput:
        """Feed the next chunk of ADC counts.

        Parameters
        ----------
        counts : array-like, shape (n,)
            ADC counts; NaN or inf marks a missing sample.
        leads_off : array-like of bool, shape (n,), optional
            Leads-off flags reported by the source.

        Returns
        -------
        ChainOutput
            Beats completed and quality changes within this chunk.
        """
        counts = np.asarray(counts, dtype=np.float64).reshape(-1)
        n = counts.shape[0]
        if n == 0:
            return ChainOutput()
        if leads_off is not None:
            leads_off = np.asarray(leads_off, dtype=bool).reshape(-1)
            if leads_off.shape[0] != n:
                raise ValueError(
                    f"leads_off has {leads_off.shape[0]} samples, counts has {n}"
                )
        c = self.config
        raw = self._quality.input_flags(counts, leads_off)
        keep_out = self._quality.keep_out(raw)
        with np.errstate(invalid="ignore", over="ignore"):
            mv = (counts - c.baseline_counts) / c.gain_counts_per_mv
            implausible = np.abs(mv) > MAX_ABS_MV  # beyond any ECG front end
        if implausible.any():
            raw[:, flag_column(Quality.SATURATED)] |= implausible
            keep_out |= implausible
        if keep_out.any():
            mv = np.where(keep_out, np.nan, mv)
        notched = self._notch.process(mv) if self._notch is not None else mv
        ecg = self._bandpass.process(notched)
        flags = self._quality.process(raw, notched)
        events = self._quality_events(flags)
        self._windower.append(ecg, flags)
        self._mark_hindsight(flags)
        self._pending.extend(self._detector.process(ecg, flags == 0))
        self._next_sample += n
        return ChainOutput(beats=self._emit_ready(), quality_events=events)

    def finish(self) -> ChainOutput:
        """End of stream: confirm what the look-ahead still held back.

        Beats whose window runs past the last sample are dropped.
        """
        self._pending.extend(self._detector.finish())
        return ChainOutput(beats=self._emit_ready())

    def _mark_hindsight(self, flags: NDArray[np.uint8]) -> None:
        """Extend NOISY, FLAT and SATURATED back over the span that raised them."""
        start = self._next_sample
        watched = int(Quality.NOISY | Quality.FLAT | Quality.SATURATED)
        if not (self._prev_flags & watched or np.any(flags & watched)):
            self._prev_flags = int(flags[-1])
            return
        for flag, span in self._hindsight.items():
            on = (flags & flag) != 0
            before = np.concatenate(([bool(self._prev_flags & flag)], on[:-1]))
            for k in np.flatnonzero(on & ~before).tolist():
                self._windower.mark_before(start + k, start + k - span, int(flag))
        self._prev_flags = int(flags[-1])

    def _quality_events(self, flags: NDArray[np.uint8]) -> list[QualityEvent]:
        prev = np.concatenate(([self._flags_now], flags[:-1]))
        changes = np.flatnonzero(flags != prev)
        self._flags_now = int(flags[-1])
        start = self._next_sample
        return [QualityEvent(start + int(i), Quality(int(flags[i]))) for i in changes]

    def _emit_ready(self) -> list[Beat]:
        beats: list[Beat] = []
        while self._pending and self._windower.ready(self._pending[0].sample):
            det = self._pending.pop(0)
            beat = self._make_beat(det)
            if beat is not None:
                beats.append(beat)
        return beats

    def _make_beat(self, det: Detection) -> Beat | None:
        r = det.sample
        if self._last_r is not None and r - self._last_r < self._min_rr:
            log.debug("detection at %d duplicates R at %d", r, self._last_r)
            return None
        rr_before = math.nan
        known_at = self._windower.last_sample(r)
        if self._last_r is not None and not self._windower.flagged_between(
            self._last_r, r, known_at
        ):
            rr_before = (r - self._last_r) / self.config.fs_hz
        rr_avg = statistics.fmean(self._rr_s) if self._rr_s else math.nan
        self._last_r = r
        window = self._windower.cut(r)
        if math.isfinite(rr_before):
            self._rr_s.append(rr_before)
        if window is None:
            return None
        emitted_at = min(
            max(det.confirmed_at, self._windower.last_sample(r)), self._next_sample - 1
        )
        return Beat(
            sample=r,
            window=window,
            rr_before_s=rr_before,
            rr_avg_s=rr_avg,
            emitted_at_sample=emitted_at,
        )


def beats_from_record(
    record: Record,
    config: ChainConfig,
    start_sample: int = 0,
    stop_sample: int | None = None,
) -> list[Beat]:
    """Run a fresh chain over part of a record.

    Parameters
    ----------
    record : Record
    config : ChainConfig
        Usually ``ChainConfig.for_record(record, ...)``.
    start_sample, stop_sample : int
        The span of ``record.counts`` to run (stop exclusive; None = end).

    Returns
    -------
    list[Beat]
        Beats with ``sample`` counted from the start of the record.
    """
    stop = len(record.counts) if stop_sample is None else stop_sample
    start = max(0, int(start_sample))
    chain = SignalChain(config)
    chain.reset(next_sample=start)
    leads_off = None if record.leads_off is None else record.leads_off[start:stop]
    beats = chain.process(record.counts[start:stop], leads_off).beats
    beats.extend(chain.finish().beats)
    return beats
