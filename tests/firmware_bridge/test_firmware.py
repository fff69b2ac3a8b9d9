"""The C header against the test vectors (system gcc) and the sketch (avr-gcc)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

import beatguard.firmware_bridge as fb

BRIDGE = Path(fb.__file__).parent
FIRMWARE = BRIDGE / "firmware"
SKETCH = FIRMWARE / "beatguard_ad8232"
ARDUINO_AVR = Path("/usr/share/arduino/hardware/arduino/avr")


def _bytes(name: str, hex_text: str) -> str:
    data = bytes.fromhex(hex_text)
    body = ", ".join(f"0x{b:02x}" for b in data) or "0"
    return f"static const uint8_t {name}[] = {{{body}}};\n"


def _bool_list(flags: list[bool]) -> str:
    return "{" + ", ".join("1" if f else "0" for f in flags) + "}"


def write_vectors_header(path: Path) -> None:
    """Turn test_vectors.json into C arrays for test_protocol.c."""
    vec = json.loads((BRIDGE / "test_vectors.json").read_text(encoding="utf-8"))
    out = ["/* Generated from test_vectors.json by the test suite. */\n"]
    crcs, cobs, frames, invalid = [], [], [], []
    for i, case in enumerate(vec["crc16_ccitt_false"]):
        out.append(_bytes(f"CRC_DATA_{i}", case["data_hex"]))
        n = len(case["data_hex"]) // 2
        crcs.append(f'{{"crc {i}", CRC_DATA_{i}, {n}, {case["crc"]}}}')
    for i, case in enumerate(vec["cobs"]):
        out.append(_bytes(f"COBS_D_{i}", case["decoded_hex"]))
        out.append(_bytes(f"COBS_E_{i}", case["encoded_hex"]))
        dn, en = len(case["decoded_hex"]) // 2, len(case["encoded_hex"]) // 2
        cobs.append(f'{{"cobs {i}", COBS_D_{i}, {dn}, COBS_E_{i}, {en}}}')
    for i, case in enumerate(vec["frames"]):
        out.append(_bytes(f"FRAME_{i}", case["wire_hex"]))
        n = len(case["wire_hex"]) // 2
        name = json.dumps(case["name"])
        if case["type"] == "samples":
            values = "{" + ", ".join(str(v) for v in case["values"]) + "}"
            frames.append(
                f"{{{name}, BG_TYPE_SAMPLES, {case['seq']}, {len(case['values'])}, "
                f"{values}, {_bool_list(case['lo_plus'])}, "
                f"{_bool_list(case['lo_minus'])}, {{0}}, FRAME_{i}, {n}}}"
            )
        else:
            major, minor, patch = case["firmware_version"].split(".")
            ann = (
                f"{{{case['fs_mhz']}u, {case['adc_bits']}, {case['new_per_frame']}, "
                f"{case['window']}, {case['gain_centi_counts_per_mv']}u, "
                f"{case['baseline_counts']}, {major}, {minor}, {patch}, "
                f"{case['board_sample']}u}}"
            )
            frames.append(
                f"{{{name}, BG_TYPE_ANNOUNCE, 0, 0, {{0}}, {{0}}, {{0}}, {ann}, "
                f"FRAME_{i}, {n}}}"
            )
    for i, case in enumerate(vec["invalid"]):
        out.append(_bytes(f"BAD_{i}", case["wire_hex"]))
        n = len(case["wire_hex"]) // 2
        invalid.append(f"{{{json.dumps(case['name'])}, BAD_{i}, {n}}}")
    out.append(
        "typedef struct { const char *name; const uint8_t *data; size_t len; "
        "uint16_t crc; } vec_crc_t;\n"
        "typedef struct { const char *name; const uint8_t *decoded; size_t dlen; "
        "const uint8_t *encoded; size_t elen; } vec_cobs_t;\n"
        "typedef struct { const char *name; uint8_t type; uint16_t seq; "
        "uint8_t count; uint16_t values[BG_MAX_SAMPLES]; "
        "uint8_t lo_plus[BG_MAX_SAMPLES]; uint8_t lo_minus[BG_MAX_SAMPLES]; "
        "bg_announce_t ann; const uint8_t *wire; size_t wire_len; } vec_frame_t;\n"
        "typedef struct { const char *name; const uint8_t *wire; size_t len; "
        "} vec_bad_t;\n"
    )
    for ctype, name, rows in (
        ("vec_crc_t", "CRCS", crcs),
        ("vec_cobs_t", "COBS", cobs),
        ("vec_frame_t", "FRAMES", frames),
        ("vec_bad_t", "INVALID", invalid),
    ):
        out.append(f"static const {ctype} {name}[] = {{\n  " + ",\n  ".join(rows))
        out.append("\n};\n")
    path.write_text("".join(out), encoding="utf-8")


def test_c_header_encodes_and_decodes_every_test_vector(tmp_path):
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("no system gcc to build the native C test")
    write_vectors_header(tmp_path / "vectors.h")
    exe = tmp_path / "test_protocol"
    build = subprocess.run(
        [
            gcc,
            "-std=c99",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-O2",
            f"-I{SKETCH}",
            f"-I{tmp_path}",
            str(FIRMWARE / "test" / "test_protocol.c"),
            "-o",
            str(exe),
        ],
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stderr
    result = subprocess.run([str(exe)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
    assert result.stdout.strip() == "0 failure(s)"


def _avr_toolchain() -> tuple[str, str]:
    gcc, gxx = shutil.which("avr-gcc"), shutil.which("avr-g++")
    if gcc is None or gxx is None:
        pytest.skip("AVR toolchain absent (apt-get install gcc-avr avr-libc)")
    if not (ARDUINO_AVR / "cores" / "arduino" / "Arduino.h").exists():
        pytest.skip(f"Arduino AVR core absent at {ARDUINO_AVR} (arduino-core-avr)")
    return gcc, gxx


@pytest.mark.hardware
def test_sketch_compiles_and_links_for_atmega328p(tmp_path):
    gcc, gxx = _avr_toolchain()
    core = ARDUINO_AVR / "cores" / "arduino"
    common = [
        "-mmcu=atmega328p",
        "-DF_CPU=16000000L",
        "-DARDUINO=10807",
        "-DARDUINO_AVR_UNO",
        "-DARDUINO_ARCH_AVR",
        "-Os",
        "-ffunction-sections",
        "-fdata-sections",
        f"-I{core}",
        f"-I{ARDUINO_AVR / 'variants' / 'standard'}",
    ]
    cxx = [gxx, *common, "-std=gnu++11", "-fno-exceptions", "-fno-threadsafe-statics"]
    ino = SKETCH / "beatguard_ad8232.ino"
    sketch_cpp = tmp_path / "sketch.cpp"
    sketch_cpp.write_text(
        f'#include <Arduino.h>\n#line 1 "{ino}"\n' + ino.read_text(encoding="utf-8")
    )
    jobs = [([*cxx, "-Wall", "-Wextra", "-Werror", f"-I{SKETCH}"], sketch_cpp)]
    # WString.cpp (the String class, unused here) needs a newer avr-gcc than
    # Debian's 5.4; the linker would drop it anyway.
    for src in sorted(core.iterdir()):
        if src.suffix == ".c":
            jobs.append(([gcc, *common], src))
        elif src.suffix == ".cpp" and src.name != "WString.cpp":
            jobs.append((cxx, src))
        elif src.suffix == ".S":
            jobs.append(([gcc, *common, "-x", "assembler-with-cpp"], src))
    objects = []
    for cmd, src in jobs:
        obj = tmp_path / (src.name + ".o")
        result = subprocess.run(
            [*cmd, "-c", str(src), "-o", str(obj)], capture_output=True, text=True
        )
        assert result.returncode == 0, f"{src.name}: {result.stderr}"
        objects.append(str(obj))
    elf = tmp_path / "beatguard_ad8232.elf"
    link = subprocess.run(
        [gcc, "-mmcu=atmega328p", "-Os", "-Wl,--gc-sections", "-o", str(elf)]
        + objects
        + ["-lm"],
        capture_output=True,
        text=True,
    )
    assert link.returncode == 0, link.stderr
    symbols = subprocess.run(
        ["avr-nm", str(elf)], capture_output=True, text=True, check=True
    ).stdout
    assert "__vector_11" in symbols  # TIMER1_COMPA: sampling on the timer
    size = subprocess.run(
        ["avr-size", "-A", str(elf)], capture_output=True, text=True, check=True
    ).stdout
    sections = {
        line.split()[0]: int(line.split()[1])
        for line in size.splitlines()
        if line.startswith(".")
    }
    assert sections[".text"] + sections.get(".data", 0) <= 32256  # Uno flash
    assert sections.get(".data", 0) + sections.get(".bss", 0) <= 2048  # Uno RAM
