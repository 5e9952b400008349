"""RTP on loopback for the hostile tests: a hand-made SIP caller that sends and hears PCMU, and
an RTP sender that is not in the call (the attacker).

Every datagram that arrives is kept with its time, so a test can ask what was heard when.
Packets are paced by the loop's clock at 20 ms; nothing here sleeps to wait for an outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import socket
import struct
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import numpy as np

from appliance.audio.frame import rms_dbfs
from appliance.audio.g711 import ulaw_decode, ulaw_encode
from tests.support.sip import LOOPBACK

PCMU_RATE = 8000
PACKET_MS = 20
_SAMPLES = PCMU_RATE * PACKET_MS // 1000
_FINAL = re.compile(r"SIP/2\.0 [2-6]\d\d ")
_SILENT = b"\xff" * _SAMPLES
"""A packet of PCMU silence."""


def _tone_packets(hz: float, level: float = 0.3) -> list[bytes]:
    """One second of a PCMU tone, as 50 payloads (the tone repeats whole every second)."""
    t = np.arange(PCMU_RATE) / PCMU_RATE
    pcm = (np.sin(2 * np.pi * hz * t) * level * 32767).astype("<i2").tobytes()
    return [ulaw_encode(pcm[i * _SAMPLES * 2 : (i + 1) * _SAMPLES * 2]) for i in range(50)]


@dataclass
class Heard:
    """Datagrams received on one socket: (arrival time, source, payload)."""

    packets: list[tuple[float, tuple[str, int], bytes]] = field(default_factory=list)

    def since(self, when: float) -> list[bytes]:
        return [data for at, _, data in self.packets if at >= when]

    def loud_since(self, when: float, threshold_dbfs: float = -35.0) -> int:
        """RTP packets since `when` whose PCMU audio is louder than `threshold_dbfs`."""
        return sum(rms_dbfs(ulaw_decode(data[12:])) > threshold_dbfs for data in self.since(when))

    def longest_gap_s(self, start: float, end: float) -> float:
        times = [start, *(at for at, _, _ in self.packets if start <= at <= end), end]
        return max(b - a for a, b in itertools.pairwise(times))


class RtpSender:
    """A UDP socket that sends a PCMU tone as RTP (its own SSRC) and keeps what comes back."""

    def __init__(self, hz: float) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((LOOPBACK, 0))
        self.sock.setblocking(False)
        self.port: int = self.sock.getsockname()[1]
        self.heard = Heard()
        self._payloads = _tone_packets(hz)
        self._ssrc = int.from_bytes(uuid.uuid4().bytes[:4], "big")
        self._seq = 0
        self.sent = 0
        self._reader: asyncio.Task[None] | None = None

    def start_hearing(self) -> None:
        self._reader = asyncio.get_running_loop().create_task(self._read())

    def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        self.sock.close()

    def send_one(self, to: tuple[str, int], *, quiet: bool = False) -> None:
        payload = _SILENT if quiet else self._payloads[self._seq % len(self._payloads)]
        header = struct.pack(
            "!BBHII", 0x80, 0, self._seq & 0xFFFF, (self._seq * _SAMPLES) & 0xFFFFFFFF, self._ssrc
        )
        self._seq += 1
        self.sent += 1
        with contextlib.suppress(BlockingIOError, ConnectionRefusedError):
            self.sock.sendto(header + payload, to)

    async def stream(
        self, to: tuple[str, int], packets: int, per_s: float = 50.0, *, quiet: bool = False
    ) -> None:
        """Send `packets` (of the tone, or `quiet`) at `per_s` a second, paced by the clock."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        for i in range(packets):
            self.send_one(to, quiet=quiet)
            await asyncio.sleep(max(0.0, start + (i + 1) / per_s - loop.time()))

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                data, source = await loop.sock_recvfrom(self.sock, 2048)
            except ConnectionRefusedError:
                continue
            self.heard.packets.append((time.monotonic(), source, data))


@dataclass
class Dialog:
    """What the caller needs to acknowledge and end the call it placed."""

    call_id: str
    to_header: str
    media: tuple[str, int]
    """Where the box wants our RTP (from its SDP)."""


