"""Streaming QRS detector: energy peaks, adaptive thresholds, search-back.

The detector follows the Pan-Tompkins / Hamilton-Tompkins family. From the
band-passed ECG it derives a QRS energy signal (5-15 Hz band-pass,
derivative, absolute value, 150 ms moving average; the absolute value
rather than the square keeps wide ventricular beats, whose slopes are
gentler, well above threshold). Local maxima of that energy (the largest
within 0.25 s either side) are candidates; a candidate is a QRS when it
exceeds an adaptive threshold set 37.5 % of the way from the median of the
last eight noise peaks to the median of the last eight QRS peaks. A
candidate within 360 ms (or 0.4 mean RR, if longer) of the previous QRS
whose steepest slope is under half the previous QRS's is a T wave. When no
QRS has come for 1.66 mean RR intervals, the largest candidate since the
last QRS above half the threshold is taken (search-back); if there is
none, the QRS level is halved, so a sudden drop of amplitude is followed.

The R peak is found in two steps: the largest absolute value of the
5-15 Hz band 40-220 ms before the energy peak marks the QRS (baseline
artifacts barely reach that band), then the ECG's extreme within 50 ms of
it. The QRS band can peak on a steep S wave or ST downslope 50-90 ms after
a narrow R (as in the normal beats between PVCs of MIT-BIH record 106), so
a narrower span leaves R out of reach; with 30 ms, about a quarter of the
normal beats of record 106 and a seventh of record 114 got their R placed
on the S trough. Of the two signs, the one the recent beats agree on is
preferred unless the other is more than 3.3 times larger. Inverted
electrodes therefore give the same beats, and an R wave is not traded for
an S wave of about the same size from one beat to the next.

Every parameter is in seconds, so the detector works at any sample rate
from about 200 Hz up. Its look-ahead is bounded: a candidate is confirmed
``peak_half_width_s`` (0.25 s) after its energy peak, which lies 0.1-0.18 s
after R, so ordinary beats are confirmed 0.35-0.43 s after R, before the
default beat window (0.45 s after R) is complete; beats found by
search-back are confirmed when it fires (at most ``search_back_limit_s``
after the previous beat). Samples marked unusable (bad signal quality)
yield no candidates and leave the thresholds untouched; across such a
stretch the detector forgets the previous QRS (RR, T-wave test,
search-back) but keeps its levels.

The constants were chosen on MIT-BIH records 100, 105, 106, 108, 114, 116,
121 and 123, the same records the acceptance figures are measured on;
there was no separate tuning set.
"""

from __future__ import annotations

import logging
import statistics
from collections import deque
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import signal
from scipy.ndimage import maximum_filter1d

from beatguard.device.filters import StreamingFilter, design_bandpass
from beatguard.device.history import HoldLast, SampleHistory

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Detection:
    """A confirmed QRS complex.

    Attributes
    ----------
    sample : int
        Stream index of the R peak (largest absolute band-passed value).
    confirmed_at : int
        Stream index of the sample whose arrival confirmed the detection.
    energy : float
        Height of the QRS energy peak, in (mV/s)^2.
    searched_back : bool
        True when found by search-back under the normal threshold.
    """

    sample: int
    confirmed_at: int
    energy: float
    searched_back: bool


@dataclass
class _Candidate:
    index: int  # stream index of the energy peak
    energy: float
    slope: float  # steepest |derivative| of the QRS band, mV/s
    r_options: tuple[int, float, int, float]  # highest and lowest ECG near QRS


