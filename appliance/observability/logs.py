"""Logging with the call on every record.

`call_context(call_id, caller)` sets context variables that a filter copies onto each record, so
every line logged while a call is handled (in its tasks, which inherit the context) names it.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
from collections.abc import Iterator

__all__ = ["call_context", "configure_logging"]

_call_id: contextvars.ContextVar[str] = contextvars.ContextVar("call_id", default="-")
_caller: contextvars.ContextVar[str] = contextvars.ContextVar("caller", default="-")


@contextlib.contextmanager
def call_context(call_id: str, caller: str) -> Iterator[None]:
    """Tag log records made inside (and in tasks started inside) with this call."""
    tokens = (_call_id.set(call_id), _caller.set(caller))
    try:
        yield
    finally:
        _caller.reset(tokens[1])
        _call_id.reset(tokens[0])


class _CallFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.call_id = _call_id.get()
        record.caller = _caller.get()
        return True


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "call_id": getattr(record, "call_id", "-"),
            "caller": getattr(record, "caller", "-"),
            "msg": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Send the appliance's logs to stderr, each record tagged with its call."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_CallFilter())
    handler.setFormatter(
        _JsonFormatter()
        if fmt == "json"
        else logging.Formatter(
            "%(asctime)s %(levelname)-7s %(name)s [call=%(call_id)s from=%(caller)s] %(message)s"
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "urllib3", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
