"""``beatguard bench``: run every benchmark and write the results tables.

Runs each ``benchmarks/bench_*.py`` of the source checkout (see
``benchmarks/README.md`` for the contract), stores this machine's figures in
``benchmarks/results/<machine>.json`` and rebuilds ``benchmarks/results.md``
from every machine's JSON file, so figures from a workstation, a Pi 4 and a
Pi 5 sit side by side. Under CPU emulation the figures are printed with a
warning and never written: emulated timings say nothing about hardware.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import sys
import time
from pathlib import Path

from beatguard.commands import positive_int
from beatguard.device.errors import BeatguardError

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
BENCH_DIR = REPO / "benchmarks"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--runs", type=positive_int, default=5, help="timed runs per figure"
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help="run only benchmarks whose file name contains NAME (repeatable; "
        "default: all)",
    )
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        metavar="NAME",
        help="skip benchmarks whose file name contains NAME (repeatable; "
        "default: none)",
    )
    parser.add_argument(
        "--list", action="store_true", help="list the benchmarks and exit"
    )


def run(args: argparse.Namespace) -> int:
    if not BENCH_DIR.is_dir():
        raise BeatguardError(
            f"no benchmarks folder at {BENCH_DIR}: run beatguard bench from a "
            "source checkout (git clone), not an installed wheel"
        )
    sys.path.insert(0, str(BENCH_DIR))
    machine = _load("machine", BENCH_DIR / "machine.py")
    scripts = _select(sorted(BENCH_DIR.glob("bench_*.py")), args.only, args.skip)
    if args.list:
        for script in scripts:
            print(script.stem)
        return 0
    emulated = machine.under_emulation()
    if emulated:
        print(
            "WARNING: this machine runs under CPU emulation; timings below are "
            "not hardware figures and are not written to results.md",
            file=sys.stderr,
        )
    results = {}
    for script in scripts:
        print(f"== {script.stem}", flush=True)
        start_s = time.monotonic()
        result = _load(script.stem, script).run(runs=args.runs)
        result["wall_s"] = round(time.monotonic() - start_s, 1)
        results[script.stem] = result
        print(result.get("table_md", ""), flush=True)
    if emulated or not results:
        return 0
    slug = machine.machine_slug()
    out_dir = BENCH_DIR / "results"
    out_dir.mkdir(exist_ok=True)
    out_json = out_dir / f"{slug}.json"
    merged = _read_json(out_json).get("benchmarks", {}) if args.only else {}
    merged.update(results)
    payload = {
        "machine": machine.describe_machine(),
        "slug": slug,
        "date": time.strftime("%Y-%m-%d"),
        "runs": args.runs,
        "benchmarks": merged,
    }
    out_json.write_text(json.dumps(payload, indent=2, default=float) + "\n")
    results_md = BENCH_DIR / "results.md"
    results_md.write_text(render_results(out_dir))
    print(f"wrote {out_json} and {results_md}")
    return 0


def _select(scripts: list[Path], only: list[str], skip: list[str]) -> list[Path]:
    chosen = [s for s in scripts if not only or any(o in s.stem for o in only)]
    return [s for s in chosen if not any(k in s.stem for k in skip)]


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(f"beatguard_bench_{name}", path)
    module = importlib.util.module_from_spec(spec)
    # Registered before it runs: dataclasses look their module up by name.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _read_json(path: Path) -> dict:
    if not path.exists():
        return {}
    return json.loads(path.read_text())


def render_results(results_dir: Path) -> str:
    """Markdown of every machine's results: a side-by-side table, then details.

    Parameters
    ----------
    results_dir : Path
        Folder of ``<machine>.json`` files written by ``beatguard bench``.

    Returns
    -------
    str
        The whole ``results.md``.
    """
    machines = [_read_json(p) for p in sorted(results_dir.glob("*.json"))]
    lines = [
        "# beatguard benchmark results",
        "",
        "Written by `beatguard bench` (`make bench`); do not edit by hand. Each",
        "figure is the median of the runs stated; the command under each section",
        "reproduces it. Machines:",
        "",
    ]
    for m in machines:
        desc = m["machine"]
        lines.append(
            f"- **{m['slug']}** ({m['date']}, {m['runs']} runs): "
            + ", ".join(f"{k} {v}" for k, v in desc.items() if not isinstance(v, dict))
        )
    lines += ["", "## Side by side", ""]
    header = "| figure | unit | " + " | ".join(m["slug"] for m in machines) + " |"
    lines += [header, "|---|---|" + "---|" * len(machines)]
    keys: dict[str, str] = {}
    for m in machines:
        for bench, result in m["benchmarks"].items():
            for key, fig in result.get("figures", {}).items():
                keys.setdefault(f"{bench}: {key}", fig.get("unit", ""))
    for key, unit in keys.items():
        bench, fig_key = key.split(": ", 1)
        cells = []
        for m in machines:
            fig = m["benchmarks"].get(bench, {}).get("figures", {}).get(fig_key)
            cells.append("" if fig is None else _fmt(fig.get("median")))
        lines.append(f"| {key} | {unit} | " + " | ".join(cells) + " |")
    for m in machines:
        lines += ["", f"## Details: {m['slug']}", ""]
        for bench, result in m["benchmarks"].items():
            lines += [f"### {result.get('name', bench)}", ""]
            lines += [result.get("table_md", "").rstrip(), ""]
            if result.get("command"):
                lines += [f"Reproduce: `{result['command']}`", ""]
    return "\n".join(lines).rstrip() + "\n"


def _fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
