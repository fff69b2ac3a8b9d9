#!/usr/bin/env bash
# The last-layer rounding experiment (final_layer.py) on both machines.
#
# Usage: final_layer.sh        after `make arm-check`, as root
#
# Uses what arm_check.sh left: the bundle and the fixed beats in
# ${BEATGUARD_ARM_OUT:-build/arm-check}, the arm64 root and the two
# tflite-runtime 2.14 environments. Writes into OUT/final-layer:
#   variants/             the no-offset and output-offset models, inputs
#   <machine>-<interpreter>.npz   every variant's int8 outputs (default
#                         options), and .<variant>.ops.npz: every op's outputs
#   findings.txt          the explanation and the comparisons
# Exit status: 0 when it ran (whatever it found), 1 when a step failed.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
OUT=${BEATGUARD_ARM_OUT:-$REPO/build/arm-check}
ARM_ROOT=${BEATGUARD_ARM_ROOT:-/var/cache/beatguard/arm64-bookworm}
HOST_PY=${BEATGUARD_HOST_PYTHON:-$REPO/.venv/bin/python}
LEGACY_X86=${BEATGUARD_LEGACY_VENV:-$(dirname "$ARM_ROOT")/legacy-tflite-x86_64}
EXP=$OUT/final-layer
FINDINGS=$EXP/findings.txt

for need in "$OUT/bundle/model.tflite" "$OUT/beats-106.npz" "$ARM_ROOT/opt/beatguard/legacy"; do
    [ -e "$need" ] || { echo "final_layer: $need is missing; run make arm-check first" >&2; exit 1; }
done
mkdir -p "$EXP"
: >"$FINDINGS"

in_arm() {
    bash "$HERE/arm_root.sh" run --bind "$REPO:/src" --bind "$OUT:/out" -- "$@"
}

log() { printf '[final-layer %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

log "converting the variants (x86_64, TensorFlow)"
"$HOST_PY" "$HERE/final_layer.py" variants --bundle "$OUT/bundle" \
    --beats "$OUT/beats-106.npz" --out "$EXP/variants" 2>&1 | grep '^\[' | tee -a "$FINDINGS"

log "int8 outputs on x86_64"
"$HOST_PY" "$HERE/final_layer.py" run --variants "$EXP/variants" \
    --interpreter ai-edge-litert --out "$EXP/x86_64-ai-edge-litert.npz"
"$LEGACY_X86/bin/python" "$HERE/final_layer.py" run --variants "$EXP/variants" \
    --interpreter tflite-runtime --out "$EXP/x86_64-tflite-runtime.npz"

log "int8 outputs on aarch64 (emulated)"
in_arm /opt/beatguard/venv/bin/python /src/benchmarks/arm/final_layer.py run \
    --variants /out/final-layer/variants --interpreter ai-edge-litert \
    --out /out/final-layer/aarch64-ai-edge-litert.npz
in_arm /opt/beatguard/legacy/bin/python /src/benchmarks/arm/final_layer.py run \
    --variants /out/final-layer/variants --interpreter tflite-runtime \
    --out /out/final-layer/aarch64-tflite-runtime.npz

for variant in no-offset output-offset; do
    log "the last layer's arithmetic, $variant, tflite-runtime 2.14"
    "$LEGACY_X86/bin/python" "$HERE/final_layer.py" explain \
        --model "$EXP/variants/$variant/model.tflite" \
        "$EXP/x86_64-tflite-runtime.$variant.ops.npz" \
        "$EXP/aarch64-tflite-runtime.$variant.ops.npz" 2>&1 | tee -a "$FINDINGS"
done
for interp in ai-edge-litert tflite-runtime; do
    "$HOST_PY" "$HERE/final_layer.py" compare "$EXP/x86_64-$interp.npz" \
        "$EXP/aarch64-$interp.npz" --variants "$EXP/variants" --verdicts "$FINDINGS"
done
log "findings in $FINDINGS"
cat "$FINDINGS"
