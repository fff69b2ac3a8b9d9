#!/usr/bin/env bash
# `make arm-check`: the device side of beatguard, checked on aarch64 under
# qemu-user against the same work done here on x86_64.
#
# Steps (each one prints its wall time; a failed step is reported and the
# others still run, so one run shows every problem):
#   1. the arm64 root (arm_root.sh build: built once per machine, then reused)
#      and a probe that an aarch64 program runs in it
#   2. x86_64 reference: a model bundle (trained and converted here, kept in
#      the output folder), a fixed set of beats of record 106 cut by the
#      signal chain, their int8 scores with ai-edge-litert and with
#      tflite-runtime 2.14 (legacy venv), and one minute of record 106 from
#      `beatguard simulate` into `beatguard run` on a pseudo-terminal
#   3. aarch64: beatguard[device] installed into the root from this checkout,
#      the TensorFlow-free tests, the same beats scored with ai-edge-litert
#      and (second venv in the root) tflite-runtime 2.14 with numpy<2, and
#      the same one-minute pseudo-terminal run
#   4. comparison, like with like (fixed_beats.py compare): aarch64
#      ai-edge-litert against x86_64 ai-edge-litert, aarch64 tflite-runtime
#      against x86_64 tflite-runtime, each with the interpreter's default
#      options (the device's Scorer), the same version and the same ops
#      delegated on both sides; the scores must be equal byte for byte, with
#      no tolerance. The logged beats, labels and alerts of the two
#      pseudo-terminal runs must be equal.
#
# Known result (2026-12-04): every comparison equal. tflite-runtime 2.14's
# int8 FULLY_CONNECTED kernel rounds exact ties of the output shift away from
# zero on aarch64 and upward on x86_64; the converter's output offset (zero
# point -128) leaves no negative tie to differ on, and the decision's
# logarithms come from math.log because numpy 1.26's log differs in the last
# bit between the two (README, "The ARM check on a PC").
#
# Environment:
#   BEATGUARD_ARM_ROOT     where the root is cached (see arm_root.sh)
#   BEATGUARD_ARM_OUT      output folder (default build/arm-check)
#   BEATGUARD_SHARED_DATA  the ECG data (default ../shared/data)
#   BEATGUARD_QEMU_CPU     emulated CPU model (default cortex-a72, a Pi 4)
#   BEATGUARD_LEGACY_VENV  the x86_64 tflite-runtime venv (default beside
#                          the root: /var/cache/beatguard/legacy-tflite-x86_64)
#   BEATGUARD_TIME_SCALE   set inside the root for the tests (default 30):
#                          how much longer tests that wait for a process or a
#                          link event may wait under emulation
#
# Usage: arm_check.sh [ONLY]   with ONLY, run just the steps whose name
# contains it (e.g. "aarch64: TensorFlow-free tests"); the root step always runs.
#
# Exit status:
#   0   every step passed: scores byte-equal, runs equal, tests passed
#   1   a check failed (a score or run difference, a failing test)
#   77  this machine cannot run the check (not root, no ECG data, no arm64
#       emulation, or the root cannot be built): one line says why; nothing
#       was compared. CI treats 77 as skipped, not passed.
set -euo pipefail
ONLY=${1:-}

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
OUT=${BEATGUARD_ARM_OUT:-$REPO/build/arm-check}
SKIP=77
# cannot_run REASON: this machine cannot run the check; exit as skipped.
cannot_run() {
    echo "arm-check: SKIPPED, this machine cannot run the ARM check: $*" >&2
    exit $SKIP
}
[ "$(id -u)" = 0 ] || cannot_run "it needs root (debootstrap, chroot, mount)"
SHARED_DATA=$(cd "${BEATGUARD_SHARED_DATA:-$REPO/../shared/data}" 2>/dev/null && pwd) \
    || cannot_run "no ECG data at ${BEATGUARD_SHARED_DATA:-$REPO/../shared/data}"
