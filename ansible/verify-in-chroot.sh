#!/usr/bin/env bash
# Applies site.yml for real to a fresh Debian bookworm arm64 root (a chroot run under qemu-user
# emulation, ansible_connection=community.general.chroot), twice, and fails unless the second
# run changes nothing; then runs `appliance doctor` and `appliance call --wav` inside it.
#
# Skipped, because they need a kernel or hardware the chroot lacks: starting services
# (tel3sis_start_services=false: units are installed and enabled, not started), loading the
# firewall (the rules it writes are checked with the host's `nft -c`, not loaded), the CPU
# governor and watchdog (their scripts run; there is no cpufreq or /boot/firmware to change),
# the SD card. Also skipped: the pjsip role (tel3sis_pjsip_enabled=false), because pjproject's
# source is not reachable from here; llama-cpp-python is cross-compiled on the host (compiling
# it under emulation takes over 40 minutes) and handed to the playbook as a prebuilt wheel.
#
# Touches: WORK_DIR (default /var/tmp/tel3sis-chroot: the chroot, rebuilt each run from a cached
#   debootstrap, and caches of the cross-built wheel and Ansible's community.general); while it
#   runs: mounts under the chroot (/proc, /sys, /dev, /dev/pts, an arm64 /proc/cpuinfo) and, when
#   not already on, binfmt_misc and its qemu-aarch64 handler on the host. All are undone on exit,
#   failure included. Installs qemu-user-static, binfmt-support, debootstrap and
#   crossbuild-essential-arm64 with apt when missing. Needs root, Python 3.11 and PyPI.
#
#   sudo ansible/verify-in-chroot.sh [--keep] [--reuse] [--fresh] [--allow-dirty]
#     --keep         leave the provisioned chroot in WORK_DIR/root afterwards
#     --reuse        provision the root a --keep run left, instead of a fresh one (debugging)
#     --fresh        rebuild the cached debootstrap and wheels too
#     --allow-dirty  install uncommitted changes (appliance_allow_dirty)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/.." && pwd)"

keep=0 reuse=0 fresh=0 allow_dirty=false
for arg in "$@"; do
    case "$arg" in
        --keep) keep=1 ;;
        --reuse) reuse=1 ;;
        --fresh) fresh=1 ;;
        --allow-dirty) allow_dirty=true ;;
        -h|--help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "verify-in-chroot.sh: unknown option $arg" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" -eq 0 ] || { echo "verify-in-chroot.sh: run as root (debootstrap, chroot, mounts)" >&2; exit 1; }

work="${WORK_DIR:-/var/tmp/tel3sis-chroot}"
root="$work/root"
cache="$work/cache"
venv_bin="${TOOLS_BIN:-$repo/.venv/bin}"  # ansible-playbook and pip (the dev extra)
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
release="$(sed -n 's/^tel3sis_debian_release: *//p' "$here/group_vars/all/versions.yml")"
# community.general (the chroot connection) ships in the `ansible` package matching ansible-core 2.19.
collections_release=12.3.0
export QEMU_CPU="${QEMU_CPU:-cortex-a72}"  # a Pi 4; qemu's default CPU has features no Pi has
mkdir -p "$work" "$cache"

timings=()
step_started=0
step() { finish_step; echo; echo "==> $*"; step_name="$*"; step_started=$(date +%s); }
finish_step() {
    if [ "$step_started" -gt 0 ]; then
        timings+=("$(( $(date +%s) - step_started ))s  $step_name")
    fi
    step_started=0
}
started=$(date +%s)

