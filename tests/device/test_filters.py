"""Streaming filters: chunking invariance, missing samples, notch and band-pass."""

from __future__ import annotations

import numpy as np
import pytest

from beatguard.device.errors import ConfigError
from beatguard.device.filters import StreamingFilter, design_bandpass, design_notch

FS = 360.0


def _signal(n: int = 4000) -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(n) / FS
    return np.sin(2 * np.pi * 1.3 * t) + 0.2 * rng.standard_normal(n) + 3.0


def test_streaming_filter_output_does_not_depend_on_chunking():
    x = _signal()
    sos = design_bandpass(FS, 0.5, 40.0)
    whole = StreamingFilter(sos).process(x)
    f = StreamingFilter(sos)
    rng = np.random.default_rng(1)
    parts, i = [], 0
    while i < len(x):
        k = int(rng.integers(0, 50))
        parts.append(f.process(x[i : i + k]))
        i += k
    np.testing.assert_allclose(np.concatenate(parts), whole, rtol=0, atol=1e-12)


def test_filter_starts_in_steady_state_without_a_step():
    y = StreamingFilter(design_bandpass(FS, 0.5, 40.0)).process(np.full(100, 5.0))
    np.testing.assert_allclose(y, 0.0, atol=1e-9)


def test_non_finite_samples_never_reach_the_filter_state():
    x = _signal()
    bad = x.copy()
    bad[1000] = np.nan
    bad[2000:2050] = np.nan
    bad[3000] = np.inf
    f = StreamingFilter(design_bandpass(FS, 0.5, 40.0))
    y = np.concatenate([f.process(bad[i : i + 333]) for i in range(0, len(x), 333)])
    missing = ~np.isfinite(bad)
    assert np.all(np.isnan(y[missing]))
    assert np.all(np.isfinite(y[~missing]))
    assert np.all(np.isfinite(f._zi))
    # skipping the missing samples is exactly what the filter did
    skipped = StreamingFilter(design_bandpass(FS, 0.5, 40.0)).process(bad[~missing])
    np.testing.assert_allclose(y[~missing], skipped, atol=1e-12)


def test_all_missing_chunk_leaves_state_untouched():
    f = StreamingFilter(design_bandpass(FS, 0.5, 40.0))
    f.process(_signal(500))
    state = f._zi.copy()
    out = f.process(np.full(20, np.nan))
    assert np.all(np.isnan(out))
    np.testing.assert_array_equal(f._zi, state)
    assert f.process(np.zeros(0)).shape == (0,)


@pytest.mark.parametrize("mains_hz", [50.0, 60.0])
def test_notch_removes_mains_hum_and_keeps_the_band(mains_hz):
    t = np.arange(int(10 * FS)) / FS
    hum = np.sin(2 * np.pi * mains_hz * t)
    tone = np.sin(2 * np.pi * 10.0 * t)
    f = StreamingFilter(design_notch(FS, mains_hz))
    y = f.process(hum + tone)[int(2 * FS) :]
    residual = y - tone[int(2 * FS) :]
    assert np.sqrt(np.mean(residual**2)) < 0.02


def test_bandpass_rejects_baseline_wander_and_high_frequency():
    t = np.arange(int(20 * FS)) / FS
    f = StreamingFilter(design_bandpass(FS, 0.5, 40.0))
    wander = f.process(np.sin(2 * np.pi * 0.05 * t))[int(5 * FS) :]
    f.reset()
    emg = f.process(np.sin(2 * np.pi * 120.0 * t))[int(5 * FS) :]
    f.reset()
    qrs_band = f.process(np.sin(2 * np.pi * 10.0 * t))[int(5 * FS) :]
    assert np.max(np.abs(wander)) < 0.02
    assert np.max(np.abs(emg)) < 0.15
    assert np.max(np.abs(qrs_band)) > 0.95


def test_designs_refuse_impossible_frequencies():
    with pytest.raises(ConfigError):
        design_bandpass(FS, 40.0, 0.5)
    with pytest.raises(ConfigError):
        design_notch(100.0, 60.0)
    sos = design_bandpass(100.0, 0.5, 40.0)  # high edge clipped below Nyquist
    assert np.all(np.isfinite(sos))
