"""Settings of ``beatguard run``: a TOML file, overridden by command-line flags.

Every setting is one row of ``SETTINGS``: its TOML section and key, its
flag, its type, its default and what it means. The same table builds the
``--help`` text, reads the file and checks the values, so the three cannot
disagree. A file looks like ``deploy/beatguard.toml``::

    [link]
    port = "/dev/beatguard"

    [model]
    dir = "/var/lib/beatguard/model"

    [alerts]
    run_beats = 3

Precedence: a flag given on the command line, else the file, else the
default.
"""

from __future__ import annotations

import argparse
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from beatguard.device.alerts import ALERT_LIMITS, AlertSettings
from beatguard.device.errors import ConfigError
from beatguard.device.limits import Limits

POSITIVE = Limits(above=0)
#: ADC resolutions in bits (0: unknown, no saturation check).
ADC_BITS = Limits(low=0, high=24)


@dataclass(frozen=True)
class Setting:
    """One setting of the runtime.

    Attributes
    ----------
    section, key : str
        Where it lives in the TOML file (``[section]``, ``key = ...``).
    flag : str
        Its command-line flag.
    kind : type
        ``str``, ``int``, ``float`` or ``bool``.
    default : Any
        Value when neither the file nor a flag gives one (None: unset).
    help : str
        What it means, with its unit.
    metavar : str
        Name of the value in ``--help`` (default: the type's name).
    limits : Limits
        The values an ``int`` or ``float`` setting may take (default: any
        finite number).
    """

    section: str
    key: str
    flag: str
    kind: type
    default: Any
    help: str
    metavar: str = ""
    limits: Limits = Limits()

    @property
    def dest(self) -> str:
        return f"{self.section}_{self.key}"


_ALERT = AlertSettings()

SETTINGS: tuple[Setting, ...] = (
    Setting("link", "port", "--port", str, None,
            "serial port or pyserial URL of the board (e.g. /dev/beatguard, "
            "/dev/ttyACM0, socket://host:port)", "PORT"),
    Setting("link", "baud", "--baud", int, 115200, "serial speed in baud",
            limits=Limits(low=1)),
    Setting("link", "text_fs_hz", "--text-fs-hz", float, None,
            "read the plain-text stream of AD8232 example sketches (one number "
            "per line) at this sample rate in Hz; unset: beatguard's framed "
            "protocol, whose rate the board announces", limits=POSITIVE),
    Setting("link", "text_gain_counts_per_mv", "--text-gain-counts-per-mv", float,
            225.0,
            "text mode only: ADC counts per millivolt (AD8232 gain 1100 into a "
            "10-bit 5 V ADC is about 225)", limits=POSITIVE),
    Setting("link", "text_baseline_counts", "--text-baseline-counts", float, 512.0,
            "text mode only: ADC count of 0 mV (the AD8232 reference, mid-rail)"),
    Setting("link", "text_adc_bits", "--text-adc-bits", int, 10,
            "text mode only: ADC resolution in bits, 0 to 24 (0: no saturation "
            "check)", limits=ADC_BITS),
    Setting("link", "reconnect", "--reconnect", bool, True,
            "reopen a vanished port with back-off (--no-reconnect: stop when "
            "the port goes away: exit status 0 at the end of a replay by "
            "beatguard simulate, 1 when the port was lost before it)"),
    Setting("model", "dir", "--model", str, None,
            "model bundle folder (model.tflite + model.json) made by "
            "`beatguard train` and `beatguard convert`", "DIR"),
    Setting("events", "path", "--events", str, "beatguard-events.sqlite",
            "SQLite event log file; each start appends a new session", "FILE"),
    Setting("events", "max_size_mb", "--events-max-size-mb", float, None,
            "cap on the event log size in MB, more than 0; reaching it is "
            "handled like a full disk (rows kept in memory, one error line, "
            "retries)", limits=POSITIVE),
    Setting("record", "dir", "--record", str, None,
            "also write the raw stream and the runtime's beat labels as a WFDB "
            "record in this folder (record name: beatguard-<session>)", "DIR"),
    Setting("alerts", "run_beats", "--run-beats", int, _ALERT.run_beats,
            "consecutive abnormal beats that sound a run alert",
            limits=ALERT_LIMITS["run_beats"]),
    Setting("alerts", "burden_share", "--burden-share", float, _ALERT.burden_share,
            "share (0-1) of abnormal beats among recent beats that sounds a "
            "burden alert", limits=ALERT_LIMITS["burden_share"]),
    Setting("alerts", "burden_window_beats", "--burden-window-beats", int,
            _ALERT.burden_window_beats, "recent beats the burden is measured over",
            limits=ALERT_LIMITS["burden_window_beats"]),
    Setting("alerts", "hr_low_bpm", "--hr-low-bpm", float, _ALERT.hr_low_bpm,
            "heart rate below this (beats/min) for hr_hold_s sounds an alert",
            limits=ALERT_LIMITS["hr_low_bpm"]),
    Setting("alerts", "hr_high_bpm", "--hr-high-bpm", float, _ALERT.hr_high_bpm,
            "heart rate above this (beats/min) for hr_hold_s sounds an alert",
            limits=ALERT_LIMITS["hr_high_bpm"]),
    Setting("alerts", "hr_window_s", "--hr-window-s", float, _ALERT.hr_window_s,
            "seconds of beats the heart rate is averaged over",
            limits=ALERT_LIMITS["hr_window_s"]),
    Setting("alerts", "hr_hold_s", "--hr-hold-s", float, _ALERT.hr_hold_s,
            "seconds the heart rate must stay out of limits before an alert",
            limits=ALERT_LIMITS["hr_hold_s"]),
    Setting("alerts", "pause_s", "--pause-s", float, _ALERT.pause_s,
            "seconds without a beat (good signal) that sound a pause alert",
            limits=ALERT_LIMITS["pause_s"]),
    Setting("alerts", "cooldown_s", "--cooldown-s", float, _ALERT.cooldown_s,
            "minimum seconds between two alerts of the same kind",
            limits=ALERT_LIMITS["cooldown_s"]),
    Setting("buzzer", "enabled", "--buzzer", bool, True,
            "sound alerts on a GPIO buzzer (--no-buzzer: silent)"),
    Setting("buzzer", "pin", "--buzzer-pin", str, "18",
            "GPIO pin of the buzzer, BCM number or gpiozero name (BOARD12)", "PIN"),
    Setting("buzzer", "active_high", "--buzzer-active-high", bool, True,
            "the buzzer sounds when its pin is high (--no-buzzer-active-high: "
            "when low)"),
    Setting("console", "enabled", "--status", bool, True,
            "print a one-line live status (--no-status: only log lines)"),
    Setting("console", "interval_s", "--status-interval-s", float, 1.0,
            "seconds between two status lines", limits=POSITIVE),
)  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--config`` and one flag per setting, each with its help and default."""
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="TOML file of settings (sections [link] [model] [events] [record] "
        "[alerts] [buzzer] [console], keys as named in brackets below); flags "
        "given here override it (default: none, the defaults below)",
    )
    groups: dict[str, argparse._ArgumentGroup] = {}
    for s in SETTINGS:
        group = groups.get(s.section)
        if group is None:
            group = groups[s.section] = parser.add_argument_group(
                f"[{s.section}] settings"
            )
        default = "unset" if s.default is None else repr(s.default)
        help_text = f"{s.help} [{s.section}] {s.key}, default {default}"
        help_text = help_text.replace("%", "%%")
        if s.kind is bool:
            group.add_argument(
                s.flag,
                dest=s.dest,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=help_text,
            )
        else:
            kind = s.kind if s.kind is str else s.limits.argparse_type(s.kind)
            group.add_argument(
                s.flag,
                dest=s.dest,
                type=kind,
                default=None,
                metavar=s.metavar or s.kind.__name__.upper(),
                help=help_text,
            )


def _coerce(setting: Setting, value: Any, where: str) -> Any:
    if value is None:
        return None
    kind = setting.kind
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, int | float) and not isinstance(value, bool),
        str: isinstance(value, str | int) and not isinstance(value, bool),
    }[kind]
    if not ok:
        raise ConfigError(
            f"{where}: [{setting.section}] {setting.key} must be {kind.__name__}, "
            f"not {value!r}"
        )
    problem = setting.limits.problem(value) if kind in (int, float) else None
    if problem is not None:
        raise ConfigError(
            f"{where}: [{setting.section}] {setting.key} {problem}, not {value!r}"
        )
    return kind(value)


def read_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML settings file into ``{dest: value}``.

    Raises
    ------
    ConfigError
        The file is missing, is not TOML, or has an unknown section, key or
        a value of the wrong type (the message names file, section and key).
    """
    path = Path(path)
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError as err:
        raise ConfigError(f"config {path}: no such file") from err
    except OSError as err:
        raise ConfigError(f"config {path}: cannot read ({err.strerror})") from err
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"config {path}: not valid TOML ({err})") from err
    known = {(s.section, s.key): s for s in SETTINGS}
    sections = {s.section for s in SETTINGS}
    values = {}
    for section, table in data.items():
        if section not in sections or not isinstance(table, dict):
            raise ConfigError(
                f"config {path}: unknown section [{section}] (known: "
                f"{', '.join(sorted(sections))})"
            )
        for key, value in table.items():
            setting = known.get((section, key))
            if setting is None:
                raise ConfigError(f"config {path}: unknown setting [{section}] {key}")
            values[setting.dest] = _coerce(setting, value, f"config {path}")
    return values


