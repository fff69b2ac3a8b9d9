"""Train a personal model: records in, training run folder out.

This is what ``beatguard train`` does: cut the first minutes of each record
with the device chain, train the LSTM autoencoder robustly (outlier beats
dropped and refitted), calibrate its threshold, and save the run folder for
``beatguard convert``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from beatguard.train.dataset import personal_training_set
from beatguard.train.fit import FitResult, TrainSettings, train_robust
from beatguard.train.run import save_run

log = logging.getLogger(__name__)


def train_personal(
    paths: Sequence[str | Path],
    out_folder: str | Path,
    minutes: float = 5.0,
    settings: TrainSettings | None = None,
    chain_overrides: dict[str, Any] | None = None,
    read_options: dict[str, Any] | None = None,
) -> FitResult:
    """Train on the first minutes of records and write the run folder.

    Parameters
    ----------
    paths : sequence of str or Path
        Records to learn the wearer's normal beats from (labels unused).
    out_folder : str or Path
        Run folder to write (see :mod:`beatguard.train.run`).
    minutes : float
        Minutes from the start of each record.
    settings : TrainSettings, optional
    chain_overrides : dict, optional
        Signal-chain settings besides the record's own.
    read_options : dict, optional
        ``read_record`` options for CSV captures and UCR files (``fs_hz``,
        ``gain_counts_per_mv``, ``baseline_counts``).

    Returns
    -------
    FitResult

    Raises
    ------
    RecordError
        A record cannot be read.
    ModelError
        Too few beats, or training diverged.
    """
    settings = settings or TrainSettings()
    data = personal_training_set(paths, minutes, chain_overrides, read_options)
    if data.config.window_points != settings.spec.points:
        settings = replace(
            settings, spec=replace(settings.spec, points=data.config.window_points)
        )
    result = train_robust(data.inputs, data.prematurity, settings)
    save_run(out_folder, result, settings, data.config.to_dict(), data.summary)
    return result
