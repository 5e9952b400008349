"""Board provisioning: the playbook lints, the Dockerfile lints, and both agree on versions."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.markers import Marker
from packaging.requirements import Requirement

from tests.conftest import ROOT

BIN = Path(sys.executable).parent
ANSIBLE = ROOT / "ansible"
VERSIONS = yaml.safe_load((ANSIBLE / "group_vars/all/versions.yml").read_text())
LOCK = ROOT / "requirements" / "board-aarch64.txt"
BOARD = {"platform_machine": "aarch64", "sys_platform": "linux", "python_version": "3.11"}


def _tool(*command: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "ANSIBLE_NOCOLOR": "1"}
    return subprocess.run(
        [str(BIN / command[0]), *command[1:]],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


@pytest.mark.tools
def test_ansible_lint_passes_the_production_profile() -> None:
    done = _tool("ansible-lint", "--nocolor", cwd=ANSIBLE)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Profile 'production' was required, and it passed" in done.stdout + done.stderr


@pytest.mark.tools
def test_the_playbook_passes_its_syntax_check() -> None:
    done = _tool(
        "ansible-playbook", "--syntax-check", "-i", "inventory.example.yml", "site.yml", cwd=ANSIBLE
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.tools
def test_hadolint_passes_the_dockerfile() -> None:
    done = _tool("hadolint", "--no-color", "Dockerfile.arm64")
    assert done.returncode == 0, done.stdout + done.stderr


def _dockerfile_args() -> dict[str, str]:
    text = (ROOT / "Dockerfile.arm64").read_text()
    return dict(re.findall(r"^ARG (\w+)=(\S+)$", text, re.MULTILINE))


def test_the_dockerfile_builds_the_versions_the_playbook_builds() -> None:
    args = _dockerfile_args()
    assert args["DEBIAN_RELEASE"] == VERSIONS["tel3sis_debian_release"]
    assert args["PJPROJECT_VERSION"] == VERSIONS["tel3sis_pjproject_version"]
    assert args["PJPROJECT_SHA256"] == VERSIONS["tel3sis_pjproject_sha256"]
    assert args["PJSUA_MAX_CALLS"] == str(VERSIONS["tel3sis_pjsua_max_calls"])
    text = (ROOT / "Dockerfile.arm64").read_text()
    # The same build script and the same lock as the roles, not copies of them.
    assert "firmware-scripts/build-pjproject.sh" in text
    assert "--constraint requirements/board-aarch64.txt" in text
    pjsip_role = (ANSIBLE / "roles/pjsip/tasks/main.yml").read_text()
    assert "firmware-scripts/build-pjproject.sh" in pjsip_role
    appliance_role = (ANSIBLE / "roles/appliance/tasks/main.yml").read_text()
    assert "requirements/board-aarch64.txt" in appliance_role


def test_the_build_script_defaults_to_versions_yml(tmp_path: Path) -> None:
    # Its defaults are read from versions.yml: a wrong tarball is refused naming that hash.
    tarball = tmp_path / "x.tar.gz"
    tarball.write_bytes(b"x")
    done = subprocess.run(
        [str(ROOT / "firmware-scripts/build-pjproject.sh"), "--wheel-dir", str(tmp_path / "w"),
         "--tarball", str(tarball)],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "BUILD_DIR": str(tmp_path / "b")},
    )  # fmt: skip
    assert f"expected {VERSIONS['tel3sis_pjproject_sha256']}" in done.stderr


def test_the_readme_quotes_the_same_versions() -> None:
    readme = (ROOT / "README.md").read_text()
    assert f"pjproject {VERSIONS['tel3sis_pjproject_version']}" in readme
    assert f"Python {VERSIONS['tel3sis_python_version']}" in readme
    assert f"Debian {VERSIONS['tel3sis_debian_release']}" in readme
    llama = re.search(r"^llama-cpp-python==(\S+)", LOCK.read_text(), re.MULTILINE)
    assert llama is not None
    assert f"llama-cpp-python {llama[1]}" in readme


def _locked() -> dict[str, str]:
    pins = re.findall(r"^([A-Za-z0-9._-]+)==(\S+)", LOCK.read_text(), re.MULTILINE)
    return {re.sub(r"[-_.]+", "-", name).lower(): version for name, version in pins}


def test_the_board_lock_pins_every_runtime_dependency_within_its_range() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    locked = _locked()
    problems = []
    for line in project["dependencies"]:
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate(BOARD):
            continue
        name = re.sub(r"[-_.]+", "-", requirement.name).lower()
        if name not in locked:
            problems.append(f"{name} is not in the lock")
        elif not requirement.specifier.contains(locked[name], prereleases=True):
            problems.append(f"{name}=={locked[name]} is outside {requirement.specifier}")
    assert problems == [], f"{problems}: run requirements/lock.sh"
    assert Marker("platform_machine == 'x86_64'").evaluate(BOARD) is False


def test_the_wheel_report_lists_every_locked_package() -> None:
    report = (ROOT / "requirements" / "aarch64-wheels.md").read_text()
    rows = dict(re.findall(r"^\| ([a-z0-9._-]+) \| (\S+) \|", report, re.MULTILINE))
    normalized = {re.sub(r"[-_.]+", "-", n).lower(): v for n, v in rows.items() if n != "package"}
    assert normalized == _locked(), "run requirements/check-aarch64-wheels.sh"


def _role_packages() -> set[str]:
    found: set[str] = set()
    for path in ANSIBLE.glob("roles/*/defaults/main.yml"):
        for value in (yaml.safe_load(path.read_text()) or {}).values():
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                found.update(value)
    return found


def test_the_roles_install_what_install_sh_installs() -> None:
    text = (ROOT / "install.sh").read_text()
    listed = re.search(r"runtime_packages=\(([^)]*)\)", text)
    assert listed is not None
    runtime = set(listed[1].split()) - {"git"}  # install.sh builds from a git checkout
    assert runtime - _role_packages() == set()


_RENDER = """
- name: Render the board's files
  hosts: localhost
  connection: local
  gather_facts: false
  vars_files:
    - {ansible}/roles/tel3sis/defaults/main.yml
    - {ansible}/group_vars/all/versions.yml
    - {ansible}/roles/systemd/defaults/main.yml
    - {ansible}/roles/firewall/defaults/main.yml
  tasks:
    - name: Render
      ansible.builtin.template:
        src: "{ansible}/roles/{{{{ item.role }}}}/templates/{{{{ item.name }}}}.j2"
        dest: "{out}/{{{{ item.name }}}}"
        mode: "0644"
      loop:
        - {{ role: systemd, name: tel3sis.service }}
        - {{ role: firewall, name: nftables.conf }}
    - name: The llama-cpp-python version the roles compile
      ansible.builtin.copy:
        content: "{{{{ tel3sis_llama_version }}}}"
        dest: "{out}/llama-version"
        mode: "0644"
