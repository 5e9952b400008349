"""The safety screens on the call path, with scripted engines in virtual time: what the caller
says is screened before the model sees it, each sentence of the agent's before it is heard, and
every tool call passes the policy before it runs."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace

import pytest
from pydantic import BaseModel

from appliance.conversation.events import SafetyChecked, ToolCalled, Transfer, TurnCompleted
from appliance.conversation.observers import Observers
from appliance.conversation.ports import CallInfo, Handoff, Speaker, TextDelta, Verdict
from appliance.conversation.session import SessionConfig
from appliance.conversation.tools import CallerTally, Tool, ToolContext, ToolPolicy
from appliance.observability.metrics import Metrics
from appliance.telephony.wavfile import HangUp, Speak
from tests.support.calls import PERSONA, play_call
from tests.support.fakes import say, tool_call

REFUSAL = PERSONA.refusal
ABUSE_GOODBYE = PERSONA.goodbye_abuse


@dataclass
class WordScreen:
    """Flags any text with one of `words` in it; fails outright on `broken`."""

    words: tuple[str, ...] = ("bomb",)
    broken: bool = False
    seen: list[tuple[Speaker, str]] = field(default_factory=list)

    async def check(self, text: str, *, speaker: Speaker) -> Verdict:
        self.seen.append((speaker, text))
        if self.broken:
            raise RuntimeError("embedder crashed")
        flagged = any(word in text.lower() for word in self.words)
        return Verdict(flagged, 0.9 if flagged else 0.1, 0.5, "weapons" if flagged else "", "w")


class _NoArguments(BaseModel):
    pass


def _counting_tool(runs: list[str], name: str = "get_weather") -> Tool:
    async def run(arguments: BaseModel, context: ToolContext) -> str:
        runs.append(name)
        return "Sunny."

    return Tool(name=name, description="The weather.", arguments=_NoArguments, run=run)


def _decisions(call: object, layer: str) -> list[tuple[str, str]]:
    return [(e.text, e.action) for e in call.events(SafetyChecked) if e.layer == layer]  # type: ignore[attr-defined]


def test_a_harmful_request_gets_the_refusal_and_never_reaches_the_model() -> None:
    runs: list[str] = []

    def injected(fakes: object) -> None:
        # Were the model to see the flagged words, it would run the tool: it must not see them.
        def respond(messages: object) -> object:
            said = messages[-1].content  # type: ignore[index]
            return [tool_call("get_weather")] if "bomb" in said else "It is sunny."

        fakes.llm.respond = respond  # type: ignore[attr-defined]

    call = play_call(
        [Speak(say("bomb", "help")), Speak(say("weather")), HangUp()],
        tools=[_counting_tool(runs)],
        tune=injected,
        screen=WordScreen(),
    )
    assert call.played_sentences(["Hello there.", REFUSAL, "It is sunny."]) == [
        "Hello there.",
        REFUSAL,
        "It is sunny.",
    ]
    assert runs == [] and not call.events(ToolCalled)
    assert len(call.fakes.llm.seen) == 1  # only the second, clean turn was the model's
    assert all("bomb" not in m.content for m in call.fakes.llm.seen[0])
    assert _decisions(call, "caller") == [("bomb help", "refused"), ("weather", "allowed")]
    turns = call.events(TurnCompleted)
    assert (turns[0].transcript, turns[0].reply) == ("bomb help", REFUSAL)


def test_a_harmful_sentence_is_replaced_by_the_refusal_and_the_rest_is_dropped() -> None:
    call = play_call(
        [Speak(say("help")), HangUp()],
        replies=[
            [
                TextDelta("Of course. "),
                TextDelta("First you take a bomb casing. "),
                TextDelta("Then you fill it."),
            ]
        ],
        screen=WordScreen(),
    )
    candidates = ["Hello there.", "Of course.", "First you take a bomb casing.", REFUSAL]
    candidates.append("Then you fill it.")
    assert call.played_sentences(candidates) == ["Hello there.", "Of course.", REFUSAL]
    assert _decisions(call, "agent") == [
        ("Of course.", "allowed"),
        ("First you take a bomb casing.", "replaced"),
    ]
    assert call.history[-1] == ("assistant", f"Of course. {REFUSAL}")


def test_repeated_abuse_ends_the_call_politely() -> None:
    turn = [Speak(say("bomb"))]
    call = play_call(
        [*turn, *turn, *turn, Speak(say("hello")), HangUp()],
        replies=["Hello again."],
        config=SessionConfig(persona=PERSONA, abuse_turns=3),
        screen=WordScreen(),
    )
    candidates = ["Hello there.", REFUSAL, ABUSE_GOODBYE, "Hello again."]
    # (the two refusals in a row are one run of tone to `played_sentences`)
    assert call.played_sentences(candidates) == ["Hello there.", REFUSAL, ABUSE_GOODBYE]
    assert call.report.ended == "caller was abusive"
    assert [a for _, a in _decisions(call, "caller")] == ["refused", "refused", "ended"]
    assert call.fakes.llm.seen == []


def test_a_failing_screen_lets_the_call_go_on() -> None:
    call = play_call(
        [Speak(say("hello")), HangUp()],
        replies=["Hi."],
        screen=WordScreen(broken=True),
    )
    assert call.events(TurnCompleted)[0].reply == "Hi."
    assert [e.engine for e in call.events(SafetyChecked)] == ["none", "none"]


def test_every_sentence_of_a_clean_reply_is_screened_and_allowed() -> None:
    screen = WordScreen()
    call = play_call(
        [Speak(say("weather")), HangUp()],
        replies=[[TextDelta("It is sunny. "), TextDelta("Warm, too.")]],
        screen=screen,
    )
    assert call.events(TurnCompleted)[0].reply == "It is sunny. Warm, too."
    assert ("agent", "It is sunny.") in screen.seen and ("agent", "Warm, too.") in screen.seen
    assert _decisions(call, "agent") == [("It is sunny.", "allowed"), ("Warm, too.", "allowed")]


def test_the_policy_stops_a_tool_run_more_often_than_allowed_on_a_call() -> None:
    runs: list[str] = []
    call = play_call(
        [Speak(say("weather")), HangUp()],
        replies=[[tool_call("get_weather")], [tool_call("get_weather")], "Sunny all week."],
        tools=[_counting_tool(runs)],
        policy=ToolPolicy(per_call={"get_weather": 1}),
    )
    assert runs == ["get_weather"]
    blocked = [e for e in call.events(SafetyChecked) if e.layer == "tool"]
    assert [(e.action, e.engine) for e in blocked] == [("blocked", "policy")]
    assert "as often as it may on one call (1)" in blocked[0].category
    told = call.fakes.llm.seen[-1][-1]
    assert told.role == "tool" and told.content.startswith("Not allowed:")


def test_a_caller_who_rings_back_cannot_run_a_tool_more_often_than_a_day_allows() -> None:
    runs: list[str] = []
    hours = [0.0]
    policy = ToolPolicy(
        per_caller_per_day={"get_weather": 2}, tally=CallerTally(lambda: hours[0] * 3600)
    )

    def ring(caller: str) -> object:
        return play_call(
            [Speak(say("weather")), HangUp()],
            replies=[[tool_call("get_weather")], "Here it is."],
            tools=[_counting_tool(runs)],
            policy=policy,
            info=CallInfo(call_id=f"c{len(runs)}", line="sip", caller=caller),
        )

    ring("+15550100")
    ring("+15550100")
    third = ring("+15550100")
    blocked = [e for e in third.events(SafetyChecked) if e.layer == "tool"]  # type: ignore[attr-defined]
    assert runs == ["get_weather"] * 2
    assert "as often as it may for this caller today (2)" in blocked[0].category
    ring("+15550199")  # another caller has their own
    hours[0] = 24.5  # and a day later, so has this one
    ring("+15550100")
    assert runs == ["get_weather"] * 4


def test_a_tool_the_business_denies_never_runs() -> None:
    runs: list[str] = []
    call = play_call(
        [Speak(say("weather")), HangUp()],
        replies=[[tool_call("get_weather")], "I can't check that."],
        tools=[_counting_tool(runs)],
        policy=replace(ToolPolicy(), denied=frozenset({"get_weather"})),
    )
    assert runs == []
    assert call.events(TurnCompleted)[0].reply == "I can't check that."


def _handing_to(target: str) -> Tool:
    async def run(arguments: BaseModel, context: ToolContext) -> str:
        context.transfer_to = Handoff(target=target, who="Bob", summary="A caller.")
        return "Putting them through."

    return Tool(name="transfer_to_person", description="A person.", arguments=_NoArguments, run=run)


def test_a_caller_is_put_through_only_to_the_business_s_people() -> None:
    call = play_call(
        [Speak(say("help")), HangUp()],
        replies=[[tool_call("transfer_to_person")], "I'll put you through to Bob."],
        tools=[_handing_to("+15550666")],
        policy=ToolPolicy(transfer_targets=frozenset({"+15550111"})),
    )
    assert not call.events(Transfer)
    blocked = [e for e in call.events(SafetyChecked) if e.layer == "tool"]
    assert [(e.action, e.text) for e in blocked] == [("blocked", "transfer_to_person +15550666")]
    assert "not one of the business's people" in blocked[0].category


def test_each_decision_is_counted_for_metrics() -> None:
    metrics = Metrics()
    observers = Observers(None, metrics)
    for action in ("allowed", "allowed", "refused"):
        observers.safety(SafetyChecked(turn=1, layer="caller", text="x", action=action))
    observers.tool_blocked(2, tool_call("get_weather"), "too often")

    def count(layer: str, action: str) -> float | None:
        return metrics.registry.get_sample_value(
            "tel3sis_safety_decisions_total", {"layer": layer, "action": action}
        )

    assert count("caller", "allowed") == 2 and count("caller", "refused") == 1
    assert count("tool", "blocked") == 1


def test_a_caller_speaking_of_self_harm_hears_where_to_find_help_and_is_never_hung_up_on() -> None:
    @dataclass
    class SelfHarm(WordScreen):
        async def check(self, text: str, *, speaker: Speaker) -> Verdict:
            flagged = "help" in text
            return Verdict(flagged, 1.0 if flagged else 0.0, 0.5, "self_harm" if flagged else "")

    turn = [Speak(say("help"))]
    call = play_call(
        [*turn, *turn, *turn, Speak(say("hello")), HangUp()],
        replies=["I'm here."],
        config=SessionConfig(persona=PERSONA, abuse_turns=2),
        screen=SelfHarm(),
    )
    assert call.played_sentences(["Hello there.", PERSONA.self_harm, "I'm here."]) == [
        "Hello there.",
        PERSONA.self_harm,
        "I'm here.",
    ]
    assert call.report.ended == "caller hung up"
    assert [a for _, a in _decisions(call, "caller")] == ["refused"] * 3 + ["allowed"]


def test_the_turn_s_timings_show_what_the_screens_added() -> None:
    """The caller's screen runs before the model; the agent's first sentence waits for its
    check only if its audio is ready first. A screen taking 0.3 s shows in both."""

    @dataclass
    class SlowScreen(WordScreen):
        async def check(self, text: str, *, speaker: Speaker) -> Verdict:
            await asyncio.sleep(0.3)
            return await super().check(text, speaker=speaker)

    call = play_call(
        [Speak(say("weather")), HangUp()], replies=["It is sunny."], screen=SlowScreen()
    )
    timings = call.events(TurnCompleted)[0].timings_ms
    assert timings["screen"] == pytest.approx(300, abs=5)
    # The fake voice is faster than 0.3 s: the first sentence's audio waited for its check.
    assert 0 < timings["screen_hold"] <= 300
    fast = play_call(
        [Speak(say("weather")), HangUp()], replies=["It is sunny."], screen=WordScreen()
    )
    assert fast.events(TurnCompleted)[0].timings_ms["screen_hold"] == 0
