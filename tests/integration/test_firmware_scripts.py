"""firmware-scripts/ run for real, against loop devices, file images and scratch directory trees.

Nothing here names a real disk: every device is a loop device over a file in tmp_path.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT

SCRIPTS = ROOT / "firmware-scripts"
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="loop devices need root (CI runs as root)")
MIB = 1024 * 1024


def _run(
    script: str, *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPTS / script), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **(env or {})},
    )


def _sh(*command: str) -> str:
    return subprocess.run(command, capture_output=True, text=True, check=True, timeout=60).stdout


@pytest.fixture
def pi_image(tmp_path: Path) -> Path:
    """An image laid out like Raspberry Pi OS: an MBR, a FAT boot partition with cmdline.txt."""
    raw = tmp_path / "raspios.img"
    with raw.open("wb") as out:
        out.truncate(40 * MIB)
    subprocess.run(
        ["sfdisk", "--quiet", str(raw)], input="label: dos\nstart=2048, size=65536, type=c\n",
        text=True, check=True, timeout=60,
    )  # fmt: skip
    _sh("mkfs.vfat", "--offset", "2048", "-n", "bootfs", str(raw), "32768")
    cmdline = tmp_path / "cmdline.txt"
    cmdline.write_text("console=serial0,115200 root=PARTUUID=1234-02 rootwait\n")
    _sh("mcopy", "-i", f"{raw}@@{2048 * 512}", str(cmdline), "::cmdline.txt")
    _sh("xz", "-0", "-T1", str(raw))
    image = tmp_path / "raspios.img.xz"
    digest = hashlib.sha256(image.read_bytes()).hexdigest()
    (tmp_path / "raspios.img.xz.sha256").write_text(f"{digest}  raspios.img.xz\n")
    return image


@contextlib.contextmanager
def _loop_device(backing: Path, size: int = 64 * MIB) -> Iterator[str]:
    with backing.open("wb") as out:
        out.truncate(size)
    device = _sh("losetup", "--find", "--show", str(backing)).strip()
    try:
        yield device
    finally:
        subprocess.run(["losetup", "--detach", device], check=False, timeout=60)


@pytest.fixture
def card(tmp_path: Path) -> Iterator[str]:
    """A blank 64 MiB "SD card": a loop device over a file."""
    with _loop_device(tmp_path / "card.bin") as device:
        yield device


def _blank(device: str) -> bool:
    with Path(device).open("rb") as stream:
        return stream.read(MIB) == bytes(MIB)


def test_flash_refuses_without_a_device(pi_image: Path) -> None:
    done = _run("flash-sd.sh", "--image", str(pi_image))
    assert done.returncode == 1
    assert "no --device given" in done.stderr


def test_flash_refuses_a_plain_file(pi_image: Path, tmp_path: Path) -> None:
    target = tmp_path / "not-a-disk.img"
    target.write_bytes(bytes(1024))
    done = _run("flash-sd.sh", "--image", str(pi_image), "--device", str(target))
    assert done.returncode == 1
    assert "not a block device" in done.stderr
    assert target.read_bytes() == bytes(1024)


@as_root
def test_flash_refuses_a_disk_with_a_mounted_filesystem(pi_image: Path, tmp_path: Path) -> None:
    # Stands in for the system disk: the same check (a disk under a mounted filesystem).
    with _loop_device(tmp_path / "in-use.bin") as device:
        _sh("mkfs.ext4", "-q", device)
        mountpoint = tmp_path / "mnt"
        mountpoint.mkdir()
        _sh("mount", device, str(mountpoint))
        try:
            done = _run(
                "flash-sd.sh", "--image", str(pi_image), "--device", device,
                "--allow-non-removable", stdin=Path(device).name + "\n",
            )  # fmt: skip
        finally:
            _sh("umount", str(mountpoint))
    assert done.returncode == 1
    assert "holds a mounted filesystem" in done.stderr


@as_root
def test_flash_refuses_the_disk_the_system_runs_from(pi_image: Path) -> None:
    # Only asks which disk / lives on and checks the refusal message names it: the script is
    # never pointed at it, whatever that disk is.
    root_source = _sh("findmnt", "-no", "SOURCE", "/").strip()
    if not root_source.startswith("/dev/"):
        pytest.skip(f"/ is on {root_source}, not a block device")
    listed = _sh(
        "bash",
        "-c",
        f"source <(sed -n '/^disks_in_use()/,/^}}/p' {SCRIPTS}/flash-sd.sh); disks_in_use",
    )
    disks = set(listed.split())
    parents = set(_sh("lsblk", "-nrso", "NAME,TYPE", root_source).split())
    assert disks & parents, (disks, parents)


@as_root
def test_flash_refuses_a_non_removable_disk_unless_told(pi_image: Path, card: str) -> None:
    done = _run("flash-sd.sh", "--image", str(pi_image), "--device", card, stdin="x\n")
    assert done.returncode == 1
    assert "not removable" in done.stderr
    assert _blank(card)


@as_root
def test_flash_refuses_a_wrong_checksum(pi_image: Path, card: str) -> None:
    done = _run(
        "flash-sd.sh", "--image", str(pi_image), "--device", card, "--allow-non-removable",
        "--sha256", "0" * 64, stdin=Path(card).name + "\n",
    )  # fmt: skip
    assert done.returncode == 1
    assert "sha256 is" in done.stderr
    assert _blank(card)


@as_root
def test_flash_refuses_an_image_without_a_checksum(pi_image: Path, card: str) -> None:
    (pi_image.parent / "raspios.img.xz.sha256").unlink()
    done = _run("flash-sd.sh", "--image", str(pi_image), "--device", card, "--allow-non-removable")
    assert done.returncode == 1
    assert "no checksum" in done.stderr
    assert _blank(card)


@as_root
@pytest.mark.parametrize("answer", ["", "yes\n", "sda\n"])
def test_flash_writes_nothing_unless_the_device_name_is_typed_back(
    pi_image: Path, card: str, answer: str
) -> None:
    done = _run(
        "flash-sd.sh", "--image", str(pi_image), "--device", card, "--allow-non-removable",
        stdin=answer,
    )  # fmt: skip
    assert done.returncode == 1
    assert "not confirmed" in done.stderr
    assert Path(card).name in done.stdout  # it showed the device before asking
    assert _blank(card)


@as_root
def test_flash_writes_the_image_and_seeds_the_first_boot(
    pi_image: Path, card: str, tmp_path: Path
) -> None:
    key = tmp_path / "id_ed25519.pub"
    key.write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBoard test@laptop\n")
    done = _run(
        "flash-sd.sh", "--image", str(pi_image), "--device", card, "--allow-non-removable",
        "--hostname", "tel3sis-desk", "--user", "tess", "--ssh-key", str(key),
        "--wifi-ssid", "Front Office", "--wifi-country", "GB",
        stdin=Path(card).name + "\n", env={"WIFI_PSK": "it's a secret"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    fat = f"{card}@@{2048 * 512}"
    firstrun = _sh("mtype", "-i", fat, "::firstrun.sh")
    assert "set_hostname tel3sis-desk" in firstrun
    assert "enable_ssh -k ssh-ed25519\\ AAAAC3NzaC1lZDI1NTE5AAAAIBoard\\ test@laptop" in firstrun
    assert "set_wlan Front\\ Office it\\'s\\ a\\ secret GB" in firstrun
    assert "/usr/lib/userconf-pi/userconf tess " in firstrun
    cmdline = _sh("mtype", "-i", fat, "::cmdline.txt")
    assert cmdline.startswith("console=serial0,115200 root=PARTUUID=1234-02 rootwait systemd.run=")
    assert cmdline.count("\n") == 1
    # The rest of the card is the image, byte for byte, past the boot partition.
    image = subprocess.run(["xz", "-dc", str(pi_image)], capture_output=True, check=True).stdout
    with Path(card).open("rb") as stream:
        written = stream.read(len(image))
    assert written[: 2048 * 512] == image[: 2048 * 512]
    assert written[(2048 + 65536) * 512 :] == image[(2048 + 65536) * 512 :]


def test_cpu_governor_sets_every_cpu_once_and_persists(tmp_path: Path) -> None:
    sysfs, root = tmp_path / "sys", tmp_path / "root"
    for cpu in ("cpu0", "cpu1"):
        policy = sysfs / "devices/system/cpu" / cpu / "cpufreq"
        policy.mkdir(parents=True)
        (policy / "scaling_governor").write_text("ondemand\n")
        (policy / "scaling_available_governors").write_text("ondemand performance schedutil\n")
    env = {"SYSFS_ROOT": str(sysfs), "ROOT": str(root)}
    first = _run("cpu-governor.sh", "--persist", env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("changed")
    governors = sorted(sysfs.glob("devices/system/cpu/cpu*/cpufreq/scaling_governor"))
    assert [g.read_text().strip() for g in governors] == ["performance", "performance"]
    unit = root / "etc/systemd/system/tel3sis-cpu-governor.service"
    assert "ExecStart=/usr/local/sbin/tel3sis-cpu-governor" in unit.read_text()
    assert (
        root / "etc/systemd/system/multi-user.target.wants/tel3sis-cpu-governor.service"
    ).is_symlink()
    again = _run("cpu-governor.sh", "--persist", env=env)
    assert again.stdout.startswith("unchanged"), again.stdout
    refused = _run("cpu-governor.sh", "powersave", env=env)
    assert refused.returncode == 1
    assert "not offered" in refused.stderr


def test_watchdog_configures_systemd_and_the_pi_once(tmp_path: Path) -> None:
    config = tmp_path / "boot/firmware/config.txt"
    config.parent.mkdir(parents=True)
    config.write_text("[all]\narm_64bit=1\n")
    first = _run("watchdog.sh", "--timeout", "14", env={"ROOT": str(tmp_path)})
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("changed")
    dropin = tmp_path / "etc/systemd/system.conf.d/tel3sis-watchdog.conf"
    assert "RuntimeWatchdogSec=14s" in dropin.read_text()
    assert config.read_text().count("dtparam=watchdog=on") == 1
    again = _run("watchdog.sh", "--timeout", "14", env={"ROOT": str(tmp_path)})
    assert again.stdout.startswith("unchanged")
    assert config.read_text().count("dtparam=watchdog=on") == 1
    assert _run("watchdog.sh", "--timeout", "2").returncode == 2


def test_jetson_setup_refuses_anything_but_a_jetson(tmp_path: Path) -> None:
    done = _run("jetson-setup.sh", env={"ROOT": str(tmp_path)})
    assert done.returncode == 1
    assert "not a Jetson" in done.stderr


def test_build_pjproject_refuses_an_unchecked_or_wrong_source(tmp_path: Path) -> None:
    tarball = tmp_path / "pjproject.tar.gz"
    tarball.write_bytes(b"not the release")
    env = {"BUILD_DIR": str(tmp_path / "build")}
    wrong = _run(
        "build-pjproject.sh", "--wheel-dir", str(tmp_path / "w"), "--tarball", str(tarball), env=env
    )
    assert wrong.returncode == 1
    assert "expected 8f3bd99c" in wrong.stderr
    unchecked = _run(
        "build-pjproject.sh", "--wheel-dir", str(tmp_path / "w"), "--sha256", "", env=env
    )
    assert unchecked.returncode != 0
    assert not (tmp_path / "build").exists()


def test_build_pjproject_leaves_a_built_wheel_alone(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    abi = _sh(
        "python3", "-c", "import sys; print(f'cp{sys.version_info[0]}{sys.version_info[1]}')"
    ).strip()
    built = wheels / f"pjsua2-2.15.1-{abi}-{abi}-linux_aarch64.whl"
    built.write_bytes(b"wheel")
    done = _run(
        "build-pjproject.sh", "--wheel-dir", str(wheels), env={"BUILD_DIR": str(tmp_path / "b")}
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("unchanged")
    assert built.read_bytes() == b"wheel"


def test_every_script_says_what_it_touches() -> None:
    for script in sorted(SCRIPTS.glob("*.sh")):
        header = script.read_text().split("\nset -euo pipefail")[0]
        assert "# Touches:" in header, script.name
        assert os.access(script, os.X_OK), script.name
    assert shutil.which("shellcheck")
