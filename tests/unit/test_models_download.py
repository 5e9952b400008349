"""Upstream downloads against a real HTTP server on 127.0.0.1 that speaks Range (or refuses to)."""

from __future__ import annotations

import hashlib
import random
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from appliance.engines.models import (
    DownloadError,
    Manifest,
    ModelStore,
    PartSources,
    download,
    install,
    offline,
)

_CONTENT = random.Random(416).randbytes(1_000_000)
_SHA = hashlib.sha256(_CONTENT).hexdigest()


@dataclass
class _Script:
    """How the server behaves, request by request, and what it saw."""

    content: bytes = _CONTENT
    honour_range: bool = True
    refuse_range: bool = False
    drops: list[int] = field(default_factory=list)
    """For the next requests: close the connection after this many body bytes."""
    statuses: list[int] = field(default_factory=list)
    """For the next requests: answer with this error status instead."""
    stalls: list[float] = field(default_factory=list)
    """For the next requests: wait this many seconds before answering."""
    ranges: list[str | None] = field(default_factory=list)
    answered: list[int] = field(default_factory=list)


class _Server(ThreadingHTTPServer):
    script: _Script
    daemon_threads = False
    """So `server_close` joins the handler threads, stalled ones included."""

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that hung up on a stalled or dropped answer is part of the scenario."""


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the tests assert on the script instead."""

    def do_GET(self) -> None:
        script = self.server.script
        script.ranges.append(self.headers.get("Range"))
        if script.stalls:
            time.sleep(script.stalls.pop(0))
        if self.path == "/moved":
            self._answer(302, location="/model.bin")
        elif self.path != "/model.bin":
            self._answer(404)
        elif script.statuses:
            self._answer(script.statuses.pop(0))
        else:
            self._content(script)

    def _answer(self, status: int, *, location: str | None = None) -> None:
        self.server.script.answered.append(status)
        self.send_response(status)
        if location is not None:
            self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _content(self, script: _Script) -> None:
        body = script.content
        start = 0
        wanted = self.headers.get("Range")
        if wanted is not None and script.refuse_range:
            self._answer(416)
            return
        if wanted is not None and script.honour_range:
            match = re.fullmatch(r"bytes=(\d+)-", wanted)
            assert match is not None, wanted
            start = int(match[1])
            script.answered.append(206)
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            script.answered.append(200)
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        payload = body[start:]
        if script.drops:
            self.wfile.write(payload[: script.drops.pop(0)])
            self.close_connection = True
            return
        self.wfile.write(payload)


@dataclass
class _Site:
    script: _Script
    base: str


@pytest.fixture
def site() -> Iterator[_Site]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.script = _Script()
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), name="test-model-server")
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield _Site(server.script, f"http://{host!s}:{port}")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        assert not thread.is_alive()


class _Sleeps:
    """Records the backoff instead of waiting it out."""

    def __init__(self) -> None:
        self.waited: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waited.append(seconds)


def _fetch(
    site: _Site,
    target: Path,
    *,
    path: str = "/model.bin",
    sha256: str = _SHA,
    timeout: float = 5.0,
    attempts: int = 5,
) -> _Sleeps:
    sleeps = _Sleeps()
    download(
        f"{site.base}{path}",
        target,
        size=len(_CONTENT),
        sha256=sha256,
        sleep=sleeps,
        timeout=timeout,
        attempts=attempts,
    )
    return sleeps


def test_a_full_download_verifies_and_moves_into_place(site: _Site, tmp_path: Path) -> None:
    target = tmp_path / "model.bin"
    seen: list[int] = []

    download(
        f"{site.base}/model.bin", target, size=len(_CONTENT), sha256=_SHA, progress=seen.append
    )

    assert target.read_bytes() == _CONTENT
    assert not (tmp_path / "model.bin.partial").exists()
    assert site.script.ranges == [None]
    assert seen[0] == 0
    assert seen[-1] == len(_CONTENT)


def test_an_interrupted_download_resumes_with_a_range_request(site: _Site, tmp_path: Path) -> None:
    site.script.drops = [300_000]
    target = tmp_path / "model.bin"

    sleeps = _fetch(site, target)

    assert site.script.ranges == [None, "bytes=300000-"]
    assert site.script.answered == [200, 206]
    assert target.read_bytes() == _CONTENT
    assert sleeps.waited == []


def test_a_partial_left_by_an_earlier_run_is_resumed(site: _Site, tmp_path: Path) -> None:
    target = tmp_path / "model.bin"
    (tmp_path / "model.bin.partial").write_bytes(_CONTENT[:123_456])

    _fetch(site, target)

    assert site.script.ranges == ["bytes=123456-"]
    assert target.read_bytes() == _CONTENT


def test_a_server_that_ignores_range_still_yields_the_right_file(
    site: _Site, tmp_path: Path
) -> None:
    site.script.honour_range = False
    site.script.drops = [300_000]
    target = tmp_path / "model.bin"

    _fetch(site, target)

    assert site.script.ranges == [None, "bytes=300000-"]
    assert site.script.answered == [200, 200]
    assert target.read_bytes() == _CONTENT


def test_a_server_that_refuses_the_range_is_asked_again_from_the_start(
    site: _Site, tmp_path: Path
) -> None:
    site.script.refuse_range = True
    target = tmp_path / "model.bin"
    (tmp_path / "model.bin.partial").write_bytes(b"not a prefix of the real file")

    _fetch(site, target)

    assert site.script.answered == [416, 200]
    assert site.script.ranges[1] is None
    assert target.read_bytes() == _CONTENT


