"""The serial link: decoding speed, simulator pacing, and a faulty replay.

Three measurements on MIT-BIH record 106 (minutes 5 to 30, as the end to
end acceptance replays it):

* **decode**: seconds the host codec needs for those 25 minutes, binary
  frames and text lines, fed in 310-byte reads; reported as a multiple of
  real time (higher is better).
* **pacing**: the simulator replays one minute at 10x on a pseudo-terminal
  while a reader decodes it; for each chunk, the arrival time minus the
  deadline of its last sample (``t0 + k / (fs * speed)``). This is the
  simulator's lateness plus pty and decoding delay, in milliseconds.
* **faults**: the 25 minutes at 50x with 0.1 % of bytes corrupted and 5
  port outages of 1 s, read through ``SerialLink`` on the simulator's
  stable symlink: seconds from the port reappearing to the link's
  ``RECONNECTED``, corrupt frames counted, samples lost to gaps against
  samples the simulator did not send, and samples found at a wrong stream
  index (must be 0); then the same with the replay paused during outages
  (``--outage-pauses-record``), where only bytes in flight are lost.

Run: ``.venv/bin/python benchmarks/bench_link.py [--runs 5]``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RECORD = REPO.parent / "shared" / "data" / "mitdb" / "106"
START_MINUTE = 5.0


def _figure(runs: list[float], unit: str) -> dict:
    values = np.asarray(runs, dtype=float)
    return {
        "median": float(np.median(values)),
        "p99": float(np.percentile(values, 99)) if len(values) > 1 else None,
        "unit": unit,
        "runs": [float(v) for v in values],
    }


def measure_decode(runs: int) -> dict:
    """Seconds to decode the 25 minutes, binary and text, median of ``runs``."""
    from beatguard.firmware_bridge.protocol import FrameDecoder
    from beatguard.firmware_bridge.simulator import BoardSimulator
    from beatguard.firmware_bridge.textmode import TextDecoder

    out = {}
    for text in (False, True):
        sim = BoardSimulator.from_record(RECORD, start_minute=START_MINUTE, text=text)
        sim.port.close()
        wire = sim.encode_replay()
        duration_s = len(sim.counts) / sim.fs_hz
        times = []
        for _ in range(runs):
            dec = TextDecoder(sim.fs_hz) if text else FrameDecoder()
            t = time.perf_counter()
            for i in range(0, len(wire), 310):
                dec.feed(wire[i : i + 310])
            times.append(time.perf_counter() - t)
        name = "text" if text else "binary"
        out[f"decode_{name}_s"] = _figure(times, "s per 25 min")
        out[f"decode_{name}_x_realtime"] = _figure(
            [duration_s / t for t in times], "x real time"
        )
    return out


def measure_pacing(speed: float = 10.0, minutes: float = 1.0) -> list[float]:
    """Arrival minus deadline of each chunk's last sample, milliseconds."""
    from beatguard.device.types import SampleChunk
    from beatguard.firmware_bridge.link import SerialLink
    from beatguard.firmware_bridge.simulator import BoardSimulator

    sim = BoardSimulator.from_record(
        RECORD, start_minute=START_MINUTE, minutes=minutes, speed=speed
    )
    late_ms = []
    with sim, SerialLink(sim.path, reconnect=False) as link:
        while not (sim.finished.is_set() and not link.running):
            item = link.get(timeout_s=0.2)
            if not isinstance(item, SampleChunk):
                continue
            arrived = time.monotonic()
            last = item.first_sample + len(item) - 1
            deadline = sim.started_mono_s + last / (sim.fs_hz * speed)
            late_ms.append((arrived - deadline) * 1000.0)
    return late_ms


def measure_faults(speed: float = 50.0, pause: bool = False) -> dict:
    """One faulty 25-minute replay through the link; figures of the run.

    With ``pause`` the simulator resumes the record where it stopped after
    each outage (``Faults.outage_pauses_record``).
    """
    from beatguard.device.types import LinkEventKind, SampleChunk
    from beatguard.firmware_bridge.link import SerialLink
    from beatguard.firmware_bridge.simulator import BoardSimulator, Faults

    faults = Faults(
        corrupt_rate=0.001, disconnects=5, outage_s=1.0, outage_pauses_record=pause
    )
    with tempfile.TemporaryDirectory() as tmp:
        stable = Path(tmp) / "ttyECG"
        sim = BoardSimulator.from_record(
            RECORD,
            start_minute=START_MINUTE,
            speed=speed,
            faults=faults,
            link_path=stable,
            seed=1,
        )
        reconnected, misplaced, received = [], 0, 0
        corrupt_events = lost = 0
        done = threading.Event()
        with sim, SerialLink(str(stable)) as link:
            while not done.is_set():
                item = link.get(timeout_s=0.2)
                if item is None:
                    if sim.finished.is_set() and not link.connected:
                        done.set()
                    continue
                if isinstance(item, SampleChunk):
                    k = item.first_sample + np.arange(len(item))
                    misplaced += int(np.sum(sim.counts[k] != item.counts))
                    received += len(item)
                elif item.kind is LinkEventKind.RECONNECTED:
                    reconnected.append(time.monotonic())
                elif item.kind is LinkEventKind.CORRUPT:
                    corrupt_events += item.corrupt_frames
                elif item.kind is LinkEventKind.GAP:
                    lost += item.lost_samples
            stats = link.stats
    delays = [
        seen - plugged
        for (_, plugged, _), seen in zip(sim.stats.outages, reconnected, strict=False)
    ]
    return {
        "reconnect_s": delays,
        "outages": len(sim.stats.outages),
        "reconnections": len(reconnected),
        "bytes_corrupted": sim.stats.bytes_corrupted,
        "corrupt_frames": stats.corrupt_frames,
        "corrupt_in_events": corrupt_events,
        "recovered_samples": stats.recovered_samples,
        "samples_received": received,
        "samples_lost_in_gaps": lost,
        "samples_not_sent": sim.stats.samples_skipped,
        "samples_misplaced": misplaced,
        "record_samples": len(sim.counts),
    }


def run(runs: int = 5) -> dict:
    """All three measurements; see the module docstring."""
    figures = measure_decode(runs)
    pacing = measure_pacing()
    figures["pacing_late_ms"] = _figure(pacing, "ms")
    faults = measure_faults()
    paused = measure_faults(pause=True)
    figures["reconnect_s"] = _figure(faults["reconnect_s"] + paused["reconnect_s"], "s")
    rows = [
        "| measure | median | p99 | unit |",
        "|---|---|---|---|",
    ]
    for key, fig in figures.items():
        p99 = "" if fig["p99"] is None else f"{fig['p99']:.3g}"
        rows.append(f"| {key} | {fig['median']:.3g} | {p99} | {fig['unit']} |")
    rows.append("")
    rows.append(
        "Faulty replay (25 min of 106 at 50x, 0.1 % bytes corrupted, 5 outages "
        "of 1 s): "
        + ", ".join(f"{k} {v}" for k, v in faults.items() if k != "reconnect_s")
    )
    rows.append("")
    rows.append(
        "The same with the record paused during outages: "
        + ", ".join(f"{k} {v}" for k, v in paused.items() if k != "reconnect_s")
    )
    return {
        "name": "link",
        "command": ".venv/bin/python benchmarks/bench_link.py",
        "figures": figures,
        "faults": faults,
        "faults_record_paused": paused,
        "table_md": "\n".join(rows),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print the JSON result")
    args = parser.parse_args()
    result = run(args.runs)
    print(json.dumps(result, indent=1) if args.json else result["table_md"])


if __name__ == "__main__":
    main()