def resolve(args: argparse.Namespace) -> SimpleNamespace:
    """Merge defaults, the ``--config`` file and the flags given.

    Returns
    -------
    SimpleNamespace
        One attribute per section, each with one attribute per key, e.g.
        ``cfg.link.port``, ``cfg.alerts.run_beats``; plus ``cfg.source``
        mapping ``"section.key"`` to where its value came from.

    Raises
    ------
    ConfigError
        Bad file, or a value out of range (alert settings are checked).
    """
    from_file = read_file(args.config) if getattr(args, "config", None) else {}
    cfg = SimpleNamespace(source={})
    for s in SETTINGS:
        section = getattr(cfg, s.section, None)
        if section is None:
            section = SimpleNamespace()
            setattr(cfg, s.section, section)
        flag_value = getattr(args, s.dest, None)
        if flag_value is not None:
            value, where = flag_value, "flag"
        elif s.dest in from_file:
            value, where = from_file[s.dest], "file"
        else:
            value, where = s.default, "default"
        setattr(section, s.key, value)
        cfg.source[f"{s.section}.{s.key}"] = where
    alert_settings(cfg)
    return cfg


def alert_settings(cfg: SimpleNamespace) -> AlertSettings:
    """The ``[alerts]`` section as ``AlertSettings`` (checked)."""
    names = {f.name for f in fields(AlertSettings)}
    return AlertSettings(**{k: v for k, v in vars(cfg.alerts).items() if k in names})


def as_dict(cfg: SimpleNamespace) -> dict[str, dict[str, Any]]:
    """The settings as plain nested dicts, e.g. to store in the event log."""
    return {
        section: dict(vars(getattr(cfg, section)))
        for section in dict.fromkeys(s.section for s in SETTINGS)
    }
