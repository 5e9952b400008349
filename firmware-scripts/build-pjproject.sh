#!/usr/bin/env bash
# Build pjproject and its pjsua2 Python binding into the appliance's virtual environment.
#
# pjsua2-python has no aarch64 wheel and Debian has no pjproject, so a board (Raspberry Pi OS or
# Jetson, Debian bookworm based) builds it here: a pinned pjproject release, its tarball checked
# against a sha256, configured against the system OpenSSL 3, and the SWIG binding installed into
# the venv. It cannot run on the development machine (no internet there): the test suite lints
# it with ShellCheck and runs its offline paths (a tarball that fails the sha256 check).
#
#   firmware-scripts/build-pjproject.sh [--venv DIR] [--work DIR] [--jobs N] [--force]
#
#   --venv DIR   the appliance's venv (default: .venv next to this checkout)
#   --work DIR   where the tarball and the build live (default: ~/.cache/tel3sis/pjproject);
#                an offline board can be given the tarball there beforehand
#   --jobs N     parallel compile jobs (default: the number of cores)
#   --force      build again even when the venv already has this pjsua2
#
# Safe to run again: a verified tarball is kept, a finished build is reused, and a venv that
# already imports this pjsua2 is left alone.
set -euo pipefail

readonly PJ_VERSION="2.15.1"
readonly PJ_SHA256="8f3bd99caf003f96ed8038b8a36031eb9d8cd9eaea1eaff7e01c2eef6bd55706"
readonly PJ_URL="https://github.com/pjsip/pjproject/archive/refs/tags/${PJ_VERSION}.tar.gz"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$(dirname "$here")/.venv"
work="${XDG_CACHE_HOME:-$HOME/.cache}/tel3sis/pjproject"
jobs="$(nproc 2>/dev/null || echo 2)"
force=0

usage() { sed -n '2,20p' "$0"; }
say() { printf '\n==> %s\n' "$*"; }
die() { printf 'build-pjproject.sh: %s\n' "$*" >&2; exit 1; }

while [ "$#" -gt 0 ]; do
    case "$1" in
        --venv) venv="${2:?--venv needs a directory}"; shift 2 ;;
        --work) work="${2:?--work needs a directory}"; shift 2 ;;
        --jobs) jobs="${2:?--jobs needs a number}"; shift 2 ;;
        --force) force=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown option $1" ;;
    esac
done

python="$venv/bin/python"
[ -x "$python" ] || die "no virtual environment at $venv (run ./install.sh first, or pass --venv)"

installed_version() {
    "$python" - <<'PY' 2>/dev/null || true
import importlib.metadata as m
for name in ("pjsua2", "pjsua2-python"):
    try:
        print(m.version(name)); break
    except m.PackageNotFoundError:
        pass
PY
}

if [ "$force" = 0 ] && [ "$(installed_version)" = "$PJ_VERSION" ] \
    && "$python" -c 'import pjsua2; pjsua2.Endpoint' 2>/dev/null; then
    say "pjsua2 $PJ_VERSION is already in $venv (use --force to build again)"
    exit 0
fi

mkdir -p "$work"
tarball="$work/pjproject-${PJ_VERSION}.tar.gz"
sha_ok() { printf '%s  %s\n' "$PJ_SHA256" "$1" | sha256sum --check --status; }

if [ -f "$tarball" ] && ! sha_ok "$tarball"; then
    die "$tarball does not match sha256 $PJ_SHA256; remove it and run again"
fi
if [ ! -f "$tarball" ]; then
    command -v curl >/dev/null || die "curl is needed to download $PJ_URL (or put the tarball in $work)"
    say "Downloading pjproject $PJ_VERSION"
    curl -fL --retry 3 -o "$tarball.part" "$PJ_URL"
    sha_ok "$tarball.part" || { rm -f "$tarball.part"; die "the download does not match sha256 $PJ_SHA256"; }
    mv "$tarball.part" "$tarball"
fi

packages=(build-essential pkg-config python3-dev swig libssl-dev curl ca-certificates)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
    say "Installing build packages: ${missing[*]}"
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        sudo="sudo"
    fi
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# The build's settings: a finished build is reused only when they have not changed.
config_site='/* TEL3SIS: written by firmware-scripts/build-pjproject.sh */
/* Calls at once (the pjsua2-python wheel has 4): set SIP_PJSUA_MAX_CALLS=32 to match. */
#define PJSUA_MAX_CALLS 32
/* epoll and room for many sockets: pjsua opens RTP and RTCP for every INVITE, and pjlib
   holds a closed socket'"'"'s slot for 500 ms, so a flood of INVITEs needs headroom. */
#define PJ_IOQUEUE_MAX_HANDLES 1024
/* The appliance answers or refuses each INVITE at once, so it needs no automatic 100 Trying;
   without it, SIP_REFUSAL=silent sends strangers nothing at all. */
#define PJSUA_DISABLE_AUTO_SEND_100 1
#define PJMEDIA_HAS_VIDEO 0
#define PJ_HAS_IPV6 1'
configure_flags=(
    --enable-epoll --disable-video --disable-sound --disable-v4l2 --disable-ffmpeg --disable-sdl
    --disable-openh264 --disable-libyuv --disable-opencore-amr --disable-silk --disable-bcg729
    --disable-android-mediacodec --with-ssl=/usr
)
stamp_text="$PJ_VERSION $PJ_SHA256 ${configure_flags[*]} $config_site"
src="$work/pjproject-${PJ_VERSION}"
stamp="$src/.tel3sis-built"

if [ "$force" = 1 ] || [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$stamp_text" ]; then
    say "Building pjproject $PJ_VERSION with $jobs jobs (about 10 minutes on a Raspberry Pi 4)"
    rm -rf "$src"
    tar -xzf "$tarball" -C "$work"
    [ -d "$src" ] || die "the tarball did not unpack to $src"
    printf '%s\n' "$config_site" > "$src/pjlib/include/pj/config_site.h"
    (
        cd "$src"
        CFLAGS="-O2 -fPIC" CXXFLAGS="-O2 -fPIC" ./configure "${configure_flags[@]}"
        make dep
        make -j"$jobs"
    )
    printf '%s' "$stamp_text" > "$stamp"
fi

say "Installing the pjsua2 binding into $venv"
(
    cd "$src/pjsip-apps/src/swig"
    make python PYTHON_EXE="$python"
    cd python
    PJDIR="$src" "$python" -m pip install --quiet --no-build-isolation --force-reinstall .
)

"$python" - <<'PY'
import pjsua2
assert pjsua2.AudioMediaPort and pjsua2.Endpoint
print("pjsua2", pjsua2.Endpoint.__module__, "imports")
PY
say "Done: set SIP_PJSUA_MAX_CALLS=32 in .env (this build allows 32 calls at once)"
