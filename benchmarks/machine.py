"""Which machine a benchmark ran on, and whether its CPU was emulated.

``beatguard bench`` names each machine's results file with
:func:`machine_slug` (``x86_64-amd-epyc-7b13-2c``, ``raspberry-pi-4-model-b``),
stores :func:`describe_machine` beside the figures, and refuses to write
figures measured under :func:`under_emulation` (qemu-user runs aarch64 code
10 to 300 times slower than a Pi, so such timings describe nothing real).

Everything is read from ``/proc``, ``/sys`` and ``/etc`` below a ``root``
folder (default ``/``) so that tests can point it at a prepared tree. Run as
a script, it prints the description as JSON.

Emulation is detected two ways, either one is enough:

- the kernel's own architecture (``/proc/sys/kernel/arch``, Linux 6.1 and
  later) belongs to another family than the one Python reports: qemu-user
  answers ``uname`` for the guest but does not rewrite that file;
- the parent process is a qemu-user interpreter (``/proc/<ppid>/exe``).

On kernels without ``/proc/sys/kernel/arch`` and with a native parent (for
example a shell started by qemu itself and then ``exec``-ed), emulation is
not detected and the results would be written as if native.
"""

from __future__ import annotations

import json
import os
import platform
import re
from importlib import metadata
from pathlib import Path

ROOT = Path("/")

# ARM CPU part numbers (MIDR "CPU part") of the cores found on single-board
# computers and Arm servers, for machines whose cpuinfo has no model name.
ARM_CPU_PARTS = {
    "0xd03": "Cortex-A53",
    "0xd04": "Cortex-A35",
    "0xd05": "Cortex-A55",
    "0xd07": "Cortex-A57",
    "0xd08": "Cortex-A72",
    "0xd09": "Cortex-A73",
    "0xd0a": "Cortex-A75",
    "0xd0b": "Cortex-A76",
    "0xd0c": "Neoverse-N1",
    "0xd0d": "Cortex-A77",
    "0xd40": "Neoverse-V1",
    "0xd41": "Cortex-A78",
    "0xd49": "Neoverse-N2",
    "0xd4f": "Neoverse-V2",
}

# Architectures whose code runs natively on each other's kernels (a 32-bit
# userland on a 64-bit kernel is not emulation).
ARCH_FAMILIES = {
    "x86_64": "x86",
    "amd64": "x86",
    "i386": "x86",
    "i686": "x86",
    "aarch64": "arm",
    "arm64": "arm",
    "armv8l": "arm",
    "armv7l": "arm",
    "armv6l": "arm",
    "riscv64": "riscv",
    "ppc64le": "power",
    "s390x": "s390",
}

# Distributions whose version we report, in the order they are looked for.
INTERPRETER_DISTRIBUTIONS = (
    "beatguard",
    "numpy",
    "scipy",
    "ai-edge-litert",
    "tflite-runtime",
    "tensorflow",
    "tensorflow-cpu",
)


