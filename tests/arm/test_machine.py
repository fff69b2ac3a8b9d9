"""benchmarks/machine.py names machines and spots CPU emulation."""

from __future__ import annotations

import importlib.util
import json
import os
import platform
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PI4_CPUINFO = REPO / "benchmarks" / "arm" / "cpuinfo-pi4"


def _load_machine():
    spec = importlib.util.spec_from_file_location(
        "bench_machine", REPO / "benchmarks" / "machine.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


machine = _load_machine()


def _fake_root(
    tmp_path: Path, cpuinfo: str, kernel_arch: str | None, dt_model: str | None = None
) -> Path:
    (tmp_path / "proc" / "sys" / "kernel").mkdir(parents=True)
    (tmp_path / "proc" / "cpuinfo").write_text(cpuinfo)
    if kernel_arch is not None:
        (tmp_path / "proc" / "sys" / "kernel" / "arch").write_text(kernel_arch + "\n")
    if dt_model is not None:
        (tmp_path / "proc" / "device-tree").mkdir()
        (tmp_path / "proc" / "device-tree" / "model").write_text(dt_model + "\x00")
    return tmp_path


def test_pi4_cpuinfo_names_the_board_and_its_core(tmp_path):
    root = _fake_root(tmp_path, PI4_CPUINFO.read_text(), "aarch64")
    assert machine.board_model(root) == "Raspberry Pi 4 Model B Rev 1.1"
    assert machine.cpu_model(root) == "Cortex-A72"
    assert machine.machine_slug(root, "aarch64") == "raspberry-pi-4-model-b"
    assert not machine.under_emulation(root, "aarch64", ppid=os.getpid())


def test_device_tree_model_names_a_pi5_over_cpuinfo(tmp_path):
    cpuinfo = "processor\t: 0\nCPU implementer\t: 0x41\nCPU part\t: 0xd0b\n"
    root = _fake_root(tmp_path, cpuinfo, "aarch64", "Raspberry Pi 5 Model B Rev 1.0")
    assert machine.board_model(root) == "Raspberry Pi 5 Model B Rev 1.0"
    assert machine.cpu_model(root) == "Cortex-A76"
    assert machine.machine_slug(root, "aarch64") == "raspberry-pi-5-model-b"


def test_x86_slug_names_architecture_cpu_and_usable_cores(tmp_path):
    cpuinfo = (
        "processor\t: 0\nmodel\t\t: 1\nmodel name\t: AMD EPYC 7B13 64-Core Processor\n"
    )
    root = _fake_root(tmp_path, cpuinfo, "x86_64")
    cores = len(os.sched_getaffinity(0))
    assert machine.board_model(root) is None
    assert machine.machine_slug(root, "x86_64") == f"x86_64-amd-epyc-7b13-{cores}c"


def test_aarch64_python_on_an_x86_kernel_is_emulation(tmp_path):
    root = _fake_root(tmp_path, PI4_CPUINFO.read_text(), "x86_64")
    reason = machine.emulation_reason(root, "aarch64", ppid=os.getpid())
    assert reason == "Python runs as aarch64 on a x86_64 kernel"
    assert machine.machine_slug(root, "aarch64") == "raspberry-pi-4-model-b-emulated"


def test_32bit_arm_userland_on_a_64bit_arm_kernel_is_native(tmp_path):
    root = _fake_root(tmp_path, PI4_CPUINFO.read_text(), "aarch64")
    assert machine.emulation_reason(root, "armv7l", ppid=os.getpid()) is None


def test_qemu_parent_process_is_emulation_without_kernel_arch(tmp_path):
    root = _fake_root(tmp_path, PI4_CPUINFO.read_text(), None)
    (root / "proc" / "4242").mkdir()
    (root / "proc" / "4242" / "exe").symlink_to(
        "/usr/libexec/qemu-binfmt/aarch64-binfmt-P"
    )
    reason = machine.emulation_reason(root, "aarch64", ppid=4242)
    assert reason == (
        "the parent process is the emulator /usr/libexec/qemu-binfmt/aarch64-binfmt-P"
    )


def test_this_machine_is_described_as_json_with_its_runtimes():
    expected_emulated = os.environ.get("BEATGUARD_EXPECT_EMULATION", "0") == "1"
    description = machine.describe_machine()
    assert json.loads(json.dumps(description)) == description
    assert description["python"] == platform.python_version()
    assert description["arch"] == platform.machine()
    assert description["cores"] >= 1
    assert "numpy" in description
    assert description["emulated"] is expected_emulated
    assert machine.under_emulation() is expected_emulated
    assert machine.machine_slug().endswith("-emulated") is expected_emulated


def test_pi_like_cpuinfo_describes_four_cortex_a72_cores():
    text = PI4_CPUINFO.read_text()
    assert text.count("processor\t:") == 4
    assert text.count("CPU part\t: 0xd08") == 4
