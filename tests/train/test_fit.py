"""Robust training and decision calibration of the LSTM autoencoder."""

from __future__ import annotations

import numpy as np
import pytest

from beatguard.device.bundle import beats_prematurity, beats_to_inputs
from beatguard.device.chain import ChainConfig
from beatguard.device.decision import BeatDecision
from beatguard.device.errors import ModelError
from beatguard.device.records import read_record
from beatguard.train.dataset import personal_training_set, record_training_beats
from beatguard.train.fit import (
    TrainSettings,
    calibrate_decision,
    fit_autoencoder,
    robust_outliers,
    score_outliers,
    screen_beats,
    two_class_split,
)
from beatguard.train.models import LstmAutoencoderSpec, build_lstm_autoencoder


@pytest.fixture(scope="module")
def inputs_106(mitdb):
    record = read_record(mitdb / "106")
    beats = record_training_beats(record, ChainConfig.for_record(record), 2.0)
    return beats_to_inputs(beats), beats_prematurity(beats)


def test_robust_outliers_mark_only_scores_far_above_the_bulk():
    rng = np.random.default_rng(0)
    scores = np.exp(rng.normal(0, 0.3, 500))
    scores[[10, 20]] = [50.0, 80.0]
    marked = robust_outliers(scores, 3.0)
    assert marked[[10, 20]].all()
    assert marked.sum() <= 6


def test_calibrated_threshold_is_the_student_t_quantile_of_the_target_rate():
    rng = np.random.default_rng(1)
    held_out = np.exp(rng.normal(-6.0, 0.5, 200))
    decision, info = calibrate_decision(held_out, TrainSettings())
    assert decision.threshold == pytest.approx(5.841, abs=1e-3)  # t(3), 0.5 %
    assert info["log_median"] == pytest.approx(-6.0, abs=0.1)
    assert decision.log_sd == pytest.approx(0.5, rel=0.15)
    assert len(decision.reference_log_errors) == TrainSettings().history_beats
    kept = held_out[~score_outliers(held_out, 3.0, 0.8)]
    np.testing.assert_allclose(
        decision.reference_log_errors, np.log(kept[-64:]), rtol=1e-12
    )
    assert info["beats"] + info["beats_left_out"] == 200
    assert info["method"] == "student_t_tail"


def test_decision_flags_a_misshapen_beat_and_an_early_one_not_a_normal_one():
    rng = np.random.default_rng(2)
    held_out = np.exp(rng.normal(-6.0, 0.3, 100))
    decision, _ = calibrate_decision(held_out, TrainSettings())
    normal, misshapen = np.exp(-6.0), np.exp(-6.0 + 8 * 0.3)
    slightly_off = np.exp(-6.0 + 3 * 0.3)
    _, flags = BeatDecision(decision).judge(
        np.array([normal, misshapen, slightly_off, slightly_off, normal]),
        np.array([0.0, 0.0, 0.0, 0.25, 0.35]),
    )
    # shape alone; shape and 25 % early together; timing alone only when very early
    assert flags.tolist() == [False, True, False, True, True]


def test_decision_reference_follows_slow_drift_but_not_anomalies():
    settings = TrainSettings()
    decision, _ = calibrate_decision(
        np.exp(np.random.default_rng(3).normal(-6.0, 0.3, 100)), settings
    )
    judge = BeatDecision(decision)
    drifted = np.exp(np.linspace(-6.0, -4.0, 400))  # errors 7 times higher
    _, flags = judge.judge(drifted, np.zeros(400))
    assert not flags.any()
    center, _ = judge.reference
    assert center > -4.3
    _, flags = judge.judge(np.full(30, np.exp(0.0)), np.zeros(30))
    assert flags.all() and judge.reference[0] == pytest.approx(center)
    judge.reset()
    assert judge.reference[0] == pytest.approx(-6.0, abs=0.15)


def test_too_few_calibration_beats_is_an_error():
    with pytest.raises(ModelError, match="calibration beats"):
        calibrate_decision(np.ones(5), TrainSettings())


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
    return beats_to_inputs(beats), beats_prematurity(beats), symbols


def test_screening_drops_premature_training_beats(inputs_106):
    inputs, prem = inputs_106
    settings = TrainSettings()
    marked = screen_beats(inputs, prem, settings)
    early = prem > settings.premature_share
    assert early.any() and marked[early].all()


def test_screening_drops_every_pvc_and_keeps_most_normal_beats_of_106(mitdb):
    inputs, prem, symbols = _labelled_training_inputs(mitdb / "106", 5.0)
    marked = screen_beats(inputs, prem, TrainSettings())
    assert marked[symbols == "V"].all()
    assert np.mean(marked[symbols == "N"]) < 0.5


@pytest.mark.parametrize("name", ["100", "121", "123"])
def test_screening_drops_little_of_a_record_with_one_morphology(mitdb, name):
    inputs, prem, _ = _labelled_training_inputs(mitdb / name, 5.0)
    assert screen_beats(inputs, prem, TrainSettings()).mean() < 0.05


