"""Personal-model evaluation: train on the first minutes, score the rest.

For each record: train on its first minutes without labels, convert to the
int8 bundle, run a fresh device chain from the end of the training minutes
(exactly the beats the device would see when the record is replayed from
there), score them with the int8 :class:`~beatguard.device.scorer.Scorer`,
match them to the reference beats (150 ms) and measure PVC detection. The
same beats are also scored by the float Keras model (its errors through the
same decision, calibrated on float errors) and by two baselines fitted on
the same training minutes: the distance to the median training window, cut
with amplitude kept (relative to the recent beats), and a small dense
autoencoder shaped like the TensorFlow tutorial's. Both baselines score
shape alone, so the int8 model's shape error alone (``auc_int8_shape``) is
reported beside them, and the template distance is also put through the
same decision as the model (``auc_template_decision``): what a user would
get from the decision without the LSTM.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from beatguard.device.bundle import (
    beats_prematurity,
    beats_to_inputs,
    load_bundle,
    mse,
)
from beatguard.device.chain import ChainConfig, beats_from_record
from beatguard.device.decision import BeatDecision, DecisionSettings
from beatguard.device.errors import ModelError
from beatguard.device.evaluation import match_beats
from beatguard.device.records import Record, read_record
from beatguard.device.scorer import Scorer
from beatguard.device.types import Beat
from beatguard.train.dataset import training_stop_sample
from beatguard.train.fit import TrainSettings, calibrate_decision, predict
from beatguard.train.keras_setup import seed_everything, tensorflow_and_keras
from beatguard.train.models import build_dense_autoencoder
from beatguard.train.personal import train_personal
from beatguard.train.run import load_run

log = logging.getLogger(__name__)

PVC_SYMBOL = "V"
_RECORD_KEYS = ("fs_hz", "gain_counts_per_mv", "baseline_counts", "adc_bits")


@dataclass
class ScoredBeats:
    """Beats of a record stretch with their int8 scores.

    Attributes
    ----------
    beats : list of Beat
    samples : NDArray[np.int64], shape (n,)
        R peaks, samples from the record's start.
    scores : NDArray[np.float64], shape (n,)
    anomalous : NDArray[np.bool_], shape (n,)
        Score above the bundle's threshold.
    threshold : float
    """

    beats: list[Beat]
    samples: NDArray[np.int64]
    scores: NDArray[np.float64]
    anomalous: NDArray[np.bool_]
    threshold: float


def chain_config_for(record: Record, bundle_chain: dict) -> ChainConfig:
    """The bundle's chain settings with the record's own rate, gain and ADC."""
    overrides = {k: v for k, v in bundle_chain.items() if k not in _RECORD_KEYS}
    overrides.pop("adc_zero_counts", None)
    return ChainConfig.for_record(record, **overrides)


def score_record(
    record: Record,
    bundle_dir: str | Path,
    start_sample: int,
    interpreter: str = "auto",
) -> ScoredBeats:
    """Score a record from ``start_sample`` on, as the device would.

    A fresh chain with the bundle's settings starts at ``start_sample``
    (:func:`~beatguard.device.chain.beats_from_record`) and every beat it
    emits is scored by the int8 model.

    Parameters
    ----------
    record : Record
    bundle_dir : str or Path
    start_sample : int
        Where replay starts (e.g. the end of the training minutes).
    interpreter : str
        See :class:`~beatguard.device.scorer.Scorer`.

    Returns
    -------
    ScoredBeats
    """
    bundle = load_bundle(bundle_dir)
    config = chain_config_for(record, bundle.meta["chain"])
    beats = beats_from_record(record, config, start_sample=start_sample)
    with Scorer(bundle_dir, interpreter=interpreter) as scorer:
        scores = scorer.score_beats(beats)
        anomalous = scorer.is_anomalous(scores)
        threshold = scorer.threshold
    return ScoredBeats(
        beats=beats,
        samples=np.array([b.sample for b in beats], np.int64),
        scores=scores,
        anomalous=anomalous,
        threshold=threshold,
    )


def roc_auc(labels: NDArray[np.bool_], scores: NDArray[np.floating]) -> float:
    """Area under the ROC curve (Mann-Whitney, ties counted half).

    Returns NaN when either class is absent.
    """
    from scipy.stats import rankdata

    labels = np.asarray(labels, bool)
    pos, neg = int(labels.sum()), int((~labels).sum())
    if pos == 0 or neg == 0:
        return float("nan")
    ranks = rankdata(np.asarray(scores, np.float64))
    return float((ranks[labels].sum() - pos * (pos + 1) / 2) / (pos * neg))


def roc_curve(
    labels: NDArray[np.bool_], scores: NDArray[np.floating]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """False- and true-positive rates at every threshold, both shape (n+1,)."""
    labels = np.asarray(labels, bool)
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    hits = labels[order]
    tpr = np.concatenate([[0.0], np.cumsum(hits) / max(1, hits.sum())])
    fpr = np.concatenate([[0.0], np.cumsum(~hits) / max(1, (~hits).sum())])
    return fpr, tpr


@dataclass
class RecordEvaluation:
    """Figures and the arrays behind them for one record."""

    name: str
    figures: dict
    times_s: NDArray[np.float64] = field(repr=False)
    labels: NDArray[np.bool_] = field(repr=False)
    scores: dict = field(repr=False)
    threshold: float = 0.0
    inputs: NDArray[np.float32] = field(default=None, repr=False)
    int8_outputs: NDArray[np.float64] = field(default=None, repr=False)


def evaluate_record(
    path: str | Path,
    work_dir: str | Path,
    train_minutes: float = 5.0,
    settings: TrainSettings | None = None,
    interpreter: str = "auto",
) -> RecordEvaluation:
    """Train, convert and score one annotated record (personal protocol).

    Parameters
    ----------
    path : str or Path
        An annotated record.
    work_dir : str or Path
        The record's run and bundle folder is written here.
    train_minutes : float
    settings : TrainSettings, optional
    interpreter : str

    Returns
    -------
    RecordEvaluation
        ``figures`` holds ``auc_int8`` (the decision's score), ``auc_float``,
        ``auc_int8_shape`` (the int8 shape error alone, without timing: how
        much the beat's shape by itself tells), ``auc_template``,
        ``auc_template_decision``,
        ``auc_dense_ae``, ``se``, ``ppv``, ``false_alarms_per_hour``,
        ``model_bytes``, ``dropped_beats`` and the counts behind them.

    Raises
    ------
    RecordError
        The record cannot be read.
    ModelError
        It has no beat annotations, or training fails.
    """
    from beatguard.convert.bundle_writer import convert_run

    settings = settings or TrainSettings()
    record = read_record(path)
    if record.annotations is None:
        raise ModelError(f"{path}: no reference annotations (.atr) to evaluate against")
    out = Path(work_dir) / record.name
    started = time.perf_counter()
    train_personal([path], out, minutes=train_minutes, settings=settings)
    convert_run(out, interpreter=interpreter)
    build_s = time.perf_counter() - started

    train_end = training_stop_sample(record, train_minutes)
    scored = score_record(record, out, train_end, interpreter=interpreter)
    run = load_run(out)
    bundle = load_bundle(out)
    inputs = beats_to_inputs(scored.beats)
    prem = beats_prematurity(scored.beats)
    float_decision = BeatDecision(
        DecisionSettings.from_dict(run.info["float_decision"])
    )
    float_scores, _ = float_decision.judge(
        mse(inputs, predict(run.model, inputs)), prem
    )
    template_scores, template_train = template_baseline_scores(
        record, bundle.meta["chain"], train_end, scored.samples
    )
    template_decision_scores = template_decision(template_train, template_scores, prem)
    dense_scores = dense_autoencoder_scores(
        run.fit_inputs[:, :, 0], inputs[:, :, 0], settings.seed
    )

    ref = record.annotations.beats()
    ref_samples = np.asarray(ref.samples, np.int64)
    is_v = np.array([s == PVC_SYMBOL for s in ref.symbols], bool)
    match = match_beats(
        ref_samples, scored.samples, record.fs_hz, skip_s=train_end / record.fs_hz
    )
    scored_ref = ref_samples >= train_end
    labels_det = np.zeros(len(scored.samples), bool)
    labels_det[match.det_index] = is_v[match.ref_index]
    matched = np.zeros(len(scored.samples), bool)
    matched[match.det_index] = True

    with Scorer(out, interpreter=interpreter) as scorer:
        int8_outputs = scorer.reconstruct(inputs)
    shape_scores = mse(inputs, int8_outputs)

    flagged = scored.anomalous
    tp = int(np.sum(flagged[match.det_index] & is_v[match.ref_index]))
    v_total = int(np.sum(is_v & scored_ref))
    flagged_total = int(flagged.sum())
    hours = (len(record.counts) - train_end) / record.fs_hz / 3600.0
    figures = {
        "auc_int8": roc_auc(labels_det[matched], scored.scores[matched]),
        "auc_float": roc_auc(labels_det[matched], float_scores[matched]),
        "auc_int8_shape": roc_auc(labels_det[matched], shape_scores[matched]),
        "auc_template": roc_auc(labels_det[matched], template_scores[matched]),
        "auc_template_decision": roc_auc(
            labels_det[matched], template_decision_scores[matched]
        ),
        "auc_dense_ae": roc_auc(labels_det[matched], dense_scores[matched]),
        "se": tp / v_total if v_total else float("nan"),
        "ppv": tp / flagged_total if flagged_total else float("nan"),
        "false_alarms_per_hour": (flagged_total - tp) / hours,
        "model_bytes": int(bundle.meta["model_bytes"]),
        "dropped_beats": int(bundle.meta["training"]["beats_dropped"]),
        "training_beats": int(bundle.meta["training"]["beats_total"]),
        "pvc_reference": v_total,
        "pvc_detected": tp,
        "flagged": flagged_total,
        "beats_scored": len(scored.samples),
        "reference_beats": int(scored_ref.sum()),
        "unmatched_detections": int(len(match.unmatched_det)),
        "missed_reference_beats": int(len(match.unmatched_ref)),
        "threshold": scored.threshold,
        "train_convert_s": round(build_s, 1),
    }
    log.info(
        "%s: AUC int8 %.4f float %.4f template %.4f dense %.4f; Se %.3f +P %.3f",
        record.name,
        figures["auc_int8"],
        figures["auc_float"],
        figures["auc_template"],
        figures["auc_dense_ae"],
        figures["se"],
        figures["ppv"],
    )
    return RecordEvaluation(
        name=record.name,
        figures=figures,
        times_s=scored.samples / record.fs_hz,
        labels=np.where(matched, labels_det, False),
        scores={
            "int8": scored.scores,
            "float": float_scores,
            "template": template_scores,
            "template_decision": template_decision_scores,
            "int8_shape": shape_scores,
            "dense_ae": dense_scores,
        },
        threshold=scored.threshold,
        inputs=inputs,
        int8_outputs=int8_outputs,
    )


def template_baseline_scores(
    record: Record,
    bundle_chain: dict,
    train_end: int,
    samples: NDArray[np.int64],
) -> NDArray[np.float64]:
    """Template-distance baseline on windows that keep amplitude.

    The record is cut again by the device chain with the bundle's settings
    but ``"relative"`` normalization (each window divided by the median
    peak-to-peak amplitude of the recent beats, so a beat twice as tall as
    its neighbours stays twice as tall): the template is the median window
    of the training minutes, a beat's score its mean squared distance to
    it. The chain finds its beats independently of the normalization, so
    these are the beats the model scored.

    Parameters
    ----------
    record : Record
    bundle_chain : dict
        The bundle's chain settings.
    train_end : int
        First sample after the training minutes.
    samples : NDArray[np.int64], shape (n,)
        R peaks of the scored beats (samples from the record's start).

    Returns
    -------
    scores : NDArray[np.float64], shape (n,)
    training : NDArray[np.float64], shape (m,)
        Distances of the training minutes' own beats, in time order, to a
        template of the beats before the last 20 % (for calibration).

    Raises
    ------
    ModelError
        A scored beat is not found by the relative-amplitude chain.
    """
    config = replace(chain_config_for(record, bundle_chain), normalization="relative")
    train_windows = np.stack(
        [b.window for b in beats_from_record(record, config, 0, train_end)]
    )
    windows = {b.sample: b.window for b in beats_from_record(record, config, train_end)}
    missing = [int(s) for s in samples if int(s) not in windows]
    if missing:
        raise ModelError(
            f"{record.name}: {len(missing)} scored beats (first at sample "
            f"{missing[0]}) not cut by the relative-amplitude chain"
        )
    scores = template_distance(
        train_windows, np.stack([windows[int(s)] for s in samples])
    )
    fit_count = int(round(len(train_windows) * 0.8))
    held_out = template_distance(train_windows[:fit_count], train_windows[fit_count:])
    return scores, held_out


def template_decision(
    held_out: NDArray[np.floating],
    scores: NDArray[np.floating],
    prematurity_share: NDArray[np.floating],
) -> NDArray[np.float64]:
    """Template distances through the model's decision, calibrated the same way.

    Parameters
    ----------
    held_out : NDArray[np.floating], shape (m,)
        Distances of the last training beats to the template of the others.
    scores : NDArray[np.floating], shape (n,)
        Distances of the scored beats, in time order.
    prematurity_share : NDArray[np.floating], shape (n,)

    Returns
    -------
    NDArray[np.float64], shape (n,)
    """
    settings, _ = calibrate_decision(held_out, TrainSettings())
    judged, _ = BeatDecision(settings).judge(scores, prematurity_share)
    return judged


def template_distance(
    train_windows: NDArray[np.floating], windows: NDArray[np.floating]
) -> NDArray[np.float64]:
    """Mean squared distance of each window to the median training window.

    Parameters
    ----------
    train_windows : NDArray[np.floating], shape (m, points)
    windows : NDArray[np.floating], shape (n, points)

    Returns
    -------
    NDArray[np.float64], shape (n,)
    """
    template = np.median(np.asarray(train_windows, np.float64), axis=0)
    return np.mean((np.asarray(windows, np.float64) - template) ** 2, axis=1)


def dense_autoencoder_scores(
    train_windows: NDArray[np.floating],
    windows: NDArray[np.floating],
    seed: int,
    epochs: int = 50,
) -> NDArray[np.float64]:
    """Fit the tutorial-shaped dense autoencoder and score windows by MAE.

    Windows are min-max scaled with the training windows' global range (as
    the tutorial does), the model is trained with mean absolute error and
    Adam, and a window's score is its mean absolute reconstruction error.

    Parameters
    ----------
    train_windows : NDArray[np.floating], shape (m, points)
    windows : NDArray[np.floating], shape (n, points)
    seed : int
    epochs : int

    Returns
    -------
    NDArray[np.float64], shape (n,)
    """
    _, keras = tensorflow_and_keras()
    train = np.asarray(train_windows, np.float32)
    lo, hi = float(train.min()), float(train.max())
    span = hi - lo if hi > lo else 1.0
    scaled_train = (train - lo) / span
    scaled = (np.asarray(windows, np.float32) - lo) / span
    seed_everything(seed)
    model = build_dense_autoencoder(train.shape[1])
    model.compile(optimizer="adam", loss="mae")
    model.fit(scaled_train, scaled_train, epochs=epochs, batch_size=64, verbose=0)
    rebuilt = model.predict(scaled, batch_size=512, verbose=0)
    return np.mean(np.abs(rebuilt - scaled), axis=1).astype(np.float64)
