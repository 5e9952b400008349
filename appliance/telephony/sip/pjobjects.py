"""The pjsua2 classes we subclass: an account, a call and a media port, each a thin shim.

pjsua2 calls these back through SWIG directors. An exception escaping a director callback
becomes a C++ exception on a pj thread, which aborts the process, so every callback here hands
its work to the endpoint (`Hooks`) inside a guard that logs instead of raising. The media
port's callbacks run on the media clock thread every 20 ms and only copy bytes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import pjsua2 as pj

from appliance.audio.frame import FRAME_BYTES
from appliance.telephony.sip.media import CallMedia

__all__ = ["Hooks", "PjAccount", "PjCall", "PjMediaPort"]

_log = logging.getLogger(__name__)


@contextmanager
def _guard(what: str) -> Iterator[None]:
    try:
        yield
    except Exception:
        _log.exception("pjsua2 callback %s failed", what)


class Hooks(Protocol):
    """What the endpoint does when pjsua2 calls back (always on the endpoint's own thread)."""

    def on_incoming(self, account: PjAccount, call_id: int, rdata: Any) -> None: ...

    def on_registration(self, account: PjAccount) -> None: ...

    def on_call_state(self, call: PjCall) -> None: ...

    def on_media_state(self, call: PjCall) -> None: ...

    def on_dtmf(self, call: PjCall, digit: str, method: int) -> None: ...

    def on_transfer_status(self, call: PjCall, code: int, final: bool) -> None: ...


class PjAccount(pj.Account):  # type: ignore[misc]
    def __init__(self, hooks: Hooks) -> None:
        super().__init__()
        self._hooks = hooks

    def onIncomingCall(self, prm: Any) -> None:
        with _guard("onIncomingCall"):
            self._hooks.on_incoming(self, prm.callId, prm.rdata)

    def onRegState(self, prm: Any) -> None:
        with _guard("onRegState"):
            self._hooks.on_registration(self)


class PjCall(pj.Call):  # type: ignore[misc]
    def __init__(self, account: PjAccount, call_id: int, hooks: Hooks, key: int) -> None:
        super().__init__(account, call_id)
        self._hooks = hooks
        self.key = key
        """Our own number for the call (pjsua reuses its call ids)."""

    def onCallState(self, prm: Any) -> None:
        with _guard("onCallState"):
            self._hooks.on_call_state(self)

    def onCallMediaState(self, prm: Any) -> None:
        with _guard("onCallMediaState"):
            self._hooks.on_media_state(self)

    def onDtmfDigit(self, prm: Any) -> None:
        with _guard("onDtmfDigit"):
            self._hooks.on_dtmf(self, str(prm.digit), int(prm.method))

    def onCallTransferStatus(self, prm: Any) -> None:
        with _guard("onCallTransferStatus"):
            self._hooks.on_transfer_status(self, int(prm.statusCode), bool(prm.finalNotify))


class PjMediaPort(pj.AudioMediaPort):  # type: ignore[misc]
    """A 16 kHz mono conference-bridge port whose frames go to and come from `CallMedia`.

    Delete it with `destroy()`, never by dropping the last reference: Python would tear the
    object down (its attributes first) while the clock thread may still be calling it, and
    pjsua2 only detaches the port from its callbacks in the C++ destructor. `destroy()` runs
    that destructor while the Python object is whole (waiting out a callback in progress), so
    the clock thread never sees a half-freed object.
    """

    def __init__(self, media: CallMedia, read: Callable[[Any], bytes]) -> None:
        super().__init__()
        self._media = media
        self._read = read
        self._silence = pj.ByteVector(bytes(FRAME_BYTES))

    def destroy(self) -> None:
        """Unregister from the bridge and free the C++ port now (owner thread; once)."""
        if self.this.own():
            pj.AudioMediaPort.__swig_destroy__(self)  # disowns: no second delete at GC

    def onFrameReceived(self, frame: Any) -> None:
        with _guard("onFrameReceived"):
            self._media.received(self._read(frame.buf) if frame.size else b"")

    def onFrameRequested(self, frame: Any) -> None:
        with _guard("onFrameRequested"):
            pcm = self._media.requested()
            frame.type = pj.PJMEDIA_FRAME_TYPE_AUDIO
            # Assigning copies into the frame's own vector, so the silence vector is reusable.
            frame.buf = self._silence if pcm is None else pj.ByteVector(pcm)
            frame.size = FRAME_BYTES
