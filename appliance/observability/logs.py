"""Logging with the call on every record.

`call_context(call_id, caller)` sets context variables that a filter copies onto each record, so
every line logged while a call is handled (in its tasks, which inherit the context) names it.

A line repeated in a flood is written a few times, then counted: under a connection flood asyncio
wrote `socket.accept() out of system resource` 249,729 times (115 MB in 40 s). Past `burst` lines
of one message (logger, level and format string) in `window_s`, the rest are dropped and counted,
and one line says how many once the window is over.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass

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


@dataclass(slots=True)
class _Window:
    start: float
    written: int = 0
    dropped: int = 0


_Key = tuple[str, int, str]


class _RepeatLimit(logging.Filter):
    """Writes `burst` lines of one message per `window_s`; counts the rest and, once the window
    is over, has `write` say how many (on the next record of any message)."""

    def __init__(
        self,
        write: Callable[[logging.LogRecord], object],
        *,
        burst: int = 20,
        window_s: float = 10.0,
        messages: int = 512,
    ) -> None:
        super().__init__()
        self._write = write
        self._burst = burst
        self._window_s = window_s
        self._messages = messages
        """Messages tracked at once; the least recently seen is let go beyond it."""
        self._windows: OrderedDict[_Key, _Window] = OrderedDict()
        self._swept = 0.0
        self._lock = threading.Lock()  # records come from worker threads too

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "summarizes", False):
            return True
        key = (record.name, record.levelno, str(record.msg))
        with self._lock:
            ended = self._sweep(record.created, key)
            keep = self._count(key, record.created)
        for done, window in ended:
            self._write(self._summary(done, window, record.created))
        return keep

    def _count(self, key: _Key, now: float) -> bool:
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = _Window(now)
        self._windows.move_to_end(key)
        if window.written < self._burst:
            window.written += 1
            return True
        window.dropped += 1
        return False

    def _sweep(self, now: float, key: _Key) -> list[tuple[_Key, _Window]]:
        """The windows that are over (`key`'s at once, the others each second) or crowded out,
        forgotten, with what they dropped."""
        looked_at = [key]
        if now - self._swept >= 1.0:
            self._swept = now
            looked_at = list(self._windows)
        ended = [
            (k, self._windows.pop(k))
            for k in looked_at
            if k in self._windows and now - self._windows[k].start >= self._window_s
        ]
        while len(self._windows) >= self._messages:
            ended.append(self._windows.popitem(last=False))
        return [(k, window) for k, window in ended if window.dropped]

    def _summary(self, key: _Key, window: _Window, now: float) -> logging.LogRecord:
        name, level, template = key
        record = logging.LogRecord(
            name,
            level,
            __file__,
            0,
            "%d similar lines suppressed in %.0f s: %s",
            (window.dropped, now - window.start, template.partition("\n")[0]),
            None,
        )
        record.summarizes = True
        return record


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
    handler.addFilter(_RepeatLimit(handler.handle))
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
