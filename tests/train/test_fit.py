"""Robust training and threshold calibration of the LSTM autoencoder."""

from __future__ import annotations

import numpy as np
import pytest

from beatguard.device.bundle import PrematurityFeature, beats_to_inputs
from beatguard.device.chain import ChainConfig
from beatguard.device.errors import ModelError
from beatguard.device.records import read_record
from beatguard.train.dataset import personal_training_set, record_training_beats
from beatguard.train.fit import (
    TrainSettings,
    calibrate_threshold,
    fit_autoencoder,
    prematurity_alarm_score,
    robust_outliers,
    screen_beats,
    two_class_split,
)
from beatguard.train.models import LstmAutoencoderSpec, build_lstm_autoencoder


@pytest.fixture(scope="module")
def inputs_106(mitdb):
    record = read_record(mitdb / "106")
    beats = record_training_beats(record, ChainConfig.for_record(record), 2.0)
    return beats_to_inputs(beats, PrematurityFeature())


def test_robust_outliers_mark_only_scores_far_above_the_bulk():
    rng = np.random.default_rng(0)
    scores = np.exp(rng.normal(0, 0.3, 500))
    scores[[10, 20]] = [50.0, 80.0]
    marked = robust_outliers(scores, 3.0)
    assert marked[[10, 20]].all()
    assert marked.sum() <= 6


def test_calibrated_threshold_meets_target_rate_on_lognormal_scores():
    rng = np.random.default_rng(1)
    held_out = np.exp(rng.normal(0.0, 0.5, 2000))
    threshold, info = calibrate_threshold(held_out, 0.01, 3.0)
    fresh = np.exp(rng.normal(0.0, 0.5, 100_000))
    assert np.mean(fresh > threshold) == pytest.approx(0.01, abs=0.004)
    assert info["beats"] + info["beats_left_out"] == 2000
    assert info["method"] == "lognormal_quantile"


def test_threshold_never_below_the_prematurity_alarm_score():
    held_out = np.exp(np.random.default_rng(2).normal(0.0, 0.1, 100))
    threshold, info = calibrate_threshold(held_out, 0.01, 3.0, min_threshold=30.0)
    assert threshold == 30.0 and info["lognormal_threshold"] < 30.0


def test_prematurity_alarm_score_is_the_score_of_an_early_normal_beat():
    sd = np.full((64, 2), 0.1)
    feature = PrematurityFeature(gain=4.0, clip=0.5, dead_zone=0.1)
    value = 4.0 * (0.3 - 0.1)
    expected = 64 * (value / 0.1) ** 2 / 128
    assert prematurity_alarm_score(sd, feature, 0.3) == pytest.approx(expected)


def test_too_few_calibration_beats_is_an_error():
    with pytest.raises(ModelError, match="calibration beats"):
        calibrate_threshold(np.ones(5), 0.01, 3.0)


def _labelled_training_inputs(path, minutes):
    """Model inputs of a record's first minutes and each beat's reference label."""
    from beatguard.device.evaluation import match_beats

    record = read_record(path)
    beats = record_training_beats(record, ChainConfig.for_record(record), minutes)
    ref = record.annotations.beats()
    match = match_beats(
        np.asarray(ref.samples),
        np.array([b.sample for b in beats]),
        record.fs_hz,
        0.15,
        0.0,
    )
    symbols = np.full(len(beats), "?", object)
    symbols[match.det_index] = np.asarray(ref.symbols, object)[match.ref_index]
    return beats_to_inputs(beats, PrematurityFeature()), symbols


def test_screening_drops_premature_and_misshapen_training_beats(inputs_106):
    settings = TrainSettings()
    marked = screen_beats(inputs_106, settings)
    early = inputs_106[:, 0, 1] > settings.feature.gain * settings.premature_margin
    assert marked[early].all()


def test_screening_drops_every_pvc_and_keeps_most_normal_beats_of_106(mitdb):
    inputs, symbols = _labelled_training_inputs(mitdb / "106", 5.0)
    marked = screen_beats(inputs, TrainSettings())
    assert marked[symbols == "V"].all()
    assert np.mean(marked[symbols == "N"]) < 0.5


@pytest.mark.parametrize("name", ["100", "121", "123"])
def test_screening_drops_little_of_a_record_with_one_morphology(mitdb, name):
    inputs, _ = _labelled_training_inputs(mitdb / name, 5.0)
    assert screen_beats(inputs, TrainSettings()).mean() < 0.05


