#!/usr/bin/env bash
# Turns on the board's hardware watchdog and lets systemd pet it, so a hung kernel or a frozen
# system reboots by itself (the appliance's own stalls are caught by its unit's WatchdogSec).
# Touches: /etc/systemd/system.conf.d/tel3sis-watchdog.conf (RuntimeWatchdogSec,
#   RebootWatchdogSec); on a Raspberry Pi, the line dtparam=watchdog=on in
#   /boot/firmware/config.txt (or /boot/config.txt). Takes effect at the next boot.
# ROOT (default /) moves every path, for tests and for a mounted image. Idempotent: prints
#   "unchanged" when there was nothing to do.
#
#   sudo firmware-scripts/watchdog.sh [--timeout SECONDS]    (default 15; the Pi's limit is 15)
set -euo pipefail

timeout=15
while [ $# -gt 0 ]; do
    case "$1" in
        --timeout) timeout="${2:?}"; shift 2 ;;
        -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "watchdog.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
    esac
done
if ! [[ "$timeout" =~ ^[0-9]+$ ]] || [ "$timeout" -lt 5 ]; then
    echo "watchdog.sh: --timeout must be 5 s or more" >&2
    exit 2
fi
root="${ROOT:-}"
changed=0

dropin="$root/etc/systemd/system.conf.d/tel3sis-watchdog.conf"
content="# Installed by TEL3SIS firmware-scripts/watchdog.sh
[Manager]
RuntimeWatchdogSec=${timeout}s
RebootWatchdogSec=2min"
if [ ! -f "$dropin" ] || [ "$(cat "$dropin")" != "$content" ]; then
    mkdir -p "$(dirname "$dropin")"
    printf '%s\n' "$content" > "$dropin"
    changed=1
fi

for config in "$root/boot/firmware/config.txt" "$root/boot/config.txt"; do
    [ -f "$config" ] || continue
    if ! grep -qx 'dtparam=watchdog=on' "$config"; then
        printf '\n# TEL3SIS firmware-scripts/watchdog.sh\ndtparam=watchdog=on\n' >> "$config"
        changed=1
    fi
    break
done
if [ "$changed" = 1 ]; then echo "changed: watchdog ${timeout}s (from the next boot)"; else echo "unchanged: watchdog ${timeout}s"; fi
