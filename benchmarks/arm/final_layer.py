"""Why the last int8 layer differs between x86_64 and aarch64; a model that does not.

With ``tflite-runtime`` 2.14 a few int8 outputs of the autoencoder's last op,
the per-step FULLY_CONNECTED after the decoder LSTM, differ by one step
between x86_64 and aarch64. This script shows why, from the arithmetic, and
tries a model formulation that removes the difference::

    final_layer.py explain --model model.tflite a.ops.npz b.ops.npz
    final_layer.py variants --bundle DIR --beats beats.npz --out VARIANTS  # x86_64
    final_layer.py run --variants VARIANTS --interpreter tflite-runtime --out x.npz
    final_layer.py compare x86.npz aarch64.npz
    final_layer.py explain --model VARIANTS/no-offset/model.tflite \\
        x86.no-offset.ops.npz aarch64.no-offset.ops.npz

``explain`` recomputes the last FULLY_CONNECTED op from its int8 input (read
from the op dumps that ``run`` and ``fixed_beats.py score`` write) with exact integer
arithmetic under two rounding rules, and says which rule each machine's
outputs follow:

- *ties away from zero*: TFLite's reference ``MultiplyByQuantizedMultiplier``
  (a rounding doubling high multiply, then a rounding right shift whose exact
  halves go away from zero);
- *ties upward*: the same two steps with exact halves rounded toward plus
  infinity, as ruy's x86 AVX2 kernels do.

The two rules give the same integer for every accumulator except a negative
one that lands exactly on a half of the final shift. So an output that is
never negative before its zero point is added cannot differ.

``variants`` converts, from the bundle's training run and with the
project's own converter, two models: *no-offset*, the trained weights as they
are, and *output-offset*, what ``beatguard convert`` makes: the same weights
with the constant of ``convert.tflite.output_offset`` added to the last
layer's bias, so that every reconstruction of the representative beats is
positive and the calibrated output range starts at 0 (output zero point
-128). A negative accumulator then lies below the int8 range and is clamped
to -128 whichever way its tie was rounded; the scorer subtracts the offset
after dequantizing. ``run`` scores each variant's int8 inputs, made once on
x86_64, on the machine it runs on (default options, as the device does, and
every op's outputs under the built-in kernels for ``explain``), and
``compare`` counts differing int8 outputs.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import math
import platform
import sys
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

log = logging.getLogger(__name__)

#: The variants, in the order they are reported.
NO_OFFSET = "no-offset"
OUTPUT_OFFSET = "output-offset"
#: What the project's converter uses as representative beats (at most).
REPRESENTATIVE_BEATS = 400

# Integer arithmetic of TFLite's int8 output stage --------------------------


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite's ``QuantizeMultiplier``: ``real = m0 * 2**(shift - 31)``.

    Returns
    -------
    (m0, shift) : tuple[int, int]
        ``m0`` in ``[2**30, 2**31)`` (or 0), ``shift`` the power of two.
    """
    if real == 0.0:
        return 0, 0
    fraction, shift = math.frexp(real)
    # TfLiteRound is std::round: halves away from zero.
    m0 = int(math.floor(abs(fraction) * (1 << 31) + 0.5)) * (1 if fraction > 0 else -1)
    if m0 == 1 << 31:
        m0 //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return m0, shift


def _div_trunc(a: NDArray[np.int64], b: int) -> NDArray[np.int64]:
    """Integer division rounding toward zero, as C++ does."""
    q = np.abs(a) // b
    return np.where(a < 0, -q, q)


def requantize(
    acc: NDArray[np.int64], m0: int, shift: int, rule: str
) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
    """``acc * m0 * 2**(shift - 31)`` rounded as one kernel family does.

    Parameters
    ----------
    acc : NDArray[np.int64]
        Accumulators (int32 range) of one output channel.
    m0, shift : int
        From :func:`quantize_multiplier`.
    rule : str
        ``"away"`` (TFLite reference: exact halves away from zero at both
        steps) or ``"up"`` (ruy x86: exact halves toward plus infinity).

    Returns
    -------
    values : NDArray[np.int64]
        The rounded values, before the output zero point is added.
    ties : NDArray[np.bool_]
        Where the final right shift met an exact half.
    """
    left, right = max(shift, 0), max(-shift, 0)
    product = (acc << left) * m0
    if rule == "away":
        nudge = np.where(product >= 0, 1 << 30, 1 - (1 << 30))
        high = _div_trunc(product + nudge, 1 << 31)
    elif rule == "up":
        high = (product + (1 << 30)) >> 31
    else:
        raise ValueError(f"unknown rounding rule {rule!r}")
    if right == 0:
        return high, np.zeros(high.shape, bool)
    mask = (1 << right) - 1
    remainder = high & mask
    ties = remainder == (1 << (right - 1))
    if rule == "away":
        threshold = (mask >> 1) + (high < 0)
        values = (high >> right) + (remainder > threshold)
    else:
        values = (high + (1 << (right - 1))) >> right
    return values, ties


