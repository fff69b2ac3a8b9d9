"""Keep the raw stream (and the runtime's beat labels) as WFDB records.

Used by ``beatguard run --record DIR`` and by ``beatguard capture``. The
record's sample index equals the stream index since the session started:
samples lost on the link are written as WFDB's invalid value (read back as
NaN), so a beat at stream sample ``s`` is at sample ``s`` of the record.
Leads-off flags go into a second channel named ``leads_off``.

Beat labels are WFDB annotation symbols: ``N`` a beat the model scored
normal, ``Q`` (unclassifiable) a beat it scored anomalous, ``?`` a beat
that was not scored (bad signal). ``Q`` is used rather than ``V`` because
the autoencoder says "unlike this wearer's normal beats", not "ventricular".

The stream is kept in memory (8 bytes per sample plus 1 for leads-off,
about 2.8 MB per hour at 360 Hz) and written as one record per
``segment_minutes`` (``NAME_000``, ``NAME_001``, ...) and at ``close``. A
killed process loses the segment not yet written; the event log, not the
recording, is the durable account of a session.

A segment that cannot be written (a full disk, the folder removed) stops the
recording: one error line is logged, later samples and labels are dropped,
and ``failure`` says it in one line for the caller to report.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from beatguard.device.errors import BeatguardError
from beatguard.device.records import Annotations, Record, write_wfdb
from beatguard.device.types import SampleChunk

logger = logging.getLogger(__name__)

LABEL_NORMAL = "N"
LABEL_ANOMALOUS = "Q"
LABEL_UNSCORED = "?"


class StreamRecorder:
    """Accumulates a stream and writes it as WFDB record segments.

    Parameters
    ----------
    folder : str or Path
        Where the records go (created if absent).
    name : str
        Record name; segments are ``{name}_{part:03d}`` unless
        ``segment_minutes`` is None, then the single record is ``name``.
    fs_hz : float
        Sample rate of the stream.
    gain_counts_per_mv, baseline_counts : float
        How the ADC counts map to millivolts (from the board's announce).
    adc_bits : int
        Converter resolution (0 when unknown).
    segment_minutes : float or None
        Length of each written record; None keeps everything for ``close``.
    first_sample : int
        Stream index of the first sample this recorder will see.
    hold_s : float
        A segment is written once the stream is this far past its end, so
        the labels of beats near its end (which the chain reports a little
        after their R peak) are in it.
    """

    def __init__(
        self,
        folder: str | Path,
        name: str,
        fs_hz: float,
        gain_counts_per_mv: float,
        baseline_counts: float,
        adc_bits: int,
        segment_minutes: float | None = 60.0,
        first_sample: int = 0,
        hold_s: float = 10.0,
    ) -> None:
        self.folder = Path(folder)
        self.name = name
        self.fs_hz = float(fs_hz)
        self.gain_counts_per_mv = float(gain_counts_per_mv)
        self.baseline_counts = float(baseline_counts)
        self.adc_bits = int(adc_bits)
        self._segment_samples = (
            None if segment_minutes is None else round(segment_minutes * 60 * fs_hz)
        )
        self._hold_samples = round(hold_s * fs_hz)
        self._part = 0
        self._start = int(first_sample)  # stream index of the segment's sample 0
        self._counts: list[np.ndarray] = []
        self._leads_off: list[np.ndarray] = []
        self._n = 0
        self._beats: list[tuple[int, str]] = []
        self.written: list[Path] = []
        self.failure: str | None = None

    @property
    def next_sample(self) -> int:
        """Stream index the next sample is expected at."""
        return self._start + self._n

    @property
    def samples(self) -> int:
        """Samples held and not yet written."""
        return self._n

    def add_chunk(self, chunk: SampleChunk) -> None:
        """Append a chunk; a jump in ``first_sample`` is filled with NaN."""
        lost = chunk.first_sample - self.next_sample
        if lost > 0:
            self._append(np.full(lost, np.nan), np.zeros(lost, bool))
        elif lost < 0:
            logger.warning(
                "recording %s: chunk at sample %d overlaps the %d samples held; "
                "ignoring its first %d",
                self.name,
                chunk.first_sample,
                self.next_sample,
                -lost,
            )
        skip = max(0, -lost)
        self._append(
            np.asarray(chunk.counts[skip:], np.float64),
            np.asarray(chunk.leads_off[skip:], bool),
        )

    def _append(self, counts: np.ndarray, leads_off: np.ndarray) -> None:
        if self.failure:
            return
        self._counts.append(counts)
        self._leads_off.append(leads_off)
        self._n += len(counts)
        if self._segment_samples is None:
            return
        while self._n >= self._segment_samples + self._hold_samples:
            if not self._try_write(self._segment_samples):
                return

    def add_beat(self, sample: int, label: str) -> None:
        """Label the beat whose R peak is at stream index ``sample``."""
        if self.failure:
            return
        if sample < self._start:
            logger.warning(
                "recording %s: label for sample %d came after its segment was "
                "written; dropped",
                self.name,
                sample,
            )
            return
        self._beats.append((int(sample), label))

    def flush(self) -> Path | None:
        """Write every sample held as one record and start the next segment.

        Returns
        -------
        Path or None
            The record written (folder/name without extension), or None if
            nothing was held.

        Raises
        ------
        RecordFormatError
            The files cannot be written.
        """
        return self._write(self._n) if self._n else None

    def _write(self, n: int) -> Path:
        counts = np.concatenate(self._counts)
        leads_off = np.concatenate(self._leads_off)
        self._counts, self._leads_off = [counts[n:]], [leads_off[n:]]
        self._n -= n
        counts, leads_off = counts[:n], leads_off[:n]
        end = self._start + n
        mine = [(s, lab) for s, lab in self._beats if s < end]
        self._beats = [(s, lab) for s, lab in self._beats if s >= end]
        annotations = Annotations(
            np.array([s - self._start for s, _ in mine], dtype=np.int64),
            [lab for _, lab in mine],
        )
        name = (
            self.name
            if self._segment_samples is None
            else f"{self.name}_{self._part:03d}"
        )
        record = Record(
            name=name,
            fs_hz=self.fs_hz,
            counts=counts,
            gain_counts_per_mv=self.gain_counts_per_mv,
            baseline_counts=self.baseline_counts,
            adc_bits=self.adc_bits,
            leads_off=leads_off if leads_off.any() else None,
        )
        path = write_wfdb(record, self.folder, name, annotations=annotations)
        logger.info(
            "recording: wrote %s (%.1f min, %d beats)",
            path,
            n / self.fs_hz / 60,
            len(mine),
        )
        self.written.append(path)
        self._part += 1
        self._start = end
        return path

    def _try_write(self, n: int) -> bool:
        """Write ``n`` samples; on failure stop recording (see ``failure``)."""
        try:
            self._write(n)
        except (BeatguardError, OSError) as err:
            reason = err.strerror if isinstance(err, OSError) else err
            self.failure = (
                f"recording {self.folder / self.name}: stopped, a segment could "
                f"not be written ({reason or err})"
            )
            logger.error("%s; monitoring goes on", self.failure)
            self._counts, self._leads_off, self._n, self._beats = [], [], 0, []
            return False
        return True

    def close(self) -> None:
        """Write what is held; may be called twice. Errors are logged, not raised."""
        if self._n and not self.failure:
            self._try_write(self._n)
