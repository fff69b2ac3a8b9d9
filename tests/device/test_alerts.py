"""The alert policy raises the right alert at the exact stream sample."""

from __future__ import annotations

import math

import numpy as np
import pytest

from beatguard.device.alerts import AlertKind, AlertPolicy, AlertSettings
from beatguard.device.errors import ConfigError
from beatguard.device.types import Beat, Quality

FS_HZ = 360.0
DELAY = 90  # samples of detector look-ahead assumed by these tests


def _beat(sample: int) -> Beat:
    return Beat(
        sample=sample,
        window=np.zeros(8, np.float32),
        rr_before_s=math.nan,
        rr_avg_s=math.nan,
        emitted_at_sample=sample + DELAY,
    )


def _policy(**overrides) -> AlertPolicy:
    settings = AlertSettings(**{"cooldown_s": 60.0, **overrides})
    return AlertPolicy(FS_HZ, settings, detection_delay_s=DELAY / FS_HZ)


def _feed(policy, samples, labels):
    alerts = []
    for sample, label in zip(samples, labels, strict=True):
        alerts += policy.tick(sample + DELAY - 1)
        alerts += policy.on_beat(_beat(sample), label)
    return alerts


def _regular(n: int, rr_s: float = 0.8, start: int = 360) -> list[int]:
    return [start + round(i * rr_s * FS_HZ) for i in range(n)]


def test_run_alert_fires_on_the_nth_consecutive_anomalous_beat():
    policy = _policy(run_beats=3)
    samples = _regular(10)
    labels = [False, True, True, False, True, True, True, True, False, False]
    alerts = _feed(policy, samples, labels)
    runs = [a for a in alerts if a.kind is AlertKind.RUN]
    assert [a.sample for a in runs] == [samples[6]]
    assert runs[0].details == {"run_beats": 3}


def test_isolated_anomalous_beats_raise_no_alert():
    policy = _policy(run_beats=3, burden_share=0.5, burden_window_beats=10)
    labels = [i % 3 == 0 for i in range(40)]  # a third of beats, never two in a row
    assert _feed(policy, _regular(40), labels) == []


def test_burden_alert_needs_a_full_window_above_the_share():
    policy = _policy(run_beats=99, burden_share=0.5, burden_window_beats=10)
    samples = _regular(30)
    labels = [i % 2 == 0 for i in range(30)]  # bigeminy: every other beat
    alerts = _feed(policy, samples, labels)
    burdens = [a for a in alerts if a.kind is AlertKind.BURDEN]
    # the window is full at the 10th beat, whose share is 5/10
    assert [a.sample for a in burdens] == [samples[9]]
    assert burdens[0].details["share"] == 0.5


def test_cooldown_holds_back_a_second_alert_of_the_same_kind():
    policy = _policy(run_beats=2, cooldown_s=10.0)
    samples = _regular(60, rr_s=0.5)  # a beat every 180 samples, 29.5 s
    alerts = _feed(policy, samples, [True] * 60)
    runs = [a.sample for a in alerts if a.kind is AlertKind.RUN]
    assert runs[0] == samples[1]
    assert np.all(np.diff(runs) >= 10 * FS_HZ)
    assert np.diff(runs).tolist() == [3600, 3600]


def test_low_heart_rate_must_last_the_hold_time():
    policy = _policy(hr_low_bpm=40, hr_window_s=8, hr_hold_s=10)
    samples = _regular(30, rr_s=2.0)  # 30 bpm, below the pause limit of 3 s
    alerts = _feed(policy, samples, [False] * 30)
    low = [a for a in alerts if a.kind is AlertKind.LOW_HR]
    assert len(low) == 1
    assert low[0].details["hr_bpm"] == 30.0
    # window covered after 8 s (beat 4 is 8 s after the start), then 10 s more
    first_out = next(s for s in samples if s - 360 >= 8 * FS_HZ)
    assert low[0].sample == next(s for s in samples if s - first_out >= 10 * FS_HZ)
    assert policy.hr_bpm == pytest.approx(30.0)


def test_high_heart_rate_alert_and_normal_rate_is_quiet():
    fast = _feed(_policy(), _regular(200, rr_s=0.3), [False] * 200)  # 200 bpm
    assert {a.kind for a in fast} == {AlertKind.HIGH_HR}
    normal = _feed(_policy(), _regular(200, rr_s=0.8), [False] * 200)  # 75 bpm
    assert normal == []


def test_pause_alert_from_ticks_counts_the_detection_delay():
    policy = _policy(pause_s=3.0)
    policy.on_beat(_beat(1000), False)
    limit = 1000 + 3 * 360
    assert policy.tick(limit + DELAY - 1) == []
    alerts = policy.tick(limit + DELAY)
    assert [(a.kind, a.sample) for a in alerts] == [(AlertKind.PAUSE, limit)]
    assert policy.tick(limit + 5000) == []  # one alert per pause


def test_pause_is_caught_by_the_beat_that_ends_it_when_ticks_are_rare():
    policy = _policy(pause_s=3.0)
    policy.on_beat(_beat(1000), False)
    alerts = policy.on_beat(_beat(1000 + 4 * 360), False)
    assert [a.kind for a in alerts] == [AlertKind.PAUSE]
    assert alerts[0].details["pause_s"] == 4.0


def test_nothing_is_alarmed_while_leads_are_off():
    policy = _policy(run_beats=2, pause_s=3.0)
    policy.on_beat(_beat(1000), False)
    policy.on_quality(1100, Quality.LEADS_OFF)
    alerts = []
    for sample in range(1100, 1100 + 30 * 360, 180):
        alerts += policy.tick(sample)
        alerts += policy.on_beat(_beat(sample), True)
    assert alerts == []


def test_signal_recovery_restarts_rhythm_state_from_the_recovery_sample():
    policy = _policy(run_beats=2, pause_s=3.0)
    policy.on_beat(_beat(1000), True)
    policy.on_quality(1100, Quality.LEADS_OFF)
    policy.on_quality(20000, Quality.GOOD)
    # the run counter restarted: one anomalous beat is not a run of two
    assert policy.on_beat(_beat(20100), True) == []
    # the pause clock restarted at the recovery, not at the beat before
    assert policy.tick(20100 + 3 * 360 + DELAY - 1) == []
    assert policy.tick(20100 + 3 * 360 + DELAY)[0].kind is AlertKind.PAUSE


def test_warmup_after_reset_delays_the_pause_clock():
    policy = AlertPolicy(
        FS_HZ, AlertSettings(pause_s=3.0), detection_delay_s=0.0, warmup_s=2.0
    )
    policy.reset(10_000)
    assert policy.tick(10_000 + 5 * 360 - 1) == []
    assert policy.tick(10_000 + 5 * 360)[0].sample == 10_000 + 5 * 360


def test_unscored_beats_count_for_rhythm_but_not_for_runs():
    samples = _regular(6)
    alerts = _feed(_policy(run_beats=2), samples, [True, None, True, None, None, None])
    assert [(a.kind, a.sample) for a in alerts] == [(AlertKind.RUN, samples[2])]
    # unscored beats keep the pause clock from running out
    assert _feed(_policy(run_beats=2), samples, [None] * 6) == []


def test_bad_settings_are_refused_with_every_reason():
    with pytest.raises(ConfigError, match="run_beats.*burden_share"):
        AlertSettings(run_beats=0, burden_share=1.5)
    with pytest.raises(ConfigError, match="hr_low_bpm < hr_high_bpm"):
        AlertSettings(hr_low_bpm=100, hr_high_bpm=60)
