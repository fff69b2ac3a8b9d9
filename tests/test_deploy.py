"""The deployment files run beatguard unprivileged on a stable port name."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def _unit() -> configparser.ConfigParser:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str
    unit.read_string((DEPLOY / "beatguard.service").read_text())
    return unit


def test_service_runs_the_runtime_as_an_unprivileged_user_in_dialout_and_gpio():
    service = _unit()["Service"]
    assert service["User"] not in ("", "root")
    assert set(service["SupplementaryGroups"].split()) >= {"dialout", "gpio"}
    assert " run --config /etc/beatguard/beatguard.toml" in service["ExecStart"]
    assert service["KillSignal"] == "SIGTERM"
    assert service["NoNewPrivileges"] == "yes"


def test_service_waits_for_the_port_the_udev_rule_names():
    rules = (DEPLOY / "99-beatguard.rules").read_text()
    lines = [ln for ln in rules.splitlines() if ln and not ln.startswith("#")]
    assert lines and all('SYMLINK+="beatguard"' in ln for ln in lines)
    assert all('GROUP="dialout"' in ln and 'TAG+="systemd"' in ln for ln in lines)
    assert all(re.search(r'ATTRS\{idVendor\}=="[0-9a-f]{4}"', ln) for ln in lines)
    assert "dev-beatguard.device" in _unit()["Unit"]["After"]
    assert 'port = "/dev/beatguard"' in (DEPLOY / "beatguard.toml").read_text()