# Reading the model --------------------------------------------------------


def interpreter_module(name: str):
    """The module of the TFLite ``Interpreter`` the device would use.

    Parameters
    ----------
    name : str
        As for :func:`beatguard.device.scorer.interpreter_class`.

    Returns
    -------
    (name, module)
        The interpreter's package name and the module holding its
        ``Interpreter`` and ``OpResolverType``.
    """
    from beatguard.device.scorer import interpreter_class

    found, cls = interpreter_class(name)
    return found, sys.modules[cls.__module__]


def last_dense_params(model_path: Path) -> dict:
    """The last FULLY_CONNECTED op of a model, with everything to recompute it.

    Returns
    -------
    dict
        ``key`` (``"index FULLY_CONNECTED output-tensor"``, as in the op
        dumps), ``input_tensor``, ``weights`` (out, in) int64, ``bias`` (out,)
        int64, ``input_scale``, ``input_zero_point``, ``weight_scales``
        (out,), ``output_scale``, ``output_zero_point``.
    """
    _, module = interpreter_module("auto")
    builtin_only = module.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    interp = module.Interpreter(
        model_path=str(model_path),
        experimental_op_resolver_type=builtin_only,
        experimental_preserve_all_tensors=True,
    )
    interp.allocate_tensors()
    details = {t["index"]: t for t in interp.get_tensor_details()}
    dense = [
        op for op in interp._get_ops_details() if op["op_name"] == "FULLY_CONNECTED"
    ]
    if not dense:
        raise ValueError(f"{model_path}: no FULLY_CONNECTED op")
    op = dense[-1]
    x, w, b = (int(t) for t in op["inputs"][:3])
    out = int(op["outputs"][0])

    def params(index: int) -> tuple[NDArray, NDArray]:
        q = details[index]["quantization_parameters"]
        return np.asarray(q["scales"], np.float32), np.asarray(q["zero_points"])

    in_s, in_z = params(x)
    w_s, _ = params(w)
    out_s, out_z = params(out)
    weights = interp.get_tensor(w).astype(np.int64)
    return {
        "key": f"{op['index']} FULLY_CONNECTED {out}",
        "input_tensor": x,
        "weights": weights,
        "bias": interp.get_tensor(b).astype(np.int64),
        "input_scale": float(in_s[0]),
        "input_zero_point": int(in_z[0]),
        "weight_scales": np.broadcast_to(w_s, (weights.shape[0],)).astype(np.float32),
        "output_scale": float(out_s[0]),
        "output_zero_point": int(out_z[0]),
    }


def multipliers(p: dict) -> list[tuple[int, int]]:
    """Per output channel ``(m0, shift)`` as TFLite computes them.

    The effective scale is ``input_scale * weight_scale / output_scale`` in
    double precision from the float32 scales (per-channel weights).
    """
    return [
        quantize_multiplier(
            float(
                np.float64(p["input_scale"])
                * np.float64(s)
                / np.float64(p["output_scale"])
            )
        )
        for s in p["weight_scales"]
    ]


def recompute(
    p: dict, x: NDArray[np.integer], rule: str
) -> tuple[NDArray, NDArray, NDArray]:
    """The op's int8 outputs and exact-half flags from its int8 input.

    Parameters
    ----------
    p : dict
        :func:`last_dense_params`.
    x : NDArray[np.integer], shape (..., in)
        The op's input, as the op dump holds it.
    rule : str
        As for :func:`requantize`.

    Returns
    -------
    outputs : NDArray[np.int64], shape (..., out)
        Clamped to the int8 range (the op has no fused activation).
    ties : NDArray[np.bool_], shape (..., out)
        Exact halves of the final shift, and ``negative`` below.
    negative : NDArray[np.bool_], shape (..., out)
        Where the accumulator is negative.
    """
    acc = (x.astype(np.int64) - p["input_zero_point"]) @ p["weights"].T + p["bias"]
    outputs = np.empty(acc.shape, np.int64)
    ties = np.empty(acc.shape, bool)
    for channel, (m0, shift) in enumerate(multipliers(p)):
        values, tie = requantize(acc[..., channel], m0, shift, rule)
        outputs[..., channel] = np.clip(values + p["output_zero_point"], -128, 127)
        ties[..., channel] = tie
    return outputs, ties, acc < 0


