"""Which float step after the interpreter differs between two machines.

When the int8 reconstructions of the fixed beats are byte-equal on x86_64
and aarch64 but the scores are not, the difference is in the float
arithmetic that turns a reconstruction into a score. This script computes
each step of it on one machine, from the same reconstruction file, and
``compare`` says which steps agree to the bit::

    float_log.py run --out DIR --recon scores-x86_64-tflite-runtime.recon.bin \\
        --save x86_64.npz
    float_log.py compare x86_64.npz aarch64.npz

The steps: the residual, its square, the per-beat mean (the shape error),
its logarithm with ``numpy.log`` (what the decision used first) and with
``math.log`` (the C library's, one value at a time, what it uses now:
``beatguard.device.decision.log_errors``).
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import math
import platform
import sys
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


def _fixed_beats():
    spec = importlib.util.spec_from_file_location(
        "arm_fixed_beats", Path(__file__).resolve().parent / "fixed_beats.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def float_steps(out_dir: Path, recon_path: Path) -> dict[str, np.ndarray]:
    """Each float step from reconstruction to log shape error, float64.

    Parameters
    ----------
    out_dir : Path
        The ARM check's output folder (``beats-106.npz``).
    recon_path : Path
        A ``.recon.bin`` of ``fixed_beats.py score`` (the same file on both
        machines, so that only the arithmetic differs).
    """
    from beatguard.device.bundle import beats_to_inputs

    beats = _fixed_beats().load_beats(out_dir / "beats-106.npz")
    x = beats_to_inputs(beats).astype(np.float64)
    recon = np.frombuffer(recon_path.read_bytes(), "<f8").reshape(x.shape)
    res = recon - x
    error = np.mean(res * res, axis=(1, 2))
    return {
        "residual": res,
        "square": res * res,
        "mean": error,
        "numpy.log": np.log(error),
        "math.log": np.array([math.log(float(v)) for v in error]),
    }


def _cmd_run(args: argparse.Namespace) -> int:
    steps = float_steps(args.out, args.recon)
    np.savez(args.save, machine=platform.machine(), numpy=np.__version__, **steps)
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    with np.load(args.a) as a, np.load(args.b) as b:
        who = f"{a['machine']} numpy {a['numpy']} vs {b['machine']} numpy {b['numpy']}"
        for key in (k for k in a if k not in ("machine", "numpy")):
            differ = np.count_nonzero(a[key].view(np.uint64) != b[key].view(np.uint64))
            state = "equal" if differ == 0 else f"{differ} of {a[key].size} differ"
            log.info("%s, %s: %s", who, key, state)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="compute the steps on this machine")
    p.add_argument("--out", type=Path, required=True, help="arm-check output")
    p.add_argument("--recon", type=Path, required=True)
    p.add_argument("--save", type=Path, required=True)
    p.set_defaults(func=_cmd_run)
    p = sub.add_parser("compare", help="which steps agree to the bit")
    p.add_argument("a", type=Path)
    p.add_argument("b", type=Path)
    p.set_defaults(func=_cmd_compare)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