def test_screening_drops_a_second_morphology_that_is_nearly_half_the_beats():
    rng = np.random.default_rng(4)
    steps = np.linspace(0.0, 1.0, 64)
    normal = np.exp(-(((steps - 0.35) / 0.03) ** 2))
    ectopic = np.exp(-(((steps - 0.4) / 0.1) ** 2))
    # bigeminy with a few normal pairs: 45 % of the beats are ectopic
    is_ectopic = (np.arange(200) % 2 == 1) & (rng.random(200) > 0.1)
    windows = np.where(is_ectopic[:, None], ectopic, normal)
    windows = windows + rng.normal(0.0, 0.05, windows.shape)
    inputs = np.stack([windows, np.zeros_like(windows)], axis=-1)
    marked = screen_beats(inputs, TrainSettings())
    assert marked[is_ectopic].all()
    assert marked[~is_ectopic].mean() < 0.02


def test_screening_keeps_a_long_run_of_a_changed_morphology():
    rng = np.random.default_rng(5)
    steps = np.linspace(0.0, 1.0, 64)
    before = np.exp(-(((steps - 0.35) / 0.03) ** 2))
    after = -0.8 * np.exp(-(((steps - 0.35) / 0.04) ** 2))
    windows = np.where((np.arange(200) >= 120)[:, None], after, before)
    windows = windows + rng.normal(0.0, 0.05, windows.shape)
    inputs = np.stack([windows, np.zeros_like(windows)], axis=-1)
    assert screen_beats(inputs, TrainSettings()).mean() < 0.05


def test_two_class_split_separation_tells_one_mode_from_two():
    rng = np.random.default_rng(6)
    _, one = two_class_split(rng.normal(0.0, 1.0, 2000))
    cut, two = two_class_split(
        np.concatenate([rng.normal(0, 0.3, 300), rng.normal(3, 0.3, 250)])
    )
    assert one == pytest.approx(2 / np.pi, abs=0.03)
    assert two > 0.9 and 1.0 < cut < 2.0


def test_held_out_pvcs_nearly_half_the_beats_do_not_raise_the_threshold():
    rng = np.random.default_rng(7)
    normal = np.exp(rng.normal(np.log(0.2), 0.3, 60))
    pvc = np.exp(rng.normal(np.log(1.5), 0.2, 40))
    alone, _ = calibrate_threshold(normal, 0.005, 3.0, separation_min=0.8)
    mixed, info = calibrate_threshold(
        np.concatenate([normal, pvc]), 0.005, 3.0, separation_min=0.8
    )
    assert mixed == pytest.approx(alone) and info["beats_left_out"] == 40


def test_training_is_repeatable_given_a_seed(inputs_106):
    spec = LstmAutoencoderSpec(encoder_units=4, decoder_units=4)
    settings = TrainSettings(spec=spec, seed=3)
    first = fit_autoencoder(inputs_106[:64], settings, 2, "a").get_weights()
    second = fit_autoencoder(inputs_106[:64], settings, 2, "b").get_weights()
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)


def test_model_is_compact():
    model = build_lstm_autoencoder(LstmAutoencoderSpec())
    assert model.count_params() <= 50_000


def test_training_set_comes_from_the_device_chain(mitdb):
    data = personal_training_set([mitdb / "106"], 1.0, PrematurityFeature())
    record = read_record(mitdb / "106")
    beats = record_training_beats(record, ChainConfig.for_record(record), 1.0)
    np.testing.assert_array_equal(
        data.inputs[:, :, 0], np.stack([b.window for b in beats])
    )
    assert data.summary["beats_per_record"] == {"106": len(beats)}


def test_record_shorter_than_training_minutes_is_refused(mitdb):
    with pytest.raises(ModelError, match="shorter than"):
        personal_training_set([mitdb / "106"], 45.0, PrematurityFeature())


def test_bundle_reports_dropped_training_beats(bundle_106):
    from beatguard.device.bundle import load_bundle

    training = load_bundle(bundle_106).meta["training"]
    assert training["beats_dropped"] > 0  # the first minutes of 106 hold PVCs
    assert (
        training["beats_kept"]
        + training["beats_dropped"]
        + training["beats_calibration"]
        <= training["beats_total"]
    )
