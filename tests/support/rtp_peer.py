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
    """A hand-made SIP caller on loopback: INVITE with PCMU at `rtp`, ACK, BYE."""

    def __init__(self, sip_port: int, rtp: RtpSender) -> None:
        self.sip_port = sip_port
        self.rtp = rtp
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((LOOPBACK, 0))
        self.sock.setblocking(False)
        self.local_port: int = self.sock.getsockname()[1]

    def close(self) -> None:
        self.sock.close()

    def _send(self, text: str) -> None:
        self.sock.sendto(text.encode(), (LOOPBACK, self.sip_port))

    def _headers(self, method: str, call_id: str, cseq: int, to: str) -> str:
        return (
            f"{method} sip:tel3sis@{LOOPBACK}:{self.sip_port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {LOOPBACK}:{self.local_port};branch=z9hG4bK{uuid.uuid4().hex}\r\n"
            f"From: <sip:peer@{LOOPBACK}>;tag=f{call_id}\r\n{to}\r\n"
            f"Call-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n"
            f"Contact: <sip:peer@{LOOPBACK}:{self.local_port}>\r\nMax-Forwards: 70\r\n"
        )

    async def invite(self, within_s: float = 10.0) -> Dialog:
        """Send an INVITE and wait for its 200 OK; the call is not acknowledged yet."""
        call_id = uuid.uuid4().hex[:16]
        sdp = (
            f"v=0\r\no=- 1 1 IN IP4 {LOOPBACK}\r\ns=-\r\nc=IN IP4 {LOOPBACK}\r\nt=0 0\r\n"
            f"m=audio {self.rtp.port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
        )
        to = f"To: <sip:tel3sis@{LOOPBACK}>"
        self._send(
            self._headers("INVITE", call_id, 1, to)
            + f"Content-Type: application/sdp\r\nContent-Length: {len(sdp)}\r\n\r\n{sdp}"
        )
        reply = await self._final(within_s)
        code = int(reply.split(" ", 2)[1])
        if code != 200:
            raise AssertionError(f"the INVITE got {code}")
        to_line = re.search(r"^(To:.*?)\r$", reply, re.M | re.I)
        port = re.search(r"^m=audio (\d+)", reply, re.M)
        host = re.search(r"^c=IN IP4 (\S+)", reply, re.M)
        assert to_line and port and host, reply
        return Dialog(call_id, to_line.group(1), (host.group(1), int(port.group(1))))

    def ack(self, dialog: Dialog) -> None:
        self._send(
            self._headers("ACK", dialog.call_id, 1, dialog.to_header) + "Content-Length: 0\r\n\r\n"
        )

    def bye(self, dialog: Dialog) -> None:
        self._send(
            self._headers("BYE", dialog.call_id, 2, dialog.to_header) + "Content-Length: 0\r\n\r\n"
        )

    async def _final(self, within_s: float) -> str:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(within_s):
            while True:
                text = (await loop.sock_recv(self.sock, 65535)).decode(errors="replace")
                if re.match(r"SIP/2\.0 [2-6]\d\d ", text) and re.search(
                    r"^CSeq: *1 INVITE", text, re.M | re.I
                ):
                    return text


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
        rtp.close()
        caller.close()