def test_screening_drops_the_far_morphology_of_the_bundled_record():
    from beatguard import bundled_record_path

    record = read_record(bundled_record_path())
    beats = record_training_beats(record, ChainConfig.for_record(record), 2.0)
    inputs, prem = beats_to_inputs(beats), beats_prematurity(beats)
    windows = inputs[:, :, 0]
    distance = np.mean((windows - np.median(windows, axis=0)) ** 2, axis=1)
    far = distance > 8 * np.median(distance)  # its PVCs, about one beat in six
    marked = screen_beats(inputs, prem, TrainSettings())
    assert far.sum() > 20 and marked[far].mean() > 0.8
    assert marked[~far].mean() < 0.3


def test_screening_drops_a_second_morphology_that_is_nearly_half_the_beats():
    rng = np.random.default_rng(4)
    steps = np.linspace(0.0, 1.0, 64)
    normal = np.exp(-(((steps - 0.35) / 0.03) ** 2))
    ectopic = np.exp(-(((steps - 0.4) / 0.1) ** 2))
    # bigeminy with a few normal pairs: 45 % of the beats are ectopic
    is_ectopic = (np.arange(200) % 2 == 1) & (rng.random(200) > 0.1)
    windows = np.where(is_ectopic[:, None], ectopic, normal)
    windows = windows + rng.normal(0.0, 0.05, windows.shape)
    marked = screen_beats(windows[:, :, None], np.zeros(200), TrainSettings())
    assert marked[is_ectopic].all()
    assert marked[~is_ectopic].mean() < 0.02


def test_screening_keeps_a_long_run_of_a_changed_morphology():
    rng = np.random.default_rng(5)
    steps = np.linspace(0.0, 1.0, 64)
    before = np.exp(-(((steps - 0.35) / 0.03) ** 2))
    after = -0.8 * np.exp(-(((steps - 0.35) / 0.04) ** 2))
    windows = np.where((np.arange(200) >= 120)[:, None], after, before)
    windows = windows + rng.normal(0.0, 0.05, windows.shape)
    assert (
        screen_beats(windows[:, :, None], np.zeros(200), TrainSettings()).mean() < 0.05
    )


def test_two_class_split_separation_tells_one_mode_from_two():
    rng = np.random.default_rng(6)
    _, one = two_class_split(rng.normal(0.0, 1.0, 2000))
    cut, two = two_class_split(
        np.concatenate([rng.normal(0, 0.3, 300), rng.normal(3, 0.3, 250)])
    )
    assert one == pytest.approx(2 / np.pi, abs=0.03)
    assert two > 0.9 and 1.0 < cut < 2.0


def test_held_out_pvcs_nearly_half_the_beats_do_not_widen_the_calibration():
    rng = np.random.default_rng(7)
    normal = np.exp(rng.normal(np.log(0.002), 0.3, 60))
    pvc = np.exp(rng.normal(np.log(0.05), 0.2, 40))
    alone, _ = calibrate_decision(normal, TrainSettings())
    mixed, info = calibrate_decision(np.concatenate([normal, pvc]), TrainSettings())
    assert mixed.log_sd == pytest.approx(alone.log_sd)
    assert info["beats_left_out"] == 40


def test_training_is_repeatable_given_a_seed(inputs_106):
    spec = LstmAutoencoderSpec(encoder_units=4, decoder_units=4)
    settings = TrainSettings(spec=spec, seed=3)
    inputs, _ = inputs_106
    first = fit_autoencoder(inputs[:64], settings, 2, "a").get_weights()
    second = fit_autoencoder(inputs[:64], settings, 2, "b").get_weights()
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)


def test_model_is_compact():
    model = build_lstm_autoencoder(LstmAutoencoderSpec())
    assert model.count_params() <= 50_000


def test_training_set_comes_from_the_device_chain(mitdb):
    data = personal_training_set([mitdb / "106"], 1.0)
    record = read_record(mitdb / "106")
    beats = record_training_beats(record, ChainConfig.for_record(record), 1.0)
    np.testing.assert_array_equal(
        data.inputs[:, :, 0], np.stack([b.window for b in beats])
    )
    np.testing.assert_array_equal(data.prematurity, beats_prematurity(beats))
    assert data.summary["beats_per_record"] == {"106": len(beats)}


def test_record_shorter_than_training_minutes_is_refused(mitdb):
    with pytest.raises(ModelError, match="shorter than"):
        personal_training_set([mitdb / "106"], 45.0)


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


def test_decayed_step_size_ends_near_its_final_share(inputs_106):
    spec = LstmAutoencoderSpec(encoder_units=4, decoder_units=4)
    settings = TrainSettings(spec=spec, seed=3, final_learning_rate_share=0.05)
    inputs, _ = inputs_106
    model = fit_autoencoder(inputs[:64], settings, 2, "decayed", min_steps=200)
    step_size = float(model.optimizer.learning_rate)  # of the last step taken
    assert step_size == pytest.approx(0.05 * settings.learning_rate, rel=0.01)
    first = fit_autoencoder(inputs[:64], settings, 2, "again", 200).get_weights()
    for a, b in zip(model.get_weights(), first, strict=True):
        np.testing.assert_array_equal(a, b)
