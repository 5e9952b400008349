#!/usr/bin/env bash
# Builds pjproject (PJSIP) and its pjsua2 Python binding (SWIG) from source into a wheel, for
# boards that PyPI has no pjsua2 wheel for (aarch64). Install it with
#   pip install --no-index --find-links WHEEL_DIR pjsua2==VERSION
# Touches: WHEEL_DIR (the wheel is added; nothing else there changes) and a build folder
#   (BUILD_DIR, default /var/tmp/tel3sis-pjproject, deleted afterwards unless --keep). Installs
#   nothing system-wide. Needs: build-essential, swig, python3-dev, libasound2-dev, libssl-dev,
#   uuid-dev, curl; PYTHON's setuptools and wheel. Idempotent: a wheel of this version already in
#   WHEEL_DIR for this Python is left alone.
# The source is GitHub's tarball of the release tag, checked against its sha256 (defaults from
# ansible/group_vars/all/versions.yml); pass --tarball to build from a file already here.
#
#   firmware-scripts/build-pjproject.sh --wheel-dir DIR [--python PYTHON] [--version V]
#       [--sha256 HEX] [--tarball FILE] [--max-calls N] [--jobs N] [--keep]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

versions="$here/../ansible/group_vars/all/versions.yml"
from_versions() { sed -n "s/^$1: *\"\{0,1\}\([^\"]*\)\"\{0,1\}$/\1/p" "$versions" 2>/dev/null; }
version="${PJPROJECT_VERSION:-$(from_versions tel3sis_pjproject_version)}"
sha256="${PJPROJECT_SHA256:-$(from_versions tel3sis_pjproject_sha256)}"
max_calls="${PJSUA_MAX_CALLS:-$(from_versions tel3sis_pjsua_max_calls)}"
python="python3" wheel_dir="" tarball="" jobs="$(nproc)" keep=0
build_dir="${BUILD_DIR:-/var/tmp/tel3sis-pjproject}"

die() { echo "build-pjproject.sh: $*" >&2; exit 1; }
while [ $# -gt 0 ]; do
    case "$1" in
        --wheel-dir) wheel_dir="${2:?}"; shift 2 ;;
        --python) python="${2:?}"; shift 2 ;;
        --version) version="${2:?}"; shift 2 ;;
        --sha256) sha256="${2:?}"; shift 2 ;;
        --tarball) tarball="${2:?}"; shift 2 ;;
        --max-calls) max_calls="${2:?}"; shift 2 ;;
        --jobs) jobs="${2:?}"; shift 2 ;;
        --keep) keep=1; shift ;;
        -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option $1 (try --help)" ;;
    esac
done
[ -n "$wheel_dir" ] || die "--wheel-dir is required"
[[ "$version" =~ ^[0-9]+\.[0-9]+(\.[0-9]+)?$ ]] || die "no pjproject version (--version or $versions)"
[[ "$sha256" =~ ^[0-9a-f]{64}$ ]] || die "no sha256 for pjproject $version (--sha256); refusing an unchecked source"
[[ "$max_calls" =~ ^[0-9]+$ ]] || die "--max-calls takes a number"

abi="$("$python" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"
mkdir -p "$wheel_dir"
existing="$(find "$wheel_dir" -maxdepth 1 -name "pjsua2-$version-$abi-$abi-*.whl" -print -quit)"
if [ -n "$existing" ]; then
    echo "unchanged: $existing is already built"
    exit 0
fi

mkdir -p "$build_dir"
if [ "$keep" = 0 ]; then
    trap 'rm -rf "$build_dir"' EXIT
fi
if [ -z "$tarball" ]; then
    tarball="$build_dir/pjproject-$version.tar.gz"
    [ -f "$tarball" ] || curl -fsSL --retry 3 -o "$tarball" \
        "https://github.com/pjsip/pjproject/archive/refs/tags/$version.tar.gz"
fi
actual="$(sha256sum "$tarball" | cut -d' ' -f1)"
[ "$actual" = "$sha256" ] || die "$tarball: sha256 is $actual, expected $sha256; not building it"

source_dir="$build_dir/pjproject-$version"
rm -rf "$source_dir"
tar -xzf "$tarball" -C "$build_dir"
[ -d "$source_dir" ] || die "$tarball did not unpack to pjproject-$version/"

# The appliance answers calls in-process through pjsua2 with its own media ports: no video or
# sound device, epoll, and more calls and sockets than pjsua's defaults.
cat > "$source_dir/pjlib/include/pj/config_site.h" <<CONFIG
/* Written by TEL3SIS firmware-scripts/build-pjproject.sh */
/* Calls at once (the x86_64 pjsua2-python wheel has 4): set SIP_PJSUA_MAX_CALLS to match. */
#define PJSUA_MAX_CALLS $max_calls
/* Room for many sockets: pjsua opens RTP and RTCP for every INVITE, and pjlib holds a closed
   socket's slot for 500 ms, so a flood of INVITEs needs headroom. */
#define PJ_IOQUEUE_MAX_HANDLES 1024
/* The appliance answers or refuses each INVITE at once, so it needs no automatic 100 Trying;
   without it, SIP_REFUSAL=silent sends strangers nothing at all. */
#define PJSUA_DISABLE_AUTO_SEND_100 1
#define PJMEDIA_HAS_VIDEO 0
#define PJ_HAS_IPV6 1
CONFIG
cd "$source_dir"
./configure --enable-epoll --disable-video --disable-sound --disable-v4l2 --disable-ffmpeg \
    --disable-sdl --disable-openh264 --disable-libyuv --disable-opencore-amr --disable-silk \
    --disable-bcg729 --disable-android-mediacodec --with-ssl=/usr \
    CFLAGS="-O2 -fPIC" CXXFLAGS="-O2 -fPIC"
make dep
make -j "$jobs"
cd pjsip-apps/src/swig/python
make PYTHON_EXE="$python" pjsua2_wrap.cpp
PJDIR="$source_dir" "$python" -m pip wheel --no-deps --no-build-isolation -w "$wheel_dir" .
built="$(find "$wheel_dir" -maxdepth 1 -name "pjsua2-$version-$abi-$abi-*.whl" -print -quit)"
[ -n "$built" ] || die "the build finished but left no pjsua2-$version wheel in $wheel_dir"
echo "changed: built $built (PJSUA_MAX_CALLS $max_calls)"
