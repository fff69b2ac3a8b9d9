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
the scores as text (``.hex``: beat index, R-peak sample, the 8 bytes in
hex, the value), so a difference can be read without tools, and what ran
(``.kernels.json``: machine, interpreter and its version, numpy, and the
ops its default delegate, XNNPACK, took over) with every op's int8 outputs
under the interpreter's built-in kernels (``.ops.npz``).

Like is compared with like: two score files are compared only when the same
interpreter version ran them with the same ops delegated; otherwise the
comparison fails and says what differs. When the bytes differ, the verdict
names the first op (in execution order) whose int8 outputs differ while
every op before it agrees, and by how many int8 steps. There is no
tolerance: any difference fails.

The beats are cut on x86_64 only and carried to the other machine in the
``.npz`` file: the comparison is about the interpreter and its int8
kernels, not the signal chain (the pseudo-terminal run compares the chain).
"""

from __future__ import annotations

import argparse
import json
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
        recon = scorer.reconstruct(beats_to_inputs(beats))
    return np.asarray(scores, np.float64), recon


def kernel_record(bundle_dir: Path, interpreter: str) -> dict:
    """Which interpreter, version and kernels score on this machine.

    Parameters
    ----------
    bundle_dir : Path
    interpreter : str
        As for :class:`~beatguard.device.scorer.Scorer`.

    Returns
    -------
    dict
        ``machine``, ``interpreter``, ``version`` (of the interpreter's
        package), ``numpy``, and ``delegated_ops``: the built-in ops, in
        execution order as ``"index NAME"``, that the interpreter's default
        delegate replaced when the model was opened with default options
        (the options the device's ``Scorer`` uses).
    """
    from beatguard.device.bundle import load_bundle
    from beatguard.device.scorer import interpreter_class

    name, cls = interpreter_class(interpreter)
    model = str(load_bundle(bundle_dir).model_path)
    interp = cls(model_path=model, num_threads=1)
    interp.allocate_tensors()
    # _get_ops_details is the interpreters' own (underscored) listing of
    # nodes; both ai-edge-litert and tflite-runtime provide it.
    ops = interp._get_ops_details()
    delegate_outputs = {
        int(t) for op in ops if op["op_name"] == "DELEGATE" for t in op["outputs"]
    }
    delegated = [
        f"{op['index']} {op['op_name']}"
        for op in ops
        if op["op_name"] != "DELEGATE"
        and set(int(t) for t in op["outputs"]) <= delegate_outputs
    ]
    return {
        "machine": platform.machine(),
        "interpreter": name,
        "version": _package_version(name),
        "numpy": np.__version__,
        "delegated_ops": delegated,
    }


def _package_version(name: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "unknown"


def op_outputs(
    bundle_dir: Path, beats: list, interpreter: str
) -> dict[str, NDArray[np.int8]]:
    """Every op's int8 outputs for each beat, under the built-in kernels.

    The model is opened without the default delegate and with every tensor
    preserved, so each op's output can be read after ``invoke()``. For ops
    that the default delegate takes over on the scoring path, these are the
    built-in kernel's outputs, not the delegate's (the caller says so).

    Parameters
    ----------
    bundle_dir : Path
    beats : list of Beat
    interpreter : str
        As for :class:`~beatguard.device.scorer.Scorer`.

    Returns
    -------
    dict[str, NDArray]
        Keyed ``"index NAME output-tensor"`` in execution order; each value
        has shape (n_beats, *tensor shape) and the tensor's dtype.
    """
    from beatguard.device.bundle import beats_to_inputs, load_bundle

    bundle = load_bundle(bundle_dir)
    quantized = bundle.input_quantization.quantize(beats_to_inputs(beats))
    return model_op_outputs(bundle.model_path, quantized, interpreter)


def model_op_outputs(
    model_path: Path, quantized: NDArray[np.int8], interpreter: str
) -> dict[str, NDArray[np.int8]]:
    """Every op's outputs for each int8 input, under the built-in kernels.

    Parameters
    ----------
    model_path : Path
        A ``.tflite`` model.
    quantized : NDArray[np.int8], shape (n_beats, points, channels)
        Its inputs, already quantized.
    interpreter : str
        As for :class:`~beatguard.device.scorer.Scorer`.

    Returns
    -------
    dict[str, NDArray]
        As :func:`op_outputs`.
    """
    from beatguard.device.scorer import interpreter_class

    _, cls = interpreter_class(interpreter)
    resolver = sys.modules[cls.__module__].OpResolverType
    interp = cls(
        model_path=str(model_path),
        num_threads=1,
        experimental_op_resolver_type=resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        experimental_preserve_all_tensors=True,
    )
    interp.allocate_tensors()
    ops = interp._get_ops_details()
    keys = [
        (f"{op['index']} {op['op_name']} {int(t)}", int(t))
        for op in ops
        for t in op["outputs"]
    ]
    in_index = interp.get_input_details()[0]["index"]
    per_op: dict[str, list] = {key: [] for key, _ in keys}
    for i in range(quantized.shape[0]):
        interp.reset_all_variables()
        interp.set_tensor(in_index, quantized[i : i + 1])
        interp.invoke()
        for key, tensor in keys:
            per_op[key].append(interp.get_tensor(tensor).copy())
    return {key: np.stack(values) for key, values in per_op.items()}


def first_differing_op(
    ops_a: dict[str, NDArray], ops_b: dict[str, NDArray]
) -> dict | None:
    """The first op, in execution order, whose outputs differ.

    Parameters
    ----------
    ops_a, ops_b : dict[str, NDArray]
        :func:`op_outputs` of the same model and beats on two machines.

    Returns
    -------
    dict or None
        ``op`` (``"index NAME output-tensor"``), ``values_differing``,
        ``values``, ``beats_differing``, ``max_steps`` (largest difference in
        the tensor's integer steps); None when every op's outputs are equal.

    Raises
    ------
    ValueError
        When the two dumps do not list the same ops.
    """
    if list(ops_a) != list(ops_b):
        raise ValueError(f"different op lists: {list(ops_a)} vs {list(ops_b)}")
    for key in ops_a:
        a = ops_a[key].astype(np.int64)
        b = ops_b[key].astype(np.int64)
        if a.shape != b.shape:
            raise ValueError(f"op {key}: shapes {a.shape} and {b.shape}")
        diff = np.abs(a - b)
        if diff.any():
            return {
                "op": key,
                "values_differing": int(np.count_nonzero(diff)),
                "values": int(diff.size),
                "beats_differing": int(
                    np.count_nonzero(diff.reshape(diff.shape[0], -1).any(axis=1))
                ),
                "max_steps": int(diff.max()),
            }
    return None


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
    kernels = kernel_record(args.bundle, args.interpreter)
    args.out.with_suffix(".kernels.json").write_text(json.dumps(kernels, indent=1))
    np.savez(
        args.out.with_suffix(".ops.npz"),
        **op_outputs(args.bundle, beats, args.interpreter),
    )
    log.info(
        "%s %s on %s (delegated: %s): %d scores, median %.6g, %d above threshold -> %s",
        kernels["interpreter"],
        kernels["version"],
        platform.machine(),
        ", ".join(kernels["delegated_ops"]) or "none",
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


def _kernels(path: Path) -> dict | None:
    meta = path.with_suffix(".kernels.json")
    return json.loads(meta.read_text()) if meta.exists() else None


def like_for_like(a: dict | None, b: dict | None) -> list[str]:
    """Why two score files do not come from the same interpreter and kernels.

    Parameters
    ----------
    a, b : dict or None
        :func:`kernel_record` of each side (None when it was not written).

    Returns
    -------
    list[str]
        One line per difference in interpreter, its version, or the ops its
        default delegate took over; empty when the two sides match.
    """
    if a is None or b is None:
        return ["a side has no .kernels.json: cannot tell what ran it"]
    problems = []
    for field in ("interpreter", "version", "delegated_ops"):
        if a[field] != b[field]:
            problems.append(
                f"{field}: {a[field]} on {a['machine']}, {b[field]} on {b['machine']}"
            )
    return problems


def _describe(kernels: dict | None) -> str:
    if kernels is None:
        return "kernels unknown"
    delegated = ", ".join(k.split(" ", 1)[1] for k in kernels["delegated_ops"])
    return (
        f"{kernels['interpreter']} {kernels['version']}, numpy "
        f"{kernels['numpy']}, default delegate took: {delegated or 'no op'}"
    )


def _difference_verdict(args: argparse.Namespace, n_differing: int, n: int) -> str:
    """The plain account of a byte difference: int8 outputs, labels, op."""
    from beatguard.device.bundle import load_bundle

    bundle = load_bundle(args.bundle)
    diff = int8_difference(
        args.a, args.b, bundle.output_quantization.scale, bundle.threshold
    )
    verdict = (
        f"{n_differing} of {n} scores differ; {diff['values_differing']} of "
        f"{diff['values']} int8 outputs differ, by at most {diff['max_lsb']} LSB; "
        f"{diff['label_flips']} labels differ; largest relative score difference "
        f"{diff['max_rel_score_diff']:.2g}"
    )
    recon_a, recon_b = (p.with_suffix(".recon.bin") for p in (args.a, args.b))
    if recon_a.read_bytes() == recon_b.read_bytes():
        kernels_a, kernels_b = _kernels(args.a), _kernels(args.b)
        numpy_a = kernels_a["numpy"] if kernels_a else "unknown"
        numpy_b = kernels_b["numpy"] if kernels_b else "unknown"
        return verdict + (
            "; the dequantized int8 reconstructions are byte-equal, so the "
            "difference is in the float arithmetic after the interpreter "
            f"(numpy {numpy_a} and {numpy_b}; benchmarks/arm/float_log.py "
            "tells which function)"
        )
    ops_a, ops_b = args.a.with_suffix(".ops.npz"), args.b.with_suffix(".ops.npz")
    if ops_a.exists() and ops_b.exists():
        with np.load(ops_a) as za, np.load(ops_b) as zb:
            first = first_differing_op(dict(za), dict(zb))
        kernels = _kernels(args.a) or {"delegated_ops": []}
        if first is None:
            verdict += (
                "; under the built-in kernels every op agrees, so the difference "
                "is in a delegated op"
            )
        else:
            index_name = first["op"].rsplit(" ", 1)[0]
            path = (
                "delegated on the scoring path; measured with the built-in kernel"
                if index_name in kernels["delegated_ops"]
                else "same kernel as the scoring path"
            )
            verdict += (
                f"; first op whose int8 outputs differ, all ops before it "
                f"equal: {index_name} ({path}): {first['values_differing']} of "
                f"{first['values']} values in {first['beats_differing']} beats, "
                f"by at most {first['max_steps']} LSB of its quantized type"
            )
    return verdict


def _cmd_compare(args: argparse.Namespace) -> int:
    n, differing = compare_scores(args.a, args.b)
    pair = f"{args.a.name} vs {args.b.name}"
    kernels_a, kernels_b = _kernels(args.a), _kernels(args.b)
    unlike = like_for_like(kernels_a, kernels_b)
    status = 1 if differing or unlike else 0
    if not differing:
        verdict = f"BYTE-EQUAL: {n} of {n} scores, {pair} ({_describe(kernels_a)})"
    else:
        verdict = f"NOT BYTE-EQUAL: {pair} ({_describe(kernels_a)}): " + (
            _difference_verdict(args, len(differing), n)
            if args.bundle is not None
            else f"{len(differing)} of {n} scores differ"
        )
    if unlike:
        verdict += "; NOT LIKE FOR LIKE: " + "; ".join(unlike)
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
    p.add_argument("--verdicts", type=Path, help="append the one-line result here")
    p.set_defaults(func=_cmd_compare)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format=f"[{platform.machine()}] %(message)s"
    )
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
