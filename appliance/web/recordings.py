"""A recording served as it stands at the request, even while its call is still writing it.

A call in progress appends to its WAV every 100 ms and then rewrites the header's sizes. A file
response that states the size it saw and then reads to the end of the file sends more than it
declared once the call has appended in between, and the server aborts it ("Too much data for
declared Content-Length": a truncated download). So a request is answered from a snapshot: the
size at the request, cut to whole sample frames, and a header whose sizes say exactly that; the
body is those bytes and no more (should the file shrink meanwhile, what is missing is sent as
silence, so the length still holds). A finished recording's snapshot is the file itself.

Range requests (what an audio element sends) are served against the snapshot's size: one range
`a-b`, `a-` or `-n` gets 206; a range past the end gets 416; anything else (several ranges, a
malformed header) gets the whole snapshot with 200, as HTTP allows.
"""

from __future__ import annotations

import asyncio
import os
import re
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from fastapi import Response
from fastapi.responses import StreamingResponse

__all__ = ["PastTheEnd", "Snapshot", "byte_range", "recording_response", "snapshot"]

_HEADER: Final = 44
_CHUNK: Final = 64 * 1024
_RANGE: Final = re.compile(r"bytes=(\d*)-(\d*)")


class PastTheEnd(ValueError):
    """The range asked for starts at or after the end of what is served."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What one request serves of a recording."""

    path: Path
    size: int
    """Bytes served."""
    header: bytes
    """The file's first bytes as served: a WAV header's sizes made to match `size`."""


def snapshot(path: Path) -> Snapshot:
    """The recording at `path` as it is now (touches the disk)."""
    with path.open("rb") as stream:
        size = os.fstat(stream.fileno()).st_size
        head = stream.read(_HEADER)
    canonical = head[:4] == b"RIFF" and head[8:12] == b"WAVE" and head[36:40] == b"data"
    if len(head) < _HEADER or not canonical:
        return Snapshot(path, size, head)  # not the WAV a call writes: served as it is
    (align,) = struct.unpack_from("<H", head, 32)
    data = size - _HEADER
    data -= data % max(1, align)
    header = head[:4] + struct.pack("<I", 36 + data) + head[8:40] + struct.pack("<I", data)
    return Snapshot(path, _HEADER + data, header)


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """`(start, end)` (end exclusive) of a single range, or None to serve everything; raises
    `PastTheEnd` for a range that lies past the end (416)."""
    found = _RANGE.fullmatch(header.strip()) if header else None
    if found is None or found.group(1) == found.group(2) == "":
        return None
    first, last = found.group(1), found.group(2)
    if first == "":
        start, end = max(0, size - int(last)), size
    else:
        start = int(first)
        end = size if last == "" else min(size, int(last) + 1)
    if start >= size or start >= end:
        raise PastTheEnd(f"bytes {first}-{last} of {size}")
    return start, end


def _read(shot: Snapshot, start: int, length: int) -> bytes:
    with shot.path.open("rb") as stream:
        stream.seek(start)
        chunk = stream.read(length)
    chunk += bytes(length - len(chunk))  # the file shrank: keep the promised length
    if start < len(shot.header):
        patch = shot.header[start : start + length]
        chunk = patch + chunk[len(patch) :]
    return chunk


async def _body(shot: Snapshot, start: int, end: int) -> AsyncIterator[bytes]:
    at = start
    while at < end:
        length = min(_CHUNK, end - at)
        yield await asyncio.to_thread(_read, shot, at, length)
        at += length


def recording_response(
    shot: Snapshot, range_header: str | None, headers: dict[str, str]
) -> Response:
    """The response to a GET of the recording `shot` (see the module docstring)."""
    common = {**headers, "Accept-Ranges": "bytes"}
    try:
        wanted = byte_range(range_header, shot.size)
    except PastTheEnd:
        return Response(
            status_code=416, headers={**common, "Content-Range": f"bytes */{shot.size}"}
        )
    start, end = (0, shot.size) if wanted is None else wanted
    common["Content-Length"] = str(end - start)
    status = 200
    if wanted is not None:
        status = 206
        common["Content-Range"] = f"bytes {start}-{end - 1}/{shot.size}"
    return StreamingResponse(
        _body(shot, start, end), status_code=status, media_type="audio/wav", headers=common
    )
