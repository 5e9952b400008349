"""A flood of one log line, as the slow-client attack made it: asyncio reporting `accept() out
of system resource` thousands of times a second. The appliance's log writes a few, then says
how many it left out; other lines go on being written."""

from __future__ import annotations

import asyncio
import errno
import logging
import re
import socket
from collections.abc import Iterator

import pytest

from tests.support.appliance_log import appliance_log

_FLOOD = 10_000
_FLOOD_S = 40.0
"""The records' own times span this (the incident's 40 s), whatever the test's pace."""


class _HandClock(logging.Filter):
    """Stamps each record with the test's time instead of the wall clock's."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 1_000_000.0

    def filter(self, record: logging.LogRecord) -> bool:
        record.created = self.now
        return True


@pytest.fixture
def clock() -> Iterator[_HandClock]:
    stamp = _HandClock()
    loggers = [logging.getLogger("asyncio"), logging.getLogger("appliance.telephony.calls")]
    for logger in loggers:
        logger.addFilter(stamp)
    try:
        yield stamp
    finally:
        for logger in loggers:
            logger.removeFilter(stamp)


def test_a_repeated_line_is_written_a_few_times_and_then_counted(clock: _HandClock) -> None:
    loop = asyncio.new_event_loop()
    listener = socket.create_server(("127.0.0.1", 0))
    other = logging.getLogger("appliance.telephony.calls")
    try:
        with appliance_log() as log:
            for n in range(_FLOOD):
                clock.now += _FLOOD_S / _FLOOD
                loop.call_exception_handler(
                    {
                        "message": "socket.accept() out of system resource",
                        "exception": OSError(errno.EMFILE, "Too many open files"),
                        "socket": listener,
                    }
                )
                if n % 1000 == 0:
                    other.info("call %s admitted", f"CA{n}")
            clock.now += 60.0
            other.info("the flood is over")
    finally:
        listener.close()
        loop.close()
    lines = log.getvalue().splitlines()
    written = [
        line
        for line in lines
        if line.endswith("] socket.accept() out of system resource")  # after the call's tag
    ]
    summaries = [
        int(found.group(1))
        for line in lines
        if (found := re.search(r"(\d+) similar lines suppressed in \d+ s: socket\.accept", line))
    ]
    assert 0 < len(written) <= 100
    assert len(written) + sum(summaries) == _FLOOD  # every line written or counted
    assert len(log.getvalue()) < 100_000  # the incident wrote 115 MB
    admitted = [line for line in lines if "admitted" in line or "the flood is over" in line]
    assert len(admitted) == _FLOOD // 1000 + 1