def explain(model_path: Path, dumps: list[Path]) -> list[str]:
    """Which rounding rule each machine's last-layer outputs follow.

    Parameters
    ----------
    model_path : Path
        The ``model.tflite`` the dumps were made with.
    dumps : list of Path
        ``.ops.npz`` files of :func:`fixed_beats.op_outputs`, one a machine.

    Returns
    -------
    list[str]
        The findings, one a line.
    """
    p = last_dense_params(model_path)
    lines = [
        f"last layer {p['key']}: weights {tuple(p['weights'].shape)}, per-channel "
        f"multipliers (m0, shift) {multipliers(p)}, output zero point "
        f"{p['output_zero_point']}"
    ]
    actual = {}
    for path in dumps:
        with np.load(path) as dump:
            keys = list(dump)
            x_key = next(
                (k for k in keys if int(k.rsplit(" ", 1)[1]) == p["input_tensor"]), None
            )
            if x_key is None or p["key"] not in keys:
                raise ValueError(f"{path}: no dump of {p['key']} and its input")
            x, y = dump[x_key], dump[p["key"]].astype(np.int64)
        actual[path] = y
        for rule, name in (("away", "ties away from zero"), ("up", "ties upward")):
            mine, ties, negative = recompute(p, x, rule)
            lines.append(
                f"{path.name}: {np.count_nonzero(mine == y)} of {y.size} outputs "
                f"equal the {name} rule's"
            )
        lines.append(
            f"{path.name}: exact halves of the final shift: "
            f"{np.count_nonzero(ties & negative)} with a negative accumulator, "
            f"{np.count_nonzero(ties & ~negative)} with a positive one"
        )
    if len(dumps) == 2:
        a, b = (actual[d] for d in dumps)
        with np.load(dumps[0]) as dump:
            x = dump[
                next(k for k in dump if int(k.rsplit(" ", 1)[1]) == p["input_tensor"])
            ]
        _, ties, negative = recompute(p, x, "away")
        differ = a != b
        lines.append(
            f"{np.count_nonzero(differ)} outputs differ between the two; "
            f"{np.count_nonzero(differ & ties & negative)} of them are exact halves "
            "with a negative accumulator"
        )
    return lines


# Variants (x86_64, TensorFlow) -------------------------------------------


def _representative(fit_inputs: NDArray[np.float32]) -> NDArray[np.float32]:
    """The converter's representative beats: at most 400, spread evenly."""
    if fit_inputs.shape[0] <= REPRESENTATIVE_BEATS:
        return fit_inputs
    index = np.linspace(0, fit_inputs.shape[0] - 1, REPRESENTATIVE_BEATS)
    return fit_inputs[index.round().astype(int)]


def _input_quantization(model_bytes: bytes) -> tuple[float, int]:
    _, module = interpreter_module("auto")
    interp = module.Interpreter(model_content=model_bytes)
    detail = interp.get_input_details()[0]
    return tuple(detail["quantization"])


def _output_quantization(model_bytes: bytes) -> tuple[float, int]:
    _, module = interpreter_module("auto")
    interp = module.Interpreter(model_content=model_bytes)
    detail = interp.get_output_details()[0]
    return tuple(detail["quantization"])


def _quantize(
    x: NDArray[np.floating], scale: float, zero_point: int
) -> NDArray[np.int8]:
    q = np.round(np.asarray(x, np.float64) / scale) + zero_point
    return np.clip(q, -128, 127).astype(np.int8)


