"""pjsua2's owner thread: started in `start()`, named, stopped, and joined with a timeout."""

from __future__ import annotations

import asyncio
import threading
import time

from appliance.telephony.sip import SipConfig
from appliance.telephony.sip.calltable import Invite
from appliance.telephony.sip.endpoint import SipEndpoint
from appliance.telephony.sip.status import RegistrationStatus

_NAME = "sip-owner-test"


class _Quiet:
    def invited(self, invite: Invite) -> None: ...

    def answered(self, key: int) -> None: ...

    def ended(self, key: int, reason: str) -> None: ...

    def dtmf(self, key: int, digit: str, method: str) -> None: ...

    def registered(self, status: RegistrationStatus) -> None: ...


def _running() -> bool:
    return any(thread.name == _NAME for thread in threading.enumerate())


async def test_the_owner_thread_lives_from_start_to_stop_and_joins_with_a_timeout() -> None:
    config = SipConfig(bind_address="127.0.0.1", port=0, transports=("udp",), rtp_port=0)
    endpoint = SipEndpoint(config, _Quiet(), asyncio.get_running_loop(), name=_NAME)
    assert not _running()
    assert endpoint.join(0)  # never started: nothing to wait for
    await endpoint.start()
    try:
        assert _running()
        assert endpoint.port > 0
        started = time.monotonic()
        assert not endpoint.join(0.05)  # running: the join gives up after its timeout
        assert time.monotonic() - started < 1.0
    finally:
        assert await endpoint.stop(10)  # joined on a helper thread (workers.ajoin_all)
    assert not _running()
    assert await endpoint.stop(1)  # twice is fine
