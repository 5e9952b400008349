"""Every call pjsua2 knows about, with its pj objects, on the endpoint's owner thread.

The table is pjsua2's `Hooks` (it hears every callback) and carries out the loop's commands.
A call's `Call` object is dropped in its own DISCONNECTED callback (it is deleted as the
callback returns, which pjsua2 allows): pjsua reuses the call's id at once, sometimes for
the next INVITE in the same poll, and a `Call` deleted any later would hang up (and unhook)
the call that now has its id. Media ports are deleted in `reap()`, between polls.
`housekeeping()` ends what has waited too long: an INVITE the loop never decided on, a silent
hold that ran out, an answer never acknowledged, and a call whose peer stopped sending RTP.
An answer with no ACK is given up after `ack_timeout_s` rather than pjsip's 32 s: the loop hears
the call ended at once (its slot is free again) while pjsip's BYE runs its course. Each call's
RTP socket latches onto its first source (`latch_sources`, see strictrtp.py).

Refusals are paced under a flood. pjsua opens an RTP and an RTCP socket for every INVITE before
we see it, and pjlib keeps a closed socket's ioqueue slot for 500 ms before reusing it; the
wheel's select ioqueue has 64 slots and asserts (aborting the process) when they run out. At a
hundred INVITEs a second, refusing each at once frees its pjsua call for the next INVITE, and
the sockets of the refused ones pile up. So once more than `_CHURN_BUDGET` INVITEs have arrived
within 500 ms, a refusal waits until its INVITE is 500 ms old: the pjsua calls stay taken, pjsua
answers the excess with 486 by itself (without opening sockets), and the slots keep up.
"""

from __future__ import annotations

import concurrent.futures
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pjsua2 as pj

from appliance.audio.frame import FRAME_MS, SAMPLE_RATE
from appliance.observability.logs import call_context
from appliance.telephony.sip.config import SipConfig
from appliance.telephony.sip.media import CallMedia
from appliance.telephony.sip.message import (
    header,
    printable,
    request_uri,
    split_address,
    uri_user,
)
from appliance.telephony.sip.pjobjects import PjAccount, PjCall, PjMediaPort
from appliance.telephony.sip.status import RegistrationStatus
from appliance.telephony.sip.strictrtp import Bound, latch, unlatch

__all__ = ["NO_ACK", "NO_AUDIO", "CallTable", "Invite"]

_log = logging.getLogger(__name__)
_UNDECIDED_S = 10.0
_KEY_FREE_DELAY_S = 0.55
"""pjlib's PJ_IOQUEUE_KEY_FREE_DELAY (500 ms), and a little more."""
_CHURN_BUDGET = 12
"""INVITEs (each two sockets) within `_KEY_FREE_DELAY_S` before refusals are paced."""
_RTP_CHECK_S = 1.0
NO_AUDIO = "no audio from the caller"
"""Why a call ended that we hung up because its RTP stopped."""
NO_ACK = "no ACK for the answer"
"""Why a call ended that we gave up because our answer was never acknowledged."""
_DTMF_METHODS = {pj.PJSUA_DTMF_METHOD_RFC2833: "rfc4733", pj.PJSUA_DTMF_METHOD_SIP_INFO: "sip-info"}


@dataclass(frozen=True, slots=True)
class Invite:
    """An incoming call, waiting for the loop to decide what to do with it."""

    key: int
    call_id: str
    """The SIP Call-ID, clipped to something printable."""
    source: str
    """The IP address the INVITE came from."""
    source_port: int
    caller: str
    """The user part of From (usually the caller's number)."""
    callee: str
    authorization: str | None
    request_uri: str = ""
    """The INVITE's Request-URI as sent (a digest answer must cover it)."""
    replaces: bool = False
    """The caller's side says it supports Replaces (RFC 3891), so it can take an attended
    transfer."""


