"""Training beats from records, cut by the device's own signal chain.

Every beat the model learns from comes out of
:func:`beatguard.device.chain.beats_from_record`, with the chain settings
that go into the model bundle, so the device later cuts beats exactly the
same way. Records are anything :func:`beatguard.device.records.read_record`
reads: WFDB records, CSV captures, UCR beat files.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from beatguard.device.bundle import beats_prematurity, beats_to_inputs
from beatguard.device.chain import ChainConfig, beats_from_record
from beatguard.device.errors import ModelError
from beatguard.device.records import Record, read_record
from beatguard.device.types import Beat

log = logging.getLogger(__name__)


@dataclass
class TrainingSet:
    """Model inputs of the training-period beats of one or more records.

    Attributes
    ----------
    inputs : NDArray[np.float32], shape (n, points, 1)
        Beat windows, records one after another, each in time order.
    prematurity : NDArray[np.float64], shape (n,)
        How early each beat came
        (:func:`~beatguard.device.decision.prematurity`).
    config : ChainConfig
        Chain settings of the first record (all records share window,
        filter and normalization settings).
    summary : dict
        ``records`` (names), ``minutes``, ``beats_per_record``.
    """

    inputs: NDArray[np.float32]
    prematurity: NDArray[np.float64]
    config: ChainConfig
    summary: dict = field(default_factory=dict)


def training_stop_sample(record: Record, minutes: float) -> int:
    """First sample after the training minutes of a record.

    Raises
    ------
    ModelError
        The record is shorter than the training minutes.
    """
    stop = int(round(minutes * 60.0 * record.fs_hz))
    if stop > len(record.counts):
        raise ModelError(
            f"{record.name}: {len(record.counts) / record.fs_hz / 60:.1f} min long, "
            f"shorter than the {minutes:g} training minutes"
        )
    return stop


def record_training_beats(
    record: Record, config: ChainConfig, minutes: float
) -> list[Beat]:
    """Beats of the first ``minutes`` of a record through a fresh chain."""
    return beats_from_record(
        record,
        config,
        start_sample=0,
        stop_sample=training_stop_sample(record, minutes),
    )


def personal_training_set(
    paths: Sequence[str | Path],
    minutes: float,
    chain_overrides: dict[str, Any] | None = None,
    read_options: dict[str, Any] | None = None,
) -> TrainingSet:
    """Read records and turn their first minutes into model inputs.

    Parameters
    ----------
    paths : sequence of str or Path
        Records (see :func:`~beatguard.device.records.read_record`).
    minutes : float
        Training minutes taken from the start of each record; labels are
        never looked at.
    chain_overrides : dict, optional
        ChainConfig settings other than the record's own (window, filters,
        normalization).
    read_options : dict, optional
        Keyword arguments of ``read_record`` for CSV captures and UCR files
        (``fs_hz``, ``gain_counts_per_mv``, ``baseline_counts``); WFDB
        records carry their own.

    Returns
    -------
    TrainingSet

    Raises
    ------
    RecordNotFound, RecordFormatError, SampleRateError
        A record cannot be read.
    ModelError
        No record given, a record is too short or yields no beats.
    """
    if not paths:
        raise ModelError("no records to train on")
    overrides = dict(chain_overrides or {})
    parts, prems, counts, names = [], [], [], []
    first_config = None
    for path in paths:
        record = read_record(path, **(read_options or {}))
        config = ChainConfig.for_record(record, path, **overrides)
        beats = record_training_beats(record, config, minutes)
        if not beats:
            raise ModelError(f"{path}: no beats found in the first {minutes:g} min")
        log.info("%s: %d beats in the first %g min", record.name, len(beats), minutes)
        parts.append(beats_to_inputs(beats))
        prems.append(beats_prematurity(beats))
        counts.append(len(beats))
        names.append(record.name)
        if first_config is None:
            first_config = config
        elif config.fs_hz != first_config.fs_hz:
            log.warning(
                "%s: sample rate %g Hz differs from %g Hz of %s; the bundle keeps "
                "the first record's chain settings",
                record.name,
                config.fs_hz,
                first_config.fs_hz,
                names[0],
            )
    return TrainingSet(
        inputs=np.concatenate(parts).astype(np.float32),
        prematurity=np.concatenate(prems),
        config=first_config,
        summary={
            "records": names,
            "minutes": float(minutes),
            "beats_per_record": dict(zip(names, counts, strict=True)),
        },
    )
