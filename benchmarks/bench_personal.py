"""Beat-anomaly accuracy of the personal model, beside its baselines.

Runs ``beatguard evaluate personal`` on MIT-BIH records 105, 106, 108, 114
and 116 (train on the first 5 minutes without labels, score the remaining
25 minutes as the device would) and tabulates, per record: PVC ROC AUC of
the int8 model's decision score (shape and timing), the float model's, the
int8 shape error alone (no timing), the template-distance baseline alone
and through the same decision, and the tutorial-shaped dense autoencoder;
PVC Se and +P at the calibrated threshold; false alarms per hour; model
size; training beats dropped as likely abnormal.

Training is deterministic for a given seed, so a second run with the same
seed gives the same figures on the same machine and software; the spread
that matters is over seeds (model initialisation and shuffling). Each of
the ``runs`` evaluations therefore uses its own seed (0, 1, ...), and the
table gives, per record and column, the median over those runs, with the
lowest and highest int8 AUC and the training-plus-conversion seconds of
every record's model. One evaluation takes about 2 to 3 minutes per record
here (10 to 15 minutes for the five), so the default 5 runs take about an
hour.

Run: ``.venv/bin/python benchmarks/bench_personal.py``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
MITDB = REPO.parent / "shared" / "data" / "mitdb"
RECORDS = ("105", "106", "108", "114", "116")
#: Records whose PVCs are pooled for the Se/+P acceptance figures (108, with
#: 13 PVCs after its training minutes, is reported but not pooled).
POOLED = ("105", "106", "114", "116")
POOLED_NAME = "pooled_" + "_".join(POOLED)
COLUMNS = (
    ("auc_int8", "AUC int8", "{:.4f}"),
    ("auc_float", "AUC float", "{:.4f}"),
    ("auc_int8_shape", "AUC int8 shape only", "{:.4f}"),
    ("auc_template", "AUC template", "{:.4f}"),
    ("auc_template_decision", "AUC template + decision", "{:.4f}"),
    ("auc_dense_ae", "AUC dense AE", "{:.4f}"),
    ("se", "PVC Se", "{:.3f}"),
    ("ppv", "PVC +P", "{:.3f}"),
    ("false_alarms_per_hour", "false alarms/h", "{:.1f}"),
    ("model_bytes", "model bytes", "{:d}"),
    ("dropped_beats", "dropped", "{:d}"),
)


AUC_KEYS = tuple(key for key, _, _ in COLUMNS if key.startswith("auc_"))


def evaluate(seed: int, folder: Path) -> dict:
    """One ``beatguard evaluate personal`` over the five records."""
    out = folder / f"personal-seed{seed}.json"
    subprocess.run(
        [sys.executable, "-m", "beatguard.cli", "evaluate", "personal"]
        + [str(MITDB / r) for r in RECORDS]
        + ["--train-minutes", "5", "--seed", str(seed), "--json", str(out)]
        + ["--no-plots"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return json.loads(out.read_text())


def median_result(results: list[dict]) -> dict:
    """Per record and key (and for ``total``), the median over ``results``."""
    records = {}
    for name in results[0]["records"]:
        recs = [r["records"][name] for r in results]
        records[name] = {
            key: _median([rec.get(key) for rec in recs]) for key in recs[0]
        }
    total = {
        key: _median([r["total"].get(key) for r in results])
        for key in results[0]["total"]
    }
    return {"records": records, "total": total}


def _median(values: list):
    if any(not isinstance(v, (int, float)) or isinstance(v, bool) for v in values):
        return values[0]
    median = float(np.median(values))
    return int(round(median)) if all(isinstance(v, int) for v in values) else median


def table(result: dict) -> str:
    """Markdown table of one evaluation's JSON (or of :func:`median_result`)."""
    head = "| record | " + " | ".join(title for _, title, _ in COLUMNS) + " |"
    lines = [head, "|---|" + "---:|" * len(COLUMNS)]
    for name, rec in result["records"].items():
        cells = [
            fmt.format(rec[key]) if rec.get(key) is not None else ""
            for key, _, fmt in COLUMNS
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    means = [
        np.mean([rec[key] for rec in result["records"].values()]) for key in AUC_KEYS
    ]
    lines.append(
        "| mean | "
        + " | ".join(f"{m:.4f}" for m in means)
        + " | "
        + " | ".join(
            f"{result['total'][k]:.3f}" if k in result["total"] else ""
            for k in ("se", "ppv")
        )
        + " | | | |"
    )
    return "\n".join(lines)


def spread(results: list[dict]) -> str:
    """One line per record: int8 AUC range and train+convert seconds per seed."""
    lines = []
    for name in results[0]["records"]:
        aucs = [r["records"][name]["auc_int8"] for r in results]
        secs = [r["records"][name].get("train_convert_s") for r in results]
        lines.append(
            f"- {name}: int8 AUC {min(aucs):.4f} to {max(aucs):.4f}; "
            "train + convert "
            + ", ".join("?" if s is None else f"{s:.0f}" for s in secs)
            + " s"
        )
    return "\n".join(lines)


def pooled_pvc(results: list[dict]) -> dict[str, list[float]]:
    """PVC Se and +P over :data:`POOLED` together, one value per evaluation."""
    out: dict[str, list[float]] = {"se": [], "ppv": []}
    for result in results:
        recs = [result["records"][name] for name in POOLED]
        detected = sum(rec["pvc_detected"] for rec in recs)
        out["se"].append(detected / sum(rec["pvc_reference"] for rec in recs))
        out["ppv"].append(detected / max(1, sum(rec["flagged"] for rec in recs)))
    return out


def run(runs: int = 5) -> dict:
    """Evaluate ``runs`` times, seeds 0 .. runs-1 (see the module doc)."""
    if not (MITDB / "106.hea").exists():
        return {"name": "personal", "figures": {}, "table_md": "MIT-BIH absent"}
    with tempfile.TemporaryDirectory() as tmp:
        results = [evaluate(seed, Path(tmp)) for seed in range(runs)]
    figures = {}
    for name in RECORDS:
        for key in AUC_KEYS:
            values = [r["records"][name][key] for r in results]
            figures[f"{name}_{key}"] = {
                "median": float(np.median(values)),
                "p99": None,
                "unit": "AUC",
                "runs": values,
            }
    for name in RECORDS:
        values = [r["records"][name].get("train_convert_s") for r in results]
        if None not in values:
            figures[f"{name}_train_convert_s"] = {
                "median": float(np.median(values)),
                "p99": None,
                "unit": "s",
                "runs": values,
            }
    for key in ("se", "ppv"):
        values = [r["total"][key] for r in results]
        figures[f"total_pvc_{key}"] = {
            "median": float(np.median(values)),
            "p99": None,
            "unit": "fraction",
            "runs": values,
        }
    for key, values in pooled_pvc(results).items():
        figures[f"{POOLED_NAME}_pvc_{key}"] = {
            "median": float(np.median(values)),
            "p99": None,
            "unit": "fraction",
            "runs": values,
        }
    pooled = pooled_pvc(results)
    return {
        "name": "Personal-model PVC detection (train 5 min, score 25 min)",
        "command": ".venv/bin/python benchmarks/bench_personal.py",
        "figures": figures,
        "table_md": table(median_result(results))
        + f"\n\nMedians over {runs} run(s), seeds 0 to {runs - 1} (training is "
        "deterministic for a given seed). PVC Se and +P over records "
        f"{', '.join(POOLED)} together: median {np.median(pooled['se']):.3f} "
        f"and {np.median(pooled['ppv']):.3f} (per seed: "
        + ", ".join(
            f"{a:.3f}/{b:.3f}" for a, b in zip(pooled["se"], pooled["ppv"], strict=True)
        )
        + "); the mean row pools all five.\n\nPer record, over the seeds:\n"
        + spread(results),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--runs", type=int, default=5, help="evaluations, one seed each"
    )
    args = parser.parse_args(argv)
    result = run(args.runs)
    print(result["table_md"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
