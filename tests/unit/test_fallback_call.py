"""A whole call whose local engines fail or stall: each stage's fallback answers within its
budget, the caller hears the reply, and the turn's record and /metrics say which engine did."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from appliance.conversation.events import TurnCompleted
from appliance.conversation.observers import Observers
from appliance.conversation.replies import Outcome, Reply, ReplyState, Result
from appliance.engines.fallback import (
    FallbackLanguageModel,
    FallbackSpeechToText,
    FallbackTextToSpeech,
    Option,
)
from appliance.observability.metrics import Metrics
from appliance.telephony.wavfile import HangUp, Speak
from tests.support.calls import Fakes, play_call
from tests.support.fakes import (
    ScriptedLanguageModel,
    ToneSpeechToText,
    ToneTextToSpeech,
    say,
)

BUDGET_S = 0.5
STALLS_S = 3600.0
REPLY = "It is sunny today."


def _behind_local(stall: str) -> Callable[[Fakes], None]:
    """Each scripted engine becomes the fallback behind a local engine that fails, or stalls
    (`stall` names the stage whose local engine stalls rather than fails)."""

    def tune(fakes: Fakes) -> None:
        clock = fakes.stt.clock
        delay = {stage: STALLS_S if stage == stall else 0.0 for stage in ("stt", "llm", "tts")}
        whisper = ToneSpeechToText(clock, delay_s=delay["stt"], fail=stall != "stt", name="whisper")
        llama = ScriptedLanguageModel(
            clock, first_token_s=delay["llm"], fail=stall != "llm", name="llama"
        )
        piper = ToneTextToSpeech(clock, delay_s=delay["tts"], fail=stall != "tts", name="piper")
        fakes.stt = FallbackSpeechToText([Option(whisper, BUDGET_S), Option(fakes.stt)])  # type: ignore[assignment]
        fakes.llm = FallbackLanguageModel([Option(llama, BUDGET_S), Option(fakes.llm)])  # type: ignore[assignment]
        fakes.tts = FallbackTextToSpeech([Option(piper, BUDGET_S), Option(fakes.tts)])  # type: ignore[assignment]

    return tune


@pytest.mark.parametrize("stall", ["stt", "llm", "tts"])
def test_the_caller_hears_the_fallbacks_reply_when_the_local_engines_fail_or_stall(
    stall: str,
) -> None:
    call = play_call(
        [Speak(say("hello", "weather")), HangUp()], replies=[REPLY], tune=_behind_local(stall)
    )
    assert call.played_sentences(["Hello there.", REPLY]) == ["Hello there.", REPLY]
    (turn,) = call.events(TurnCompleted)
    assert turn.engines == {"stt": "tone-stt", "llm": "scripted-llm", "tts": "tone-tts"}
    # The stalled stage waited out its budget and no more (the fakes answer in ~0.1 s).
    stage = {"stt": "stt", "llm": "llm_first_token", "tts": "tts_first_audio"}[stall]
    assert BUDGET_S * 1000 <= turn.timings_ms[stage] < BUDGET_S * 1000 + 400


def test_each_turn_counts_the_engine_that_answered_each_stage_in_the_metrics() -> None:
    metrics = Metrics()
    events: list[object] = []
    reply = Reply(kind="turn", state=ReplyState.CONFIRMED, transcript="hello", turn=1)
    reply.stt_engine = "whisper"
    reply.thought.engines += ["llama", "api:gpt-4o-mini"]  # a tool round went to the fallback
    Observers(events.append, metrics).reply_ended(
        reply, Outcome(Result.ANSWERED), was_playing=False, at=0.0
    )
    (turn,) = [e for e in events if isinstance(e, TurnCompleted)]
    assert turn.engines == {"stt": "whisper", "llm": "llama+api:gpt-4o-mini"}

    def count(stage: str, engine: str) -> float | None:
        return metrics.registry.get_sample_value(
            "tel3sis_turn_engines_total", {"stage": stage, "engine": engine}
        )

    assert count("stt", "whisper") == 1.0
    assert count("llm", "llama+api:gpt-4o-mini") == 1.0
    assert count("tts", "piper") is None