"""


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The unit and the firewall rules as the roles write them."""
    out = tmp_path_factory.mktemp("rendered")
    current = out / "current"
    (current / ".venv/bin").mkdir(parents=True)
    (current / ".venv/bin/appliance").symlink_to(BIN / "appliance")
    playbook = out / "render.yml"
    playbook.write_text(_RENDER.format(ansible=ANSIBLE, out=out))
    done = _tool(
        "ansible-playbook", "-i", "localhost,", str(playbook),
        "-e", f"ansible_python_interpreter={sys.executable}", "-e", json.dumps({
            "tel3sis_current": str(current),
            "tel3sis_repo": str(ROOT),
            "tel3sis_lan_networks": ["192.0.2.0/24", "2001:db8::/64"],
            "tel3sis_sip_trunk_addresses": ["198.51.100.10/32"],
        }), cwd=ANSIBLE,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return out


@pytest.mark.tools
def test_the_roles_compile_the_llama_cpp_python_the_lock_pins(rendered: Path) -> None:
    llama = re.search(r"^llama-cpp-python==(\S+)", LOCK.read_text(), re.MULTILINE)
    assert llama is not None
    assert (rendered / "llama-version").read_text() == llama[1]


@pytest.mark.tools
def test_the_unit_is_valid_with_its_watchdog_and_notify(rendered: Path) -> None:
    unit = (rendered / "tel3sis.service").read_text()
    assert "Type=notify" in unit
    assert "WatchdogSec=30" in unit
    assert "Restart=on-failure" in unit
    assert "--env-file /etc/tel3sis/appliance.env serve" in unit
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze is missing (Debian's systemd package)")
    done = subprocess.run(
        ["systemd-analyze", "verify", str(rendered / "tel3sis.service")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


@pytest.mark.tools
def test_the_firewall_rules_load_and_open_only_what_they_should(rendered: Path) -> None:
    rules = (rendered / "nftables.conf").read_text()
    assert "policy drop;" in rules
    assert (
        "set trunk_v4 { type ipv4_addr; flags interval; elements = { 198.51.100.10/32 }; }" in rules
    )
    assert "set trunk_v6 { type ipv6_addr; flags interval; }" in rules
    assert "set lan_v6 { type ipv6_addr; flags interval; elements = { 2001:db8::/64 }; }" in rules
    assert "ip saddr @trunk_v4 meta l4proto { udp, tcp } th dport 5060 accept" in rules
    assert "ip saddr @lan_v4 tcp dport 8080 accept" in rules
    assert "udp dport 10000-10199 accept" in rules
    assert "6379" not in rules  # Redis stays on loopback
    done = subprocess.run(
        ["nft", "-c", "-f", str(rendered / "nftables.conf")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


@pytest.mark.tools
def test_the_provisioning_scripts_pass_shellcheck() -> None:
    scripts = [ANSIBLE / "verify-in-chroot.sh", *sorted((ROOT / "requirements").glob("*.sh"))]
    done = subprocess.run(
        ["shellcheck", *map(str, scripts)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.slow
@pytest.mark.parametrize(("lan", "passes"), [("[192.168.1.0/24]", True), ("[]", False)])
def test_the_inventory_wins_over_the_roles_defaults(tmp_path: Path, lan: str, passes: bool) -> None:
    # The networks and the password come from the inventory's `all: vars:`, as the example has
    # them; the play refuses to go on without them.
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(
        "all:\n  children:\n    raspberry_pi:\n      hosts:\n        pi:\n  vars:\n"
        f"    tel3sis_lan_networks: {lan}\n    tel3sis_redis_password: {'x' * 20}\n"
    )
    done = _tool(
        "ansible-playbook", "-i", str(inventory), "site.yml", "--tags", "always",
        "-c", "local", "-e", f"ansible_python_interpreter={sys.executable}",
        "-e", "ansible_become=false", cwd=ANSIBLE,
    )  # fmt: skip
    assert (done.returncode == 0) is passes, done.stdout + done.stderr
    if not passes:
        assert "Set tel3sis_lan_networks" in done.stdout + done.stderr