@dataclass(eq=False, slots=True)
class _Entry:
    call: PjCall | None
    call_id: str
    caller: str
    created: float
    incoming: bool
    decided: bool = False
    hold_until: float | None = None
    media: CallMedia | None = None
    port: PjMediaPort | None = None
    audio_index: int = -1
    remote_hold: bool = False
    ended: bool = False
    reported: bool = False
    """The loop has been told the call ended (it may be told before pjsua is done with it)."""
    answered_at: float | None = None
    confirmed: bool = False
    end_reason: str = ""
    """Why we ended the call, when it was our doing; reported instead of the SIP status."""
    rtp_learning: bool = True
    """Our RTP socket has yet to latch onto a source (False once it has, or could not)."""
    rtp_bound: Bound | None = None
    """The address our RTP socket is bound to, once it has latched."""
    rx_packets: int = -1
    rx_changed: float = 0.0
    transfer: concurrent.futures.Future[bool] | None = None
    placed: concurrent.futures.Future[int] | None = None
    """An outgoing call's outcome: 200 once confirmed, else the status code that ended it."""
    refusal: tuple[float, int, dict[str, str]] | None = None
    """A paced refusal: (when, code, headers)."""

    def context(self) -> Any:
        return call_context(self.call_id, self.caller)


class CallTable:
    """Calls by key; every method runs on the owner thread."""

    def __init__(
        self,
        config: SipConfig,
        *,
        post: Callable[..., None],
        events: Any,
        read: Callable[[Any], bytes],
    ) -> None:
        self._config = config
        self._post = post
        self._events = events
        self._read = read
        self._entries: dict[int, _Entry] = {}
        self._dead: list[int] = []
        self._last_key = 0
        self._arrivals: deque[float] = deque()
        self._next_rtp_check = 0.0
        self.account: PjAccount | None = None
        self.accepting = True
        self.ports_taken = False
        """A call has taken RTP ports since the endpoint last reshuffled them."""

    # --- pjsua2 callbacks -----------------------------------------------------------------------

    def _new_key(self) -> int:
        self._last_key += 1
        return self._last_key

    def on_incoming(self, account: PjAccount, call_id: int, rdata: Any) -> None:
        key = self._new_key()
        self.ports_taken = True
        self._arrivals.append(time.monotonic())
        message = str(rdata.wholeMsg)
        call = PjCall(account, call_id, self, key)
        info = call.getInfo()
        source, source_port = split_address(str(rdata.srcAddress))
        entry = _Entry(
            call=call,
            call_id=printable(str(info.callIdString)),
            caller=uri_user(str(info.remoteUri)),
            created=time.monotonic(),
            incoming=True,
        )
        self._entries[key] = entry
        with entry.context():
            _log.info("INVITE from %s:%d", source, source_port)
        if not self.accepting:
            self.reject(key, 503, {})
            return
        self._post(
            self._events.invited,
            Invite(
                key=key,
                call_id=entry.call_id,
                source=source,
                source_port=source_port,
                caller=entry.caller,
                callee=uri_user(str(info.localUri)),
                authorization=header(message, "Authorization"),
                request_uri=request_uri(message),
                replaces=_supports(message, "replaces"),
            ),
        )

    def on_registration(self, account: PjAccount) -> None:
        info = account.getInfo()
        code = int(info.regStatus)
        if info.regIsActive and 200 <= code < 300:
            state = "registered"
        elif 200 <= code < 300:
            state = "unregistered"
        else:
            state = "failed"
        status = RegistrationStatus(
            state=state,  # type: ignore[arg-type]
            code=code,
            reason=printable(str(info.regStatusText), 120),
            expires_s=max(0, int(info.regExpiresSec)),
            changed_at=time.time(),
        )
        _log.info("registration %s (%d %s)", state, code, status.reason)
        self._post(self._events.registered, status)

    def on_call_state(self, call: PjCall) -> None:
        entry = self._entries.get(call.key)
        if entry is None:
            return
        info = call.getInfo()
        if info.state == pj.PJSIP_INV_STATE_CONFIRMED:
            entry.confirmed = True
            if entry.placed is not None and not entry.placed.done():
                entry.placed.set_result(200)
            self._post(self._events.answered, call.key)
        elif info.state == pj.PJSIP_INV_STATE_DISCONNECTED and not entry.ended:
            entry.ended = True
            reason = f"{info.lastStatusCode} {printable(str(info.lastReason), 80)}"
            with entry.context():
                _log.info("call ended (%s)", reason)
            if entry.transfer is not None and not entry.transfer.done():
                entry.transfer.set_result(False)
            if entry.placed is not None and not entry.placed.done():
                entry.placed.set_result(int(info.lastStatusCode))
            self._dead.append(call.key)
            self._report_end(call.key, entry, entry.end_reason or reason)
            entry.call = None  # deleted when this callback returns: see the module docstring

    def on_media_state(self, call: PjCall) -> None:
        entry = self._entries.get(call.key)
        if entry is None or entry.media is None or entry.ended:
            return
        info = call.getInfo()  # SWIG: keep the owner alive while reading its members
        for media in info.media:
            if media.type != pj.PJMEDIA_TYPE_AUDIO:
                continue
            entry.remote_hold = media.status == pj.PJSUA_CALL_MEDIA_REMOTE_HOLD
            if media.status in (pj.PJSUA_CALL_MEDIA_ACTIVE, pj.PJSUA_CALL_MEDIA_REMOTE_HOLD):
                self._connect(entry, call, int(media.index))
            return

    def on_dtmf(self, call: PjCall, digit: str, method: int) -> None:
        entry = self._entries.get(call.key)
        if entry is not None:
            how = _DTMF_METHODS.get(method, "other")
            self._post(self._events.dtmf, call.key, printable(digit, 4), how)

    def on_transfer_status(self, call: PjCall, code: int, final: bool) -> None:
        entry = self._entries.get(call.key)
        if entry is None or entry.transfer is None or entry.transfer.done():
            return
        with entry.context():
            _log.info("transfer status %d%s", code, " (final)" if final else "")
        if final or code >= 300:
            entry.transfer.set_result(200 <= code < 300)

    # --- commands from the loop -----------------------------------------------------------------

    def answer(self, key: int, media: CallMedia) -> None:
        entry = self._live(key)
        entry.decided = True
        entry.media = media
        prm = pj.CallOpParam()
        prm.statusCode = 200
        self._pj_call(entry).answer(prm)
        entry.answered_at = time.monotonic()

    def reject(self, key: int, code: int, headers: dict[str, str]) -> None:
        entry = self._entries.get(key)
        if entry is None or entry.ended:
            return
        entry.decided = True
        now = time.monotonic()
        if self._flooded(now) and now < entry.created + _KEY_FREE_DELAY_S:
            entry.refusal = (entry.created + _KEY_FREE_DELAY_S, code, headers)
            return
        entry.refusal = None
        prm = pj.CallOpParam()
        prm.statusCode = code
        for name, value in headers.items():
            hdr = pj.SipHeader()
            hdr.hName = name
            hdr.hValue = value
            prm.txOption.headers.append(hdr)
        self._pj_call(entry).hangup(prm)

    def hold_silently(self, key: int) -> None:
        entry = self._live(key)
        entry.decided = True
        held = sum(1 for e in self._entries.values() if e.hold_until is not None and not e.ended)
        if held >= self._config.silent_hold_slots:
            self.reject(key, 403, {})  # too many strangers waiting at once: say no after all
            return
        entry.hold_until = time.monotonic() + self._config.silent_hold_s

    def hang_up(self, key: int, reason: str = "") -> None:
        """End a call from our side; `reason` is reported as why it ended."""
        entry = self._entries.get(key)
        if entry is not None and not entry.ended and not entry.reported:
            entry.end_reason = entry.end_reason or reason
            self._pj_call(entry).hangup(pj.CallOpParam())

    def transfer(self, key: int, target: str, outcome: concurrent.futures.Future[bool]) -> None:
        entry = self._live(key)
        entry.transfer = outcome
        try:
            self._pj_call(entry).xfer(target, pj.CallOpParam(True))
        except pj.Error as exc:
            with entry.context():
                _log.warning("transfer to %s refused: %s", printable(target), exc.info())
            outcome.set_result(False)

    def transfer_replacing(
        self, key: int, consult_key: int, outcome: concurrent.futures.Future[bool]
    ) -> None:
        """Attended transfer: REFER the caller to the person on `consult_key`, with Replaces."""
        entry = self._live(key)
        consult = self._live(consult_key)
        entry.transfer = outcome
        try:
            self._pj_call(entry).xferReplaces(self._pj_call(consult), pj.CallOpParam(True))
        except pj.Error as exc:
            with entry.context():
                _log.warning("attended transfer refused: %s", exc.info())
            outcome.set_result(False)

    def dial(
        self, uri: str, media: CallMedia, placed: concurrent.futures.Future[int] | None = None
    ) -> int:
        assert self.account is not None
        key = self._new_key()
        call = PjCall(self.account, pj.PJSUA_INVALID_ID, self, key)
        entry = _Entry(
            call=call,
            call_id=f"out-{key}",
            caller=uri_user(uri),
            created=time.monotonic(),
            incoming=False,
            decided=True,
            media=media,
            placed=placed,
        )
        self._entries[key] = entry
        self.ports_taken = True
        try:
            call.makeCall(uri, pj.CallOpParam(True))
        except pj.Error:
            del self._entries[key]
            raise
        return key

    # --- upkeep ---------------------------------------------------------------------------------

    def reap(self) -> None:
        """Delete the pj objects of calls that have ended (outside pj callbacks)."""
        while self._dead:
            entry = self._entries.pop(self._dead.pop(), None)
            if entry is not None:
                self._drop(entry)

    def housekeeping(self, now: float) -> None:
        check_rtp = now >= self._next_rtp_check and self._config.rtp_timeout_s > 0
        if check_rtp:
            self._next_rtp_check = now + _RTP_CHECK_S
        for key, entry in list(self._entries.items()):
            if entry.ended or entry.reported or entry.call is None:
                continue
            with entry.context():
                if entry.refusal is not None and now >= entry.refusal[0]:
                    self.reject(key, entry.refusal[1], entry.refusal[2])
                elif entry.incoming and not entry.decided and now - entry.created > _UNDECIDED_S:
                    _log.warning("nobody decided on this INVITE; refusing it")
                    self.reject(key, 503, {})
                elif entry.hold_until is not None and now >= entry.hold_until:
                    entry.hold_until = None
                    self.reject(key, 408, {})
                elif self._unacknowledged(entry, now):
                    _log.warning("no ACK for the answer: giving the call up")
                    try:
                        self.hang_up(key, NO_ACK)
                    finally:
                        self._report_end(key, entry, NO_ACK)  # its slot is free from now on
                elif entry.port is not None and check_rtp:
                    self._check_rtp(key, entry, now)

    def _flooded(self, now: float) -> bool:
        while self._arrivals and now - self._arrivals[0] > _KEY_FREE_DELAY_S:
            self._arrivals.popleft()
        return len(self._arrivals) > _CHURN_BUDGET

    def _check_rtp(self, key: int, entry: _Entry, now: float) -> None:
        assert entry.call is not None
        try:
            stat = entry.call.getStreamStat(entry.audio_index)
        except pj.Error:
            return
        # SWIG member proxies point into their owner: hold each one while reading the next.
        rtcp = stat.rtcp
        received = rtcp.rxStat
        packets = int(received.pkt)
        if packets != entry.rx_packets or entry.remote_hold:
            entry.rx_packets = packets
            entry.rx_changed = now
        elif now - entry.rx_changed >= self._config.rtp_timeout_s:
            _log.warning("no RTP for %.0f s: hanging up", now - entry.rx_changed)
            self.hang_up(key, NO_AUDIO)

    def _unacknowledged(self, entry: _Entry, now: float) -> bool:
        answered = entry.answered_at
        limit = self._config.ack_timeout_s
        return answered is not None and not entry.confirmed and limit > 0 and now - answered > limit

    def _report_end(self, key: int, entry: _Entry, reason: str) -> None:
        """Tell the loop the call ended (once)."""
        if not entry.reported:
            entry.reported = True
            self._post(self._events.ended, key, reason)

    def latch_sources(self) -> None:
        """Latch each connected call's RTP socket onto the first source it has heard."""
        if not self._config.strict_rtp:
            return
        for entry in self._entries.values():
            if entry.port is None or not entry.rtp_learning or entry.ended or entry.call is None:
                continue
            try:
                info = entry.call.getMedTransportInfo(entry.audio_index)
            except pj.Error:
                continue
            source = str(info.srcRtpName)
            if not source:
                continue
            local_port = split_address(str(info.localRtpName))[1]
            entry.rtp_learning = False
            entry.rtp_bound = latch(local_port, split_address(source))
            with entry.context():
                if entry.rtp_bound is not None:
                    _log.info("RTP latched to %s; other sources are dropped", source)
                else:
                    _log.warning("no RTP socket on port %d to latch", local_port)

    def hang_up_all(self) -> bool:
        """Hang up every call still up (BYE, or a final response); True if there were any."""
        self.accepting = False
        live = [key for key, entry in self._entries.items() if not entry.ended and entry.call]
        for key in live:
            try:
                self.hang_up(key)
            except pj.Error as exc:
                _log.warning("could not hang up call %d: %s", key, exc.info())
        return bool(live)

    def release_all(self) -> None:
        """Drop every pj object (before libDestroy)."""
        for entry in self._entries.values():
            self._drop(entry)
            if entry.transfer is not None and not entry.transfer.done():
                entry.transfer.set_result(False)
            if entry.placed is not None and not entry.placed.done():
                entry.placed.set_result(0)
        self._entries.clear()
        self._dead.clear()

    # --- helpers --------------------------------------------------------------------------------

    @staticmethod
    def _drop(entry: _Entry) -> None:
        if entry.port is not None:
            entry.port.destroy()
            entry.port = None
        entry.call = None

    def _live(self, key: int) -> _Entry:
        entry = self._entries.get(key)
        if entry is None or entry.ended or entry.call is None:
            raise LookupError(f"call {key} has already ended")
        return entry

    @staticmethod
    def _pj_call(entry: _Entry) -> PjCall:
        assert entry.call is not None
        return entry.call

    def _connect(self, entry: _Entry, call: PjCall, index: int) -> None:
        assert entry.media is not None
        audio = call.getAudioMedia(index)
        if entry.port is None:
            fmt = pj.MediaFormatAudio()
            fmt.init(pj.PJMEDIA_FORMAT_PCM, SAMPLE_RATE, 1, FRAME_MS * 1000, 16)
            port = PjMediaPort(entry.media, self._read)
            port.createPort(f"call-{call.key}", fmt)
            entry.port = port
            entry.rx_changed = time.monotonic()
        entry.audio_index = index
        if entry.rtp_bound is not None:
            unlatch(entry.rtp_bound)  # the media was renegotiated: its peer may have moved
        entry.rtp_bound = None
        entry.rtp_learning = True
        audio.startTransmit(entry.port)
        entry.port.startTransmit(audio)


def _supports(message: str, option: str) -> bool:
    """Whether the message's Supported header (compact `k`) lists `option`."""
    value = header(message, "Supported") or ""
    return option in (part.strip().lower() for part in value.split(","))
