#!/usr/bin/env bash
# Install TEL3SIS on a fresh Debian or Ubuntu machine, from this checkout:
#   - system packages (apt; sudo is used when not root),
#   - a virtual environment at .venv/ with the project in it (llama-cpp-python compiles: minutes),
#   - the default local models, into MODELS_DIR (default ~/.local/share/tel3sis/models).
# Safe to run again: what is already there is kept.
#
#   ./install.sh          what the appliance needs
#   ./install.sh --dev    plus what the test suite needs
#
# CMAKE_ARGS is passed to the llama.cpp build. The default, -DGGML_NATIVE=OFF, builds a wheel that
# runs on any CPU of this architecture; -DGGML_NATIVE=ON is faster on the machine that built it.
set -euo pipefail
cd "$(dirname "$0")"

dev=0
for arg in "$@"; do
    case "$arg" in
        --dev) dev=1 ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown option $arg (try --help)" >&2; exit 2 ;;
    esac
done

say() { printf '\n==> %s\n' "$*"; }

runtime_packages=(
    python3 python3-venv python3-dev build-essential cmake pkg-config git
    libportaudio2 espeak-ng
    libspeexdsp1
)
# chromium (+ its driver) runs the status page's browser tests; prometheus brings promtool,
# which checks the alert rules; the rest serve the board provisioning checks.
test_packages=(redis-server sip-tester sox shellcheck chromium chromium-driver prometheus
    nftables systemd fdisk dosfstools mtools xz-utils util-linux
    pulseaudio pulseaudio-utils libasound2-plugins)

packages=("${runtime_packages[@]}")
if [ "$dev" = 1 ]; then
    packages+=("${test_packages[@]}")
fi

missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
    say "Installing system packages: ${missing[*]}"
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        sudo="sudo"
    fi
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

python="${PYTHON:-python3}"
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "install.sh: TEL3SIS needs Python 3.11 or newer; $python is $("$python" --version 2>&1)." >&2
    echo "Set PYTHON=/path/to/python3.11 and run again." >&2
    exit 1
fi

if [ ! -x .venv/bin/python ]; then
    say "Creating .venv with $("$python" --version)"
    "$python" -m venv .venv
fi

say "Installing the project into .venv (the first time, llama.cpp compiles for a few minutes)"
.venv/bin/python -m pip install --quiet --upgrade pip
extra=""
if [ "$dev" = 1 ]; then
    extra="[dev]"
fi
CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF}" .venv/bin/python -m pip install --quiet --editable ".${extra}"

if ! .venv/bin/python -c 'import pjsua2' 2>/dev/null; then
    # pjsua2-python has wheels for x86_64 only: elsewhere (boards) pjproject is built here.
    say "Building pjproject for the SIP line (no pjsua2 wheel for $(uname -m); about 10 minutes)"
    firmware-scripts/build-pjproject.sh --wheel-dir .venv/wheels --python .venv/bin/python
    .venv/bin/python -m pip install --quiet --no-index --find-links .venv/wheels pjsua2
fi

say "Installing the default models"
.venv/bin/appliance models install
if [ "$dev" = 1 ]; then
    # The tests run most calls with the 0.5B (0.5 GB): half the 1.5B's time a turn.
    say "Installing the smaller language model the tests use"
    .venv/bin/appliance models install qwen2.5-coder-0.5b-instruct
fi

say "Done. Start the appliance with: .venv/bin/appliance serve"
