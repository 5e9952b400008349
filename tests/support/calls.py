"""Build a whole call from fakes and play it in virtual time."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from appliance.clock import LoopClock
from appliance.conversation.persona import Persona
from appliance.conversation.phrases import PhraseCache
from appliance.conversation.ports import CallInfo, EndOfTurn, Message, Recall, Screen
from appliance.conversation.session import CallSession, Engines, SessionConfig
from appliance.conversation.tools import Tool, ToolPolicy, ToolRegistry
from appliance.engines.vad.energy import EnergyVoiceActivity
from appliance.harness.call import CallReport, run_wav_call
from appliance.telephony.wavfile import Step
from tests.support.fakes import (
    ScriptedLanguageModel,
    ToneSpeechToText,
    ToneTextToSpeech,
    dominant_hz,
    sentence_hz,
    voiced_runs,
)
from tests.support.virtual_time import run_virtual

PERSONA = replace(
    Persona.load(agent_name="Tess", business_name="Testing"),
    greeting="Hello there.",
    reprompt="Still there?",
    goodbye_no_input="Bye for now.",
    apology="Sorry, I could not do that.",
    trouble="Sorry, trouble.",
)


@dataclass
class Fakes:
    stt: ToneSpeechToText
    llm: ScriptedLanguageModel
    tts: ToneTextToSpeech
    tools: list[Tool] = field(default_factory=list)


@dataclass
class Call:
    report: CallReport
    fakes: Fakes
    sessions: list[CallSession]

    @property
    def history(self) -> list[tuple[str, str]]:
        return [(m.role, m.content) for m in self.sessions[0].history]

    def events(self, kind: type) -> list:  # type: ignore[type-arg]
        return [e for e in self.report.events if isinstance(e, kind)]

    def played_sentences(self, candidates: Sequence[str]) -> list[str]:
        """Which of `candidates` the caller heard, in order, read from the line's agent audio."""
        heard: list[str] = []
        for run in voiced_runs(b"".join(self.report.line.agent_audio)):
            hz = dominant_hz(run)
            match = min(candidates, key=lambda text: abs(sentence_hz(text) - hz))
            if abs(sentence_hz(match) - hz) < 20 and (not heard or heard[-1] != match):
                heard.append(match)
        return heard


def play_call(
    steps: Sequence[Step],
    *,
    replies: Sequence[object] = (),
    config: SessionConfig | None = None,
    tools: Sequence[Tool] = (),
    tune: object = None,
    phrases: PhraseCache | None = None,
    context: Sequence[Message] = (),
    recall: Recall | None = None,
    screen: Screen | None = None,
    policy: ToolPolicy | None = None,
    info: CallInfo | None = None,
    thread_grace_s: float = 0.0,
    turn: EndOfTurn | None = None,
) -> Call:
    """One call, scripted caller against scripted engines, in virtual time. A tool that does
    real work on a thread (a real server's client) needs `thread_grace_s` (see run_virtual)."""

    async def main() -> Call:
        clock = LoopClock()
        fakes = Fakes(
            stt=ToneSpeechToText(clock),
            llm=ScriptedLanguageModel(clock, replies=list(replies)),  # type: ignore[arg-type]
            tts=ToneTextToSpeech(clock),
            tools=list(tools),
        )
        if callable(tune):
            tune(fakes)
        engines = Engines(
            stt=fakes.stt, llm=fakes.llm, tts=fakes.tts, vad=EnergyVoiceActivity(), turn=turn
        )
        cache = phrases or PhraseCache(fakes.tts)
        sessions: list[CallSession] = []

        def new_session(line, sink):  # type: ignore[no-untyped-def]
            session = CallSession(
                line,
                engines,
                config or SessionConfig(persona=PERSONA),
                tools=ToolRegistry(fakes.tools, policy=policy),
                phrases=cache,
                clock=clock,
                sink=sink,
                context=context,
                recall=recall,
                screen=screen,
            )
            sessions.append(session)
            return session

        report = await run_wav_call(
            lambda line, sink: new_session(line, sink).run(),
            steps,
            clock=clock,
            max_call_s=120,
            info=info,
        )
        return Call(report=report, fakes=fakes, sessions=sessions)

    return run_virtual(main(), thread_grace_s=thread_grace_s)