@dataclass(frozen=True)
class DetectorSettings:
    """Tunable constants of :class:`QRSDetector`, all in seconds or ratios.

    Attributes
    ----------
    band_hz : tuple[float, float]
        QRS band of the energy signal, hertz.
    integration_s : float
        Moving-average length of the energy signal.
    peak_half_width_s : float
        A candidate is the largest energy within this span on either side;
        also the detector's look-ahead behind the energy peak.
    refractory_s : float
        No second QRS sooner than this after one.
    t_wave_s, t_wave_rr : float
        T-wave zone after a QRS: the longer of ``t_wave_s`` and ``t_wave_rr``
        mean RR intervals.
    r_search_s, r_search_end_s : float
        The QRS is looked for from ``r_search_s`` to ``r_search_end_s``
        before the energy peak.
    r_refine_s : float
        R is the ECG's extreme within this span of the QRS band's extreme.
    polarity_ratio : float
        The recent beats' polarity is kept unless its extreme is below this
        fraction of the other sign's.
    slope_search_s : float
        Span before the energy peak whose steepest slope is the candidate's.
    learn_s : float
        Seconds of signal used to set the first QRS level.
    threshold_ratio : float
        Threshold position between the noise and the QRS level.
    search_back_rr, search_back_ratio : float
        Search back after this many mean RR intervals without a QRS, for a
        candidate above this fraction of the threshold.
    rr_default_s, rr_min_s, rr_max_s : float
        RR assumed before any is known, and the range kept in the mean.
    memory_beats : int
        QRS peaks, noise peaks and RR intervals remembered.
    search_back_limit_s : float
        No search-back reaches further than this after the last QRS.
    min_energy : float
        No QRS below this energy, in (mV/s)^2, whatever the adaptive
        thresholds say. A constant or dead input leaves only rounding
        residue in the filters (about 1e-14 mV, whose last bits differ
        between CPU architectures); the weakest QRS accepted on the noisy,
        low-voltage MIT-BIH record 108 has an energy near 6.
    """

    band_hz: tuple[float, float] = (5.0, 15.0)
    integration_s: float = 0.15
    peak_half_width_s: float = 0.25
    refractory_s: float = 0.2
    t_wave_s: float = 0.36
    t_wave_rr: float = 0.4
    r_search_s: float = 0.22
    r_search_end_s: float = 0.04
    r_refine_s: float = 0.05
    polarity_ratio: float = 0.3
    slope_search_s: float = 0.2
    learn_s: float = 2.0
    threshold_ratio: float = 0.375
    search_back_rr: float = 1.66
    search_back_ratio: float = 0.5
    rr_default_s: float = 1.0
    rr_min_s: float = 0.2
    rr_max_s: float = 3.0
    memory_beats: int = 8
    search_back_limit_s: float = 10.0
    min_energy: float = 0.01


