"""Signal-chain speed and QRS accuracy, with NeuroKit2 as the baseline.

Speed: the whole chain (counts to normalized beat windows) over MIT-BIH
record 106 (30 min 5 s at 360 Hz) on one core, fed in one piece and in
1-second chunks as the device feeds it, and stage by stage (filters,
quality flags, QRS detector, beat windows). Each figure is the median of
``runs`` runs, in seconds and as a multiple of real time.

Accuracy: Se and +P of the chain's beats against the reference beat
annotations of records 100 105 106 108 114 116 121 123 (150 ms window,
first 5 minutes not scored). NeuroKit2's default R-peak detector
(``neurokit2.ecg_peaks``, method ``"neurokit"``, offline and zero-phase)
runs on the same millivolt signals in the same run, timed the same way.

Run: ``.venv/bin/python benchmarks/bench_chain.py [--runs 5]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings
from pathlib import Path

import numpy as np

from beatguard.device.chain import ChainConfig, SignalChain, beats_from_record
from beatguard.device.evaluation import match_beats
from beatguard.device.filters import StreamingFilter, design_bandpass
from beatguard.device.qrs import QRSDetector
from beatguard.device.quality import QualityMonitor, QualitySettings
from beatguard.device.records import read_record
from beatguard.device.windows import BeatWindower

REPO = Path(__file__).resolve().parents[1]
MITDB = REPO.parent / "shared" / "data" / "mitdb"
RECORDS = ("100", "105", "106", "108", "114", "116", "121", "123")
TIMED_RECORD = "106"


def _timed(fn, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def _figure(values: list[float], unit: str) -> dict:
    return {
        "median": statistics.median(values),
        "p99": None,
        "unit": unit,
        "runs": [round(v, 6) for v in values],
    }


def _chain_in_chunks(config: ChainConfig, counts: np.ndarray, chunk: int) -> int:
    chain = SignalChain(config)
    n = 0
    for i in range(0, len(counts), chunk):
        n += len(chain.process(counts[i : i + chunk]).beats)
    return n + len(chain.finish().beats)


def _stages(config: ChainConfig, counts: np.ndarray, runs: int) -> dict[str, list]:
    """Each stage alone over the whole record, as the chain calls it."""
    c = config
    qs = QualitySettings(noise_max_mv=c.noise_max_mv, hold_s=c.quality_hold_s)
    mv = (counts - c.baseline_counts) / c.gain_counts_per_mv
    ecg = StreamingFilter(design_bandpass(c.fs_hz, 0.5, 40.0)).process(mv)
    quality = QualityMonitor(c.fs_hz, c.gain_counts_per_mv, c.rails_counts, qs)
    flags = quality.process(quality.input_flags(counts, None), mv)
    detector = QRSDetector(c.fs_hz)
    detections = detector.process(ecg, flags == 0) + detector.finish()

    def filters():
        x = (counts - c.baseline_counts) / c.gain_counts_per_mv
        StreamingFilter(design_bandpass(c.fs_hz, 0.5, 40.0)).process(x)

    def quality_flags():
        q = QualityMonitor(c.fs_hz, c.gain_counts_per_mv, c.rails_counts, qs)
        q.process(q.input_flags(counts, None), mv)

    def detect():
        d = QRSDetector(c.fs_hz)
        d.process(ecg, flags == 0)
        d.finish()

    def windows():
        w = BeatWindower(
            c.fs_hz, c.window_before_s, c.window_after_s, c.window_points, keep_s=4000
        )
        w.append(ecg, flags)
        for det in detections:
            w.cut(det.sample)

    return {
        "stage_filters_s": _timed(filters, runs),
        "stage_quality_s": _timed(quality_flags, runs),
        "stage_detector_s": _timed(detect, runs),
        "stage_windows_s": _timed(windows, runs),
    }


def _neurokit_peaks(mv: np.ndarray, fs_hz: float) -> np.ndarray:
    import neurokit2 as nk

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, info = nk.ecg_peaks(mv, sampling_rate=int(fs_hz))
    return np.asarray(info["ECG_R_Peaks"], dtype=np.int64)


def _accuracy(records: dict, detect) -> tuple[dict, dict]:
    per, tp, fn, fp = {}, 0, 0, 0
    for name, record in records.items():
        found = detect(record)
        m = match_beats(record.annotations.beats().samples, found, record.fs_hz)
        per[name] = {"se": m.se, "ppv": m.ppv, "tp": m.tp, "fn": m.fn, "fp": m.fp}
        tp, fn, fp = tp + m.tp, fn + m.fn, fp + m.fp
    return per, {"se": tp / (tp + fn), "ppv": tp / (tp + fp), "fn": fn, "fp": fp}


def run(runs: int = 5) -> dict:
    """Time the chain and NeuroKit2; measure both detectors' Se and +P."""
    records = {name: read_record(MITDB / name) for name in RECORDS}
    record = records[TIMED_RECORD]
    config = ChainConfig.for_record(record)
    counts = record.counts
    duration_s = record.duration_s
    mv = record.millivolts()

    figures: dict[str, dict] = {}
    whole = _timed(lambda: _chain_in_chunks(config, counts, len(counts)), runs)
    chunked = _timed(lambda: _chain_in_chunks(config, counts, int(config.fs_hz)), runs)
    nk_times = _timed(lambda: _neurokit_peaks(mv, record.fs_hz), runs)
    figures["chain_whole_s"] = _figure(whole, "s")
    figures["chain_whole_x_realtime"] = _figure([duration_s / t for t in whole], "x")
    figures["chain_1s_chunks_s"] = _figure(chunked, "s")
    figures["chain_1s_chunks_x_realtime"] = _figure(
        [duration_s / t for t in chunked], "x"
    )
    for key, values in _stages(config, counts, runs).items():
        figures[key] = _figure(values, "s")
    figures["neurokit_s"] = _figure(nk_times, "s")
    figures["neurokit_x_realtime"] = _figure([duration_s / t for t in nk_times], "x")

    def ours(rec):
        beats = beats_from_record(rec, ChainConfig.for_record(rec))
        return np.array([b.sample for b in beats], dtype=np.int64)

    ours_per, ours_total = _accuracy(records, ours)
    nk_per, nk_total = _accuracy(
        records, lambda rec: _neurokit_peaks(rec.millivolts(), rec.fs_hz)
    )
    for who, total in (("chain", ours_total), ("neurokit", nk_total)):
        figures[f"{who}_se"] = _figure([total["se"]], "fraction")
        figures[f"{who}_ppv"] = _figure([total["ppv"]], "fraction")

    return {
        "name": "signal chain and QRS detector (MIT-BIH, NeuroKit2 baseline)",
        "command": ".venv/bin/python benchmarks/bench_chain.py",
        "figures": figures,
        "records": {"chain": ours_per, "neurokit": nk_per},
        "table_md": _table(figures, ours_per, nk_per, duration_s),
    }


