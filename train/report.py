"""PNG plots of a personal-model evaluation, the ones a person looks at first.

Per record: the int8 score of every scored beat over time with the
threshold (PVCs marked), typical normal and anomalous beats with their int8
reconstructions, and the ROC curves of the int8 and float models and the
two baselines.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from beatguard.train.evaluate import RecordEvaluation


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_record(ev: RecordEvaluation, folder: str | Path) -> list[Path]:
    """Write the three plots of one record evaluation.

    Parameters
    ----------
    ev : RecordEvaluation
    folder : str or Path

    Returns
    -------
    list of Path
        ``<name>_scores.png``, ``<name>_beats.png``, ``<name>_roc.png``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return [
        plot_scores(ev, folder / f"{ev.name}_scores.png"),
        plot_beats(ev, folder / f"{ev.name}_beats.png"),
        plot_roc(ev, folder / f"{ev.name}_roc.png"),
    ]


def plot_scores(ev: RecordEvaluation, path: Path) -> Path:
    """Int8 anomaly score per beat against time (minutes), threshold line."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(11, 4))
    minutes = ev.times_s / 60.0
    scores = ev.scores["int8"]
    ax.scatter(
        minutes[~ev.labels], scores[~ev.labels], s=4, c="tab:blue", label="other"
    )
    ax.scatter(
        minutes[ev.labels], scores[ev.labels], s=10, c="tab:red", label="PVC (V)"
    )
    ax.axhline(ev.threshold, color="k", ls="--", lw=1, label="threshold")
    ax.set_xlabel("time (min)")
    ax.set_ylabel("anomaly score (shape z + timing)")
    ax.set_title(f"record {ev.name}: score of every scored beat")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_beats(ev: RecordEvaluation, path: Path) -> Path:
    """A typical normal and a typical PVC window with their reconstructions.

    "Typical" is the beat with the median int8 score of its class.
    """
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    scores = ev.scores["int8"]
    for ax, mask, title in (
        (axes[0], ~ev.labels, "typical normal beat"),
        (axes[1], ev.labels, "typical PVC"),
    ):
        idx = np.flatnonzero(mask)
        if idx.size == 0:
            ax.set_title(f"{title}: none")
            continue
        pick = idx[np.argsort(scores[idx])[idx.size // 2]]
        ax.plot(ev.inputs[pick, :, 0], c="k", label="window")
        ax.plot(ev.int8_outputs[pick, :, 0], c="tab:orange", label="int8 rebuilt")
        ax.set_title(f"{title} (score {scores[pick]:.3g})", fontsize=10)
        ax.set_xlabel("point")
    axes[0].set_ylabel("normalized amplitude")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"record {ev.name}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_roc(ev: RecordEvaluation, path: Path) -> Path:
    """ROC curves of every model on the matched beats."""
    from beatguard.train.evaluate import roc_auc, roc_curve

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    for key, label in (
        ("int8", "LSTM AE int8"),
        ("float", "LSTM AE float"),
        ("int8_shape", "LSTM AE int8, shape error alone"),
        ("template", "median-beat distance"),
        ("template_decision", "median-beat distance + decision"),
        ("dense_ae", "dense AE (tutorial)"),
    ):
        fpr, tpr = roc_curve(ev.labels, ev.scores[key])
        ax.plot(fpr, tpr, label=f"{label} AUC {roc_auc(ev.labels, ev.scores[key]):.4f}")
    ax.plot([0, 1], [0, 1], c="0.7", lw=0.8)
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("PVC sensitivity")
    ax.set_title(f"record {ev.name}: ROC")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