[ -e "$SHARED_DATA/mitdb/106.dat" ] || cannot_run "no record 106 in $SHARED_DATA/mitdb"
ARM_ROOT=${BEATGUARD_ARM_ROOT:-/var/cache/beatguard/arm64-bookworm}
export BEATGUARD_ARM_ROOT=$ARM_ROOT
HOST_PY=${BEATGUARD_HOST_PYTHON:-$REPO/.venv/bin/python}
HOST_BIN=$(dirname "$HOST_PY")
# Cached beside the root, outside the checkout, so fresh clones reuse it.
LEGACY_X86=${BEATGUARD_LEGACY_VENV:-$(dirname "$ARM_ROOT")/legacy-tflite-x86_64}
ARM_VENV=/opt/beatguard/venv
ARM_LEGACY=/opt/beatguard/legacy
RECORD=106
PTY_SECONDS=${BEATGUARD_ARM_PTY_SECONDS:-60}
TIME_SCALE=${BEATGUARD_TIME_SCALE:-30}
# Set when pip cannot install tflite-runtime 2.14 on one side: its
# comparison is then not made, and the summary says so.
LEGACY_MISSING=""

mkdir -p "$OUT"
rm -f "$OUT/verdicts.txt"
CHECK_START=$SECONDS
TIMES=()

FAILED=()