def _table(figures: dict, ours: dict, nk: dict, duration_s: float) -> str:
    def med(key: str) -> float:
        return figures[key]["median"]

    lines = [
        f"Speed on MIT-BIH {TIMED_RECORD} ({duration_s / 60:.1f} min at 360 Hz), "
        "one core, median of runs:",
        "",
        "| what | seconds | x real time |",
        "|---|---:|---:|",
        f"| chain, whole record | {med('chain_whole_s'):.3f} | "
        f"{med('chain_whole_x_realtime'):.0f} |",
        f"| chain, 1 s chunks | {med('chain_1s_chunks_s'):.3f} | "
        f"{med('chain_1s_chunks_x_realtime'):.0f} |",
    ]
    for stage in ("filters", "quality", "detector", "windows"):
        t = med(f"stage_{stage}_s")
        lines.append(f"| stage: {stage} | {t:.3f} | {duration_s / t:.0f} |")
    lines.append(
        f"| NeuroKit2 ecg_peaks (offline) | {med('neurokit_s'):.3f} | "
        f"{med('neurokit_x_realtime'):.0f} |"
    )
    lines += [
        "",
        "QRS detection, 150 ms window, first 5 min not scored:",
        "",
        "| record | chain Se | chain +P | NeuroKit2 Se | NeuroKit2 +P |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in ours:
        a, b = ours[name], nk[name]
        lines.append(
            f"| {name} | {a['se']:.4f} | {a['ppv']:.4f} | {b['se']:.4f} | "
            f"{b['ppv']:.4f} |"
        )
    lines.append(
        f"| total | {med('chain_se'):.4f} | {med('chain_ppv'):.4f} | "
        f"{med('neurokit_se'):.4f} | {med('neurokit_ppv'):.4f} |"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()
    result = run(runs=args.runs)
    print(result["table_md"])
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
