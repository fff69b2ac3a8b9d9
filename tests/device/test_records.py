"""Reading and writing records: WFDB, CSV, UCR; clear errors for bad files."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from beatguard.device.errors import RecordFormatError, RecordNotFound, SampleRateError
from beatguard.device.records import (
    BEAT_SYMBOLS,
    Annotations,
    Record,
    read_record,
    read_ucr,
    write_wfdb,
)


def _copy_record(mitdb: Path, name: str, folder: Path) -> Path:
    for ext in (".hea", ".dat", ".atr"):
        shutil.copy(mitdb / f"{name}{ext}", folder / f"{name}{ext}")
    return folder / name


def test_wfdb_record_carries_counts_gain_baseline_and_annotations(mitdb):
    record = read_record(mitdb / "100")
    assert record.name == "100"
    assert record.fs_hz == 360.0
    assert record.gain_counts_per_mv == 200.0
    assert record.baseline_counts == 1024.0
    assert record.adc_bits == 11
    assert record.counts.shape == (650000,)
    assert record.counts.dtype == np.float64
    assert record.leads_off is None
    assert record.annotations is not None and len(record.annotations) > 2000


def test_second_channel_is_read_on_request(mitdb):
    mlii = read_record(mitdb / "100", channel=0)
    v5 = read_record(mitdb / "100", channel=1)
    assert not np.array_equal(mlii.counts, v5.counts)
    with pytest.raises(RecordFormatError, match="no channel 2"):
        read_record(mitdb / "100", channel=2)


def test_record_path_may_name_the_header_or_have_no_extension(mitdb):
    a = read_record(mitdb / "106")
    b = read_record(mitdb / "106.hea")
    c = read_record(str(mitdb / "106.dat"))
    assert np.array_equal(a.counts, b.counts) and np.array_equal(a.counts, c.counts)


def test_only_beat_symbols_count_as_beats(mitdb):
    ann = read_record(mitdb / "100").annotations
    assert "+" in ann.symbols  # rhythm marks are in the file
    beats = ann.beats()
    assert "+" not in beats.symbols
    assert set(beats.symbols) <= BEAT_SYMBOLS
    assert set(beats.symbols) == {"N", "A", "V"}
    expected = sum(s in BEAT_SYMBOLS for s in ann.symbols)
    assert len(beats) == expected == 2273
    assert np.all(np.diff(beats.samples) > 0)


def test_write_wfdb_round_trips_counts_nan_leads_off_and_annotations(tmp_path):
    rng = np.random.default_rng(1)
    counts = rng.integers(0, 1024, 2000).astype(np.float64)
    counts[100:105] = np.nan
    leads_off = np.zeros(2000, dtype=bool)
    leads_off[500:700] = True
    ann = Annotations(np.array([10, 400, 1500]), ["N", "V", "N"])
    record = Record("cap", 250.0, counts, 120.0, 512.0, 10, leads_off, ann)

    path = write_wfdb(record, tmp_path, "cap")
    back = read_record(path)

    assert back.fs_hz == 250.0
    assert back.gain_counts_per_mv == 120.0 and back.baseline_counts == 512.0
    assert back.adc_bits == 10 and back.adc_zero_counts == 512.0
    np.testing.assert_array_equal(back.counts, counts)  # NaN at the same places
    np.testing.assert_array_equal(back.leads_off, leads_off)
    np.testing.assert_array_equal(back.annotations.samples, ann.samples)
    assert back.annotations.symbols == ann.symbols


def test_csv_time_column_gives_the_sample_rate(tmp_path):
    t = np.arange(500) / 250.0
    values = np.sin(t)
    path = tmp_path / "ecg.csv"
    lines = ["time_s,ecg_mv"] + [
        f"{a:.6f},{b:.6f}" for a, b in zip(t, values, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")
    record = read_record(path)
    assert record.fs_hz == pytest.approx(250.0)
    np.testing.assert_allclose(record.millivolts(), values, atol=1e-6)


def test_csv_without_time_column_needs_a_sample_rate(tmp_path):
    path = tmp_path / "ecg.csv"
    path.write_text("\n".join(str(v) for v in range(100)) + "\n")
    with pytest.raises(SampleRateError, match=r"ecg.csv: .*\(--fs-hz\)"):
        read_record(path)
    ucr = tmp_path / "beats.txt"
    ucr.write_text("1 0.1 0.2 0.3\n2 0.3 0.2 0.1\n")
    with pytest.raises(SampleRateError, match=r"beats.txt: .*\(--fs-hz\)"):
        read_record(ucr)
    record = read_record(path, fs_hz=125.0, gain_counts_per_mv=100.0)
    assert record.fs_hz == 125.0 and len(record.counts) == 100
    assert record.millivolts()[50] == pytest.approx(0.5)


def test_multi_lead_csv_is_read_one_lead_at_a_time_not_as_ucr_beats(tmp_path):
    t = np.arange(720) / 360.0
    mlii, v5 = np.sin(2 * np.pi * t), np.cos(2 * np.pi * t)
    rows = [f"{a:.6f},{b:.6f},{c:.6f}" for a, b, c in zip(t, mlii, v5, strict=True)]
    with_header = tmp_path / "export.csv"
    with_header.write_text("\n".join(["time,mlii,v5", *rows]) + "\n")
    bare = tmp_path / "bare.csv"
    bare.write_text("\n".join(rows) + "\n")
    for path in (with_header, bare):
        first = read_record(path)
        assert first.fs_hz == pytest.approx(360.0) and first.annotations is None
        np.testing.assert_allclose(first.millivolts(), mlii, atol=1e-6)
        second = read_record(path, channel=1)
        np.testing.assert_allclose(second.millivolts(), v5, atol=1e-6)
    with pytest.raises(RecordFormatError, match=r"export.csv: no lead 2: .* 2 value"):
        read_record(with_header, channel=2)
    # Whole-number labels, no header: a UCR beat file, one beat per row.
    ucr = tmp_path / "beats.txt"
    ucr.write_text("1 0.1 0.2 0.3\n3 0.3 0.2 0.1\n")
    beats = read_record(ucr, fs_hz=140.0)
    assert beats.annotations.symbols == ["N", "V"] and len(beats.counts) == 6


def test_csv_with_a_word_in_the_data_names_the_line(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("ecg\n1\n2\noops\n")
    with pytest.raises(RecordFormatError, match=r"bad.csv:4"):
        read_record(path, fs_hz=100.0)


def test_csv_bang_lines_are_leads_off_samples_as_in_the_text_mode(tmp_path, caplog):
    from beatguard.firmware_bridge.textmode import TextDecoder

    lines = b"512\r\n513\r\n!\r\n!\r\n!\r\n514\r\n"
    path = tmp_path / "capture.csv"
    path.write_bytes(b"ecg_counts\r\n" + lines)
    caplog.set_level(logging.INFO, logger="beatguard.device.records")
    record = read_record(path, fs_hz=250.0, gain_counts_per_mv=225.0)
    chunk = TextDecoder(250.0, skip_first_line=False).feed(lines)[0]
    np.testing.assert_array_equal(record.counts, chunk.counts)  # NaN while off
    np.testing.assert_array_equal(record.leads_off, chunk.leads_off)
    assert record.leads_off.tolist() == [False, False, True, True, True, False]
    assert "3 '!' lines read as leads-off samples" in caplog.text

    timed = tmp_path / "timed.csv"
    timed.write_text("t_s,mv\n0.000,0.1\n0.004,!\n0.008,0.2\n")
    record = read_record(timed)
    assert record.fs_hz == pytest.approx(250.0)
    assert record.leads_off.tolist() == [False, True, False]


@pytest.mark.parametrize(
    ("text", "where"),
    [("ecg\n1\n\n2\n!x\n3\n", "bad.csv:5: not a number"),
     ("0.0,1\n\n0.1,2\n0.2\n", "bad.csv:4: 1 columns, expected 2"),
     ("0.0,1\n0.1,!\n!\n", "bad.csv:3: 1 columns, expected 2"),
     ("1\n2\nnan\n3\n", "bad.csv:3: not a finite number"),
     ("0.0,1\n0.1,inf\n", "bad.csv:2: not a finite number")],
    ids=["word", "short-row", "bare-bang-in-two-columns", "nan", "inf"],
)  # fmt: skip
def test_malformed_csv_line_is_refused_with_its_line_number(tmp_path, text, where):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(RecordFormatError, match=where):
        read_record(path, fs_hz=10.0)


def test_ucr_beat_file_reads_labels_and_beats(ecg5000):
    beats = read_ucr(ecg5000)
    assert beats.beats.shape == (500, 140)
    assert set(np.unique(beats.labels)) <= {1, 2, 3, 4, 5}
    record = read_record(ecg5000, fs_hz=140.0)
    assert len(record.counts) == 500 * 140
    assert record.annotations.symbols[: len(beats.labels)].count("N") == int(
        np.sum(beats.labels == 1)
    )


def test_missing_record_names_the_file(tmp_path):
    with pytest.raises(RecordNotFound, match="nothere"):
        read_record(tmp_path / "nothere")


def test_missing_signal_file_names_the_file(mitdb, tmp_path):
    path = _copy_record(mitdb, "106", tmp_path)
    (tmp_path / "106.dat").unlink()
    with pytest.raises(RecordNotFound, match=r"106\.dat"):
        read_record(path)


def test_truncated_signal_file_is_a_format_error(mitdb, tmp_path):
    path = _copy_record(mitdb, "106", tmp_path)
    dat = tmp_path / "106.dat"
    dat.write_bytes(dat.read_bytes()[:100000])
    with pytest.raises(RecordFormatError, match=r"106\.dat: truncated"):
        read_record(path)


@pytest.mark.parametrize("rate", ["-360", "fast", "0"])
def test_header_rate_that_wfdb_would_replace_by_250_hz_is_refused(
    mitdb, tmp_path, rate
):
    path = _copy_record(mitdb, "106", tmp_path)
    hea = tmp_path / "106.hea"
    lines = hea.read_text().splitlines()
    first = lines[0].split()
    first[2] = rate
    hea.write_text("\n".join([" ".join(first), *lines[1:]]) + "\n")
    with pytest.raises((SampleRateError, RecordFormatError), match="106.hea: "):
        read_record(path)


def test_header_disagreeing_with_data_is_a_format_error(mitdb, tmp_path):
    path = _copy_record(mitdb, "106", tmp_path)
    hea = tmp_path / "106.hea"
    lines = hea.read_text().splitlines()
    first = lines[0].split()
    first[3] = str(int(first[3]) * 2)  # promise twice the samples
    hea.write_text("\n".join([" ".join(first), *lines[1:]]) + "\n")
    with pytest.raises(RecordFormatError, match="truncated"):
        read_record(path)


def test_command_line_reports_an_unreadable_record_in_one_line(mitdb, tmp_path):
    path = _copy_record(mitdb, "106", tmp_path)
    dat = tmp_path / "106.dat"
    dat.write_bytes(dat.read_bytes()[:5000])
    result = subprocess.run(
        [sys.executable, "-m", "beatguard.cli", "evaluate", "qrs", str(path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "106.dat" in lines[0] and "truncated" in lines[0]