# --- clean-up, whatever happens -----------------------------------------------------------------
mounted=() binfmt_mounted=0 binfmt_enabled=0
cleanup() {
    local status=$?
    set +e
    # Anything still running inside the chroot was started by this run.
    for proc in /proc/[0-9]*; do
        if [ "$(readlink "$proc/root" 2>/dev/null)" = "$root" ]; then
            kill "${proc#/proc/}" 2>/dev/null
        fi
    done
    for (( i=${#mounted[@]}-1; i>=0; i-- )); do
        umount "${mounted[i]}" 2>/dev/null || umount -l "${mounted[i]}"
    done
    [ "$binfmt_enabled" = 1 ] && update-binfmts --disable qemu-aarch64
    [ "$binfmt_mounted" = 1 ] && umount /proc/sys/fs/binfmt_misc
    if [ "$keep" = 0 ] && [ -d "$root" ] && ! findmnt -rn -o TARGET | grep -q "^$root"; then
        rm -rf "$root"
    fi
    exit "$status"
}
trap cleanup EXIT
trap "exit 129" HUP; trap "exit 130" INT; trap "exit 143" TERM  # so that cleanup runs
bind() {  # bind SOURCE TARGET [mount options...]
    local source="$1" target="$2"
    shift 2
    mount "$@" "$source" "$target"
    mounted+=("$target")
}

# --- the host -----------------------------------------------------------------------------------
step "Host tools"
needed=()
for package in qemu-user-static binfmt-support debootstrap crossbuild-essential-arm64 git; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || needed+=("$package")
done
if [ "${#needed[@]}" -gt 0 ]; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${needed[@]}"
fi
[ -x "$venv_bin/ansible-playbook" ] || { echo "no $venv_bin/ansible-playbook: run ./install.sh --dev" >&2; exit 1; }
if [ "$(uname -m)" != aarch64 ]; then
    if ! mountpoint -q /proc/sys/fs/binfmt_misc; then
        mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
        binfmt_mounted=1
    fi
    if ! grep -qx enabled /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null; then
        update-binfmts --enable qemu-aarch64
        binfmt_enabled=1
    fi
fi

# --- a fresh arm64 root -------------------------------------------------------------------------
base="$cache/base-$release-arm64.tar"
if [ "$fresh" = 1 ] || [ ! -f "$base" ]; then
    step "debootstrap $release arm64 (cached for later runs)"
    rm -rf "$work/base"
    # What Raspberry Pi OS Lite has and minbase lacks, and what Ansible needs on the target.
    debootstrap --arch=arm64 --variant=minbase \
        --include=python3,python3-apt,sudo,systemd,ca-certificates "$release" "$work/base" "$mirror"
    cat > "$work/base/etc/apt/sources.list" <<SOURCES
deb $mirror $release main
deb $mirror $release-updates main
deb http://deb.debian.org/debian-security $release-security main
SOURCES
    tar -C "$work/base" -cf "$base" .
    rm -rf "$work/base"
fi
# A run that was killed leaves its mounts (/dev among them): removing the root would reach the host.
if findmnt -rn -o TARGET | grep -q "^$root/"; then
    echo "verify-in-chroot.sh: $root still has mounts from an earlier run; unmount them first" \
        "(findmnt -R $root)" >&2
    exit 1
fi
if [ "$reuse" = 1 ] && [ -x "$root/usr/bin/python3" ]; then
    step "Reuse the root a --keep run left"
else
    step "Unpack a fresh root"
    rm -rf "$root"
    mkdir -p "$root"
    tar -C "$root" -xf "$base"
fi
cp /etc/resolv.conf "$root/etc/resolv.conf"
# Outbound HTTPS here passes a proxy with its own CA: pip on the "board" needs the host's bundle.
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/host-ca.crt"
# A chroot has no init: packages must not start daemons inside it (Debian's policy-rc.d).
printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"
chmod 0755 "$root/usr/sbin/policy-rc.d"
bind proc "$root/proc" -t proc
bind /sys "$root/sys" --rbind -o ro
bind /dev "$root/dev" --bind
bind devpts "$root/dev/pts" -t devpts
# onnxruntime reads /proc/cpuinfo at import and aborts on the host's x86 one (an emulation artefact).
cpuinfo="$work/cpuinfo"
for cpu in $(seq 0 $(( $(nproc) - 1 ))); do
    printf 'processor\t: %s\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\n\n' "$cpu"
done > "$cpuinfo"
bind "$cpuinfo" "$root/proc/cpuinfo" --bind
chroot "$root" python3 --version

# --- what the playbook is handed ----------------------------------------------------------------
wheels="$cache/wheels"
llama_version="$(sed -n 's/^llama-cpp-python==//p' "$repo/requirements/board-aarch64.txt")"
if [ "$fresh" = 1 ] || ! compgen -G "$wheels/llama_cpp_python-$llama_version-*linux_aarch64.whl" >/dev/null; then
    step "Cross-compile llama-cpp-python $llama_version for aarch64 on the host"
    rm -rf "$wheels" "$cache/xbuild"
    python3 -m venv "$cache/xbuild"
    "$cache/xbuild/bin/python" -m pip install --quiet --upgrade pip wheel
    CMAKE_ARGS="-DCMAKE_SYSTEM_NAME=Linux -DCMAKE_SYSTEM_PROCESSOR=aarch64 \
-DCMAKE_C_COMPILER=aarch64-linux-gnu-gcc -DCMAKE_CXX_COMPILER=aarch64-linux-gnu-g++ \
-DGGML_NATIVE=OFF" \
        "$cache/xbuild/bin/python" -m pip wheel --no-deps --no-cache-dir \
        --wheel-dir "$cache/xbuild/out" "llama-cpp-python==$llama_version"
    # The library is loaded with ctypes (py3-none): only the platform tag names the host's.
    "$cache/xbuild/bin/python" -m wheel tags --platform-tag linux_aarch64 --remove \
        "$cache/xbuild/out"/llama_cpp_python-*.whl
    mkdir -p "$wheels"
    mv "$cache/xbuild/out"/llama_cpp_python-*linux_aarch64.whl "$wheels/"
    rm -rf "$cache/xbuild"
fi
collections="$cache/collections"
if [ "$fresh" = 1 ] || [ ! -f "$collections/ansible_collections/community/general/MANIFEST.json" ]; then
    step "community.general (the chroot connection) from ansible $collections_release"
    rm -rf "$collections" "$cache/ansible-wheel"
    "$venv_bin/python" -m pip download --quiet --no-deps --only-binary=:all: \
        -d "$cache/ansible-wheel" "ansible==$collections_release"
    "$venv_bin/python" - "$cache/ansible-wheel" "$collections" <<'PY'
import pathlib, sys, zipfile
wheel = next(pathlib.Path(sys.argv[1]).glob("ansible-*.whl"))
with zipfile.ZipFile(wheel) as archive:
    members = [m for m in archive.namelist() if m.startswith("ansible_collections/community/general/")]
    archive.extractall(sys.argv[2], members)
PY
    rm -rf "$cache/ansible-wheel"
fi

password="$(head -c 24 /dev/urandom | base64 | tr -d '/+=')"
cat > "$work/inventory.yml" <<INVENTORY
# Written by ansible/verify-in-chroot.sh
all:
  children:
    raspberry_pi:
      hosts:
        chroot-pi:
          ansible_host: $root
          ansible_connection: community.general.chroot
          ansible_python_interpreter: /usr/bin/python3
  vars:
    tel3sis_lan_networks: [192.0.2.0/24]
    tel3sis_sip_trunk_addresses: [198.51.100.10/32]
    tel3sis_redis_password: $password
    tel3sis_start_services: false
    tel3sis_pjsip_enabled: false
    tel3sis_pip_env: {PIP_CERT: /etc/ssl/host-ca.crt, REQUESTS_CA_BUNDLE: /etc/ssl/host-ca.crt}
    # qemu-user cannot open nf_tables' netlink socket: the host's nft checks the rules instead.
    firewall_validate: false
    # Under qemu-user the models run many times slower than on a Pi (the LLM's warm-up alone
    # takes over a minute): give each model call longer than the appliance's 60 s.
    tel3sis_settings: {ENGINE_TIMEOUT_S: 1800}
    appliance_prebuilt_wheels: $wheels
    appliance_allow_dirty: $allow_dirty
INVENTORY

# --- the playbook, twice ------------------------------------------------------------------------
# A clean environment: the chroot connection hands Ansible's environment to every command on the
# "board", and this host's (pip settings, CA paths) must not leak into it.
playbook() {
    env -i HOME="$HOME" LANG=C.UTF-8 QEMU_CPU="$QEMU_CPU" TMPDIR="${TMPDIR:-/tmp}" \
        PATH="$venv_bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
        ANSIBLE_CONFIG="$here/ansible.cfg" ANSIBLE_COLLECTIONS_PATH="$collections" \
        ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0 \
        "$venv_bin/ansible-playbook" -i "$work/inventory.yml" "$here/site.yml"
}
recap() { grep -E '^chroot-pi +:' "$1" | tail -n 1; }

step "site.yml, first run"
playbook | tee "$work/first-run.log"
recap "$work/first-run.log"
step "site.yml, second run (must change nothing)"
playbook | tee "$work/second-run.log"
second="$(recap "$work/second-run.log")"
echo "$second"
if ! [[ "$second" =~ changed=0\  ]] || ! [[ "$second" =~ failed=0\  ]]; then
    echo "verify-in-chroot.sh: the second run changed something:" >&2
    grep -E '^(changed|TASK)' "$work/second-run.log" | grep -B1 '^changed' >&2 || true
    exit 1
fi

step "The firewall rules the playbook wrote, checked by this host's kernel (nft -c)"
nft -c -f "$root/etc/nftables.conf"

# --- the appliance, inside ----------------------------------------------------------------------
as_appliance() {
    env -i LANG=C.UTF-8 QEMU_CPU="$QEMU_CPU" PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        chroot "$root" /usr/bin/sudo -u tel3sis -H /usr/local/bin/appliance "$@"
}
step "appliance doctor (in the chroot)"
as_appliance doctor | tee "$work/doctor.log"
step "appliance call --wav (in the chroot, under emulation)"
as_appliance call --wav /opt/tel3sis/current/tests/fixtures/audio/goforward.wav \
    --out /var/lib/tel3sis/reply.wav --json > "$work/call.json"
"$venv_bin/python" - "$work/call.json" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
heard = " ".join(turn.get("heard", "") for turn in report["turns"])
said = " ".join(turn.get("reply", "") for turn in report["turns"])
print(f"heard: {heard}\nsaid:  {said}")
assert "forward" in heard.lower(), "the caller was not heard"
assert said.strip(), "the agent said nothing"
PY
[ -s "$root/var/lib/tel3sis/reply.wav" ] || { echo "no reply audio was written" >&2; exit 1; }

finish_step
echo
echo "==> Verified: provisioned, idempotent, doctor and a call ran in the arm64 chroot."
printf '    %s\n' "${timings[@]}"
echo "    $(( $(date +%s) - started ))s  in all"
