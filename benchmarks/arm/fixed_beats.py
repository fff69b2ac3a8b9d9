"""A fixed set of beats of one record, their int8 scores, and a byte comparison.

The ARM check scores the same beat windows with the same model bundle on
x86_64 and on aarch64 and requires the scores to be equal byte for byte.
This script does each part, so both machines run the same code::

    fixed_beats.py bundle --out DIR            # train + convert once (x86_64)
    fixed_beats.py cut --data MITDB --record 106 --bundle DIR --out beats.npz
    fixed_beats.py score --bundle DIR --beats beats.npz \\
        --interpreter ai-edge-litert --out scores.bin
    fixed_beats.py compare a.bin b.bin --bundle DIR  # exit 1 unless byte-equal

Scores are written as raw little-endian float64 (``.bin``, 8 bytes a beat),
the model's dequantized int8 reconstructions beside them (``.recon.bin``),
and the scores as text (``.hex``: beat index, R-peak sample, the 8 bytes in
hex, the value), so a difference can be read without tools.

The beats are cut on x86_64 only and carried to the other machine in the
``.npz`` file: the comparison is about the interpreter and its int8
kernels, not the signal chain (the pseudo-terminal run compares the chain).
"""

from __future__ import annotations

import argparse
import logging
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

log = logging.getLogger(__name__)

#: Beats in the fixed set, and where in the record they start: after the
#: first 5 minutes, which the bundle is trained on.
BEATS_WANTED = 600
BEATS_REQUIRED = 500
SKIP_S = 300.0
TRAIN_MINUTES = 5


def make_bundle(out_dir: Path, record_path: Path) -> Path:
    """Train and convert a model bundle on ``record_path`` unless one is there.

    Parameters
    ----------
    out_dir : Path
        Bundle folder; reused when ``load_bundle`` accepts it.
    record_path : Path
        WFDB record (without extension) to train on, first 5 minutes, with
        ``beatguard train``'s default settings (about 2 minutes here).

    Returns
    -------
    Path
        ``out_dir``.

    Raises
    ------
    subprocess.CalledProcessError
        When ``beatguard train`` or ``beatguard convert`` fails.
    """
    from beatguard.device.bundle import load_bundle
    from beatguard.device.errors import BeatguardError

    if (out_dir / "model.tflite").exists():
        try:
            load_bundle(out_dir)
            log.info("reusing the bundle at %s", out_dir)
            return out_dir
        except BeatguardError as err:
            log.warning("rebuilding the bundle at %s: %s", out_dir, err)
    beatguard = str(Path(sys.executable).with_name("beatguard"))
    subprocess.run(
        [
            beatguard,
            "train",
            str(record_path),
            "--minutes",
            str(TRAIN_MINUTES),
            "--out",
            str(out_dir),
        ],
        check=True,
    )
    subprocess.run([beatguard, "convert", str(out_dir)], check=True)
    load_bundle(out_dir)
    return out_dir


def cut_beats(record_path: Path, bundle_dir: Path) -> dict[str, NDArray]:
    """The fixed beat set: beats cut by the device's chain for this bundle.

    Parameters
    ----------
    record_path : Path
        WFDB record (without extension).
    bundle_dir : Path
        Bundle whose chain settings (window, filters) are used.

    Returns
    -------
    dict[str, NDArray]
        ``sample`` (n,) int64 R-peak indices, ``window`` (n, points) float32,
        ``rr_before_s`` and ``rr_avg_s`` (n,) float64, ``emitted_at_sample``
        (n,) int64: the first ``BEATS_WANTED`` beats after ``SKIP_S``.
    """
    from beatguard.device.bundle import load_bundle
    from beatguard.device.chain import beats_from_record
    from beatguard.device.records import read_record

    record = read_record(record_path)
    beats = beats_from_record(record, load_bundle(bundle_dir).chain_config())
    skip = int(SKIP_S * record.fs_hz)
    chosen = [b for b in beats if b.sample >= skip][:BEATS_WANTED]
    return {
        "sample": np.array([b.sample for b in chosen], np.int64),
        "window": np.stack([np.asarray(b.window, np.float32) for b in chosen]),
        "rr_before_s": np.array([b.rr_before_s for b in chosen], np.float64),
        "rr_avg_s": np.array([b.rr_avg_s for b in chosen], np.float64),
        "emitted_at_sample": np.array([b.emitted_at_sample for b in chosen], np.int64),
    }


