#!/usr/bin/env bash
# Writes a Raspberry Pi OS image to an SD card and pre-seeds its first boot (hostname, user with
# an SSH key, Wi-Fi).
# Touches: ONLY the device named with --device, and only after every check below has passed and
#   you have typed the device's name back: its whole contents are replaced by the image. Files
#   are then added to the card's boot (FAT) partition: firstrun.sh and cmdline.txt. Nothing else.
# Checks, before writing: run as root; --device is a whole-disk block device; it is not a disk
#   holding a mounted filesystem or active swap (so never the system disk) and none of its
#   partitions is mounted; it is removable (SD/USB) unless --allow-non-removable; it is no
#   larger than 256 GiB unless --allow-large; the image's sha256 matches (--sha256, or the
#   IMAGE.sha256 file published beside it); the image fits.
# Needs: lsblk, findmnt, sfdisk, xz (for .img.xz), mtools (mcopy), openssl, dd, cmp, blockdev.
#
#   sudo firmware-scripts/flash-sd.sh --image 2024-11-19-raspios-bookworm-arm64-lite.img.xz \
#       --device /dev/sdX --hostname tel3sis --user pi --ssh-key ~/.ssh/id_ed25519.pub \
#       [--wifi-ssid NAME --wifi-country GB]   (the Wi-Fi passphrase is read from WIFI_PSK or asked)
set -euo pipefail

die() { echo "flash-sd.sh: $*" >&2; exit 1; }
usage() { sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }

image="" device="" sha256="" hostname="" user="" ssh_key="" wifi_ssid="" wifi_country=""
allow_non_removable=0 allow_large=0 verify=1
while [ $# -gt 0 ]; do
    case "$1" in
        --image) image="${2:?}"; shift 2 ;;
        --device) device="${2:?}"; shift 2 ;;
        --sha256) sha256="${2:?}"; shift 2 ;;
        --hostname) hostname="${2:?}"; shift 2 ;;
        --user) user="${2:?}"; shift 2 ;;
        --ssh-key) ssh_key="${2:?}"; shift 2 ;;
        --wifi-ssid) wifi_ssid="${2:?}"; shift 2 ;;
        --wifi-country) wifi_country="${2:?}"; shift 2 ;;
        --allow-non-removable) allow_non_removable=1; shift ;;
        --allow-large) allow_large=1; shift ;;
        --no-verify) verify=0; shift ;;
        -h|--help) usage ;;
        *) die "unknown option $1 (try --help)" ;;
    esac
done

# --- the arguments ------------------------------------------------------------------------------
[ -n "$device" ] || die "no --device given: name the SD card explicitly (see lsblk); nothing written"
[ -n "$image" ] || die "no --image given"
[ -f "$image" ] || die "$image: no such image file"
[ "$(id -u)" -eq 0 ] || die "must run as root (it writes $device)"
if [ -n "$hostname" ] && ! [[ "$hostname" =~ ^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$ ]]; then
    die "--hostname $hostname: use lowercase letters, digits and hyphens"
fi
if [ -n "$user" ] && ! [[ "$user" =~ ^[a-z_][a-z0-9_-]{0,31}$ ]]; then
    die "--user $user: not a valid user name"
fi
[ -z "$ssh_key" ] || [ -f "$ssh_key" ] || die "--ssh-key $ssh_key: no such file"
[ -z "$ssh_key" ] || [ -n "$user" ] || die "--ssh-key needs --user (the account it logs in to)"
if [ -n "$wifi_ssid" ] && ! [[ "$wifi_country" =~ ^[A-Z]{2}$ ]]; then
    die "--wifi-ssid needs --wifi-country (two capital letters, e.g. GB)"
fi

# --- the device ---------------------------------------------------------------------------------
[ -b "$device" ] || die "$device is not a block device; nothing written"
device="$(readlink -f "$device")"
name="$(basename "$device")"
[ "$(lsblk -dno TYPE "$device")" = disk ] || [ "$(lsblk -dno TYPE "$device")" = loop ] \
    || die "$device is a $(lsblk -dno TYPE "$device"), not a whole disk; name the disk (e.g. /dev/sdb)"

# Every disk under a mounted filesystem or active swap (through partitions, LVM, RAID, crypt).
disks_in_use() {
    { findmnt -rno SOURCE; tail -n +2 /proc/swaps | cut -d' ' -f1; } | grep '^/dev/' | sort -u \
        | while read -r source; do
            [ -b "$source" ] && lsblk -nrso NAME,TYPE "$source" 2>/dev/null | awk '$2 == "disk" || $2 == "loop" { print $1 }'
        done | sort -u
}
if disks_in_use | grep -qx "$name"; then
    die "$device holds a mounted filesystem or swap (the system disk, or a disk in use); refusing"
fi
if lsblk -nro MOUNTPOINT "$device" | grep -q .; then
    die "a partition of $device is mounted; unmount it first"
fi
removable="$(lsblk -dno RM "$device" | tr -d ' ')"
transport="$(lsblk -dno TRAN "$device" | tr -d ' ')"
if [ "$removable" != 1 ] && [ "$transport" != usb ] && [[ "$name" != mmcblk* ]]; then
    [ "$allow_non_removable" = 1 ] || die "$device is not removable (not an SD card or USB reader); refusing (--allow-non-removable overrides)"
