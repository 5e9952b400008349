"""Attended hand-off over SIP on loopback: the person hears the summary, then has the caller.

The appliance's SIP line runs here with scripted fake engines for the conversation and the real
piper voice for the summary. The caller and the person are pjsua2 phones in processes of their
own (`tests/support/sip_phone.py`): the caller presses 0, the appliance calls the person, speaks
the summary into that call, and REFERs the caller with Replaces; the caller's phone calls the
person, whose phone swaps the appliance's leg for the caller. What the person heard is
transcribed with the real Whisper.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from appliance.audio.frame import rms_dbfs
from appliance.conversation.events import CallEnded, PhraseSpoken, Transfer, TransferFailed
from appliance.conversation.handoff import not_answering
from appliance.engines.stt.whisper import WhisperSpeechToText
from appliance.engines.tts.piper import PiperTextToSpeech
from appliance.telephony.wavfile import load_wav
from appliance.tools.transfer import transfer_tool
from tests.conftest import ROOT
from tests.support.fakes import dominant_hz
from tests.support.sip import SIP_FIXTURES, fake_listener, free_port, run_sipp
from tests.support.sip_phone import CALLER_TONE_HZ

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(120)]

WHO = "a member of staff"


class _Phone:
    """One `sip_phone` process, started and waited for."""

    def __init__(self, process: asyncio.subprocess.Process, out: Path) -> None:
        self.process = process
        self.out = out
        self.output = ""

    @classmethod
    async def start(cls, *args: str, out: Path) -> _Phone:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.support.sip_phone", args[0], args[1], str(out), *args[2:],
            cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        phone = cls(process, out)
        async with asyncio.timeout(15):
            while not (out / "ready").exists():
                if process.returncode is not None:
                    raise AssertionError(await phone.finish())
                await asyncio.sleep(0.05)
        return phone

    async def finish(self, limit_s: float = 60.0) -> str:
        async with asyncio.timeout(limit_s):
            output, _ = await self.process.communicate()
        self.output = output.decode(errors="replace")
        return self.output

    def events(self) -> list[dict[str, Any]]:
        path = self.out / "events.json"
        assert path.exists(), self.output
        events: list[dict[str, Any]] = json.loads(path.read_text())
        return events

    def saw(self, what: str) -> bool:
        return any(e["what"] == what for e in self.events())


async def test_the_person_hears_the_summary_and_then_has_the_caller(
    tmp_path: Path, piper: PiperTextToSpeech, agent_listener: WhisperSpeechToText
) -> None:
    port = free_port()
    person = await _Phone.start("person", str(port), "200", "60", out=tmp_path / "person")
    tools = [transfer_tool([], f"sip:desk@127.0.0.1:{port}")]
    async with fake_listener(tools=tools, voice=piper) as calls:
        uri = f"sip:tel3sis@127.0.0.1:{calls.port}"
        caller = await _Phone.start("caller", uri, "40", out=tmp_path / "caller")
        await caller.finish()
        await person.finish()
    said = [e["what"] for e in person.events()]
    print("person:", said, "\ncaller:", [e["what"] for e in caller.events()])
    # The caller's phone was REFERred with Replaces and its new call reached the person, whose
    # phone swapped the appliance's consult leg for it.
    (refer,) = [e for e in caller.events() if e["what"] == "refer"]
    assert "Replaces" in refer["to"], refer
    assert caller.saw("transferred-confirmed") and caller.saw("caller-ended")
    assert said.index("consult-confirmed") < said.index("replaced") < said.index("consult-ended")
    assert "replacing-confirmed" in said
    (transfer,) = calls.all_events(Transfer)
    (ended,) = calls.all_events(CallEnded)
    assert ended.reason == "transferred"
    # What the person heard on the consult call: the summary, in the real voice, over G.711.
    heard = load_wav(person.out / "consult.wav").pcm
    text = (await agent_listener.transcribe(heard)).text.lower()
    print(f"summary {transfer.summary!r}; the person heard {text!r}")
    assert "call" in text and "staff" in text and "said anything" in text
    # And then the caller: their phone's tone on the replacing call.
    talk = load_wav(person.out / "replacing.wav").pcm
    loud = b"".join(
        talk[i : i + 640] for i in range(0, len(talk), 640) if rms_dbfs(talk[i : i + 640]) > -40
    )
    assert len(loud) > 16000, "the person heard nothing from the caller"
    assert abs(dominant_hz(loud) - CALLER_TONE_HZ) < 20


async def test_when_the_person_does_not_answer_the_agent_takes_a_message(
    tmp_path: Path, piper: PiperTextToSpeech
) -> None:
    port = free_port()
    person = await _Phone.start("person", str(port), "480", "30", out=tmp_path / "person")
    tools = [transfer_tool([], f"sip:desk@127.0.0.1:{port}")]
    async with fake_listener(tools=tools, voice=piper) as calls:
        uri = f"sip:tel3sis@127.0.0.1:{calls.port}"
        caller = await _Phone.start("caller", uri, "8", out=tmp_path / "caller")
        await caller.finish()
        await person.finish()
    assert person.saw("incoming") and not person.saw("consult-confirmed")
    assert not caller.saw("refer")  # the caller stays with the agent
    (failed,) = calls.all_events(TransferFailed)
    assert "not answered" in failed.reason and "480" in failed.reason, failed.reason
    assert not_answering(WHO) in [p.text for p in calls.all_events(PhraseSpoken)]


async def test_a_refused_refer_with_replaces_falls_back_to_a_blind_refer(
    tmp_path: Path, piper: PiperTextToSpeech
) -> None:
    """sipp as a caller whose side says it supports Replaces but answers 501 to the REFER that
    carries it; the blind REFER that follows it accepts, and reports the new call answered."""
    port = free_port()
    person = await _Phone.start("person", str(port), "200", "30", out=tmp_path / "person")
    target = f"sip:desk@127.0.0.1:{port}"
    async with fake_listener(tools=[transfer_tool([], target)], voice=piper) as calls:
        run = await run_sipp(
            calls.port, "-m", "1",
            scenario=str(SIP_FIXTURES / "dtmf0_refer_replaces_refused.xml"), work_dir=tmp_path,
        )  # fmt: skip
        await person.finish()
    assert run.returncode == 0, run.screen
    refers = re.findall(r"^Refer-To:.*$", run.messages, re.M | re.I)
    assert len(refers) == 2 and "Replaces" in refers[0] and "Replaces" not in refers[1], refers
    assert person.saw("consult-confirmed") and person.saw("consult-ended")
    assert run.received("BYE") == 1
    (ended,) = calls.all_events(CallEnded)
    assert ended.reason == "transferred"
