"""The streaming chain: chunking invariance, configuration, beats and RR."""

from __future__ import annotations

import math

import numpy as np
import pytest

from beatguard.device.chain import ChainConfig, SignalChain, beats_from_record
from beatguard.device.errors import ConfigError
from beatguard.device.records import read_record


def _feed(chain: SignalChain, counts: np.ndarray, sizes) -> list:
    beats = []
    i = 0
    for size in sizes:
        beats += chain.process(counts[i : i + size]).beats
        i += size
        if i >= len(counts):
            break
    beats += chain.process(counts[i:]).beats
    beats += chain.finish().beats
    return beats


@pytest.fixture(scope="module")
def record_106(mitdb):
    return read_record(mitdb / "106")


def test_chain_gives_identical_beats_whole_sample_by_sample_and_in_random_chunks(
    record_106,
):
    counts = record_106.counts[: 60 * 360]  # one minute with PVCs
    config = ChainConfig.for_record(record_106)
    whole = _feed(SignalChain(config), counts, [len(counts)])
    single = _feed(SignalChain(config), counts, [1] * len(counts))
    rng = np.random.default_rng(7)
    chunked = _feed(SignalChain(config), counts, rng.integers(0, 700, 2000))
    assert len(whole) > 60
    for other in (single, chunked):
        assert [b.sample for b in other] == [b.sample for b in whole]
        assert [b.emitted_at_sample for b in other] == [
            b.emitted_at_sample for b in whole
        ]
        for a, b in zip(whole, other, strict=True):
            np.testing.assert_allclose(a.window, b.window, rtol=0, atol=1e-5)
            assert a.rr_before_s == b.rr_before_s or (
                math.isnan(a.rr_before_s) and math.isnan(b.rr_before_s)
            )


def test_beats_carry_windows_rr_and_emission_time(record_106):
    config = ChainConfig.for_record(record_106)
    assert config.normalization == "relative"
    beats = beats_from_record(record_106, config, 0, 120 * 360)
    fs = config.fs_hz
    for beat in beats:
        assert beat.window.shape == (64,) and beat.window.dtype == np.float32
        assert np.all(np.isfinite(beat.window))
        # relative normalization (the default): median 0, and the window's
        # peak-to-peak is its share of the recent beats' median peak-to-peak
        assert abs(float(np.median(beat.window))) < 1e-4
        assert 0.2 < float(np.ptp(beat.window)) < 5.0
        window_end = beat.sample + math.ceil(config.window_after_s * fs)
        assert beat.emitted_at_sample >= window_end
    # ordinary beats leave no later than the documented delay
    late = [b for b in beats if b.emitted_at_sample - b.sample > config.fs_hz * 0.46]
    assert len(late) <= len(beats) // 50
    assert math.isnan(beats[0].rr_before_s)
    rr = np.array([b.rr_before_s for b in beats[1:]])
    np.testing.assert_allclose(rr, np.diff([b.sample for b in beats]) / fs)
    # rr_avg_s is the mean of the RR intervals before the beat
    k = 12
    expected = np.mean([b.rr_before_s for b in beats[k - 8 : k]])
    assert beats[k].rr_avg_s == pytest.approx(expected)


def test_default_window_spans_a_quarter_second_before_to_045_after_r():
    config = ChainConfig()
    assert config.window_before_s == 0.25
    assert config.window_after_s == 0.45
    assert config.window_points == 64
    assert SignalChain(config).delay_s < 0.5


def test_beats_from_record_reports_samples_of_the_whole_record(record_106):
    config = ChainConfig.for_record(record_106)
    start = 200 * 360
    part = beats_from_record(record_106, config, start, start + 60 * 360)
    assert part and all(start <= b.sample < start + 60 * 360 for b in part)
    ref = record_106.annotations.beats().samples
    nearest = np.min(
        np.abs(ref[None, :] - np.array([b.sample for b in part])[:, None]), axis=1
    )
    assert np.median(nearest) < 0.05 * 360


def test_reset_forgets_state_and_continues_stream_indices(record_106):
    config = ChainConfig.for_record(record_106)
    chain = SignalChain(config)
    counts = record_106.counts
    chain.process(counts[: 20 * 360])
    chain.reset(next_sample=50_000)
    beats = chain.process(counts[: 30 * 360]).beats
    fresh = SignalChain(config).process(counts[: 30 * 360]).beats
    assert [b.sample - 50_000 for b in beats] == [b.sample for b in fresh]
    assert chain.next_sample == 50_000 + 30 * 360


def test_relative_normalization_keeps_a_change_of_amplitude_zscore_does_not(
    record_106,
):
    fs = 360
    counts = record_106.counts[: 120 * fs].copy()
    base = record_106.baseline_counts
    counts[60 * fs :] = base + 2.0 * (counts[60 * fs :] - base)  # gain doubles

    def spans(normalization: str) -> tuple[np.ndarray, np.ndarray]:
        config = ChainConfig.for_record(record_106, normalization=normalization)
        chain = SignalChain(config)
        beats = chain.process(counts).beats + chain.finish().beats
        t = np.array([b.sample / fs for b in beats])
        return t, np.array([np.ptp(b.window) for b in beats])

    t, rel = spans("relative")
    before = rel[(t > 40) & (t < 59)]
    just_after = rel[(t > 61) & (t < 63)]
    long_after = rel[(t > 90) & (t < 118)]
    assert np.median(before) == pytest.approx(1.0, abs=0.15)
    assert np.all(just_after > 1.6)  # twice as tall as the recent beats
    assert np.median(long_after) == pytest.approx(1.0, abs=0.15)

    t, z = spans("zscore")
    assert np.median(z[(t > 61) & (t < 63)]) == pytest.approx(
        np.median(z[(t > 40) & (t < 59)]), rel=0.15
    )


def test_config_round_trips_through_a_dict_and_refuses_unknown_keys():
    config = ChainConfig(fs_hz=250.0, notch_hz=50.0, normalization="relative")
    assert ChainConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match="window_ms"):
        ChainConfig.from_dict({**config.to_dict(), "window_ms": 3})
    with pytest.raises(ConfigError):
        ChainConfig(normalization="minmax")
    with pytest.raises(ConfigError):
        ChainConfig(fs_hz=100.0, notch_hz=60.0)


def test_config_for_record_takes_rate_gain_and_baseline(record_106):
    config = ChainConfig.for_record(record_106, notch_hz=60.0)
    assert config.fs_hz == 360.0
    assert config.gain_counts_per_mv == 200.0
    assert config.baseline_counts == 1024.0
    assert config.notch_hz == 60.0
    assert config.rails_counts == (-2048.0, 2047.0)  # 12-bit signed header


def test_chain_runs_at_250_and_500_hz_with_windows_of_the_same_span(record_106):
    spans = {}
    for fs in (250.0, 500.0):
        rec = record_106.resampled(fs)
        beats = beats_from_record(rec, ChainConfig.for_record(rec), 0, int(120 * fs))
        spans[fs] = [b.sample / fs for b in beats]
        assert all(b.window.shape == (64,) for b in beats)
    a, b = np.array(spans[250.0]), np.array(spans[500.0])
    assert len(a) == len(b)
    assert np.mean(np.abs(a - b) <= 0.006) > 0.97  # within 1.5 samples at 250 Hz
    assert np.max(np.abs(a - b)) < 0.15
