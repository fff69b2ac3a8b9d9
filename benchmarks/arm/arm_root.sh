#!/usr/bin/env bash
# The Debian bookworm arm64 root file system that `make arm-check` runs in.
#
# Usage:
#   arm_root.sh build            build the root once, reuse it when complete
#   arm_root.sh status           say whether a complete root is present
#   arm_root.sh run [--bind SRC:DST]... -- CMD [ARG...]
#                                run CMD inside the root under qemu-user
#
# The root lives outside the checkout, in ${BEATGUARD_ARM_ROOT} (default
# /var/cache/beatguard/arm64-bookworm), so every clone on this machine and
# every CI run reuses it. It is built with `debootstrap --foreign` and the
# second stage run under qemu-user-static, then gets Python 3.11 and, in the
# venv /opt/beatguard/venv, the device wheels pinned in
# requirements-arm64.txt (aarch64 builds from the package registry).
#
# Two stamps mark what is complete: .beatguard/base.stamp (the Debian system)
# and .beatguard/venv.stamp (the environment, keyed by the hash of the
# requirements file). A root without its base stamp is half built and is
# removed and rebuilt; a changed requirements file rebuilds the venv only.
#
# Commands run with QEMU_CPU set (default cortex-a72, a Pi 4; cortex-a76 is a
# Pi 5): with qemu 7.2's default CPU model XNNPACK's int8 kernels gave wrong
# results. A Pi-like /proc/cpuinfo is bind-mounted over the host's, because
# ai-edge-litert crashes in Interpreter() when it reads an x86 cpuinfo. All
# mounts are made in a private mount namespace (unshare), so they vanish when
# the command ends, even if it is killed.
#
# Needs root, and binfmt_misc (mounted here when it is not).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ARM_ROOT=${BEATGUARD_ARM_ROOT:-/var/cache/beatguard/arm64-bookworm}
MIRROR=${BEATGUARD_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
BASE_RECIPE="bookworm arm64 minbase python3 python3-venv ca-certificates v1"
REQUIREMENTS="$HERE/requirements-arm64.txt"
CPUINFO="$HERE/cpuinfo-pi4"
QEMU_CPU_MODEL=${BEATGUARD_QEMU_CPU:-cortex-a72}
VENV_IN_ROOT=/opt/beatguard/venv
HOST_CA_BUNDLE=${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}
STATE_DIR="$ARM_ROOT/.beatguard"

log() { printf '[arm-root %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { printf 'arm-root: error: %s\n' "$*" >&2; exit 1; }

require_root() {
    [ "$(id -u)" = 0 ] || die "building and entering the arm64 root needs root (debootstrap, chroot, mount)"
}

install_host_tools() {
    local missing=()
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    command -v qemu-aarch64-static >/dev/null || missing+=(qemu-user-static)
    command -v update-binfmts >/dev/null || missing+=(binfmt-support)
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing host tools: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null \
        || die "could not install ${missing[*]} with apt-get"
}

ensure_binfmt() {
    if [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
        log "mounting binfmt_misc"
        mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc \
            || die "binfmt_misc is not mounted and cannot be mounted; aarch64 programs cannot run here"
    fi
    if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
        log "registering qemu-aarch64 with binfmt_misc"
        update-binfmts --enable qemu-aarch64 \
            || die "could not register qemu-aarch64 with binfmt_misc"
    fi
    grep -q '^enabled' /proc/sys/fs/binfmt_misc/qemu-aarch64 \
        || die "binfmt_misc entry qemu-aarch64 is present but disabled"
}

# Mount what a process inside the root needs, then exec chroot. Runs in a
# private mount namespace; arguments: extra "SRC:DST" binds, "--", command.
enter_root() {
    local binds=()
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do binds+=("$1"); shift; done
    [ "${1:-}" = "--" ] && shift
    mount -t proc proc "$ARM_ROOT/proc"
    mount --bind "$CPUINFO" "$ARM_ROOT/proc/cpuinfo"
    mount --rbind /dev "$ARM_ROOT/dev"
    mount --rbind /sys "$ARM_ROOT/sys"
    cp /etc/resolv.conf "$ARM_ROOT/etc/resolv.conf"
    # The host's CA bundle, which may hold a local proxy's certificate.
    cp "$HOST_CA_BUNDLE" "$ARM_ROOT/etc/ssl/host-ca-certificates.crt"
    local bind src dst
    for bind in "${binds[@]}"; do
        src=${bind%%:*}
        dst=${bind#*:}
        mkdir -p "$ARM_ROOT$dst"
        mount --bind "$src" "$ARM_ROOT$dst"
    done
    exec chroot "$ARM_ROOT" /usr/bin/env -i \
        PATH="$VENV_IN_ROOT/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
        HOME=/root LANG=C.UTF-8 TERM=dumb QEMU_CPU="$QEMU_CPU_MODEL" \
        PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_DEFAULT_TIMEOUT=180 \
        PIP_CERT=/etc/ssl/host-ca-certificates.crt \
        SSL_CERT_FILE=/etc/ssl/host-ca-certificates.crt \
        PYTHONDONTWRITEBYTECODE=1 \
        ${BEATGUARD_ARM_ENV:-} "$@"
}

# run [--bind SRC:DST]... -- CMD...: CMD inside the root, mounts private.
run_in_root() {
    local binds=()
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do
        case "$1" in
            --bind) binds+=("$2"); shift 2 ;;
            *) die "run: unknown option $1 (expected --bind SRC:DST or --)" ;;
        esac
    done
    [ "${1:-}" = "--" ] && shift
    [ $# -gt 0 ] || die "run: no command given"
    unshare --mount --propagation private -- \
        bash "$HERE/arm_root.sh" __enter "${binds[@]}" -- "$@"
}

remove_half_built_root() {
    if findmnt -rn -o TARGET | grep -q "^$ARM_ROOT/"; then
        die "something is mounted under $ARM_ROOT; unmount it before the root is rebuilt"
    fi
    log "removing the half-built root at $ARM_ROOT"
    rm -rf --one-file-system "$ARM_ROOT"
}

build_base() {
    local t0=$SECONDS
    [ -e "$ARM_ROOT" ] && remove_half_built_root
    mkdir -p "$ARM_ROOT"
    log "debootstrap --foreign --arch=arm64 $SUITE (first stage, on the host)"
    debootstrap --foreign --arch=arm64 --variant=minbase \
        --include=python3,python3-venv,ca-certificates \
        "$SUITE" "$ARM_ROOT" "$MIRROR" >"$ARM_ROOT.debootstrap.log" 2>&1 \
        || die "debootstrap first stage failed; see $ARM_ROOT.debootstrap.log"
    local t1=$SECONDS
    # The binfmt entry has the F flag, so the interpreter need not be inside
    # the root; the copy makes the root usable where the flag is absent.
    cp /usr/bin/qemu-aarch64-static "$ARM_ROOT/usr/bin/"
    log "debootstrap --second-stage (under qemu-user, QEMU_CPU=$QEMU_CPU_MODEL)"
    unshare --mount --propagation private -- env QEMU_CPU="$QEMU_CPU_MODEL" \
        chroot "$ARM_ROOT" /debootstrap/debootstrap --second-stage \
        >>"$ARM_ROOT.debootstrap.log" 2>&1 \
        || die "debootstrap second stage failed; see $ARM_ROOT.debootstrap.log"
    local t2=$SECONDS
    mkdir -p "$STATE_DIR"
    {
        echo "first_stage_s=$((t1 - t0))"
        echo "second_stage_s=$((t2 - t1))"
    } >"$STATE_DIR/base-times.txt"
    echo "$BASE_RECIPE" >"$STATE_DIR/base.stamp"
    log "base system ready in $((t2 - t0)) s (first stage $((t1 - t0)) s, second $((t2 - t1)) s)"
}

requirements_hash() { sha256sum "$REQUIREMENTS" | cut -d' ' -f1; }

build_venv() {
    local t0=$SECONDS
    rm -f "$STATE_DIR/venv.stamp"
    rm -rf "${ARM_ROOT:?}$VENV_IN_ROOT"
    mkdir -p "$ARM_ROOT/opt/beatguard"
    cp "$REQUIREMENTS" "$ARM_ROOT/opt/beatguard/requirements.txt"
    log "creating $VENV_IN_ROOT and installing the device wheels (aarch64)"
    run_in_root -- /usr/bin/python3 -m venv "$VENV_IN_ROOT"
    run_in_root -- "$VENV_IN_ROOT/bin/pip" install --quiet --only-binary=:all: \
        -r /opt/beatguard/requirements.txt \
        || die "pip could not install the device wheels inside the arm64 root"
    echo "venv_s=$((SECONDS - t0))" >"$STATE_DIR/venv-times.txt"
    requirements_hash >"$STATE_DIR/venv.stamp"
    log "environment ready in $((SECONDS - t0)) s"
}

root_is_complete() {
    [ -f "$STATE_DIR/base.stamp" ] && [ "$(cat "$STATE_DIR/base.stamp")" = "$BASE_RECIPE" ] \
        && [ -f "$STATE_DIR/venv.stamp" ] \
        && [ "$(cat "$STATE_DIR/venv.stamp")" = "$(requirements_hash)" ]
}

build() {
    require_root
    install_host_tools
    ensure_binfmt
    local t0=$SECONDS
    if root_is_complete; then
        log "reusing the complete arm64 root at $ARM_ROOT"
        return 0
    fi
    if [ ! -f "$STATE_DIR/base.stamp" ] || [ "$(cat "$STATE_DIR/base.stamp")" != "$BASE_RECIPE" ]; then
        build_base
    fi
    build_venv
    log "arm64 root built in $((SECONDS - t0)) s; $(du -sh --one-file-system "$ARM_ROOT" | cut -f1) on disk"
}

status() {
    if root_is_complete; then
        echo "complete: $ARM_ROOT ($(du -sh --one-file-system "$ARM_ROOT" | cut -f1))"
    elif [ -e "$ARM_ROOT" ]; then
        echo "incomplete: $ARM_ROOT (will be rebuilt by 'arm_root.sh build')"
        return 1
    else
        echo "absent: $ARM_ROOT"
        return 1
    fi
}

case "${1:-}" in
    build) build ;;
    status) status ;;
    run)
        shift
        require_root
        ensure_binfmt
        root_is_complete || die "no complete arm64 root at $ARM_ROOT; run '$0 build' first"
        run_in_root "$@"
        ;;
    __enter) shift; enter_root "$@" ;;
    *) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
