"""One minute of a record from the board simulator into the runtime, on a pty.

Runs ``beatguard simulate RECORD --link LINK`` (the simulator makes a real
pseudo-terminal and waits for a client), then ``beatguard run --port LINK``
with the model bundle and a fresh SQLite event log, until the simulator has
sent its minute and the runtime, which does not reconnect, stops at the end
of the stream. What the runtime logged (each beat's R-peak sample, label,
quality and score; each alert) is written to a JSON file, so the same run
on two machines can be compared::

    pty_run.py run --bin .venv/bin --data MITDB --record 106 \\
        --bundle DIR --out x86_64.json
    pty_run.py compare x86_64.json aarch64.json   # exit 1 unless equal

The simulator blocks while the pseudo-terminal's buffer is full, so a
runtime slower than real time (as under emulation) loses no samples; it
only makes the run take longer than a minute.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

log = logging.getLogger(__name__)

#: Where in the record the minute starts: after the first five minutes,
#: which the bundle was trained on.
START_MINUTE = 5


def _wait_for(path: Path, proc: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if proc.poll() is not None:
            raise RuntimeError(f"beatguard simulate exited ({proc.returncode}) early")
        if time.monotonic() > deadline:
            raise TimeoutError(f"no pseudo-terminal at {path} after {timeout_s:.0f} s")
        time.sleep(0.1)


def _stop(proc: subprocess.Popen, name: str, timeout_s: float) -> int:
    """Wait for ``proc``; interrupt it, then terminate it, if it hangs."""
    try:
        return proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        log.error("%s still running after %.0f s; interrupting it", name, timeout_s)
    proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.terminate()
        return proc.wait(timeout=30)


def run_minute(
    bin_dir: Path,
    record_path: Path,
    bundle_dir: Path,
    work_dir: Path,
    seconds: float = 60.0,
    timeout_s: float = 1800.0,
) -> dict:
    """Replay ``seconds`` of a record into ``beatguard run`` on a pty.

    Parameters
    ----------
    bin_dir : Path
        Folder of the ``beatguard`` command to use (a venv's ``bin``).
    record_path : Path
        WFDB record, without extension.
    bundle_dir : Path
        Model bundle for the runtime.
    work_dir : Path
        Where the pty link and the event log are made.
    seconds : float
        Record time to replay, from minute ``START_MINUTE``.
    timeout_s : float
        Wall time allowed for the whole run (emulation is slow).

    Returns
    -------
    dict
        ``machine``, ``wall_s``, ``exit_codes``, and from the event log:
        ``beats`` (``[sample, anomalous, quality, score]`` rows in order),
        ``alerts`` (``[kind, sample]``), ``link_events`` (``[kind, sample]``).

    Raises
    ------
    RuntimeError, TimeoutError
        When the simulator or the runtime does not start or fails.
    """
    beatguard = str(bin_dir / "beatguard")
    link = work_dir / "board"
    events = work_dir / "events.sqlite"
    events.unlink(missing_ok=True)
    start_s = time.monotonic()
    sim = subprocess.Popen(
        [
            beatguard,
            "simulate",
            str(record_path),
            "--start-minute",
            str(START_MINUTE),
            "--minutes",
            str(seconds / 60.0),
            "--link",
            str(link),
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        _wait_for(link, sim, timeout_s=300)
        runtime = subprocess.Popen(
            [
                beatguard,
                "run",
                "--port",
                str(link),
                "--no-reconnect",
                "--model",
                str(bundle_dir),
                "--events",
                str(events),
                "--no-buzzer",
                "--no-status",
            ],
            stdout=subprocess.DEVNULL,
        )
        run_code = _stop(runtime, "beatguard run", timeout_s)
    finally:
        sim_code = _stop(sim, "beatguard simulate", 60)
    wall_s = time.monotonic() - start_s
    if run_code != 0:
        raise RuntimeError(f"beatguard run exited with {run_code}")
    result = {
        "machine": platform.machine(),
        "seconds": seconds,
        "wall_s": round(wall_s, 1),
        "exit_codes": {"simulate": sim_code, "run": run_code},
        **read_event_log(events),
    }
    log.info(
        "%s: %d beats (%d anomalous), %d alerts in %.0f s wall for %.0f s of record",
        result["machine"],
        len(result["beats"]),
        sum(row[1] for row in result["beats"]),
        len(result["alerts"]),
        wall_s,
        seconds,
    )
    return result


def read_event_log(path: Path) -> dict:
    """Beats, alerts and link events of the last session of an event log."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        session = db.execute("SELECT max(id) FROM sessions").fetchone()[0]
        beats = db.execute(
            "SELECT sample, anomalous, quality, score FROM beats "
            "WHERE session = ? ORDER BY id",
            (session,),
        ).fetchall()
        alerts = db.execute(
            "SELECT kind, sample FROM alerts WHERE session = ? ORDER BY id",
            (session,),
        ).fetchall()
        link_events = db.execute(
            "SELECT kind, sample FROM link_events WHERE session = ? ORDER BY id",
            (session,),
        ).fetchall()
    return {
        "beats": [list(row) for row in beats],
        "alerts": [list(row) for row in alerts],
        "link_events": [list(row) for row in link_events],
    }


def compare_runs(a: dict, b: dict) -> list[str]:
    """Differences between two runs' logged beats, labels and alerts.

    Returns
    -------
    list[str]
        One line per difference found (empty when the runs logged the same
        beats with the same labels, quality and alerts, and the same link
        events). Scores are compared exactly too; a score difference is
        reported on its own line.
    """
    problems = []
    beats_a = [(s, lab, q) for s, lab, q, _ in a["beats"]]
    beats_b = [(s, lab, q) for s, lab, q, _ in b["beats"]]
    if beats_a != beats_b:
        only_a = sorted(set(beats_a) - set(beats_b))
        only_b = sorted(set(beats_b) - set(beats_a))
        problems.append(
            f"beats differ: {len(beats_a)} on {a['machine']}, {len(beats_b)} on "
            f"{b['machine']}; only on {a['machine']}: {only_a[:5]}, only on "
            f"{b['machine']}: {only_b[:5]}"
        )
    scores_a = [row[3] for row in a["beats"]]
    scores_b = [row[3] for row in b["beats"]]
    if beats_a == beats_b and scores_a != scores_b:
        n = sum(x != y for x, y in zip(scores_a, scores_b, strict=True))
        problems.append(f"{n} of {len(scores_a)} logged scores differ")
    if a["alerts"] != b["alerts"]:
        problems.append(f"alerts differ: {a['alerts']} vs {b['alerts']}")
    if a.get("link_events") != b.get("link_events"):
        problems.append(
            f"link events differ: {a.get('link_events')} vs {b.get('link_events')}"
        )
    return problems


def _cmd_run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="beatguard-pty-") as tmp:
        result = run_minute(
            args.bin, args.data / args.record, args.bundle, Path(tmp), args.seconds
        )
    if not result["beats"]:
        log.error("the runtime logged no beat in %.0f s of record", args.seconds)
        return 1
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    a = json.loads(args.a.read_text())
    b = json.loads(args.b.read_text())
    problems = compare_runs(a, b)
    for line in problems:
        log.error("%s", line)
    if problems:
        return 1
    log.info(
        "%s and %s logged the same %d beats (%d anomalous, scores equal to the "
        "bit) and %d alerts; wall time %.0f s and %.0f s",
        a["machine"],
        b["machine"],
        len(a["beats"]),
        sum(row[1] for row in a["beats"]),
        len(a["alerts"]),
        a["wall_s"],
        b["wall_s"],
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="replay a minute into the runtime on a pty")
    p.add_argument("--bin", type=Path, required=True, help="folder of `beatguard`")
    p.add_argument("--data", type=Path, required=True, help="folder of WFDB records")
    p.add_argument("--record", default="106")
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--bundle", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=_cmd_run)
    p = sub.add_parser("compare", help="exit 1 unless two runs logged the same")
    p.add_argument("a", type=Path)
    p.add_argument("b", type=Path)
    p.set_defaults(func=_cmd_compare)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format=f"[{platform.machine()}] %(message)s"
    )
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