def test_a_redirect_is_followed(site: _Site, tmp_path: Path) -> None:
    target = tmp_path / "model.bin"

    _fetch(site, target, path="/moved")

    assert site.script.answered == [302, 200]
    assert target.read_bytes() == _CONTENT


def test_server_errors_and_timeouts_are_retried_with_backoff(site: _Site, tmp_path: Path) -> None:
    site.script.statuses = [503, 500]
    site.script.stalls = [0, 0, 0.3]
    target = tmp_path / "model.bin"

    sleeps = _fetch(site, target, timeout=0.1)

    assert sleeps.waited == [1.0, 2.0, 4.0]
    assert target.read_bytes() == _CONTENT


def test_a_download_gives_up_after_its_attempts(site: _Site, tmp_path: Path) -> None:
    site.script.statuses = [503] * 3
    target = tmp_path / "model.bin"

    with pytest.raises(DownloadError, match="gave up after 3 tries: HTTP 503"):
        _fetch(site, target, attempts=3)

    assert not target.exists()


def test_a_sha256_mismatch_fails_and_the_bad_bytes_are_not_moved_into_place(
    site: _Site, tmp_path: Path
) -> None:
    target = tmp_path / "model.bin"
    expected = "f" * 64

    with pytest.raises(DownloadError, match=f"expected {expected}; deleted, not installed"):
        _fetch(site, target, sha256=expected)

    assert not target.exists()
    assert not (tmp_path / "model.bin.partial").exists()


def test_a_404_names_the_url_and_is_not_retried(site: _Site, tmp_path: Path) -> None:
    url = f"{site.base}/gone.bin"

    with pytest.raises(DownloadError, match=re.escape(f"{url}: HTTP 404")):
        _fetch(site, tmp_path / "model.bin", path="/gone.bin")

    assert len(site.script.ranges) == 1


def test_a_file_of_the_wrong_size_is_refused_before_it_is_written(
    site: _Site, tmp_path: Path
) -> None:
    site.script.content = _CONTENT[:500]
    target = tmp_path / "model.bin"

    with pytest.raises(DownloadError, match="server's file is 500 bytes, expected 1,000,000"):
        _fetch(site, target)

    assert not (tmp_path / "model.bin.partial").exists()


_UPSTREAM_MANIFEST = """
[[model]]
name = "vad"
role = "vad"
engine = "test"
description = "the real silero bytes, from a part or from upstream"
licence = "MIT"

[[model.file]]
path = "vad.bin"
bytes = {size}
sha256 = "{sha}"
upstream = "{base}/model.bin"
parts = [{{ package = "{package}", member = "{member}" }}]
"""


def _upstream_store(site: _Site, tmp_path: Path, *, package: str | None) -> ModelStore:
    """A model whose one file is the real silero-vad file, which the server also serves."""
    real = ModelStore(tmp_path / "real", Manifest.load())
    install(
        real, ["silero-vad"], progress=False, sources=PartSources(real.wheel_cache, fetch=offline)
    )
    (silero,) = real.manifest.get("silero-vad").files
    site.script.content = real.file("silero-vad", silero.path).read_bytes()
    path = tmp_path / "manifest.toml"
    path.write_text(
        _UPSTREAM_MANIFEST.format(
            size=silero.bytes,
            sha=silero.sha256,
            base=site.base,
            package=package or silero.parts[0].package,
            member=silero.parts[0].member,
        ),
        encoding="utf-8",
    )
    return ModelStore(tmp_path / "models", Manifest.load(path))


def test_install_falls_back_to_upstream_when_parts_cannot_be_had(
    site: _Site, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = _upstream_store(site, tmp_path, package="tel3sis-fake-absent==1.0")
    sources = PartSources(store.wheel_cache, fetch=offline)

    (outcome,) = install(store, ["vad"], progress=False, sources=sources).models

    assert outcome.ok, outcome
    assert site.script.answered == [200]
    assert store.verify("vad", deep=True) == []
    assert f"downloading {site.base}/model.bin instead" in capsys.readouterr().err


def test_install_prefers_upstream_only_when_asked(site: _Site, tmp_path: Path) -> None:
    store = _upstream_store(site, tmp_path, package=None)
    sources = PartSources(store.wheel_cache, fetch=offline)

    install(store, ["vad"], progress=False, sources=sources)
    assert site.script.answered == []

    store.file("vad", "vad.bin").unlink()
    install(store, ["vad"], progress=False, prefer_upstream=True, sources=sources)
    assert site.script.answered == [200]
    assert store.verify("vad", deep=True) == []


def test_install_reports_both_failures_when_parts_and_upstream_fail(
    site: _Site, tmp_path: Path
) -> None:
    store = _upstream_store(site, tmp_path, package="tel3sis-fake-absent==1.0")
    site.script.statuses = [404]
    sources = PartSources(store.wheel_cache, fetch=offline)

    (outcome,) = install(store, ["vad"], progress=False, sources=sources).models

    assert outcome.error is not None
    assert "tel3sis-fake-absent==1.0" in outcome.error
    assert "upstream download failed too" in outcome.error
    assert "HTTP 404" in outcome.error
