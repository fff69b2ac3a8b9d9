"""Robust training of the LSTM autoencoder and calibration of its threshold.

The personal protocol trains on the first minutes of a wearer's record
without labels, so the training beats may hold premature ventricular beats
and noise. Before any fit, beats that are clearly not normal are screened
out by their distance to the median beat and their prematurity (see
:func:`screen_beats`). Training then runs in two passes: a first fit on the
beats that passed the screen, then the beats whose reconstruction error is a
robust outlier (log error more than ``drop_z`` robust standard deviations
above the median) are dropped and a fresh model is fitted on the rest. How
many beats were dropped is reported and stored with the model.

The latest share of the training-period beats is held out of fitting and
goes through the same screen, without its lone-outlier rule. Their scores,
with outliers removed by the same rules, set the threshold: a log-normal fit
to the scores (median and MAD of the log score) gives the score exceeded by
normal beats at the target false-alarm rate. Beats of the following hours
drift away from those minutes (electrode movement, heart rate, noise), so
the scores of normal beats later on spread much wider than the held-out
ones; the threshold is therefore never set below the score of a beat of
perfectly normal shape that comes ``alarm_prematurity`` (a share of the
recent mean RR) early: a beat is never flagged for less than that much
prematurity.

What that floor means in practice, measured on MIT-BIH records 100, 105,
106, 108, 114, 116, 121 and 123 trained on 5 minutes: the prematurity
channel is rebuilt almost exactly, so its residual spread sits at
``residual_sd_floor`` and the floor comes out near 32, while the window
channel's share of the score can never exceed ``window_z2_cap / 2`` (12.5).
The calibrated decision is then in effect "the beat came at least about
20 % early, or early and misshapen": the shape error adds to prematurity
but cannot flag a beat alone. A ventricular beat that is not premature
(late-coupled PVCs, as in the bundled demo record 208x) is ranked high by
the score but not flagged. Decision rules that let shape flag on its own
were tried (the log-normal quantile of the held-out window-channel scores
times 1 to 4; the ratio to the 25th percentile of the last 16 to 64
beats' scores): on those records the normal beats' window-channel scores
drift up to 5-10 times their training level within 25 minutes, and every
such rule gave hundreds of false alarms per hour on some of them.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np
from numpy.typing import NDArray
from scipy.stats import norm

from beatguard.device.bundle import PrematurityFeature, standardized_mse
from beatguard.device.errors import ModelError
from beatguard.train.keras_setup import seed_everything, tensorflow_and_keras
from beatguard.train.models import LstmAutoencoderSpec, build_lstm_autoencoder

log = logging.getLogger(__name__)

_MAD_TO_SD = 1.4826


@dataclass(frozen=True)
class TrainSettings:
    """How the autoencoder is trained and calibrated.

    Attributes
    ----------
    spec : LstmAutoencoderSpec
        Model shape.
    first_pass_epochs, epochs : int
        Epochs of the first fit (used only to find outliers) and of the
        final fit on the kept beats.
    batch_size : int
    min_fit_steps : int
        Fewest gradient steps of each fit: with few beats left after
        screening (about a hundred in two PVC-dense minutes) the epochs are
        raised, since the model learns from steps, not passes.
    learning_rate : float
        Adam step size.
    seed : int
        Seeds weights, shuffling and TensorFlow's kernels.
    drop_z : float
        Robust z of the log reconstruction error above which a training
        beat is dropped (and a calibration beat left out).
    calibration_share : float
        Share of the training-period beats, the latest ones, held out of
        fitting to calibrate the threshold on beats the model has not seen
        and that come later than those it learned from.
    target_false_alarm_rate : float
        Share of normal beats allowed above the threshold.
    premature_margin : float
        Training beats whose prematurity (share of the recent mean RR they
        came early, beyond the feature's dead zone) exceeds this are
        screened out before fitting.
    separation_min : float
        Share of the variance of the log distance to the median beat
        between the two groups of its best split above which the far group
        is taken for a second morphology (see :func:`screen_beats`).
    ectopic_run_beats : int
        Longest run of consecutive far beats screened out as ectopic.
    feature : PrematurityFeature
        How the prematurity channel is computed.
    alarm_prematurity : float
        The threshold is at least the score of a normal-shaped beat this
        share of the recent mean RR early.
    window_z2_cap : float
        Cap of one window step's squared standardized residual in the score.
    residual_sd_floor : float
        Lower bound of the per-step residual spread (model input units), so
        steps the model rebuilds almost exactly do not dominate the score.
    """

    spec: LstmAutoencoderSpec = field(default_factory=LstmAutoencoderSpec)
    first_pass_epochs: int = 30
    epochs: int = 60
    batch_size: int = 32
    min_fit_steps: int = 600
    learning_rate: float = 3e-3
    seed: int = 0
    drop_z: float = 3.0
    calibration_share: float = 0.2
    target_false_alarm_rate: float = 0.005
    residual_sd_floor: float = 0.05
    alarm_prematurity: float = 0.2
    window_z2_cap: float = 25.0
    premature_margin: float = 0.1
    separation_min: float = 0.8
    ectopic_run_beats: int = 3
    feature: PrematurityFeature = field(default_factory=PrematurityFeature)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["spec"] = self.spec.to_dict()
        out["feature"] = self.feature.to_dict()
        return out


@dataclass
class FitResult:
    """A trained autoencoder with its score scale and threshold.

    Attributes
    ----------
    model : tf_keras.Model
        Float model, batch size free.
    residual_sd : NDArray[np.float64], shape (points, channels)
    threshold : float
        Float-model score threshold.
    calibration : dict
        How the threshold was set (see :func:`calibrate_threshold`).
    fit_inputs : NDArray[np.float32], shape (n_fit, points, channels)
        Beats the final model was fitted on (outliers removed).
    calibration_inputs : NDArray[np.float32], shape (n_cal, points, channels)
        Held-out beats, outliers removed, used for the threshold.
    beats_total, beats_dropped, calibration_dropped : int
    seconds : float
        Wall time of training.
    """

    model: object
    residual_sd: NDArray[np.float64]
    threshold: float
    calibration: dict
    fit_inputs: NDArray[np.float32]
    calibration_inputs: NDArray[np.float32]
    beats_total: int
    beats_dropped: int
    calibration_dropped: int
    seconds: float

    def summary(self) -> dict:
        return {
            "beats_total": self.beats_total,
            "beats_kept": int(len(self.fit_inputs)),
            "beats_dropped": self.beats_dropped,
            "beats_calibration": int(len(self.calibration_inputs)),
            "calibration_dropped": self.calibration_dropped,
            "seconds": round(self.seconds, 2),
        }


def robust_outliers(scores: NDArray[np.floating], z: float) -> NDArray[np.bool_]:
    """Mark scores far above the bulk, on a log scale.

    Parameters
    ----------
    scores : NDArray[np.floating], shape (n,), positive
    z : float
        Robust standard deviations (1.4826 MAD of the log score) above the
        median log score beyond which a score is an outlier.

    Returns
    -------
    NDArray[np.bool_], shape (n,)
    """
    logs = np.log(np.maximum(np.asarray(scores, np.float64), 1e-12))
    center = np.median(logs)
    spread = _MAD_TO_SD * np.median(np.abs(logs - center))
    if spread <= 0:
        return np.zeros(logs.shape, bool)
    return (logs - center) / spread > z


def two_class_split(values: NDArray[np.floating]) -> tuple[float, float]:
    """Best split of values into a low and a high class (Otsu's criterion).

    Parameters
    ----------
    values : NDArray[np.floating], shape (n,), n >= 4

    Returns
    -------
    cut : float
        Values above ``cut`` form the high class.
    separation : float
        Share of the variance between the two classes, in [0, 1]: about
        0.64 (2/pi) for the best split of a single normal distribution,
        near 1 for two tight, distant modes.
    """
    v = np.sort(np.asarray(values, np.float64))
    n = v.size
    total = float(v.var())
    if n < 4 or total <= 0:
        return float(v[-1]) if n else 0.0, 0.0
    k = np.arange(1, n)
    csum = np.cumsum(v)[:-1]
    low_mean = csum / k
    high_mean = (v.sum() - csum) / (n - k)
    between = (k / n) * (1 - k / n) * (high_mean - low_mean) ** 2
    best = int(np.argmax(between))
    cut = 0.5 * (v[best] + v[best + 1])
    return float(cut), float(between[best] / total)


def _ectopic_runs(
    marked: NDArray[np.bool_], early: NDArray[np.bool_], longest: int
) -> NDArray[np.bool_]:
    """Marked elements in runs of at most ``longest`` or that start early."""
    out = np.zeros(marked.shape, bool)
    i, n = 0, marked.size
    while i < n:
        if not marked[i]:
            i += 1
            continue
        j = i
        while j < n and marked[j]:
            j += 1
        if j - i <= longest or early[i]:
            out[i:j] = True
        i = j
    return out


def screen_beats(
    inputs: NDArray[np.floating], settings: TrainSettings, lone_outliers: bool = True
) -> NDArray[np.bool_]:
    """Mark training beats that are clearly not normal, before any fit.

    The distance of a beat is the mean squared difference of its window
    (channel 0) from the median window of all the beats. Three rules mark
    a beat:

    1. **A second morphology.** When the log distances fall into two
       well-separated groups (the share of their variance between the
       groups of the best two-class split exceeds
       ``settings.separation_min``; a single bell-shaped group gives
       about 0.64), the far group is a second morphology. When it is
       nearly half the beats (a PVC-dense record) a robust z-score cannot
       see it, since the median and MAD are themselves pulled into it. Its
       beats are marked when they come in short runs (at most
       ``settings.ectopic_run_beats`` in a row) between beats of the near
       group, as ectopic beats do, or in a longer run that starts with a
       premature beat (rule 3), as a ventricular salvo does; a far
       morphology that sets in on time and lasts is the wearer's rhythm
       after a change of posture or electrode contact, and is kept for the
       model to learn.
    2. **A lone outlier.** A distance more than ``settings.drop_z`` robust
       standard deviations (log scale) above the median of its group: all
       the beats, or, after a split, the near group and the kept far group
       each on their own.
    3. **Prematurity.** The prematurity feature (channel 1) above
       ``settings.premature_margin`` (in shares of the recent mean RR
       beyond the feature's dead zone).

    The split is tested before it is used, so a record with one
    morphology loses only its lone outliers, not the far half of its
    spread.

    Parameters
    ----------
    inputs : NDArray[np.floating], shape (n, points, channels)
        Beats in time order.
    settings : TrainSettings
    lone_outliers : bool
        Whether rule 2 applies. Held-out beats are screened without it:
        a noisy normal beat belongs in the calibration, whose own outlier
        rule works on scores.

    Returns
    -------
    NDArray[np.bool_], shape (n,)
    """
    windows = np.asarray(inputs[:, :, 0], np.float64)
    early = np.zeros(len(windows), bool)
    if inputs.shape[2] >= 2:
        early = inputs[:, 0, 1] > settings.feature.gain * settings.premature_margin
    template = np.median(windows, axis=0)
    distance = np.mean((windows - template) ** 2, axis=1)
    log_distance = np.log(np.maximum(distance, 1e-12))
    cut, separation = two_class_split(log_distance)
    second = np.zeros(distance.shape, bool)
    groups = [np.ones(distance.shape, bool)]
    if separation > settings.separation_min:
        high = log_distance > cut
        second = _ectopic_runs(high, early, settings.ectopic_run_beats)
        groups = [~high, high & ~second]
    far = second.copy()
    for group in groups if lone_outliers else []:
        if group.sum() >= 3:
            far[group] = robust_outliers(distance[group], settings.drop_z)
    log.info(
        "screen: distance to the median beat split with separation %.2f "
        "(used above %.2f): %d beats of a second morphology, %d lone outliers",
        separation,
        settings.separation_min,
        int(second.sum()),
        int(far.sum() - second.sum()),
    )
    return far | early


def prematurity_alarm_score(
    residual_sd: NDArray[np.floating],
    feature: PrematurityFeature,
    alarm_prematurity: float,
) -> float:
    """Score of a perfectly rebuilt window arriving ``alarm_prematurity`` early.

    The autoencoder learns that normal beats have a prematurity channel of
    about 0, so an early beat's channel is rebuilt near 0 and its whole
    value is residual.

    Parameters
    ----------
    residual_sd : NDArray[np.floating], shape (points, channels)
    feature : PrematurityFeature
    alarm_prematurity : float
        Share of the recent mean RR (e.g. 0.2 for a beat 20 % early).

    Returns
    -------
    float
    """
    sd = np.asarray(residual_sd, np.float64)
    value = feature.values(np.array([1.0 - alarm_prematurity]), np.array([1.0]))[0]
    return float(np.sum((value / sd[:, 1]) ** 2) / sd.size)


def score_outliers(
    scores: NDArray[np.floating], drop_z: float, separation_min: float
) -> NDArray[np.bool_]:
    """Scores of beats that are not normal, among held-out beats.

    When the log scores fall into two well-separated groups (see
    :func:`two_class_split`; separation above ``separation_min``) the high
    group is a second kind of beat, as in a record with many PVCs, and is
    left out whole; the rest are judged by :func:`robust_outliers`.

    Parameters
    ----------
    scores : NDArray[np.floating], shape (n,), positive
    drop_z : float
    separation_min : float

    Returns
    -------
    NDArray[np.bool_], shape (n,)
    """
    logs = np.log(np.maximum(np.asarray(scores, np.float64), 1e-12))
    high = np.zeros(logs.shape, bool)
    cut, separation = two_class_split(logs)
    if separation > separation_min:
        high = logs > cut
    out = high.copy()
    out[~high] = robust_outliers(np.exp(logs[~high]), drop_z)
    return out


def calibrate_threshold(
    scores: NDArray[np.floating],
    target_false_alarm_rate: float,
    drop_z: float,
    min_threshold: float = 0.0,
    separation_min: float = 1.0,
) -> tuple[float, dict]:
    """Threshold from held-out normal-period scores.

    Parameters
    ----------
    scores : NDArray[np.floating], shape (n,)
        Scores of held-out training-period beats (may include a few
        anomalies, which are left out as robust outliers first).
    target_false_alarm_rate : float
        In (0, 0.5).
    drop_z : float
        Outlier rule of :func:`robust_outliers`.
    min_threshold : float
        The threshold returned is at least this.
    separation_min : float
        Split rule of :func:`score_outliers`; 1.0 (the default) never
        splits.

    Returns
    -------
    threshold : float
    info : dict
        ``method``, ``target_false_alarm_rate``, ``beats`` used,
        ``beats_left_out``, ``lognormal_threshold``, ``min_threshold``,
        ``observed_false_alarm_rate`` on the beats used.

    Raises
    ------
    ModelError
        Fewer than 10 calibration beats, or non-finite scores.
    """
    scores = np.asarray(scores, np.float64)
    if scores.size < 10:
        raise ModelError(f"only {scores.size} calibration beats; train on more minutes")
    if not np.all(np.isfinite(scores)):
        raise ModelError("calibration scores are not finite (model diverged?)")
    if not 0 < target_false_alarm_rate < 0.5:
        raise ValueError(
            f"target false-alarm rate {target_false_alarm_rate} not in (0, 0.5)"
        )
    out = score_outliers(scores, drop_z, separation_min)
    kept = np.log(np.maximum(scores[~out], 1e-12))
    center = float(np.median(kept))
    spread = float(_MAD_TO_SD * np.median(np.abs(kept - center)))
    z_q = float(norm.ppf(1.0 - target_false_alarm_rate))
    fitted = math.exp(center + z_q * spread)
    threshold = max(fitted, float(min_threshold))
    info = {
        "method": "lognormal_quantile",
        "lognormal_threshold": fitted,
        "min_threshold": float(min_threshold),
        "target_false_alarm_rate": float(target_false_alarm_rate),
        "beats": int(kept.size),
        "beats_left_out": int(out.sum()),
        "observed_false_alarm_rate": float(np.mean(scores[~out] > threshold)),
    }
    return threshold, info


def residual_spread(
    inputs: NDArray[np.floating], outputs: NDArray[np.floating], floor: float
) -> NDArray[np.float64]:
    """Per-step, per-channel standard deviation of the residual.

    Parameters
    ----------
    inputs, outputs : NDArray[np.floating], shape (n, points, channels)
    floor : float
        Smallest value returned.

    Returns
    -------
    NDArray[np.float64], shape (points, channels)
    """
    res = np.asarray(outputs, np.float64) - np.asarray(inputs, np.float64)
    return np.maximum(np.sqrt(np.mean(res * res, axis=0)), floor)


def predict(model, inputs: NDArray[np.floating]) -> NDArray[np.float64]:
    """Float reconstructions, shape as ``inputs``."""
    out = model.predict(np.asarray(inputs, np.float32), batch_size=256, verbose=0)
    return np.asarray(out, np.float64)


def fit_autoencoder(
    inputs: NDArray[np.floating],
    settings: TrainSettings,
    epochs: int,
    label: str,
    min_steps: int = 0,
):
    """Fit a fresh LSTM autoencoder to rebuild ``inputs``.

    Parameters
    ----------
    inputs : NDArray[np.floating], shape (n, points, channels)
    settings : TrainSettings
    epochs : int
        Passes over ``inputs``; raised so that the fit makes at least
        ``min_steps`` gradient steps.
    label : str
        Names the pass in the progress log lines.
    min_steps : int
        Fewest gradient steps.

    Returns
    -------
    tf_keras.Model
    """
    _, keras = tensorflow_and_keras()
    seed_everything(settings.seed)
    model = build_lstm_autoencoder(settings.spec)
    model.compile(optimizer=keras.optimizers.Adam(settings.learning_rate), loss="mse")
    x = np.asarray(inputs, np.float32)
    steps_per_epoch = math.ceil(len(x) / settings.batch_size)
    epochs = max(epochs, math.ceil(min_steps / steps_per_epoch))
    model.fit(
        x,
        x,
        epochs=epochs,
        batch_size=settings.batch_size,
        shuffle=True,
        verbose=0,
        callbacks=[_epoch_logger(label, epochs)],
    )
    return model


def train_robust(inputs: NDArray[np.floating], settings: TrainSettings) -> FitResult:
    """Train, drop the worst-rebuilt beats, refit, and calibrate.

    Parameters
    ----------
    inputs : NDArray[np.floating], shape (n, points, channels)
        Every training-period beat, in time order, unlabeled.
    settings : TrainSettings

    Returns
    -------
    FitResult

    Raises
    ------
    ModelError
        Too few beats, non-finite inputs or a diverged model.
    """
    started = time.perf_counter()
    inputs = np.asarray(inputs, np.float32)
    if inputs.ndim != 3 or inputs.shape[1:] != (
        settings.spec.points,
        settings.spec.channels,
    ):
        raise ModelError(
            f"training inputs have shape {inputs.shape}, model wants "
            f"(n, {settings.spec.points}, {settings.spec.channels})"
        )
    bad = np.flatnonzero(~np.all(np.isfinite(inputs), axis=(1, 2)))
    if bad.size:
        raise ModelError(f"training beat {int(bad[0])} has non-finite values")
    n = inputs.shape[0]
    held_out = np.arange(n) >= n - int(round(n * settings.calibration_share))
    fit_x, cal_x = inputs[~held_out], inputs[held_out]
    if fit_x.shape[0] < 30:
        raise ModelError(f"only {fit_x.shape[0]} beats to fit; train on more minutes")
    log.info(
        "training on %d beats (%d held out for calibration)", len(fit_x), len(cal_x)
    )

    screened = screen_beats(inputs, settings)[~held_out]
    cal_screened = screen_beats(inputs, settings, lone_outliers=False)[held_out]
    first_x = fit_x[~screened]
    first = fit_autoencoder(
        first_x,
        settings,
        settings.first_pass_epochs,
        "first pass",
        settings.min_fit_steps,
    )
    worst = robust_outliers(
        _scores(first, first_x, settings.residual_sd_floor, settings.window_z2_cap),
        settings.drop_z,
    )
    kept_x = first_x[~worst]
    dropped = int(screened.sum() + worst.sum())
    log.info(
        "dropped %d of %d training beats: %d far from the median beat or "
        "premature, %d worst rebuilt (robust z > %.1f); refitting on %d",
        dropped,
        len(fit_x),
        int(screened.sum()),
        int(worst.sum()),
        settings.drop_z,
        len(kept_x),
    )
    model = fit_autoencoder(
        kept_x, settings, settings.epochs, "final fit", settings.min_fit_steps
    )

    residual_sd = residual_spread(
        kept_x, predict(model, kept_x), settings.residual_sd_floor
    )
    cal_x = cal_x[~cal_screened]
    cal_scores = standardized_mse(
        cal_x, predict(model, cal_x), residual_sd, settings.window_z2_cap
    )
    threshold, info = calibrate_threshold(
        cal_scores,
        settings.target_false_alarm_rate,
        settings.drop_z,
        prematurity_alarm_score(
            residual_sd, settings.feature, settings.alarm_prematurity
        ),
        settings.separation_min,
    )
    cal_out = score_outliers(cal_scores, settings.drop_z, settings.separation_min)
    log.info(
        "float threshold %.4g from %d held-out beats (%d screened out like the "
        "training beats, %d left out as outliers)",
        threshold,
        info["beats"],
        int(cal_screened.sum()),
        info["beats_left_out"],
    )
    return FitResult(
        model=model,
        residual_sd=residual_sd,
        threshold=threshold,
        calibration=info,
        fit_inputs=kept_x,
        calibration_inputs=cal_x[~cal_out],
        beats_total=n,
        beats_dropped=dropped,
        calibration_dropped=int(cal_screened.sum() + cal_out.sum()),
        seconds=time.perf_counter() - started,
    )


def _scores(
    model, inputs: NDArray[np.float32], floor: float, window_z2_cap: float
) -> NDArray[np.float64]:
    outputs = predict(model, inputs)
    if not np.all(np.isfinite(outputs)):
        raise ModelError("the autoencoder's output is not finite (training diverged)")
    return standardized_mse(
        inputs, outputs, residual_spread(inputs, outputs, floor), window_z2_cap
    )


def _epoch_logger(label: str, epochs: int):
    """A Keras callback logging the loss every tenth of the epochs and the last."""
    _, keras = tensorflow_and_keras()
    every = max(1, epochs // 10)
    started = time.perf_counter()

    def on_epoch_end(epoch: int, logs: dict | None = None) -> None:
        done = epoch + 1
        if done % every == 0 or done == epochs:
            log.info(
                "%s: epoch %d/%d loss %.4f (%.1f s)",
                label,
                done,
                epochs,
                (logs or {}).get("loss", float("nan")),
                time.perf_counter() - started,
            )

    return keras.callbacks.LambdaCallback(on_epoch_end=on_epoch_end)
