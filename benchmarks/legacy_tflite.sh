#!/usr/bin/env bash
# A second environment with the legacy interpreter: tflite-runtime 2.14 and
# numpy<2, as on a Raspberry Pi running an older Pi OS image, plus
# beatguard[device] without ai-edge-litert.
#
# Usage: legacy_tflite.sh [--python PY] [--src DIR] [--offline-ok] VENV
#
#   --python PY   interpreter for the venv (default python3.11, else python3)
#   --src DIR     beatguard checkout to install (default: this script's repo)
#   VENV          folder of the environment (created or updated)
#
# Used on the workstation (x86_64) and, by arm_check.sh, inside the arm64
# root. The third-party packages are installed once (a stamp in VENV keyed by
# the hash of the package list); beatguard itself is reinstalled from the
# checkout on every call, without its dependencies, so ai-edge-litert is
# never pulled in and the installed code is the code being checked.
#
# tflite-runtime 2.14.0 ships wheels for CPython 3.8 to 3.11 only, for
# x86_64 (manylinux2014) and aarch64 (manylinux_2_34, so glibc 2.34 or newer:
# Debian bookworm / Pi OS bookworm, not bullseye). On another Python or an
# older glibc, pip cannot install it and this script says so and exits 3.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(cd "$HERE/.." && pwd)
PYTHON=""
while [ $# -gt 1 ]; do
    case "$1" in
        --python) PYTHON=$2; shift 2 ;;
        --src) SRC=$2; shift 2 ;;
        *) echo "legacy_tflite: error: unknown option $1" >&2; exit 2 ;;
    esac
done
[ $# -eq 1 ] || { sed -n '6,10p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
VENV=$1
if [ -z "$PYTHON" ]; then
    PYTHON=$(command -v python3.11 || command -v python3) \
        || { echo "legacy_tflite: error: no python3 found" >&2; exit 2; }
fi

# The legacy stack. scipy wheels built against numpy 2 also run on numpy 1.x.
PACKAGES=(
    "tflite-runtime==2.14.*"
    "numpy<2"
    "scipy>=1.10"
    "wfdb>=4.1"
    "pyserial>=3.5"
    "gpiozero>=2.0"
    "pytest>=8"
    "setuptools>=77"
    "wheel"
)
STAMP="$VENV/.beatguard-legacy-stamp"
KEY=$(printf '%s\n' "$("$PYTHON" -c 'import sys; print(sys.version)')" "${PACKAGES[@]}" \
    | sha256sum | cut -d' ' -f1)

log() { printf '[legacy-tflite] %s\n' "$*" >&2; }

if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$KEY" ]; then
    log "creating $VENV with $("$PYTHON" --version 2>&1) on $(uname -m)"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    if ! "$VENV/bin/pip" install --quiet --only-binary=:all: "${PACKAGES[@]}"; then
        log "tflite-runtime 2.14 with numpy<2 cannot be installed for" \
            "$("$PYTHON" --version 2>&1) on $(uname -m)" \
            "(glibc $(ldd --version 2>/dev/null | head -1 | awk '{print $NF}'))"
        exit 3
    fi
    echo "$KEY" >"$STAMP"
fi
log "installing beatguard from $SRC (no dependencies: no ai-edge-litert)"
# Build in a scratch copy: the checkout may be read-only (a bind mount).
BUILD=$(mktemp -d)
trap 'rm -rf "$BUILD"' EXIT
tar -C "$SRC" --exclude=.git --exclude=.venv --exclude=build --exclude='*.egg-info' --exclude=runs --exclude=demo-output \
    --exclude=benchmarks/out \
    -cf - . | tar -C "$BUILD" -xf -
"$VENV/bin/pip" install --quiet --no-deps --no-build-isolation --force-reinstall "$BUILD"
"$VENV/bin/python" - <<'EOF'
import importlib.util
from importlib import metadata

assert importlib.util.find_spec("ai_edge_litert") is None, "ai-edge-litert leaked in"
print(
    "legacy env: tflite-runtime", metadata.version("tflite-runtime"),
    "numpy", metadata.version("numpy"), "beatguard", metadata.version("beatguard"),
)
EOF
