"""Peak memory of ``beatguard run``, against importing full TensorFlow.

Each run starts ``beatguard simulate`` on MIT-BIH record 106 (minutes 5 to
10, 20 times faster than real time) and ``beatguard run`` on its
pseudo-terminal as real processes, waits for the runtime to finish at the
end of the replay, and reads the runtime's peak resident set size from the
kernel: ``VmHWM`` of ``/proc/self/status``, written by the process itself
as it exits (``ru_maxrss`` from ``wait4`` would also count the pages the
child shared with this benchmark's own process before ``exec``). The
baseline, measured the same way in the same run, is a Python process that
only imports TensorFlow: what a device pays before scoring a single beat
if it runs the Keras model or TensorFlow's own TFLite interpreter instead
of ``ai-edge-litert``.

The model bundle is the one the alert-latency benchmark trains on the
record's first 5 minutes (made once, kept in ``benchmarks/out/``).

Run: ``.venv/bin/python benchmarks/bench_memory.py [--runs 5]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RECORD = REPO.parent / "shared" / "data" / "mitdb" / "106"
CLI = [sys.executable, "-m", "beatguard.cli"]
# Runs a Python module or snippet and, at exit, writes this process's peak
# resident set size (VmHWM, kB) to the file named by $BEATGUARD_PEAK_FILE.
PEAK_WRAPPER = (
    "import atexit, os, runpy, sys\n"
    "def _peak():\n"
    "    for line in open('/proc/self/status'):\n"
    "        if line.startswith('VmHWM:'):\n"
    "            open(os.environ['BEATGUARD_PEAK_FILE'], 'w').write(line.split()[1])\n"
    "atexit.register(_peak)\n"
    "sys.argv = sys.argv[1:]\n"
    "if sys.argv[0] == '-c':\n"
    "    exec(sys.argv[1])\n"
    "else:\n"
    "    sys.exit(runpy.run_module(sys.argv[0], run_name='__main__'))\n"
)


def _bundle() -> Path:
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_alert_latency import model_bundle

    return model_bundle(None)


def _peak_rss_mb(python_args: list[str], **popen) -> tuple[float, int]:
    """Run ``python PYTHON_ARGS`` to its end; its peak RSS in MB and status."""
    with tempfile.NamedTemporaryFile("r", suffix=".peak") as peak:
        env = {**os.environ, "BEATGUARD_PEAK_FILE": peak.name}
        argv = [sys.executable, "-c", PEAK_WRAPPER, *python_args]
        code = subprocess.run(argv, env=env, **popen).returncode
        text = peak.read().strip()
    if not text:
        raise RuntimeError(f"no peak memory reported by {python_args}")
    return int(text) / 1024.0, code


def runtime_peak_mb(bundle: Path, folder: Path) -> float:
    """One replay of 5 minutes of record 106 through ``beatguard run``."""
    sim = subprocess.Popen(
        [*CLI, "simulate", str(RECORD), "--start-minute", "5", "--minutes", "5"]
        + ["--speed", "20"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        port = sim.stdout.readline().strip()
        events = folder / f"events-{os.getpid()}-{len(list(folder.iterdir()))}.sqlite"
        peak_mb, code = _peak_rss_mb(
            ["beatguard.cli", "run", "--port", port, "--model", str(bundle)]
            + ["--events", str(events), "--no-reconnect", "--no-buzzer"]
            + ["--no-status"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    finally:
        sim.kill()
        sim.wait()
    if code != 0:
        raise RuntimeError(f"beatguard run exited with status {code}")
    return peak_mb


def tensorflow_import_peak_mb() -> float:
    peak_mb, code = _peak_rss_mb(
        ["-c", "import tensorflow"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    if code != 0:
        raise RuntimeError("importing tensorflow failed")
    return peak_mb


def run(runs: int = 5) -> dict:
    """Peak RSS of the runtime and of the TensorFlow baseline, ``runs`` each."""
    if not (RECORD.parent / "106.hea").exists():
        return {"name": "memory", "figures": {}, "table_md": "record 106 absent"}
    bundle = _bundle()
    with tempfile.TemporaryDirectory() as tmp:
        ours = [runtime_peak_mb(bundle, Path(tmp)) for _ in range(runs)]
    tf = [tensorflow_import_peak_mb() for _ in range(runs)]
    figures = {
        "beatguard_run_peak_rss": _figure(ours),
        "tensorflow_import_peak_rss": _figure(tf),
    }
    ratio = np.median(tf) / np.median(ours)
    table = "\n".join(
        [
            "| process | peak RSS (MB, median) | runs |",
            "|---|---:|---:|",
            f"| `beatguard run` (ai-edge-litert, 5 min of 106) | "
            f"{np.median(ours):.1f} | {runs} |",
            f"| baseline: `python -c 'import tensorflow'` | {np.median(tf):.1f} "
            f"| {runs} |",
            "",
            f"The whole runtime needs {ratio:.1f}x less memory than importing "
            "TensorFlow alone.",
        ]
    )
    return {
        "name": "Peak memory of the device runtime",
        "command": ".venv/bin/python benchmarks/bench_memory.py --runs 5",
        "figures": figures,
        "table_md": table,
    }


def _figure(values: list[float]) -> dict:
    return {
        "median": float(np.median(values)),
        "p99": None,
        "unit": "MB",
        "runs": [round(v, 2) for v in values],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    result = run(args.runs)
    print(result["table_md"])
    print(json.dumps(result["figures"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