fi
device_bytes="$(lsblk -bdno SIZE "$device" | tr -d ' ')"
if [ "$device_bytes" -gt $((256 * 1024 * 1024 * 1024)) ] && [ "$allow_large" = 0 ]; then
    die "$device is larger than 256 GiB, unlike an SD card; refusing (--allow-large overrides)"
fi

# --- the image ----------------------------------------------------------------------------------
if [ -z "$sha256" ] && [ -f "$image.sha256" ]; then
    sha256="$(cut -d' ' -f1 "$image.sha256")"
fi
[ -n "$sha256" ] || die "no checksum: pass --sha256 or put $image.sha256 beside the image"
echo "Checking the image's sha256 ..."
actual="$(sha256sum "$image" | cut -d' ' -f1)"
[ "$actual" = "${sha256,,}" ] || die "$image: sha256 is $actual, expected $sha256; nothing written"
case "$image" in
    *.xz) image_bytes="$(xz --robot --list "$image" | awk '$1 == "totals" { print $5 }')"
          decompress=(xz -dc "$image") ;;
    *) image_bytes="$(stat -c %s "$image")"; decompress=(cat "$image") ;;
esac
[ "$image_bytes" -le "$device_bytes" ] || die "the image ($image_bytes bytes) does not fit on $device ($device_bytes bytes)"

# --- ask ----------------------------------------------------------------------------------------
echo
lsblk -o NAME,SIZE,TYPE,RM,TRAN,MODEL,FSTYPE,LABEL "$device"
echo
echo "EVERYTHING on $device ($((device_bytes / 1000000)) MB) will be replaced by $(basename "$image")."
printf 'Type the device name (%s) to go on: ' "$name"
read -r answer || answer=""
[ "$answer" = "$name" ] || die "not confirmed; nothing written"

# --- write and check ----------------------------------------------------------------------------
echo "Writing ..."
"${decompress[@]}" | dd of="$device" bs=4M conv=fsync status=progress
sync
if [ "$verify" = 1 ]; then
    echo "Reading back ..."
    "${decompress[@]}" | cmp -n "$image_bytes" - "$device" || die "$device does not read back as the image; the card may be failing"
fi
blockdev --rereadpt "$device" 2>/dev/null || true

# --- pre-seed the first boot --------------------------------------------------------------------
if [ -z "$hostname$user$wifi_ssid" ]; then
    echo "Done: $device holds the image (no first-boot settings asked for)."
    exit 0
fi
# The boot partition is the first one; mtools reaches it at its byte offset, with no mount.
boot_start="$(sfdisk -d "$device" | awk -F'[=,]' '
    /^sector-size:/ { split($0, s, ": "); size = s[2] }
    /start=/ && !done { gsub(/ /, "", $2); start = $2; done = 1 }
    END { if (start) print start * (size ? size : 512) }')"
[ -n "$boot_start" ] || die "$device has no partition table after writing"
fat=(-i "$device@@$boot_start")
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mcopy "${fat[@]}" ::cmdline.txt "$work/cmdline.txt" || die "no cmdline.txt on the first partition: is this a Raspberry Pi OS image?"

q() { printf '%q' "$1"; }
{
    echo '#!/bin/bash'
    echo '# Written by TEL3SIS firmware-scripts/flash-sd.sh: runs once at first boot, then removes itself.'
    echo 'set +e'
    echo 'custom=/usr/lib/raspberrypi-sys-mods/imager_custom'
    if [ -n "$hostname" ]; then
        echo "if [ -x \$custom ]; then \$custom set_hostname $(q "$hostname"); else"
        printf '  echo %s > /etc/hostname; sed -i "s/127.0.1.1.*/127.0.1.1 %s/" /etc/hosts; fi\n' \
            "$(q "$hostname")" "$hostname"
    fi
    if [ -n "$user" ]; then
        password="$(openssl rand -base64 18)"
        echo "/usr/lib/userconf-pi/userconf $(q "$user") $(q "$(openssl passwd -6 "$password")")"
        if [ -n "$ssh_key" ]; then
            echo "\$custom enable_ssh -k $(q "$(cat "$ssh_key")")"
        else
            echo "\$custom enable_ssh"
        fi
    fi
    if [ -n "$wifi_ssid" ]; then
        psk="${WIFI_PSK:-}"
        if [ -z "$psk" ]; then
            printf 'Wi-Fi passphrase for %s: ' "$wifi_ssid"
            read -rs psk || psk=""
            echo
        fi
        echo "\$custom set_wlan $(q "$wifi_ssid") $(q "$psk") $(q "$wifi_country")"
    fi
    echo 'rm -f /boot/firmware/firstrun.sh'
    echo "sed -i 's| systemd.run.*||g' /boot/firmware/cmdline.txt"
    echo 'exit 0'
} > "$work/firstrun.sh"
cmdline="$(tr -d '\n' < "$work/cmdline.txt" | sed 's| systemd.run.*||')"
echo "$cmdline systemd.run=/boot/firmware/firstrun.sh systemd.run_success_action=reboot systemd.unit=kernel-command-line.target" > "$work/cmdline.txt"
mcopy -o "${fat[@]}" "$work/firstrun.sh" ::firstrun.sh
mcopy -o "${fat[@]}" "$work/cmdline.txt" ::cmdline.txt
sync
echo "Done: $device holds the image; first boot sets:${hostname:+ hostname $hostname}${user:+, user $user}${wifi_ssid:+, Wi-Fi $wifi_ssid}."
if [ -n "$user" ]; then
    echo "$user's password (for the console; SSH uses the key): $password"
fi
