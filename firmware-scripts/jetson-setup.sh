#!/usr/bin/env bash
# Sets a Jetson (Orin Nano and others running JetPack) for steady inference: a power mode
# (nvpmodel) and clocks locked at their maximum (jetson_clocks), now and at every boot.
# Touches: the power mode (nvpmodel -m, kept by nvpmodel across boots); the clocks now
#   (jetson_clocks); /etc/systemd/system/tel3sis-jetson-clocks.service (enabled) to lock them
#   at boot. Refuses to run anywhere but a Jetson. Idempotent.
#
#   sudo firmware-scripts/jetson-setup.sh [--mode N]   (default 0: the module's MAXN mode;
#                                                    `nvpmodel -p --verbose` lists the modes)
set -euo pipefail

mode=0
while [ $# -gt 0 ]; do
    case "$1" in
        --mode) mode="${2:?}"; shift 2 ;;
        -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "jetson-setup.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
    esac
done
[[ "$mode" =~ ^[0-9]+$ ]] || { echo "jetson-setup.sh: --mode takes a number" >&2; exit 2; }
root="${ROOT:-}"
if [ ! -f "$root/etc/nv_tegra_release" ] || ! command -v nvpmodel >/dev/null; then
    echo "jetson-setup.sh: not a Jetson (no /etc/nv_tegra_release or nvpmodel); nothing done" >&2
    exit 1
fi
[ "$(id -u)" -eq 0 ] || { echo "jetson-setup.sh: run as root" >&2; exit 1; }
changed=0

current="$(nvpmodel -q 2>/dev/null | awk '/^[0-9]+$/ { print; exit }')"
if [ "$current" != "$mode" ]; then
    # Some modes need a reboot; nvpmodel asks, and answering no keeps it for the next boot.
    echo no | nvpmodel -m "$mode" || true
    changed=1
fi
jetson_clocks

unit="$root/etc/systemd/system/tel3sis-jetson-clocks.service"
content="[Unit]
Description=TEL3SIS: lock the Jetson's clocks at their maximum
After=nvpmodel.service

[Service]
Type=oneshot
ExecStart=/usr/bin/jetson_clocks

[Install]
WantedBy=multi-user.target"
if [ ! -f "$unit" ] || [ "$(cat "$unit")" != "$content" ]; then
    printf '%s\n' "$content" > "$unit"
    systemctl daemon-reload
    changed=1
fi
if ! systemctl is-enabled --quiet tel3sis-jetson-clocks.service; then
    systemctl enable tel3sis-jetson-clocks.service
    changed=1
fi
if [ "$changed" = 1 ]; then echo "changed: power mode $mode, clocks locked"; else echo "unchanged: power mode $mode, clocks locked"; fi
