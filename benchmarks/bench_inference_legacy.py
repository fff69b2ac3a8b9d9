"""Per-beat inference latency under tflite-runtime 2.14, in its own environment.

``tflite-runtime`` 2.14 (the last release, still the interpreter of older
Pi OS images) needs ``numpy<2``, which the main environment does not have.
This benchmark makes (or reuses) a second virtual environment with
``benchmarks/legacy_tflite.sh`` (tflite-runtime 2.14, numpy<2,
beatguard[device] without ai-edge-litert), writes the models of
``bench_inference.py`` with the main environment's TensorFlow (on a
machine without it, such as a Pi, it reads those a workstation made, in
``benchmarks/out/inference``), and times
them there with ``bench_inference.py --models DIR --interpreter
tflite-runtime``: the same beats, the same per-beat loop, the same runs.

The environment lives in ``.venv-tflite214`` beside the checkout's
``.venv`` (``BEATGUARD_LEGACY_VENV`` overrides). When it cannot be made
(no Python 3.11, no network on first use, a platform without a
tflite-runtime 2.14 wheel) the benchmark says why and reports no figures.

Run: ``.venv/bin/python benchmarks/bench_inference_legacy.py [--runs 5]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent


def legacy_venv() -> Path:
    """Folder of the legacy environment."""
    return Path(os.environ.get("BEATGUARD_LEGACY_VENV", REPO / ".venv-tflite214"))


def run(runs: int = 5) -> dict:
    """Make the legacy venv and the models, time them there."""
    venv = legacy_venv()
    command = f".venv/bin/python benchmarks/bench_inference_legacy.py --runs {runs}"
    made = subprocess.run(
        ["bash", str(HERE / "legacy_tflite.sh"), str(venv)],
        capture_output=True,
        text=True,
    )
    if made.returncode != 0:
        reason = (made.stderr.strip().splitlines() or ["no output"])[-1]
        return {
            "name": "inference under tflite-runtime 2.14 (own venv)",
            "command": command,
            "figures": {},
            "table_md": f"Not measured: the legacy environment {venv} could not be "
            f"made ({reason}).",
        }
    import bench_inference as inference  # this folder, on sys.path as for bench_memory

    with tempfile.TemporaryDirectory() as tmp:
        if importlib.util.find_spec("tensorflow") is None:  # a Pi: copied models
            models = inference.PREPARED
        else:
            models = inference.prepare(Path(tmp) / "models")
        out = Path(tmp) / "legacy.json"
        subprocess.run(
            [str(venv / "bin" / "python"), str(HERE / "bench_inference.py")]
            + ["--models", str(models), "--interpreter", "tflite-runtime"]
            + ["--runs", str(runs), "--json", str(out)],
            check=True,
        )
        result = json.loads(out.read_text())
        versions = subprocess.run(
            [str(venv / "bin" / "python"), "-c", _VERSIONS],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    return {
        "name": f"inference under tflite-runtime ({versions}, own venv)",
        "command": command,
        "figures": result["figures"],
        "table_md": result["table_md"],
    }


_VERSIONS = (
    "import importlib.metadata as m, numpy; "
    "print('tflite-runtime', m.version('tflite-runtime') + ', numpy', "
    "numpy.__version__)"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(run(args.runs)["table_md"])


if __name__ == "__main__":
    main()
