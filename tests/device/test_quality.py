"""Quality flags: each cause is named, flags are causal and chunk-invariant."""

from __future__ import annotations

import numpy as np

from beatguard.device.quality import QualityMonitor
from beatguard.device.types import Quality

FS = 360.0
GAIN = 200.0


def _flags(counts, leads_off=None, chunk=None, rails=(0.0, 2047.0)):
    q = QualityMonitor(FS, GAIN, rails)
    chunk = chunk or len(counts)
    out = []
    for i in range(0, len(counts), chunk):
        lo = None if leads_off is None else leads_off[i : i + chunk]
        raw = q.input_flags(counts[i : i + chunk], lo)
        mv = (counts[i : i + chunk] - 1024.0) / GAIN
        out.append(q.process(raw, mv))
    return np.concatenate(out)


def _ecg_like(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * FS)) / FS
    beats = np.exp(-(((t % 0.8) - 0.4) ** 2) / (2 * 0.012**2))  # 1 mV spikes
    return np.round(1024 + GAIN * (beats + 0.1 * np.sin(2 * np.pi * 0.3 * t)))


def test_clean_signal_has_no_flags():
    assert not _flags(_ecg_like(20)).any()


def test_each_cause_raises_its_own_flag():
    x = _ecg_like(40)
    lo = np.zeros(len(x), dtype=bool)
    x[int(5 * FS) : int(7 * FS)] = 2047  # rail
    lo[int(12 * FS) : int(14 * FS)] = True  # electrode off
    x[int(20 * FS) : int(23 * FS)] = 1000  # flat
    rng = np.random.default_rng(0)
    x[int(28 * FS) : int(31 * FS)] += np.round(rng.normal(0, GAIN, int(3 * FS)))
    x[int(35 * FS)] = np.nan
    f = _flags(x, lo)

    def flags_in(a_s, b_s):
        return Quality(int(np.bitwise_or.reduce(f[int(a_s * FS) : int(b_s * FS)])))

    assert flags_in(5.2, 7) == Quality.SATURATED | Quality.FLAT
    assert flags_in(12, 14) == Quality.LEADS_OFF
    assert Quality.FLAT in flags_in(21.5, 23)
    assert Quality.NOISY in flags_in(29, 31)
    assert flags_in(35, 35.1) == Quality.MISSING
    assert not f[int(9 * FS) : int(11 * FS)].any()
    # flags outlast their cause by the hold time, then clear
    assert f[int(14 * FS) + int(0.4 * FS)] & Quality.LEADS_OFF
    assert not f[int(14 * FS) + int(0.6 * FS)]


def test_a_briefly_clipped_r_peak_is_not_saturation():
    x = _ecg_like(10)
    peaks = np.flatnonzero(x > 1024 + 0.9 * GAIN)
    x[peaks] = 2047  # every R peak clipped for a few samples
    assert not _flags(x).any()


def test_flags_do_not_depend_on_chunking():
    x = _ecg_like(30)
    x[int(5 * FS) : int(8 * FS)] = 1000
    x[int(12 * FS) : int(12 * FS) + 40] = np.nan
    rng = np.random.default_rng(1)
    x[int(20 * FS) : int(23 * FS)] += np.round(rng.normal(0, GAIN, int(3 * FS)))
    whole = _flags(x)
    for chunk in (1, 7, 500):
        np.testing.assert_array_equal(_flags(x, chunk=chunk), whole)


def test_flags_are_causal():
    x = _ecg_like(20)
    full = _flags(x)
    y = x.copy()
    y[int(15 * FS) :] = np.nan  # changing the future changes nothing before it
    np.testing.assert_array_equal(_flags(y)[: int(15 * FS)], full[: int(15 * FS)])


def test_unknown_adc_disables_the_rail_check():
    x = _ecg_like(10)
    x[int(2 * FS) : int(2.5 * FS)] = 2047
    assert not (_flags(x, rails=None) & Quality.SATURATED).any()