def _sibling(name: str):
    """Import a script of this folder (``fixed_beats``) as a module."""
    spec = importlib.util.spec_from_file_location(
        f"arm_{name}", Path(__file__).resolve().parent / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _same_as_bundle(bundle_dir: Path, flatbuffer: bytes, offset: float) -> bool:
    """Whether a variant has the bundle's output quantization and offset.

    The bytes are not compared: TFLite keeps the Keras layer names, which
    get a suffix when a second model is built in the same process.
    """
    meta = json.loads((bundle_dir / "model.json").read_text())["output"]
    scale, zero_point = _output_quantization(flatbuffer)
    return bool(
        np.float32(scale) == np.float32(meta["scale"])
        and int(zero_point) == int(meta["zero_point"])
        and float(offset) == float(meta.get("offset", 0.0))
    )


def make_variants(bundle_dir: Path, beats_path: Path, out_dir: Path) -> dict:
    """Convert the no-offset and the output-offset models of a bundle.

    Parameters
    ----------
    bundle_dir : Path
        A model bundle that is also its training run (``beatguard train``
        then ``beatguard convert`` into the same folder).
    beats_path : Path
        The fixed beats of ``fixed_beats.py cut``.
    out_dir : Path
        Gets ``<variant>/model.tflite``, ``inputs.npz`` (each variant's int8
        inputs of the fixed beats) and ``variants.json`` (offsets,
        quantization, and how far each variant is from the float model).

    Returns
    -------
    dict
        What ``variants.json`` holds.
    """
    from beatguard.convert.tflite import (
        convert_int8,
        output_offset,
        with_output_offset,
    )
    from beatguard.device.bundle import beats_to_inputs
    from beatguard.train.run import load_run

    fixed_beats = _sibling("fixed_beats")

    run = load_run(bundle_dir)
    rep = _representative(run.fit_inputs)
    offset = output_offset(run.model, rep)
    models = {
        NO_OFFSET: (run.model, 0.0),
        OUTPUT_OFFSET: (with_output_offset(run.model, run.spec, offset), offset),
    }
    inputs = beats_to_inputs(fixed_beats.load_beats(beats_path))
    float_out = np.asarray(run.model.predict(inputs, verbose=0), np.float64)
    out_dir.mkdir(parents=True, exist_ok=True)
    quantized, summary = {}, {"beats": int(inputs.shape[0]), "variants": {}}
    for name, (model, shift) in models.items():
        flatbuffer = convert_int8(model, run.spec, rep)
        (out_dir / name).mkdir(exist_ok=True)
        (out_dir / name / "model.tflite").write_bytes(flatbuffer)
        in_scale, in_zero = _input_quantization(flatbuffer)
        out_scale, out_zero = _output_quantization(flatbuffer)
        quantized[name] = _quantize(inputs, in_scale, in_zero)
        summary["variants"][name] = {
            "offset": float(shift),
            "input_quantization": [float(in_scale), int(in_zero)],
            "output_quantization": [float(out_scale), int(out_zero)],
            "same_as_bundle": _same_as_bundle(bundle_dir, flatbuffer, shift),
        }
    np.savez(out_dir / "inputs.npz", **quantized)
    np.save(out_dir / "float_outputs.npy", float_out)
    (out_dir / "variants.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


# Running and comparing (any machine) -------------------------------------


def run_variants(variants_dir: Path, interpreter: str) -> tuple[dict, dict]:
    """Every variant's int8 outputs of its inputs, on this machine.

    The model is opened as the device's scorer opens it (default options,
    one thread), the LSTM state reset before each beat.

    Returns
    -------
    outputs : dict[str, NDArray[np.int8]]
        Per variant, shape (beats, 1, points, channels).
    meta : dict
        ``machine``, ``interpreter``, ``version``.
    """
    from importlib import metadata

    name, module = interpreter_module(interpreter)
    outputs = {}
    with np.load(variants_dir / "inputs.npz") as inputs:
        for variant in inputs:
            interp = module.Interpreter(
                model_path=str(variants_dir / variant / "model.tflite"), num_threads=1
            )
            interp.allocate_tensors()
            in_index = interp.get_input_details()[0]["index"]
            out_index = interp.get_output_details()[0]["index"]
            x = inputs[variant]
            rows = []
            for i in range(x.shape[0]):
                interp.reset_all_variables()
                interp.set_tensor(in_index, x[i : i + 1])
                interp.invoke()
                rows.append(interp.get_tensor(out_index).copy())
            outputs[variant] = np.stack(rows)
    meta = {
        "machine": platform.machine(),
        "interpreter": name,
        "version": metadata.version(name),
    }
    return outputs, meta


def compare(a_path: Path, b_path: Path) -> list[str]:
    """Per variant, how many int8 outputs differ between two machines."""
    lines = []
    with np.load(a_path) as a, np.load(b_path) as b:
        meta_a = json.loads(str(a["meta"]))
        meta_b = json.loads(str(b["meta"]))
        for variant in (k for k in a if k != "meta"):
            x, y = a[variant].astype(np.int64), b[variant].astype(np.int64)
            diff = np.abs(x - y)
            beats = np.count_nonzero(diff.reshape(diff.shape[0], -1).any(axis=1))
            verdict = "BYTE-EQUAL" if not diff.any() else "NOT BYTE-EQUAL"
            lines.append(
                f"{verdict}: {variant}, {meta_a['interpreter']} {meta_a['version']} "
                f"{meta_a['machine']} vs {meta_b['interpreter']} {meta_b['version']} "
                f"{meta_b['machine']}: {np.count_nonzero(diff)} of {diff.size} int8 "
                f"outputs differ in {beats} of {diff.shape[0]} beats, by at most "
                f"{int(diff.max(initial=0))} step"
            )
    return lines


def fidelity(outputs_path: Path, variants_dir: Path) -> list[str]:
    """How close each variant's int8 reconstructions are to the float model.

    Parameters
    ----------
    outputs_path : Path
        A ``run`` result.
    variants_dir : Path
        The ``variants`` folder (offsets, quantization, float outputs).

    Returns
    -------
    list[str]
        Per variant, the RMS and largest difference between the dequantized
        int8 reconstruction (offset removed) and the float model's, in real
        units and in the variant's output steps.
    """
    info = json.loads((variants_dir / "variants.json").read_text())["variants"]
    float_out = np.load(variants_dir / "float_outputs.npy")
    lines = []
    with np.load(outputs_path) as outputs:
        for variant in (k for k in outputs if k != "meta"):
            scale, zero = info[variant]["output_quantization"]
            offset = float(info[variant]["offset"])
            recon = scale * (outputs[variant][:, 0].astype(np.float64) - zero) - offset
            error = recon - float_out
            rms = float(np.sqrt(np.mean(error**2)))
            worst = float(np.abs(error).max())
            lines.append(
                f"{variant}: int8 against float, RMS {rms:.3g} ({rms / scale:.2f} "
                f"steps of {scale:.4g}), largest {worst:.3g} "
                f"({worst / scale:.2f} steps)"
            )
    return lines


def _cmd_explain(args: argparse.Namespace) -> int:
    for line in explain(args.model, args.dumps):
        log.info("%s", line)
    return 0


def _cmd_variants(args: argparse.Namespace) -> int:
    summary = make_variants(args.bundle, args.beats, args.out)
    for name, info in summary["variants"].items():
        log.info(
            "%s: offset %.4g, output quantization %s, as in the bundle: %s",
            name,
            info["offset"],
            info["output_quantization"],
            info["same_as_bundle"],
        )
    return 0


def ops_path(out: Path, variant: str) -> Path:
    """Where ``run`` writes a variant's op dump, beside its ``out`` file."""
    return out.with_name(f"{out.stem}.{variant}.ops.npz")


def _cmd_run(args: argparse.Namespace) -> int:
    outputs, meta = run_variants(args.variants, args.interpreter)
    np.savez(args.out, meta=json.dumps(meta), **outputs)
    fixed_beats = _sibling("fixed_beats")
    with np.load(args.variants / "inputs.npz") as inputs:
        for variant in inputs:
            model = args.variants / variant / "model.tflite"
            dump = fixed_beats.model_op_outputs(
                model, inputs[variant], args.interpreter
            )
            np.savez(ops_path(args.out, variant), **dump)
    log.info(
        "%s %s: %s -> %s", meta["interpreter"], meta["version"], list(outputs), args.out
    )
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    lines = compare(args.a, args.b)
    if args.variants:
        lines += fidelity(args.a, args.variants)
    for line in lines:
        log.info("%s", line)
    if args.verdicts:
        with args.verdicts.open("a") as fh:
            fh.write("".join(line + "\n" for line in lines))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("explain", help="which rounding rule each machine follows")
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("dumps", type=Path, nargs="+", help=".ops.npz of fixed_beats.py")
    p.set_defaults(func=_cmd_explain)
    p = sub.add_parser("variants", help="convert the variants (x86_64, TensorFlow)")
    p.add_argument("--bundle", type=Path, required=True)
    p.add_argument("--beats", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=_cmd_variants)
    p = sub.add_parser("run", help="int8 outputs of every variant on this machine")
    p.add_argument("--variants", type=Path, required=True)
    p.add_argument("--interpreter", default="auto")
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=_cmd_run)
    p = sub.add_parser("compare", help="differing int8 outputs per variant")
    p.add_argument("a", type=Path)
    p.add_argument("b", type=Path)
    p.add_argument("--verdicts", type=Path, help="append the result lines here")
    p.add_argument(
        "--variants", type=Path, help="variants folder: also compare with float"
    )
    p.set_defaults(func=_cmd_compare)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format=f"[{platform.machine()}] %(message)s"
    )
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
