#!/usr/bin/env bash
# Sets every CPU's frequency governor (default: performance, so a turn never waits for the
# clock to ramp up), now and, with --persist, at every boot.
# Touches: /sys/devices/system/cpu/cpu*/cpufreq/scaling_governor (now); with --persist also
#   /usr/local/sbin/tel3sis-cpu-governor and /etc/systemd/system/tel3sis-cpu-governor.service
#   (a oneshot unit, enabled). Idempotent: prints "unchanged" when there was nothing to do.
# SYSFS_ROOT and ROOT (default /) move both places, for tests and for a mounted image.
#
#   sudo firmware-scripts/cpu-governor.sh [performance|schedutil|ondemand|powersave] [--persist]
set -euo pipefail

governor=performance persist=0
for arg in "$@"; do
    case "$arg" in
        --persist) persist=1 ;;
        performance|schedutil|ondemand|powersave|conservative) governor="$arg" ;;
        -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "cpu-governor.sh: unknown argument $arg (try --help)" >&2; exit 2 ;;
    esac
done
root="${ROOT:-}"
sysfs="${SYSFS_ROOT:-/sys}"
changed=0

shopt -s nullglob
policies=("$sysfs"/devices/system/cpu/cpu[0-9]*/cpufreq)
if [ "${#policies[@]}" -eq 0 ]; then
    echo "no cpufreq in $sysfs (a VM, a container or a chroot): nothing to set now"
fi
for policy in "${policies[@]}"; do
    if ! grep -qw "$governor" "$policy/scaling_available_governors"; then
        echo "cpu-governor.sh: $governor is not offered by $policy ($(cat "$policy/scaling_available_governors"))" >&2
        exit 1
    fi
    if [ "$(cat "$policy/scaling_governor")" != "$governor" ]; then
        echo "$governor" > "$policy/scaling_governor"
        changed=1
    fi
done

install_file() {  # install_file MODE PATH CONTENT: write only when different
    if [ ! -f "$2" ] || [ "$(cat "$2")" != "$3" ]; then
        mkdir -p "$(dirname "$2")"
        printf '%s\n' "$3" > "$2"
        chmod "$1" "$2"
        changed=1
    fi
}
if [ "$persist" = 1 ]; then
    install_file 0755 "$root/usr/local/sbin/tel3sis-cpu-governor" "#!/bin/sh
# Installed by TEL3SIS firmware-scripts/cpu-governor.sh --persist.
for g in /sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_governor; do
    [ -w \"\$g\" ] && echo $governor > \"\$g\"
done
exit 0"
    install_file 0644 "$root/etc/systemd/system/tel3sis-cpu-governor.service" "[Unit]
Description=TEL3SIS: CPU frequency governor $governor
After=sysinit.target

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/tel3sis-cpu-governor

[Install]
WantedBy=multi-user.target"
    link="$root/etc/systemd/system/multi-user.target.wants/tel3sis-cpu-governor.service"
    if [ ! -L "$link" ]; then
        mkdir -p "$(dirname "$link")"
        ln -sf /etc/systemd/system/tel3sis-cpu-governor.service "$link"
        changed=1
    fi
fi
if [ "$changed" = 1 ]; then echo "changed: governor $governor"; else echo "unchanged: governor $governor"; fi