class SipCaller:
    """A hand-made SIP caller on loopback: INVITE with PCMU at `rtp`, ACK, re-INVITE, BYE."""

    def __init__(self, sip_port: int, rtp: RtpSender) -> None:
        self.sip_port = sip_port
        self.rtp = rtp
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((LOOPBACK, 0))
        self.sock.setblocking(False)
        self.local_port: int = self.sock.getsockname()[1]
        self._cseq = 0

    def close(self) -> None:
        self.sock.close()

    def _send(self, text: str) -> None:
        self.sock.sendto(text.encode(), (LOOPBACK, self.sip_port))

    def _request(self, method: str, call_id: str, to: str, body: str = "", cseq: int = 0) -> None:
        """Send a request; a new CSeq unless `cseq` is given (an ACK repeats its INVITE's)."""
        if not cseq:
            self._cseq += 1
        content = "Content-Type: application/sdp\r\n" if body else ""
        self._send(
            f"{method} sip:tel3sis@{LOOPBACK}:{self.sip_port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {LOOPBACK}:{self.local_port};branch=z9hG4bK{uuid.uuid4().hex}\r\n"
            f"From: <sip:peer@{LOOPBACK}>;tag=f{call_id}\r\n{to}\r\n"
            f"Call-ID: {call_id}\r\nCSeq: {cseq or self._cseq} {method}\r\n"
            f"Contact: <sip:peer@{LOOPBACK}:{self.local_port}>\r\nMax-Forwards: 70\r\n"
            f"{content}Content-Length: {len(body)}\r\n\r\n{body}"
        )

    def _offer(self) -> str:
        return (
            f"v=0\r\no=- 1 {self._cseq + 1} IN IP4 {LOOPBACK}\r\ns=-\r\nc=IN IP4 {LOOPBACK}\r\n"
            f"t=0 0\r\nm=audio {self.rtp.port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
        )

    async def invite(self, within_s: float = 10.0) -> Dialog:
        """Send an INVITE and wait for its 200 OK; the call is not acknowledged yet."""
        call_id = uuid.uuid4().hex[:16]
        self._request("INVITE", call_id, f"To: <sip:tel3sis@{LOOPBACK}>", self._offer())
        reply = await self._final(within_s)
        to_line = re.search(r"^(To:.*?)\r$", reply, re.M | re.I)
        assert to_line, reply
        return Dialog(call_id, to_line.group(1), _media(reply))

    async def move_media(self, dialog: Dialog, rtp: RtpSender, within_s: float = 10.0) -> None:
        """Re-INVITE: our audio moves to `rtp` (as a PBX moves a call to another media server)."""
        self.rtp = rtp
        self._request("INVITE", dialog.call_id, dialog.to_header, self._offer())
        await self._final(within_s)
        self.ack(dialog)

    def ack(self, dialog: Dialog) -> None:
        self._request("ACK", dialog.call_id, dialog.to_header, cseq=self._cseq)

    def bye(self, dialog: Dialog) -> None:
        self._request("BYE", dialog.call_id, dialog.to_header)

    async def _final(self, within_s: float) -> str:
        """The final response to our latest INVITE; raises unless it is a 200 OK."""
        loop = asyncio.get_running_loop()
        ours = re.compile(rf"^CSeq: *{self._cseq} INVITE", re.M | re.I)
        async with asyncio.timeout(within_s):
            while True:
                text = (await loop.sock_recv(self.sock, 65535)).decode(errors="replace")
                if _FINAL.match(text) and ours.search(text):
                    break
        if not text.startswith("SIP/2.0 200 "):
            raise AssertionError(f"the INVITE got {text.split(chr(13))[0]}")
        return text


def _media(reply: str) -> tuple[str, int]:
    port = re.search(r"^m=audio (\d+)", reply, re.M)
    host = re.search(r"^c=IN IP4 (\S+)", reply, re.M)
    assert port and host, reply
    return host.group(1), int(port.group(1))


@contextlib.asynccontextmanager
async def rtp_call(
    sip_port: int, hz: float, *, ack: bool = True
) -> AsyncIterator[tuple[SipCaller, Dialog]]:
    """A call placed to the box whose caller sends a `hz` tone (the test drives the RTP);
    hung up (BYE) on the way out."""
    rtp = RtpSender(hz)
    caller = SipCaller(sip_port, rtp)
    try:
        dialog = await caller.invite()
        rtp.start_hearing()
        if ack:
            caller.ack(dialog)
        yield caller, dialog
        caller.bye(dialog)
    finally:
        caller.rtp.close()  # where its audio is now (a re-INVITE may have moved it)
        caller.close()
