"""Signal-quality flags computed sample by sample, causally.

:class:`QualityMonitor` marks each sample with :class:`Quality` flags:

* ``MISSING``   the sample is NaN or infinite;
* ``LEADS_OFF`` the source (AD8232 LO pins) reported an electrode off;
* ``SATURATED`` the signal has sat at an ADC rail for ``saturation_min_s``
  (brief clipping of a tall R peak does not count);
* ``FLAT``      the last ``flat_window_s`` varied by at most
  ``flat_max_counts`` (amplifier asleep, cable shorted, constant input);
* ``NOISY``     the typical RMS of the 25-40 Hz band (after any mains
  notch) over the last half second exceeds ``noise_max_mv``: muscle noise or
  broadband interference strong enough to bury QRS complexes. "Typical"
  is the median over 50 ms blocks, so the QRS complexes themselves, which
  are rich in that band but brief, do not count.

Each flag is held for ``hold_s`` after its cause ends, so the filters'
transients die out before beats are trusted again. Everything is causal
and carried across chunks: any chunking gives the same flags.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray
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


def flag_column(flag: Quality) -> int:
    """Column of ``flag`` in the raw flag arrays of :class:`QualityMonitor`."""
    return _FLAG_ORDER.index(flag)


@dataclass(frozen=True)
class QualitySettings:
    """Limits of :class:`QualityMonitor`.

    Attributes
    ----------
    saturation_min_s : float
        Shortest run of samples at a rail called SATURATED, seconds; an R
        peak clipped for a few milliseconds is not.
    flat_window_s : float
        Length of the window whose range decides FLAT, seconds.
    flat_max_counts : float
        Largest range (ADC counts) still called flat.
    noise_band_hz : tuple[float, float]
        Band whose RMS measures noise, hertz.
    noise_block_s : float
        Length of the blocks whose power is measured, seconds.
    noise_window_s : float
        Span of blocks whose median power is the noise level, seconds.
    noise_max_mv : float
        RMS of the noise band above which the signal is NOISY, millivolts.
    hold_s : float
        How long a flag stays on after its cause ends, seconds.
    """

    saturation_min_s: float = 0.1
    flat_window_s: float = 1.0
    flat_max_counts: float = 1.0
    noise_band_hz: tuple[float, float] = (25.0, 40.0)
    noise_block_s: float = 0.05
    noise_window_s: float = 0.5
    noise_max_mv: float = 0.12
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
        self._saturation_n = max(1, int(round(s.saturation_min_s * fs_hz)))
        self._flat_n = max(2, int(round(s.flat_window_s * fs_hz)))
        self._hold_n = max(0, int(round(s.hold_s * fs_hz)))
        self._noise_filter = StreamingFilter(design_bandpass(fs_hz, *s.noise_band_hz))
        self._block_n = max(1, int(round(s.noise_block_s * fs_hz)))
        self._median_blocks = max(1, int(round(s.noise_window_s / s.noise_block_s)))
        self.reset()

    def reset(self) -> None:
        """Forget all state (after a gap in the stream)."""
        self._noise_filter.reset()
        self._partial = np.zeros(0)  # noise-band power of an unfinished block
        self._recent_blocks = np.zeros(0)  # power of the last blocks
        self._noisy_now = False
        self._recent_counts = np.zeros(0)  # last flat_n - 1 counts, forward-filled
        self._last_finite = np.nan
        self._seen = 0
        self._rail_run = 0  # rail samples in a row at the end of the last chunk
        self._recent_raw = np.zeros((0, len(_FLAG_ORDER)), dtype=bool)

    def input_flags(
        self, counts: NDArray[np.float64], leads_off: NDArray[np.bool_] | None
    ) -> NDArray[np.bool_]:
        """Flags that need only the raw input, before any filtering.

        Call once per chunk, before :meth:`process`. The samples flagged
        MISSING, LEADS_OFF or SATURATED here are the ones the chain keeps
        out of its filters.

        Parameters
        ----------
        counts : NDArray[np.float64], shape (n,)
            Raw ADC counts (NaN or inf where missing).
        leads_off : NDArray[np.bool_] or None, shape (n,)
            Leads-off flags from the source, if it reports them.

        Returns
        -------
        NDArray[np.bool_], shape (n, 5)
            Unheld flags in ``_FLAG_ORDER`` (NOISY still unset).
        """
        n = len(counts)
        raw = np.zeros((n, len(_FLAG_ORDER)), dtype=bool)
        if n == 0:
            return raw
        finite = np.isfinite(counts)
        if leads_off is not None:
            raw[:, 0] = np.asarray(leads_off, dtype=bool)
        self._at_rail = np.zeros(n, dtype=bool)
        if self.rails is not None:
            lo, hi = self.rails
            self._at_rail = finite & ((counts <= lo) | (counts >= hi))
            raw[:, 1] = self._saturated(self._at_rail)
        raw[:, 2] = self._flat(counts, finite)
        raw[:, 4] = ~finite
        return raw

    def keep_out(self, raw: NDArray[np.bool_]) -> NDArray[np.bool_]:
        """Samples whose values must not reach a filter.

        Missing samples, samples with an electrode off and every sample at
        an ADC rail (even a briefly clipped R peak) of the chunk last given
        to :meth:`input_flags`.
        """
        return raw[:, 0] | raw[:, 2] | raw[:, 4] | self._at_rail

    def process(
        self, raw: NDArray[np.bool_], notched_mv: NDArray[np.float64]
    ) -> NDArray[np.uint8]:
        """Complete the flags of the chunk and hold them.

        Parameters
        ----------
        raw : NDArray[np.bool_], shape (n, 5)
            What :meth:`input_flags` returned for this chunk.
        notched_mv : NDArray[np.float64], shape (n,)
            The signal in millivolts after the optional mains notch, NaN
            where kept out of the filters.

        Returns
        -------
        NDArray[np.uint8], shape (n,)
            ``Quality`` bits per sample, each held for ``hold_s``.
        """
        if len(raw) == 0:
            return np.zeros(0, dtype=np.uint8)
        raw = raw.copy()
        raw[:, 3] = self._noisy(notched_mv)
        held = self._hold(raw)
        bits = np.array([int(f) for f in _FLAG_ORDER], dtype=np.uint8)
        return (held.astype(np.uint8) * bits).sum(axis=1).astype(np.uint8)

    def _saturated(self, at_rail: NDArray[np.bool_]) -> NDArray[np.bool_]:
        """True where the run of rail samples ending there is long enough."""
        positions = np.arange(len(at_rail))
        last_off = np.where(at_rail, -1, positions)
        np.maximum.accumulate(last_off, out=last_off)
        run = np.where(
            last_off >= 0, positions - last_off, positions + 1 + self._rail_run
        )
        if len(run):
            self._rail_run = int(run[-1])
        return run >= self._saturation_n

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
        """NOISY from the median power of the noise band over short blocks.

        The band is cut into blocks of ``noise_block_s``; a block's power is
        its mean square. The noise level is the median power of the last
        ``noise_window_s`` of blocks, so QRS complexes (a few blocks per
        second) do not count as noise. Samples take the decision of the
        last completed block.
        """
        band = self._noise_filter.process(notched_mv)
        power = np.where(np.isfinite(band), band * band, 0.0)
        b = self._block_n
        joined = np.concatenate((self._partial, power))
        n_blocks = len(joined) // b
        if n_blocks == 0:  # no block completed: the last decision stands
            self._partial = joined
            return np.full(len(power), self._noisy_now)
        used = n_blocks * b
        block_power = joined[:used].reshape(n_blocks, b).mean(axis=1)
        history = np.concatenate((self._recent_blocks, block_power))
        m = self._median_blocks
        if len(history) >= m:
            medians = np.median(sliding_window_view(history, m), axis=1)
            medians = medians[max(0, len(medians) - n_blocks) :]
        else:
            medians = np.full(n_blocks, np.nan)
        if len(medians) < n_blocks:
            medians = np.concatenate(
                (np.full(n_blocks - len(medians), np.nan), medians)
            )
        decisions = medians > self.settings.noise_max_mv**2
        # sample j of ``joined`` lies in block j // b; it takes the decision
        # of the block before it (block -1 is the carried decision)
        per_block = np.concatenate(([self._noisy_now], decisions))
        first = len(self._partial)
        idx = np.arange(first, len(joined)) // b
        out = per_block[idx]
        if n_blocks:
            self._noisy_now = bool(decisions[-1])
        self._partial = joined[used:]
        self._recent_blocks = history[-(m - 1) :]
        return out

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
