"""Bad input never raises out of the chain and never leaks into beats.

Each case corrupts one stretch of a real record (MIT-BIH 106, 90 s) and
compares the chain's beats with those of the clean record: no beat inside
the bad stretch, no NaN in any window, the quality flags name the cause,
beats more than 1 s away are the clean run's beats, and detection resumes
within 2 s after the stretch.

"The clean run's beats" means the same beats, R within one sample (2.8 ms)
and windows within 0.02 (the windows are z-scored, so 0.02 is 2 % of a
standard deviation): the band-pass is an IIR filter, so whatever entered
it before the stretch fades but never strictly vanishes, and a flat-topped
R peak may move by a sample.
"""

from __future__ import annotations

import numpy as np
import pytest

from beatguard.device.chain import ChainConfig, SignalChain
from beatguard.device.records import read_record
from beatguard.device.types import Quality

FS = 360
START_S, STOP_S = 40.0, 50.0  # the corrupted stretch
WINDOW_ATOL = 0.02
SETTLE_S = 2.0  # filter settling after a corrupted stretch, seconds


@pytest.fixture(scope="module")
def clean(mitdb):
    record = read_record(mitdb / "106")
    counts = record.counts[: 90 * FS].copy()
    # Z-scored windows, so that a window after a corrupted stretch depends on
    # the filters and the detector only: a relative window is also scaled by
    # the last eight beats, which differ by design after a stretch without
    # beats.
    config = ChainConfig.for_record(record, normalization="zscore")
    beats, events = _run(config, counts)
    return record, config, counts, beats


def _run(config, counts, leads_off=None, chunk=997):
    chain = SignalChain(config)
    beats, events = [], []
    for i in range(0, len(counts), chunk):
        lo = None if leads_off is None else leads_off[i : i + chunk]
        out = chain.process(counts[i : i + chunk], lo)
        beats += out.beats
        events += out.quality_events
    beats += chain.finish().beats
    return beats, events


def _check_against_clean(clean_beats, beats, events, a, b, flag):
    """The checks every corrupted stretch ``a`` .. ``b`` (samples) must pass."""
    assert all(np.all(np.isfinite(x.window)) for x in beats)
    assert not [x.sample for x in beats if a <= x.sample < b], "beat inside"
    raised = [e for e in events if e.quality & flag]
    assert raised and a <= raised[0].sample <= a + FS, events
    assert events[-1].quality == Quality.GOOD

    # Beats whose windows lie clear of the stretch (1 s before it, SETTLE_S
    # after it) must come out as in the clean run. After 10 s of 1 mV
    # broadband noise the filters' transient still moves a window (z-scored)
    # by up to 0.021 at 1.5 s, 0.003 at 2.4 s and under 0.0001 from 3.3 s on,
    # hence the longer wait after the stretch.
    far_before = [x for x in clean_beats if x.sample + 0.45 * FS < a - FS]
    far_after = [x for x in clean_beats if x.sample - 0.25 * FS > b + SETTLE_S * FS]
    got = {x.sample: x for x in beats}
    for ref in far_before + far_after:
        near = [
            got[s] for s in (ref.sample, ref.sample - 1, ref.sample + 1) if s in got
        ]
        assert near, f"beat at {ref.sample / FS:.2f} s lost"
        if near[0].sample == ref.sample:
            np.testing.assert_allclose(near[0].window, ref.window, atol=WINDOW_ATOL)
    after = [x.sample for x in beats if x.sample >= b]
    assert after and after[0] - b <= 2 * FS, "detection did not resume within 2 s"


def test_one_nan_sample(clean):
    record, config, counts, beats = clean
    x = counts.copy()
    a = int(START_S * FS)
    x[a] = np.nan
    got, events = _run(config, x)
    _check_against_clean(beats, got, events, a, a + 1, Quality.MISSING)


def test_fifty_nan_samples_in_a_row(clean):
    record, config, counts, beats = clean
    x = counts.copy()
    a = int(START_S * FS)
    x[a : a + 50] = np.nan
    got, events = _run(config, x)
    _check_against_clean(beats, got, events, a, a + 50, Quality.MISSING)


