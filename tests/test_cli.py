"""The ``beatguard`` command starts and lists its subcommands."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from beatguard.cli import build_parser


def test_beatguard_help_lists_subcommands():
    result = subprocess.run(
        [sys.executable, "-m", "beatguard.cli", "--help"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "usage: beatguard" in result.stdout


def test_unwritable_output_is_refused_in_one_line_before_any_training(mitdb):
    result = subprocess.run(
        [sys.executable, "-m", "beatguard.cli", "train", str(mitdb / "105")]
        + ["--minutes", "5", "--out", "/proc/beatguard-no-such-place"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("beatguard train: --out /proc/beatguard-no-such-place")
    assert "cannot write there" in lines[-1]
    assert "Traceback" not in result.stderr
    assert "training on" not in result.stderr  # refused before the model is fitted


#: A value per numeric option that cannot work, with the reason argparse gives.
REFUSED = [
    ("train R --out D --window-points 3", "--window-points", "at least 57, not 3"),
    ("train R --out D --minutes 0", "--minutes", "more than 0"),
    ("train R --out D --epochs 0", "--epochs", "at least 1"),
    ("train R --out D --false-alarm-rate 0.7", "--false-alarm-rate", "less than 0.5"),
    ("train R --out D --units 0", "--units", "at least 1"),
    ("train R --out D --seed -1", "--seed", "at least 0"),
    ("run --events-max-size-mb -1", "--events-max-size-mb", "more than 0, not -1"),
    ("run --text-fs-hz 0", "--text-fs-hz", "more than 0"),
    ("run --text-adc-bits 99", "--text-adc-bits", "at most 24"),
    ("run --baud 0", "--baud", "at least 1"),
    ("run --status-interval-s inf", "--status-interval-s", "finite"),
    ("simulate R --speed 0", "--speed", "more than 0"),
    ("simulate R --corrupt-rate 1.5", "--corrupt-rate", "at most 1"),
    ("simulate R --disconnects -1", "--disconnects", "at least 0"),
    ("simulate R --seed -3", "--seed", "at least 0"),
    ("capture --port P --out O --minutes -2", "--minutes", "more than 0"),
    ("capture --port P --out O --minutes 1 --wait-s -1", "--wait-s", "at least 0"),
    ("evaluate qrs R --tolerance-s 0", "--tolerance-s", "more than 0"),
    ("evaluate personal R --json J --train-minutes 0", "--train-minutes", "more"),
    ("demo --speed -1", "--speed", "more than 0"),
    ("bench --runs 0", "--runs", "at least 1"),
]


@pytest.mark.parametrize(("argv", "flag", "why"), REFUSED, ids=[r[0] for r in REFUSED])
def test_values_that_cannot_work_are_refused_by_argparse_in_one_line(
    argv, flag, why, capsys
):
    with pytest.raises(SystemExit) as refused:
        build_parser().parse_args(argv.split())
    assert refused.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith(f"beatguard {argv.split()[0]}")
    assert f"error: argument {flag}: " in last and why in last, last


def test_the_smallest_values_that_work_are_accepted():
    args = build_parser().parse_args(
        ["train", "R", "--out", "D", "--window-points", "57", "--epochs", "1"]
    )
    assert args.window_points == 57 and args.epochs == 1
    args = build_parser().parse_args(["run", "--events-max-size-mb", "0.5"])
    assert args.events_max_size_mb == 0.5


def _help_of(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit):
        build_parser().parse_args([*argv, "--help"])
    return capsys.readouterr().out


def _option_entries(help_text: str) -> list[str]:
    """Each option's entry in ``--help``: its flags, value name and help."""
    options = help_text.split("\noptions:\n", 1)[1]
    return [e for e in re.split(r"\n(?=  -)", options) if e.lstrip().startswith("-")]


COMMANDS = [["train"], ["convert"], ["evaluate", "qrs"], ["evaluate", "personal"]]
COMMANDS += [["run"], ["simulate"], ["capture"], ["demo"], ["bench"]]


@pytest.mark.parametrize("argv", COMMANDS, ids=" ".join)
def test_help_shows_the_default_of_every_option_that_takes_a_value(argv, capsys):
    """Or that it is required; flags (off unless given) need not say it."""
    entries = _option_entries(_help_of(argv, capsys))
    assert len(entries) > 2
    for entry in entries:
        invocation = re.split(r"\s{2,}|\n", entry.strip(), maxsplit=1)[0]
        takes_value = any(
            not w.startswith("-") for w in invocation.split(", ")[0].split()
        )
        if takes_value:
            text = " ".join(entry.split())
            assert "default" in text or text.endswith("(required)"), entry


def test_unwritable_record_folder_is_refused_in_one_line_before_the_port(
    beatguard_cli, tmp_path
):
    (tmp_path / "file").write_text("")
    folder = tmp_path / "file" / "rec"
    result = beatguard_cli(
        "run",
        "--port",
        "/dev/no-such-port",
        "--model",
        str(tmp_path / "no-model"),
        "--record",
        str(folder),
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"beatguard run: --record {folder}: cannot write there (Not a directory)"
    ]  # nothing about the port or the model: refused before either is opened


def test_record_sampled_too_slowly_is_refused_in_one_line_naming_it(
    beatguard_cli, mitdb, tmp_path
):
    import wfdb
    from scipy import signal

    real = wfdb.rdrecord(str(mitdb / "106"), channels=[0], sampto=360 * 600)
    slow = signal.resample_poly(real.p_signal[:, 0], 5, 36)  # 360 Hz to 50 Hz
    wfdb.wrsamp(
        "rec50",
        fs=50,
        units=["mV"],
        sig_name=["MLII"],
        p_signal=slow[:, None],
        fmt=["16"],
        adc_gain=[200.0],
        baseline=[0],
        write_dir=str(tmp_path),
    )
    given = str(tmp_path / "rec50")
    result = beatguard_cli("train", given, "--out", str(tmp_path / "run"))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"beatguard train: {given}: sampled at 50 Hz; the signal chain needs at "
        "least 56 Hz"
    )
    result = beatguard_cli("evaluate", "qrs", str(mitdb / "106"), "--resample-hz", "50")
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith(f"beatguard evaluate: {mitdb / '106'}: sampled at 50 Hz")
    )
    assert not (tmp_path / "run").exists()


def test_text_rate_too_low_for_the_model_is_refused_before_the_port(
    beatguard_cli, bundle_106
):
    result = beatguard_cli(
        "run",
        "--port",
        "/dev/no-such-port",
        "--model",
        str(bundle_106),
        "--text-fs-hz",
        "50",
        "--no-buzzer",
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "beatguard run: --text-fs-hz 50: the signal chain needs at least 56 Hz"
    )
    assert "no-such-port" not in result.stderr


def test_failed_train_removes_the_out_folders_it_made_and_keeps_a_given_one(
    beatguard_cli, tmp_path
):
    missing = str(tmp_path / "no-such-record")
    made = tmp_path / "runs" / "me"
    result = beatguard_cli("train", missing, "--out", str(made))
    assert result.returncode == 1 and "no such record" in result.stderr
    assert list(tmp_path.iterdir()) == []
    given = tmp_path / "given"
    given.mkdir()
    result = beatguard_cli("train", missing, "--out", str(given))
    assert result.returncode == 1
    assert given.is_dir()
