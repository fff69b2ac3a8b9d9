"""``beatguard run``: the device runtime, from a serial port to alerts.

Reads the board through the serial link, scores every beat with the int8
model bundle, logs beats, alerts, link events and quality changes to the
SQLite event log, sounds the buzzer, and prints a one-line live status.
SIGINT (Ctrl-C) and SIGTERM (``systemctl stop``) end the session cleanly.

Exit status: 0 when the session ended cleanly (a signal, the end of a
replay); 1 when something went wrong that the last lines name: the port was
lost with ``--no-reconnect``, the event log could not be opened, event log
rows or a recording segment could not be written (a full disk; the runtime
keeps going meanwhile, alerts still sound).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import threading
from types import SimpleNamespace

from beatguard.commands import writable_folder
from beatguard.device import config as settings

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "Settings come from --config FILE (TOML), overridden by the flags given. "
        "Example: beatguard run --port /dev/beatguard --model runs/me "
        "--events events.sqlite"
    )
    settings.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    cfg = settings.resolve(args)
    if not cfg.link.port:
        raise settings.ConfigError("no serial port: give --port or [link] port")
    if not cfg.model.dir:
        raise settings.ConfigError("no model: give --model or [model] dir")
    if cfg.record.dir:
        writable_folder(cfg.record.dir, "--record")
    stop = threading.Event()
    with _stop_on_signals(stop):
        return _run(cfg, stop)


def _run(cfg: SimpleNamespace, stop: threading.Event) -> int:
    from beatguard import __version__
    from beatguard.device.runtime import Runtime
    from beatguard.device.scorer import Scorer
    from beatguard.firmware_bridge.link import SerialLink

    with contextlib.ExitStack() as stack:
        scorer = stack.enter_context(Scorer(cfg.model.dir))
        chain_config = scorer.bundle.chain_config()
        _check_text_rate(cfg, chain_config)
        event_log, no_event_log = _open_event_log(cfg, scorer, __version__)
        if event_log is not None:
            stack.callback(event_log.close, end_reason="error")
        buzzer = _open_buzzer(cfg)
        if buzzer is not None:
            stack.callback(buzzer.close)
        link = stack.enter_context(
            SerialLink(
                cfg.link.port,
                baud=cfg.link.baud,
                text_fs_hz=cfg.link.text_fs_hz,
                reconnect=cfg.link.reconnect,
                stop_event=stop,
            )
        )
        status_line = _StatusLine(cfg.console.enabled)
        runtime = Runtime(
            link,
            scorer,
            chain_config,
            alert_settings=settings.alert_settings(cfg),
            event_log=event_log,
            buzzer=buzzer,
            recorder_factory=_recorder_factory(cfg, event_log),
            stop_event=stop,
            front_end=_text_front_end(cfg),
            on_alert=status_line.alert,
            on_status=status_line.show if cfg.console.enabled else None,
            status_interval_s=cfg.console.interval_s,
        )
        try:
            summary = runtime.run()
        finally:
            status_line.end()
        if event_log is not None:
            event_log.close(end_reason=summary.end_reason)
            if event_log.loss:
                summary.problems.append(event_log.loss)
        if no_event_log:
            summary.problems.append(no_event_log)
    print(
        f"beatguard run: {summary.beats} beats, {summary.anomalous_beats} abnormal, "
        f"{summary.alerts} alerts, {summary.gaps} gaps, "
        f"{summary.corrupt_frames} corrupt frames ({summary.end_reason})"
    )
    for problem in summary.problems:
        print(f"beatguard run: {problem}", file=sys.stderr)
    return 1 if summary.problems else 0


def _check_text_rate(cfg: SimpleNamespace, chain_config) -> None:
    """Refuse a ``--text-fs-hz`` below what the model's signal chain needs."""
    fs_hz = cfg.link.text_fs_hz
    if fs_hz is not None and fs_hz < chain_config.min_fs_hz:
        raise settings.ConfigError(
            f"--text-fs-hz {fs_hz:g}: the signal chain needs at least "
            f"{chain_config.min_fs_hz} Hz"
        )


def _open_event_log(cfg: SimpleNamespace, scorer, version: str):
    """The event log and None, or None and why (logged) when it cannot be opened."""
    import json

    from beatguard.device.errors import EventLogError
    from beatguard.device.eventlog import EventLog

    max_bytes = (
        None
        if cfg.events.max_size_mb is None
        else int(cfg.events.max_size_mb * 1_000_000)
    )
    try:
        event_log = EventLog(
            cfg.events.path,
            {
                "port": cfg.link.port,
                "model_dir": str(cfg.model.dir),
                "model_sha256": scorer.bundle.meta.get("model_sha256"),
                "threshold": scorer.threshold,
                "settings_json": json.dumps(settings.as_dict(cfg), sort_keys=True),
                "version": version,
            },
            max_size_bytes=max_bytes,
        )
    except EventLogError as err:
        logger.error("%s; running WITHOUT an event log (alerts still sound)", err)
        return None, f"{err}; the session ran without an event log"
    return event_log, None


def _open_buzzer(cfg: SimpleNamespace):
    if not cfg.buzzer.enabled:
        return None
    from beatguard.device.buzzer import AlertBuzzer

    pin = cfg.buzzer.pin
    return AlertBuzzer(
        int(pin) if str(pin).isdigit() else pin, active_high=cfg.buzzer.active_high
    )


def _recorder_factory(cfg: SimpleNamespace, event_log):
    if not cfg.record.dir:
        return None
    from beatguard.device.recorder import StreamRecorder

    session = event_log.session if event_log is not None else 0
    name = f"beatguard-{session:04d}"

    def factory(**front_end):
        return StreamRecorder(cfg.record.dir, name, **front_end)

    return factory


def _text_front_end(cfg: SimpleNamespace) -> dict:
    if cfg.link.text_fs_hz is None:
        return {}
    return {
        "fs_hz": cfg.link.text_fs_hz,
        "gain_counts_per_mv": cfg.link.text_gain_counts_per_mv,
        "baseline_counts": cfg.link.text_baseline_counts,
        "adc_bits": cfg.link.text_adc_bits,
    }


class _StatusLine:
    """Prints the live status: rewritten in place on a terminal, else a line."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.tty = sys.stdout.isatty()
        self._open = False

    def show(self, status) -> None:
        from beatguard.device.console import format_status

        line = format_status(status)
        if self.tty:
            print("\r\033[K" + line, end="", flush=True)
            self._open = True
        else:
            print(line, flush=True)

    def alert(self, alert) -> None:
        self.end()
        print(f"ALERT sample {alert.sample}: {alert.message}", flush=True)

    def end(self) -> None:
        if self._open:
            print(flush=True)
            self._open = False


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event):
    """SIGINT and SIGTERM set ``stop`` (the loop then ends cleanly)."""

    def handler(signum, frame):
        logger.info("%s received; stopping", signal.Signals(signum).name)
        stop.set()

    previous = {
        sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
