"""Read and write ECG records: PhysioNet WFDB, plain CSV and UCR beat files.

Every reader returns a :class:`Record` holding raw ADC counts plus what is
needed to turn them into millivolts (gain, baseline) and to recognise the
ADC rails (bits, zero). WFDB files are read and written with the ``wfdb``
package; a file that cannot be used raises :class:`RecordNotFound` or
:class:`RecordFormatError` with one line naming the file and the reason.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from beatguard.device.errors import RecordFormatError, RecordNotFound, SampleRateError

log = logging.getLogger(__name__)

#: Annotation symbols that mark a heartbeat (PhysioNet's beat codes). Every
#: other symbol (rhythm ``+``, noise ``~``, comment ``"``, artifact ``|``,
#: signal quality, waves ``p``/``t``) is not a beat.
BEAT_SYMBOLS = frozenset("NLRBAaJSVrFejnE/fQ?")

#: Name of the extra WFDB channel that carries the leads-off flags (0 or 1).
LEADS_OFF_CHANNEL = "leads_off"

#: UCR ECG5000 class labels mapped to the nearest beat annotation symbol.
UCR_SYMBOLS = {1: "N", 2: "V", 3: "V", 4: "S", 5: "Q"}

#: What a board in text mode prints instead of a value while a lead is off;
#: in a CSV capture's value column it is a leads-off sample (NaN counts).
LEADS_OFF_CELL = "!"


def _wfdb():
    """The ``wfdb`` package, imported on first use: it pulls in pandas, which
    costs a device runtime that never reads a record tens of megabytes."""
    import wfdb

    return wfdb


@dataclass(frozen=True)
class Annotations:
    """Reference or detected marks on a record.

    Attributes
    ----------
    samples : NDArray[np.int64], shape (n,)
        Sample index of each mark (for beats, the R peak).
    symbols : list[str], length n
        PhysioNet annotation symbol of each mark (``N``, ``V``, ``+``, ...).
    """

    samples: NDArray[np.int64]
    symbols: list[str]

    def __post_init__(self) -> None:
        if len(self.symbols) != len(self.samples):
            raise ValueError(
                f"{len(self.samples)} annotation samples but "
                f"{len(self.symbols)} symbols"
            )

    def __len__(self) -> int:
        return len(self.symbols)

    def beats(self) -> Annotations:
        """Only the marks whose symbol is a beat (see ``BEAT_SYMBOLS``)."""
        keep = np.array([s in BEAT_SYMBOLS for s in self.symbols], dtype=bool)
        return Annotations(
            samples=np.asarray(self.samples, dtype=np.int64)[keep],
            symbols=[s for s, k in zip(self.symbols, keep, strict=True) if k],
        )

    def shifted(self, scale: float) -> Annotations:
        """Marks moved to another sample rate (``scale`` = new fs / old fs)."""
        samples = np.round(np.asarray(self.samples) * scale).astype(np.int64)
        return Annotations(samples=samples, symbols=list(self.symbols))


@dataclass(frozen=True)
class Record:
    """One channel of ECG as raw ADC counts.

    Attributes
    ----------
    name : str
        Record name (the file stem).
    fs_hz : float
        Sample rate in hertz.
    counts : NDArray[np.float64], shape (n,)
        ADC counts; NaN marks a sample that could not be read.
    gain_counts_per_mv : float
        ADC counts per millivolt.
    baseline_counts : float
        ADC count that corresponds to 0 mV.
    adc_bits : int
        Resolution of the converter; 0 when unknown (no rail check).
    leads_off : NDArray[np.bool_] | None, shape (n,)
        True where the source reported an electrode off; None if unknown.
    annotations : Annotations | None
        Reference marks read with the record, if any.
    adc_zero_counts : float | None
        Count in the middle of the ADC range; None means an unsigned
        converter (range ``0 .. 2**adc_bits - 1``).
    """

    name: str
    fs_hz: float
    counts: NDArray[np.float64]
    gain_counts_per_mv: float
    baseline_counts: float
    adc_bits: int
    leads_off: NDArray[np.bool_] | None = None
    annotations: Annotations | None = None
    adc_zero_counts: float | None = field(default=None)

    @property
    def duration_s(self) -> float:
        """Length of the record in seconds."""
        return len(self.counts) / self.fs_hz

    def millivolts(self) -> NDArray[np.float64]:
        """The signal in millivolts, shape (n,), float64 (NaN stays NaN)."""
        return (self.counts - self.baseline_counts) / self.gain_counts_per_mv

    def inverted(self) -> Record:
        """The same record with the electrodes swapped (signal times -1)."""
        counts = 2.0 * self.baseline_counts - self.counts
        return replace(self, counts=counts)

    def resampled(self, fs_hz: float) -> Record:
        """The record at another sample rate (polyphase, annotations moved).

        Raises
        ------
        SampleRateError
            If ``fs_hz`` is not positive.
        """
        return resample_record(self, fs_hz)


def resample_record(record: Record, fs_hz: float) -> Record:
    """Resample a record's counts and annotations to ``fs_hz``.

    Uses ``scipy.signal.resample_poly`` (anti-aliased); leads-off flags are
    carried by nearest sample. NaN samples are not supported here.

    Raises
    ------
    SampleRateError
        If ``fs_hz`` is not positive.
    """
    from fractions import Fraction

    from scipy.signal import resample_poly

    if not fs_hz > 0:
        raise SampleRateError(f"{record.name}: cannot resample to {fs_hz} Hz")
    if fs_hz == record.fs_hz:
        return record
    ratio = Fraction(fs_hz / record.fs_hz).limit_denominator(1000)
    counts = resample_poly(
        record.counts - record.baseline_counts, ratio.numerator, ratio.denominator
    )
    counts = counts + record.baseline_counts
    scale = fs_hz / record.fs_hz
    leads_off = None
    if record.leads_off is not None:
        src = np.minimum(
            (np.arange(len(counts)) / scale).astype(np.int64),
            len(record.leads_off) - 1,
        )
        leads_off = record.leads_off[src]
    ann = record.annotations.shifted(scale) if record.annotations else None
    return replace(
        record,
        fs_hz=float(fs_hz),
        counts=counts,
        leads_off=leads_off,
        annotations=ann,
    )


# Reading ---------------------------------------------------------------------


def is_wfdb(path: str | Path) -> bool:
    """True if ``path`` names a WFDB record: its name, or its .hea, .dat or .atr."""
    path = Path(path)
    return path.suffix in (".hea", ".dat", ".atr") or (
        path.suffix == "" and path.with_suffix(".hea").exists()
    )


def read_record(
    path: str | Path,
    channel: int = 0,
    fs_hz: float | None = None,
    gain_counts_per_mv: float | None = None,
    baseline_counts: float | None = None,
) -> Record:
    """Read one channel of a record, choosing the reader from the file.

    Parameters
    ----------
    path : str or Path
        A WFDB record (``.../106``, ``.../106.hea`` or ``.../106.dat``; the
        ``.atr`` annotations are read when present), a CSV file (one value
        column, optionally preceded by a time column in seconds; a value of
        ``!``, a board's leads-off line in text mode, is a NaN sample with
        ``leads_off`` set; or a time column and one column per lead) or a
        UCR beat file (no header; a whole-number class label then the beat's
        points on each line).
    channel : int
        Signal number to read from a multi-channel WFDB record, or lead
        (value column after the time column, from 0) of a multi-lead CSV.
    fs_hz : float, optional
        Sample rate; required for CSV without a time column and for UCR
        files; for WFDB it must match the header if given.
    gain_counts_per_mv, baseline_counts : float, optional
        For CSV and UCR only: how the values map to millivolts. By default
        the values are taken as millivolts (gain 1, baseline 0).

    Returns
    -------
    Record

    Raises
    ------
    RecordNotFound
        If no such record or file exists.
    RecordFormatError
        If the files are malformed, truncated or disagree with each other.
    SampleRateError
        If the sample rate is missing, invalid or contradicts ``fs_hz``.
    """
    path = Path(path)
    if is_wfdb(path):
        return read_wfdb(path, channel=channel, fs_hz=fs_hz)
    if not path.exists():
        raise RecordNotFound(f"{path}: no such record or file")
    values, leads_off, has_header = _load_table(path)
    if values.shape[1] >= 3 and not has_header and _has_class_labels(values):
        return _record_from_ucr(path, values, fs_hz, gain_counts_per_mv)
    if values.shape[1] >= 3:
        values = _one_lead(path, values, channel)
    record = _record_from_csv(path, values, fs_hz, gain_counts_per_mv, baseline_counts)
    if not leads_off.any():
        return record
    log.info(
        "%s: %d '%s' lines read as leads-off samples",
        path,
        np.count_nonzero(leads_off),
        LEADS_OFF_CELL,
    )
    return replace(record, leads_off=leads_off)


def read_wfdb(path: str | Path, channel: int = 0, fs_hz: float | None = None) -> Record:
    """Read one channel of a WFDB record and its ``.atr`` annotations.

    A channel named ``leads_off`` (as written by :func:`write_wfdb`) is read
    as the record's leads-off flags.

    Raises
    ------
    RecordNotFound, RecordFormatError, SampleRateError
        See :func:`read_record`.
    """
    base = Path(path)
    if base.suffix in (".hea", ".dat", ".atr"):
        base = base.with_suffix("")
    header = base.with_suffix(".hea")
    if not header.exists():
        raise RecordNotFound(f"{header}: WFDB header not found")
    try:
        head = _wfdb().rdheader(str(base))
    except Exception as err:  # wfdb raises bare ValueError/Exception
        raise RecordFormatError(f"{header}: unreadable WFDB header ({err})") from err
    _check_wfdb_files(base, head)
    _check_written_rate(header, float(head.fs))
    try:
        rec = _wfdb().rdrecord(str(base), physical=False)
    except Exception as err:
        raise RecordFormatError(f"{base}: unreadable WFDB signal ({err})") from err
    names = list(rec.sig_name or [])
    ecg_channels = [i for i, n in enumerate(names) if n != LEADS_OFF_CHANNEL]
    if channel < 0 or channel >= len(ecg_channels):
        raise RecordFormatError(
            f"{header}: no channel {channel} (record has {len(ecg_channels)})"
        )
    idx = ecg_channels[channel]
    digital = rec.d_signal
    if digital is None or digital.shape[0] != head.sig_len:
        got = 0 if digital is None else digital.shape[0]
        raise RecordFormatError(
            f"{base}.dat: header promises {head.sig_len} samples, file holds {got}"
        )
    counts = digital[:, idx].astype(np.float64)
    invalid = _wfdb().io._signal._digi_nan(rec.fmt[idx])
    counts[digital[:, idx] == invalid] = np.nan
    leads_off = None
    if LEADS_OFF_CHANNEL in names:
        leads_off = digital[:, names.index(LEADS_OFF_CHANNEL)] > 0
    record_fs = float(rec.fs)
    if not record_fs > 0:
        raise SampleRateError(f"{header}: sample rate {record_fs} Hz is not usable")
    if fs_hz is not None and abs(fs_hz - record_fs) > 1e-9:
        raise SampleRateError(
            f"{header}: record is sampled at {record_fs} Hz, not {fs_hz} Hz"
        )
    gain = float(rec.adc_gain[idx]) or 200.0
    return Record(
        name=base.name,
        fs_hz=record_fs,
        counts=counts,
        gain_counts_per_mv=gain,
        baseline_counts=float(rec.baseline[idx]),
        adc_bits=int(rec.adc_res[idx] or 0),
        leads_off=leads_off,
        annotations=_read_atr(base),
        adc_zero_counts=float(rec.adc_zero[idx]) if rec.adc_zero else None,
    )


def _check_written_rate(header: Path, read_fs: float) -> None:
    """Refuse a header whose sample rate ``wfdb`` did not read as written.

    ``wfdb`` takes 250 Hz when the rate field does not parse (a negative
    rate, a typo), which would run the chain at the wrong rate in silence.
    The rate is the third field of the record line (the first line that is
    not a comment), before any ``/counter`` or ``(base)`` part.
    """
    try:
        lines = header.read_text(errors="replace").splitlines()
    except OSError:
        return  # rdheader has just read it; nothing more to say here
    record_line = next((ln for ln in lines if ln.strip() and ln[0] != "#"), "")
    fields = record_line.split()
    if len(fields) < 3:
        return  # no rate written: WFDB's documented default applies
    written = fields[2].split("/")[0].split("(")[0]
    try:
        as_read = abs(float(written) - read_fs) <= 1e-6 * read_fs
    except ValueError:
        as_read = False
    if not as_read:
        raise SampleRateError(
            f"{header}: sample rate {written!r} is not usable "
            f"(the wfdb library read it as {read_fs:g} Hz)"
        )


def _check_wfdb_files(base: Path, head) -> None:
    """Check the signal file exists and is as long as the header says."""
    if head.n_sig is None or head.n_sig == 0:
        raise RecordFormatError(f"{base}.hea: header lists no signals")
    sizes: dict[str, int] = {}
    for file_name in head.file_name:
        sizes[file_name] = sizes.get(file_name, 0) + 1
    bits = {"212": 12, "16": 16, "80": 8, "8": 8, "24": 24, "32": 32, "61": 16}
    for file_name, n_sig in sizes.items():
        dat = base.parent / file_name
        if not dat.exists():
            raise RecordNotFound(f"{dat}: signal file named in {base}.hea not found")
        fmt = head.fmt[head.file_name.index(file_name)]
        if fmt not in bits or head.sig_len is None:
            continue
        need = (head.sig_len * n_sig * bits[fmt] + 7) // 8
        have = dat.stat().st_size
        if have < need:
            raise RecordFormatError(
                f"{dat}: truncated: {have} bytes, header needs {need} "
                f"({head.sig_len} samples x {n_sig} signals, format {fmt})"
            )


def _read_atr(base: Path) -> Annotations | None:
    atr = base.with_suffix(".atr")
    if not atr.exists():
        return None
    try:
        ann = _wfdb().rdann(str(base), "atr")
    except Exception as err:
        raise RecordFormatError(f"{atr}: unreadable annotations ({err})") from err
    return Annotations(
        samples=np.asarray(ann.sample, dtype=np.int64), symbols=list(ann.symbol)
    )


def _load_table(
    path: Path,
) -> tuple[NDArray[np.float64], NDArray[np.bool_], bool]:
    """Numbers of a text table and which of its rows are leads-off samples.

    Returns values of shape (rows, columns), flags of shape (rows,) and
    whether the file had a header (its first non-blank line, if that is
    not numbers). ``!`` as the value of a one- or two-column row (a board's
    leads-off line in text mode) is NaN with the row flagged. Errors name
    the file's line number.
    """
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise RecordFormatError(f"{path}: cannot read ({err})") from err
    if not text.strip():
        raise RecordFormatError(f"{path}: empty file")
    rows: list[list[float]] = []
    leads_off: list[bool] = []
    numbers: list[int] = []  # file line of each row
    header_allowed = True
    has_header = False
    for number, line in enumerate(text.splitlines(), start=1):
        cells = line.replace(",", " ").replace(";", " ").split()
        if not cells:
            continue
        off = len(cells) <= 2 and cells[-1] == LEADS_OFF_CELL
        try:
            row = [float(c) for c in (cells[:-1] if off else cells)]
        except ValueError as err:
            if header_allowed:
                header_allowed = False
                has_header = True
                continue
            raise RecordFormatError(
                f"{path}:{number}: not a number in {line.strip()[:40]!r}"
            ) from err
        header_allowed = False
        if not all(math.isfinite(v) for v in row):
            # float() takes "nan" and "inf"; no board sends them.
            raise RecordFormatError(
                f"{path}:{number}: not a finite number in {line.strip()[:40]!r}"
            )
        rows.append(row + [np.nan] if off else row)
        leads_off.append(off)
        numbers.append(number)
    if not rows:
        raise RecordFormatError(f"{path}: no numeric rows")
    width = len(rows[0])
    for number, row in zip(numbers, rows, strict=True):
        if len(row) != width:
            raise RecordFormatError(
                f"{path}:{number}: {len(row)} columns, expected {width}"
            )
    return (
        np.asarray(rows, dtype=np.float64),
        np.asarray(leads_off, dtype=np.bool_),
        has_header,
    )


#: A UCR file's first column holds class labels: whole numbers, and few of
#: them (ECG5000 has 5; the archive's largest sets have about 60). A first
#: column of times in seconds, or of sample numbers, is neither.
MAX_UCR_CLASSES = 64


def _has_class_labels(values: NDArray[np.float64]) -> bool:
    first = values[:, 0]
    whole = bool(np.all(first == np.round(first)))
    return whole and len(np.unique(first)) <= MAX_UCR_CLASSES


def _one_lead(
    path: Path, values: NDArray[np.float64], channel: int
) -> NDArray[np.float64]:
    """The time column and lead ``channel`` of a CSV with one column per lead."""
    leads = values.shape[1] - 1
    if not 0 <= channel < leads:
        raise RecordFormatError(
            f"{path}: no lead {channel}: the file has {leads} value columns after "
            f"its time column (leads 0 to {leads - 1})"
        )
    if leads > 1:
        log.info(
            "%s: reading lead %d of %d (column %d)", path, channel, leads, channel + 2
        )
    return values[:, [0, channel + 1]]


def _record_from_csv(
    path: Path,
    values: NDArray[np.float64],
    fs_hz: float | None,
    gain: float | None,
    baseline: float | None,
) -> Record:
    if values.shape[1] == 2:
        times_s, counts = values[:, 0], values[:, 1]
        steps = np.diff(times_s)
        if len(steps) == 0 or not np.all(steps > 0):
            raise SampleRateError(f"{path}: time column is not increasing")
        step = float(np.median(steps))
        if np.max(np.abs(steps - step)) > 0.01 * step + 1e-9:
            raise SampleRateError(f"{path}: time column is not evenly spaced")
        # From the whole span: times rounded to a few decimals make single
        # steps uneven (0.002778 s is 359.97 Hz), not their sum.
        measured = (len(times_s) - 1) / float(times_s[-1] - times_s[0])
        if fs_hz is not None and abs(measured - fs_hz) > 0.01 * fs_hz:
            raise SampleRateError(
                f"{path}: time column gives {measured:.2f} Hz, not {fs_hz} Hz"
            )
        fs_hz = fs_hz or measured
    else:
        counts = values[:, 0]
        if fs_hz is None:
            raise SampleRateError(
                f"{path}: no time column; give the sample rate (--fs-hz)"
            )
    if not fs_hz > 0:
        raise SampleRateError(f"{path}: sample rate {fs_hz} Hz is not usable")
    return Record(
        name=path.stem,
        fs_hz=float(fs_hz),
        counts=np.ascontiguousarray(counts, dtype=np.float64),
        gain_counts_per_mv=float(gain or 1.0),
        baseline_counts=float(baseline or 0.0),
        adc_bits=0,
    )


def _record_from_ucr(
    path: Path, values: NDArray[np.float64], fs_hz: float | None, gain: float | None
) -> Record:
    """UCR beats laid end to end, one annotation per beat at its centre."""
    if fs_hz is None:
        raise SampleRateError(
            f"{path}: UCR beat files carry no sample rate; give it (--fs-hz)"
        )
    labels = values[:, 0].astype(np.int64)
    beats = values[:, 1:]
    points = beats.shape[1]
    samples = np.arange(len(beats), dtype=np.int64) * points + points // 2
    symbols = [UCR_SYMBOLS.get(int(label), "Q") for label in labels]
    return Record(
        name=path.stem,
        fs_hz=float(fs_hz),
        counts=beats.reshape(-1).astype(np.float64),
        gain_counts_per_mv=float(gain or 1.0),
        baseline_counts=0.0,
        adc_bits=0,
        annotations=Annotations(samples=samples, symbols=symbols),
    )


@dataclass(frozen=True)
class UcrBeats:
    """A UCR beat set: one class label and one fixed-length beat per row.

    Attributes
    ----------
    labels : NDArray[np.int64], shape (n,)
        Class of each beat (ECG5000: 1 normal, 2 R-on-T PVC, 3 PVC,
        4 supraventricular ectopic, 5 unclassified).
    beats : NDArray[np.float64], shape (n, points)
        The beats, already z-normalized by the archive.
    """

    labels: NDArray[np.int64]
    beats: NDArray[np.float64]


def read_ucr(path: str | Path) -> UcrBeats:
    """Read a UCR beat file (label, then the points, per line).

    Raises
    ------
    RecordNotFound
        If the file does not exist.
    RecordFormatError
        If rows are ragged, non-numeric or too short.
    """
    path = Path(path)
    if not path.exists():
        raise RecordNotFound(f"{path}: no such file")
    values, _, _ = _load_table(path)
    if values.shape[1] < 3:
        raise RecordFormatError(f"{path}: rows have fewer than 2 beat points")
    return UcrBeats(labels=values[:, 0].astype(np.int64), beats=values[:, 1:])


# Writing ---------------------------------------------------------------------


def write_wfdb(
    record: Record,
    folder: str | Path,
    name: str,
    annotations: Annotations | None = None,
) -> Path:
    """Write a record (and annotations) as WFDB format-16 files.

    NaN counts are written as WFDB's invalid-sample value and read back as
    NaN. Leads-off flags, when present, go into a second channel named
    ``leads_off``. Annotations default to ``record.annotations``.

    Returns
    -------
    Path
        The record path without extension (``folder/name``).

    Raises
    ------
    RecordFormatError
        If the counts do not fit 16-bit integers or the files cannot be
        written.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    invalid = _wfdb().io._signal._digi_nan("16")
    counts = np.asarray(record.counts, dtype=np.float64)
    finite = np.isfinite(counts)
    if finite.any() and (
        counts[finite].min() <= invalid or counts[finite].max() > 32767
    ):
        raise RecordFormatError(f"{folder / name}: counts do not fit 16-bit WFDB")
    digital = np.where(finite, np.round(counts), invalid).astype(np.int64)
    columns = [digital]
    names = ["ECG"]
    gains = [record.gain_counts_per_mv]
    baselines = [int(round(record.baseline_counts))]
    units = ["mV"]
    if record.leads_off is not None:
        columns.append(np.asarray(record.leads_off, dtype=np.int64))
        names.append(LEADS_OFF_CHANNEL)
        gains.append(1.0)
        baselines.append(0)
        units.append("flag")
    bits = record.adc_bits or 16
    zero = record.adc_zero_counts
    if zero is None:
        zero = 2 ** (bits - 1) if record.adc_bits else 0
    digital_2d = np.column_stack(columns)
    rec = _wfdb().Record(
        record_name=name,
        n_sig=len(columns),
        fs=record.fs_hz,
        sig_len=len(counts),
        file_name=[f"{name}.dat"] * len(columns),
        fmt=["16"] * len(columns),
        adc_gain=gains,
        baseline=baselines,
        units=units,
        sig_name=names,
        adc_res=[bits] + [1] * (len(columns) - 1),
        adc_zero=[int(zero)] + [0] * (len(columns) - 1),
        d_signal=digital_2d,
    )
    rec.checksum = rec.calc_checksum()
    rec.init_value = (
        [int(v) for v in digital_2d[0]] if len(counts) else [0] * len(columns)
    )
    rec.block_size = [0] * len(columns)
    try:
        rec.wrsamp(write_dir=str(folder))
        ann = annotations if annotations is not None else record.annotations
        if ann is not None and len(ann):
            _wfdb().wrann(
                name,
                "atr",
                np.asarray(ann.samples, dtype=np.int64),
                np.asarray(ann.symbols),
                write_dir=str(folder),
                fs=record.fs_hz,
            )
    except (OSError, ValueError) as err:
        raise RecordFormatError(f"{folder / name}: cannot write ({err})") from err
    log.debug("wrote %s (%d samples)", folder / name, len(counts))
    return folder / name