def load_beats(path: Path) -> list:
    """The beats saved by ``cut`` (an ``.npz``), as chain ``Beat`` objects."""
    from beatguard.device.types import Beat

    with np.load(path) as saved:
        return [
            Beat(
                sample=int(saved["sample"][i]),
                window=saved["window"][i],
                rr_before_s=float(saved["rr_before_s"][i]),
                rr_avg_s=float(saved["rr_avg_s"][i]),
                emitted_at_sample=int(saved["emitted_at_sample"][i]),
            )
            for i in range(len(saved["sample"]))
        ]


def score_beats(bundle_dir: Path, beats: list, interpreter: str) -> tuple:
    """Scores and int8 reconstructions of ``beats`` by the bundle's model.

    Parameters
    ----------
    bundle_dir : Path
    beats : list of Beat
    interpreter : str
        ``"ai-edge-litert"``, ``"tflite-runtime"`` or ``"auto"``.

    Returns
    -------
    scores : NDArray[np.float64], shape (n,)
        What the device compares with the threshold.
    reconstructions : NDArray[np.float64], shape (n, points, channels)
        The model's dequantized int8 outputs, to tell an interpreter
        difference from a difference in the float arithmetic after it.
    """
    from beatguard.device.bundle import beats_to_inputs
    from beatguard.device.scorer import Scorer

    with Scorer(bundle_dir, interpreter=interpreter) as scorer:
        scores = scorer.score_beats(beats)
        recon = scorer.reconstruct(beats_to_inputs(beats, scorer.bundle.prematurity))
    return np.asarray(scores, np.float64), recon


def write_scores(
    out: Path, scores: NDArray, reconstructions: NDArray, r_samples
) -> None:
    """Write raw ``<f8`` scores to ``out``, reconstructions and text beside it."""
    raw = np.ascontiguousarray(scores, dtype="<f8")
    out.write_bytes(raw.tobytes())
    recon = np.ascontiguousarray(reconstructions, dtype="<f8")
    out.with_suffix(".recon.bin").write_bytes(recon.tobytes())
    lines = [
        f"{i} {int(r)} {raw[i : i + 1].tobytes().hex()} {float(raw[i])!r}"
        for i, r in enumerate(r_samples)
    ]
    out.with_suffix(".hex").write_text("\n".join(lines) + "\n")


def compare_scores(a_path: Path, b_path: Path) -> tuple[int, list[int]]:
    """Compare two ``.bin`` score files beat by beat, byte for byte.

    Returns
    -------
    n_beats : int
        Beats in the files.
    differing : list[int]
        Indices of beats whose 8 bytes differ (empty when byte-equal).

    Raises
    ------
    ValueError
        When the files do not hold whole float64 values or differ in length.
    """
    a, b = a_path.read_bytes(), b_path.read_bytes()
    if len(a) % 8 or len(b) % 8:
        raise ValueError(f"{a_path} or {b_path}: size is not a multiple of 8 bytes")
    if len(a) != len(b):
        raise ValueError(
            f"{a_path} holds {len(a) // 8} scores but {b_path} holds {len(b) // 8}"
        )
    n = len(a) // 8
    differing = [i for i in range(n) if a[8 * i : 8 * i + 8] != b[8 * i : 8 * i + 8]]
    return n, differing


def _cmd_bundle(args: argparse.Namespace) -> int:
    make_bundle(args.out, args.record_path)
    return 0


def _cmd_cut(args: argparse.Namespace) -> int:
    beats = cut_beats(args.data / args.record, args.bundle)
    n = len(beats["sample"])
    if n < BEATS_REQUIRED:
        log.error(
            "record %s gave %d beats after %.0f s; the check needs %d",
            args.record,
            n,
            SKIP_S,
            BEATS_REQUIRED,
        )
        return 1
    np.savez(args.out, **beats)
    log.info(
        "%d beats of record %s (samples %d to %d), windows of %d points -> %s",
        n,
        args.record,
        beats["sample"][0],
        beats["sample"][-1],
        beats["window"].shape[1],
        args.out,
    )
    return 0


def _cmd_score(args: argparse.Namespace) -> int:
    beats = load_beats(args.beats)
    scores, recon = score_beats(args.bundle, beats, args.interpreter)
    write_scores(args.out, scores, recon, [b.sample for b in beats])
    log.info(
        "%s on %s: %d scores, median %.6g, %d above threshold -> %s",
        args.interpreter,
        platform.machine(),
        len(scores),
        float(np.median(scores)),
        int(np.sum(scores > _threshold(args.bundle))),
        args.out,
    )
    return 0


def _threshold(bundle_dir: Path) -> float:
    from beatguard.device.bundle import load_bundle

    return load_bundle(bundle_dir).threshold


