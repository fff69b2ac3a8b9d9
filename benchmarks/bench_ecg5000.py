"""ECG5000: our int8 LSTM autoencoder against the tutorial's dense autoencoder.

The UCR ECG5000 training file (500 beats of 140 points, class 1 normal)
is split once, stratified by class, half for training and half for
testing (fixed shuffle). Both models learn the normal beats of the
training half only and score every beat of the test half; a beat of any
class other than 1 is an anomaly. AUC, precision, recall and F1 (anomaly
= positive) are reported as mean +- sd over seeds (model initialisation
and shuffling; the split stays fixed).

- Ours (:data:`CHOSEN`): the LSTM autoencoder of ``beatguard.train``
  (``build_lstm_autoencoder``, fused int8 LSTMs) on the beats resampled to
  64 points, 16 units, code noise 0.15, a decoder clock of 4 signals, 4800
  Adam steps (batch 16, step size 3e-3 decaying by a cosine to 5 % of it)
  on the first 80 % of the normal training beats; the last 20 % are held
  out and calibrate the device's decision (``calibrate_decision``: 0.5 %
  target false-alarm rate). The fit is converted to full int8 by
  ``convert_run`` (decision re-calibrated on int8 errors) and the test
  half is scored by the device's ``Scorer``: AUC on the int8 shape error
  (mean squared residual), precision, recall and F1 from the decision's
  verdicts, beats judged in file order with no timing (UCR beats carry no
  RR intervals), and again at the dense tutorial's threshold rule (mean +
  1 sd of the errors of the fitted beats). The device's decision is made
  for hours of one wearer's beats, whose errors drift and spread: its
  threshold asks for an error 20 to 50 times the normal beats', and on
  these beats it flags almost none, which the first row says as it is.
  The beats are labeled normal, so the personal protocol's screen and
  worst-beat drop (``train_robust``) are not used. The personal models
  differ (code noise 0.5, no clock, constant step size; see
  ``LstmAutoencoderSpec``).
- Dense: the TensorFlow anomaly-detection tutorial's model (32-16-8 /
  16-32-140, ReLU, sigmoid output) on min-max scaled 140-point beats, MAE
  loss, Adam, 20 epochs, batch 512; threshold mean + 1 sd of the training
  loss, as the tutorial sets it.

How the configuration was chosen
--------------------------------
Only the training half is used (``--select``): its 146 normal beats are cut
into 3 fixed folds; each candidate of :data:`CANDIDATES` is fitted (with its
own 20 % calibration hold-out) on two folds, converted to int8, and scores
the third fold's normal beats together with the 103 anomalous beats of the
training half, which no model trains on. The rule, fixed before each round:
the highest mean int8 AUC among candidates whose int8 conversion passes the
converter's parity check in every fit. ``--select NAME... [--seeds ...]``
reproduces rows (a few minutes per fit and fold on two cores).

Round 1, seed 0, without the decoder clock (the first rows were run with an
earlier two-channel input; "refused": the converter refused the int8 model,
reconstruction RMS 0.28 to 1.34 from the float one, limit 0.25; a row stops
at its first refused fold where it says so):

=================================  ========================  =========
candidate                          int8 AUC, folds 0 1 2     float AUC
=================================  ========================  =========
p64-u16-mse-2400                   0.986, refused, 0.953     0.978
p64-u16-mse-4800                   refused (fold 0)          --
p64-u8-mse-4800                    0.969 +- 0.012            0.977
p64-u16-noise30-mse-2400           0.981 +- 0.012            0.985
p64-u16-noise30-mse-4800           0.979 +- 0.016            0.982
p64-u16-noise50-mse-2400           0.979 +- 0.025            0.981
p64-u16-noise50-mse-4800           0.998, refused, refused   0.982
p140-u32-noise30-mse-4800          refused in every fold     0.973
p64-u16-noise15-decay-2400         0.991, refused (fold 1)   0.990
p64-u16-noise20-decay-2400         0.985, refused (fold 1)   0.988
p64-u16-noise30-decay-2400         refused (folds 0, 1)      0.991
p64-u24-noise15-decay-2400         refused (folds 0, 1)      0.985
dense autoencoder (reference)      0.910 +- 0.050            --
=================================  ========================  =========

Round 1 chose ``p64-u16-noise30-mse-2400``; on the test half it gave
0.954 +- 0.026 over 5 seeds (0.914 to 0.980), one seed in six refused.
The decayed step size made the float model better (up to 0.991) and the
int8 one refused more often. The refused models were faithful for the
first 40 of 64 steps and then drifted: the decoder, which sees the same
code at every step, keeps time with slowly drifting cell states, and the
int8 kernel's fixed-point gates change that drift enough to flip its
units a few steps early or late. Round 2 gives the decoder a clock
(``clock_channels``, see ``LstmAutoencoderSpec``), with the decayed step
size, seed 0:

=================================  ========================  =========
candidate                          int8 AUC, folds 0 1 2     float AUC
=================================  ========================  =========
p64-u16-noise05-clock4-decay-2400  0.992 0.998 0.972         0.988
p64-u16-noise15-clock4-decay-2400  0.995 0.988 0.966         0.983
p64-u16-noise30-clock4-decay-2400  0.990 0.984 0.965         0.980
p64-u16-noise50-clock4-decay-2400  0.992 0.986 0.965         0.982
p64-u16-noise15-clock4-decay-4800  0.997 0.989 0.968         0.984
p64-u24-noise15-clock4-decay-2400  0.984 0.983 0.974         0.979
=================================  ========================  =========

Every fit converted, with int8 and float AUC within 0.002. The test half
was scored with the two round-2 leaders as they led (noise 0.15 and 2400
steps: 0.975 +- 0.004; then noise 0.05: 0.967 +- 0.013, one seed's int8
AUC 0.951 against 0.974 float), which showed that one seed per fold was
too noisy a selection for differences this small. Round 3 ran the three
best of round 2 on seeds 0, 1 and 2 under the same rule; its pick is what
the benchmark reports, whatever the test half then said:

=================================  ================  =========  ==========
candidate                          int8 AUC (9 fits) float AUC  converted
=================================  ================  =========  ==========
p64-u16-noise05-clock4-decay-2400  --                0.979      8 of 9
p64-u16-noise15-clock4-decay-2400  0.980 +- 0.011    0.980      9 of 9
p64-u16-noise15-clock4-decay-4800  0.981 +- 0.015    0.981      9 of 9
=================================  ================  =========  ==========

The chosen row's fits, fold by fold and seed 0 1 2: 0.997 0.989 0.989,
0.989 0.981 0.987, 0.968 0.949 0.976.
On the test half it then gave int8 AUC 0.971 +- 0.003 over 5 seeds
(``benchmarks/results.md``), below the 0.975 of the 2400-step row seen
earlier: the selection's differences are within its noise.

Run: ``.venv/bin/python benchmarks/bench_ecg5000.py [--runs 3] [--json OUT]``
or ``... --select [NAME ...] [--seeds 0 1 2]`` for the validation tables.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from beatguard.convert.bundle_writer import convert_run
from beatguard.device.bundle import model_inputs, mse
from beatguard.device.chain import ChainConfig
from beatguard.device.errors import ConversionError, ModelError
from beatguard.device.records import read_ucr
from beatguard.device.scorer import Scorer
from beatguard.train.evaluate import roc_auc
from beatguard.train.fit import (
    FitResult,
    TrainSettings,
    calibrate_decision,
    fit_autoencoder,
    predict,
)
from beatguard.train.keras_setup import seed_everything, tensorflow_and_keras
from beatguard.train.models import LstmAutoencoderSpec, build_dense_autoencoder
from beatguard.train.run import save_run

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
ECG5000 = REPO.parent / "shared" / "data" / "ecg5000" / "ECG5000_TRAIN.txt"
SPLIT_SEED = 20
VALIDATION_FOLDS = 3
VALIDATION_SEED = 1234
CALIBRATION_SHARE = 0.2
MAX_REFUSED = 3
"""Seeds beyond ``runs`` tried when the converter refuses a fit's int8 model."""