def test_one_positive_infinity(clean):
    record, config, counts, beats = clean
    x = counts.copy()
    a = int(START_S * FS)
    x[a] = np.inf
    got, events = _run(config, x)
    _check_against_clean(beats, got, events, a, a + 1, Quality.MISSING)


@pytest.mark.parametrize("rail", ["low", "high"])
def test_ten_seconds_at_an_adc_rail(clean, rail):
    record, config, counts, beats = clean
    low, high = config.rails_counts
    x = counts.copy()
    a, b = int(START_S * FS), int(STOP_S * FS)
    x[a:b] = low if rail == "low" else high
    got, events = _run(config, x)
    _check_against_clean(beats, got, events, a, b, Quality.SATURATED)


def test_ten_seconds_of_leads_off(clean):
    record, config, counts, beats = clean
    a, b = int(START_S * FS), int(STOP_S * FS)
    x = counts.copy()
    x[a:b] = np.where(
        np.arange(b - a) % 7 < 3, 0.0, 2000.0
    )  # what a floating input does
    leads_off = np.zeros(len(x), dtype=bool)
    leads_off[a:b] = True
    got, events = _run(config, x, leads_off)
    _check_against_clean(beats, got, events, a, b, Quality.LEADS_OFF)


def test_ten_seconds_of_pure_noise(clean):
    record, config, counts, beats = clean
    a, b = int(START_S * FS), int(STOP_S * FS)
    rng = np.random.default_rng(3)
    x = counts.copy()
    noise_mv = rng.normal(0.0, 1.0, b - a)  # broadband, 1 mV RMS, no beats
    x[a:b] = np.round(config.baseline_counts + noise_mv * config.gain_counts_per_mv)
    got, events = _run(config, x)
    _check_against_clean(beats, got, events, a, b, Quality.NOISY)


def test_empty_chunks_change_nothing(clean):
    record, config, counts, beats = clean
    chain = SignalChain(config)
    got = []
    for i in range(0, len(counts), 1000):
        got += chain.process(np.zeros(0)).beats
        got += chain.process(counts[i : i + 1000]).beats
        got += chain.process([]).beats
    got += chain.finish().beats
    assert [x.sample for x in got] == [x.sample for x in beats]


@pytest.mark.parametrize("seconds", [0.5, 1.5, 2.4])
def test_short_records_give_no_error(clean, seconds):
    record, config, counts, beats = clean
    n = int(seconds * FS)
    got, events = _run(config, counts[:n])
    assert all(0 <= x.sample < n for x in got)
    assert all(np.all(np.isfinite(x.window)) for x in got)


def test_constant_signal_gives_no_beats_and_says_flat(clean):
    record, config, counts, beats = clean
    got, events = _run(config, np.full(30 * FS, 1000.0))
    assert got == []
    assert events and events[0].quality & Quality.FLAT
    chain = SignalChain(config)
    chain.process(np.full(5 * FS, 1000.0))
    assert chain.quality == Quality.FLAT
    assert chain.quality.describe() == "flat line"


@pytest.mark.parametrize("mains_hz", [50.0, 60.0])
def test_mains_hum_with_a_matching_notch_finds_the_same_beats(clean, mains_hz):
    record, config, counts, beats = clean
    t = np.arange(len(counts)) / FS
    hum = 1.0 * np.sin(2 * np.pi * mains_hz * t) * config.gain_counts_per_mv
    notched = ChainConfig.for_record(record, notch_hz=mains_hz)
    with_hum, events = _run(notched, counts + hum)
    without_hum, _ = _run(notched, counts)
    assert not events  # the hum is not mistaken for noise
    assert [x.sample for x in with_hum] == [x.sample for x in without_hum]
    for a, b in zip(with_hum, without_hum, strict=True):
        np.testing.assert_allclose(a.window, b.window, atol=WINDOW_ATOL)
    # the notch itself reshapes the QRS a little: R moves by a few samples
    clean_r = np.array([x.sample for x in beats])
    hum_r = np.array([x.sample for x in with_hum])
    assert len(hum_r) == len(clean_r)
    assert np.mean(np.abs(hum_r - clean_r) <= 3) > 0.9  # within 8 ms
    assert np.max(np.abs(hum_r - clean_r)) < 0.05 * FS