def _read(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return None


def _cpuinfo_fields(root: Path) -> dict[str, str]:
    """First value of each key of ``/proc/cpuinfo`` (keys as written there)."""
    fields: dict[str, str] = {}
    for line in (_read(root / "proc/cpuinfo") or "").splitlines():
        key, sep, value = line.partition(":")
        key = key.strip()
        if sep and key and key not in fields:
            fields[key] = value.strip()
    return fields


def board_model(root: Path = ROOT) -> str | None:
    """The board's name (``Raspberry Pi 4 Model B Rev 1.4``), or None.

    Read from the device tree, else from the ``Model`` line that Raspberry Pi
    kernels add to ``/proc/cpuinfo`` (x86's lower-case ``model`` is a number
    and is not this). PCs and most servers have neither.
    """
    model = _read(root / "proc/device-tree/model")
    if model:
        return model.strip("\x00\n ")
    return _cpuinfo_fields(root).get("Model") or None


def cpu_model(root: Path = ROOT) -> str:
    """The CPU's name: ``model name`` on x86, the core's name on ARM.

    Returns ``"unknown"`` when ``/proc/cpuinfo`` names nothing known.
    """
    fields = _cpuinfo_fields(root)
    if fields.get("model name"):
        return re.sub(r"\s+", " ", fields["model name"])
    part = fields.get("CPU part", "").lower()
    if part in ARM_CPU_PARTS:
        return ARM_CPU_PARTS[part]
    if part:
        return f"ARM part {part}"
    return fields.get("Hardware") or platform.processor() or "unknown"


def kernel_arch(root: Path = ROOT) -> str | None:
    """The architecture the running kernel was built for, or None if unknown."""
    arch = _read(root / "proc/sys/kernel/arch")
    return arch.strip() if arch else None


def _parent_interpreter(root: Path, ppid: int | None) -> str | None:
    """The parent's executable when it is a qemu-user interpreter, else None."""
    if ppid is None:
        ppid = os.getppid()
    try:
        exe = os.readlink(root / f"proc/{ppid}/exe")
    except OSError:
        return None
    name = Path(exe).name
    return exe if name.startswith("qemu-") or "binfmt" in name else None


def emulation_reason(
    root: Path = ROOT, machine: str | None = None, ppid: int | None = None
) -> str | None:
    """Why this process looks CPU-emulated, or None when it looks native.

    Parameters
    ----------
    root : Path
        Folder holding ``proc/``; ``/`` for the running system.
    machine : str, optional
        The architecture Python runs as; default ``platform.machine()``.
    ppid : int, optional
        Parent process id to inspect; default ``os.getppid()``.

    Returns
    -------
    str or None
        A sentence naming the evidence, or None.
    """
    machine = machine or platform.machine()
    kernel = kernel_arch(root)
    if kernel and ARCH_FAMILIES.get(kernel, kernel) != ARCH_FAMILIES.get(
        machine, machine
    ):
        return f"Python runs as {machine} on a {kernel} kernel"
    parent = _parent_interpreter(root, ppid)
    if parent:
        return f"the parent process is the emulator {parent}"
    return None


def under_emulation(
    root: Path = ROOT, machine: str | None = None, ppid: int | None = None
) -> bool:
    """True when this process runs under CPU emulation (qemu-user).

    See :func:`emulation_reason` for the parameters and the evidence used.
    """
    return emulation_reason(root, machine, ppid) is not None


def _os_name(root: Path) -> str:
    for line in (_read(root / "etc/os-release") or "").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip().strip('"')
    return platform.system()


def _memory_gib(root: Path) -> float | None:
    match = re.search(r"MemTotal:\s+(\d+) kB", _read(root / "proc/meminfo") or "")
    return round(int(match.group(1)) / 2**20, 1) if match else None


def interpreter_versions() -> dict[str, str]:
    """Installed versions of beatguard, numpy, scipy and each TFLite runtime.

    Only distributions that are installed appear; nothing is imported.
    """
    versions = {}
    for name in INTERPRETER_DISTRIBUTIONS:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def describe_machine(root: Path = ROOT, machine: str | None = None) -> dict:
    """What a benchmark ran on, as a flat JSON-ready dict.

    Parameters
    ----------
    root : Path
        Folder holding ``proc/`` and ``etc/``; ``/`` for the running system.
    machine : str, optional
        The architecture Python runs as; default ``platform.machine()``.

    Returns
    -------
    dict
        ``arch``, ``board`` (None off a single-board computer), ``cpu``,
        ``cores`` (usable by this process), ``memory_gib``, ``os``,
        ``kernel``, ``python``, ``emulated`` (bool), ``emulation`` (the
        evidence, or None), and one ``<distribution>`` key per installed
        runtime version (``numpy``, ``ai-edge-litert``, ``tflite-runtime``).
    """
    machine = machine or platform.machine()
    reason = emulation_reason(root, machine)
    return {
        "arch": machine,
        "board": board_model(root),
        "cpu": cpu_model(root),
        "cores": len(os.sched_getaffinity(0)),
        "memory_gib": _memory_gib(root),
        "os": _os_name(root),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "emulated": reason is not None,
        "emulation": reason,
        **interpreter_versions(),
    }


def _slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def machine_slug(root: Path = ROOT, machine: str | None = None) -> str:
    """A file-name-safe name for this machine's results.

    A board is named by its model without revision
    (``raspberry-pi-4-model-b``); any other machine by architecture, CPU and
    usable cores (``x86_64-amd-epyc-7b13-2c``). Emulated machines get an
    ``-emulated`` suffix so their figures can never overwrite a real board's.

    Parameters
    ----------
    root, machine
        As for :func:`describe_machine`.

    Returns
    -------
    str
        Lower-case letters, digits and hyphens.
    """
    machine = machine or platform.machine()
    board = board_model(root)
    if board:
        slug = _slugify(re.sub(r"\s+Rev\s+[\d.]+$", "", board))
    else:
        cpu = cpu_model(root)
        cpu = re.sub(r"\(R\)|\(TM\)|@.*$|\d+-Core|Processor|CPU", " ", cpu)
        cores = len(os.sched_getaffinity(0))
        slug = f"{machine}-{_slugify(cpu)}-{cores}c"
    if under_emulation(root, machine):
        slug += "-emulated"
    return slug


if __name__ == "__main__":
    print(json.dumps({"slug": machine_slug(), **describe_machine()}, indent=2))