@dataclass(frozen=True)
class OursConfig:
    """One way to build, train and score our LSTM autoencoder on UCR beats.

    Attributes
    ----------
    name : str
        Label in the selection table.
    points : int
        Samples per beat the model takes (the 140-point beats are linearly
        resampled to this).
    units : int
        Encoder and decoder LSTM state size.
    code_noise_sd : float
        Gaussian noise on the code during training.
    fit_steps : int
        Gradient steps of the fit (epochs follow from the beat count).
    learning_rate : float
        Adam step size.
    batch_size : int
    final_learning_rate_share : float
        Where the cosine decay of the step size ends (1: constant step).
    target_false_alarm_rate : float
        Share of held-out normal beats allowed above the threshold.
    clock_channels : int
        Clock signals given to the decoder (``LstmAutoencoderSpec``).
    """

    name: str
    points: int
    units: int
    code_noise_sd: float
    fit_steps: int
    learning_rate: float
    batch_size: int = 16
    final_learning_rate_share: float = 1.0
    target_false_alarm_rate: float = 0.005
    clock_channels: int = 0

    def settings(self, seed: int, beats: int) -> TrainSettings:
        """Training settings for ``beats`` fitted beats and one seed."""
        spec = LstmAutoencoderSpec(
            points=self.points,
            encoder_units=self.units,
            decoder_units=self.units,
            code_noise_sd=self.code_noise_sd,
            clock_channels=self.clock_channels,
        )
        epochs = math.ceil(self.fit_steps / math.ceil(beats / self.batch_size))
        return TrainSettings(
            spec=spec,
            first_pass_epochs=0,
            epochs=epochs,
            batch_size=self.batch_size,
            min_fit_steps=self.fit_steps,
            learning_rate=self.learning_rate,
            final_learning_rate_share=self.final_learning_rate_share,
            seed=seed,
            calibration_share=CALIBRATION_SHARE,
            target_false_alarm_rate=self.target_false_alarm_rate,
        )


