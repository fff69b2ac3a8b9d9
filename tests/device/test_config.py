"""Runtime settings come from defaults, a TOML file and flags, in that order."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from beatguard.device.alerts import AlertSettings
from beatguard.device.config import (
    SETTINGS,
    add_arguments,
    alert_settings,
    as_dict,
    read_file,
    resolve,
)
from beatguard.device.errors import ConfigError


def _parse(argv):
    parser = argparse.ArgumentParser(prog="beatguard run")
    add_arguments(parser)
    return parser, parser.parse_args(argv)


def test_flag_overrides_file_overrides_default(tmp_path):
    path = tmp_path / "beatguard.toml"
    path.write_text(
        '[link]\nport = "/dev/beatguard"\nbaud = 57600\n'
        "[alerts]\nrun_beats = 5\npause_s = 2.5\n"
        "[buzzer]\nenabled = false\npin = 23\n"
    )
    _, args = _parse(["--config", str(path), "--run-beats", "4", "--buzzer"])
    cfg = resolve(args)
    assert cfg.link.port == "/dev/beatguard" and cfg.source["link.port"] == "file"
    assert cfg.link.baud == 57600
    assert cfg.alerts.run_beats == 4 and cfg.source["alerts.run_beats"] == "flag"
    assert cfg.alerts.pause_s == 2.5
    assert cfg.buzzer.enabled is True  # the flag wins over the file's false
    assert cfg.buzzer.pin == "23"
    assert cfg.alerts.cooldown_s == AlertSettings().cooldown_s
    assert cfg.source["alerts.cooldown_s"] == "default"
    assert alert_settings(cfg).run_beats == 4
    assert as_dict(cfg)["link"]["baud"] == 57600


def test_help_documents_every_setting_with_its_toml_key_and_default():
    parser, _ = _parse([])
    text = " ".join(parser.format_help().split())
    for s in SETTINGS:
        assert s.flag in text, s.flag
        assert f"[{s.section}] {s.key}, default" in text, s.key
    assert "--config" in text


def test_beatguard_run_help_lists_every_flag():
    run = pytest.importorskip("beatguard.commands.run")
    parser = argparse.ArgumentParser(prog="beatguard run")
    run.add_arguments(parser)
    text = parser.format_help()
    assert all(s.flag in text for s in SETTINGS)


@pytest.mark.parametrize(
    ("toml", "match"),
    [
        ("[link\nport = 1", "not valid TOML"),
        ("[lnk]\nport = 'x'", r"unknown section \[lnk\]"),
        ("[link]\nprot = 'x'", r"unknown setting \[link\] prot"),
        ("[link]\nbaud = 'fast'", r"\[link\] baud must be int"),
        ("[buzzer]\nenabled = 1", r"\[buzzer\] enabled must be bool"),
        ("[events]\nmax_size_mb = -1", r"\[events\] max_size_mb must be more than 0"),
        ("[link]\ntext_adc_bits = 30", r"\[link\] text_adc_bits must be at most 24"),
        ("[console]\ninterval_s = nan", r"\[console\] interval_s must be a finite"),
        ("[alerts]\nburden_share = 7", r"\[alerts\] burden_share must be at most 1"),
    ],
)
def test_bad_file_is_one_clear_error_naming_file_and_key(tmp_path, toml, match):
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=match) as info:
        read_file(path)
    assert str(path) in str(info.value)


def test_missing_file_and_out_of_range_values_are_refused(tmp_path, capsys):
    with pytest.raises(ConfigError, match="no such file"):
        read_file(tmp_path / "absent.toml")
    for flag, value in [("--burden-share", "2"), ("--cooldown-s", "-5")]:
        with pytest.raises(SystemExit) as info:  # argparse: one line, status 2
            _parse([flag, value])
        assert info.value.code == 2
        assert f"{flag}: must be" in capsys.readouterr().err
    # Limits that tie two settings together are checked once both are known.
    _, args = _parse(["--hr-low-bpm", "120", "--hr-high-bpm", "100"])
    with pytest.raises(ConfigError, match="hr_low_bpm < hr_high_bpm"):
        resolve(args)


def test_a_config_file_that_is_not_text_is_named_in_one_line(tmp_path):
    path = tmp_path / "binary.toml"
    path.write_bytes(b"\xff\xfe[\x00l\x00")
    with pytest.raises(ConfigError, match=r"binary.toml: not valid TOML"):
        read_file(path)


def test_example_deploy_config_is_valid_and_shows_every_setting():
    path = Path(__file__).resolve().parents[2] / "deploy" / "beatguard.toml"
    read_file(path)
    text = path.read_text()
    for s in SETTINGS:
        assert f"[{s.section}]" in text and f"{s.key} =" in text, s.dest
