"""Beat windows: span in seconds, resampling, normalization, refusal."""

from __future__ import annotations

import numpy as np
import pytest

from beatguard.device.errors import ConfigError
from beatguard.device.types import Quality
from beatguard.device.windows import BeatWindower


def _windower(fs=360.0, normalization="zscore"):
    return BeatWindower(fs, 0.25, 0.45, 64, normalization)


def test_window_spans_the_same_seconds_at_any_sample_rate():
    cut = {}
    for fs in (250.0, 360.0, 500.0):
        t = np.arange(int(5 * fs)) / fs
        ramp = t.copy()  # value = time in seconds
        w = BeatWindower(fs, 0.25, 0.45, 64, "relative")
        w.append(ramp, np.zeros(len(t), np.uint8))
        r = int(2.0 * fs)
        raw = w._ecg.get(r + w._lo, r + w._hi)
        cut[fs] = np.interp(w._offsets - w._lo, np.arange(len(raw)), raw)
        np.testing.assert_allclose(cut[fs][[0, -1]], [1.75, 2.45], atol=1e-9)
    np.testing.assert_allclose(cut[250.0], cut[500.0], atol=1e-9)


def test_zscore_windows_have_zero_mean_and_unit_deviation():
    w = _windower()
    rng = np.random.default_rng(0)
    x = rng.standard_normal(3600) * 3.0 + 7.0
    w.append(x, np.zeros(3600, np.uint8))
    window = w.cut(1800)
    assert window.shape == (64,) and window.dtype == np.float32
    assert abs(window.mean()) < 1e-5 and window.std() == pytest.approx(1.0, abs=1e-5)


def test_relative_windows_scale_by_the_recent_beats():
    w = _windower(normalization="relative")
    t = np.arange(3600) / 360.0
    x = np.sin(2 * np.pi * 2.0 * t)
    x[2000:] *= 3.0
    w.append(x, np.zeros(3600, np.uint8))
    first = [np.ptp(w.cut(r)) for r in (300, 600, 900, 1200)]
    tall = np.ptp(w.cut(2500))
    assert first == pytest.approx([1.0] * 4, abs=0.05)
    assert tall == pytest.approx(3.0, rel=0.1)


def test_window_touching_a_flagged_sample_is_refused():
    w = _windower()
    x = np.sin(np.arange(3600) / 20.0)
    flags = np.zeros(3600, np.uint8)
    flags[1900] = Quality.NOISY
    w.append(x, flags)
    assert w.cut(1850) is None  # 1900 lies inside its window
    assert w.cut(1500) is not None
    assert w.cut(3590) is None  # not complete yet
    assert not w.ready(3590)


def test_windows_never_contain_nan():
    w = _windower()
    x = np.sin(np.arange(3600) / 20.0)
    x[1000:1003] = np.nan  # kept out of the filters without a flag
    w.append(x, np.zeros(3600, np.uint8))
    assert np.all(np.isfinite(w.cut(1000)))


def test_unusable_settings_are_refused():
    with pytest.raises(ConfigError):
        BeatWindower(360.0, 0.25, 0.45, 64, "minmax")
    with pytest.raises(ConfigError):
        BeatWindower(360.0, 0.25, 0.0, 64)
