"""Signal-quality flags computed sample by sample, causally.

:class:`QualityMonitor` marks each sample with :class:`Quality` flags:

* ``MISSING``   the sample is NaN or infinite;
* ``LEADS_OFF`` the source (AD8232 LO pins) reported an electrode off;
* ``SATURATED`` the sample sits at an ADC rail;
* ``FLAT``      the last ``flat_window_s`` varied by at most
  ``flat_max_counts`` (amplifier asleep, cable shorted, constant input);
* ``NOISY``     the 1 s RMS of the 25-40 Hz band (after any mains notch)
  exceeds ``noise_max_mv``: muscle noise or broadband interference strong
  enough to bury QRS complexes.

Each flag is held for ``hold_s`` after its cause ends, so the filters'
transients die out before beats are trusted again. Everything is causal
and carried across chunks: any chunking gives the same flags.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import signal
from scipy.ndimage import maximum_filter1d, minimum_filter1d

from beatguard.device.filters import StreamingFilter, design_bandpass
from beatguard.device.types import Quality

_FLAG_ORDER = (
    Quality.LEADS_OFF,
    Quality.SATURATED,
    Quality.FLAT,
    Quality.NOISY,
    Quality.MISSING,
)


@dataclass(frozen=True)
class QualitySettings:
    """Limits of :class:`QualityMonitor`.

    Attributes
    ----------
    flat_window_s : float
        Length of the window whose range decides FLAT, seconds.
    flat_max_counts : float
        Largest range (ADC counts) still called flat.
    noise_band_hz : tuple[float, float]
        Band whose RMS measures noise, hertz.
    noise_window_s : float
        Averaging window of the noise RMS, seconds.
    noise_max_mv : float
        RMS of the noise band above which the signal is NOISY, millivolts.
    hold_s : float
        How long a flag stays on after its cause ends, seconds.
    """

    flat_window_s: float = 1.0
    flat_max_counts: float = 1.0
    noise_band_hz: tuple[float, float] = (25.0, 40.0)
    noise_window_s: float = 1.0
    noise_max_mv: float = 0.1
    hold_s: float = 0.5


class QualityMonitor:
    """Per-sample quality flags for a stream of ADC counts.

    Parameters
    ----------
    fs_hz : float
        Sample rate in hertz.
    gain_counts_per_mv : float
        ADC counts per millivolt.
    rails_counts : tuple[float, float] | None
        Lowest and highest ADC count; None disables the saturation check.
    settings : QualitySettings, optional

    Notes
    -----
    Adds no look-ahead: the flags of sample ``k`` depend on samples up to
    ``k`` only.
    """

    def __init__(
        self,
        fs_hz: float,
        gain_counts_per_mv: float,
        rails_counts: tuple[float, float] | None,
        settings: QualitySettings | None = None,
    ) -> None:
        self.settings = s = settings or QualitySettings()
        self.fs_hz = float(fs_hz)
        self.gain = float(gain_counts_per_mv)
        self.rails = rails_counts
        self._flat_n = max(2, int(round(s.flat_window_s * fs_hz)))
        self._hold_n = max(0, int(round(s.hold_s * fs_hz)))
        self._noise_filter = StreamingFilter(design_bandpass(fs_hz, *s.noise_band_hz))
        n_avg = max(1, int(round(s.noise_window_s * fs_hz)))
        self._avg_b = np.full(n_avg, 1.0 / n_avg)
        self.reset()

    def reset(self) -> None:
        """Forget all state (after a gap in the stream)."""
        self._noise_filter.reset()
        self._avg_zi = np.zeros(len(self._avg_b) - 1)
        self._recent_counts = np.zeros(0)  # last flat_n - 1 counts, forward-filled
        self._last_finite = np.nan
        self._seen = 0
        self._recent_raw = np.zeros((0, len(_FLAG_ORDER)), dtype=bool)

    def process(
        self,
        counts: NDArray[np.float64],
        notched_mv: NDArray[np.float64],
        leads_off: NDArray[np.bool_] | None,
    ) -> NDArray[np.uint8]:
        """Flags of the next chunk.

        Parameters
        ----------
        counts : NDArray[np.float64], shape (n,)
            Raw ADC counts (NaN or inf where missing).
        notched_mv : NDArray[np.float64], shape (n,)
            The signal in millivolts after the optional mains notch.
        leads_off : NDArray[np.bool_] or None, shape (n,)
            Leads-off flags from the source, if it reports them.

        Returns
        -------
        NDArray[np.uint8], shape (n,)
            ``Quality`` bits per sample, held for ``hold_s``.
        """
        n = len(counts)
        raw = np.zeros((n, len(_FLAG_ORDER)), dtype=bool)
        if n == 0:
            return np.zeros(0, dtype=np.uint8)
        finite = np.isfinite(counts)
        if leads_off is not None:
            raw[:, 0] = np.asarray(leads_off, dtype=bool)
        if self.rails is not None:
            lo, hi = self.rails
            raw[:, 1] = finite & ((counts <= lo) | (counts >= hi))
        raw[:, 2] = self._flat(counts, finite)
        raw[:, 3] = self._noisy(notched_mv)
        raw[:, 4] = ~finite
        held = self._hold(raw)
        bits = np.array([int(f) for f in _FLAG_ORDER], dtype=np.uint8)
        return (held.astype(np.uint8) * bits).sum(axis=1).astype(np.uint8)

    def _flat(self, counts: NDArray, finite: NDArray[np.bool_]) -> NDArray[np.bool_]:
        filled = _forward_fill(counts, finite, self._last_finite)
        if finite.any():
            self._last_finite = float(counts[np.flatnonzero(finite)[-1]])
        joined = np.concatenate((self._recent_counts, filled))
        k = len(self._recent_counts)
        w = self._flat_n
        size_ok = np.isfinite(joined)
        spread = maximum_filter1d(
            np.where(size_ok, joined, -np.inf), w, origin=(w - 1) // 2
        ) - minimum_filter1d(np.where(size_ok, joined, np.inf), w, origin=(w - 1) // 2)
        # the filters above look back over the w samples ending at each index
        count_before = self._seen - k
        positions = count_before + np.arange(len(joined))
        enough = positions >= w - 1
        flat = enough & (spread <= self.settings.flat_max_counts) & size_ok
        self._seen += len(counts)
        self._recent_counts = joined[-(w - 1) :] if w > 1 else joined[:0]
        return flat[k:] & finite

    def _noisy(self, notched_mv: NDArray[np.float64]) -> NDArray[np.bool_]:
        band = self._noise_filter.process(notched_mv)
        band = np.where(np.isfinite(band), band, 0.0)
        power, self._avg_zi = signal.lfilter(
            self._avg_b, 1.0, band * band, zi=self._avg_zi
        )
        return power > self.settings.noise_max_mv**2

    def _hold(self, raw: NDArray[np.bool_]) -> NDArray[np.bool_]:
        """Keep each flag on for ``hold_n`` samples after it was last raised."""
        h = self._hold_n
        joined = np.concatenate((self._recent_raw, raw))
        k = len(self._recent_raw)
        if h == 0:
            held = joined
        else:
            csum = np.cumsum(joined, axis=0, dtype=np.int64)
            lagged = np.zeros_like(csum)
            lagged[h + 1 :] = csum[: -(h + 1)]
            held = (csum - lagged) > 0
        self._recent_raw = joined[-h:] if h else joined[:0]
        return held[k:]


def _forward_fill(
    x: NDArray[np.float64], finite: NDArray[np.bool_], last: float
) -> NDArray[np.float64]:
    """Replace non-finite samples by the last finite one (``last`` before x)."""
    if finite.all():
        return x.astype(np.float64, copy=True)
    idx = np.where(finite, np.arange(len(x)), -1)
    np.maximum.accumulate(idx, out=idx)
    out = np.where(idx >= 0, x[np.maximum(idx, 0)], last)
    return out.astype(np.float64)
