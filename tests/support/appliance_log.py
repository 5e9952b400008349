"""The appliance's own log (as `appliance serve` configures it), captured for a test."""

from __future__ import annotations

import contextlib
import io
import logging
import sys
from collections.abc import Iterator

from appliance.observability.logs import configure_logging


@contextlib.contextmanager
def appliance_log(level: str = "INFO") -> Iterator[io.StringIO]:
    """What `configure_logging` writes, in the yielded buffer; the previous handlers after."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    written = io.StringIO()
    real_stderr, sys.stderr = sys.stderr, written
    try:
        configure_logging(level)
    finally:
        sys.stderr = real_stderr
    try:
        yield written
    finally:
        root.handlers[:], level_before = saved
        root.setLevel(level_before)