log() { printf '[arm-check %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# step NAME CMD...: run CMD, record its wall time (skipped when ONLY is set
# and NAME does not contain it).
step() {
    local name=$1 t0=$SECONDS
    shift
    if [ -n "$ONLY" ] && [[ "$name" != *"$ONLY"* ]]; then
        log "-- skipping $name"
        return 0
    fi
    log "== $name"
    local verdict=ok
    if ! "$@"; then
        verdict=FAILED
        FAILED+=("$name")
        printf 'arm-check: FAILED: %s (see the lines above)\n' "$name" >&2
    fi
    TIMES+=("$(printf '%-44s %5d s  %s' "$name" $((SECONDS - t0)) "$verdict")")
}

# in_arm CMD...: run CMD inside the root, checkout at /src, data, output.
# The tests use the x86_64 bundle (training needs TensorFlow, absent here).
in_arm() {
    BEATGUARD_ARM_ENV="BEATGUARD_SHARED_DATA=/shared/data BEATGUARD_EXPECT_EMULATION=1
        BEATGUARD_TEST_BUNDLE_106=/out/bundle BEATGUARD_TIME_SCALE=$TIME_SCALE" \
        bash "$HERE/arm_root.sh" run \
        --bind "$REPO:/src" --bind "$SHARED_DATA:/shared/data" --bind "$OUT:/out" \
        -- "$@"
}

# Every failure to build the root is the machine's (host tools, binfmt,
# network, the package registry): the check is skipped, loudly.
build_root() {
    bash "$HERE/arm_root.sh" build \
        || cannot_run "the arm64 root at $ARM_ROOT could not be built (see the lines above)"
    in_arm /bin/true \
        || cannot_run "aarch64 programs do not run in the root at $ARM_ROOT under qemu-user"
}

x86_bundle() {
    "$HOST_PY" "$HERE/fixed_beats.py" bundle --out "$OUT/bundle" \
        --record-path "$SHARED_DATA/mitdb/$RECORD"
}

x86_beats() {
    "$HOST_PY" "$HERE/fixed_beats.py" cut --data "$SHARED_DATA/mitdb" \
        --record "$RECORD" --bundle "$OUT/bundle" --out "$OUT/beats-$RECORD.npz"
}

# score PYTHON INTERPRETER OUTFILE
x86_score() {
    legacy_present "$2" || return 0
    "$1" "$HERE/fixed_beats.py" score --bundle "$OUT/bundle" \
        --beats "$OUT/beats-$RECORD.npz" --interpreter "$2" --out "$OUT/$3"
}

arm_score() {
    legacy_present "$2" || return 0
    in_arm "$1/bin/python" /src/benchmarks/arm/fixed_beats.py score \
        --bundle /out/bundle --beats "/out/beats-$RECORD.npz" \
        --interpreter "$2" --out "/out/$3"
}

# legacy_env CMD...: make a legacy environment; pip's exit 3 (tflite-runtime
# 2.14 has no wheel for this Python or glibc) is said plainly and leaves the
# tflite-runtime comparison out, as the check cannot make it.
legacy_env() {
    local rc=0
    "$@" || rc=$?
    if [ $rc -eq 3 ]; then
        LEGACY_MISSING="tflite-runtime 2.14 cannot be installed by pip on ${LEGACY_SIDE}"
        printf 'arm-check: %s; its comparison is not made\n' "$LEGACY_MISSING" >&2
        return 0
    fi
    return $rc
}

legacy_present() {
    [ "$1" != tflite-runtime ] || [ -z "$LEGACY_MISSING" ] || {
        log "not scored: $LEGACY_MISSING"
        return 1
    }
}

x86_legacy_env() {
    LEGACY_SIDE=x86_64 legacy_env bash "$REPO/benchmarks/legacy_tflite.sh" "$LEGACY_X86"
}

arm_install() {
    in_arm bash -c "set -e
        rm -rf /tmp/beatguard-src && mkdir /tmp/beatguard-src
        tar -C /src --exclude=.git --exclude=.venv --exclude=build --exclude='*.egg-info' \
            --exclude=runs --exclude=demo-output -cf - . | tar -C /tmp/beatguard-src -xf -
        $ARM_VENV/bin/pip install --quiet --no-deps --no-build-isolation \
            --force-reinstall /tmp/beatguard-src
        $ARM_VENV/bin/python -c 'import beatguard.device, platform; print(\"beatguard on\", platform.machine())'"
}

arm_legacy_env() {
    [ -z "$LEGACY_MISSING" ] || return 0
    LEGACY_SIDE=aarch64 legacy_env \
        in_arm bash /src/benchmarks/legacy_tflite.sh --python /usr/bin/python3 "$ARM_LEGACY"
}

# The tests that need no TensorFlow: the device and the serial link, and
# this check's own tests. TensorFlow is not installed in the root; a test
# there that asks for it by name (a "tensorflow" interpreter case) is
# deselected with -k, and one that imports it without importorskip fails.
ARM_TESTS=(tests/device tests/firmware_bridge tests/arm)
# Left out of the emulated run: none now. Five link tests that need every
# last sample of a stream used to be (the simulator waited a fixed 5 s of wall
# time for the reader, which a loaded emulated reader missed once in five
# runs); the simulator now waits until the reader has taken every queued byte
# (firmware_bridge/simulator.py, PtyPort.drain). Add node ids here to leave a
# test out, with the reason.
ARM_DESELECT=()

arm_tests() {
    local present=() deselect=()
    for t in "${ARM_TESTS[@]}"; do [ -e "$REPO/$t" ] && present+=("$t"); done
    # --deselect takes node ids, relative to the checkout (pytest's rootdir).
    for t in "${ARM_DESELECT[@]}"; do deselect+=("--deselect=$t"); done
    # From /tmp, not /src: the checkout's top-level beatguard/ folder would
    # shadow the installed package, whose subpackages live in other folders.
    in_arm bash -c "cd /tmp && $ARM_VENV/bin/pytest -q -p no:cacheprovider --disable-warnings --durations=8 \
        --basetemp=/tmp/beatguard-pytest \
        -m 'not slow' -k 'not tensorflow' ${deselect[*]} ${present[*]/#//src/}"
}

pty_run() {  # PYTHON-BIN-DIR LABEL
    "$1/python" "$HERE/pty_run.py" run --bin "$1" --data "$SHARED_DATA/mitdb" \
        --record "$RECORD" --seconds "$PTY_SECONDS" --bundle "$OUT/bundle" \
        --out "$OUT/pty-$2.json"
}

arm_pty_run() {
    in_arm "$ARM_VENV/bin/python" /src/benchmarks/arm/pty_run.py run --bin "$ARM_VENV/bin" \
        --data /shared/data/mitdb --record "$RECORD" --seconds "$PTY_SECONDS" \
        --bundle /out/bundle --out /out/pty-aarch64.json
}

compare_scores() {  # A B
    if [[ "$1" == *tflite-runtime* ]] && [ -n "$LEGACY_MISSING" ]; then
        echo "NOT COMPARED: $LEGACY_MISSING" >>"$OUT/verdicts.txt"
        return 0
    fi
    "$HOST_PY" "$HERE/fixed_beats.py" compare "$OUT/$1" "$OUT/$2" \
        --bundle "$OUT/bundle" --verdicts "$OUT/verdicts.txt"
}

compare_pty() { "$HOST_PY" "$HERE/pty_run.py" compare "$OUT/pty-x86_64.json" "$OUT/pty-aarch64.json"; }

# One check at a time per root: the root's environments are shared state.
mkdir -p "$(dirname "$ARM_ROOT")" 2>/dev/null && { exec 9>"$ARM_ROOT.lock"; } 2>/dev/null \
    || cannot_run "cannot write beside the root at $ARM_ROOT"
flock -n 9 || { log "another arm-check holds $ARM_ROOT.lock; waiting"; flock 9; }

ONLY_SAVED=$ONLY ONLY=""
step "arm64 root (cached at $ARM_ROOT)" build_root
ONLY=$ONLY_SAVED
step "x86_64: model bundle" x86_bundle
step "x86_64: fixed beats of record $RECORD" x86_beats
step "x86_64: scores, ai-edge-litert" x86_score "$HOST_PY" ai-edge-litert scores-x86_64-ai-edge-litert.bin
step "x86_64: legacy venv (tflite-runtime 2.14)" x86_legacy_env
step "x86_64: scores, tflite-runtime 2.14" x86_score "$LEGACY_X86/bin/python" tflite-runtime scores-x86_64-tflite-runtime.bin
step "x86_64: one minute on a pty" pty_run "$HOST_BIN" x86_64
step "aarch64: install beatguard[device]" arm_install
step "aarch64: TensorFlow-free tests" arm_tests
step "aarch64: scores, ai-edge-litert" arm_score "$ARM_VENV" ai-edge-litert scores-aarch64-ai-edge-litert.bin
step "aarch64: legacy venv (tflite-runtime 2.14)" arm_legacy_env
step "aarch64: scores, tflite-runtime 2.14" arm_score "$ARM_LEGACY" tflite-runtime scores-aarch64-tflite-runtime.bin
step "aarch64: one minute on a pty" arm_pty_run
step "compare: ai-edge-litert aarch64 = x86_64" compare_scores scores-x86_64-ai-edge-litert.bin scores-aarch64-ai-edge-litert.bin
step "compare: tflite-runtime aarch64 = x86_64" compare_scores scores-x86_64-tflite-runtime.bin scores-aarch64-tflite-runtime.bin
step "compare: pty run aarch64 = x86_64" compare_pty

if [ -n "$ONLY" ]; then
    printf '%s\n' "${TIMES[@]}"
    [ ${#FAILED[@]} -eq 0 ]
    exit
fi
{
    cat "$OUT/verdicts.txt" 2>/dev/null
    if [ ${#FAILED[@]} -eq 0 ]; then result=passed; else result="FAILED (${#FAILED[@]} steps)"; fi
    echo "arm-check $result on $(date -u '+%Y-%m-%d %H:%M UTC'); QEMU_CPU=${BEATGUARD_QEMU_CPU:-cortex-a72}"
    printf '%s\n' "${TIMES[@]}"
    printf '%-44s %5d s\n' "total" $((SECONDS - CHECK_START))
    echo "root on disk: $(du -sh --one-file-system "$ARM_ROOT" | cut -f1) ($ARM_ROOT)"
    echo "output on disk: $(du -sh "$OUT" | cut -f1) ($OUT)"
} | tee "$OUT/summary.txt"
[ ${#FAILED[@]} -eq 0 ]