_CLOCK_DECAY = {"final_learning_rate_share": 0.05, "clock_channels": 4}
CANDIDATES = (
    OursConfig("p64-u16-mse-2400", 64, 16, 0.15, 2400, 3e-3),
    OursConfig("p64-u16-mse-4800", 64, 16, 0.15, 4800, 3e-3),
    OursConfig("p64-u8-mse-4800", 64, 8, 0.15, 4800, 3e-3),
    OursConfig("p64-u16-noise30-mse-2400", 64, 16, 0.30, 2400, 3e-3),
    OursConfig("p64-u16-noise30-mse-4800", 64, 16, 0.30, 4800, 3e-3),
    OursConfig("p64-u16-noise50-mse-2400", 64, 16, 0.50, 2400, 3e-3),
    OursConfig("p64-u16-noise50-mse-4800", 64, 16, 0.50, 4800, 3e-3),
    OursConfig("p140-u32-noise30-mse-4800", 140, 32, 0.30, 4800, 3e-3),
    OursConfig("p64-u16-noise15-decay-2400", 64, 16, 0.15, 2400, 3e-3, 16, 0.05),
    OursConfig("p64-u16-noise20-decay-2400", 64, 16, 0.20, 2400, 3e-3, 16, 0.05),
    OursConfig("p64-u16-noise30-decay-2400", 64, 16, 0.30, 2400, 3e-3, 16, 0.05),
    OursConfig("p64-u24-noise15-decay-2400", 64, 24, 0.15, 2400, 3e-3, 16, 0.05),
    OursConfig(
        "p64-u16-noise05-clock4-decay-2400", 64, 16, 0.05, 2400, 3e-3, **_CLOCK_DECAY
    ),
    OursConfig(
        "p64-u16-noise15-clock4-decay-2400", 64, 16, 0.15, 2400, 3e-3, **_CLOCK_DECAY
    ),
    OursConfig(
        "p64-u16-noise30-clock4-decay-2400", 64, 16, 0.30, 2400, 3e-3, **_CLOCK_DECAY
    ),
    OursConfig(
        "p64-u16-noise50-clock4-decay-2400", 64, 16, 0.50, 2400, 3e-3, **_CLOCK_DECAY
    ),
    OursConfig(
        "p64-u16-noise15-clock4-decay-4800", 64, 16, 0.15, 4800, 3e-3, **_CLOCK_DECAY
    ),
    OursConfig(
        "p64-u24-noise15-clock4-decay-2400", 64, 24, 0.15, 2400, 3e-3, **_CLOCK_DECAY
    ),
)
"""Configurations compared by ``--select``; a name gives the points, the LSTM
units, the code noise when it is not 0.15, the score and the fit steps."""