def int8_difference(
    a_path: Path, b_path: Path, output_scale: float, threshold: float
) -> dict[str, float]:
    """How far apart two machines' int8 outputs and labels are.

    Parameters
    ----------
    a_path, b_path : Path
        ``.bin`` score files with their ``.recon.bin`` beside them.
    output_scale : float
        The model output's quantization scale (one int8 step, LSB).
    threshold : float
        The bundle's anomaly threshold.

    Returns
    -------
    dict
        ``values_differing`` (int8 outputs that differ), ``values`` (all of
        them), ``max_lsb`` (largest difference in int8 steps),
        ``label_flips`` (beats anomalous on one machine only),
        ``max_rel_score_diff``.
    """
    recon_a = np.frombuffer(a_path.with_suffix(".recon.bin").read_bytes(), "<f8")
    recon_b = np.frombuffer(b_path.with_suffix(".recon.bin").read_bytes(), "<f8")
    lsb = np.rint(np.abs(recon_a - recon_b) / output_scale)
    scores_a = np.frombuffer(a_path.read_bytes(), "<f8")
    scores_b = np.frombuffer(b_path.read_bytes(), "<f8")
    rel = np.abs(scores_a - scores_b) / np.maximum(np.abs(scores_a), 1e-300)
    return {
        "values_differing": int(np.count_nonzero(lsb)),
        "values": int(lsb.size),
        "max_lsb": int(lsb.max(initial=0)),
        "label_flips": int(np.sum((scores_a > threshold) != (scores_b > threshold))),
        "max_rel_score_diff": float(rel.max(initial=0.0)),
    }


def _int8_verdict(
    args: argparse.Namespace, n_differing: int, n: int, pair: str
) -> tuple[str, int]:
    from beatguard.device.bundle import load_bundle

    bundle = load_bundle(args.bundle)
    diff = int8_difference(
        args.a, args.b, bundle.output_quantization.scale, bundle.threshold
    )
    verdict = (
        f"NOT BYTE-EQUAL: {n_differing} of {n} scores differ, {pair}; "
        f"{diff['values_differing']} of {diff['values']} int8 outputs differ, "
        f"by at most {diff['max_lsb']} LSB; {diff['label_flips']} labels "
        f"differ; largest relative score difference "
        f"{diff['max_rel_score_diff']:.2g}"
    )
    within = (
        args.tolerate_lsb > 0
        and diff["max_lsb"] <= args.tolerate_lsb
        and diff["label_flips"] == 0
    )
    if within:
        verdict += f" (tolerated: at most {args.tolerate_lsb} LSB, same labels)"
    return verdict, 0 if within else 1


def _cmd_compare(args: argparse.Namespace) -> int:
    n, differing = compare_scores(args.a, args.b)
    pair = f"{args.a.name} vs {args.b.name}"
    if not differing:
        verdict = f"BYTE-EQUAL: {n} of {n} scores, {pair}"
        status = 0
    elif args.bundle is None:
        verdict = f"NOT BYTE-EQUAL: {len(differing)} of {n} scores differ, {pair}"
        status = 1
    else:
        verdict, status = _int8_verdict(args, len(differing), n, pair)
    (log.info if status == 0 else log.error)("%s", verdict)
    if args.verdicts:
        with args.verdicts.open("a") as fh:
            fh.write(verdict + "\n")
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("bundle", help="train and convert the bundle (x86_64)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--record-path", type=Path, required=True)
    p.set_defaults(func=_cmd_bundle)
    p = sub.add_parser("cut", help="cut the fixed beat set with the chain")
    p.add_argument("--data", type=Path, required=True, help="folder of WFDB records")
    p.add_argument("--record", default="106")
    p.add_argument("--bundle", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=_cmd_cut)
    p = sub.add_parser("score", help="score the fixed beats, write raw bytes")
    p.add_argument("--bundle", type=Path, required=True)
    p.add_argument("--beats", type=Path, required=True)
    p.add_argument("--interpreter", default="ai-edge-litert")
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=_cmd_score)
    p = sub.add_parser("compare", help="exit 1 unless two score files are equal")
    p.add_argument("a", type=Path)
    p.add_argument("b", type=Path)
    p.add_argument(
        "--bundle", type=Path, help="bundle, to measure a difference in int8 steps"
    )
    p.add_argument(
        "--tolerate-lsb",
        type=int,
        default=0,
        help="exit 0 when int8 outputs differ by at most this many steps and no "
        "label differs (the difference is still reported); default 0: bytes",
    )
    p.add_argument("--verdicts", type=Path, help="append the one-line result here")
    p.set_defaults(func=_cmd_compare)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format=f"[{platform.machine()}] %(message)s"
    )
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
