"""Causal streaming IIR filters that survive missing samples.

A :class:`StreamingFilter` runs a second-order-sections filter with
``scipy.signal.sosfilt`` and carries its state from chunk to chunk, so any
chunking of the input gives the same output. Non-finite input samples
(NaN, inf) never reach the state: the output is NaN there and the state is
held, so filtering resumes at the next finite sample as if the missing
samples had been skipped. Holding beats restarting from the steady state
of the next sample: the held state still carries the baseline, so the
output rejoins that of an uninterrupted run within a fraction of a second.
The very first sample (and the first after ``reset()``) starts the filter
in the steady state of that sample, so there is no start-up step. The
filters add no look-ahead; their phase delay is that of the causal IIR
design.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray
from scipy import signal

from beatguard.device.errors import ConfigError

#: ``design_bandpass`` clips its high edge to this share of the sample rate.
HIGH_EDGE_MAX_SHARE = 0.45


def design_bandpass(
    fs_hz: float, low_hz: float, high_hz: float, order: int = 2
) -> NDArray[np.float64]:
    """Butterworth band-pass as second-order sections.

    Parameters
    ----------
    fs_hz : float
        Sample rate in hertz.
    low_hz, high_hz : float
        Pass-band edges in hertz (-3 dB); ``high_hz`` is clipped to 45 % of
        ``fs_hz`` (``HIGH_EDGE_MAX_SHARE``) so the design stays valid at low
        sample rates.
    order : int
        Butterworth order of each edge (the band-pass has ``2 * order`` poles).

    Returns
    -------
    NDArray[np.float64], shape (sections, 6)

    Raises
    ------
    ConfigError
        If the edges are not ``0 < low_hz < high_hz``.
    """
    high_hz = min(high_hz, HIGH_EDGE_MAX_SHARE * fs_hz)
    if not 0 < low_hz < high_hz:
        raise ConfigError(
            f"band-pass edges {low_hz}-{high_hz} Hz do not fit {fs_hz} Hz sampling"
        )
    return signal.butter(
        order, [low_hz, high_hz], btype="bandpass", fs=fs_hz, output="sos"
    )


def lowest_bandpass_fs_hz(low_hz: float) -> int:
    """The lowest whole sample rate, in hertz, a band-pass from ``low_hz`` fits.

    The high edge is clipped to ``HIGH_EDGE_MAX_SHARE`` of the sample rate
    and must stay above ``low_hz``.
    """
    return math.floor(low_hz / HIGH_EDGE_MAX_SHARE) + 1


def design_notch(fs_hz: float, notch_hz: float, quality: float = 25.0) -> NDArray:
    """Second-order IIR notch for mains hum (50 or 60 Hz).

    Parameters
    ----------
    fs_hz : float
        Sample rate in hertz.
    notch_hz : float
        Centre frequency in hertz; must be below ``fs_hz / 2``.
    quality : float
        Quality factor (centre / -3 dB bandwidth); 25 gives a 2 Hz (50 Hz)
        to 2.4 Hz (60 Hz) wide notch.

    Returns
    -------
    NDArray[np.float64], shape (1, 6)

    Raises
    ------
    ConfigError
        If ``notch_hz`` is not below the Nyquist frequency.
    """
    if not 0 < notch_hz < fs_hz / 2:
        raise ConfigError(f"notch at {notch_hz} Hz is impossible at {fs_hz} Hz")
    b, a = signal.iirnotch(notch_hz, quality, fs=fs_hz)
    return signal.tf2sos(b, a)


class StreamingFilter:
    """A causal SOS filter with carried state, tolerant of non-finite samples.

    Parameters
    ----------
    sos : NDArray[np.float64], shape (sections, 6)
        Second-order sections (``scipy.signal`` layout).

    Notes
    -----
    Adds no look-ahead. Output sample ``k`` depends only on the finite
    inputs up to ``k`` since the start or the last ``reset()``.
    """

    def __init__(self, sos: NDArray[np.float64]) -> None:
        self.sos = np.asarray(sos, dtype=np.float64)
        self._zi_unit = signal.sosfilt_zi(self.sos)
        self._zi: NDArray[np.float64] | None = None

    def reset(self) -> None:
        """Forget the state; the next finite sample starts a steady state."""
        self._zi = None

    def process(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        """Filter the next chunk.

        Parameters
        ----------
        x : NDArray[np.float64], shape (n,)
            Input samples; NaN or inf where a sample is missing.

        Returns
        -------
        NDArray[np.float64], shape (n,)
            Filtered samples; NaN where the input was not finite.
        """
        x = np.asarray(x, dtype=np.float64)
        if x.size == 0:
            return x.copy()
        finite = np.isfinite(x)
        if finite.all():
            return self._run(x)
        out = np.full(x.shape, np.nan)
        if finite.any():
            out[finite] = self._run(x[finite])
        return out

    def _run(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        if self._zi is None:
            self._zi = self._zi_unit * x[0]
        y, self._zi = signal.sosfilt(self.sos, x, zi=self._zi)
        return y