CHOSEN = next(c for c in CANDIDATES if c.name == "p64-u16-noise15-clock4-decay-4800")
"""The configuration of the benchmark, chosen by ``--select`` (see the module
docstring)."""


def stratified_split(labels: NDArray[np.integer], seed: int = SPLIT_SEED) -> NDArray:
    """Boolean mask of the training half, half of each class (rounded down).

    Parameters
    ----------
    labels : NDArray[np.integer], shape (n,)
    seed : int
        Seeds the fixed shuffle within each class.

    Returns
    -------
    NDArray[np.bool_], shape (n,)
    """
    rng = np.random.default_rng(seed)
    train = np.zeros(len(labels), bool)
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        rng.shuffle(idx)
        train[idx[: len(idx) // 2]] = True
    return train


def validation_folds(
    normal_count: int, folds: int = VALIDATION_FOLDS, seed: int = VALIDATION_SEED
) -> list[NDArray[np.int64]]:
    """Disjoint folds of the training half's normal beats, for model selection.

    Parameters
    ----------
    normal_count : int
        Normal beats in the training half.
    folds : int
    seed : int
        Seeds the fixed permutation.

    Returns
    -------
    list of NDArray[np.int64]
        ``folds`` sorted index arrays into the normal beats, together
        covering each index once.
    """
    order = np.random.default_rng(seed).permutation(normal_count)
    return [np.sort(part) for part in np.array_split(order, folds)]


def resample(beats: NDArray[np.floating], points: int) -> NDArray[np.float32]:
    """Linear resampling of each row to ``points`` samples, float32.

    Parameters
    ----------
    beats : NDArray[np.floating], shape (n, m)
    points : int

    Returns
    -------
    NDArray[np.float32], shape (n, points)
        The rows themselves when ``points == m``.
    """
    old = np.linspace(0.0, 1.0, beats.shape[1])
    new = np.linspace(0.0, 1.0, points)
    return np.stack([np.interp(new, old, row) for row in beats]).astype(np.float32)


def classification(truth: NDArray[np.bool_], flagged: NDArray[np.bool_]) -> dict:
    """Precision, recall and F1 of the flagged beats (anomaly = positive)."""
    tp = int(np.sum(truth & flagged))
    precision = tp / max(1, int(flagged.sum()))
    recall = tp / max(1, int(truth.sum()))
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def ucr_inputs(beats: NDArray[np.floating], points: int) -> NDArray[np.float32]:
    """Model inputs of UCR beats: the resampled window, shape (n, points, 1)."""
    return model_inputs(resample(beats, points))


def fit_ours(
    normal_beats: NDArray[np.floating], config: OursConfig, seed: int
) -> tuple[FitResult, TrainSettings]:
    """Fit our autoencoder on labeled normal beats and calibrate its decision.

    The last ``CALIBRATION_SHARE`` of the beats are held out of the fit;
    their errors calibrate the float decision. There is no screening or
    dropping: the beats are labeled normal.

    Parameters
    ----------
    normal_beats : NDArray[np.floating], shape (n, 140)
    config : OursConfig
    seed : int

    Returns
    -------
    (FitResult, TrainSettings)
        What :func:`beatguard.train.run.save_run` takes.

    Raises
    ------
    ModelError
        The fit diverged.
    """
    started = time.perf_counter()
    inputs = ucr_inputs(normal_beats, config.points)
    held_out = int(round(len(inputs) * CALIBRATION_SHARE))
    fit_x, cal_x = inputs[: len(inputs) - held_out], inputs[len(inputs) - held_out :]
    settings = config.settings(seed, len(fit_x))
    model = fit_autoencoder(
        fit_x, settings, settings.epochs, f"{config.name} seed {seed}", config.fit_steps
    )
    cal_outputs = predict(model, cal_x)
    if not np.all(np.isfinite(cal_outputs)):
        raise ModelError(f"{config.name}: the fit diverged (non-finite output)")
    decision, info = calibrate_decision(mse(cal_x, cal_outputs), settings)
    result = FitResult(
        model=model,
        decision=decision,
        calibration=info,
        fit_inputs=fit_x,
        calibration_inputs=cal_x,
        beats_total=len(inputs),
        beats_dropped=0,
        calibration_dropped=0,
        seconds=time.perf_counter() - started,
    )
    return result, settings


def score_ours(
    result: FitResult,
    settings: TrainSettings,
    beats: NDArray[np.floating],
    truth: NDArray[np.bool_],
    work: Path,
) -> dict:
    """Convert a fit to int8, score ``beats`` with the device's scorer.

    Parameters
    ----------
    result, settings
        From :func:`fit_ours`.
    beats : NDArray[np.floating], shape (n, 140)
    truth : NDArray[np.bool_], shape (n,)
        True for anomalous beats.
    work : Path
        Run and bundle folder.

    Returns
    -------
    dict
        ``auc`` (int8 shape error), ``precision``, ``recall``, ``f1`` (the
        int8-calibrated decision's verdicts), the same three with the
        suffix ``_tutorial_rule`` (threshold mean + 1 sd of the int8 errors
        of the fitted beats, the dense tutorial's rule), ``auc_float``,
        ``model_bytes``, ``parity_rms`` (RMS difference of the int8 and
        float reconstructions of the fitted beats, from the converter's
        check), ``parameters``, ``fit_seconds``.
    """
    points = settings.spec.points
    inputs = ucr_inputs(beats, points)
    figures = _float_figures(result, settings, inputs, truth)
    chain = ChainConfig(window_points=points).to_dict()
    save_run(work, result, settings, chain, {"records": ["ECG5000"]})
    convert_run(work)
    with Scorer(work) as scorer:
        scores = scorer.errors_of_inputs(inputs)
        _, flagged = scorer.decision.judge(scores, np.zeros(len(scores)))
        fit_errors = scorer.errors_of_inputs(result.fit_inputs)
    tutorial_threshold = float(np.mean(fit_errors) + np.std(fit_errors))
    tutorial = classification(truth, scores > tutorial_threshold)
    return {
        "auc": roc_auc(truth, scores),
        **classification(truth, flagged),
        **{f"{key}_tutorial_rule": value for key, value in tutorial.items()},
        **figures,
        "model_bytes": (work / "model.tflite").stat().st_size,
        "parity_rms": json.loads((work / "model.json").read_text())["parity"][
            "reconstruction_rms_int8_vs_float"
        ],
    }


def _float_figures(
    result: FitResult,
    settings: TrainSettings,
    inputs: NDArray[np.float32],
    truth: NDArray[np.bool_],
) -> dict:
    """Float-model AUC, parameter count and fit time."""
    float_scores = mse(inputs, predict(result.model, inputs))
    return {
        "auc_float": roc_auc(truth, float_scores),
        "parameters": int(result.model.count_params()),
        "fit_seconds": result.seconds,
    }


def dense(
    train_beats: NDArray[np.floating],
    test_beats: NDArray[np.floating],
    truth: NDArray[np.bool_],
    seed: int,
) -> dict:
    """The tutorial's dense autoencoder and threshold; figures on ``test_beats``."""
    tensorflow_and_keras()
    lo, hi = float(train_beats.min()), float(train_beats.max())
    train = ((train_beats - lo) / (hi - lo)).astype(np.float32)
    test = ((test_beats - lo) / (hi - lo)).astype(np.float32)
    seed_everything(seed)
    model = build_dense_autoencoder(train.shape[1])
    model.compile(optimizer="adam", loss="mae")
    model.fit(train, train, epochs=20, batch_size=512, verbose=0, shuffle=True)
    train_loss = np.mean(np.abs(model.predict(train, verbose=0) - train), axis=1)
    threshold = float(np.mean(train_loss) + np.std(train_loss))
    scores = np.mean(np.abs(model.predict(test, verbose=0) - test), axis=1)
    return {
        "auc": roc_auc(truth, scores),
        **classification(truth, scores > threshold),
    }


def _training_half() -> tuple[NDArray, NDArray, NDArray[np.bool_]]:
    """Beats and labels of the whole file, and the training-half mask."""
    data = read_ucr(ECG5000)
    return data.beats, data.labels, stratified_split(data.labels)


def _mean_sd(values: list[float]) -> tuple[float, float]:
    """Mean and sample sd; NaN when a value is NaN (a refused conversion)."""
    array = np.asarray(values, np.float64)
    sd = float(np.std(array, ddof=1)) if array.size > 1 else 0.0
    return float(np.mean(array)), sd


def select(names: list[str] | None = None, seeds: tuple[int, ...] = (0,)) -> dict:
    """Validation figures of the candidate configurations, training half only.

    For each fold of :func:`validation_folds` and each seed, a candidate is
    fitted (with :func:`fit_ours`, calibration hold-out included) on the
    training half's normal beats outside the fold, converted to int8, and
    scores the fold's normal beats together with every anomalous beat of
    the training half (which no model trains on). The dense autoencoder is
    scored the same way for reference. The test half is never read.

    Parameters
    ----------
    names : list of str, optional
        Candidates to run (all of :data:`CANDIDATES` when omitted).
    seeds : tuple of int
        Every fold is fitted once per seed; the figures are over all fits.

    Returns
    -------
    dict
        ``{"candidates": {name: {"folds": [figures, ...], ...}}, "dense":
        [figures, ...], "table_md": str}``; ``folds`` holds one entry per
        fold and seed, fold by fold.
    """
    beats, labels, train_mask = _training_half()
    normal = beats[train_mask & (labels == 1)]
    anomalous = beats[train_mask & (labels != 1)]
    folds = validation_folds(len(normal))
    chosen = [c for c in CANDIDATES if names is None or c.name in names]
    out: dict = {"candidates": {}, "dense": []}
    for k, fold in enumerate(folds):
        fit_normal = normal[np.setdiff1d(np.arange(len(normal)), fold)]
        val_beats = np.concatenate([normal[fold], anomalous])
        truth = np.r_[np.zeros(len(fold), bool), np.ones(len(anomalous), bool)]
        for seed in seeds:
            for config in chosen:
                result, settings = fit_ours(fit_normal, config, seed)
                figures = _validation_figures(result, settings, val_beats, truth)
                out["candidates"].setdefault(config.name, {"folds": []})
                out["candidates"][config.name]["folds"].append(figures)
                log.info(
                    "fold %d seed %d %s: %s", k, seed, config.name, _rounded(figures)
                )
            out["dense"].append(dense(fit_normal, val_beats, truth, seed))
            log.info("fold %d seed %d dense: %s", k, seed, _rounded(out["dense"][-1]))
    rows = []
    for config in chosen:
        folds_figures = out["candidates"][config.name]["folds"]
        cells = []
        for key in ("auc", "auc_float", "f1"):
            mean, sd = _mean_sd([f[key] for f in folds_figures])
            out["candidates"][config.name][key] = {"mean": mean, "sd": sd}
            cells.append(f"{mean:.4f} ± {sd:.4f}")
        aucs = " ".join(
            "refused" if "conversion_refused" in f else f"{f['auc']:.3f}"
            for f in folds_figures
        )
        rows.append(
            f"| {config.name} | {cells[0]} ({aucs}) | {cells[1]} | {cells[2]} | "
            f"{folds_figures[0]['parameters']} |"
        )
    mean, sd = _mean_sd([f["auc"] for f in out["dense"]])
    f1_mean, f1_sd = _mean_sd([f["f1"] for f in out["dense"]])
    rows.append(
        f"| dense AE | {mean:.4f} ± {sd:.4f} | | {f1_mean:.4f} ± {f1_sd:.4f} | |"
    )
    out["table_md"] = "\n".join(
        [
            f"Validation on the training half ({len(normal)} normal beats in "
            f"{len(folds)} folds, {len(anomalous)} anomalous beats; seeds "
            f"{', '.join(map(str, seeds))}; mean ± sd over folds and seeds)",
            "",
            "| candidate | AUC int8 (per fold and seed) | AUC float | F1 int8 | "
            "parameters |",
            "|---|---|---|---|---|",
            *rows,
        ]
    )
    return out


def _validation_figures(
    result: FitResult,
    settings: TrainSettings,
    beats: NDArray[np.floating],
    truth: NDArray[np.bool_],
) -> dict:
    """:func:`score_ours`, or the float AUC alone when int8 conversion fails.

    A fit whose int8 reconstructions are not faithful to the float ones is
    refused by the converter; the candidate then has no int8 figures for
    that fold (NaN) and cannot be chosen.
    """
    with tempfile.TemporaryDirectory() as tmp:
        try:
            return score_ours(result, settings, beats, truth, Path(tmp))
        except ConversionError as err:
            log.warning("int8 conversion refused: %s", err)
            refused = str(err)
    inputs = ucr_inputs(beats, settings.spec.points)
    nan = float("nan")
    return {
        "auc": nan,
        "precision": nan,
        "recall": nan,
        "f1": nan,
        **_float_figures(result, settings, inputs, truth),
        "conversion_refused": refused,
    }


def _rounded(figures: dict) -> dict:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()}


def _figure(values: list[float], unit: str) -> dict:
    mean, sd = _mean_sd(values)
    return {
        "median": statistics.median(values),
        "mean": mean,
        "sd": sd,
        "p99": None,
        "unit": unit,
        "runs": [round(v, 5) for v in values],
    }


def run(runs: int = 3) -> dict:
    """Train both models on ``runs`` seeds on the fixed split.

    Our model uses :data:`CHOSEN`; figures are on the test half. Seeds are
    tried from 0 up; a seed whose int8 model the converter refuses (the
    int8 reconstructions too far from the float ones, as for seed 0 with
    the one-channel model: RMS 0.62) is reported and replaced by the next,
    at most :data:`MAX_REFUSED` times, since that is what a user whose
    ``beatguard convert`` refuses a model does: train again.
    """
    started = time.perf_counter()
    beats, labels, train_mask = _training_half()
    normal_train = beats[train_mask & (labels == 1)]
    test_beats = beats[~train_mask]
    truth = labels[~train_mask] != 1
    log.info(
        "ECG5000 split: %d normal training beats; test %d beats, %d anomalous; "
        "ours: %s",
        len(normal_train),
        len(test_beats),
        int(truth.sum()),
        CHOSEN,
    )
    per_seed: dict[str, list[dict]] = {"ours_int8": [], "dense_ae": []}
    refused: list[int] = []
    seed = -1
    while len(per_seed["ours_int8"]) < runs and seed < runs + MAX_REFUSED:
        seed += 1
        result, settings = fit_ours(normal_train, CHOSEN, seed)
        with tempfile.TemporaryDirectory() as tmp:
            try:
                figures = score_ours(result, settings, test_beats, truth, Path(tmp))
            except ConversionError as err:
                log.warning(
                    "seed %d: int8 conversion refused (%s); next seed", seed, err
                )
                refused.append(seed)
                continue
        per_seed["ours_int8"].append({**figures, "seed": seed})
        per_seed["dense_ae"].append(dense(normal_train, test_beats, truth, seed))
        log.info(
            "seed %d: ours AUC %.4f (float %.4f), dense AUC %.4f",
            seed,
            per_seed["ours_int8"][-1]["auc"],
            per_seed["ours_int8"][-1]["auc_float"],
            per_seed["dense_ae"][-1]["auc"],
        )
    figures = {}
    rows = []
    for model, results in per_seed.items():
        cells = []
        for key in ("auc", "precision", "recall", "f1"):
            figure = _figure([r[key] for r in results], "fraction")
            figures[f"{model}_{key}"] = figure
            cells.append(f"{figure['mean']:.4f} ± {figure['sd']:.4f}")
        rows.append(f"| {model} | " + " | ".join(cells) + " |")
    cells = []
    for key in ("precision", "recall", "f1"):
        figure = _figure(
            [r[f"{key}_tutorial_rule"] for r in per_seed["ours_int8"]], "fraction"
        )
        figures[f"ours_int8_{key}_tutorial_rule"] = figure
        cells.append(f"{figure['mean']:.4f} ± {figure['sd']:.4f}")
    rows.append(
        "| ours_int8, tutorial's threshold rule | (same) | " + " | ".join(cells) + " |"
    )
    figures["ours_float_auc"] = _figure(
        [r["auc_float"] for r in per_seed["ours_int8"]], "fraction"
    )
    rows.append(
        f"| ours_float (AUC only) | {figures['ours_float_auc']['mean']:.4f} ± "
        f"{figures['ours_float_auc']['sd']:.4f} | | | |"
    )
    figures["ours_int8_model_bytes"] = _figure(
        [float(r["model_bytes"]) for r in per_seed["ours_int8"]], "bytes"
    )
    figures["ours_fit_seconds"] = _figure(
        [r["fit_seconds"] for r in per_seed["ours_int8"]], "s"
    )
    figures["ours_int8_parity_rms"] = _figure(
        [r["parity_rms"] for r in per_seed["ours_int8"]], "RMS"
    )
    wall_s = time.perf_counter() - started
    table = "\n".join(
        [
            f"ECG5000 (fixed stratified half split, {len(normal_train)} normal "
            f"training beats, {len(test_beats)} test beats; mean ± sd over "
            f"{runs} seeds). Ours: {CHOSEN.points} points, {CHOSEN.units} units, "
            f"{per_seed['ours_int8'][0]['parameters']} parameters, "
            f"code noise {CHOSEN.code_noise_sd:g}, {CHOSEN.clock_channels} clock "
            "signals for the decoder, mean squared error, full int8 "
            f"({figures['ours_int8_model_bytes']['median']:.0f} bytes; int8 "
            "reconstructions differ from float by an RMS of "
            f"{figures['ours_int8_parity_rms']['median']:.3f}, median over "
            "seeds). The precision, recall and F1 of the first row are the "
            "device decision's verdicts; it is made for hours of one wearer's "
            "beats and flags almost none of these.",
            "",
            "| model | AUC | precision | recall | F1 |",
            "|---|---|---|---|---|",
            *rows,
            "",
            "Seeds used: "
            + ", ".join(str(r["seed"]) for r in per_seed["ours_int8"])
            + (
                f"; seeds whose int8 conversion the converter refused (its "
                f"parity check), replaced by the next seed as a user would "
                f"retrain: {', '.join(map(str, refused))}"
                if refused
                else "; no conversion refused"
            )
            + f". Wall time {wall_s / 60:.1f} min.",
        ]
    )
    return {
        "name": "ecg5000",
        "command": f".venv/bin/python benchmarks/bench_ecg5000.py --runs {runs}",
        "figures": figures,
        "table_md": table,
        "wall_seconds": wall_s,
        "refused_seeds": refused,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="seeds")
    parser.add_argument("--json", default=None, help="also write the result here")
    parser.add_argument(
        "--select",
        nargs="*",
        metavar="NAME",
        default=None,
        help="instead of the benchmark, the validation figures of the candidate "
        "configurations (all, or those named) on the training half only",
    )
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[0],
        help="with --select: fit every fold once per seed (default: 0)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    if args.select is not None:
        result = select(args.select or None, tuple(args.seeds))
    else:
        result = run(args.runs)
    print(result["table_md"])
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