class QRSDetector:
    """Find R peaks in a band-passed ECG stream.

    Parameters
    ----------
    fs_hz : float
        Sample rate in hertz.
    settings : DetectorSettings, optional
        Thresholds and time constants.
    start : int
        Stream index of the first sample that will be fed.

    Notes
    -----
    Look-ahead: ``settings.peak_half_width_s`` after the energy peak for
    ordinary detections (0.35-0.43 s after R); search-back detections come
    later (see the module docstring). Feeding the stream in any chunking
    gives identical detections.
    """

    def __init__(
        self,
        fs_hz: float,
        settings: DetectorSettings | None = None,
        start: int = 0,
    ) -> None:
        self.fs_hz = float(fs_hz)
        self.settings = s = settings or DetectorSettings()
        fs = self.fs_hz
        self._band = StreamingFilter(design_bandpass(fs, *s.band_hz))
        self._hold = HoldLast()
        self._deriv_b = np.array([2.0, 1.0, 0.0, -1.0, -2.0]) * fs / 8.0
        n_int = max(1, int(round(s.integration_s * fs)))
        self._int_b = np.full(n_int, 1.0 / n_int)
        self._half = max(1, int(round(s.peak_half_width_s * fs)))
        self._refractory = int(round(s.refractory_s * fs))
        self._t_wave = int(round(s.t_wave_s * fs))
        self._r_search = int(round(s.r_search_s * fs))
        self._r_search_end = int(round(s.r_search_end_s * fs))
        self._r_refine = int(round(s.r_refine_s * fs))
        self._slope_search = int(round(s.slope_search_s * fs))
        self._learn = int(round(s.learn_s * fs))
        keep = int(round(1.5 * fs)) + 2 * self._half
        self._ecg = SampleHistory(keep, np.float64, start)
        self._qrs_band = SampleHistory(keep, np.float64, start)
        self._energy = SampleHistory(keep, np.float64, start)
        self._slope = SampleHistory(keep, np.float64, start)
        self._usable = SampleHistory(keep, np.bool_, start)
        self.reset(start)

    @property
    def delay_s(self) -> float:
        """Look-ahead of an ordinary detection behind its R peak, seconds."""
        return self.settings.peak_half_width_s + self.settings.r_search_s

    def reset(self, start: int = 0) -> None:
        """Forget all state; the next sample fed has stream index ``start``."""
        self._band.reset()
        self._hold.reset()
        self._deriv_zi = np.zeros(len(self._deriv_b) - 1)
        self._int_zi = np.zeros(len(self._int_b) - 1)
        histories = (self._ecg, self._qrs_band, self._energy, self._slope)
        for history in (*histories, self._usable):
            history.reset(start)
        self._next = int(start) + self._half  # next index examined for a peak
        self._learn_until = int(start) + self._learn
        self._learning = True
        self._pending: list[_Candidate] = []  # found, not yet classified
        self._noise_since_qrs: list[_Candidate] = []
        n = self.settings.memory_beats
        self._qrs_peaks: deque[float] = deque(maxlen=n)
        self._noise_peaks: deque[tuple[int, float]] = deque(maxlen=n)
        self._rr: deque[int] = deque(maxlen=n)
        self._last_qrs: int | None = None  # energy-peak index of the last QRS
        self._last_slope = 0.0
        self._deadline: int | None = None
        self._bad_spans: deque[tuple[int, int]] = deque()  # unusable [start, stop)
        self._signs: deque[int] = deque(maxlen=n)  # sign of the recent R peaks
        self._polarity = 0  # +1 or -1 when the recent R peaks agree, else 0

    # Feeding ---------------------------------------------------------------

    def process(
        self, ecg_mv: NDArray[np.float64], usable: NDArray[np.bool_]
    ) -> list[Detection]:
        """Feed the next chunk; return the detections it confirmed.

        Parameters
        ----------
        ecg_mv : NDArray[np.float64], shape (n,)
            Band-passed ECG in millivolts; NaN where samples are missing.
        usable : NDArray[np.bool_], shape (n,)
            False where the signal quality is bad (no candidates there).

        Returns
        -------
        list[Detection]
            In order of R sample.
        """
        ecg_mv = np.asarray(ecg_mv, dtype=np.float64)
        if ecg_mv.size == 0:
            return []
        self._append(ecg_mv, np.asarray(usable, dtype=bool))
        self._find_candidates(self._energy.end - self._half)
        return self._classify(self._energy.end - self._half)

    def finish(self) -> list[Detection]:
        """End of stream: examine the last samples without look-ahead."""
        end = self._energy.end
        self._find_candidates(end)
        return self._classify(end, at_end=True)

    def _append(self, ecg_mv: NDArray[np.float64], usable: NDArray[np.bool_]) -> None:
        band = self._band.process(ecg_mv)
        band = np.where(np.isfinite(band), band, 0.0)
        deriv, self._deriv_zi = signal.lfilter(
            self._deriv_b, 1.0, band, zi=self._deriv_zi
        )
        energy, self._int_zi = signal.lfilter(
            self._int_b, 1.0, np.abs(deriv), zi=self._int_zi
        )
        self._ecg.append(self._hold(ecg_mv))
        self._qrs_band.append(band)
        self._energy.append(energy)
        self._slope.append(np.abs(deriv))
        good = usable & np.isfinite(ecg_mv)
        self._usable.append(good)
        self._note_bad_spans(good)

    def _note_bad_spans(self, good: NDArray[np.bool_]) -> None:
        """Remember where unusable stretches lie (stream indices)."""
        if good.all():
            return
        first = self._usable.end - len(good)
        edges = np.flatnonzero(
            np.diff(np.concatenate(([1], good, [1])).astype(np.int8))
        )
        for a, b in zip(edges[0::2].tolist(), edges[1::2].tolist(), strict=True):
            start, stop = first + a, first + b
            if self._bad_spans and self._bad_spans[-1][1] == start:
                start = self._bad_spans.pop()[0]
            self._bad_spans.append((start, stop))

    def _forget_across_gap(self, upto: int) -> None:
        """After an unusable stretch, forget the previous QRS (not the levels).

        RR intervals, the T-wave test and search-back make no sense across
        a stretch with no usable signal; the thresholds still do.
        """
        if self._last_qrs is None:
            return
        while self._bad_spans and self._bad_spans[0][1] <= self._last_qrs:
            self._bad_spans.popleft()
        if any(start <= upto for start, _ in self._bad_spans):
            self._last_qrs = None
            self._deadline = None
            self._noise_since_qrs = []

    # Candidates ------------------------------------------------------------

    def _find_candidates(self, stop: int) -> None:
        """Local energy maxima at indices ``self._next`` .. ``stop - 1``.

        Past the end of the stream (``finish``) the look-around is cut short.
        """
        a, h = self._next, self._half
        if stop <= a:
            return
        lo = max(a - h, self._energy.first)
        hi = min(stop + h, self._energy.end)
        seg = self._energy.get(lo, hi)
        peak = maximum_filter1d(seg, size=2 * h + 1, mode="constant", cval=-np.inf)
        idx = np.arange(a, stop)
        core = seg[idx - lo]
        prev = seg[idx - lo - 1]
        ok = self._usable.get(a, stop)
        is_peak = (core >= peak[idx - lo]) & (core > prev) & (core > 0.0) & ok
        for i in idx[is_peak].tolist():
            self._pending.append(
                _Candidate(i, float(seg[i - lo]), self._slope_at(i), self._r_options(i))
            )
        self._next = stop

    def _slope_at(self, i: int) -> float:
        a = max(i - self._slope_search, self._slope.first)
        return float(self._slope.get(a, i + 1).max())

    # Classification --------------------------------------------------------

    def _classify(self, known_until: int, at_end: bool = False) -> list[Detection]:
        """Decide on candidates; all candidates before ``known_until`` exist."""
        found: list[Detection] = []
        while self._learning:
            if known_until < self._learn_until and not at_end:
                return found
            early = [c.energy for c in self._pending if c.index < self._learn_until]
            if early:
                self._qrs_peaks.extend([max(early)] * self.settings.memory_beats)
                self._learning = False
            elif at_end and not self._pending:
                return found
            else:
                self._learn_until += self._learn  # nothing usable yet: learn on
        while True:
            nxt = self._pending[0] if self._pending else None
            if nxt is not None:
                self._forget_across_gap(nxt.index)
            d = self._deadline
            if d is not None and d <= known_until and (nxt is None or nxt.index >= d):
                self._forget_across_gap(d)
                if self._deadline is None:
                    continue
                # the sample whose arrival let this search-back fire
                fired_at = known_until - 1 if at_end else d + self._half - 1
                beat = self._search_back(d, fired_at)
                if beat is not None:
                    found.append(beat)
                continue
            if nxt is None:
                break
            self._pending.pop(0)
            beat = self._decide(nxt)
            if beat is not None:
                found.append(beat)
        return found

    def _rr_mean(self) -> float:
        """Mean of the recent RR intervals in samples (a default before any)."""
        if not self._rr:
            return self.settings.rr_default_s * self.fs_hz
        return statistics.fmean(self._rr)

    def _t_wave_window(self) -> float:
        """Samples after a QRS in which a shallow candidate is a T wave."""
        if not self._rr:
            return self._t_wave
        return max(self._t_wave, self.settings.t_wave_rr * statistics.fmean(self._rr))

    def _threshold(self) -> float:
        qrs = statistics.median(self._qrs_peaks)
        noise = self._noise_level()
        return noise + self.settings.threshold_ratio * (qrs - noise)

    def _noise_level(self) -> float:
        if not self._noise_peaks:
            return 0.0
        return statistics.median(e for _, e in self._noise_peaks)

    def _decide(self, c: _Candidate) -> Detection | None:
        since = None if self._last_qrs is None else c.index - self._last_qrs
        if since is not None and since < self._refractory:
            return None
        if c.energy > max(self._threshold(), self.settings.min_energy):
            is_t_wave = (
                since is not None
                and since < self._t_wave_window()
                and c.slope < 0.5 * self._last_slope
            )
            if not is_t_wave:
                return self._accept(c, c.index + self._half, searched_back=False)
        self._noise_peaks.append((c.index, c.energy))
        self._noise_since_qrs.append(c)
        return None

    def _search_back(self, deadline: int, confirmed_at: int) -> Detection | None:
        """Take the largest candidate since the last QRS above half threshold.

        When there is none, the QRS level is halved (the signal may have
        shrunk) and the search repeated once; if that fails too, another
        search is due one search-back interval later. The QRS level is not
        halved below three times the noise level.
        """
        s = self.settings
        best = self._best_since_qrs(deadline)
        if best is None and self._decay_qrs_level():
            best = self._best_since_qrs(deadline)
        if best is None:
            rr_mean = (
                statistics.fmean(self._rr) if self._rr else s.rr_default_s * self.fs_hz
            )
            self._deadline = deadline + int(round(s.search_back_rr * rr_mean))
            if self._deadline - self._last_qrs > s.search_back_limit_s * self.fs_hz:
                self._deadline = None
            return None
        self._noise_peaks = deque(
            (p for p in self._noise_peaks if p[0] != best.index),
            maxlen=self._noise_peaks.maxlen,
        )
        return self._accept(best, max(confirmed_at, best.index + self._half), True)

    def _best_since_qrs(self, deadline: int) -> _Candidate | None:
        floor = max(
            self.settings.search_back_ratio * self._threshold(),
            self.settings.min_energy,
        )
        best = None
        for c in self._noise_since_qrs:
            if c.index >= deadline or c.energy <= floor:
                continue
            since = c.index - self._last_qrs
            if since < self._refractory:
                continue
            if since < self._t_wave_window() and c.slope < 0.5 * self._last_slope:
                continue
            if best is None or c.energy > best.energy:
                best = c
        return best

    def _decay_qrs_level(self) -> bool:
        """Halve the remembered QRS peaks; False when already near noise."""
        qrs = statistics.median(self._qrs_peaks)
        noise = self._noise_level()
        if noise <= 0.0 or qrs <= 3.0 * noise:
            return False
        factor = max(0.5, 3.0 * noise / qrs)
        self._qrs_peaks = deque(
            (q * factor for q in self._qrs_peaks), maxlen=self._qrs_peaks.maxlen
        )
        return True

    def _accept(
        self, c: _Candidate, confirmed_at: int, searched_back: bool
    ) -> Detection:
        s = self.settings
        if self._last_qrs is not None:
            rr = c.index - self._last_qrs
            if s.rr_min_s * self.fs_hz <= rr <= s.rr_max_s * self.fs_hz:
                self._rr.append(rr)
        self._qrs_peaks.append(c.energy)
        self._last_qrs = c.index
        self._last_slope = c.slope
        self._noise_since_qrs = [n for n in self._noise_since_qrs if n.index > c.index]
        rr_mean = (
            statistics.fmean(self._rr) if self._rr else s.rr_default_s * self.fs_hz
        )
        self._deadline = c.index + int(round(s.search_back_rr * rr_mean))
        return Detection(
            sample=self._locate_r(c),
            confirmed_at=int(confirmed_at),
            energy=c.energy,
            searched_back=searched_back,
        )

    def _r_options(self, peak_index: int) -> tuple[int, float, int, float]:
        """Where R may be for a candidate, found while its samples are held.

        First the largest absolute value of the 5-15 Hz QRS band between
        ``r_search_s`` and ``r_search_end_s`` before the energy peak marks
        the QRS (baseline artifacts barely reach that band). Then, within
        ``r_refine_s`` of it, the ECG's highest and lowest samples are the
        two choices.

        Returns
        -------
        tuple
            Stream index and value (mV) of the highest sample, then of the
            lowest.
        """
        a = max(peak_index - self._r_search, self._qrs_band.first)
        b = max(a + 1, peak_index - self._r_search_end + 1)
        centre = a + int(np.argmax(np.abs(self._qrs_band.get(a, b))))
        a = max(centre - self._r_refine, self._ecg.first)
        b = min(centre + self._r_refine + 1, self._ecg.end)
        seg = self._ecg.get(a, b)
        hi, lo = int(np.argmax(seg)), int(np.argmin(seg))
        return a + hi, float(seg[hi]), a + lo, float(seg[lo])

    def _locate_r(self, c: _Candidate) -> int:
        """R: the extreme of the sign the recent beats agree on.

        Unless the other sign is more than ``1 / polarity_ratio`` times
        larger (an opposite-polarity ectopic beat); without agreement, the
        larger of the two.
        """
        hi_at, hi, lo_at, lo = c.r_options
        take_high = hi >= -lo
        if self._polarity > 0 and hi >= self.settings.polarity_ratio * -lo:
            take_high = True
        elif self._polarity < 0 and -lo >= self.settings.polarity_ratio * hi:
            take_high = False
        self._signs.append(1 if take_high else -1)
        total = sum(self._signs)
        self._polarity = int(np.sign(total)) if abs(total) >= 4 else 0
        return hi_at if take_high else lo_at
