"""A pjsua2 phone in its own process, for attended-transfer tests: the caller or the person.

`python -m tests.support.sip_phone person PORT OUT_DIR ANSWER MAX_S` listens on 127.0.0.1:PORT
and answers every call with ANSWER (200 picks up). It records what it hears on the consult call
(the appliance's summary) to OUT_DIR/consult.wav, takes an INVITE with Replaces as pjsua does
by default, and records the replacing call (the caller) to OUT_DIR/replacing.wav.

`python -m tests.support.sip_phone caller URI OUT_DIR MAX_S` calls URI, presses 0 (RFC 4733)
once answered, accepts a REFER (with or without Replaces, as pjsua does by default) and plays a
600 Hz tone into the call the REFER makes, so the person's recording shows who they talk to.

Each writes OUT_DIR/events.json (what happened, in order) and OUT_DIR/ready once it listens.
pjsua2 allows one endpoint per process; the appliance under test has the one in the test's.
"""

from __future__ import annotations

import gc
import json
import sys
import time
from pathlib import Path
from typing import Any

import pjsua2 as pj

CALLER_TONE_HZ = 600
_POLL_MS = 10


class _Phone:
    def __init__(self, out: Path) -> None:
        self.out = out
        self.events: list[dict[str, Any]] = []
        self.calls: list[_Call] = []
        self.media: list[Any] = []
        self.started = time.monotonic()
        self.account: Any = None

    def note(self, what: str, **details: Any) -> None:
        at = round(time.monotonic() - self.started, 3)
        self.events.append({"what": what, "at": at, **details})

    def seen(self, what: str) -> bool:
        return any(e["what"] == what for e in self.events)


class _Call(pj.Call):  # type: ignore[misc]
    def __init__(self, phone: _Phone, role: str, call_id: int = pj.PJSUA_INVALID_ID) -> None:
        super().__init__(phone.account, call_id)
        self.phone = phone
        self.role = role
        phone.calls.append(self)

    def onCallState(self, prm: Any) -> None:
        info = self.getInfo()
        if info.state == pj.PJSIP_INV_STATE_CONFIRMED:
            self.phone.note(f"{self.role}-confirmed")
        elif info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.phone.note(f"{self.role}-ended", code=int(info.lastStatusCode))

    def onCallMediaState(self, prm: Any) -> None:
        info = self.getInfo()
        for media in info.media:
            if media.type == pj.PJMEDIA_TYPE_AUDIO and media.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                audio = self.getAudioMedia(int(media.index))
                if self.role == "transferred":  # the caller, now talking to the person
                    self._play_tone(audio)
                elif self.role in ("consult", "replacing") and not self.phone.seen(
                    f"{self.role}-rec"
                ):
                    self._record(audio)

    def _play_tone(self, audio: Any) -> None:
        tone = pj.ToneGenerator()
        tone.createToneGenerator(16000, 1)
        desc = pj.ToneDesc()
        desc.freq1, desc.freq2 = CALLER_TONE_HZ, 0
        desc.on_msec, desc.off_msec, desc.volume = 500, 100, 0
        tones = pj.ToneDescVector()
        tones.append(desc)
        tone.play(tones, True)
        tone.startTransmit(audio)
        self.phone.media.append(tone)

    def _record(self, audio: Any) -> None:
        recorder = pj.AudioMediaRecorder()
        recorder.createRecorder(str(self.phone.out / f"{self.role}.wav"))
        audio.startTransmit(recorder)
        self.phone.media.append(recorder)
        self.phone.note(f"{self.role}-rec")

    def onCallReplaced(self, prm: Any) -> None:
        prm.newCall = _Call(self.phone, "replacing", int(prm.newCallId))
        self.phone.note("replaced")

    def onCallTransferRequest(self, prm: Any) -> None:
        self.phone.note("refer", to=str(prm.dstUri))
        prm.newCall = _Call(self.phone, "transferred")


