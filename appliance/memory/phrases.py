"""Synthesized fixed phrases on disk, so the greeting is ready the moment a call is answered."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

__all__ = ["FilePhraseStore"]

_log = logging.getLogger(__name__)


class FilePhraseStore:
    """Raw PCM files named by key; a write that fails (full disk) only costs a re-synthesis."""

    def __init__(self, directory: Path) -> None:
        self._dir = directory

    def load(self, key: str) -> bytes | None:
        try:
            return (self._dir / f"{key}.pcm").read_bytes()
        except FileNotFoundError:
            return None

    def save(self, key: str, pcm: bytes) -> None:
        try:
            self._dir.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self._dir, suffix=".tmp")
            with os.fdopen(fd, "wb") as out:
                out.write(pcm)
            Path(tmp).replace(self._dir / f"{key}.pcm")
        except OSError as exc:
            _log.warning("could not cache a phrase in %s: %s", self._dir, exc)