def test_hum_without_a_notch_is_flagged_as_noise(clean):
    record, config, counts, beats = clean
    t = np.arange(len(counts)) / FS
    hum = 1.0 * np.sin(2 * np.pi * 50.0 * t) * config.gain_counts_per_mv
    got, events = _run(config, counts + hum)
    assert events and events[0].quality & Quality.NOISY
    assert len(got) < len(beats) // 4


def test_a_gap_reset_resumes_detection_within_two_seconds(clean):
    record, config, counts, beats = clean
    chain = SignalChain(config)
    chain.process(counts[: 30 * FS])
    chain.reset(next_sample=35 * FS)  # five seconds lost on the link
    got = chain.process(counts[35 * FS : 60 * FS]).beats
    assert got and got[0].sample - 35 * FS <= 2 * FS
    for beat in got:  # no RR interval reaches back across the gap
        assert np.isnan(beat.rr_before_s) or (
            beat.sample - beat.rr_before_s * FS >= 35 * FS - 0.5
        )


def test_absurd_values_with_unknown_adc_rails_are_kept_out(clean):
    record, config, counts, beats = clean
    blind = ChainConfig.for_record(record, adc_bits=0, normalization="zscore")
    assert blind.rails_counts is None
    x = counts.copy()
    a = int(START_S * FS)
    x[a] = 1e300
    x[a + 500] = -1e12
    got, events = _run(blind, x)
    reference, _ = _run(blind, counts)
    assert all(np.all(np.isfinite(b.window)) for b in got)
    assert any(e.quality & Quality.SATURATED for e in events)
    _check_against_clean(reference, got, events, a, a + 501, Quality.SATURATED)


def test_bad_stretches_give_the_same_beats_and_flags_in_any_chunking(clean):
    record, config, counts, beats = clean
    x = counts[: 30 * FS].copy()
    rng = np.random.default_rng(5)
    x[10 * FS : 13 * FS] = np.round(1024 + rng.normal(0, 200, 3 * FS))
    x[18 * FS : 18 * FS + 20] = np.nan
    x[22 * FS : 24 * FS] = config.rails_counts[1]
    whole, whole_events = _run(config, x, chunk=len(x))
    assert whole_events
    for chunk in (1, 13, 401):
        got, events = _run(config, x, chunk=chunk)
        assert events == whole_events
        assert [b.sample for b in got] == [b.sample for b in whole]
        for a, b in zip(got, whole, strict=True):
            np.testing.assert_allclose(a.window, b.window, atol=1e-5)


def _resampled(record, fs_hz: int):
    from scipy import signal

    from beatguard.device.records import Record

    seconds = 60
    counts = signal.resample_poly(record.counts[: seconds * FS], fs_hz, FS)
    return Record(
        name=f"rec{fs_hz}",
        fs_hz=float(fs_hz),
        counts=np.round(counts),
        gain_counts_per_mv=record.gain_counts_per_mv,
        baseline_counts=record.baseline_counts,
        adc_bits=record.adc_bits,
    )


def test_chain_runs_at_its_lowest_sample_rate_and_names_the_record_below(mitdb):
    record = read_record(mitdb / "106")
    lowest = ChainConfig().min_fs_hz
    assert lowest == 56  # the quality monitor's 25 Hz noise band decides
    at_lowest = _resampled(record, lowest)
    out = SignalChain(ChainConfig.for_record(at_lowest)).process(
        at_lowest.counts, np.zeros(len(at_lowest.counts), bool)
    )
    assert len(out.beats) > 40  # a minute of 106 at about 70 beats/min
    with pytest.raises(ValueError) as caught:
        ChainConfig.for_record(_resampled(record, lowest - 1))
    assert str(caught.value) == (
        f"rec{lowest - 1}: sampled at {lowest - 1} Hz; the signal chain needs at "
        f"least {lowest} Hz"
    )