class _Account(pj.Account):  # type: ignore[misc]
    def __init__(self, phone: _Phone, answer: int) -> None:
        super().__init__()
        self.phone = phone
        self.answer = answer

    def onIncomingCall(self, prm: Any) -> None:
        call = _Call(self.phone, "consult", int(prm.callId))
        self.phone.note("incoming", answer=self.answer)
        op = pj.CallOpParam()
        op.statusCode = self.answer
        if self.answer == 200:
            call.answer(op)
        else:
            call.hangup(op)


def _library(port: int) -> Any:
    lib = pj.Endpoint()
    lib.libCreate()
    cfg = pj.EpConfig()
    cfg.uaConfig.threadCnt = 0
    cfg.uaConfig.mainThreadOnly = True
    cfg.logConfig.level = 1
    cfg.logConfig.consoleLevel = 1
    med = cfg.medConfig
    med.clockRate = med.sndClockRate = 16000
    med.channelCount = 1
    med.noVad = True
    med.ecTailLen = 0
    lib.libInit(cfg)
    tc = pj.TransportConfig()
    tc.port = port
    tc.boundAddress = "127.0.0.1"
    lib.transportCreate(pj.PJSIP_TRANSPORT_UDP, tc)
    lib.libStart()
    lib.audDevManager().setNullDev()
    for codec in lib.codecEnum2():
        lib.codecSetPriority(codec.codecId, 250 if codec.codecId.startswith("PCMU") else 0)
    return lib


def _account(phone: _Phone, lib: Any, user: str, port: int, answer: int) -> None:
    cfg = pj.AccountConfig()
    cfg.idUri = f"sip:{user}@127.0.0.1:{port}"
    cfg.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
    phone.account = _Account(phone, answer)
    phone.account.create(cfg, True)


def _done(phone: _Phone, role: str) -> bool:
    if role == "person":
        ended = phone.seen("consult-ended") and not phone.seen("replaced")
        return phone.seen("replacing-ended") or ended
    if phone.seen("caller-ended") and not phone.seen("refer"):
        return True
    confirmed = [e["at"] for e in phone.events if e["what"] == "transferred-confirmed"]
    elapsed = time.monotonic() - phone.started
    # Talk to the person for a while, so that their recording shows it.
    return phone.seen("transferred-ended") or bool(confirmed and elapsed > confirmed[0] + 2.0)


def _press_now(phone: _Phone) -> bool:
    """A second after the appliance answers (its greeting has begun), once."""
    confirmed = [e["at"] for e in phone.events if e["what"] == "caller-confirmed"]
    elapsed = time.monotonic() - phone.started
    return bool(confirmed) and elapsed > confirmed[0] + 1.0 and not phone.seen("pressed-0")


def run(role: str, target: str, out: Path, answer: int, max_s: float) -> None:
    out.mkdir(parents=True, exist_ok=True)
    phone = _Phone(out)
    port = int(target) if role == "person" else 0
    lib = _library(port)
    try:
        _account(phone, lib, "desk" if role == "person" else "caller", port, answer)
        caller = _Call(phone, "caller") if role == "caller" else None
        if caller is not None:
            caller.makeCall(target, pj.CallOpParam(True))
        (out / "ready").write_text("ready")
        deadline = time.monotonic() + max_s
        while time.monotonic() < deadline and not _done(phone, role):
            lib.libHandleEvents(_POLL_MS)
            if caller is not None and _press_now(phone):
                caller.dialDtmf("0")
                phone.note("pressed-0")
        del caller
        lib.hangupAllCalls()
        end = time.monotonic() + 0.5
        while time.monotonic() < end:
            lib.libHandleEvents(_POLL_MS)
    finally:
        (out / "events.json").write_text(json.dumps(phone.events))
        phone.media.clear()
        phone.calls.clear()
        phone.account = None
        gc.collect()
        lib.libDestroy()


def main(argv: list[str]) -> int:
    role = argv[0]
    if role == "person":
        run(role, argv[1], Path(argv[2]), int(argv[3]), float(argv[4]))
    else:
        run(role, argv[1], Path(argv[2]), 200, float(argv[3]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
